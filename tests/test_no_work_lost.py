"""Long runs keep what they encoded: features are stored batch by batch as they are encoded."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import joblib
import numpy as np
import pytest
from helpers import make_dataset
from PIL import Image

from sklearn_taskres import TaskResClassifier, feature_store_info
from sklearn_taskres._clip import ClipEncoder
from sklearn_taskres._feature_store import forget_stores
from sklearn_taskres._features import FEATURES, IMAGE_BATCH_SIZE

CLASSES = ["a", "b", "c"]
BATCH = IMAGE_BATCH_SIZE["cpu"]


@pytest.fixture(autouse=True)
def empty_memory_cache():
    yield
    FEATURES.clear()
    forget_stores()


@pytest.fixture
def encoder_calls(monkeypatch):
    """Counts the batches and images that go through the image encoder."""
    counter = {"calls": 0, "rows": 0}
    encode = ClipEncoder.encode_images

    def counting(self, pixels):
        counter["calls"] += 1
        counter["rows"] += len(pixels)
        return encode(self, pixels)

    monkeypatch.setattr(ClipEncoder, "encode_images", counting)
    return counter


@pytest.fixture
def fitted(tiny_model):
    images, y = make_dataset(n_per_class=2, n_classes=3, seed=21)
    # What is kept and encoded again is the subject, not the arithmetic: one precision
    # on every CPU.
    return TaskResClassifier(CLASSES, model=tiny_model, pretrained=None, max_iter=2,
                             device="cpu", precision="fp32", random_state=0).fit(images, y)


def write_files(directory, n, seed=0):
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(seed)
    paths = []
    for index in range(n):
        path = directory / f"{index:04d}.png"
        Image.fromarray(rng.randint(0, 256, (24, 24, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


@pytest.mark.parametrize("with_store", [False, True])
def test_a_bad_file_last_of_600_costs_one_batch_on_the_rerun(fitted, tmp_path, encoder_calls,
                                                             with_store):
    """The error names the file; the rerun without it encodes only the unfinished batch."""
    paths = write_files(tmp_path / "images", 600)
    last = Path(paths[-1])
    last.write_bytes(last.read_bytes()[:40])  # truncated
    if with_store:
        fitted.set_params(cache_dir=str(tmp_path / "store"))
    FEATURES.clear()
    before = {name: value for name, value in vars(fitted).items()}
    with pytest.raises(ValueError, match=r"X\[599\]: cannot decode the image file .*0599\.png"):
        fitted.predict(paths)
    assert vars(fitted).keys() == before.keys()
    np.testing.assert_array_equal(fitted.residual_, before["residual_"])
    assert encoder_calls["rows"] == 600 - 600 % BATCH  # every full batch before the bad one
    if with_store:
        assert feature_store_info(tmp_path / "store")["n_vectors"] == encoder_calls["rows"]
        FEATURES.clear()  # the rerun as a new process: from the store alone
        forget_stores()
    encoder_calls.update(calls=0, rows=0)
    labels = fitted.predict(paths[:-1])
    assert encoder_calls["calls"] <= 2 and encoder_calls["rows"] == 599 - (600 - 600 % BATCH)
    FEATURES.clear()
    forget_stores()
    np.testing.assert_array_equal(fitted.set_params(cache_dir=None).predict(paths[:-1]), labels)


def test_a_bad_file_in_fit_leaves_the_estimator_unfitted_and_the_batches_before_it_kept(
        tiny_model, tmp_path, encoder_calls):
    paths = write_files(tmp_path / "images", 3 * BATCH + 1)
    (tmp_path / "images" / "bad.png").write_bytes(b"not an image")
    paths.insert(2 * BATCH + 5, str(tmp_path / "images" / "bad.png"))
    y = np.arange(len(paths)) % 3
    clf = TaskResClassifier(CLASSES, model=tiny_model, pretrained=None, max_iter=2,
                            device="cpu", precision="fp32", random_state=0)
    FEATURES.clear()
    with pytest.raises(ValueError, match=rf"X\[{2 * BATCH + 5}\]: .*bad\.png"):
        clf.fit(paths, y)
    assert not hasattr(clf, "residual_")
    assert encoder_calls["rows"] == 2 * BATCH
    encoder_calls.update(rows=0)
    del paths[2 * BATCH + 5]
    clf.fit(paths, np.arange(len(paths)) % 3)
    assert encoder_calls["rows"] == len(paths) - 2 * BATCH


def test_a_predict_killed_half_way_is_finished_by_the_next_process(fitted, tmp_path):
    """SIGKILL during predict with cache_dir: a new process encodes only what was not stored."""
    paths = write_files(tmp_path / "images", 12 * BATCH)
    model_path = tmp_path / "model.joblib"
    joblib.dump(fitted, model_path)
    store = tmp_path / "store"
    script = textwrap.dedent("""
        import sys, time, joblib
        from sklearn_taskres._clip import ClipEncoder
        encode = ClipEncoder.encode_images
        calls = {"rows": 0}

        def slowly(self, pixels):  # a slow encoder, so that the kill lands half way
            time.sleep(float(sys.argv[3]))
            calls["rows"] += len(pixels)
            return encode(self, pixels)

        ClipEncoder.encode_images = slowly
        clf = joblib.load(sys.argv[1]).set_params(cache_dir=sys.argv[2])
        paths = sys.stdin.read().split("\\n")
        labels = clf.predict(paths)
        print(calls["rows"])
        print(",".join(map(str, labels)))
    """)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}

    def run(delay, **options):
        return subprocess.Popen(
            [sys.executable, "-c", script, str(model_path), str(store), str(delay)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=env, **options)

    first = run(0.25)
    first.stdin.write("\n".join(paths))
    first.stdin.close()
    deadline = time.monotonic() + 120
    stored = 0
    while time.monotonic() < deadline:
        if store.exists():
            stored = feature_store_info(store)["n_vectors"]
            if stored >= 6 * BATCH:
                break
        assert first.poll() is None, first.stderr.read()
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=30)
    assert first.returncode == -signal.SIGKILL
    stored = feature_store_info(store)["n_vectors"]
    assert 6 * BATCH <= stored < 12 * BATCH

    second = run(0)
    rows, labels = second.communicate("\n".join(paths), timeout=300)[0].split()
    assert second.returncode == 0
    assert int(rows) == 12 * BATCH - stored  # only what the killed run had not stored
    expected = fitted.predict(paths)
    assert labels.split(",") == [str(label) for label in expected]
