"""A fitted or unfitted classifier works in any process: custom model configs travel with it."""

import copy
import pickle

import numpy as np
import open_clip
import pytest
from helpers import make_dataset
from sklearn.model_selection import GridSearchCV

from sklearn_taskres import TaskResClassifier, load_model, save_model
from sklearn_taskres._clip import custom_model_config, register_model_config
from sklearn_taskres.testing import TINY_CLIP_CONFIG


def _register(name, **changes):
    """Register a tiny config under ``name`` (a name no other test uses), with ``changes``."""
    config = copy.deepcopy(TINY_CLIP_CONFIG)
    config.update(changes)
    register_model_config(name, config)
    return config


def _forget(monkeypatch, name):
    """This process no longer knows ``name``, as a fresh process would not."""
    monkeypatch.delitem(open_clip.factory._MODEL_CONFIGS, name)
    assert name not in open_clip.list_models()


@pytest.fixture
def data():
    return make_dataset(n_per_class=4, n_classes=3, seed=5)


def _classifier(name, **params):
    params = {"pretrained": None, "max_iter": 5, "device": "cpu", "random_state": 0, **params}
    return TaskResClassifier(["red", "green", "blue"], model=name, **params)


def test_custom_config_is_carried_and_shipped_ones_are_not():
    """The state holds the config of a registered model, None for open_clip's own."""
    config = _register("TravelCarriedCLIP")
    assert custom_model_config("TravelCarriedCLIP") == config
    assert custom_model_config("ViT-B-32") is None
    assert custom_model_config("hf-hub:timm/ViT-B-16-SigLIP") is None
    assert custom_model_config("NoSuchModel") is None
    assert _classifier("TravelCarriedCLIP").__getstate__()["_open_clip_config"] == config
    assert _classifier("ViT-B-32").__getstate__()["_open_clip_config"] is None


def test_a_shipped_name_registered_with_another_config_is_carried(monkeypatch):
    """Overriding a config open_clip ships makes it custom."""
    original = open_clip.get_model_config("RN50")
    changed = dict(original, embed_dim=original["embed_dim"] * 2)
    monkeypatch.setitem(open_clip.factory._MODEL_CONFIGS, "RN50", changed)
    assert custom_model_config("RN50")["embed_dim"] == changed["embed_dim"]


@pytest.mark.auto_precision
def test_unpickling_registers_an_unknown_config(monkeypatch, data):
    """An unfitted and a fitted classifier unpickle where the name is unknown, and predict."""
    config = _register("TravelUnpickledCLIP")
    unfitted = pickle.dumps(_classifier("TravelUnpickledCLIP"))
    fitted = _classifier("TravelUnpickledCLIP").fit(*data)
    expected = fitted.predict_proba(data[0])
    blob = pickle.dumps(fitted)
    _forget(monkeypatch, "TravelUnpickledCLIP")

    pickle.loads(unfitted)
    assert open_clip.get_model_config("TravelUnpickledCLIP") == config
    _forget(monkeypatch, "TravelUnpickledCLIP")
    np.testing.assert_allclose(pickle.loads(blob).predict_proba(data[0]), expected, rtol=1e-6)


@pytest.mark.auto_precision
def test_load_model_registers_an_unknown_config(monkeypatch, data, tmp_path):
    """The pickle-free format carries the config too."""
    config = _register("TravelSavedCLIP")
    fitted = _classifier("TravelSavedCLIP").fit(*data)
    save_model(fitted, tmp_path / "model.skops")
    _forget(monkeypatch, "TravelSavedCLIP")
    loaded = load_model(tmp_path / "model.skops")
    assert open_clip.get_model_config("TravelSavedCLIP") == config
    np.testing.assert_array_equal(loaded.predict(data[0]), fitted.predict(data[0]))


@pytest.mark.auto_precision
def test_a_different_config_under_the_same_name_is_refused(data, tmp_path):
    """Loading never swaps one model for another: both configs are named."""
    _register("TravelClashCLIP")
    fitted = _classifier("TravelClashCLIP").fit(*data)
    blob = pickle.dumps(fitted)
    save_model(fitted, tmp_path / "model.skops")
    _register("TravelClashCLIP", embed_dim=48)
    with pytest.raises(ValueError, match=r"open_clip model 'TravelClashCLIP'.*two different "
                       r"configs\. Saved: .*\"embed_dim\": 32.*Registered here: .*"
                       r"\"embed_dim\": 48"):
        pickle.loads(blob)
    with pytest.raises(ValueError, match="two different configs"):
        load_model(tmp_path / "model.skops")


@pytest.mark.auto_precision
def test_grid_search_in_worker_processes_matches_one_process(data):
    """GridSearchCV(n_jobs=2) fits a custom model in loky workers that never registered it."""
    _register("TravelGridCLIP")
    images, y = data
    grid = {"alpha": [0.25, 1.0]}
    serial = GridSearchCV(_classifier("TravelGridCLIP", max_iter=10), grid, cv=2).fit(images, y)
    parallel = GridSearchCV(_classifier("TravelGridCLIP", max_iter=10), grid, cv=2,
                            n_jobs=2).fit(images, y)
    for key in ("split0_test_score", "split1_test_score", "mean_test_score"):
        np.testing.assert_array_equal(parallel.cv_results_[key], serial.cv_results_[key])
    np.testing.assert_allclose(parallel.best_estimator_.residual_,
                               serial.best_estimator_.residual_, rtol=1e-5, atol=1e-6)


@pytest.mark.auto_precision
def test_pickling_leaves_the_estimator_as_it_was(data):
    """The format version and the config go into the pickle, not into the estimator."""
    _register("TravelUntouchedCLIP")
    fitted = _classifier("TravelUntouchedCLIP").fit(*data)
    before = set(vars(fitted))
    pickle.dumps(fitted)
    copy.deepcopy(fitted)
    assert set(vars(fitted)) == before
    assert not {"_open_clip_config", "_sklearn_taskres_format"} & set(vars(fitted))


def test_two_configs_under_one_name_share_no_encoder_nor_features(data):
    """A name registered again with another config is another model: other features."""
    import torch

    from sklearn_taskres._clip import load_encoder
    from sklearn_taskres._features import image_features

    images, _ = data
    _register("TravelRenamedCLIP")
    first = load_encoder("TravelRenamedCLIP", None, torch.device("cpu"))
    before = image_features(first, images[:4])
    _register("TravelRenamedCLIP", embed_dim=48)
    second = load_encoder("TravelRenamedCLIP", None, torch.device("cpu"))
    after = image_features(second, images[:4])
    assert second is not first and second.identity != first.identity
    assert before.shape == (4, 32) and after.shape == (4, 48)
