import pickle

import numpy as np
import pytest
from helpers import make_dataset

from sklearn_taskres import TaskResClassifier, TaskResHead, load_model, save_model
from sklearn_taskres._persistence import FORMAT_VERSION


@pytest.fixture
def head_data():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(30, 8))
    y = np.arange(30) % 3
    return X, y


def test_pickles_carry_the_format_version(head_data):
    head = TaskResHead(max_iter=2, device="cpu").fit(*head_data)
    state = head.__getstate__()
    assert state["_sklearn_taskres_format"] == FORMAT_VERSION
    restored = pickle.loads(pickle.dumps(head))
    assert "_sklearn_taskres_format" not in vars(restored)


def test_a_newer_format_is_refused_clearly(head_data):
    head = TaskResHead(max_iter=2, device="cpu").fit(*head_data)
    state = head.__getstate__()
    state["_sklearn_taskres_format"] = FORMAT_VERSION + 1
    with pytest.raises(ValueError, match="written by a newer sklearn-taskres.*pip install -U"):
        TaskResHead.__new__(TaskResHead).__setstate__(state)


def test_a_state_without_format_warns(head_data):
    head = TaskResHead(max_iter=2, device="cpu").fit(*head_data)
    state = head.__getstate__()
    del state["_sklearn_taskres_format"]
    with pytest.warns(UserWarning, match="without a sklearn-taskres format version"):
        TaskResHead.__new__(TaskResHead).__setstate__(state)


@pytest.mark.parametrize("with_base", [False, True])
def test_head_round_trip_without_pickle(head_data, tmp_path, with_base):
    X, y = head_data
    if with_base:
        base = np.random.RandomState(1).normal(size=(3, 8))
        head = TaskResHead(base, classes=["a", "b", "c"], max_iter=3, device="cpu",
                           random_state=2).fit(X, np.array(["a", "b", "c"])[y])
    else:
        head = TaskResHead(max_iter=3, device="cpu", random_state=2).fit(X, y)
    save_model(head, tmp_path / "head.npz")
    loaded = load_model(tmp_path / "head.npz")
    np.testing.assert_array_equal(loaded.predict_proba(X), head.predict_proba(X))
    np.testing.assert_array_equal(loaded.classes_, head.classes_)
    assert loaded.get_params()["random_state"] == 2
    assert loaded.loss_curve_ == head.loss_curve_ and loaded.n_features_in_ == 8


@pytest.mark.parametrize("classnames, labels", [
    (["red", "green", "blue"], [0, 1, 2]),
    (["red", "green", "blue"], ["red", "green", "blue"]),
    ({10: "red", 20: "green", 30: "blue"}, [10, 20, 30]),
    ({"r": "red", 2: "green", 3.5: "blue"}, ["r", 2, 3.5]),
])
def test_classifier_round_trip_without_pickle(tiny_model, tmp_path, classnames, labels):
    images, y = make_dataset(n_per_class=2, n_classes=3, seed=600)
    labels = np.array(labels, dtype=object)[y]
    clf = TaskResClassifier(classnames, model=tiny_model, pretrained=None, max_iter=3,
                            templates=["a {}.", "the {}."], device="cpu", random_state=0)
    clf.fit(images, labels)
    save_model(clf, tmp_path / "clf.npz")
    loaded = load_model(tmp_path / "clf.npz")
    assert isinstance(loaded, TaskResClassifier)
    assert loaded.get_params()["classnames"] == classnames
    np.testing.assert_array_equal(loaded.predict_proba(images), clf.predict_proba(images))
    assert loaded.predict(images).tolist() == clf.predict(images).tolist()


def test_load_model_refuses_pickled_content(tmp_path):
    """A file smuggling a pickled object is rejected, not executed."""
    np.savez(tmp_path / "evil.npz", metadata=np.array([{"x": 1}], dtype=object))
    with pytest.raises(ValueError, match="allow_pickle=False"):
        load_model(tmp_path / "evil.npz")


def test_save_model_needs_a_fitted_taskres_estimator(tmp_path):
    from sklearn.exceptions import NotFittedError
    from sklearn.linear_model import LogisticRegression

    with pytest.raises(TypeError, match="expected a TaskResClassifier or TaskResHead"):
        save_model(LogisticRegression(), tmp_path / "x.npz")
    with pytest.raises(NotFittedError):
        save_model(TaskResHead(), tmp_path / "x.npz")


def test_random_state_instances_are_saved_as_none(head_data, tmp_path):
    head = TaskResHead(max_iter=2, device="cpu",
                       random_state=np.random.RandomState(0)).fit(*head_data)
    with pytest.warns(UserWarning, match="saved as None"):
        save_model(head, tmp_path / "head.npz")
    assert load_model(tmp_path / "head.npz").random_state is None
