"""The command line's "none of these": fit with _none/, predict, sort, evaluate, review, errors."""

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sklearn_taskres import load_model
from sklearn_taskres._labels_log import LabelsLog
from sklearn_taskres.cli import main

KNOWN = range(5)
SHOTS, N_NONE, N_TEST = 4, 10, 80


def run(capsys, *argv):
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


def _save(pixels, folder, name):
    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(folder / name)
    return folder / name


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """labelled/0..4 (4 each) and labelled/_none (digits 5-9); test/<digit or _none>/."""
    from sklearn_taskres.testing import load_held_out_digits

    root = tmp_path_factory.mktemp("open_set")
    X, y = load_held_out_digits()
    rng = np.random.RandomState(0)
    labelled = root / "labelled"
    used = set()
    for digit in KNOWN:
        for index in rng.choice(np.flatnonzero(y == digit), SHOTS, replace=False):
            _save(X[index], labelled / str(digit), f"scan_{index:04d}.png")
            used.add(index)
    for index in rng.choice(np.flatnonzero(y >= 5), N_NONE, replace=False):
        _save(X[index], labelled / "_none", f"scan_{index:04d}.png")
        used.add(index)
    test = root / "test"
    for index in [i for i in range(len(y)) if i not in used][:N_TEST]:
        folder = str(y[index]) if y[index] < 5 else "_none"
        _save(X[index], test / folder, f"scan_{index:04d}.png")
    return {"root": root, "labelled": labelled, "test": test}


def _installed_command():
    script = Path(sys.executable).with_name("sklearn-taskres")
    if not script.exists():
        pytest.skip("the sklearn-taskres command is not installed (pip install -e .)")
    return str(script)


def _command(cwd, *argv):
    env = dict(os.environ, HF_HUB_OFFLINE="1", TQDM_DISABLE="1")
    return subprocess.run([_installed_command(), *map(str, argv)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_none_of_these_loop_from_a_shell(digits, tiny_digits_clip):
    """fit with _none/, predict --output, sort, evaluate and review, as installed commands."""
    root = digits["root"]
    model = ["--model", "TinyDigitsCLIP", "--device", "cpu"]
    fitted = _command(root, "fit", "labelled", "-o", "model.skops", *model)
    assert fitted.returncode == 0, fitted.stderr
    assert "10 image(s) of none of the classes left out of the training" in fitted.stderr
    classifier = load_model(root / "model.skops")
    assert classifier.classes_.tolist() == ["0", "1", "2", "3", "4"]  # _none is no class
    assert len(classifier.head_.none_features_) == N_NONE

    predicted = _command(root, "predict", "model.skops", "test", "--proba", "--output",
                         "predictions.csv")
    assert predicted.returncode == 0, predicted.stderr
    with open(root / "predictions.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == N_TEST
    scores = np.array([float(row["unknown_score"]) for row in rows])
    unknown = np.array([row["label"] == "_unknown" for row in rows])
    threshold = classifier.unknown_threshold_
    np.testing.assert_array_equal(unknown, scores > threshold)
    is_none = np.array(["/_none/" in row["path"] for row in rows])
    assert unknown[is_none].mean() > unknown[~is_none].mean()

    sorted_ = _command(root, "sort", "predictions.csv", "sorted")
    assert sorted_.returncode == 0, sorted_.stderr
    filed = sorted(path.name for path in (root / "sorted" / "_unknown").iterdir())
    assert filed == sorted(Path(row["path"]).name for row in rows if row["label"] == "_unknown")
    assert f"{unknown.sum()} of them taken for none of the classes" in sorted_.stderr
    again = _command(root, "sort", "predictions.csv", "sorted")  # a rerun copies nothing new
    assert again.returncode == 0, again.stderr
    assert len(list((root / "sorted" / "_unknown").iterdir())) == len(filed)

    evaluated = _command(root, "evaluate", "model.skops", "test", "--json")
    assert evaluated.returncode == 0, evaluated.stderr
    report = json.loads(evaluated.stdout)
    assert report["n_images"] == int((~is_none).sum())  # the accuracy is on the classes
    none_report = report["none_of_these"]
    assert none_report["n_none"] == int(is_none.sum())
    from sklearn.metrics import roc_auc_score

    assert none_report["auroc"] == pytest.approx(roc_auc_score(is_none, scores), abs=1e-3)
    assert none_report["auroc"] > 0.7
    text = _command(root, "evaluate", "model.skops", "test")
    assert "AUROC of unknown_score" in text.stdout and "FPR95" in text.stdout

    reviewed = _command(root, "review", "predictions.csv", "-o", "review.html")
    assert reviewed.returncode == 0, reviewed.stderr
    page = (root / "review.html").read_text()
    section = page.split("taken for none of the classes", 1)[1].split("<h2", 1)[0]
    shown = [name for name in (Path(row["path"]).name for row in sorted(
        (row for row in rows if row["label"] == "_unknown"),
        key=lambda row: (float(row["unknown_score"]), row["path"]))) if name in section]
    positions = [section.index(name) for name in shown]
    assert positions == sorted(positions) and shown  # the lowest scores, most doubtful, first


@pytest.mark.auto_precision
def test_fit_labels_file_none_rows_feed_the_score(digits, tiny_digits_clip, capsys, tmp_path):
    """fit --labels: the images whose last decision is none sharpen the score, no class."""
    labels = tmp_path / "labels.csv"
    log = LabelsLog(labels)
    for digit in KNOWN:
        for path in sorted((digits["labelled"] / str(digit)).iterdir()):
            log.append("label", path=str(path), label=str(digit))
    none = sorted((digits["labelled"] / "_none").iterdir())
    for path in none:
        log.append("none", path=str(path))
    log.append("label", path=str(none[0]), label="0")  # the last decision wins
    log.close()
    status, _, err = run(capsys, "fit", "--labels", labels, "-o", tmp_path / "m.skops",
                         "--model", "TinyDigitsCLIP", "--device", "cpu", "--epochs", "5")
    assert status == 0, err
    classifier = load_model(tmp_path / "m.skops")
    assert classifier.classes_.tolist() == ["0", "1", "2", "3", "4"]
    assert len(classifier.head_.none_features_) == N_NONE - 1


def test_labels_file_with_only_none_rows(tmp_path, capsys, digits):
    """A labels file whose decisions are all none is an error naming the file and the row."""
    labels = tmp_path / "labels.csv"
    log = LabelsLog(labels)
    log.append("class", label="cat", name="cat")
    for path in sorted((digits["labelled"] / "_none").iterdir())[:3]:
        log.append("none", path=str(path))
    log.close()
    status, _, err = run(capsys, "fit", "--labels", labels, "-o", tmp_path / "m.skops",
                         "--model", "TinyDigitsCLIP")
    assert status == 2
    assert (f"expected images labelled with a class in {str(labels)!r}; got only 'none of "
            "these' decisions (3, the first in record 3)") in err


@pytest.mark.parametrize("event", ["label", "class"])
@pytest.mark.parametrize("name", ["_none", "_unknown"])
def test_labels_file_with_none_as_a_class(tmp_path, capsys, digits, event, name):
    """_none or _unknown as a class of a labels file is an error naming the file and record."""
    labels = tmp_path / "labels.csv"
    log = LabelsLog(labels)
    image = str(sorted((digits["labelled"] / "0").iterdir())[0])
    log.append("label", path=image, label="0")
    log.append(event, path=image if event == "label" else "", label=name)
    log.close()
    status, _, err = run(capsys, "fit", "--labels", labels, "-o", tmp_path / "m.skops",
                         "--model", "TinyDigitsCLIP")
    assert status == 2
    assert (f"expected class labels in {str(labels)!r}; got {name!r} in record 3 ({event} "
            "row), which stands for images of none of the classes") in err


@pytest.mark.parametrize("name", ["_none", "_unknown"])
def test_classnames_file_naming_none(tmp_path, capsys, digits, name):
    """A classnames file giving _none or _unknown a name is an error naming the file and line."""
    names = tmp_path / "names.txt"
    names.write_text(f"0\tzero\n{name}\tnothing\n")
    status, _, err = run(capsys, "fit", digits["labelled"], "-o", tmp_path / "m.skops",
                         "--model", "TinyDigitsCLIP", "--classnames-file", names)
    assert status == 2
    assert (f"expected class folders on line 2 of {str(names)!r}; got {name!r}, which stands "
            "for images of none of the classes and is never a class") in err


def test_folder_with_images_only_in_none(tmp_path, capsys):
    """Class folders without images and a _none/ with some: the error says where they are."""
    for folder in ("a", "b"):
        (tmp_path / "data" / folder).mkdir(parents=True)
    _save(np.zeros((8, 8), np.uint8), tmp_path / "data" / "_none", "x.png")
    status, _, err = run(capsys, "fit", tmp_path / "data", "-o", tmp_path / "m.skops",
                         "--model", "TinyDigitsCLIP")
    assert status == 2
    assert "in the class folders of" in err
    assert "(only in " in err and "images of none of the classes)" in err


@pytest.mark.auto_precision
def test_fit_leaves_out_the_unknown_folder_of_sort(tmp_path, capsys, digits, tiny_digits_clip):
    """DEST/_unknown/ of sort is not a class when fit reads DEST again."""
    data = tmp_path / "sorted"
    for digit in ("0", "1"):
        for path in sorted((digits["labelled"] / digit).iterdir()):
            _save(np.asarray(Image.open(path)), data / digit, path.name)
    _save(np.zeros((8, 8), np.uint8), data / "_unknown", "x.png")
    status, _, err = run(capsys, "fit", data, "-o", tmp_path / "m.skops", "--model",
                         "TinyDigitsCLIP", "--device", "cpu", "--epochs", "2")
    assert status == 0, err
    assert f"{str(data / '_unknown')!r} left out" in err
    assert load_model(tmp_path / "m.skops").classes_.tolist() == ["0", "1"]


@pytest.mark.auto_precision
def test_predict_output_no_unknown_and_threshold(digits, tiny_digits_clip, capsys, tmp_path):
    """--no-unknown gives every image a class; --unknown-threshold moves the threshold."""
    model = tmp_path / "m.skops"
    assert run(capsys, "fit", digits["labelled"], "-o", model, "--model", "TinyDigitsCLIP",
               "--device", "cpu", "--epochs", "5")[0] == 0

    def labels(*options, name):
        output = tmp_path / name
        status, _, err = run(capsys, "predict", model, digits["test"], "--output", output,
                             *options)
        assert status == 0, err
        with open(output, newline="") as file:
            return [(row["label"], float(row["unknown_score"])) for row in csv.DictReader(file)]

    assert all(label != "_unknown" for label, _ in labels("--no-unknown", name="a.csv"))
    rows = labels("--unknown-threshold", "0", name="b.csv")
    assert [label == "_unknown" for label, _ in rows] == [score > 0 for _, score in rows]
    status, out, _ = run(capsys, "predict", model, digits["test"])  # printed: one class each
    assert status == 0 and "_unknown" not in out and "unknown_score" not in out
