"""The order in which the labelling page shows images: a pure function of the model's view.

Uncertainty alone is not class-balanced: on 200 digits, the 20 images of
smallest margin held no 0 and no 1, and a model fitted on them was worse than
zero-shot. So every pick that is not a random audit asks for the class with
the fewest labels so far: among the images the model finds most likely of
that class (as many as a class would hold in a balanced folder), the one on
which it hesitates most (smallest margin between its two most probable
classes). The class rotation gives diversity; the margin gives information.

A share of the picks is drawn uniformly at random from the unlabelled images
instead: the prediction a model made on such an image before the person
labelled it is an unbiased sample of its accuracy on the unlabelled images
(prequential evaluation; see :mod:`._estimate`).
"""

import numpy as np
from sklearn.utils import check_random_state

#: Share of the picks drawn uniformly at random, the audit images.
AUDIT_SHARE = 0.25


def margins(proba):
    """The difference between the two largest probabilities of every row."""
    if proba.shape[1] < 2:
        return np.ones(len(proba))
    top_two = np.partition(proba, -2, axis=1)[:, -2:]
    return top_two[:, 1] - top_two[:, 0]


def next_images(proba, available, label_counts, random_state=None, *, n_images=1,
                audit_share=AUDIT_SHARE):
    """The images to show next, and which of them are random audits.

    Parameters
    ----------
    proba : ndarray of shape (n_pool, n_classes)
        Class probabilities of the model being trained, for every image of the pool.
    available : ndarray of bool, shape (n_pool,)
        The images that may be shown: encoded, not labelled, not held by the page.
    label_counts : ndarray of shape (n_classes,)
        Labelled images per class so far.
    random_state : int, RandomState instance or None
        Draws the audits and breaks ties between classes.
    n_images : int, default=1
        How many images to pick (fewer when fewer are available).
    audit_share : float, default=0.25
        Probability that a pick is drawn uniformly at random.

    Returns
    -------
    picks : list of (int, bool)
        ``(index into the pool, whether it is an audit)``, in showing order.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_taskres.label import next_images
    >>> proba = np.array([[.9, .1], [.6, .4], [.2, .8], [.45, .55]])
    >>> next_images(proba, np.ones(4, bool), np.array([3, 0]), 0, n_images=2, audit_share=0)
    [(3, False), (1, False)]
    """
    rng = check_random_state(random_state)
    proba = np.asarray(proba, dtype=np.float64)
    left = np.asarray(available, dtype=bool).copy()
    counts = np.asarray(label_counts, dtype=np.float64).copy()
    n_classes = proba.shape[1]
    image_margins = margins(proba)
    picks = []
    while len(picks) < n_images and left.any():
        candidates = np.flatnonzero(left)
        if rng.random_sample() < audit_share:
            index, audit = int(rng.choice(candidates)), True
        else:
            fewest = np.flatnonzero(counts == counts.min())
            wanted = int(rng.choice(fewest))
            # The images a balanced folder would hold of the class, most likely first.
            n_likely = max(1, -(-len(candidates) // n_classes))
            order = np.argsort(-proba[candidates, wanted], kind="stable")[:n_likely]
            likely = candidates[order]
            index, audit = int(likely[np.argmin(image_margins[likely])]), False
            counts[wanted] += 1  # the next pick of this call asks for another class
        picks.append((index, audit))
        left[index] = False
    return picks
