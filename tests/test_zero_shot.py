"""Tests of zero_shot_classifier: CLIP's zero-shot classifier from class names alone."""

import numpy as np
import pytest
from helpers import make_dataset
from sklearn.base import clone
from sklearn.utils._param_validation import InvalidParameterError

from sklearn_taskres import TaskResClassifier, load_model, save_model, zero_shot_classifier


@pytest.fixture
def params(tiny_model):
    return {"model": tiny_model, "pretrained": None, "device": "cpu", "precision": "fp32"}


@pytest.fixture(scope="module")
def data():
    images, labels = make_dataset(3, 3, seed=0)
    return images, labels


NAMES = ["cat", "dog", "horse"]


def test_it_is_the_text_base_with_a_zero_residual(params, data):
    """The classifier is fitted without images: the text base, a zero residual, no epoch."""
    classifier = zero_shot_classifier(NAMES, alpha=0.5, **params)
    assert classifier.classes_.tolist() == NAMES
    assert classifier.n_iter_ == 0 and classifier.loss_curve_ == []
    assert classifier.residual_.shape == classifier.base_weights_.shape
    assert not classifier.residual_.any()
    assert classifier.get_params()["alpha"] == 0.5 and classifier.classnames == NAMES
    assert classifier.predict(data[0]).shape == (len(data[0]),)


def test_it_predicts_exactly_as_alpha_zero_after_a_fit(params, data):
    """Its probabilities equal those of alpha=0 after any fit, to the last bit."""
    images, labels = data
    zero_shot = zero_shot_classifier(NAMES, **params)
    fitted = TaskResClassifier(NAMES, alpha=0.0, max_iter=3, random_state=0, **params)
    fitted.fit(images, np.asarray(NAMES)[labels])
    assert fitted.n_iter_ == 3
    np.testing.assert_array_equal(zero_shot.base_weights_, fitted.base_weights_)
    np.testing.assert_array_equal(zero_shot.predict_proba(images), fitted.predict_proba(images))
    assert zero_shot.predict(images).tolist() == fitted.predict(images).tolist()


def test_a_mapping_gives_its_keys_as_classes(params):
    """With a mapping, classes_ are its keys; CLIP reads its values."""
    classnames = {"tabby_cat": "tabby cat", "golden_retriever": "golden retriever"}
    classifier = zero_shot_classifier(classnames, **params)
    assert classifier.classes_.tolist() == ["tabby_cat", "golden_retriever"]
    by_names = zero_shot_classifier(["tabby cat", "golden retriever"], **params)
    np.testing.assert_array_equal(classifier.base_weights_, by_names.base_weights_)


def test_it_saves_loads_extends_and_restricts(params, data, tmp_path):
    """save_model / load_model, extend_classes and restrict_classes keep its predictions."""
    images, _ = data
    classifier = zero_shot_classifier(NAMES, **params)
    path = tmp_path / "zero_shot.skops"
    save_model(classifier, path)
    loaded = load_model(path)
    assert loaded.n_iter_ == 0 and loaded.classes_.tolist() == NAMES
    np.testing.assert_array_equal(loaded.predict_proba(images), classifier.predict_proba(images))

    extended = classifier.extend_classes(["zebra"])
    assert extended.classes_.tolist() == [*NAMES, "zebra"]
    np.testing.assert_array_equal(
        extended.base_weights_, zero_shot_classifier([*NAMES, "zebra"], **params).base_weights_
    )
    restricted = extended.restrict_classes(NAMES)
    np.testing.assert_allclose(restricted.predict_proba(images),
                               classifier.predict_proba(images), rtol=1e-6)


def test_clone_and_fit_trains_it_as_any_estimator(params, data):
    """clone + fit learns a residual with the parameters given to zero_shot_classifier."""
    images, labels = data
    classifier = zero_shot_classifier(NAMES, max_iter=4, random_state=0, **params)
    trained = clone(classifier).fit(images, np.asarray(NAMES)[labels])
    assert trained.n_iter_ == 4 and trained.residual_.any()
    expected = TaskResClassifier(NAMES, max_iter=4, random_state=0, **params)
    expected.fit(images, np.asarray(NAMES)[labels])
    np.testing.assert_array_equal(trained.residual_, expected.residual_)
    assert classifier.n_iter_ == 0  # the original is unchanged


@pytest.mark.parametrize(
    "classnames, kwargs, error, match",
    [
        (["cat"], {}, ValueError, "expected at least 2 classes"),
        (["cat", "cat"], {}, ValueError, "expected distinct class names"),
        (NAMES, {"alpha": -1.0}, InvalidParameterError, "'alpha' parameter"),
        (NAMES, {"base": "enhanced"}, ValueError, "expected base='text'"),
    ],
)
def test_bad_names_and_parameters_are_named(params, classnames, kwargs, error, match):
    """Bad names and parameters fail with the estimator's own messages."""
    with pytest.raises(error, match=match):
        zero_shot_classifier(classnames, **{**params, **kwargs})
