"""The labelling guide's commands, run as printed from a shell, offline, one process each."""

import html
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
from doc_blocks import shell_blocks

from sklearn_taskres import load_model
from sklearn_taskres.cli import read_predictions
from sklearn_taskres.testing import load_held_out_digits

GUIDE = "docs/user_guide/labelling.rst"
N_SCANS = 100


def guide_commands():
    """The shell commands of the guide's ``bash`` blocks, in order.

    The section on the labelling page writes its commands in ``shell`` blocks:
    they wait for a person in a browser (tests/test_documented_commands.py runs
    them in Chromium).
    """
    return [command for found in shell_blocks(GUIDE) if found.language == "bash"
            for command in found.commands]


def test_the_guide_commands_are_found():
    """The parser sees every command of the guide, whole."""
    commands = guide_commands()
    assert commands[:3] == [
        'MODEL="--model TinyDigitsCLIP"',
        "PROMPT='a photo of the number: \"{}\".'   # the prompt the digits CLIP learnt",
        'python -c "from sklearn_taskres.testing import save_held_out_digits\n'
        "save_held_out_digits('photos', 100)\"    # photos/scan_0000.png ... scan_0099.png",
    ]
    subcommands = [command.split()[1] for command in commands
                   if command.startswith("sklearn-taskres")]
    assert subcommands == ["zero-shot", "predict", "review", "fit", "predict", "review", "sort",
                           "fit"]


def _installed_command():
    script = Path(sys.executable).with_name("sklearn-taskres")
    assert script.exists(), "the sklearn-taskres command is not installed: pip install -e ."
    return script


class Shell:
    """Runs each command in a new bash, in ``cwd``, with the variables set so far."""

    def __init__(self, cwd):
        script = _installed_command()
        self.cwd = cwd
        self.variables = []
        self.env = dict(os.environ, HF_HUB_OFFLINE="1", TQDM_DISABLE="1",
                        PATH=os.pathsep.join([str(script.parent), os.environ["PATH"]]))

    def __call__(self, command):
        if re.fullmatch(r"[A-Z_]+=\S.*", command):
            self.variables.append(command)
            return None
        result = subprocess.run(["bash", "-c", "\n".join([*self.variables, command])],
                                cwd=self.cwd, env=self.env, capture_output=True, text=True,
                                timeout=300)
        return result


def label_these_next(page):
    """The file names that the review page lists under "label these next"."""
    section = page.split('<h2 id="next">', 1)[1].split("<h2", 1)[0]
    return [Path(html.unescape(title)).name
            for title in re.findall(r'<figure title="([^"]*)"', section)]


def test_the_guide_runs_from_a_shell(tmp_path, tiny_digits_clip):
    """Every command of the labelling guide, as printed, in order, says what it did."""
    _, truth = load_held_out_digits()
    truth = {f"scan_{index:04d}.png": str(digit) for index, digit in enumerate(truth[:N_SCANS])}
    shell = Shell(tmp_path)
    commands = iter(guide_commands())

    def step(expected_status):
        command = next(commands)
        while (result := shell(command)) is None:  # a variable: kept for the next ones
            command = next(commands)
        assert result.returncode == expected_status, (command, result.stderr)
        return command, result.stdout, result.stderr

    def accuracy(predictions):
        _, rows = read_predictions(tmp_path / predictions)
        scans = [row for row in rows if row["error"] is None]
        return np.mean([row["label"] == truth[Path(row["path"]).name] for row in scans])

    # The folder: 300 digit scans, and a file that is not an image.
    step(0)
    assert sorted(path.name for path in (tmp_path / "photos").iterdir()) == sorted(truth)
    step(0)
    assert (tmp_path / "photos" / "scan_broken.jpg").is_file()

    # 1. zero-shot from the names, with the cached digits CLIP.
    _, _, err = step(0)
    assert "saved the zero-shot classifier of 10 classes to zero_shot.skops" in err
    assert "training TinyDigitsCLIP" not in err
    assert load_model(tmp_path / "zero_shot.skops").pretrained == tiny_digits_clip[1]

    # 2. predict: the broken file is named once, the status is 3; a rerun has nothing to do.
    predict, _, err = step(3)
    _, rows = read_predictions(tmp_path / "predictions.csv")
    assert len(rows) == N_SCANS + 1
    assert ("sklearn-taskres: cannot read 'photos/scan_broken.jpg': cannot decode the image "
            "file: cannot identify image file") in err.splitlines()
    assert err.count("scan_broken.jpg") == 1
    assert "1 image(s) could not be read" in err
    zero_shot_accuracy = accuracy("predictions.csv")
    assert zero_shot_accuracy > 0.6
    rerun = shell(predict)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{N_SCANS + 1} image(s) already there, 0 to go" in rerun.stderr
    assert "1 image(s) that an earlier run could not read" in rerun.stderr

    # 3. review: 12 images to label next, by default.
    _, _, err = step(0)
    assert f"{N_SCANS} image(s) in 10 classes, 1 unreadable" in err
    suggested = label_these_next((tmp_path / "review.html").read_text(encoding="utf-8"))
    assert len(suggested) == len(set(suggested)) == 12

    # 4. The person's step: the suggested images into labelled/<digit>/; then fit.
    for digit in range(10):
        (tmp_path / "labelled" / str(digit)).mkdir(parents=True)
    for name in suggested:
        shutil.copy(tmp_path / "photos" / name, tmp_path / "labelled" / truth[name] / name)
    most = max(list(map(truth.get, suggested)).count(str(digit)) for digit in range(10))
    _, _, err = step(0)
    epochs = 100 if most <= 4 else 200
    assert f"training {epochs} epochs: the paper's schedule" in err
    assert f"fitted TaskRes on 12 images of 10 classes (TinyDigitsCLIP, {epochs} epochs)" in err

    # 5. predict with the fitted model (a new process loads it), review, sort.
    _, _, err = step(3)
    assert "1 image(s) could not be read" in err
    assert accuracy("predictions-2.csv") > 0.6
    _, _, err = step(0)
    assert (tmp_path / "review-2.html").is_file()
    _, out, err = step(3)  # the broken file is left out
    _, rows = read_predictions(tmp_path / "predictions-2.csv")
    confident = sum(row["error"] is None and max(row["proba"]) >= 0.6 for row in rows)
    placed = len(list((tmp_path / "sorted").rglob("*.png")))
    parked = len(list((tmp_path / "sorted-review").rglob("*.png")))
    assert (placed, placed + parked) == (confident, N_SCANS)
    assert out == (f"copied {placed} image(s) into sorted/<label>/ and {parked} image(s) below "
                   "--min-proba 0.6 into sorted-review/<label>/\n")
    assert "left out 'photos/scan_broken.jpg'" in err

    # 6. fit on the sorted folders.
    _, _, err = step(0)
    assert f"fitted TaskRes on {placed} images of " in err
    assert load_model(tmp_path / "taskres-2.skops").n_iter_ in (100, 200)
    assert next(commands, None) is None
