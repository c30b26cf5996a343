import collections
import random

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



# ---------------------------------------------------------------- Dassl's draws


def dassl_fewshot(draws, seed, repeat=True):
    """Dassl's generate_fewshot_dataset as CoOp's loaders call it, written out afresh.

    ``draws`` is a list of (items, shots): each items list holds (image, label)
    pairs. The global ``random`` is seeded once with the run's seed (Dassl's
    set_random_seed); each list is then split by label in order of first
    appearance and sampled per label, one list after the other from the same
    stream. Returns the sampled items of every list.
    """
    saved = random.getstate()
    random.seed(seed)
    try:
        outputs = []
        for items, shots in draws:
            by_label = collections.defaultdict(list)
            for item in items:
                by_label[item[1]].append(item)
            picked = []
            for group in by_label.values():
                if len(group) >= shots:
                    picked += random.sample(group, shots)
                elif repeat:
                    picked += random.choices(group, k=shots)
                else:
                    picked += group
            outputs.append(picked)
        return outputs
    finally:
        random.setstate(saved)


def unequal_split(sizes, seed):
    """(image, label) items with classes of the given sizes, interleaved out of label order."""
    rng = np.random.RandomState(seed)
    labels = np.repeat(rng.permutation(len(sizes)), sizes)
    rng.shuffle(labels)
    return [(f"img_{seed}_{i}.jpg", int(label)) for i, label in enumerate(labels)]


def labels_of(items):
    return [label for _, label in items]


@pytest.mark.parametrize("seed", [1, 2, 3, 2023])
@pytest.mark.parametrize("shots", [1, 2, 4, 8, 16])
def test_dassl_draws_match_an_independent_transcription(seed, shots):
    """Training then validation draws from one stream equal Dassl's, item for item and in order."""
    # Classes with fewer than 8 or 16 images, and validation classes with fewer than 4.
    train = unequal_split([30, 17, 9, 5, 16, 1], seed=seed)
    val = unequal_split([6, 4, 3, 2, 8, 1], seed=seed + 100)
    val_shots = min(shots, 4)
    expected_train, expected_val = dassl_fewshot([(train, shots), (val, val_shots)], seed)

    stream = random.Random(seed)
    got_train = sample_few_shot(labels_of(train), shots, method="dassl", random_state=stream)
    got_val = sample_few_shot(labels_of(val), val_shots, method="dassl", random_state=stream)
    assert [train[i] for i in got_train] == expected_train
    assert [val[i] for i in got_val] == expected_val
    assert len(got_train) == 6 * shots and len(got_val) == 6 * val_shots


@pytest.mark.parametrize("seed", [1, 7])
def test_dassl_int_seed_and_global_stream(seed):
    """An int seeds a fresh stream; None draws from Python's global random, as Dassl does."""
    items = unequal_split([5, 3, 2, 9], seed=seed)
    (expected,) = dassl_fewshot([(items, 4)], seed)
    by_int = sample_few_shot(labels_of(items), 4, method="dassl", random_state=seed)
    assert [items[i] for i in by_int] == expected
    saved = random.getstate()
    random.seed(seed)
    try:
        by_global = sample_few_shot(labels_of(items), 4, method="dassl")
    finally:
        random.setstate(saved)
    np.testing.assert_array_equal(by_global, by_int)


def test_dassl_without_repeat_takes_short_classes_whole():
    """repeat=False takes every image of a short class once, as Dassl does."""
    items = unequal_split([6, 2, 7, 1], seed=4)
    (expected,) = dassl_fewshot([(items, 3)], 11, repeat=False)
    got = sample_few_shot(labels_of(items), 3, method="dassl", repeat=False, random_state=11)
    assert [items[i] for i in got] == expected
    assert len(got) == 3 + 2 + 3 + 1


def test_dassl_order_is_dassls_not_sorted():
    """Classes come in order of first appearance and shots in sampling order, not sorted."""
    y = [2, 0, 2, 1, 0, 2, 1, 0, 2, 2]
    got = sample_few_shot(y, 2, method="dassl", random_state=3)
    assert [y[i] for i in got] == [2, 2, 0, 0, 1, 1]
    assert not np.all(np.diff(got) > 0)  # this seed draws a pair out of order


def test_random_state_must_suit_the_method():
    """A random.Random drives Dassl's draws only, a numpy RandomState NumPy's only."""
    with pytest.raises(ValueError, match="with method='numpy'; got a random.Random"):
        sample_few_shot([0, 1], 1, random_state=random.Random(0))
    with pytest.raises(ValueError, match="with method='dassl'; got RandomState"):
        sample_few_shot([0, 1], 1, method="dassl", random_state=np.random.RandomState(0))


def test_invalid_method():
    """method is 'numpy' or 'dassl'."""
    with pytest.raises(ValueError, match="'method' parameter of sample_few_shot must be"):
        sample_few_shot([0, 1], 1, method="torch")
