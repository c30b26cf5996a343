"""Few-shot subsets of a labelled set, drawn as the CoOp benchmark draws them."""

import random
from numbers import Integral

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions, validate_params


@validate_params(
    {
        "y": ["array-like"],
        "n_shots": [Interval(Integral, 1, None, closed="left")],
        "method": [StrOptions({"numpy", "dassl"})],
        "repeat": ["boolean"],
        "random_state": ["random_state", random.Random],
    },
    prefer_skip_nested_validation=True,
)
def sample_few_shot(y, n_shots, *, method="numpy", repeat=True, random_state=None):
    """Draw ``n_shots`` examples of every class, as the CoOp few-shot protocol does.

    For every class of ``y``, ``n_shots`` of its examples are drawn without
    replacement. A class with fewer than ``n_shots`` examples follows
    ``generate_fewshot_dataset`` of Dassl (the toolbox behind CoOp and
    TaskRes), whose default ``repeat=True`` draws ``n_shots`` of them *with*
    replacement, so that every class keeps ``n_shots`` entries; with
    ``repeat=False`` all of its examples are taken once.

    ``method="numpy"`` draws from NumPy's generator and returns the positions
    sorted: the same distribution as Dassl, not the same draws.
    ``method="dassl"`` makes Dassl's draws exactly: the classes are visited in
    order of first appearance in ``y``, and each calls Python's
    ``random.sample`` on the positions of its examples (``random.choices``
    for a class short of ``n_shots`` with ``repeat=True``), so that with the
    same seed and the same ``y`` the positions are those of the images Dassl
    picks, in Dassl's order. CoOp's dataset loaders draw the training set and
    then the validation set from one stream seeded with the run's seed; pass
    one ``random.Random(seed)`` to both calls to do the same.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Class labels, in the order of the dataset's list of images.
    n_shots : int
        Number of examples per class, at least 1.
    method : {"numpy", "dassl"}, default="numpy"
        Which random stream draws, see above.
    repeat : bool, default=True
        How to treat a class with fewer than ``n_shots`` examples: draw
        ``n_shots`` with replacement (True, as Dassl), or take them all (False).
    random_state : int, RandomState instance, random.Random instance or None, \
default=None
        Seeds the draw. With ``method="numpy"``: an int, a
        ``numpy.random.RandomState`` or None, as in scikit-learn. With
        ``method="dassl"``: an int (a fresh ``random.Random(seed)``, as
        Dassl's ``random.seed(seed)``), a ``random.Random`` whose state
        carries on from call to call, or None (Python's global ``random``
        stream, the one Dassl uses).

    Returns
    -------
    indices : ndarray of shape (n_selected,)
        Positions in ``y`` of the selected examples: sorted ascending with
        ``method="numpy"``, in Dassl's order with ``method="dassl"``. With
        ``repeat=True`` a position can appear more than once.

    Examples
    --------
    >>> import random
    >>> from sklearn_taskres.fewshot import sample_few_shot
    >>> y = ["cat", "cat", "cat", "dog", "dog", "dog", "dog"]
    >>> indices = sample_few_shot(y, 2, random_state=0)
    >>> [y[i] for i in indices]
    ['cat', 'cat', 'dog', 'dog']
    >>> len(set(indices))
    4
    >>> stream = random.Random(1)
    >>> train = sample_few_shot(y, 2, method="dassl", random_state=stream)
    >>> val = sample_few_shot(y, 1, method="dassl", random_state=stream)
    >>> [y[i] for i in train], [y[i] for i in val]
    (['cat', 'cat', 'dog', 'dog'], ['cat', 'dog'])
    """
    if isinstance(n_shots, bool):
        raise ValueError(f"expected n_shots to be an int >= 1; got the bool {n_shots}")
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"expected y to be a 1-D array of labels; got shape {y.shape}")
    if len(y) == 0:
        raise ValueError("expected at least one label in y; got an empty array")
    if method == "dassl":
        return _dassl_draw(y, n_shots, repeat, _python_random(random_state))
    if isinstance(random_state, random.Random):
        raise ValueError(
            "expected random_state to be an int, a numpy RandomState or None with "
            "method='numpy'; got a random.Random instance (it drives method='dassl')"
        )
    rng = check_random_state(random_state)

    _, codes = np.unique(y, return_inverse=True)
    members_of_class = np.split(np.argsort(codes, kind="stable"), np.cumsum(np.bincount(codes)))
    chosen = []
    for members in members_of_class[:-1]:
        if len(members) >= n_shots:
            chosen.append(rng.choice(members, n_shots, replace=False))
        elif repeat:
            chosen.append(rng.choice(members, n_shots, replace=True))
        else:
            chosen.append(members)
    return np.sort(np.concatenate(chosen))


def _python_random(random_state):
    if random_state is None:
        return random  # the module's functions draw from Python's global stream
    if isinstance(random_state, random.Random):
        return random_state
    if isinstance(random_state, Integral):
        return random.Random(int(random_state))
    raise ValueError(
        "expected random_state to be an int, a random.Random instance or None with "
        f"method='dassl'; got {type(random_state).__name__}"
    )


def _dassl_draw(y, n_shots, repeat, rng):
    # Positions grouped by label in order of first appearance, as Dassl's
    # split_dataset_by_label groups its items. random.sample and
    # random.choices pick by position, so drawing positions picks the same
    # items as drawing the items themselves.
    members_of_label = {}
    for position, label in enumerate(y.tolist()):
        members_of_label.setdefault(label, []).append(position)
    chosen = []
    for members in members_of_label.values():
        if len(members) >= n_shots:
            chosen.extend(rng.sample(members, n_shots))
        elif repeat:
            chosen.extend(rng.choices(members, k=n_shots))
        else:
            chosen.extend(members)
    return np.asarray(chosen, dtype=np.intp)
