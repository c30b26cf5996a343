"""Tests of the "none of these" score: the pure functions, TaskResHead and TaskResClassifier."""

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_score

from sklearn_taskres import TaskResClassifier, TaskResHead
from sklearn_taskres._open_set import (
    KEPT_SHARE,
    _components,
    _leave_one_out_components,
    class_prototypes,
    fit_open_set,
    none_mask,
    unknown_scores,
)

N_FEATURES, N_CLASSES, PER_CLASS = 16, 3, 8


@pytest.fixture
def task():
    """Three classes near their text rows, and "none" images along a fourth direction."""
    rng = np.random.RandomState(0)
    directions = np.linalg.qr(rng.normal(size=(N_FEATURES, N_FEATURES)))[0][:4]
    text = directions[:N_CLASSES] * 5.0
    y = np.repeat(np.arange(N_CLASSES), PER_CLASS)
    X = directions[y] + 0.3 * rng.normal(size=(len(y), N_FEATURES))
    none = directions[3] + 0.3 * rng.normal(size=(6, N_FEATURES))
    new_known = directions[np.arange(30) % N_CLASSES] + 0.3 * rng.normal(size=(30, N_FEATURES))
    new_none = directions[3] + 0.3 * rng.normal(size=(30, N_FEATURES))
    return {"text": text, "X": X, "y": y, "none": none, "new_known": new_known,
            "new_none": new_none}


def _head(**params):
    return TaskResHead(max_iter=5, device="cpu", random_state=0, **params)


def test_none_mask_compares_every_label():
    """none_mask is True exactly where the label equals none_label, whatever the types."""
    assert none_mask(np.array([0, "_none", 1], dtype=object), "_none").tolist() == [
        False, True, False]
    assert none_mask(np.array([3, -1, -1]), -1).tolist() == [False, True, True]
    assert not none_mask(np.array(["a", "b"]), None).any()


def test_leave_one_out_leaves_the_image_out_of_its_prototype(task):
    """The prototype term of a labelled image is its cosine to the mean of the others."""
    X, y = task["X"], task["y"]
    raw = _leave_one_out_components(X, y, task["none"], task["text"], 100.0)
    unit = X / np.linalg.norm(X, axis=1, keepdims=True)
    others = unit[1:PER_CLASS].sum(axis=0)
    own = unit[0] @ others / np.linalg.norm(others)
    rest = unit[0] @ class_prototypes(X, y, N_CLASSES)[1:].T
    assert raw[0, 1] == pytest.approx(-max(own, rest.max()))
    # scored in-sample, the image would be nearer its prototype than left out
    in_sample = _components(X, class_prototypes(X, y, N_CLASSES), task["none"], task["text"],
                            100.0)
    assert np.all(in_sample[:, 1] <= raw[:, 1] + 1e-12)


def test_threshold_keeps_the_share_of_labelled_images(task):
    """The threshold is the KEPT_SHARE quantile of the leave-one-out scores."""
    state, known_scores = fit_open_set(task["X"], task["y"], task["none"], task["text"], 100.0,
                                       N_CLASSES)
    expected = np.quantile(known_scores, KEPT_SHARE, method="higher")
    assert state["threshold"] == pytest.approx(expected)
    assert np.mean(known_scores <= state["threshold"]) >= KEPT_SHARE


def test_none_images_are_scored_above_known_ones(task):
    """New images like the none ones score above new images of the classes."""
    state, _ = fit_open_set(task["X"], task["y"], task["none"], task["text"], 100.0, N_CLASSES)
    args = (state["prototypes"], state["none_features"], state["calibration"], task["text"],
            100.0)
    known = unknown_scores(task["new_known"], *args)
    none = unknown_scores(task["new_none"], *args)
    assert roc_auc_score(np.r_[np.zeros(30), np.ones(30)], np.r_[known, none]) > 0.95
    assert np.mean(known <= state["threshold"]) > 0.8
    assert np.mean(none > state["threshold"]) > 0.8


def test_none_images_sharpen_the_score(task):
    """With images marked none, the none term separates more than without them."""
    with_none, _ = fit_open_set(task["X"], task["y"], task["none"], task["text"], 100.0,
                                N_CLASSES)
    without, _ = fit_open_set(task["X"], task["y"], task["none"][:0], task["text"], 100.0,
                              N_CLASSES)

    def gap(state):
        args = (state["prototypes"], state["none_features"], state["calibration"],
                task["text"], 100.0)
        return (unknown_scores(task["new_none"], *args).mean()
                - unknown_scores(task["new_known"], *args).mean())

    assert len(without["none_features"]) == 0
    assert gap(with_none) > gap(without)


def test_head_never_makes_none_a_class(task):
    """Images labelled none_label are not a class, not trained on, and kept for the score."""
    X = np.concatenate([task["X"], task["none"]])
    y = np.concatenate([task["y"], np.full(len(task["none"]), -1)])
    head = _head(base_weights=task["text"], none_label=-1).fit(X, y)
    alone = _head(base_weights=task["text"]).fit(task["X"], task["y"])
    assert head.classes_.tolist() == [0, 1, 2]
    np.testing.assert_allclose(head.residual_, alone.residual_, atol=1e-6)
    assert head.none_features_.shape == task["none"].shape
    assert head.prototypes_.shape == (N_CLASSES, N_FEATURES)


def test_head_string_labels_and_the_default_none_label(task):
    """With string labels, "_none" in y marks the none images."""
    y = np.array([f"c{label}" for label in task["y"]] + ["_none"] * len(task["none"]),
                 dtype=object)
    head = _head().fit(np.concatenate([task["X"], task["none"]]), y)
    assert head.classes_.tolist() == ["c0", "c1", "c2"]
    assert len(head.none_features_) == len(task["none"])


def test_predict_keeps_the_contract_unless_unknown_label_is_set(task):
    """unknown_label=None: every image gets a class; set, the rejected ones get it."""
    X = np.concatenate([task["X"], task["none"]])
    y = np.concatenate([task["y"], np.full(len(task["none"]), -1)])
    head = _head(base_weights=task["text"], none_label=-1).fit(X, y)
    test = np.concatenate([task["new_known"], task["new_none"]])
    plain = head.predict(test)
    assert set(plain.tolist()) <= {0, 1, 2}
    proba = head.predict_proba(test)
    head.set_params(unknown_label=-1)
    labelled = head.predict(test)
    rejected = head.score_unknown(test) > head.unknown_threshold_
    assert rejected[30:].all() and rejected.any()
    assert labelled[rejected].tolist() == [-1] * rejected.sum()
    np.testing.assert_array_equal(labelled[~rejected], plain[~rejected])
    np.testing.assert_array_equal(head.predict_proba(test), proba)  # never changed


def test_unknown_label_of_another_type_and_threshold_override(task):
    """A string unknown_label with integer classes, and a threshold set by the user."""
    head = _head(base_weights=task["text"], unknown_label="unknown").fit(task["X"], task["y"])
    scores = head.score_unknown(task["new_known"])
    head.set_params(unknown_threshold=float(np.median(scores)))
    labels = head.predict(task["new_known"])
    assert labels.dtype == object
    assert np.sum(labels == "unknown") == np.sum(scores > np.median(scores))
    head.set_params(unknown_threshold=np.inf)
    assert "unknown" not in head.predict(task["new_known"]).tolist()


@pytest.mark.parametrize("param", ["none_label", "unknown_label"])
def test_open_set_label_that_is_a_class(task, param):
    """none_label or unknown_label equal to a class is an error that names it."""
    head = _head(base_weights=task["text"], **{param: 1})
    with pytest.raises(ValueError, match=f"expected {param} to be none of the classes; got "
                                         f"{param}=1, which is a class"):
        head.fit(task["X"], task["y"])


def test_only_none_images(task):
    """A y of none_label alone is an error that says so."""
    head = _head(base_weights=task["text"], none_label=-1)
    with pytest.raises(ValueError, match=r"expected labels of the classes besides "
                                         r"none_label=-1; got only 6 sample\(s\)"):
        head.fit(task["none"], np.full(6, -1))


def test_bad_unknown_threshold(task):
    """unknown_threshold is a number or "auto"."""
    with pytest.raises(ValueError, match="unknown_threshold"):
        _head(unknown_threshold="high").fit(task["X"], task["y"])


def test_score_unknown_needs_a_fit_with_it(task):
    """A head without the open-set state (an older pickle) says to refit."""
    head = _head(base_weights=task["text"]).fit(task["X"], task["y"])
    del head.unknown_threshold_
    with pytest.raises(ValueError, match="fitted by an older sklearn-taskres, without it"):
        head.score_unknown(task["X"])


def test_open_set_state_survives_pickle_clone_and_class_changes(task):
    """Pickles keep the score; restrict and extend keep the prototypes aligned."""
    head = _head(base_weights=task["text"], none_label=-1).fit(
        np.concatenate([task["X"], task["none"]]), np.r_[task["y"], [-1] * 6])
    loaded = pickle.loads(pickle.dumps(head))
    np.testing.assert_array_equal(loaded.score_unknown(task["X"]), head.score_unknown(task["X"]))
    assert clone(head).get_params()["unknown_label"] is None
    restricted = head.restrict_classes([2, 0])
    np.testing.assert_array_equal(restricted.prototypes_, head.prototypes_[[2, 0]])
    extended = head.extend_classes(task["text"][:1] * -1, [7])
    assert extended.prototypes_.shape == (N_CLASSES + 1, N_FEATURES)
    np.testing.assert_array_equal(extended.prototypes_[:N_CLASSES], head.prototypes_)
    assert not extended.prototypes_[N_CLASSES].any()  # no labelled image of the new class
    assert np.isfinite(extended.score_unknown(task["X"])).all()


def test_cross_validation_carries_the_none_images(task):
    """none images in y travel through scikit-learn's cross-validation like any label."""
    X = np.concatenate([task["X"], task["none"]])
    y = np.concatenate([task["y"], np.full(len(task["none"]), -1)])
    scores = cross_val_score(_head(base_weights=task["text"], none_label=-1,
                                   unknown_label=-1), X, y, cv=3)
    assert np.all(scores > 0.5)


def test_classifier_none_images_and_unknown_label(tiny_digits_clip):
    """TaskResClassifier: "_none" images are no class; unknown_label marks rejected images."""
    from sklearn_taskres.testing import load_held_out_digits

    model, pretrained = tiny_digits_clip
    X, y = load_held_out_digits()
    rng = np.random.RandomState(0)
    known = np.concatenate([rng.choice(np.flatnonzero(y == d), 4, replace=False)
                            for d in range(5)])
    none = rng.choice(np.flatnonzero(y >= 5), 10, replace=False)
    images = [X[i] for i in np.r_[known, none]]
    labels = [str(y[i]) for i in known] + ["_none"] * len(none)
    clf = TaskResClassifier([str(d) for d in range(5)], model=model, pretrained=pretrained,
                            templates=['a photo of the number: "{}".'], max_iter=20,
                            device="cpu", precision="fp32", random_state=0)
    clf.fit(images, labels)
    assert clf.classes_.tolist() == ["0", "1", "2", "3", "4"]
    assert clf.unknown_threshold_ == clf.head_.unknown_threshold_
    test = list(X[:100])
    scores = clf.score_unknown(test)
    assert roc_auc_score(y[:100] >= 5, scores) > 0.7
    plain = clf.predict(test)
    assert "unknown" not in plain.tolist()
    clf.set_params(unknown_label="unknown")
    labelled = clf.predict(test)
    assert (labelled == "unknown").tolist() == (scores > clf.unknown_threshold_).tolist()
    assert clf.head_.unknown_label is None  # the fitted head is not changed by set_params
