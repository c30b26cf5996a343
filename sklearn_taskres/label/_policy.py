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

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
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


# ---------------------------------------------------------------- the cold start

#: Labels per class of the cold start, where the page covers the pool instead of asking a
#: model that has seen too few labels to be trusted.
COLD_START_PER_CLASS = 4


def coverage_clusters(features, n_clusters, random_state=None):
    """Clusters of the pool and how central every image is in its own, for a cold start.

    At low budgets, labelling a typical image of each of the largest clusters of
    the pool beats both random and uncertainty-based choices (TypiClust:
    Hacohen et al., ICML 2022, "Active learning on a budget"). The features are
    normalised and clustered with k-means; an image's typicality is how near
    it lies to its cluster's centre (on 400 bold digits, 20 images nearest the
    centres trained TaskRes to 0.499 on a test set, those of densest
    neighbourhoods to 0.485, 20 random ones to 0.465; 8 seeds).

    Parameters
    ----------
    features : ndarray of shape (n_images, n_features)
        Image features (any scale: they are normalised).
    n_clusters : int
        How many clusters (at most ``n_images``).
    random_state : int, RandomState instance or None
        Seeds k-means.

    Returns
    -------
    clusters : ndarray of int, shape (n_images,)
        The cluster of every image, numbered by size: 0 is the largest.
    typicality : ndarray of shape (n_images,)
        Higher nearer the centre: minus the distance to it.
    """
    from sklearn.cluster import KMeans

    features = np.asarray(features, dtype=np.float64)
    features = features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    n_clusters = max(1, min(int(n_clusters), len(features)))
    seed = check_random_state(random_state).randint(2**31 - 1)
    with warnings.catch_warnings():
        # Fewer distinct images than clusters (copies of one file): some clusters stay empty.
        warnings.simplefilter("ignore", ConvergenceWarning)
        kmeans = KMeans(n_clusters, n_init=1, random_state=seed).fit(features)
    found = kmeans.labels_
    by_size = np.argsort(-np.bincount(found, minlength=n_clusters), kind="stable")
    rank = np.empty(n_clusters, dtype=int)
    rank[by_size] = np.arange(n_clusters)
    typicality = -np.linalg.norm(features - kmeans.cluster_centers_[found], axis=1)
    return rank[found], typicality


def coverage_images(clusters, typicality, available, decided, *, n_images=1):
    """The cold start's picks: the most typical available image of each uncovered cluster.

    Clusters are taken largest first; a cluster is covered once it holds a
    decided image (or a pick of this call). When every cluster is covered, the
    clusters with the fewest decided images per member come next.

    Parameters
    ----------
    clusters : ndarray of int, shape (n_pool,)
        As :func:`coverage_clusters` numbers them (0 the largest); -1 for an
        image that is not clustered (not encoded yet).
    typicality : ndarray of shape (n_pool,)
    available : ndarray of bool, shape (n_pool,)
        The images that may be shown.
    decided : ndarray of bool, shape (n_pool,)
        The images decided so far.
    n_images : int, default=1

    Returns
    -------
    picks : list of int
        Indices into the pool, in showing order.

    Examples
    --------
    >>> import numpy as np
    >>> clusters = np.array([0, 0, 0, 1, 1, 2])
    >>> typicality = np.array([1., 3., 2., 1., 2., 1.])
    >>> coverage_images(clusters, typicality, np.ones(6, bool), np.zeros(6, bool), n_images=3)
    [1, 4, 5]
    """
    clusters = np.asarray(clusters)
    left = np.asarray(available, dtype=bool) & (clusters >= 0)
    n_clusters = int(clusters.max()) + 1 if len(clusters) and clusters.max() >= 0 else 0
    sizes = np.bincount(clusters[clusters >= 0], minlength=n_clusters).astype(float)
    covered = np.bincount(clusters[np.asarray(decided, bool) & (clusters >= 0)],
                          minlength=n_clusters).astype(float)
    picks = []
    while len(picks) < n_images and left.any():
        open_clusters = np.unique(clusters[left])
        # Fewest decided images per member first; among equals the largest (lowest number).
        share = covered[open_clusters] / sizes[open_clusters]
        cluster = open_clusters[np.lexsort((open_clusters, share))[0]]
        members = np.flatnonzero(left & (clusters == cluster))
        index = int(members[np.argmax(typicality[members])])
        picks.append(index)
        left[index] = False
        covered[cluster] += 1
    return picks
