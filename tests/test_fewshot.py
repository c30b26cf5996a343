import numpy as np
import pytest

from sklearn_taskres.fewshot import sample_few_shot


def counts(y, indices):
    labels, n = np.unique(np.asarray(y)[indices], return_counts=True)
    return dict(zip(labels.tolist(), n.tolist(), strict=True))


def test_draws_n_shots_distinct_examples_per_class():
    """Every class gets exactly n_shots examples, none repeated, indices sorted."""
    y = np.repeat([0, 1, 2], [10, 7, 5])
    indices = sample_few_shot(y, 4, random_state=0)
    assert counts(y, indices) == {0: 4, 1: 4, 2: 4}
    assert len(set(indices.tolist())) == 12
    assert np.all(np.diff(indices) > 0)
    assert indices.dtype.kind == "i"


def test_string_labels():
    """Labels may be strings, such as ImageNet's wnids."""
    y = ["n01", "n02", "n01", "n02", "n03", "n03", "n01"]
    indices = sample_few_shot(y, 2, random_state=1)
    assert counts(y, indices) == {"n01": 2, "n02": 2, "n03": 2}


def test_deterministic_under_an_int_random_state():
    """The same int seed gives the same draw; another seed gives another one."""
    y = np.repeat(np.arange(5), 20)
    first = sample_few_shot(y, 3, random_state=42)
    np.testing.assert_array_equal(first, sample_few_shot(y, 3, random_state=42))
    assert not np.array_equal(first, sample_few_shot(y, 3, random_state=43))


def test_random_state_instance_advances():
    """A RandomState instance is consumed, so successive draws differ."""
    y = np.repeat(np.arange(5), 20)
    rng = np.random.RandomState(0)
    assert not np.array_equal(
        sample_few_shot(y, 3, random_state=rng), sample_few_shot(y, 3, random_state=rng)
    )


def test_every_example_can_be_drawn():
    """Draws cover a whole class over many seeds (no member is never picked)."""
    y = np.array([0, 0, 0, 0, 1])
    drawn = np.concatenate([sample_few_shot(y, 1, random_state=s) for s in range(200)])
    assert set(drawn.tolist()) == {0, 1, 2, 3, 4}


def test_short_class_is_filled_with_replacement_as_dassl():
    """A class with fewer examples than n_shots is drawn with replacement to n_shots."""
    y = np.array([0, 0, 0, 0, 0, 1, 1])
    indices = sample_few_shot(y, 4, random_state=0)
    assert counts(y, indices) == {0: 4, 1: 4}
    assert set(indices[y[indices] == 1].tolist()) <= {5, 6}


def test_short_class_taken_whole_without_repeat():
    """With repeat=False a short class contributes all its examples once."""
    y = np.array([0, 0, 0, 0, 0, 1, 1])
    indices = sample_few_shot(y, 4, repeat=False, random_state=0)
    assert counts(y, indices) == {0: 4, 1: 2}
    assert {5, 6} <= set(indices.tolist())


@pytest.mark.parametrize("n_shots", [0, -1, 1.5, "2", None])
def test_invalid_n_shots(n_shots):
    """n_shots must be an int >= 1."""
    with pytest.raises(ValueError, match="'n_shots' parameter of sample_few_shot must be"):
        sample_few_shot([0, 1], n_shots)


def test_bool_n_shots_is_rejected():
    """True is an int to Python, but not a number of shots."""
    with pytest.raises(ValueError, match="expected n_shots to be an int >= 1; got the bool"):
        sample_few_shot([0, 1], True)


def test_two_dimensional_y():
    """y must be one label per sample."""
    with pytest.raises(ValueError, match=r"expected y to be a 1-D array of labels; got shape"):
        sample_few_shot([[0, 1], [1, 0]], 1)


def test_empty_y():
    """An empty y has nothing to draw from."""
    with pytest.raises(ValueError, match="expected at least one label in y; got an empty"):
        sample_few_shot([], 1)


def test_invalid_random_state():
    """random_state follows scikit-learn's convention."""
    with pytest.raises(ValueError, match="'random_state' parameter"):
        sample_few_shot([0, 1], 1, random_state="seed")
