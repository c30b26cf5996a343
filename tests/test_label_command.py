"""The command line around the labelling page: fit and sort from a labels file, fit's checks."""

import json

import numpy as np
import pytest
from PIL import Image

from sklearn_taskres import load_model
from sklearn_taskres._labels_log import LabelsLog
from sklearn_taskres.cli import main
from sklearn_taskres.testing import TINY_CLIP_CONFIG, TINY_CLIP_NAME

COLOURS = {"red": (220, 30, 30), "green": (30, 200, 40), "blue": (30, 60, 230)}


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """Photos, a labels file of a session on them, and the tiny model's options."""
    root = tmp_path_factory.mktemp("labelled")
    photos = root / "photos"
    photos.mkdir()
    rng = np.random.RandomState(0)
    paths = {}
    for name, colour in COLOURS.items():
        for index in range(8):
            pixels = np.clip(np.add(colour, rng.randint(-30, 31, (32, 32, 3))), 0, 255)
            path = photos / f"{name}_{index}.png"
            Image.fromarray(pixels.astype(np.uint8)).save(path)
            paths[path] = name
    log = LabelsLog(root / "labels.csv")
    for name in [*COLOURS, "gray"]:
        log.append("class", label=name, name=name)
    for path, name in paths.items():
        log.append("label", path=str(path), label=name)
    first = next(iter(paths))
    log.append("label", path=str(first), label="blue")  # changed...
    log.append("label", path=str(first), label="red")  # ...and changed back
    log.append("none", path=str(photos / "green_0.png"))
    log.append("undo", path=str(photos / "blue_7.png"))
    log.close()
    config = root / f"{TINY_CLIP_NAME}.json"
    config.write_text(json.dumps(TINY_CLIP_CONFIG))
    tiny = ["--model-config", str(config), "--pretrained", "none", "--device", "cpu"]
    return {"root": root, "photos": photos, "labels": root / "labels.csv", "tiny": tiny}


@pytest.mark.auto_precision
def test_fit_from_a_labels_file_takes_the_last_decision_of_every_image(labelled, capsys):
    """fit --labels: the session's classes, the last decision per image, 'none' left out."""
    output = labelled["root"] / "fitted.skops"
    status = main(["fit", "--labels", str(labelled["labels"]), "-o", str(output),
                   *labelled["tiny"], "--epochs", "20"])
    err = capsys.readouterr().err
    assert status == 0, err
    classifier = load_model(output)
    assert classifier.classes_.tolist() == [*COLOURS, "gray"]
    assert "fitted TaskRes on 22 images of 4 classes" in err
    assert "1 image(s) of none of the classes left out" in err


@pytest.mark.auto_precision
def test_fit_warns_about_a_class_without_a_labelled_image(labelled, capsys):
    """A class without a label gets a warning that says what happens to it."""
    output = labelled["root"] / "warned.skops"
    assert main(["fit", "--labels", str(labelled["labels"]), "-o", str(output),
                 *labelled["tiny"], "--epochs", "20"]) == 0
    err = capsys.readouterr().err
    assert "warning: class 'gray' has no labelled image" in err
    assert "pulls its images to the others" in err
    assert "class 'red' has no" not in err


@pytest.mark.auto_precision
def test_fit_prints_cross_validated_accuracy_against_zero_shot(labelled, capsys):
    """With enough labels, fit prints the cross-validated accuracy and zero-shot's."""
    output = labelled["root"] / "checked.skops"
    assert main(["fit", "--labels", str(labelled["labels"]), "-o", str(output),
                 *labelled["tiny"], "--epochs", "60", "--learning-rate", "0.05"]) == 0
    err = capsys.readouterr().err
    line = next(line for line in err.splitlines() if "cross-validated accuracy" in line)
    assert "on the 22 labelled images (5 folds)" in line and "zero-shot" in line
    # The tiny random CLIP knows no colour: the labels teach it (a learnable, easy task).
    accuracy = float(line.split("folds): ")[1].split(" ")[0])
    assert accuracy >= 0.9


@pytest.mark.auto_precision
def test_fit_says_when_there_are_too_few_labels_to_cross_validate(labelled, tmp_path, capsys):
    """Fewer than 20 labelled images: no cross-validated accuracy, and it says so."""
    folder = tmp_path / "few"
    for name in COLOURS:
        (folder / name).mkdir(parents=True)
        Image.fromarray(np.full((16, 16, 3), COLOURS[name], np.uint8)).save(
            folder / name / "a.png")
    assert main(["fit", str(folder), "-o", str(tmp_path / "m.skops"), *labelled["tiny"],
                 "--epochs", "5"]) == 0
    assert "fewer than 20 labelled images: no cross-validated accuracy" in (
        capsys.readouterr().err)


def test_fit_needs_a_folder_or_a_labels_file(labelled, tmp_path, capsys):
    """Neither or both: a usage error; a CSV of another kind is refused."""
    output = str(tmp_path / "m.skops")
    assert main(["fit", "-o", output, *labelled["tiny"]]) == 2
    assert "expected a labelled folder DIR or --labels LABELS.csv; got neither" in (
        capsys.readouterr().err)
    assert main(["fit", str(labelled["photos"]), "--labels", str(labelled["labels"]), "-o",
                 output, *labelled["tiny"]]) == 2
    assert "got both" in capsys.readouterr().err
    other = tmp_path / "predictions.csv"
    other.write_text("path,label,error\n")
    assert main(["fit", "--labels", str(other), "-o", output, *labelled["tiny"]]) == 2
    assert "expected --labels to be a labels file" in capsys.readouterr().err


def test_sort_takes_a_labels_file(labelled, tmp_path, capsys):
    """sort LABELS.csv DEST copies every labelled image to its class; 'none' ones stay put."""
    destination = tmp_path / "sorted"
    assert main(["sort", str(labelled["labels"]), str(destination)]) == 0
    captured = capsys.readouterr()
    assert "copied 22 image(s)" in captured.out
    assert "1 image(s) of none of the classes" in captured.err
    found = {path.parent.name: set() for path in destination.rglob("*.png")}
    for path in destination.rglob("*.png"):
        found[path.parent.name].add(path.name)
    assert sorted(found) == ["blue", "green", "red"]
    assert "green_0.png" not in found["green"] and "blue_7.png" not in found["blue"]
    assert "red_0.png" in found["red"]


def test_label_command_refuses_bad_input_before_serving(labelled, tmp_path, capsys):
    """No classes, two sources of classes, or a labels file of another kind: usage errors."""
    base = ["label", str(labelled["photos"]), "--labels", str(tmp_path / "l.csv"), "-o",
            str(tmp_path / "m.skops"), "--no-browser", *labelled["tiny"]]
    assert main(base) == 2
    assert "expected the classes" in capsys.readouterr().err
    assert main([*base, "--classes", "a", "b", "--from", "m.skops"]) == 2
    assert "got --classes and --from" in capsys.readouterr().err
    assert main([*base, "--classes", "a", "b", "--alpha", "-1"]) == 2
    assert "expected 'auto' or a number >= 0; got '-1'" in capsys.readouterr().err
    other = tmp_path / "other.csv"
    other.write_text("path,label\n/a.png,cat\n")
    argv = [*base, "--classes", "a", "b"]
    argv[3] = str(other)
    assert main(argv) == 2
    assert "which is not one. Nothing was changed" in capsys.readouterr().err
    assert other.read_text() == "path,label\n/a.png,cat\n"


def test_the_page_without_the_app_extra_names_the_extra(monkeypatch, labelled, tmp_path, capsys):
    """Without Starlette, importing the page (and the label command) says what to install."""
    import importlib
    import sys

    for name in [name for name in sys.modules if name.startswith("sklearn_taskres.label")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "starlette", None)
    with pytest.raises(ImportError, match=r'pip install "sklearn-taskres\[app\]"'):
        importlib.import_module("sklearn_taskres.label")
    status = main(["label", str(labelled["photos"]), "--classes", "a", "b", "--labels",
                   str(tmp_path / "l.csv"), "-o", str(tmp_path / "m.skops"), "--no-browser",
                   *labelled["tiny"]])
    assert status == 1
    assert 'pip install "sklearn-taskres[app]"' in capsys.readouterr().err
    assert not (tmp_path / "l.csv").exists()
