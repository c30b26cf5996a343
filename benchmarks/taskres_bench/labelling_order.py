"""The labelling page's order of images: as served in Chromium, as simulated, and random order.

The set-up: the 797 held-out digits of the tiny digits CLIP in one style, split once into a
pool of 400 images (the folder the page labels) and a test set of 397 that no order ever
shows. A simulated person labels every image correctly. Three orders are measured:

- **page**: the real page (:class:`sklearn_taskres.label.LabellingServer`, its HTML and
  JavaScript) in the system Chromium driven by Playwright, at a person's pace (a key
  0.8 s after the image appears) or at machine speed (as soon as it appears). The accuracy
  is that of the model file the page writes, on the test set, once the page has refitted
  on every label;
- **simulation**: the same session and trainer in-process, a refit after every label and the
  next image chosen by the model with every label (what the page would do with no delay);
- **random**: the same session drawing every image uniformly at random, a refit after every
  label.
"""

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from sklearn_taskres import load_model, zero_shot_classifier
from sklearn_taskres.label import AUDIT_SHARE, LabellingServer, LabellingSession
from sklearn_taskres.label._encoding import Encoder
from sklearn_taskres.label._trainer import Trainer
from sklearn_taskres.testing import load_held_out_digits, trained_tiny_clip

from .common import log

STYLES = ("plain", "bold", "noisy")
CHECKPOINTS = (20, 40, 60)
N_POOL = 400
DIGIT_TEMPLATES = ['a photo of the number: "{}".']
#: Seconds from an image appearing to its key press, for "person"; None: machine speed.
PACES = {"person": 0.8, "machine": None}


def start_model():
    """The zero-shot classifier of the digits, the page's starting model."""
    model, pretrained = trained_tiny_clip()
    return zero_shot_classifier([str(digit) for digit in range(10)], model=model,
                                pretrained=str(pretrained), templates=DIGIT_TEMPLATES,
                                device="cpu", precision="fp32", random_state=0)


def digit_split(directory, style, model):
    """The pool written as PNG files, and the test set's features and labels."""
    X, y = load_held_out_digits(style)
    order = np.random.RandomState(0).permutation(len(y))
    pool, test = order[:N_POOL], order[N_POOL:]
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for index in pool:
        path = directory / f"digit_{index:03d}.png"
        Image.fromarray(X[index]).save(path)
        paths.append(str(path))
    truth = {Path(path).name: str(y[index]) for path, index in zip(paths, pool, strict=True)}
    test_features = model._features(list(X[test]))
    return paths, truth, test_features, y[test].astype(str)


def accuracy(model, features, labels):
    return float(np.mean(model.head_.predict(features) == labels))


def simulate(model, paths, truth, test, audit_share, seed, labels_file):
    """Accuracies on the test set at every checkpoint of one in-process session."""
    session = LabellingSession(model, paths, labels_file, audit_share=audit_share,
                               random_state=seed)
    Encoder(session).run()
    trainer = Trainer(session)
    results = {}
    try:
        for n_labels in range(1, max(CHECKPOINTS) + 1):
            [item] = session.queue(1)
            session.decide(item["index"], truth[item["name"]])
            trainer.step()
            if n_labels in CHECKPOINTS:
                results[n_labels] = {"trained": accuracy(session.trained_model, *test),
                                     "served": accuracy(session.serving_model(), *test)}
    finally:
        session.close()
    return results


def chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


def drive_page(browser, model, paths, truth, test, pace, seed, directory):
    """The page in Chromium: a simulated person labels; the model file is read at checkpoints.

    Returns the accuracies of the model file at each checkpoint, the key-press-to-image
    latencies and what the page showed (its policy's picks, random ones, stale ones).
    """
    labels_file, model_file = directory / "labels.csv", directory / "model.skops"
    server = LabellingServer(model, paths, labels_file, model_file, random_state=seed).start()
    results = {}
    try:
        session = server.session
        while not server.encoder.done.is_set():
            time.sleep(0.05)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(server.url)
        page.wait_for_selector("#frame img")
        seen = set()
        for n_labels in range(1, max(CHECKPOINTS) + 1):
            page.wait_for_function(
                "(seen) => { const name = document.getElementById('filename').textContent;"
                " return name && !seen.includes(name); }", arg=sorted(seen), polling=5)
            name = page.locator("#filename").text_content()
            seen.add(name)
            if pace:
                time.sleep(pace)
            position = model.classes_.tolist().index(truth[name])
            page.keyboard.press(str(position + 1) if position < 9 else "0")
            if n_labels in CHECKPOINTS:
                # The page has saved every label and refitted on them: read its model file.
                page.wait_for_function("() => page.outbox.length === 0", polling=10)
                deadline = time.monotonic() + 60
                while (session.trained_version != session.version
                       or server.trainer.model_file_version != session.version):
                    if time.monotonic() > deadline:
                        raise RuntimeError("the page did not refit in a minute")
                    time.sleep(0.02)
                results[n_labels] = {"served": accuracy(load_model(model_file), *test),
                                     "trained": accuracy(session.trained_model, *test)}
        stats = page.evaluate("window.labellingStats")
        latencies = page.evaluate("window.labellingLatencies")
        page.close()
    finally:
        server.stop()
    return {"results": results, "stats": stats, "latency_ms": [float(v) for v in latencies]}


def order_benchmark(seeds, paces=PACES):
    """Every style, seed and order; the page in Chromium at each pace where it can run."""
    from .labelling_report import summarise

    model = start_model()
    runs = {style: {"simulation": [], "random": [], **{f"page, {pace}": [] for pace in paces}}
            for style in STYLES}
    zero_shot = {}
    browser = playwright = None
    if chromium() is not None:
        try:
            from playwright.sync_api import sync_playwright

            playwright = sync_playwright().start()
            browser = playwright.chromium.launch(executable_path=chromium(),
                                                 args=["--no-sandbox"])
        except ImportError:
            log("[labelling] playwright is not installed: the page is not driven")
    try:
        with tempfile.TemporaryDirectory(prefix="taskres_order_") as directory:
            directory = Path(directory)
            for style in STYLES:
                paths, truth, *test = digit_split(directory / style, style, model)
                zero_shot[style] = accuracy(model, *test)
                for seed in seeds:
                    started = time.perf_counter()
                    for order, share in (("simulation", AUDIT_SHARE), ("random", 1.0)):
                        labels_file = directory / f"{style}-{order}-{seed}.csv"
                        runs[style][order].append(
                            simulate(model, paths, truth, test, share, seed, labels_file))
                    for pace, seconds in paces.items():
                        if browser is None:
                            continue
                        folder = directory / f"{style}-page-{pace}-{seed}"
                        folder.mkdir()
                        runs[style][f"page, {pace}"].append(drive_page(
                            browser, model, paths, truth, test, seconds, seed, folder))
                    log(f"[labelling] {style}, seed {seed}: "
                        f"{time.perf_counter() - started:.0f} s")
    finally:
        if browser is not None:
            browser.close()
            playwright.stop()
    return summarise(runs, zero_shot, seeds, browser is not None)
