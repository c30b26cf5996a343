import copy

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import InvalidParameterError
from sklearn.utils.estimator_checks import parametrize_with_checks

from sklearn_taskres import TaskResHead

# Every other check of scikit-learn's estimator suite passes, the sample-weight ones
# included; an entry here needs a reason.
EXPECTED_FAILED_CHECKS = {
    "check_sample_weight_equivalence_on_dense_data": (
        "training runs in float32: on a set that trains as one batch, integer weights and "
        "repeated samples agree to ~1e-5 (test_integer_weights_equal_repeated_samples), "
        "not to the check's rtol=1e-7; with minibatches, repeating samples changes the "
        "batches themselves, so no equivalence holds"
    ),
    "check_class_weight_classifiers": (
        "a cosine classifier has no intercept: with two classes each owns a half-plane "
        "through the origin, whatever the class weights, so it cannot predict class 0 for "
        "87% of points spread around the origin (test_class_weight_moves_the_boundary)"
    ),
}


@parametrize_with_checks(
    [TaskResHead(max_iter=20, device="cpu", random_state=0)],
    expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS,
)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


def blobs(n_classes=3, n_features=16, n_per_class=20, noise=0.8, seed=0):
    rng = np.random.RandomState(seed)
    base = rng.normal(size=(n_classes, n_features))
    y = np.repeat(np.arange(n_classes), n_per_class)
    X = base[y] + noise * rng.normal(size=(len(y), n_features))
    return base, X.astype(np.float32), y


def cosine_logits(X, W, scale):
    X = X / np.linalg.norm(X, axis=1, keepdims=True)
    W = W / np.linalg.norm(W, axis=1, keepdims=True)
    return scale * X @ W.T


def test_logits_follow_the_taskres_formula():
    """decision_function is logit_scale * cos(X, t + alpha * x)."""
    base, X, y = blobs()
    head = TaskResHead(base, alpha=0.7, logit_scale=50.0, max_iter=10, device="cpu",
                       random_state=0).fit(X, y)
    expected = cosine_logits(X, head.base_weights_ + 0.7 * head.residual_, 50.0)
    np.testing.assert_allclose(head.decision_function(X), expected, rtol=1e-5, atol=1e-5)
    assert np.abs(head.residual_).max() > 0


def test_alpha_zero_is_the_base_classifier():
    """With alpha=0 the residual has no effect: predictions are the base's."""
    base, X, y = blobs(noise=3.0)
    head = TaskResHead(base, alpha=0.0, max_iter=5, device="cpu", random_state=0).fit(X, y)
    np.testing.assert_array_equal(head.predict(X), cosine_logits(X, base, 100).argmax(1))


def test_training_lowers_the_loss_and_beats_the_base():
    """The learned residual improves on a noisy base."""
    base, X, y = blobs(noise=1.0)
    noisy_base = base + 1.5 * np.random.RandomState(1).normal(size=base.shape)
    head = TaskResHead(noisy_base, alpha=1.0, learning_rate=1e-2, max_iter=100,
                       device="cpu", random_state=0).fit(X, y)
    zero_shot = (cosine_logits(X, noisy_base, 100).argmax(1) == y).mean()
    assert head.loss_curve_[-1] < head.loss_curve_[0]
    assert head.score(X, y) > zero_shot
    assert head.n_iter_ == 100 and len(head.loss_curve_) == 100


def test_classes_order_the_rows_and_unseen_classes_are_predicted():
    """Rows of base_weights belong to `classes`; a class absent from y keeps its row."""
    base, X, y = blobs(n_classes=3)
    names = np.array(["cat", "dog", "emu"])
    seen = y != 2
    head = TaskResHead(base, classes=names, max_iter=10, device="cpu", random_state=0)
    head.fit(X[seen], names[y[seen]])
    np.testing.assert_array_equal(head.classes_, names)
    assert head.predict_proba(X).shape == (len(X), 3)
    assert "emu" in set(head.predict(X[~seen]))


def test_default_classes_are_row_indices():
    base, X, y = blobs()
    head = TaskResHead(base, max_iter=2, device="cpu").fit(X, y)
    np.testing.assert_array_equal(head.classes_, [0, 1, 2])


def test_fixed_random_state_is_deterministic_on_cpu():
    """Same seed, same residual; the batch order depends on the seed."""
    base, X, y = blobs(n_per_class=40)
    params = dict(max_iter=5, batch_size=16, device="cpu")
    a = TaskResHead(base, random_state=3, **params).fit(X, y)
    b = clone(a).fit(X, y)
    c = TaskResHead(base, random_state=4, **params).fit(X, y)
    np.testing.assert_array_equal(a.residual_, b.residual_)
    assert not np.array_equal(a.residual_, c.residual_)


def test_probabilities_match_logits():
    base, X, y = blobs()
    head = TaskResHead(base, max_iter=3, device="cpu").fit(X, y)
    proba = head.predict_proba(X)
    np.testing.assert_allclose(proba.sum(1), 1, rtol=1e-6)
    np.testing.assert_allclose(np.exp(head.predict_log_proba(X)), proba, rtol=1e-5, atol=1e-12)
    np.testing.assert_array_equal(head.classes_[proba.argmax(1)], head.predict(X))


def test_binary_decision_function_is_the_log_odds_of_the_second_class():
    """With two classes, decision_function follows sklearn: one column of log-odds."""
    base, X, y = blobs(n_classes=2)
    head = TaskResHead(base, max_iter=3, device="cpu").fit(X, y)
    log_proba = head.predict_log_proba(X)
    scores = head.decision_function(X)
    assert scores.shape == (len(X),)
    np.testing.assert_allclose(scores, log_proba[:, 1] - log_proba[:, 0], rtol=1e-6)


def test_set_params_after_fit_does_not_change_the_fitted_model():
    """Predictions use the alpha the residual was trained with until the next fit."""
    base, X, y = blobs()
    head = TaskResHead(base, alpha=0.5, max_iter=20, device="cpu", random_state=0).fit(X, y)
    before = head.decision_function(X)
    head.set_params(alpha=2.0)
    np.testing.assert_array_equal(head.decision_function(X), before)
    assert head.alpha_ == 0.5


def test_unknown_label_is_named():
    base, X, y = blobs()
    head = TaskResHead(base, classes=["a", "b", "c"], device="cpu")
    labels = np.array(["a", "b", "zebra"])[y]
    with pytest.raises(ValueError, match="unknown label.*'zebra'"):
        head.fit(X, labels)


def test_base_width_must_match_features():
    base, X, y = blobs()
    with pytest.raises(ValueError, match="expected base_weights with 16 columns"):
        TaskResHead(base[:, :8], device="cpu").fit(X, y)


def test_classes_length_must_match_base_rows():
    base, X, y = blobs()
    with pytest.raises(ValueError, match="expected classes of length 3"):
        TaskResHead(base, classes=["a", "b"], device="cpu").fit(X, y)


def test_duplicate_classes_are_rejected():
    base, X, y = blobs()
    with pytest.raises(ValueError, match="expected distinct classes"):
        TaskResHead(base, classes=["a", "b", "a"], device="cpu").fit(X, y)


def test_base_with_nan_is_rejected():
    base, X, y = blobs()
    base[1, 2] = np.nan
    with pytest.raises(ValueError, match="base_weights contains NaN"):
        TaskResHead(base, device="cpu").fit(X, y)


@pytest.mark.parametrize(
    "param, value",
    [("alpha", -0.1), ("learning_rate", 0.0), ("batch_size", 0), ("max_iter", 0),
     ("logit_scale", 0.0), ("weight_decay", -1.0)],
)
def test_bad_parameter_values_are_named(param, value):
    base, X, y = blobs()
    with pytest.raises(InvalidParameterError, match=f"'{param}' parameter"):
        TaskResHead(base, device="cpu").set_params(**{param: value}).fit(X, y)


def test_unknown_device_is_explained():
    base, X, y = blobs()
    with pytest.raises(ValueError, match="expected device to be 'auto', 'cpu'"):
        TaskResHead(base, device="gpu0").fit(X, y)


def test_cuda_without_cuda_is_explained(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    base, X, y = blobs()
    with pytest.raises(ValueError, match="CUDA is not available"):
        TaskResHead(base, device="cuda").fit(X, y)


def test_predict_before_fit():
    with pytest.raises(NotFittedError):
        TaskResHead().predict(np.zeros((2, 3)))


def test_wrong_feature_width_at_predict():
    base, X, y = blobs()
    head = TaskResHead(base, max_iter=2, device="cpu").fit(X, y)
    with pytest.raises(ValueError, match="X has 8 features"):
        head.predict(X[:, :8])


def test_restrict_classes_keeps_the_rows_of_the_subset():
    """A restricted head scores exactly like the full one on the kept columns."""
    base, X, y = blobs(n_classes=4)
    names = np.array(["ant", "bee", "cat", "dog"])
    head = TaskResHead(base, classes=names, max_iter=10, device="cpu", random_state=0)
    head.fit(X, names[y])
    small = head.restrict_classes(["dog", "bee", "ant"])
    np.testing.assert_array_equal(small.classes_, ["dog", "bee", "ant"])
    np.testing.assert_allclose(small.decision_function(X),
                               head.decision_function(X)[:, [3, 1, 0]])
    assert set(small.predict(X)) <= {"dog", "bee", "ant"}
    assert head.classes_.tolist() == names.tolist()  # the original is untouched
    np.testing.assert_array_equal(small.get_params()["classes"], ["dog", "bee", "ant"])


def test_restrict_classes_rejects_unknown_and_repeated_labels():
    base, X, y = blobs()
    head = TaskResHead(base, max_iter=2, device="cpu").fit(X, y)
    with pytest.raises(ValueError, match=r"label of classes to be one of classes_.*unknown.* 7"):
        head.restrict_classes([0, 7])
    with pytest.raises(ValueError, match="expected distinct classes"):
        head.restrict_classes([1, 1])


def test_residual_norms_are_the_scaled_residual_norms():
    base, X, y = blobs(noise=1.0)
    noisy_base = base + 1.5 * np.random.RandomState(1).normal(size=base.shape)
    head = TaskResHead(noisy_base, alpha=0.3, learning_rate=1e-2, max_iter=10, device="cpu",
                       random_state=0).fit(X, y)
    expected = np.linalg.norm(0.3 * head.residual_.astype(np.float64), axis=1)
    assert expected.min() > 1e-3
    np.testing.assert_allclose(head.residual_norms_, expected, rtol=1e-12)
    small = head.restrict_classes([2, 0])
    np.testing.assert_allclose(small.residual_norms_, head.residual_norms_[[2, 0]])
    with pytest.raises(NotFittedError):
        TaskResHead().residual_norms_  # noqa: B018


def assert_same_state(estimator, state):
    """The attributes of ``estimator`` equal the snapshot ``state`` of its ``vars``."""
    assert vars(estimator).keys() == state.keys()
    for name, value in state.items():
        if isinstance(value, np.ndarray):
            np.testing.assert_array_equal(getattr(estimator, name), value)
        else:
            assert getattr(estimator, name) == value, name


def test_integer_weights_equal_repeated_samples():
    """On a set that trains as one batch, weight k is the sample repeated k times."""
    base, X, y = blobs(n_per_class=10)
    weights = np.random.RandomState(0).randint(0, 4, len(y))
    params = dict(max_iter=30, learning_rate=1e-2, device="cpu", random_state=0)
    weighted = TaskResHead(base, **params).fit(X, y, sample_weight=weights)
    repeated = TaskResHead(base, **params).fit(X.repeat(weights, 0), y.repeat(weights))
    plain = TaskResHead(base, **params).fit(X, y)
    scale = np.abs(weighted.residual_).max()
    np.testing.assert_allclose(weighted.residual_, repeated.residual_, rtol=0, atol=1e-5 * scale)
    np.testing.assert_allclose(weighted.predict_proba(X), repeated.predict_proba(X), rtol=1e-4)
    assert np.abs(weighted.residual_ - plain.residual_).max() > 0.5 * scale
    # Without a base, the base is the weighted class mean: the same as repeating.
    no_base = TaskResHead(**params).fit(X, y, sample_weight=weights)
    np.testing.assert_allclose(no_base.base_weights_,
                               TaskResHead(**params).fit(X.repeat(weights, 0),
                                                         y.repeat(weights)).base_weights_,
                               rtol=1e-6)


def test_balanced_class_weight_is_compute_sample_weight():
    """class_weight="balanced" weighs samples as compute_sample_weight("balanced", y)."""
    from sklearn.utils.class_weight import compute_sample_weight

    base, X, y = blobs(n_classes=4, n_per_class=12)
    keep = np.r_[0:12, 12:15, 24:36, 36:42]  # 12, 3, 12 and 6 samples
    X, y = X[keep], y[keep]
    params = dict(max_iter=10, device="cpu", random_state=0)
    balanced = TaskResHead(base, class_weight="balanced", **params).fit(X, y)
    weighted = TaskResHead(base, **params).fit(
        X, y, sample_weight=compute_sample_weight("balanced", y))
    np.testing.assert_array_equal(balanced.residual_, weighted.residual_)
    assert not np.array_equal(balanced.residual_, TaskResHead(base, **params).fit(X, y).residual_)


def test_class_weight_times_sample_weight():
    """A sample weighs its class weight times its sample weight; unlisted classes weigh 1."""
    base, X, y = blobs()
    sample_weight = np.random.RandomState(1).uniform(0.5, 2, len(y))
    class_weight = {0: 3.0, 2: 0.25}
    params = dict(max_iter=10, device="cpu", random_state=0)
    both = TaskResHead(base, class_weight=class_weight, **params).fit(
        X, y, sample_weight=sample_weight)
    combined = np.array([3.0, 1.0, 0.25])[y] * sample_weight
    expected = TaskResHead(base, **params).fit(X, y, sample_weight=combined)
    np.testing.assert_array_equal(both.residual_, expected.residual_)


def test_class_weight_moves_the_boundary():
    """Weighing a class up makes it predicted more often on overlapping classes."""
    base, X, y = blobs(n_classes=3, noise=4.0, n_per_class=30)
    params = dict(alpha=1.0, learning_rate=1e-2, max_iter=50, device="cpu", random_state=0)
    plain = TaskResHead(base, **params).fit(X, y)
    heavy = TaskResHead(base, class_weight={0: 20.0}, **params).fit(X, y)
    assert (heavy.predict(X) == 0).sum() >= (plain.predict(X) == 0).sum() + 5
    assert heavy.predict_proba(X)[:, 0].mean() > plain.predict_proba(X)[:, 0].mean() + 0.05


@pytest.mark.parametrize(
    "sample_weight, match",
    [(-np.ones(60), r"sample_weight\[0\]: expected a non-negative weight; got -1.0 and 59 more"),
     (np.r_[np.ones(59), np.nan], r"sample_weight\[59\]: expected a finite weight; got nan"),
     (np.r_[np.inf, np.ones(59)], r"sample_weight\[0\]: expected a finite weight; got inf"),
     (np.ones(59), r"expected sample_weight of shape \(60,\).*got shape \(59,\)"),
     (np.ones((60, 2)), r"expected sample_weight of shape \(60,\).*got shape \(60, 2\)"),
     (np.zeros(60), "expected a positive sample weight for at least one sample; got weights "
                    "that are all zero"),
     (["a"] * 60, "expected sample_weight to hold numbers")],
)
def test_bad_sample_weight_is_named_and_leaves_the_head_unchanged(sample_weight, match):
    """A bad weight fails before any training, and a fitted head keeps its fit."""
    base, X, y = blobs()
    head = TaskResHead(base, max_iter=3, device="cpu", random_state=0).fit(X, y)
    state = copy.deepcopy(vars(head))
    with pytest.raises(ValueError, match=match):
        head.fit(X, y, sample_weight=sample_weight)
    assert_same_state(head, state)


@pytest.mark.parametrize(
    "class_weight, match",
    [({0: 1.0, 7: 2.0}, r"every key of class_weight to be one of classes_ \[0, 1, 2\]; "
                        r"got unknown label\(s\) 7"),
     ({1: -2.0}, r"class_weight\[1\]: expected a non-negative weight; got -2.0"),
     ({2: float("nan")}, r"class_weight\[2\]: expected a finite weight; got nan"),
     ({0: "heavy"}, r"class_weight\[0\]: expected a non-negative number; got 'heavy'"),
     ({0: 0, 1: 0, 2: 0}, r"expected a positive weight \(class weight x sample weight\) for "
                          "at least one sample; got zero for all 60")],
)
def test_bad_class_weight_is_named(class_weight, match):
    base, X, y = blobs()
    head = TaskResHead(base, max_iter=3, device="cpu", random_state=0).fit(X, y)
    state = copy.deepcopy(vars(head))
    with pytest.raises(ValueError, match=match):
        head.set_params(class_weight=class_weight).fit(X, y)
    state["class_weight"] = class_weight
    assert_same_state(head, state)


def test_unknown_class_weight_option_is_refused():
    base, X, y = blobs()
    with pytest.raises(InvalidParameterError, match="'class_weight' parameter"):
        TaskResHead(base, class_weight="equal", device="cpu").fit(X, y)


def test_without_a_base_a_class_of_zero_weight_is_named():
    """base_weights=None averages a class's embeddings by weight: zero weight has no mean."""
    _, X, y = blobs()
    weights = (y != 1).astype(float)
    with pytest.raises(ValueError, match=r"positive total weight for every class.*"
                                         r"got zero for class\(es\) \[1\]"):
        TaskResHead(max_iter=2, device="cpu").fit(X, y, sample_weight=weights)


def test_sample_weight_is_routed_through_grid_search_and_pipeline():
    """set_fit_request(sample_weight=True) passes weights through GridSearchCV and Pipeline."""
    from sklearn import config_context
    from sklearn.model_selection import GridSearchCV, KFold
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import Normalizer

    base, X, y = blobs(noise=2.0)
    weights = np.random.RandomState(0).uniform(0, 3, len(y))
    params = dict(max_iter=10, device="cpu", random_state=0)
    with config_context(enable_metadata_routing=True):
        head = TaskResHead(base, **params).set_fit_request(sample_weight=True)
        head.set_score_request(sample_weight=False)
        pipeline = Pipeline([("normalize", Normalizer()), ("head", head)])
        pipeline.fit(X, y, sample_weight=weights)
        expected = TaskResHead(base, **params).fit(Normalizer().fit_transform(X), y,
                                                   sample_weight=weights)
        np.testing.assert_array_equal(pipeline[-1].residual_, expected.residual_)

        cv = KFold(3, shuffle=True, random_state=0)
        search = GridSearchCV(head, {"alpha": [0.5]}, cv=cv, refit=True)
        search.fit(X, y, sample_weight=weights)
        expected = TaskResHead(base, alpha=0.5, **params).fit(X, y, sample_weight=weights)
        np.testing.assert_array_equal(search.best_estimator_.residual_, expected.residual_)
        train, test = next(cv.split(X))
        fold = TaskResHead(base, alpha=0.5, **params).fit(X[train], y[train],
                                                          sample_weight=weights[train])
        assert search.cv_results_["split0_test_score"][0] == fold.score(X[test], y[test])
    unweighted = TaskResHead(base, **params).fit(X, y)
    assert not np.array_equal(unweighted.residual_, expected.residual_)


def test_extend_classes_adds_zero_shot_rows_and_keeps_the_old_ones():
    """New rows hold the given base and a zero residual; old rows and self are unchanged."""
    base, X, y = blobs(n_classes=4)
    names = np.array(["ant", "bee", "cat", "dog"])
    old = y < 3
    head = TaskResHead(base[:3], classes=names[:3], max_iter=10, device="cpu", random_state=0)
    head.fit(X[old], names[y[old]])
    state = copy.deepcopy(vars(head))
    extended = head.extend_classes(base[3:], ["dog"])
    assert_same_state(head, state)
    np.testing.assert_array_equal(extended.classes_, names)
    np.testing.assert_array_equal(extended.base_weights_[:3], head.base_weights_)
    np.testing.assert_array_equal(extended.base_weights_[3], base[3].astype(np.float32))
    np.testing.assert_array_equal(extended.residual_[:3], head.residual_)
    np.testing.assert_array_equal(extended.residual_[3], 0)
    expected = cosine_logits(X, np.vstack([head.base_weights_ + 0.5 * head.residual_,
                                           base[3:]]), 100.0)
    np.testing.assert_allclose(extended.decision_function(X), expected, rtol=1e-5, atol=1e-4)
    assert (extended.predict(X[~old]) == "dog").mean() > 0.8  # recognised from its base alone
    np.testing.assert_array_equal(extended.get_params()["classes"], names)


def test_extend_then_restrict_back_predicts_as_the_original():
    base, X, y = blobs(n_classes=3)
    head = TaskResHead(base, max_iter=10, device="cpu", random_state=0).fit(X, y)
    extra = np.random.RandomState(5).normal(size=(2, 16))
    back = head.extend_classes(extra, [3, 4]).restrict_classes([0, 1, 2])
    np.testing.assert_array_equal(back.decision_function(X), head.decision_function(X))
    np.testing.assert_array_equal(back.predict_proba(X), head.predict_proba(X))
    np.testing.assert_array_equal(back.predict(X), head.predict(X))


def test_extend_classes_keeps_labels_of_both_kinds():
    """Integer labels extended by names give an object label space, each label as it was."""
    base, X, y = blobs(n_classes=3)
    head = TaskResHead(base, max_iter=2, device="cpu").fit(X, y)
    extended = head.extend_classes(base[:1] + 1.0, ["zebra"])
    assert extended.classes_.tolist() == [0, 1, 2, "zebra"]


@pytest.mark.parametrize(
    "rows, classes, match",
    [(2, [1, 9], "expected classes that are not in classes_ yet; got 1, already a class"),
     (2, [7, 7], r"expected distinct classes; got \[7, 7\]"),
     (2, [7], r"expected classes of length 2 \(the rows of base_weights\); got shape \(1,\)"),
     (1, [7], None)],
)
def test_extend_classes_rejects_bad_input(rows, classes, match):
    base, X, y = blobs(n_classes=3)
    head = TaskResHead(base, max_iter=2, device="cpu").fit(X, y)
    new_base = np.ones((rows, 16))
    if match is None:  # the width of the base must be the fitted one
        with pytest.raises(ValueError, match=r"expected base_weights with 16 columns.*"
                                             r"got shape \(1, 8\)"):
            head.extend_classes(new_base[:, :8], classes)
        with pytest.raises(NotFittedError):
            TaskResHead().extend_classes(new_base, classes)
        return
    with pytest.raises(ValueError, match=match):
        head.extend_classes(new_base, classes)
