"""Ratio 10: the labelling page, its order of images as served and simulated, its latency.

Two measurements (``--config labelling``):

- **the order** (:mod:`.labelling_order`): the held-out digits of the tiny digits CLIP in
  three styles (plain, the pretraining's; bold; bold with pixel noise), a pool of 400 and a
  separate test set of 397; the real page in Chromium at a person's pace (0.8 s per label)
  and at machine speed, the in-process simulation, and random order, over
  :data:`SEEDS`; accuracy on the test set at 20, 40 and 60 labels. Targets: the page at
  least 3 points above random order on bold and noisy at both paces; on plain digits its
  model file never below zero-shot; key press to next image p95 < 150 ms. The ratio: the
  page's model file at a person's pace over random order, bold, 20 labels.
- **the latency and the refit** on real-size features: the page in Chromium over 2,000
  images encoded by ViT-B-32 with random weights, keys every 0.3 s while the trainer refits
  and the folder is still being encoded; :func:`sklearn_taskres.label.refit` on 2,000
  labelled ViT-B-32 features, K = 10 (target < 1 s).
"""

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from sklearn_taskres import zero_shot_classifier
from sklearn_taskres.label import LabellingServer, refit

from . import labelling_order, labelling_report
from .common import log, ratio_entry, write_images

SEEDS = (0, 1, 2)
N_LATENCY_IMAGES = 2000
N_PRESSES = 100
PACE_SECONDS = 0.3
LATENCY_TARGET_MS = labelling_report.LATENCY_TARGET_MS
REFIT_TARGET_SECONDS = 1.0


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


def latency_benchmark(device):
    """Key press to next image in Chromium, 2,000 ViT-B-32 images, refits running; refit time."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return {"skipped": "playwright is not installed"}
    if _chromium() is None:
        return {"skipped": "no chromium"}
    names = [f"object number {k}" for k in range(10)]
    start_model = zero_shot_classifier(names, model="ViT-B-32", pretrained=None,
                                       device=device, random_state=0)
    with tempfile.TemporaryDirectory(prefix="taskres_latency_") as directory:
        directory = Path(directory)
        log(f"[labelling] writing {N_LATENCY_IMAGES} images")
        paths = write_images(directory / "photos", N_LATENCY_IMAGES, (400, 300), seed=3)
        server = LabellingServer(start_model, paths, directory / "labels.csv",
                                 directory / "model.skops").start()
        try:
            session = server.session
            while session.encoded.sum() < 200:
                time.sleep(0.1)
            n_encoded_before = int(session.encoded.sum())
            log(f"[labelling] {n_encoded_before} encoded; pressing keys")
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=_chromium(),
                                                     args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1280, "height": 800})
                page.goto(server.url)
                page.wait_for_selector("#frame img")
                time.sleep(2)  # the page fills its queue ahead
                for press in range(N_PRESSES):
                    page.keyboard.press(str((press % 9) + 1))
                    time.sleep(PACE_SECONDS)
                time.sleep(1)
                latencies = page.evaluate("window.labellingLatencies")
                browser.close()
            n_encoded_after = int(session.encoded.sum())
            refits = list(server.trainer.refit_seconds)
            while not server.encoder.done.is_set():
                time.sleep(0.5)
            X = session.features.copy()
        finally:
            server.stop()
    y = np.asarray(names)[np.arange(len(X)) % 10]
    # The page's refits: one that chooses alpha (alpha="auto", when the labels have grown
    # by a quarter), and the others, which reuse the choice (a fixed alpha).
    refit_seconds = {}
    threads = torch.get_num_threads()
    chosen = float(refit(start_model, X, y).alpha_)
    for n_threads in sorted({threads, 1}, reverse=True):
        torch.set_num_threads(n_threads)
        for kind, alpha in (("choosing alpha", "auto"), ("reusing the choice", chosen)):
            key = f"{n_threads} thread(s), {kind}"
            refit_seconds[key] = []
            for _ in range(3):
                started = time.perf_counter()
                refit(start_model, X, y, alpha=alpha)
                refit_seconds[key].append(time.perf_counter() - started)
    torch.set_num_threads(threads)
    return {
        "latency_ms": [float(value) for value in latencies],
        "p50_ms": float(np.percentile(latencies, 50)),
        "p95_ms": float(np.percentile(latencies, 95)),
        "max_ms": float(np.max(latencies)),
        "n_presses": N_PRESSES,
        "pace_seconds": PACE_SECONDS,
        "n_encoded_during": [n_encoded_before, n_encoded_after],
        "refits_during": len(refits),
        "refit_seconds_during": [float(value) for value in refits],
        "refit_2000_seconds": {key: [float(v) for v in values]
                               for key, values in refit_seconds.items()},
    }


def ratio(config, model, data, repeats, device):
    """Ratio 10: the page's model file over random order at 20 labels (bold, a person's pace)."""
    log("[labelling] the order: the page in Chromium, the simulation and random order")
    # Refits of a few hundred 32-d features are too small for threads: on a shared 2-core
    # machine two threads run them 5-10 times slower than one.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        order = labelling_order.order_benchmark(SEEDS)
    finally:
        torch.set_num_threads(threads)
    log("[labelling] latency in Chromium on 2,000 ViT-B-32 images")
    latency = latency_benchmark(device)
    bold = order["summary"]["bold"]
    served = bold.get("page, person", bold["simulation"])["20"]
    served = served["served"] if "page, person" in bold else served["trained"]
    return ratio_entry(
        served / bold["random"]["20"]["trained"],
        "accuracy on the bold test digits after 20 labels, the page's model file at a "
        "person's pace / random order",
        (">=", 1.0),
        {f"refit_2000, {n}": values
         for n, values in latency.get("refit_2000_seconds", {}).items()},
        order=order,
        latency=latency,
    )


def lines(entry, times):
    """The printed lines of ratio 10."""
    order, latency = entry["order"], entry["latency"]
    out = [f" {entry['ratio']:.2f} ({entry['meaning']}; target >= 1: "
           f"{'PASS' if entry['met'] else 'MISS'})"]
    out += labelling_report.lines(order)
    if "skipped" in latency:
        out.append(f"    latency: skipped ({latency['skipped']})")
        return out
    for kind, values in latency["refit_2000_seconds"].items():
        refit_2000 = float(np.median(values))
        target = ("" if "choosing" in kind else f" (target < {REFIT_TARGET_SECONDS:.0f} s: "
                  f"{'PASS' if refit_2000 < REFIT_TARGET_SECONDS else 'MISS'})")
        out.append(f"    refit on 2,000 labelled ViT-B-32 features, K=10, torch {kind}: "
                   f"median {refit_2000:.2f} s of {len(values)}{target}")
    out.append(f"    key press to next image, {latency['n_presses']} presses every "
               f"{latency['pace_seconds']} s, {latency['refits_during']} refits meanwhile, "
               f"encoded {latency['n_encoded_during'][0]} -> {latency['n_encoded_during'][1]} "
               f"of {N_LATENCY_IMAGES}: p50 {latency['p50_ms']:.0f} ms, p95 "
               f"{latency['p95_ms']:.0f} ms, max {latency['max_ms']:.0f} ms (target p95 < "
               f"{LATENCY_TARGET_MS} ms: "
               f"{'PASS' if latency['p95_ms'] < LATENCY_TARGET_MS else 'MISS'})")
    return out
