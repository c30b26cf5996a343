"""Every shell block of README.md and the user guide, run as printed, offline.

Each command is a subprocess of the installed ``sklearn-taskres`` (or ``python``) in a new
bash, in a folder laid out as the page says. The default model (ViT-B-32 with OpenAI's
weights) loads from a local Hugging Face cache holding a random-initialised ViT-B-32 under
the name open_clip downloads, exactly as it would on a machine that fetched it once. A
``label`` command serves its page: the test reads the printed address, labels in the
system Chromium, and stops it with SIGINT, as Ctrl+C would. The blocks that install
(``pip install``, the README's two commands, the docs build) are run by ``.ci/run``,
which must hold them word for word.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from doc_blocks import ROOT, all_blocks, block
from helpers import cache_random_weights
from PIL import Image

from sklearn_taskres import load_model
from sklearn_taskres._labels_log import final_decisions, read_labels_log

LABELLING = "docs/user_guide/labelling.rst"
COMMAND_LINE = "docs/user_guide/command_line.rst"
# Shell blocks run by another test module, which reads them from the page itself.
RUN_BY_MODULE = {
    **{(LABELLING, index): "tests/test_labelling_guide.py" for index in range(7)},
    ("docs/user_guide/reproducing.rst", 0): "tests/test_reproducing_guide.py",
    ("docs/user_guide/tracking.rst", 1): "tests/test_mlflow.py",
    ("docs/user_guide/benchmarks.rst", 0): "tests/test_benchmarks.py",
}
# Shell blocks run here, by the test named.
RUN_HERE = {
    ("README.md", 0): "test_the_readme_runs_from_a_shell",
    ("README.md", 1): "test_the_readme_runs_from_a_shell",
    ("docs/index.rst", 0): "test_the_readme_runs_from_a_shell",
    (COMMAND_LINE, 0): "test_the_command_line_guide_runs_from_a_shell",
    (COMMAND_LINE, 1): "test_the_command_line_guide_runs_from_a_shell",
    (LABELLING, 7): "test_the_labelling_page_runs_from_a_shell",
    (LABELLING, 8): "test_the_labelling_page_runs_from_a_shell",
}
INSTALLS = re.compile(r"(python3 -m venv|\S*pip install)")
CLASSES = {"cat": (200, 120, 60), "dog": (90, 70, 50), "horse": (150, 110, 80)}


def ci_runs(command):
    """Whether .ci/run holds ``command`` (its comment aside) word for word."""
    command = re.sub(r"\s+#[^\"']*$", "", command)
    return command in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def installs(command):
    return INSTALLS.match(command) is not None


def test_every_shell_block_is_run_by_a_test_or_by_ci():
    """No documented block is left out: each is run here, by a named module, or by .ci/run."""
    unclaimed = []
    for found in all_blocks():
        key = (found.page, found.index)
        if key in RUN_HERE:
            assert RUN_HERE[key] in globals(), (str(found), RUN_HERE[key])
            continue
        if key in RUN_BY_MODULE:
            module = ROOT / RUN_BY_MODULE[key]
            assert module.is_file() and found.page in module.read_text(), (str(found), module)
            continue
        if not all(installs(command) and ci_runs(command) for command in found.commands):
            unclaimed.append(f"{found}: {found.text}")
    assert not unclaimed, "shell blocks that nothing runs:\n" + "\n".join(unclaimed)
    pages = {(found.page, found.index) for found in all_blocks()}
    assert set(RUN_HERE) | set(RUN_BY_MODULE) <= pages  # no claim outlives its block


def test_the_install_lines_of_run_blocks_are_run_by_ci():
    """An install line inside a block run here (the page's extra) is one .ci/run runs."""
    for key in RUN_HERE:
        for command in block(*key).commands:
            assert not installs(command) or ci_runs(command), command


def installed_command():
    script = Path(sys.executable).with_name("sklearn-taskres")
    assert script.exists(), "the sklearn-taskres command is not installed: pip install -e ."
    return script


def normalised(command):
    """A command without its comments and line breaks: the same command on two pages."""
    return " ".join(shlex_words(command))


def shlex_words(command):
    import shlex

    return shlex.split(command.replace("\\\n", " "), comments=True)


class Shell:
    """A folder and a bash per command, with the variables of the page set so far."""

    def __init__(self, cwd, **env):
        script = installed_command()
        self.cwd = cwd
        self.variables = []
        self.done = set()
        self.env = dict(os.environ, HF_HUB_OFFLINE="1", TQDM_DISABLE="1", BROWSER="true",
                        PATH=os.pathsep.join([str(script.parent), os.environ["PATH"]]), **env)

    def script(self, command):
        return "\n".join([*self.variables, command])

    def run(self, command, status=0):
        """Run ``command`` (once: a command a second page repeats is not run again)."""
        if re.fullmatch(r"[A-Z_]+=\S.*", command):
            self.variables.append(command)
            return None
        if normalised(command) in self.done:
            return None
        self.done.add(normalised(command))
        result = subprocess.run(["bash", "-c", self.script(command)], cwd=self.cwd,
                                env=self.env, capture_output=True, text=True, timeout=600)
        assert result.returncode == status, (command, result.stdout, result.stderr)
        return result

    def serve(self, command, drive):
        """Start a ``label`` command, let ``drive(url)`` use its page, stop it as Ctrl+C does."""
        self.done.add(normalised(command))
        process = subprocess.Popen(["bash", "-c", self.script(command)], cwd=self.cwd,
                                   env=self.env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            line = process.stdout.readline()
            match = re.search(r"http://127\.0\.0\.1:\d+/\?token=\S+", line)
            assert match, (command, line, process.stderr.read() if not line else "")
            drive(match.group(0))
        finally:
            os.killpg(process.pid, signal.SIGINT)  # Ctrl+C: the terminal's process group
            out, err = process.communicate(timeout=120)
        assert process.returncode == 0, (command, out, err)
        return err


def run_page(shell, commands, drive=None):
    """Run ``commands`` in order; a ``label`` command is served and driven by ``drive``."""
    outputs = []
    for command in commands:
        if installs(command):
            assert ci_runs(command), command
        elif command.startswith("sklearn-taskres label"):
            outputs.append(shell.serve(command, drive))
        else:
            outputs.append(shell.run(command))
    return outputs


def write_photos(folder, n_per_class, *, nested, seed=0):
    """Photos of the classes: in ``folder/<class>/`` when ``nested``, else all together."""
    rng = np.random.RandomState(seed)
    for name, colour in CLASSES.items():
        target = folder / name if nested else folder
        target.mkdir(parents=True, exist_ok=True)
        for index in range(n_per_class):
            pixels = np.clip(np.add(colour, rng.randint(-40, 41, (48, 64, 3))), 0, 255)
            Image.fromarray(pixels.astype(np.uint8)).save(target / f"{name}_{index}.jpg")


@pytest.fixture(scope="module")
def default_clip_cache(tmp_path_factory):
    """A Hugging Face cache holding a random ViT-B-32 where open_clip finds OpenAI's weights."""
    return cache_random_weights(tmp_path_factory.mktemp("hub"), "ViT-B-32", "openai")


@pytest.fixture(scope="module")
def browser():
    # A documented block is never skipped: without a browser, this fails and says why.
    from playwright import sync_api

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "the page blocks need the system Chromium: apt-get install chromium"
    sync_api.expect.set_options(timeout=30_000)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield browser
        browser.close()


class Person:
    """The labelling page in a browser tab, used with the keys as the guide says."""

    def __init__(self, browser, url, classes):
        from playwright.sync_api import expect

        self.expect = expect
        self.classes = list(classes)
        self.context = browser.new_context(viewport={"width": 1280, "height": 800})
        self.page = self.context.new_page()
        self.page.goto(url)
        self.shown()

    def shown(self):
        name = self.page.locator("#filename")
        self.expect(name).not_to_have_text("")
        return name.text_content()

    def key(self, key):
        before = self.shown()
        self.page.keyboard.press(key)
        self.expect(self.page.locator("#filename")).not_to_have_text(before)
        return before

    def label(self, truth):
        """Press the key of the shown image's class; return (name, class)."""
        name = self.shown()
        label = truth(name)
        position = self.classes.index(label)
        self.key(str(position + 1) if position < 9 else "0")  # keys 1-9, then 0
        return name, label

    def grid_once(self):
        """Open the grid, confirm its first class for all shown; return how many."""
        self.page.keyboard.press("g")
        figures = self.page.locator("#grid-images figure")
        self.expect(figures.first).to_be_visible()
        count = figures.count()
        label = self.page.locator("#grid-class").input_value()
        self.page.keyboard.press("Enter")
        self.page.keyboard.press("Escape")
        self.expect(self.page.locator("#single")).to_be_visible()
        return count, label

    def saved(self):
        """Wait until the page has nothing left to send."""
        self.expect(self.page.locator("#unsaved")).to_have_text(re.compile(r"^(0\D.*)?$"))

    def close(self):
        self.context.close()


def decisions(path):
    return {Path(image).name: label for image, label in final_decisions(
        read_labels_log(path)).items()}


@pytest.mark.auto_precision
def test_the_readme_runs_from_a_shell(tmp_path, default_clip_cache, browser):
    """README.md's loop and page with the default model, then the docs index's (the same)."""
    write_photos(tmp_path / "photos", 3, nested=False)
    write_photos(tmp_path / "labelled", 2, nested=True, seed=1)
    write_photos(tmp_path / "test_photos", 2, nested=True, seed=2)
    shell = Shell(tmp_path, HF_HUB_CACHE=str(default_clip_cache))
    results = run_page(shell, block("README.md", 0).commands)
    assert "saved the zero-shot classifier of 3 classes" in results[0].stderr
    for name in ("zero_shot.skops", "predictions.csv", "review.html", "taskres.skops",
                 "predictions-2.csv"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert load_model(tmp_path / "taskres.skops").model == "ViT-B-32"
    sorted_images = list((tmp_path / "sorted").rglob("*.jpg"))
    sorted_images += list((tmp_path / "sorted-review").rglob("*.jpg"))
    assert len(sorted_images) == 9
    assert "accuracy" in results[6].stdout + results[6].stderr
    n_vectors = int(re.search(r"(\d+) vector", results[7].stdout).group(1))
    assert n_vectors >= 9 + 6  # photos/ and labelled/, each image encoded once

    labelled = []

    def label_two(url):
        person = Person(browser, url, CLASSES)
        labelled.extend(person.label(lambda name: name.split("_")[0]) for _ in range(2))
        person.saved()
        person.close()

    err = run_page(shell, block("README.md", 1).commands, label_two)[0]
    assert "2 image(s) labelled" in err
    assert decisions(tmp_path / "labels.csv") == dict(labelled)
    assert load_model(tmp_path / "taskres.skops").classes_.tolist() == list(CLASSES)
    # The docs' index prints the README's commands: all run above, nothing new to run.
    index = [command for command in block("docs/index.rst", 0).commands
             if normalised(command) not in shell.done]
    assert index == []


@pytest.mark.auto_precision
def test_the_command_line_guide_runs_from_a_shell(tmp_path, default_clip_cache, browser):
    """The command line page's overview, with its page, then its feature store commands."""
    write_photos(tmp_path / "photos", 4, nested=True)
    write_photos(tmp_path / "new_photos", 1, nested=False, seed=1)
    write_photos(tmp_path / "test_photos", 2, nested=True, seed=2)
    shell = Shell(tmp_path, HF_HUB_CACHE=str(default_clip_cache))

    def label_and_undo(url):
        person = Person(browser, url, ["cat", "dog"])
        first = person.label(lambda name: "cat")
        person.key("Backspace")
        person.expect(person.page.locator("#filename")).to_have_text(first[0])
        person.label(lambda name: "dog")
        person.saved()
        person.close()

    outputs = run_page(shell, block(COMMAND_LINE, 0).commands, label_and_undo)
    assert "fitted TaskRes on 12 images of 3 classes" in outputs[0].stderr
    assert outputs[1].stdout.startswith("path,")  # --format csv: to the terminal
    assert len(outputs[1].stdout.splitlines()) == 1 + 3
    assert (tmp_path / "predictions.csv").is_file() and (tmp_path / "review.html").is_file()
    assert "accuracy" in outputs[3].stdout + outputs[3].stderr
    assert "1 image(s) labelled" in outputs[7]
    assert list(decisions(tmp_path / "labels.csv").values()) == ["dog"]
    assert len(list((tmp_path / "sorted").rglob("*.jpg"))) == 3
    assert int(re.search(r"(\d+) vector", outputs[-1].stdout).group(1)) >= 12 + 3
    cache = run_page(shell, block(COMMAND_LINE, 1).commands)
    assert cache[0] is None  # the overview's own cache info, run above
    assert '"n_damaged": 0' in cache[1].stdout
    assert cache[2].stdout.startswith("replaced ")
    assert cache[4].stdout.startswith("removed ")



@pytest.mark.auto_precision
def test_the_labelling_page_runs_from_a_shell(tmp_path, tiny_digits_clip, browser):
    """The guide's page block: keys, the grid once, undo; Ctrl+C; then fit and sort its labels."""
    from sklearn_taskres.testing import load_held_out_digits

    _, truth = load_held_out_digits()
    truth = {f"scan_{index:04d}.png": str(digit) for index, digit in enumerate(truth)}
    shell = Shell(tmp_path)
    for index in range(7):  # the guide's variables and its folder of scans
        for command in block(LABELLING, index).commands:
            if command.startswith(("MODEL=", "PROMPT=", "python -c")):
                shell.run(command)
    assert (tmp_path / "photos" / "scan_0000.png").is_file()
    made = {}

    def label_with_the_grid_and_undo(url):
        person = Person(browser, url, [str(digit) for digit in range(10)])
        labelled = [person.label(truth.get) for _ in range(5)]
        person.key("Backspace")
        assert person.shown() == labelled[-1][0]  # the undone image comes back first
        made.update([*labelled[:-1], person.label(truth.get)])
        count, label = person.grid_once()
        person.saved()
        grid = {name: value for name, value in decisions(tmp_path / "labels.csv").items()
                if name not in made}
        assert len(grid) == count and set(grid.values()) == {label}
        made.update(grid)
        made.update([person.label(truth.get) for _ in range(3)])
        person.saved()
        person.close()

    err = run_page(shell, block(LABELLING, 7).commands, label_with_the_grid_and_undo)[0]
    assert f"{len(made)} image(s) labelled" in err
    assert decisions(tmp_path / "labels.csv") == made
    model = load_model(tmp_path / "taskres.skops")
    assert model.classes_.tolist() == [str(digit) for digit in range(10)]
    fit, sort = run_page(shell, block(LABELLING, 8).commands)
    assert f"fitted TaskRes on {len(made)} images of 10 classes" in fit.stderr
    assert f"copied {len(made)} image(s)" in sort.stdout
    for name, label in made.items():
        assert (tmp_path / "sorted" / label / name).is_file()
