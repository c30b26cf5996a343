"""Property-based tests of TaskResHead over random shapes, label types and class counts."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.base import clone

from sklearn_taskres import TaskResHead

LABEL_KINDS = {
    "int": lambda k: np.arange(k) * 3 - 2,
    "str": lambda k: np.array([f"class {i}" for i in range(k)]),
    "float": lambda k: np.arange(k) * 2.0,  # integral: sklearn reads other floats as regression
    "bool": lambda k: np.array([False, True][:k]),
}


@st.composite
def problems(draw):
    kind = draw(st.sampled_from(sorted(LABEL_KINDS)))
    n_classes = 2 if kind == "bool" else draw(st.integers(2, 6))
    n_features = draw(st.integers(1, 12))
    n_samples = draw(st.integers(n_classes, 40))
    seed = draw(st.integers(0, 2**16))
    rng = np.random.RandomState(seed)
    labels = LABEL_KINDS[kind](n_classes)
    extra = rng.randint(0, n_classes, n_samples - n_classes)
    codes = np.concatenate([np.arange(n_classes), extra])
    X = rng.normal(size=(n_samples, n_features)) * draw(st.sampled_from([1e-3, 1.0, 1e3]))
    with_base = draw(st.booleans())
    return X, labels[codes], labels, with_base, seed


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problems(), st.integers(1, 64), st.floats(0.0, 2.0))
def test_probabilities_are_distributions_over_classes(problem, batch_size, alpha):
    X, y, labels, with_base, seed = problem
    params = dict(alpha=alpha, max_iter=3, batch_size=batch_size, device="cpu",
                  random_state=seed)
    if with_base:
        base = np.random.RandomState(seed + 1).normal(size=(len(labels), X.shape[1]))
        head = TaskResHead(base, classes=labels, **params)
    else:
        head = TaskResHead(**params)
    head.fit(X, y)
    proba = head.predict_proba(X)
    assert proba.shape == (len(X), len(labels))
    assert np.all(np.isfinite(proba)) and np.all(proba >= 0)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-9)
    assert np.all(np.isfinite(head.decision_function(X)))
    assert np.all(np.isfinite(head.residual_)) and np.all(np.isfinite(head.loss_curve_))
    assert set(head.predict(X).tolist()) <= set(head.classes_.tolist())
    assert sorted(head.classes_.tolist()) == sorted(labels.tolist())


@settings(max_examples=15, deadline=None)
@given(problems())
def test_same_random_state_same_residual_across_clones(problem):
    X, y, _, _, seed = problem
    head = TaskResHead(max_iter=4, batch_size=8, device="cpu", random_state=seed).fit(X, y)
    again = clone(head).fit(X, y)
    np.testing.assert_array_equal(again.residual_, head.residual_)
    assert again.loss_curve_ == head.loss_curve_


@pytest.mark.parametrize("kind", sorted(LABEL_KINDS))
def test_every_label_kind_round_trips_through_predict(kind):
    labels = LABEL_KINDS[kind](2)
    rng = np.random.RandomState(0)
    X = np.concatenate([rng.normal(3, 1, (10, 4)), rng.normal(-3, 1, (10, 4))])
    y = np.repeat(labels, 10)
    head = TaskResHead(max_iter=20, device="cpu", random_state=0).fit(X, y)
    assert head.predict(X).dtype == y.dtype
    assert head.score(X, y) == 1.0
