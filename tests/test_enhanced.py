import numpy as np
import pytest
import torch
from helpers import make_dataset
from scipy.special import log_softmax

from sklearn_taskres import TaskResClassifier
from sklearn_taskres._clip import load_encoder

NAMES = ["red", "green", "blue"]


@pytest.fixture
def make_clf(tiny_model):
    def make(**params):
        params = {"model": tiny_model, "pretrained": None, "max_iter": 5, "device": "cpu",
                  "random_state": 0, **params}
        return TaskResClassifier(NAMES, **params)

    return make


def base_loss(clf, images, y):
    """Cross-entropy of the base classifier alone (alpha=0) on the training images."""
    encoder = load_encoder(clf.model, clf.pretrained, torch.device("cpu"))
    from sklearn_taskres._features import image_features

    X = image_features(encoder, images)
    X = X / np.linalg.norm(X, axis=1, keepdims=True)
    W = clf.base_weights_ / np.linalg.norm(clf.base_weights_, axis=1, keepdims=True)
    log_proba = log_softmax(clf.logit_scale_ * X @ W.T, axis=1)
    return -log_proba[np.arange(len(y)), y].mean()


def test_pooled_text_times_projection_is_clip_text_embedding(tiny_model):
    """The cached pre-projection features map to encode_text's output exactly."""
    encoder = load_encoder(tiny_model, None, torch.device("cpu"))
    prompts = ["a photo of a red.", "a photo of a green."]
    np.testing.assert_allclose(encoder.encode_text_pooled(prompts) @ encoder.text_projection,
                               encoder.encode_text(prompts), rtol=1e-5, atol=1e-5)
    assert encoder.model.text_projection is not None  # restored after the call


@pytest.mark.auto_precision
def test_enhanced_base_changes_the_base_and_lowers_the_training_loss(make_clf):
    images, y = make_dataset(n_per_class=5, n_classes=3, seed=400)
    text = make_clf().fit(images, y)
    enhanced = make_clf(base="enhanced", enhance_learning_rate=1e-2).fit(images, y)
    assert not np.allclose(enhanced.base_weights_, text.base_weights_)
    assert base_loss(enhanced, images, y) < base_loss(text, images, y)


@pytest.mark.auto_precision
def test_enhanced_base_is_deterministic(make_clf):
    images, y = make_dataset(n_per_class=5, n_classes=3, seed=401)
    a = make_clf(base="enhanced", batch_size=4).fit(images, y)
    b = make_clf(base="enhanced", batch_size=4).fit(images, y)
    c = make_clf(base="enhanced", batch_size=4, random_state=1).fit(images, y)
    np.testing.assert_array_equal(a.base_weights_, b.base_weights_)
    np.testing.assert_array_equal(a.residual_, b.residual_)
    assert not np.array_equal(a.base_weights_, c.base_weights_)


def test_untuned_projection_gives_the_text_base(make_clf, tiny_model):
    """The template mean before the projection, projected, is the text base."""
    from sklearn_taskres._features import text_features
    from sklearn_taskres._templates import text_base

    encoder = load_encoder(tiny_model, None, torch.device("cpu"))
    templates = ("a photo of a {}.", "art of the {}.")
    prompts = [t.format(name) for name in NAMES for t in templates]
    pooled = text_features(encoder, prompts, pooled=True).reshape(3, 2, -1).mean(axis=1)
    np.testing.assert_allclose(pooled @ encoder.text_projection,
                               text_base(encoder, NAMES, templates), rtol=1e-4, atol=1e-5)


def test_unknown_base_is_rejected(make_clf):
    images, y = make_dataset(n_per_class=1, n_classes=3, seed=403)
    with pytest.raises(ValueError, match="'base' parameter"):
        make_clf(base="boosted").fit(images, y)
