"""Bad input, failed fits and cache keys: clear errors, nothing lost, nothing stale."""

import numpy as np
import pytest
import torch
from helpers import make_dataset, make_images
from PIL import Image

from sklearn_taskres import TaskResClassifier, TaskResHead
from sklearn_taskres._clip import ClipEncoder, load_encoder
from sklearn_taskres._features import image_features


@pytest.fixture
def make_clf(tiny_model):
    def make(classnames=("red", "green", "blue"), **params):
        params = {"model": tiny_model, "pretrained": None, "max_iter": 5, "device": "cpu",
                  "random_state": 0, **params}
        return TaskResClassifier(list(classnames), **params)

    return make


@pytest.mark.parametrize("labels, match", [
    ([0, None, 1], r"got None at y\[1\]"),
    (["red", "green", None], r"got None at y\[2\]"),
    ([0.0, np.nan, np.nan], r"got nan at y\[1\] and 1 more missing"),
])
def test_missing_labels_are_named(make_clf, labels, match):
    with pytest.raises(ValueError, match=match):
        make_clf().fit(make_images(3, seed=500), np.array(labels, dtype=object)
                       if None in labels else labels)


def test_missing_labels_are_named_by_the_head():
    X = np.random.RandomState(0).normal(size=(3, 4))
    with pytest.raises(ValueError, match=r"got nan at y\[0\]"):
        TaskResHead(device="cpu").fit(X, [np.nan, 1.0, 0.0])


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_features_are_rejected(value):
    X = np.random.RandomState(0).normal(size=(4, 3))
    X[2, 1] = value
    with pytest.raises(ValueError, match="Input X contains"):
        TaskResHead(device="cpu").fit(X, [0, 1, 0, 1])


def test_base_weights_of_the_wrong_shape():
    X = np.random.RandomState(0).normal(size=(4, 3))
    with pytest.raises(ValueError, match="Expected 2D array"):
        TaskResHead(np.zeros(3), device="cpu").fit(X, [0, 1, 0, 1])


@pytest.mark.auto_precision
def test_failed_fit_on_a_corrupt_image_keeps_the_previous_model(make_clf, tmp_path):
    images, y = make_dataset(n_per_class=2, n_classes=3, seed=501)
    clf = make_clf().fit(images, y)
    residual, classes = clf.residual_.copy(), clf.classes_.copy()
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(ValueError, match=r"X\[4\]: cannot decode the image file.*broken.png"):
        clf.fit(images[:4] + [broken] + images[5:], y)
    np.testing.assert_array_equal(clf.residual_, residual)
    np.testing.assert_array_equal(clf.classes_, classes)


@pytest.mark.auto_precision
def test_mixed_kinds_in_one_list_are_the_same_images(make_clf, tmp_path):
    """Paths, PIL images and arrays may be mixed, at fit and at predict: same pixels, same
    predictions."""
    images, y = make_dataset(n_per_class=2, n_classes=3, seed=502)
    path = tmp_path / "0.png"
    Image.fromarray(images[0]).save(path)
    mixed = [path, Image.fromarray(images[1])] + images[2:]
    by_array = make_clf().fit(images, y)
    by_mixed = make_clf().fit(mixed, y)
    np.testing.assert_allclose(by_mixed.residual_, by_array.residual_, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(by_array.predict_proba(mixed), by_array.predict_proba(images),
                               rtol=1e-5)


def test_changing_the_weights_misses_the_cache(tiny_model, tmp_path, encoded_rows):
    """Keys include the weights: another checkpoint, or new bytes at the same path, re-encode."""
    from sklearn_taskres.testing import save_tiny_checkpoint

    images = make_images(3, seed=503)
    path = save_tiny_checkpoint(tmp_path / "w.pt", tiny_model)
    cpu = torch.device("cpu")
    first = image_features(load_encoder(tiny_model, str(path), cpu), images)
    image_features(load_encoder(tiny_model, str(path), cpu), images)
    assert encoded_rows["rows"] == 3
    state = torch.load(path)
    state["visual.proj"] = state["visual.proj"] * 2
    torch.save(state, path)
    second = image_features(load_encoder(tiny_model, str(path), cpu), images)
    assert encoded_rows["rows"] == 6
    np.testing.assert_allclose(second, 2 * first, rtol=1e-4, atol=1e-5)


def test_out_of_memory_halves_the_batch(tiny_model, monkeypatch):
    encoder = load_encoder(tiny_model, None, torch.device("cpu"))
    images = make_images(10, seed=504)
    expected = image_features(encoder, images)
    from sklearn_taskres._features import FEATURES

    FEATURES.clear()
    encode = ClipEncoder.encode_images
    sizes = []

    def small_gpu(self, pixels):
        sizes.append(len(pixels))
        if len(pixels) > 3:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory.")
        return encode(self, pixels)

    monkeypatch.setattr(ClipEncoder, "encode_images", small_gpu)
    with pytest.warns(ResourceWarning, match="retrying with batches of 5"):
        features = image_features(encoder, images)
    np.testing.assert_allclose(features, expected, rtol=1e-5, atol=1e-6)
    assert sizes[:3] == [10, 5, 2] and max(sizes[3:]) <= 2


def test_out_of_memory_on_one_image_gives_up_clearly(tiny_model, monkeypatch):
    encoder = load_encoder(tiny_model, None, torch.device("cpu"))

    def no_gpu(self, pixels):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory.")

    monkeypatch.setattr(ClipEncoder, "encode_images", no_gpu)
    with pytest.warns(ResourceWarning), pytest.raises(MemoryError, match="a single image"):
        image_features(encoder, make_images(2, seed=505))
