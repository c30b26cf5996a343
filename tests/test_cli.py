"""Tests of the command line, ``sklearn-taskres`` / ``python -m sklearn_taskres``."""

import csv
import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import joblib
import numpy as np
import pytest
from PIL import Image
from sklearn.base import clone

from sklearn_taskres import TaskResClassifier, WeightsUnavailableError, load_model
from sklearn_taskres.cli import main
from sklearn_taskres.testing import TINY_CLIP_CONFIG, TINY_CLIP_NAME

COLOURS = {"green": (30, 200, 40), "light_blue": (150, 200, 250), "red": (220, 30, 30)}
FOLDERS = sorted(COLOURS)
N_PER_CLASS = 3


def _write_images(folder, colour, n, seed):
    rng = np.random.RandomState(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(n):
        pixels = np.clip(np.add(colour, rng.randint(-30, 31, (32, 32, 3))), 0, 255)
        # One upper-case suffix per class: suffixes match in any case.
        suffix = ".PNG" if index == 0 else ".png"
        Image.fromarray(pixels.astype(np.uint8)).save(folder / f"img{index}{suffix}", "PNG")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """A labelled image folder, the tiny model's config file and a model fitted on them."""
    root = tmp_path_factory.mktemp("cli")
    data = root / "data"
    for seed, (folder, colour) in enumerate(COLOURS.items()):
        _write_images(data / folder, colour, N_PER_CLASS, seed)
    # Files fit and predict must skip: not images, and macOS metadata that PIL cannot read.
    (data / "red" / "notes.txt").write_text("not an image")
    (data / "red" / "._img0.png").write_bytes(b"\x00\x05\x16\x07 not a png")
    (data / ".hidden").mkdir()
    config = root / f"{TINY_CLIP_NAME}.json"
    config.write_text(json.dumps(TINY_CLIP_CONFIG))
    model = root / "model.joblib"
    status = main(["--model-config", str(config), "fit", str(data), "-o", str(model),
                   "--pretrained", "none", "--device", "cpu", "--epochs", "3"])
    assert status == 0
    return {"root": root, "data": data, "config": str(config), "model": model}


@pytest.fixture
def tiny(workspace):
    """Options for the tiny random model on the CPU, --model-config after the command."""
    return ["--model-config", workspace["config"], "--pretrained", "none", "--device", "cpu"]


@pytest.fixture
def fast(tiny):
    """``tiny`` options and 3 epochs, for fit."""
    return [*tiny, "--epochs", "3"]


def run(capsys, *argv):
    """Run the command line in-process; return (exit status, stdout, stderr)."""
    status = main([str(arg) for arg in argv])
    out, err = capsys.readouterr()
    return status, out, err


def assert_error(err, match):
    """One ``sklearn-taskres: error:`` line that contains ``match``, and no traceback."""
    lines = err.strip().splitlines()
    assert "Traceback" not in err
    assert lines[-1].startswith("sklearn-taskres: error: "), err
    assert match in lines[-1], err


def image_folder(path, colours):
    """A labelled folder with two images of every {folder: colour}."""
    for seed, (folder, colour) in enumerate(colours.items()):
        _write_images(path / folder, colour, 2, seed)
    return path


# ---------------------------------------------------------------- fit, predict, evaluate


@pytest.mark.auto_precision
def test_fit_saves_a_classifier_of_the_folders(workspace):
    """fit labels classes by folder name and prompts with underscores as spaces."""
    classifier = joblib.load(workspace["model"])
    assert isinstance(classifier, TaskResClassifier)
    assert classifier.classes_.tolist() == FOLDERS
    assert classifier.classnames == {
        "green": "green", "light_blue": "light blue", "red": "red"
    }
    assert classifier.model == TINY_CLIP_NAME  # defaulted from --model-config
    assert classifier.n_iter_ == 3


@pytest.mark.auto_precision
def test_predict_csv_with_proba(workspace, capsys):
    """predict --proba prints one CSV row per image with probabilities summing to 1."""
    status, out, _ = run(capsys, "predict", workspace["model"], workspace["data"], "--proba",
                         "--model-config", workspace["config"])
    assert status == 0
    rows = list(csv.reader(io.StringIO(out)))
    assert rows[0] == ["path", "label"] + [f"proba_{folder}" for folder in FOLDERS] + ["error"]
    body = rows[1:]
    assert len(body) == len(FOLDERS) * N_PER_CLASS
    assert all(os.path.isfile(row[0]) and row[0].lower().endswith(".png") for row in body)
    assert {row[1] for row in body} <= set(FOLDERS)
    assert all(row[-1] == "" for row in body)
    proba = np.array([[float(value) for value in row[2:-1]] for row in body])
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert [FOLDERS[i] for i in proba.argmax(axis=1)] == [row[1] for row in body]


@pytest.mark.auto_precision
def test_predict_json_matches_the_estimator(workspace, capsys):
    """predict --format json gives the estimator's labels and probabilities per image."""
    image = workspace["data"] / "red" / "img1.png"
    status, out, _ = run(capsys, "predict", workspace["model"], image,
                         workspace["data"] / "green", "--proba", "--format", "json")
    assert status == 0
    rows = json.loads(out)
    assert rows[0]["path"] == str(image)
    assert len(rows) == 1 + N_PER_CLASS
    classifier = joblib.load(workspace["model"])
    expected = classifier.predict_proba([row["path"] for row in rows])
    assert [row["label"] for row in rows] == classifier.classes_.take(
        expected.argmax(axis=1)).tolist()
    for row, proba in zip(rows, expected, strict=True):
        assert list(row["proba"]) == FOLDERS
        assert sum(row["proba"].values()) == pytest.approx(1.0, abs=1e-5)
        np.testing.assert_allclose(list(row["proba"].values()), proba, rtol=1e-5)


@pytest.mark.auto_precision
def test_predict_csv_without_proba(workspace, capsys):
    """Without --proba, predict prints the path and label columns only."""
    status, out, _ = run(capsys, "predict", workspace["model"], workspace["data"] / "red")
    rows = list(csv.reader(io.StringIO(out)))
    assert status == 0
    assert rows[0] == ["path", "label", "error"]
    assert len(rows) == 1 + N_PER_CLASS and all(len(row) == 3 for row in rows)


@pytest.mark.auto_precision
def test_evaluate_reports_accuracy_and_confusion_matrix(workspace, capsys):
    """evaluate --json agrees with the estimator's score; the text report says the same."""
    status, out, _ = run(capsys, "evaluate", workspace["model"], workspace["data"], "--json")
    assert status == 0
    report = json.loads(out)
    classifier = joblib.load(workspace["model"])
    paths = [workspace["data"] / folder / f"img{i}{'.PNG' if i == 0 else '.png'}"
             for folder in FOLDERS for i in range(N_PER_CLASS)]
    labels = [folder for folder in FOLDERS for _ in range(N_PER_CLASS)]
    assert report["n_images"] == len(paths)
    assert report["accuracy"] == pytest.approx(classifier.score(paths, labels))
    matrix = np.array(report["confusion_matrix"])
    assert matrix.sum() == len(paths)
    assert matrix.trace() == round(report["accuracy"] * len(paths))
    assert [entry["n_images"] for entry in report["per_class"]] == [N_PER_CLASS] * 3

    status, text, _ = run(capsys, "evaluate", workspace["model"], workspace["data"])
    assert status == 0
    assert text.splitlines()[0].startswith(f"accuracy: {report['accuracy']:.4f} (")
    assert "confusion matrix" in text and "light_blue" in text


@pytest.mark.auto_precision
def test_zero_shot_is_the_text_classifier(workspace, capsys, tiny):
    """zero-shot evaluates CLIP's text classifier (alpha 0) and saves it with -o."""
    saved = workspace["root"] / "zero_shot.skops"
    status, out, err = run(capsys, "zero-shot", workspace["data"], "--json", "-o", saved, *tiny)
    assert status == 0, err
    report = json.loads(out)
    assert report["n_images"] == len(FOLDERS) * N_PER_CLASS
    classifier = load_model(saved)
    assert classifier.n_iter_ == 0 and not classifier.residual_.any()
    assert classifier.classnames["light_blue"] == "light blue"
    # Zero-shot logits are the cosine to the text base alone.
    paths = [str(workspace["data"] / "green" / f"img{i}.png") for i in (1, 2)]
    features = classifier._features(paths)
    base = classifier.base_weights_ / np.linalg.norm(classifier.base_weights_, axis=1,
                                                     keepdims=True)
    expected = classifier.classes_.take((features @ base.T).argmax(axis=1))
    assert classifier.predict(paths).tolist() == expected.tolist()

    status, again, _ = run(capsys, "evaluate", saved, workspace["data"], "--json")
    assert status == 0 and json.loads(again) == report


@pytest.fixture
def fit_calls(monkeypatch):
    """Records the images and labels of every TaskResClassifier.fit."""
    calls = []
    original_fit = TaskResClassifier.fit

    def recording_fit(self, X, y):
        calls.append((list(X), list(y)))
        return original_fit(self, X, y)

    monkeypatch.setattr(TaskResClassifier, "fit", recording_fit)
    return calls


@pytest.mark.auto_precision
def test_shots_draws_one_image_per_class(workspace, capsys, fit_calls, fast):
    """--shots 1 fits on one image of every class."""
    output = workspace["root"] / "one_shot.joblib"
    status, _, err = run(capsys, "fit", workspace["data"], "-o", output, "--shots", "1", *fast)
    assert status == 0
    [(X, y)] = fit_calls
    assert sorted(y) == FOLDERS
    assert [path.parent.name for path in X] == y
    assert "on 3 images of 3 classes" in err
    assert joblib.load(output).classes_.tolist() == FOLDERS


@pytest.mark.auto_precision
def test_shots_uses_each_image_once_when_a_class_has_fewer(workspace, capsys, fit_calls, fast):
    """A class with fewer images than --shots uses each of them once, with a note."""
    output = workspace["root"] / "five_shot.joblib"
    status, _, err = run(capsys, "fit", workspace["data"], "-o", output, "--shots", "5", *fast)
    assert status == 0
    [(X, _)] = fit_calls
    assert len(X) == len(set(X)) == len(FOLDERS) * N_PER_CLASS
    assert "fewer than --shots 5" in err


@pytest.mark.auto_precision
def test_skops_round_trip(workspace, capsys, fast):
    """fit -o MODEL.skops writes the pickle-free format; it predicts as the joblib model."""
    saved = workspace["root"] / "model.skops"
    status, _, _ = run(capsys, "fit", workspace["data"], "-o", saved, *fast)
    assert status == 0 and "schema.json" in zipfile.ZipFile(saved).namelist()
    assert load_model(saved).classes_.tolist() == FOLDERS

    outputs = []
    for model in (saved, workspace["model"]):
        status, out, _ = run(capsys, "predict", model, workspace["data"], "--proba",
                             "--format", "json")
        assert status == 0
        outputs.append(json.loads(out))
    assert [row["label"] for row in outputs[0]] == [row["label"] for row in outputs[1]]
    for a, b in zip(*outputs, strict=True):
        np.testing.assert_allclose(list(a["proba"].values()), list(b["proba"].values()),
                                   rtol=1e-5)


@pytest.mark.auto_precision
def test_format_skops_keeps_the_file_name(workspace, capsys, fast):
    """--format skops writes exactly the -o name, and predict reads it without pickle."""
    output = workspace["root"] / "model.bin"
    status, _, _ = run(capsys, "fit", workspace["data"], "-o", output, "--format", "skops",
                       *fast)
    assert status == 0 and output.is_file() and zipfile.is_zipfile(output)
    status, out, _ = run(capsys, "predict", output, workspace["data"] / "red")
    assert status == 0 and len(out.splitlines()) == 1 + N_PER_CLASS


@pytest.mark.auto_precision
def test_classnames_file_and_templates(workspace, capsys, tmp_path, fast):
    """--classnames-file renames listed folders only; --templates may repeat."""
    names = tmp_path / "names.tsv"
    names.write_text("# folder, name\nlight_blue\tsky blue\nred,crimson, deep\n\n")
    output = tmp_path / "named.joblib"
    status, _, err = run(capsys, "fit", workspace["data"], "-o", output, *fast,
                         "--classnames-file", names, "--templates", "a {} square.",
                         "--templates", "eurosat")
    assert status == 0, err
    classifier = joblib.load(output)
    assert classifier.classnames == {
        "green": "green", "light_blue": "sky blue", "red": "crimson, deep"
    }
    assert classifier.templates == ("a {} square.", "a centered satellite photo of {}.")


@pytest.mark.parametrize("command",
                         ["fit", "predict", "evaluate", "zero-shot", "review", "sort"])
def test_help_of_every_command(command, capsys):
    """--help of every command prints its usage and exits with 0."""
    status, out, _ = run(capsys, command, "--help")
    assert status == 0
    assert out.startswith(f"usage: sklearn-taskres {command}")
    assert "--model-config" in out


def test_help_without_command(capsys):
    """The top-level --help lists the commands and the exit statuses."""
    status, out, _ = run(capsys, "--help")
    assert status == 0
    assert all(command in out for command in ("fit", "predict", "evaluate", "zero-shot",
                                              "review", "sort", "cache"))
    assert "2 usage or input problem" in " ".join(out.split())


# ---------------------------------------------------------------- errors


def test_missing_directory(capsys, tmp_path):
    """A missing DIR is an input error (2), worded as such."""
    status, _, err = run(capsys, "fit", tmp_path / "nowhere", "-o", tmp_path / "m.joblib")
    assert status == 2
    assert_error(err, "which does not exist")


def test_missing_model_file(workspace, capsys, tmp_path):
    """A model file that does not exist is an input error (2)."""
    status, _, err = run(capsys, "predict", tmp_path / "missing.joblib", workspace["data"])
    assert status == 2
    assert_error(err, "expected a model file written by 'sklearn-taskres fit'; got")


def test_damaged_model_file(workspace, capsys, tmp_path):
    """A file that is not a model is an input error (2), and a .skops is never unpickled."""
    damaged = tmp_path / "model.skops"
    joblib.dump({"not": "a model"}, damaged)
    status, _, err = run(capsys, "evaluate", damaged, workspace["data"])
    assert status == 2
    assert_error(err, "cannot load the model file")


@pytest.mark.auto_precision
def test_unreadable_image(workspace, capsys, tmp_path):
    """An image that cannot be decoded gets a row with the reason; predict exits with 3."""
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"this is not a jpeg")
    good = workspace["data"] / "red" / "img1.png"
    status, out, err = run(capsys, "predict", workspace["model"], broken, good)
    assert status == 3
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [row["path"] for row in rows] == [str(broken), str(good)]
    assert rows[0]["label"] == "" and "cannot decode the image file" in rows[0]["error"]
    assert rows[1]["label"] in FOLDERS and rows[1]["error"] == ""
    assert f"cannot read {str(broken)!r}" in err and "1 image(s) could not be read" in err

    status, _, err = run(capsys, "evaluate", workspace["model"], image_folder(
        tmp_path / "data", {"red": (255, 0, 0), "green": (0, 255, 0)}))
    assert status == 0, err


@pytest.mark.auto_precision
def test_weights_unavailable(workspace, capsys, monkeypatch):
    """WeightsUnavailableError is a runtime failure (1); --debug raises it."""

    def unavailable(*args, **kwargs):
        raise WeightsUnavailableError("the pretrained weights 'openai' are not cached\nat all")

    monkeypatch.setattr("sklearn_taskres._classifier.load_encoder", unavailable)
    argv = ["fit", workspace["data"], "-o", workspace["root"] / "never.joblib", "--device",
            "cpu"]
    status, _, err = run(capsys, *argv)
    assert status == 1
    assert_error(err, "the pretrained weights 'openai' are not cached at all On the command "
                 "line: --pretrained /path/to/checkpoint.")
    with pytest.raises(WeightsUnavailableError, match="not cached"):
        main([str(arg) for arg in argv] + ["--debug"])


def test_fewer_than_two_classes(capsys, tmp_path):
    """A folder with one class folder is an input error (2)."""
    data = image_folder(tmp_path / "data", {"red": (255, 0, 0)})
    status, _, err = run(capsys, "zero-shot", data, "--pretrained", "none")
    assert status == 2
    assert_error(err, "expected at least 2 class folders")


def test_folder_without_images(capsys, tmp_path):
    """Class folders without any image file are an input error (2)."""
    for folder in ("a", "b"):
        (tmp_path / "data" / folder).mkdir(parents=True)
        (tmp_path / "data" / folder / "readme.txt").write_text("no images here")
    status, _, err = run(capsys, "fit", tmp_path / "data", "-o", tmp_path / "m.joblib")
    assert status == 2
    assert_error(err, "expected image files")


def test_predict_on_a_folder_without_images(workspace, capsys, tmp_path):
    """A PATH folder without images is an input error (2)."""
    status, _, err = run(capsys, "predict", workspace["model"], tmp_path)
    assert status == 2
    assert_error(err, f"in the folder {str(tmp_path)!r}; got none")


def test_evaluate_on_unknown_classes(workspace, capsys, tmp_path):
    """evaluate refuses class folders that are not labels of the model (2)."""
    data = image_folder(tmp_path / "data", {"red": (255, 0, 0), "purple": (128, 0, 128)})
    status, _, err = run(capsys, "evaluate", workspace["model"], data)
    assert status == 2
    assert_error(err, "got unknown folder(s) ['purple']")


def test_joblib_format_with_skops_name(workspace, capsys):
    """--format joblib with a .skops name fails before fitting (2)."""
    status, _, err = run(capsys, "fit", workspace["data"], "-o", workspace["root"] / "x.skops",
                         "--format", "joblib")
    assert status == 2
    assert_error(err, "without the .skops suffix for --format joblib")


def test_npz_is_no_longer_written(workspace, capsys):
    """-o MODEL.npz (the deprecated format of 0.1) fails before fitting (2), saying why."""
    status, _, err = run(capsys, "fit", workspace["data"], "-o", workspace["root"] / "x.npz")
    assert status == 2
    assert_error(err, "the .npz format of sklearn-taskres 0.1 is deprecated")


@pytest.mark.auto_precision
def test_a_model_saved_by_release_0_1_still_predicts(workspace, capsys, tiny_model):
    """predict reads a .npz of 0.1, warning how to convert it."""
    legacy = Path(__file__).parent / "data" / "classifier-0.1.npz"
    status, out, err = run(capsys, "predict", legacy, workspace["data"] / "red")
    assert status == 0, err
    assert len(out.splitlines()) == 1 + N_PER_CLASS
    assert "warning:" in err and "deprecated" in err and "save_model(load_model(" in err


@pytest.mark.parametrize(
    "content, match",
    [("red\n", "expected 'folder<TAB>display name'"), ("blue\tnavy\n", "unknown folder(s)")],
)
def test_bad_classnames_file(workspace, capsys, tmp_path, content, match):
    """A classnames file with a bad line or an unknown folder is an input error (2)."""
    names = tmp_path / "names.txt"
    names.write_text(content)
    status, _, err = run(capsys, "fit", workspace["data"], "-o", tmp_path / "m.joblib",
                         "--classnames-file", names)
    assert status == 2
    assert_error(err, match)


@pytest.mark.parametrize(
    "content, match",
    [(None, "which is not a file"), ("{not json", "to hold JSON"),
     ('{"embed_dim": 32}', "without vision_cfg, text_cfg")],
)
def test_bad_model_config(workspace, capsys, tmp_path, content, match):
    """A missing, malformed or incomplete --model-config is an input error (2)."""
    config = tmp_path / "Broken.json"
    if content is not None:
        config.write_text(content)
    status, _, err = run(capsys, "--model-config", config, "predict", workspace["model"],
                         workspace["data"])
    assert status == 2
    assert_error(err, match)


def test_usage_error(capsys):
    """An invalid option value is a usage error (2) from argparse."""
    status, _, err = run(capsys, "fit", "data", "-o", "m.joblib", "--shots", "0")
    assert status == 2
    assert "sklearn-taskres fit: error: argument --shots: expected an integer >= 1" in err


# ---------------------------------------------------------------- python -m sklearn_taskres


def test_python_m_runs_the_command_line(workspace):
    """python -m sklearn_taskres: --help, and predict with a custom model, in new processes."""
    env = dict(os.environ, HF_HUB_OFFLINE="1")
    command = [sys.executable, "-m", "sklearn_taskres"]
    # Both at once: most of each run is importing torch.
    runs = [
        subprocess.Popen(command + ["--help"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=env, text=True),
        # No --model-config: the model file carries the config registered at fit.
        subprocess.Popen(command + ["predict",
                                    str(workspace["model"]), str(workspace["data"] / "red"),
                                    "--format", "json", "--device", "cpu"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True),
        subprocess.Popen(command + ["evaluate", str(workspace["model"]), str(workspace["data"]),
                                    "--json", "--device", "cpu"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True),
    ]
    (help_out, _), (predict_out, predict_err), (evaluate_out, evaluate_err) = (
        run.communicate(timeout=120) for run in runs)
    assert runs[2].returncode == 0, evaluate_err
    assert 0 <= json.loads(evaluate_out)["accuracy"] <= 1
    assert runs[0].returncode == 0
    assert help_out.startswith("usage: sklearn-taskres")
    assert runs[1].returncode == 0, predict_err
    rows = json.loads(predict_out)
    assert len(rows) == N_PER_CLASS and {row["label"] for row in rows} <= set(FOLDERS)


def test_help_and_import_do_not_wait_for_torch():
    """`import sklearn_taskres` and `--help` import neither torch, scikit-learn nor ray."""
    code = (
        "import sys\n"
        "import sklearn_taskres\n"
        "from sklearn_taskres.cli import main\n"
        "assert main(['--help']) == 0 and main(['fit', '--help']) == 0\n"
        "heavy = sorted({'torch', 'sklearn', 'open_clip', 'ray'} & set(sys.modules))\n"
        "assert not heavy, heavy\n"
        "assert 'TaskResClassifier' in dir(sklearn_taskres)\n"
        "assert sklearn_taskres.TaskResClassifier.__name__ == 'TaskResClassifier'\n"
        "assert 'torch' in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert "usage: sklearn-taskres" in result.stdout


def test_unknown_attributes_of_the_package_are_named():
    import sklearn_taskres

    with pytest.raises(AttributeError, match="has no attribute 'TaskResClassifer'"):
        sklearn_taskres.TaskResClassifer  # noqa: B018


@pytest.mark.auto_precision
def test_fit_class_weight_balanced(capsys, tmp_path, workspace, tiny):
    """fit --class-weight balanced weighs an imbalanced folder as class_weight="balanced"."""
    data = image_folder(tmp_path / "data", {"blue": (20, 40, 230), "red": (220, 30, 30)})
    _write_images(data / "red", (200, 50, 40), 4, seed=7)  # red: 4 images, blue: 2
    output = tmp_path / "balanced.joblib"
    # At a fixed alpha: "auto" may keep zero-shot here, where no weight shows.
    status, _, _ = run(capsys, "fit", data, "-o", output, "--class-weight", "balanced",
                       *tiny, "--epochs", "5", "--alpha", "0.5")
    assert status == 0
    classifier = joblib.load(output)
    assert classifier.class_weight == "balanced"
    paths, labels = [], []
    for folder in ("blue", "red"):
        for path in sorted((data / folder).iterdir()):
            paths.append(path)
            labels.append(folder)
    expected = clone(classifier).fit(paths, labels)
    np.testing.assert_allclose(classifier.residual_, expected.residual_, rtol=1e-5, atol=1e-7)
    plain = clone(classifier).set_params(class_weight=None).fit(paths, labels)
    assert not np.allclose(classifier.residual_, plain.residual_, rtol=1e-3, atol=1e-6)
    status, _, err = run(capsys, "fit", data, "-o", output, "--class-weight", "equal", *tiny)
    assert status == 2 and "invalid choice: 'equal'" in err


@pytest.mark.auto_precision
@pytest.mark.parametrize(
    "sizes, shots, epochs, most",
    [({"red": 4, "blue": 2}, None, 100, 4), ({"red": 5, "blue": 2}, None, 200, 5),
     ({"red": 5, "blue": 5}, 4, 100, 4)],
)
def test_fit_without_epochs_follows_the_papers_schedule(capsys, tmp_path, tiny, sizes, shots,
                                                        epochs, most):
    """Without --epochs, fit trains 100 epochs up to 4 images per class, else 200, and says so."""
    data = tmp_path / "data"
    for seed, (folder, n) in enumerate(sizes.items()):
        _write_images(data / folder, COLOURS["red"] if folder == "red" else (20, 40, 230), n,
                      seed)
    output = tmp_path / "model.joblib"
    argv = ["fit", data, "-o", output, *tiny] + ([] if shots is None else ["--shots", shots])
    status, _, err = run(capsys, *argv)
    assert status == 0, err
    assert joblib.load(output).n_iter_ == epochs
    reason = "up to 4" if epochs == 100 else "above 4"
    assert (f"sklearn-taskres: training {epochs} epochs: the paper's schedule {reason} images "
            f"per class (the most in one class here: {most}) (--epochs sets another number)"
            ) in err.splitlines()
    assert f"({TINY_CLIP_NAME}, {epochs} epochs)" in err


# ---------------------------------------------------------------- the tiny digits CLIP by name


@pytest.fixture
def digit_folder(tmp_path):
    """Two labelled digits of every class, and their folder."""
    from sklearn_taskres.testing import load_held_out_digits

    X, y = load_held_out_digits()
    for digit in range(10):
        folder = tmp_path / "digits" / str(digit)
        folder.mkdir(parents=True)
        for index in np.flatnonzero(y == digit)[:2]:
            Image.fromarray(X[index]).save(folder / f"scan_{index:04d}.png")
    return tmp_path / "digits"


@pytest.mark.auto_precision
def test_tiny_digits_clip_by_name(capsys, tmp_path, tiny_digits_clip, digit_folder):
    """--model TinyDigitsCLIP needs no --pretrained nor config: its cached checkpoint is used."""
    from sklearn_taskres.cli import _common
    from sklearn_taskres.testing import TRAINED_TINY_CLIP_NAME

    assert _common.TRAINED_TINY_CLIP_NAME == TRAINED_TINY_CLIP_NAME
    model, checkpoint = tiny_digits_clip
    saved = tmp_path / "zero_shot.skops"
    status, _, err = run(capsys, "zero-shot", "--classes", *map(str, range(10)), "-o", saved,
                         "--model", model, "--device", "cpu", "--templates",
                         'a photo of the number: "{}".')
    assert status == 0, err
    assert "training TinyDigitsCLIP" not in err  # cached: no training
    classifier = load_model(saved)
    assert (classifier.model, classifier.pretrained) == (model, checkpoint)
    status, out, err = run(capsys, "evaluate", saved, digit_folder, "--json")
    assert status == 0, err
    assert json.loads(out)["accuracy"] >= 0.8  # it reads digits: not random weights

    fitted = tmp_path / "taskres.joblib"
    status, _, err = run(capsys, "fit", digit_folder, "-o", fitted, "--model", model,
                         "--device", "cpu", "--epochs", "5")
    assert status == 0, err
    assert joblib.load(fitted).pretrained == checkpoint

    # Weights moved: predict --pretrained auto finds the cached checkpoint again.
    moved = tmp_path / "moved.joblib"
    joblib.dump(joblib.load(fitted).set_params(pretrained=str(tmp_path / "gone.pt")), moved)
    assert run(capsys, "predict", moved, digit_folder / "3")[0] != 0
    status, out, err = run(capsys, "predict", moved, digit_folder / "3", "--pretrained", "auto")
    assert status == 0, err
    assert len(out.splitlines()) == 3


@pytest.mark.auto_precision
def test_tiny_digits_clip_trains_on_first_use(capsys, tmp_path, monkeypatch, tiny_digits_clip,
                                              digit_folder):
    """With an empty cache, --model TinyDigitsCLIP trains the model with a progress bar, once."""
    from safetensors.torch import load_file

    from sklearn_taskres import _tiny_digits

    trained = load_file(tiny_digits_clip[1])
    calls = []

    def train(recipe=_tiny_digits.RECIPE, verbose=0):
        calls.append(verbose)
        return trained

    monkeypatch.setattr(_tiny_digits, "train", train)
    monkeypatch.setenv("SKLEARN_TASKRES_CACHE_DIR", str(tmp_path / "cache"))
    argv = ["zero-shot", digit_folder, "--model", "TinyDigitsCLIP", "--device", "cpu"]
    status, _, err = run(capsys, *argv)
    assert status == 0, err
    assert calls == [1]  # verbose: the progress bar of the quickstart
    [checkpoint] = (tmp_path / "cache").glob("tiny-digits-clip-*.safetensors")
    assert (f"sklearn-taskres: training TinyDigitsCLIP, the tiny CLIP of scikit-learn's digits, "
            f"on first use (about a minute on a CPU); then cached as {str(checkpoint)!r}"
            ) in err.splitlines()
    status, _, err = run(capsys, *argv)
    assert status == 0 and calls == [1] and "training TinyDigitsCLIP" not in err


def test_tiny_digits_clip_name_taken_by_another_config(capsys, tmp_path):
    """A --model-config that registers another TinyDigitsCLIP is refused (2)."""
    from sklearn_taskres._clip import register_model_config
    from sklearn_taskres.testing import TRAINED_TINY_CLIP_CONFIG, TRAINED_TINY_CLIP_NAME

    config = tmp_path / f"{TRAINED_TINY_CLIP_NAME}.json"
    config.write_text(json.dumps(TINY_CLIP_CONFIG))
    try:
        status, _, err = run(capsys, "zero-shot", "--classes", "a", "b", "-o",
                             tmp_path / "m.skops", "--model-config", config, "--device", "cpu")
    finally:
        register_model_config(TRAINED_TINY_CLIP_NAME, TRAINED_TINY_CLIP_CONFIG)
    assert status == 2
    assert_error(err, "expected --model TinyDigitsCLIP to be the tiny digits CLIP")
    assert not (tmp_path / "m.skops").exists()
