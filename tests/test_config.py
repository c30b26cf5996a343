"""Process-wide settings: the feature cache's bound and its float16 storage."""

import numpy as np
import pytest
import torch
from helpers import make_dataset, make_images

import sklearn_taskres
from sklearn_taskres import TaskResClassifier, config_context, get_config, set_config
from sklearn_taskres._clip import load_encoder
from sklearn_taskres._features import FEATURES, image_features

CLASSES = ["a", "b", "c"]


@pytest.fixture(autouse=True)
def default_config():
    """Every test starts from the default settings and an empty memory cache."""
    before = get_config()
    FEATURES.clear()
    yield
    set_config(**before)
    FEATURES.clear()


def classifier(tiny_model, **params):
    return TaskResClassifier(CLASSES, model=tiny_model, pretrained=None, max_iter=5,
                             device="cpu", random_state=0, **params)


@pytest.mark.parametrize(
    "settings, match",
    [
        (dict(feature_cache_bytes=-1), r"feature_cache_bytes to be an int >= 0; got -1"),
        (dict(feature_cache_bytes=1.5), r"feature_cache_bytes.*got 1.5"),
        (dict(feature_cache_bytes=True), r"feature_cache_bytes.*got True"),
        (dict(feature_cache_dtype="bfloat16"), r"feature_cache_dtype.*'float16'.*'bfloat16'"),
        (dict(feature_cache_dtype=np.float64), r"feature_cache_dtype.*float64"),
    ],
)
def test_bad_settings_are_named_and_change_nothing(settings, match):
    before = get_config()
    with pytest.raises(ValueError, match=match):
        set_config(**{"feature_cache_dtype": "float16", "feature_cache_bytes": 10, **settings})
    assert get_config() == before


def test_dtypes_may_be_given_as_numpy_types():
    set_config(feature_cache_dtype=np.float16)
    assert get_config()["feature_cache_dtype"] == "float16"


def test_config_context_restores_after_an_error():
    with pytest.raises(RuntimeError), config_context(feature_cache_bytes=123):
        assert get_config()["feature_cache_bytes"] == 123
        raise RuntimeError
    assert get_config()["feature_cache_bytes"] == 2 * 1024**3


def test_shrinking_the_bound_drops_the_least_recently_used(tiny_model, encoded_rows):
    encoder = load_encoder(tiny_model, None, torch.device("cpu"))
    images = make_images(4, seed=900)
    image_features(encoder, images)
    image_features(encoder, images[:1])  # the first image is now the most recent
    row_bytes = FEATURES.nbytes // len(FEATURES)
    set_config(feature_cache_bytes=2 * row_bytes)
    assert len(FEATURES) == 2 and FEATURES.nbytes <= 2 * row_bytes
    encoded_rows["rows"] = 0
    image_features(encoder, [images[0], images[3]])  # both kept
    assert encoded_rows["rows"] == 0
    image_features(encoder, images[1:2])  # dropped: encoded again
    assert encoded_rows["rows"] == 1
    set_config(feature_cache_bytes=0)
    assert len(FEATURES) == 0


@pytest.mark.auto_precision
def test_float16_halves_the_cache_and_stays_close(tiny_model):
    images, y = make_dataset(n_per_class=4, n_classes=3, seed=901)
    full = classifier(tiny_model).fit(images, y)
    full_bytes = FEATURES.nbytes
    FEATURES.clear()
    set_config(feature_cache_dtype="float16")
    half = classifier(tiny_model).fit(images, y)
    assert FEATURES.nbytes == full_bytes // 2
    assert all(value.dtype == np.float16 for value in FEATURES._entries.values())
    np.testing.assert_allclose(half.base_weights_, full.base_weights_, rtol=2e-3, atol=1e-4)
    np.testing.assert_allclose(half.predict_proba(images), full.predict_proba(images),
                               atol=1e-2)
    assert half.predict_proba(images).dtype == full.predict_proba(images).dtype


@pytest.mark.auto_precision
def test_float16_results_do_not_depend_on_what_was_cached_before(tiny_model, encoded_rows):
    """Rounded entries are kept apart: float32 entries are never served as float16 ones."""
    images, y = make_dataset(n_per_class=4, n_classes=3, seed=902)
    with config_context(feature_cache_dtype="float16"):
        fresh = classifier(tiny_model).fit(images, y)
        cached = classifier(tiny_model).fit(images, y)
    np.testing.assert_array_equal(cached.residual_, fresh.residual_)
    FEATURES.clear()
    full = classifier(tiny_model).fit(images, y)  # float32 entries in the cache
    encoded_rows["rows"] = 0
    with config_context(feature_cache_dtype="float16"):
        after_full = classifier(tiny_model).fit(images, y)
    assert encoded_rows["rows"] == len(images)
    np.testing.assert_array_equal(after_full.residual_, fresh.residual_)
    assert not np.array_equal(full.base_weights_, fresh.base_weights_)


@pytest.mark.auto_precision
def test_float16_on_disk_is_half_the_payload(tiny_model, tmp_path, encoded_rows):
    images, y = make_dataset(n_per_class=2, n_classes=3, seed=903)
    full_dir, half_dir = tmp_path / "full", tmp_path / "half"
    classifier(tiny_model, cache_dir=full_dir).fit(images, y)
    with config_context(feature_cache_dtype="float16"):
        first = classifier(tiny_model, cache_dir=half_dir).fit(images, y)
        FEATURES.clear()
        encoded_rows["rows"] = 0
        second = classifier(tiny_model, cache_dir=half_dir).fit(images, y)
    assert encoded_rows["rows"] == 0
    np.testing.assert_array_equal(second.residual_, first.residual_)
    header = 8  # of a shard's .dat; the rest is the vectors, back to back
    (full_data,) = full_dir.rglob("*.dat")
    (half_data,) = half_dir.rglob("*.dat")
    full_payload = full_data.stat().st_size - header
    assert full_payload > 0
    assert half_data.stat().st_size - header == full_payload // 2


def test_settings_are_public():
    for name in ("set_config", "get_config", "config_context", "clear_feature_cache"):
        assert name in sklearn_taskres.__all__
