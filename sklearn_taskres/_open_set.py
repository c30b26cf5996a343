"""A "none of these" score on embeddings: the text side, the class prototypes, the none images.

Pure functions of NumPy arrays; the estimators store the fitted state. The score of an
image is the sum of three standardised terms, each larger for an image of no class:

- **text**: the energy of the zero-shot logits, ``-logsumexp(s * cos(z, t)) / s``: an
  image far from every class name (MCM's family of scores, Ming et al., NeurIPS 2022;
  the energy keeps the magnitude that the maximum softmax normalises away);
- **prototype**: ``-max_k cos(z, p_k)``, with ``p_k`` the mean labelled embedding of class
  ``k``: an image unlike every labelled class;
- **none**: ``max_j cos(z, n_j) - max_k cos(z, p_k)``, with ``n_j`` the images marked none:
  an image closer to one of them than to any class (only with two or more of them).

Each term is standardised by its mean and spread over the labelled images of the classes,
scored leave-one-out (an image's own class prototype is the mean of the *other* images of
its class), so that the threshold chosen from them holds on new images.
"""

import numpy as np

#: The label that marks an image of none of the classes in ``y`` (and the folder name).
NONE_LABEL = "_none"
#: Share of the labelled images of the classes that the threshold from the labels keeps.
KEPT_SHARE = 0.95
#: Fewest images marked none for the "none" term (leave-one-out needs another one).
MIN_NONE = 2


def _normalize_rows(array):
    array = np.asarray(array, dtype=np.float64)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return array / np.maximum(norms, np.finfo(np.float64).tiny)


def none_mask(y, none_label):
    """Boolean mask of the labels of ``y`` equal to ``none_label``."""
    return np.fromiter((label == none_label for label in np.asarray(y).tolist()), dtype=bool,
                       count=len(y))


def text_energy(X, text_weights, logit_scale):
    """``-logsumexp(logit_scale * cos(X, text_weights)) / logit_scale`` per row of ``X``."""
    # NumPy's own logsumexp: the command line imports this module, scipy.special costs 0.3 s.
    logits = logit_scale * (_normalize_rows(X) @ _normalize_rows(text_weights).T)
    top = logits.max(axis=1)
    return -(top + np.log(np.exp(logits - top[:, None]).sum(axis=1))) / logit_scale


def class_prototypes(X, targets, n_classes):
    """Per class, the normalised mean of the normalised rows of ``X``; zero rows when absent."""
    sums = np.zeros((n_classes, X.shape[1]))
    np.add.at(sums, targets, _normalize_rows(X))
    return _normalize_rows(sums)


def _max_prototype_cosine(X, prototypes):
    present = np.linalg.norm(prototypes, axis=1) > 0
    return (_normalize_rows(X) @ prototypes[present].T).max(axis=1)


def _components(X, prototypes, none_features, text_weights, logit_scale):
    """The three raw terms (n_samples, 3); the none term is 0 without enough none images."""
    X = _normalize_rows(X)
    prototype = _max_prototype_cosine(X, prototypes)
    none = np.zeros(len(X))
    if len(none_features) >= MIN_NONE:
        none = (X @ _normalize_rows(none_features).T).max(axis=1) - prototype
    return np.stack([text_energy(X, text_weights, logit_scale), -prototype, none], axis=1)


def _leave_one_out_components(known, targets, none_features, text_weights, logit_scale):
    """The raw terms of every labelled image, its own image left out of its class prototype."""
    known = _normalize_rows(known)
    n_classes = int(targets.max()) + 1
    sums = np.zeros((n_classes, known.shape[1]))
    np.add.at(sums, targets, known)
    counts = np.bincount(targets, minlength=n_classes)
    cosines = known @ _normalize_rows(sums).T
    own = sums[targets] - known  # each image's class sum without itself
    own_norms = np.linalg.norm(own, axis=1)
    cosines[np.arange(len(known)), targets] = np.where(
        own_norms > 0, np.einsum("ij,ij->i", known, own) / np.maximum(own_norms, 1e-300), -np.inf
    )
    cosines[:, counts == 0] = -np.inf
    prototype = cosines.max(axis=1)
    # an image alone in the only labelled class has no prototype left: its best is 0.
    prototype = np.where(np.isfinite(prototype), prototype, 0.0)
    none = np.zeros(len(known))
    if len(none_features) >= MIN_NONE:
        none = (known @ _normalize_rows(none_features).T).max(axis=1) - prototype
    return np.stack([text_energy(known, text_weights, logit_scale), -prototype, none], axis=1)


def fit_open_set(known, targets, none_features, text_weights, logit_scale, n_classes):
    """The fitted state of the score, and the scores of the labelled images (leave-one-out).

    Parameters
    ----------
    known : ndarray of shape (n_known, n_features)
        Embeddings of the labelled images of the classes.
    targets : ndarray of shape (n_known,)
        Their class indices, ``0 .. n_classes - 1``.
    none_features : ndarray of shape (n_none, n_features)
        Embeddings of the images marked none (possibly empty).
    text_weights : ndarray of shape (n_classes, n_features)
        The zero-shot (text) classifier.
    logit_scale : float
        Temperature of the cosine logits.
    n_classes : int
        Size of the label space.

    Returns
    -------
    state : dict
        ``prototypes`` (n_classes, n_features), ``none_features``, ``calibration``
        (2, 3: mean and spread of every term) and ``threshold``, the score that keeps
        ``KEPT_SHARE`` of the labelled images.
    known_scores : ndarray of shape (n_known,)
        The leave-one-out scores of the labelled images.
    """
    targets = np.asarray(targets, dtype=np.int64)
    none_features = np.asarray(none_features, dtype=np.float32).reshape(-1, known.shape[1])
    raw = _leave_one_out_components(known, targets, none_features, text_weights, logit_scale)
    mean = raw.mean(axis=0)
    spread = raw.std(axis=0)
    spread = np.where(spread > 1e-12, spread, 1.0)
    calibration = np.stack([mean, spread])
    known_scores = ((raw - mean) / spread).sum(axis=1)
    return {
        "prototypes": class_prototypes(known, targets, n_classes).astype(np.float32),
        "none_features": _normalize_rows(none_features).astype(np.float32),
        "calibration": calibration,
        "threshold": float(np.quantile(known_scores, KEPT_SHARE, method="higher")),
    }, known_scores


def unknown_scores(X, prototypes, none_features, calibration, text_weights, logit_scale):
    """The "none of these" score of every row of ``X``: higher is less like any class."""
    raw = _components(X, prototypes, none_features, text_weights, logit_scale)
    return ((raw - calibration[0]) / calibration[1]).sum(axis=1)
