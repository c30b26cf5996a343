"""The labelling loop on the command line: zero-shot from names, predict --output, review, sort."""

import base64
import csv
import hashlib
import html
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sklearn_taskres import load_model, zero_shot_classifier
from sklearn_taskres.cli import main, model_fingerprint, read_predictions
from sklearn_taskres.testing import TINY_CLIP_CONFIG, TINY_CLIP_NAME

COLOURS = {"green": (30, 200, 40), "blue": (30, 60, 230), "red": (220, 30, 30)}
N_PER_CLASS = 4


def _write_images(folder, colour, n, seed, size=32):
    rng = np.random.RandomState(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(n):
        pixels = np.clip(np.add(colour, rng.randint(-30, 31, (size, size, 3))), 0, 255)
        Image.fromarray(pixels.astype(np.uint8)).save(folder / f"img{index}.png")


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    """Photos (unlabelled, with one corrupt file), the tiny config, and a zero-shot model."""
    root = tmp_path_factory.mktemp("loop")
    photos = root / "photos"
    for seed, colour in enumerate(COLOURS.values()):
        _write_images(photos / f"roll{seed}", colour, N_PER_CLASS, seed)
    (photos / "roll0" / "broken.jpg").write_bytes(b"not a jpeg at all")
    config = root / f"{TINY_CLIP_NAME}.json"
    config.write_text(json.dumps(TINY_CLIP_CONFIG))
    tiny = ["--model-config", str(config), "--pretrained", "none", "--device", "cpu"]
    model = root / "zero_shot.skops"
    assert main(["zero-shot", "--classes", *COLOURS, "-o", str(model), *tiny]) == 0
    # A few labelled images, as a user labels them after the first review.
    labelled = root / "labelled"
    for seed, (name, colour) in enumerate(COLOURS.items()):
        _write_images(labelled / name, colour, 2, seed + 10)
    fitted = root / "fitted.skops"
    assert main(["fit", str(labelled), "-o", str(fitted), *tiny, "--epochs", "60",
                 "--learning-rate", "0.05"]) == 0
    return {"root": root, "photos": photos, "config": str(config), "model": model,
            "labelled": labelled, "fitted": fitted, "tiny": tiny}


def run(capsys, *argv):
    """Run the command line in-process; return (exit status, stdout, stderr)."""
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


def image_paths(photos):
    return sorted(str(path) for path in Path(photos).rglob("*") if path.is_file())


# ---------------------------------------------------------------- zero-shot from names


@pytest.mark.auto_precision
def test_zero_shot_from_names_saves_the_text_classifier(loop, tiny_model):
    """zero-shot --classes -o saves zero_shot_classifier of the names, read with spaces."""
    classifier = load_model(loop["model"])
    assert classifier.classes_.tolist() == list(COLOURS)
    assert classifier.n_iter_ == 0 and not classifier.residual_.any()
    expected = zero_shot_classifier(list(COLOURS), model=tiny_model, pretrained=None,
                                    device="cpu")
    np.testing.assert_array_equal(classifier.base_weights_, expected.base_weights_)


@pytest.mark.auto_precision
def test_zero_shot_from_a_classnames_file(loop, capsys, tmp_path):
    """--classnames-file without DIR: bare labels read with spaces, or label<TAB>name."""
    names = tmp_path / "names.txt"
    names.write_text("# my classes\nlight_blue\nred\tcrimson\n")
    output = tmp_path / "named.skops"
    status, _, err = run(capsys, "zero-shot", "--classnames-file", names, "-o", output,
                         "--model-config", loop["config"], "--pretrained", "none",
                         "--device", "cpu")
    assert status == 0, err
    assert load_model(output).classnames == {"light_blue": "light blue", "red": "crimson"}


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--classes", "a", "b"], "expected -o MODEL to save the zero-shot classifier"),
        (["-o", "m.skops"], "expected the classes: --classes NAME [NAME ...]"),
        (["-o", "m.skops", "--classes", "a", "a"], "expected distinct --classes; got ['a']"),
        (["-o", "m.skops", "--classes", "a"], "expected at least 2 classes"),
    ],
)
def test_zero_shot_without_classes_or_output(loop, capsys, tmp_path, monkeypatch, argv,
                                            match):
    """zero-shot without a folder needs classes and -o; bad ones are named (exit 2)."""
    monkeypatch.chdir(tmp_path)
    status, _, err = run(capsys, "zero-shot", *argv, "--model-config", loop["config"],
                         "--pretrained", "none", "--device", "cpu")
    assert status == 2
    assert "sklearn-taskres: error: " in err and match in err, err


# ---------------------------------------------------------------- predict --output


@pytest.mark.auto_precision
@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_predict_output_holds_the_printed_rows(loop, capsys, tmp_path, suffix):
    """--output FILE holds the rows predict prints, the model's fingerprint and the errors."""
    status, out, _ = run(capsys, "predict", loop["model"], loop["photos"], "--proba",
                         "--format", "json")
    assert status == 3
    printed = json.loads(out)
    output = tmp_path / f"predictions{suffix}"
    status, out, err = run(capsys, "predict", loop["model"], loop["photos"], "--proba",
                           "--output", output, "--batch-size", "5")
    assert status == 3 and out == ""
    assert "cannot read" in err and "broken.jpg" in err
    classes, rows = read_predictions(output)
    assert classes == list(COLOURS)
    assert [row["path"] for row in rows] == [row["path"] for row in printed]
    assert [row["label"] for row in rows] == [row["label"] for row in printed]
    assert [row["error"] for row in rows] == [row["error"] for row in printed]
    fingerprint = model_fingerprint(load_model(loop["model"]))
    assert {row["model"] for row in rows} == {fingerprint}
    for row, expected in zip(rows, printed, strict=True):
        if expected["proba"] is None:
            assert row["proba"] is None and row["label"] is None
            assert "cannot decode the image file" in row["error"]
        else:
            # Batches of 5 against one batch of 13: CPU kernels round by batch shape
            # (3e-7 relative seen on an AMX Xeon in fp32); 1e-5 holds in fp32 and bf16.
            np.testing.assert_allclose(row["proba"], list(expected["proba"].values()),
                                       rtol=1e-5)
    if suffix == ".parquet":
        import pandas as pd

        assert len(pd.read_parquet(output)) == len(printed)
        assert len(list(output.glob("part-*.parquet"))) == -(-len(printed) // 5)


@pytest.mark.auto_precision
@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_rerun_resumes_the_file(loop, capsys, tmp_path, suffix):
    """A rerun skips the paths already in FILE, drops a cut last line and adds the others once."""
    output = tmp_path / f"predictions{suffix}"
    roll = loop["photos"] / "roll1"
    status, _, _ = run(capsys, "predict", loop["model"], roll, "--proba", "--output", output)
    assert status == 0
    cut = str(loop["photos"] / "roll2" / "img0.png")
    with open(output, "a") as file:  # what a kill leaves
        file.write(f"{cut},red,0.5" if suffix == ".csv" else f'{{"path": "{cut}", "label": "r')
    status, _, err = run(capsys, "predict", loop["model"], loop["photos"], "--proba",
                         "--output", output)
    assert status == 3
    assert f"resuming {output}: {N_PER_CLASS} image(s) already there" in err
    _, rows = read_predictions(output)
    assert sorted(row["path"] for row in rows) == image_paths(loop["photos"])

    full = tmp_path / "full.csv"
    run(capsys, "predict", loop["model"], loop["photos"], "--proba", "--output", full)
    by_path = {row["path"]: row["label"] for row in read_predictions(full)[1]}
    assert {row["path"]: row["label"] for row in rows} == by_path

    before = output.read_bytes()
    status, _, err = run(capsys, "predict", loop["model"], loop["photos"], "--proba",
                         "--output", output)
    assert output.read_bytes() == before  # done: nothing to add
    # The status is this run's: it read no image, so none failed.
    assert status == 0
    assert "wrote 0 row(s)" in err and "could not be read:" not in err
    assert (f"1 image(s) that an earlier run could not read keep their rows in {output}; not "
            "counted in the exit status of this run") in err.splitlines()[-1]


@pytest.mark.auto_precision
def test_a_resumed_run_reports_the_images_it_read(loop, capsys, tmp_path):
    """Resumed, predict exits 3 only when an image of this run could not be read."""
    photos = tmp_path / "photos"
    shutil.copytree(loop["photos"], photos)
    output = tmp_path / "predictions.csv"
    status, _, err = run(capsys, "predict", loop["model"], photos / "roll0", "--proba",
                         "--output", output)
    assert status == 3 and "1 image(s) could not be read" in err  # broken.jpg
    status, _, err = run(capsys, "predict", loop["model"], photos, "--proba", "--output", output)
    assert status == 0 and f"{2 * N_PER_CLASS} to go" in err
    assert "could not be read:" not in err and "that an earlier run could not read" in err
    _, rows = read_predictions(output)
    assert sorted(row["path"] for row in rows) == image_paths(photos)
    assert [Path(row["path"]).name for row in rows if row["error"]] == ["broken.jpg"]

    (photos / "late.png").write_bytes(b"\x89PNG cut short")  # one more, unreadable
    status, _, err = run(capsys, "predict", loop["model"], photos, "--proba", "--output", output)
    assert status == 3 and "1 to go" in err and "1 image(s) could not be read" in err


@pytest.mark.auto_precision
def test_an_unreadable_file_is_named_once(loop, capsys, tmp_path):
    """The line on stderr and the error column name an unreadable file once."""
    broken = loop["photos"] / "roll0" / "broken.jpg"
    output = tmp_path / "predictions.jsonl"
    status, _, err = run(capsys, "predict", loop["model"], broken.parent, "--output", output)
    assert status == 3
    [line] = [line for line in err.splitlines() if str(broken) in line]
    assert line.count(str(broken)) == 1
    assert line == (f"sklearn-taskres: cannot read {str(broken)!r}: cannot decode the image "
                    "file: cannot identify image file")
    [row] = [row for row in read_predictions(output)[1] if row["error"]]
    assert row["error"] == "cannot decode the image file: cannot identify image file"


@pytest.mark.auto_precision
def test_a_file_of_another_model_is_refused(loop, capsys, tmp_path):
    """Resuming a file of another model (or without --proba) is refused; --overwrite restarts."""
    output = tmp_path / "predictions.jsonl"
    other = tmp_path / "other.skops"
    status, _, _ = run(capsys, "zero-shot", "--classes", "cat", "dog", "-o", other,
                       "--model-config", loop["config"], "--pretrained", "none",
                       "--device", "cpu")
    assert status == 0
    run(capsys, "predict", other, loop["photos"] / "roll1", "--output", output, "--proba")
    before = output.read_bytes()
    status, _, err = run(capsys, "predict", loop["model"], loop["photos"], "--output", output,
                         "--proba")
    assert status == 2 and output.read_bytes() == before
    fingerprint = model_fingerprint(load_model(other))
    assert f"got rows of the model(s) ['{fingerprint}']" in err
    assert "--overwrite" in err.splitlines()[-1]
    status, _, err = run(capsys, "predict", other, loop["photos"], "--output", output)
    assert status == 2 and "to be resumed with --proba" in err

    status, _, _ = run(capsys, "predict", loop["model"], loop["photos"], "--output", output,
                       "--overwrite")
    assert status == 3
    classes, rows = read_predictions(output)
    assert classes is None and len(rows) == len(image_paths(loop["photos"]))
    assert {row["label"] for row in rows} <= {*COLOURS, None}


@pytest.mark.auto_precision
def test_a_file_of_the_zero_shot_model_is_not_resumed_by_the_fitted_one(loop, capsys,
                                                                        tmp_path):
    """Same classes, names and base but another residual: another model, its file refused."""
    zero_shot = tmp_path / "zero_shot.skops"
    assert run(capsys, "zero-shot", "--classes", *sorted(COLOURS), "-o", zero_shot,
               *loop["tiny"])[0] == 0
    before, after = load_model(zero_shot), load_model(loop["fitted"])
    assert before.classes_.tolist() == after.classes_.tolist()
    np.testing.assert_array_equal(before.base_weights_, after.base_weights_)
    assert not before.residual_.any() and after.residual_.any()
    output = tmp_path / "predictions.csv"
    assert run(capsys, "predict", zero_shot, loop["photos"] / "roll1", "--proba", "--output",
               output)[0] == 0
    written = output.read_bytes()
    status, _, err = run(capsys, "predict", loop["fitted"], loop["photos"], "--proba",
                         "--output", output)
    assert status == 2 and output.read_bytes() == written
    assert f"got rows of the model(s) ['{model_fingerprint(before)}']" in err
    assert model_fingerprint(before) != model_fingerprint(after)


@pytest.mark.auto_precision
def test_an_image_named_twice_has_one_row(loop, capsys, tmp_path):
    """An image given twice (its folder and itself) is predicted once into FILE."""
    output = tmp_path / "predictions.csv"
    roll = loop["photos"] / "roll1"
    status, _, err = run(capsys, "predict", loop["model"], roll, roll / "img0.png", "--output",
                         output)
    assert status == 0, err
    assert sorted(row["path"] for row in read_predictions(output)[1]) == image_paths(roll)


@pytest.mark.auto_precision
def test_a_model_whose_weights_moved_resumes_its_file(loop, capsys, tmp_path, tiny_checkpoint):
    """--pretrained FILE (the same weights, read from elsewhere) and --device resume the file."""
    output = tmp_path / "predictions.csv"
    assert run(capsys, "predict", loop["model"], loop["photos"] / "roll1", "--output",
               output)[0] == 0
    status, _, err = run(capsys, "predict", loop["model"], loop["photos"], "--output", output,
                         "--pretrained", tiny_checkpoint, "--device", "cpu")
    assert status == 3, err
    assert f"resuming {output}: {N_PER_CLASS} image(s) already there" in err
    assert len(read_predictions(output)[1]) == len(image_paths(loop["photos"]))


@pytest.mark.parametrize(
    "argv, match",
    [
        (["--output", "out.txt"], "expected a prediction file name ending in .csv, .jsonl"),
        (["--output", "out.csv", "--format", "json"], "expected --format for printed rows"),
    ],
)
def test_bad_output_options(loop, capsys, tmp_path, monkeypatch, argv, match):
    """An unknown suffix, or --format with --output, fails before any work (2)."""
    monkeypatch.chdir(tmp_path)
    status, _, err = run(capsys, "predict", loop["model"], loop["photos"], *argv)
    assert status == 2 and match in err
    assert not (tmp_path / "out.txt").exists() and not (tmp_path / "out.csv").exists()


@pytest.mark.auto_precision
def test_printed_rows_stream_as_jsonl(loop, capsys):
    """--format jsonl prints one object per image, the unreadable one with its error."""
    status, out, _ = run(capsys, "predict", loop["model"], loop["photos"], "--format",
                         "jsonl")
    rows = [json.loads(line) for line in out.splitlines()]
    assert status == 3 and len(rows) == len(image_paths(loop["photos"]))
    assert sum(row["error"] is not None for row in rows) == 1


def _command():
    """The installed sklearn-taskres command (python -m sklearn_taskres where it is not)."""
    script = Path(sys.executable).with_name("sklearn-taskres")
    return [str(script)] if script.exists() else [sys.executable, "-m", "sklearn_taskres"]


@pytest.mark.auto_precision
def test_sigkill_at_half_then_resume(loop, capsys, tmp_path):
    """Killed at about half of 2,000 images and rerun, predict holds each path once, as one run."""
    photos = tmp_path / "many"
    photos.mkdir()
    rng = np.random.RandomState(0)
    for index in range(2000):
        pixels = rng.randint(0, 256, (8, 8, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(photos / f"{index:04d}.png")
    for index in (7, 1000, 1999):  # three corrupt files among them
        (photos / f"{index:04d}.png").write_bytes(b"\x89PNG cut short")
    output = tmp_path / "predictions.csv"
    argv = ["predict", str(loop["model"]), str(photos), "--proba", "--output", str(output),
            "--batch-size", "50"]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TQDM_DISABLE="1")
    killed = subprocess.Popen(_command() + argv, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, env=env)
    # The uninterrupted run, in this process, while the other one works.
    expected = tmp_path / "uninterrupted.csv"
    status, _, _ = run(capsys, *argv[:-4], "--output", expected, "--batch-size", "50")
    assert status == 3
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and killed.poll() is None:
        if output.exists() and output.read_bytes().count(b"\n") > 1000:
            break
        time.sleep(0.02)
    assert killed.poll() is None, killed.stderr.read().decode()
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    n_before = output.read_bytes().count(b"\n") - 1
    assert 1000 <= n_before < 2000

    status, _, err = run(capsys, *argv)  # the rerun
    assert status == 3
    assert f"{n_before} image(s) already there, {2000 - n_before} to go" in err
    _, rows = read_predictions(output)
    _, reference = read_predictions(expected)
    assert len(rows) == len({row["path"] for row in rows}) == 2000
    assert sorted(rows, key=lambda row: row["path"]) == reference
    assert sorted(row["path"] for row in rows if row["error"]) == [
        str(photos / f"{index:04d}.png") for index in (7, 1000, 1999)]


# ---------------------------------------------------------------- review


@pytest.fixture(scope="module")
def predictions(loop, tmp_path_factory):
    """predict --proba --output of the photos, with a file named <script>.png among them."""
    root = tmp_path_factory.mktemp("review")
    photos = root / "photos"
    shutil.copytree(loop["photos"], photos)
    shutil.copy(photos / "roll2" / "img0.png", photos / "roll2" / "<script>.png")
    output = root / "predictions.csv"
    assert main(["predict", str(loop["fitted"]), str(photos), "--proba", "--output",
                 str(output)]) == 3
    return {"root": root, "photos": photos, "file": output}


@pytest.mark.auto_precision
def test_review_page_is_self_contained_and_escaped(predictions, capsys, tmp_path):
    """review writes thumbnails as data URIs, escapes file names and lists the bad file."""
    page = tmp_path / "report.html"
    status, _, err = run(capsys, "review", predictions["file"], "-o", page, "--next", "4",
                         "--per-class", "100")
    assert status == 0, err
    text = page.read_text()
    n_images = len(image_paths(predictions["photos"])) - 1
    assert text.count('src="data:image/jpeg;base64,') == n_images + 4
    assert "<script>" not in text and "&lt;script&gt;.png" in text
    assert "src=\"http" not in text and "<link" not in text  # nothing to fetch
    assert "broken.jpg" in text and "cannot decode the image file" in text
    assert "Label these next" in text and "Counts per class" in text
    _, rows = read_predictions(predictions["file"])
    for label in COLOURS:
        count = sum(row["label"] == label for row in rows)
        assert f'<td class="n">{count}</td>' in text


class _Captions(HTMLParser):
    """The text of every ``<span class="label">`` of a page, and the tags it opens."""

    def __init__(self):
        super().__init__()
        self.labels, self.tags, self._in_label = [], [], False

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self._in_label = tag == "span" and ("class", "label") in attrs
        if self._in_label:
            self.labels.append("")

    def handle_endtag(self, tag):
        self._in_label = False

    def handle_data(self, data):
        if self._in_label:
            self.labels[-1] += data


def test_review_page_shows_hostile_labels_as_text(capsys, tmp_path):
    """Labels come from folder and file names: the page shows <b>x</b> as text, never markup."""
    classes = ["<b>x</b>", 'say "hi" & <i>bye</i>']
    image = tmp_path / "a.png"
    Image.new("RGB", (8, 8), (200, 30, 30)).save(image)
    output = tmp_path / "p.csv"
    with open(output, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["path", "label", *(f"proba_{label}" for label in classes), "error",
                         "model"])
        writer.writerow([str(image), classes[0], 0.7, 0.3, "", "0123"])
        writer.writerow([str(image) + ".2", classes[1], 0.4, 0.6, "", "0123"])
    page = tmp_path / "review.html"
    status, _, err = run(capsys, "review", output, "-o", page, "--next", "2")
    assert status == 0, err
    text = page.read_text()
    parser = _Captions()
    parser.feed(text)
    assert not {"b", "i"} & set(parser.tags)
    # Two figures each ("label these next" and their class), a caption with their label.
    assert sorted(parser.labels) == sorted(classes * 2)
    assert "&lt;b&gt;x&lt;/b&gt;" in text


def test_review_orders_by_confidence_and_margin(predictions, capsys, tmp_path):
    """Classes show the least confident first; 'label these next' the smallest margins."""
    from sklearn_taskres.cli._review import confidence, review_page

    classes, rows = read_predictions(predictions["file"])
    text = review_page(classes, rows, n_next=3, per_class=2, thumbnail_size=16)
    assert text.count("<figure") == 3 + sum(
        min(2, sum(row["label"] == label for row in rows)) for label in classes)
    good = [row for row in rows if row["error"] is None]
    margins = sorted(good, key=lambda row: (confidence(row["proba"])[2], row["path"]))
    section = text.split('id="next"')[1].split("<h2")[0]
    positions = [section.index(f'title="{html.escape(row["path"])}"') for row in margins[:3]]
    assert positions == sorted(positions)
    for index, label in enumerate(classes):
        section = text.split(f'id="class-{index}"')[1].split("<h2")[0]
        least = sorted((confidence(row["proba"])[0], row["path"]) for row in good
                       if row["label"] == label)[:2]
        assert section.count("<figure") == len(least)
        positions = [section.index(f'title="{html.escape(path)}"') for _, path in least]
        assert positions == sorted(positions), label


def test_review_thumbnails_are_upright(capsys, tmp_path):
    """A photo stored sideways with EXIF orientation 6 shows upright on the review page."""
    upright = np.zeros((40, 60, 3), np.uint8)
    upright[:, :30], upright[:, 30:] = (220, 30, 30), (30, 60, 230)  # red left, blue right
    exif = Image.Exif()
    exif[0x0112] = 6  # a camera held upright stores the picture turned
    photo = tmp_path / "sideways.jpg"
    Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90).save(photo, exif=exif,
                                                                         quality=95)
    output = tmp_path / "p.csv"
    with open(output, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["path", "label", "proba_a", "proba_b", "error", "model"])
        writer.writerow([str(photo), "a", 0.9, 0.1, "", "0123"])
    page = tmp_path / "review.html"
    status, _, err = run(capsys, "review", output, "-o", page, "--next", "0",
                         "--thumbnail-size", "60")
    assert status == 0, err
    (uri,) = re.findall(r'src="data:image/jpeg;base64,([^"]+)"', page.read_text())
    shown = np.asarray(Image.open(io.BytesIO(base64.b64decode(uri))).convert("RGB"), int)
    assert shown.shape == (40, 60, 3)
    left, right = shown[:, :20].mean(axis=(0, 1)), shown[:, 40:].mean(axis=(0, 1))
    assert left[0] > 150 > left[2] and right[2] > 150 > right[0]


@pytest.mark.auto_precision
def test_review_needs_probabilities(loop, capsys, tmp_path):
    """review of a file without --proba is an input error (2)."""
    output = tmp_path / "labels.csv"
    run(capsys, "predict", loop["model"], loop["photos"] / "roll1", "--output", output)
    status, _, err = run(capsys, "review", output, "-o", tmp_path / "r.html")
    assert status == 2 and "expected predictions with probabilities" in err


def _chromium():
    return next((shutil.which(name) for name in ("chromium", "chromium-browser",
                                                  "google-chrome") if shutil.which(name)), None)


@pytest.mark.skipif(_chromium() is None, reason="needs headless Chromium")
def test_review_page_in_headless_chromium(predictions, capsys, tmp_path):
    """Chromium loads the page offline: every thumbnail decodes, the coloured photos show."""
    page = tmp_path / "report.html"
    assert run(capsys, "review", predictions["file"], "-o", page, "--next", "0")[0] == 0
    options = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
               "--no-first-run", "--disable-background-networking",
               "--disable-component-update", "--disable-sync",
               f"--user-data-dir={tmp_path / 'profile'}"]
    # The DOM as Chromium parsed it, then the page as it draws it.
    dom = subprocess.run(options + ["--dump-dom", page.as_uri()], capture_output=True,
                         text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr
    n_images = len(image_paths(predictions["photos"])) - 1
    assert dom.stdout.count('src="data:image/jpeg;base64,') == n_images
    screenshot = tmp_path / "page.png"
    shot = subprocess.run(options + [f"--screenshot={screenshot}", "--window-size=1000,1400",
                                     page.as_uri()], capture_output=True, text=True,
                          timeout=120)
    assert shot.returncode == 0 and screenshot.exists(), shot.stderr
    pixels = np.asarray(Image.open(screenshot).convert("RGB")).reshape(-1, 3).astype(int)
    for colour in COLOURS.values():  # the photos' colours reach the screen
        near = np.abs(pixels - colour).max(axis=1) < 40
        assert near.sum() > 500, colour


# ---------------------------------------------------------------- sort


def _digests(folder):
    return {path: hashlib.sha256(path.read_bytes()).hexdigest()
            for path in Path(folder).rglob("*") if path.is_file()}


@pytest.mark.auto_precision
def test_sort_copies_into_class_folders_and_fit_reads_them(loop, predictions, capsys,
                                                           tmp_path):
    """sort copies every readable image to DEST/<label>/; fit DEST learns on them."""
    before = _digests(predictions["photos"])
    dest = tmp_path / "sorted"
    status, out, err = run(capsys, "sort", predictions["file"], dest)
    assert status == 3  # broken.jpg is left out
    assert "left out" in err and "broken.jpg" in err
    assert _digests(predictions["photos"]) == before  # sources untouched
    _, rows = read_predictions(predictions["file"])
    good = [row for row in rows if row["error"] is None]
    copied = sorted(path for path in dest.rglob("*") if path.is_file())
    assert len(copied) == len(good)
    # img0.png of every roll lands in the same class folder: unique names, same bytes.
    for row in good:
        folder = dest / row["label"]
        matches = [path for path in folder.iterdir()
                   if path.read_bytes() == Path(row["path"]).read_bytes()]
        assert matches, row
    assert f"copied {len(good)} image(s)" in out

    status, out, _ = run(capsys, "sort", predictions["file"], dest)  # a rerun adds nothing
    assert status == 3
    assert out == f"copied 0 image(s) into {dest}/<label>/ ({len(good)} already there)\n"
    assert len([path for path in dest.rglob("*") if path.is_file()]) == len(good)

    model = tmp_path / "refit.skops"
    labels = {row["label"] for row in good} - {"_unknown"}  # fit leaves DEST/_unknown/ out
    status, _, err = run(capsys, "fit", dest, "-o", model, "--model-config", loop["config"],
                         "--pretrained", "none", "--device", "cpu", "--epochs", "2")
    assert status == 0, err
    assert load_model(model).classes_.tolist() == sorted(labels)


def test_sort_min_proba_and_link(predictions, capsys, tmp_path):
    """--min-proba sends unsure images to DEST-review/<label>/; --link makes symlinks."""
    _, rows = read_predictions(predictions["file"])
    good = [row for row in rows if row["error"] is None]
    threshold = float(np.median([max(row["proba"]) for row in good]))
    dest = tmp_path / "sorted"
    status, out, _ = run(capsys, "sort", predictions["file"], dest, "--min-proba", threshold,
                         "--link")
    assert status == 3
    review = tmp_path / "sorted-review"
    unsure = [row for row in good if max(row["proba"]) < threshold]
    links = [path for path in dest.rglob("*") if path.is_symlink()]
    parked = [path for path in review.rglob("*") if path.is_symlink()]
    assert len(parked) == len(unsure) > 0 and len(links) == len(good) - len(unsure)
    assert all(path.resolve().is_relative_to(predictions["photos"].resolve())
               for path in links + parked)
    assert out == (f"linked {len(good) - len(unsure)} image(s) into {dest}/<label>/ and "
                   f"{len(unsure)} image(s) below --min-proba {threshold} into "
                   f"{review}/<label>/\n")
    status, _, _ = run(capsys, "sort", predictions["file"], dest, "--min-proba", threshold,
                       "--link")  # a rerun links nothing again
    assert status == 3
    assert len([path for path in dest.rglob("*") if path.is_symlink()]) == len(links)
    assert len([path for path in review.rglob("*") if path.is_symlink()]) == len(parked)


def test_sort_never_replaces_a_file_of_the_same_name(capsys, tmp_path):
    """Two different photo.png of one class: both kept, as photo.png and photo-1.png."""
    photos = [tmp_path / "phone" / "photo.png", tmp_path / "camera" / "photo.png",
              tmp_path / "camera" / "other.png"]
    for seed, path in enumerate(photos):
        path.parent.mkdir(exist_ok=True)
        colour = np.random.RandomState(seed).randint(0, 256, 3)
        Image.new("RGB", (8, 8), tuple(int(c) for c in colour)).save(path)
    output = tmp_path / "p.csv"
    with open(output, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["path", "label", "error", "model"])
        for path in photos:
            writer.writerow([str(path), "cat", "", "0123"])
    dest = tmp_path / "sorted"
    for _ in range(2):
        status, out, err = run(capsys, "sort", output, dest)
        assert status == 0, err
        assert sorted(path.name for path in (dest / "cat").iterdir()) == [
            "other.png", "photo-1.png", "photo.png"]
        assert (dest / "cat" / "photo.png").read_bytes() == photos[0].read_bytes()
        assert (dest / "cat" / "photo-1.png").read_bytes() == photos[1].read_bytes()
        assert (dest / "cat" / "other.png").read_bytes() == photos[2].read_bytes()
    assert "copied 0 image(s)" in out and "(3 already there)" in out


@pytest.mark.parametrize("where", ["inside", "around", "review inside"])
def test_sort_refuses_a_destination_inside_the_sources(predictions, capsys, tmp_path, where):
    """A DEST inside (or around) a source folder, or a review folder inside DEST, is refused."""
    if where == "inside":
        argv = [predictions["photos"] / "roll1" / "sorted"]
        match = "expected DEST and the review folder outside the folders of the images"
    elif where == "around":
        argv = [predictions["photos"]]
        match = "expected DEST and the review folder not to hold the images"
    else:
        argv = [tmp_path / "sorted", "--review-dir", tmp_path / "sorted" / "unsure"]
        match = "expected --review-dir outside DEST"
    status, _, err = run(capsys, "sort", predictions["file"], *argv)
    assert status == 2 and match in err
    assert not (predictions["photos"] / "roll1" / "sorted").exists()
    assert not any((predictions["photos"] / colour).exists() for colour in COLOURS)
    assert not (tmp_path / "sorted").exists()


@pytest.mark.parametrize("label", ["../up", ".hidden", "a\\b", ".."])
def test_sort_refuses_labels_that_are_not_folder_names(capsys, tmp_path, label):
    """A label with a slash (or a leading dot, which fit skips) is no class folder: refused (2)."""
    image = tmp_path / "a.png"
    Image.new("RGB", (4, 4)).save(image)
    output = tmp_path / "p.csv"
    with open(output, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["path", "label", "error", "model"])
        writer.writerow([str(image), label, "", "0123"])
    status, _, err = run(capsys, "sort", output, tmp_path / "dest")
    assert status == 2 and "expected labels that can be folder names" in err
    assert not (tmp_path / "dest").exists()


# ---------------------------------------------------------------- the loop


@pytest.mark.auto_precision
def test_the_loop_from_names_to_class_folders(loop, capsys, tmp_path):
    """names -> zero-shot -> predict -> review -> label -> fit -> predict -> sort -> fit."""
    tiny = loop["tiny"]
    model = tmp_path / "zero_shot.skops"
    assert run(capsys, "zero-shot", "--classes", *COLOURS, "-o", model, *tiny)[0] == 0
    first = tmp_path / "first.jsonl"
    status, _, err = run(capsys, "predict", model, loop["photos"], "--proba", "--output", first)
    assert status == 3 and "broken.jpg" in err
    assert run(capsys, "review", first, "-o", tmp_path / "first.html", "--next", "3")[0] == 0
    assert "Label these next" in (tmp_path / "first.html").read_text()
    fitted = tmp_path / "fitted.skops"
    assert run(capsys, "fit", loop["labelled"], "-o", fitted, *tiny, "--epochs", "60",
               "--learning-rate", "0.05")[0] == 0
    second = tmp_path / "second.csv"
    assert run(capsys, "predict", fitted, loop["photos"], "--proba", "--output", second)[0] == 3
    _, rows = read_predictions(second)
    truth = {f"roll{seed}": name for seed, name in enumerate(COLOURS)}
    good = [row for row in rows if row["error"] is None]
    accuracy = np.mean([row["label"] == truth[Path(row["path"]).parent.name] for row in good])
    assert accuracy > 0.9
    assert run(capsys, "sort", second, tmp_path / "sorted")[0] == 3
    # Images the model takes for none of the classes (if any) go to sorted/_unknown/.
    assert sorted(entry.name for entry in (tmp_path / "sorted").iterdir()
                  if entry.name != "_unknown") == sorted(COLOURS)
    refit = tmp_path / "refit.skops"
    status, _, err = run(capsys, "fit", tmp_path / "sorted", "-o", refit, *tiny, "--epochs", "2")
    assert status == 0, err
    unknown = tmp_path / "sorted" / "_unknown"
    n_unknown = len(list(unknown.iterdir())) if unknown.is_dir() else 0
    assert f"on {12 - n_unknown} images of 3 classes" in err


def test_label_these_next_has_one_default(capsys):
    """review --next, its --help and review_page() agree: 12 images to label next."""
    import inspect

    from sklearn_taskres.cli import build_parser
    from sklearn_taskres.cli._review import review_page

    args = build_parser().parse_args(["review", "p.csv", "-o", "page.html"])
    assert args.next == inspect.signature(review_page).parameters["n_next"].default == 12
    assert main(["review", "--help"]) == 0
    assert "(default: 12, a round of labelling)" in " ".join(capsys.readouterr().out.split())


@pytest.mark.auto_precision
def test_fit_keeps_a_class_whose_folder_is_still_empty(loop, capsys, tmp_path):
    """An empty DIR/<class>/ is a class of the model (zero-shot row), with a warning naming it."""
    labelled = tmp_path / "labelled"
    shutil.copytree(loop["labelled"], labelled)
    (labelled / "purple").mkdir()
    model = tmp_path / "with-empty.skops"
    status, _, err = run(capsys, "fit", labelled, "-o", model, *loop["tiny"], "--epochs", "2")
    assert status == 0, err
    assert load_model(model).classes_.tolist() == sorted([*COLOURS, "purple"])
    assert "warning: class 'purple' has no labelled image" in err
