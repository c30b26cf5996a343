"""Tracked and served with MLflow: its skops format, pyfunc, and its model server for real.

The serving test starts the command of docs/user_guide/tracking.rst, read from the page.
"""

import base64
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from helpers import make_dataset
from PIL import Image

from sklearn_taskres import SKOPS_TRUSTED_TYPES, TaskResClassifier

mlflow = pytest.importorskip("mlflow")
pd = pytest.importorskip("pandas")

PAGE = Path(__file__).resolve().parents[1] / "docs" / "user_guide" / "tracking.rst"
NAMES = ["red", "green", "blue"]
SERVER_START_SECONDS = 180


def page_blocks(language, path=PAGE):
    """The text of every ``.. code-block:: <language>`` of the page, in order."""
    blocks, block = [], None
    for line in path.read_text(encoding="utf-8").splitlines() + [""]:
        if line.strip() == f".. code-block:: {language}":
            block = []
            blocks.append(block)
            continue
        if block is None:
            continue
        if line and not line.startswith("   "):  # the block ends at the next paragraph
            block = None
            continue
        block.append(line[3:])
    return ["\n".join(block).strip() for block in blocks]


@pytest.fixture(scope="module")
def fitted(tiny_model, tiny_checkpoint, tmp_path_factory):
    """A classifier on the tiny CLIP loaded from a checkpoint file, and its PNG files."""
    folder = tmp_path_factory.mktemp("images")
    images, y = make_dataset(n_per_class=4, n_classes=3, seed=0)
    paths = []
    for index, image in enumerate(images):
        paths.append(str(folder / f"{index}.png"))
        Image.fromarray(image).save(paths[-1])
    clf = TaskResClassifier(NAMES, model=tiny_model, pretrained=str(tiny_checkpoint),
                            max_iter=30, learning_rate=1e-2, device="cpu", precision="fp32",
                            random_state=0).fit(paths, np.asarray(NAMES)[y])
    assert len(set(clf.predict(paths))) > 1  # the comparisons below can tell models apart
    return clf, paths


@pytest.fixture
def tracking(tmp_path):
    """A tracking store and artifacts in local files under tmp_path, set back afterwards."""
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")
    try:
        experiment = mlflow.create_experiment(
            "taskres", artifact_location=(tmp_path / "artifacts").as_uri())
        yield experiment
    finally:
        mlflow.set_tracking_uri(previous)


def test_logged_in_skops_format_pyfunc_predicts_as_the_original(fitted, tracking):
    """log_model with serialization_format="skops" and SKOPS_TRUSTED_TYPES round-trips."""
    clf, paths = fitted
    with mlflow.start_run(experiment_id=tracking):
        info = mlflow.sklearn.log_model(
            clf, name="taskres", serialization_format="skops",
            skops_trusted_types=SKOPS_TRUSTED_TYPES, pip_requirements=["sklearn-taskres"],
            input_example=pd.DataFrame({"image": paths[:2]}))
    assert info.flavors["sklearn"]["serialization_format"] == "skops"
    model = mlflow.pyfunc.load_model(info.model_uri)
    np.testing.assert_array_equal(model.predict(pd.DataFrame({"image": paths})),
                                  clf.predict(paths))
    loaded = mlflow.sklearn.load_model(info.model_uri)
    assert type(loaded) is TaskResClassifier
    np.testing.assert_array_equal(loaded.predict_proba(paths), clf.predict_proba(paths))


def test_without_the_trusted_types_mlflow_names_them(fitted, tmp_path):
    """The two types that the docs say MLflow asks for are the ones it asks for."""
    clf, _ = fitted
    listed = ", ".join(repr(name) for name in SKOPS_TRUSTED_TYPES)
    with pytest.raises(mlflow.exceptions.MlflowException,
                       match=re.escape(f"Untrusted types found in the file: [{listed}]")):
        mlflow.sklearn.save_model(clf, tmp_path / "model", serialization_format="skops",
                                  pip_requirements=["sklearn-taskres"])


def _free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serve_command():
    """The page's ``mlflow models serve`` command, as words, with a free port for its -p."""
    (command,) = [block for block in page_blocks("shell") if "mlflow models serve" in block]
    words = shlex.split(command)
    words[words.index("-p") + 1] = str(_free_port())
    return words


class Server:
    """The URL of a running model server, and a way to POST JSON to it."""

    def __init__(self, url, log):
        self.url, self.log = url, log

    def post(self, body):
        request = urllib.request.Request(
            f"{self.url}/invocations", json.dumps(body).encode(),
            {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=120) as answer:
                return answer.status, json.load(answer)
        except urllib.error.HTTPError as error:
            return error.code, json.load(error)


@pytest.fixture(scope="module")
def served(fitted, tmp_path_factory):
    """The page's serve command running on the page's model folder; killed in every case."""
    clf, paths = fitted
    cwd = tmp_path_factory.mktemp("serving")
    words = serve_command()
    # As the page saves it: the input example gives the signature, one string column "image".
    mlflow.sklearn.save_model(
        clf, cwd / words[words.index("-m") + 1], serialization_format="skops",
        skops_trusted_types=SKOPS_TRUSTED_TYPES, pip_requirements=["sklearn-taskres"],
        input_example=pd.DataFrame({"image": paths[:2]}))
    env = dict(os.environ, HF_HUB_OFFLINE="1",
               PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    log = cwd / "server.log"
    url = f"http://{words[words.index('-h') + 1]}:{words[words.index('-p') + 1]}"
    with open(log, "wb") as output:
        process = subprocess.Popen(words, cwd=cwd, env=env, stdout=output,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + SERVER_START_SECONDS
        while True:
            if process.poll() is not None:
                pytest.fail(f"the server exited with {process.returncode}:\n{log.read_text()}")
            try:
                with urllib.request.urlopen(f"{url}/ping", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"no answer from {url} in {SERVER_START_SECONDS} s:\n"
                                f"{log.read_text()}")
                time.sleep(0.5)
        yield Server(url, log)
    finally:
        for signal_number, wait in ((signal.SIGTERM, 15), (signal.SIGKILL, 15)):
            try:
                os.killpg(process.pid, signal_number)  # mlflow and the uvicorn it starts
                process.wait(wait)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue


def _rows(items):
    return {"dataframe_split": {"columns": ["image"], "data": [[item] for item in items]}}


def _base64(path):
    return base64.b64encode(Path(path).read_bytes()).decode()


@pytest.mark.slow
def test_the_server_predicts_paths_and_base64_as_predict_does(fitted, served):
    """dataframe_split with paths, then with the files in base64, gives clf.predict."""
    clf, paths = fitted
    (documented,) = (json.loads(block) for block in page_blocks("json"))
    body = _rows(paths)
    assert documented.keys() == body.keys()
    assert documented["dataframe_split"]["columns"] == body["dataframe_split"]["columns"]
    expected = clf.predict(paths).tolist()
    assert served.post(body) == (200, {"predictions": expected})
    assert served.post(_rows([_base64(path) for path in paths])) == (
        200, {"predictions": expected})


@pytest.mark.slow
def test_a_bad_row_is_a_400_naming_it_and_the_server_goes_on(fitted, served, tmp_path):
    """A missing file, a corrupt image, a wrong column: the row and reason; then it serves."""
    clf, paths = fitted
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    truncated = base64.b64encode(Path(paths[0]).read_bytes()[:100]).decode()
    bad = [
        (_rows([paths[0], str(tmp_path / "gone.png")]),
         r"FileNotFoundError: X\[1\]: no such image file: '.*gone\.png'"),
        (_rows([str(broken), paths[0]]),
         r"ValueError: X\[0\]: cannot decode the image file '.*broken\.png'"),
        (_rows([paths[0], paths[1], truncated]),
         r"ValueError: X\[2\]: cannot decode the image bytes \(100 bytes"),
        ({"dataframe_split": {"columns": ["photo"], "data": [[paths[0]]]}},
         r"Model is missing inputs \['image'\]"),
    ]
    for body, reason in bad:
        status, answer = served.post(body)
        assert status == 400, answer
        assert re.search(reason, answer.get("stack_trace") or answer["message"]), answer
        assert served.post(_rows(paths[:2])) == (
            200, {"predictions": clf.predict(paths[:2]).tolist()})
