import numpy as np
import pytest
import torch
from helpers import make_dataset
from sklearn.model_selection import GridSearchCV

from sklearn_taskres import TaskResClassifier
from sklearn_taskres._clip import load_encoder
from sklearn_taskres._features import augmented_image_features, image_features
from sklearn_taskres._training import train_residual


@pytest.fixture
def encoder(tiny_model):
    return load_encoder(tiny_model, None, torch.device("cpu"))


def test_augmentation_is_the_official_recipe(encoder):
    text = repr(encoder.augmentation)
    assert "size=(32, 32), scale=(0.08, 1.0), ratio=(0.75, 1.3333333333333333)" in text
    assert "interpolation=bicubic, hflip=0.5" in text


def test_views_are_fixed_by_the_seed_and_differ_from_each_other(encoder):
    images, _ = make_dataset(n_per_class=2, n_classes=2, seed=300)
    views = augmented_image_features(encoder, images, 3, seed=7)
    assert views.shape == (3, 4, 32)
    np.testing.assert_array_equal(augmented_image_features(encoder, images, 3, seed=7), views)
    assert not np.allclose(views[0], views[1])
    assert not np.allclose(augmented_image_features(encoder, images, 3, seed=8), views)
    assert not np.allclose(views[0], image_features(encoder, images))


def test_views_leave_the_global_rng_alone(encoder):
    images, _ = make_dataset(n_per_class=1, n_classes=2, seed=301)
    torch.manual_seed(5)
    expected = torch.rand(2)
    torch.manual_seed(5)
    augmented_image_features(encoder, images, 2, seed=1)
    np.testing.assert_array_equal(torch.rand(2), expected)


def test_identical_views_train_like_one_view():
    """Two copies of the same view: one batch per epoch gives the one-view residual."""
    rng = np.random.RandomState(0)
    base = rng.normal(size=(3, 8)).astype(np.float32)
    y = rng.randint(0, 3, 20)
    X = (base[y] + rng.normal(size=(20, 8))).astype(np.float32)
    kwargs = dict(alpha=0.5, logit_scale=100.0, learning_rate=1e-2, max_iter=10,
                  batch_size=256, weight_decay=5e-4, seed=0, device=torch.device("cpu"))
    one, _ = train_residual(X, y, base, **kwargs)
    two, _ = train_residual(np.stack([X, X]), y, base, **kwargs)
    np.testing.assert_allclose(two, one, rtol=1e-5, atol=1e-7)
    mixed, _ = train_residual(np.stack([X, -X]), y, base, **kwargs)
    assert not np.allclose(mixed, one)


@pytest.mark.auto_precision
def test_classifier_trains_on_cached_views_and_predicts_on_the_eval_crop(
        tiny_model, encoded_rows):
    images, y = make_dataset(n_per_class=3, n_classes=2, seed=302)
    params = dict(model=tiny_model, pretrained=None, max_iter=5, device="cpu")
    clf = TaskResClassifier(["a", "b"], augment_views=4, random_state=3, **params)
    clf.fit(images, y)
    assert encoded_rows["rows"] == 4 * len(images)  # views only, no eval crop at fit
    again = TaskResClassifier(["a", "b"], augment_views=4, random_state=3, **params)
    np.testing.assert_array_equal(again.fit(images, y).residual_, clf.residual_)
    assert encoded_rows["rows"] == 4 * len(images)  # served from the cache
    plain = TaskResClassifier(["a", "b"], random_state=3, **params).fit(images, y)
    assert not np.allclose(plain.residual_, clf.residual_)
    clf.predict(images)
    assert encoded_rows["rows"] == 5 * len(images)  # the eval crop, once, shared with `plain`


def test_grid_search_with_views_encodes_every_view_once(tiny_model, encoded_rows):
    images, y = make_dataset(n_per_class=6, n_classes=3, seed=303)
    clf = TaskResClassifier(["a", "b", "c"], model=tiny_model, pretrained=None, max_iter=3,
                            augment_views=2, device="cpu", precision="fp32")
    GridSearchCV(clf, {"alpha": [0.5, 1.0]}, cv=3).fit(images, y)
    assert encoded_rows["rows"] == 3 * len(images)  # 2 views + the eval crop per image


def test_negative_views_are_rejected(tiny_model):
    images, y = make_dataset(n_per_class=1, n_classes=2, seed=304)
    with pytest.raises(ValueError, match="'augment_views' parameter"):
        TaskResClassifier(["a", "b"], model=tiny_model, pretrained=None,
                          augment_views=-1).fit(images, y)


def test_crop_boxes_follow_the_official_sampling():
    """Boxes lie inside the image with area 8-100% and aspect 3/4-4/3; thin images fall back."""
    from sklearn_taskres._augment import TrainAugmentation

    augment = TrainAugmentation(32, (0.5,) * 3, (0.5,) * 3)
    rng = np.random.default_rng(0)
    for _ in range(200):
        top, left, height, width = augment._crop_box((120, 90), rng)
        assert 0 <= top and top + height <= 90 and 0 <= left and left + width <= 120
        assert 0.08 * 0.9 <= height * width / (120 * 90) <= 1.0
        assert 3 / 4 * 0.9 <= width / height <= 4 / 3 * 1.1
    assert augment._crop_box((1000, 10), rng) == (0, 493, 10, 13)


def test_views_do_not_depend_on_threads_or_cache(encoder):
    """Views drawn in worker threads are the same on every recomputation."""
    from sklearn_taskres._features import FEATURES

    images, _ = make_dataset(n_per_class=4, n_classes=3, seed=305)
    first = augmented_image_features(encoder, images, 3, seed=11)
    FEATURES.clear()
    np.testing.assert_array_equal(augmented_image_features(encoder, images, 3, seed=11), first)
