"""Sample and class weights: validated, then combined into one weight per sample.

The meaning is scikit-learn's (as in ``LogisticRegression``): the weight of a
sample is its class weight times its sample weight, and ``"balanced"`` gives
class ``c`` the weight ``n_samples / (n_classes_in_y * n_samples_of_c)``, what
``sklearn.utils.class_weight.compute_sample_weight`` gives.
"""

from collections.abc import Mapping
from numbers import Real

import numpy as np


def check_sample_weight(sample_weight, n_samples):
    """``sample_weight`` as a float64 array of shape (n_samples,), or None.

    A scalar weighs every sample alike. Raises a ValueError naming the first
    weight that is not finite or is negative, or a length that does not match.
    """
    if sample_weight is None:
        return None
    try:
        weights = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"expected sample_weight to hold numbers; got {_shown(sample_weight)}"
        ) from None
    if weights.ndim == 0:
        weights = np.full(n_samples, float(weights))
    if weights.shape != (n_samples,):
        raise ValueError(
            f"expected sample_weight of shape ({n_samples},), one weight per sample; "
            f"got shape {weights.shape}"
        )
    _check_values(weights, "sample_weight[{}]")
    if n_samples and not weights.any():
        raise ValueError(
            f"expected a positive sample weight for at least one sample; got weights that "
            f"are all zero ({n_samples} samples)"
        )
    return weights


def training_weights(sample_weight, class_weight, classes, targets):
    """One weight per sample: class weight x sample weight; None when both are None.

    Parameters
    ----------
    sample_weight : ndarray of shape (n_samples,) or None
        Validated by :func:`check_sample_weight`.
    class_weight : None, "balanced" or mapping {label: weight}
        Labels absent from the mapping weigh 1; every key must be one of
        ``classes``.
    classes : ndarray of shape (n_classes,)
        The label space.
    targets : ndarray of shape (n_samples,)
        Index into ``classes`` of every sample.

    Returns
    -------
    weights : ndarray of shape (n_samples,) or None
    """
    if class_weight is None:
        return sample_weight
    per_class = class_weights(class_weight, classes, targets)
    weights = per_class[targets]
    if sample_weight is not None:
        weights = weights * sample_weight
    if len(weights) and not weights.any():
        raise ValueError(
            "expected a positive weight (class weight x sample weight) for at least one "
            f"sample; got zero for all {len(weights)} samples with class_weight={class_weight!r}"
        )
    return weights


def class_weights(class_weight, classes, targets):
    """The weight of every class of ``classes`` (float64, shape (n_classes,))."""
    n_classes = len(classes)
    if isinstance(class_weight, str):  # "balanced", validated by the estimator
        counts = np.bincount(targets, minlength=n_classes)
        present = counts > 0
        weights = np.zeros(n_classes)
        weights[present] = len(targets) / (present.sum() * counts[present])
        return weights
    if not isinstance(class_weight, Mapping):
        raise ValueError(
            f"expected class_weight to be None, 'balanced' or a mapping {{label: weight}}; "
            f"got {_shown(class_weight)}"
        )
    index = {label: row for row, label in enumerate(classes.tolist())}
    unknown = [label for label in class_weight if label not in index]
    if unknown:
        shown = ", ".join(repr(label) for label in unknown[:5])
        raise ValueError(
            f"expected every key of class_weight to be one of classes_ "
            f"{classes.tolist()[:20]}{' ...' if n_classes > 20 else ''}; got unknown "
            f"label(s) {shown}"
        )
    weights = np.ones(n_classes)
    for label, weight in class_weight.items():
        if not isinstance(weight, Real) or isinstance(weight, bool):
            raise ValueError(
                f"class_weight[{label!r}]: expected a non-negative number; got {weight!r}"
            )
        weights[index[label]] = weight
    _check_values(weights, "class_weight[{}]", labels=classes.tolist())
    return weights


def _check_values(weights, where, labels=None):
    """Raise a ValueError naming the first weight that is NaN, infinite or negative."""
    for bad, expected in ((~np.isfinite(weights), "a finite weight"),
                          (weights < 0, "a non-negative weight")):
        positions = np.flatnonzero(bad)
        if len(positions):
            first = positions[0]
            name = where.format(first if labels is None else repr(labels[first]))
            more = f" and {len(positions) - 1} more" if len(positions) > 1 else ""
            raise ValueError(f"{name}: expected {expected}; got {weights[first]}{more}")


def _shown(value):
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
