"""Few-shot subsets of a labelled set, drawn as the CoOp benchmark draws them."""

from numbers import Integral

import numpy as np
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, validate_params


@validate_params(
    {
        "y": ["array-like"],
        "n_shots": [Interval(Integral, 1, None, closed="left")],
        "repeat": ["boolean"],
        "random_state": ["random_state"],
    },
    prefer_skip_nested_validation=True,
)
def sample_few_shot(y, n_shots, *, repeat=True, random_state=None):
    """Draw ``n_shots`` examples of every class, as the CoOp few-shot protocol does.

    For every class of ``y``, ``n_shots`` of its examples are drawn without
    replacement. A class with fewer than ``n_shots`` examples follows
    ``generate_fewshot_dataset`` of Dassl (the toolbox behind CoOp and
    TaskRes), whose default ``repeat=True`` draws ``n_shots`` of them *with*
    replacement, so that every class keeps ``n_shots`` entries; with
    ``repeat=False`` all of its examples are taken once. The draws are not the
    ones Dassl makes (it uses Python's ``random``), only their distribution.

    Parameters
    ----------
    y : array-like of shape (n_samples,)
        Class labels.
    n_shots : int
        Number of examples per class, at least 1.
    repeat : bool, default=True
        How to treat a class with fewer than ``n_shots`` examples: draw
        ``n_shots`` with replacement (True, as Dassl), or take them all (False).
    random_state : int, RandomState instance or None, default=None
        Seeds the draw; an int gives the same indices on every call.

    Returns
    -------
    indices : ndarray of shape (n_selected,)
        Positions in ``y`` of the selected examples, sorted ascending. With
        ``repeat=True`` a position can appear more than once.

    Examples
    --------
    >>> from sklearn_taskres.fewshot import sample_few_shot
    >>> y = ["cat", "cat", "cat", "dog", "dog", "dog", "dog"]
    >>> indices = sample_few_shot(y, 2, random_state=0)
    >>> [y[i] for i in indices]
    ['cat', 'cat', 'dog', 'dog']
    >>> len(set(indices))
    4
    """
    if isinstance(n_shots, bool):
        raise ValueError(f"expected n_shots to be an int >= 1; got the bool {n_shots}")
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"expected y to be a 1-D array of labels; got shape {y.shape}")
    if len(y) == 0:
        raise ValueError("expected at least one label in y; got an empty array")
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
