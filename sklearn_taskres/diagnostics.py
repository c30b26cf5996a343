"""How far the learned task residual moves a fitted model away from its base.

TaskRes classifies with ``t' = t + alpha * x``: the frozen base ``t``
(``base_weights_``) plus the scaled residual ``alpha * x`` (``alpha_ *
residual_``). The size of ``alpha * x`` per class, absolute or relative to
``t``, says where the base needed the most correction on the task.
"""

import numpy as np
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from ._classifier import TaskResClassifier
from ._head import TaskResHead

__all__ = [
    "relative_residual_magnitude",
    "relative_residual_magnitude_per_class",
    "relative_residual_report",
    "residual_norms",
]


def _fitted_head(estimator):
    """The fitted TaskResHead behind ``estimator``, which predictions go through."""
    if isinstance(estimator, Pipeline):
        estimator = estimator[-1]
    if not isinstance(estimator, (TaskResHead, TaskResClassifier)):
        raise TypeError(
            "expected a TaskResHead, a TaskResClassifier or a Pipeline ending in one; "
            f"got {type(estimator).__name__}"
        )
    check_is_fitted(estimator)
    # A TaskResClassifier predicts through head_, so head_.alpha_ is the alpha
    # that scales its residual.
    return estimator.head_ if isinstance(estimator, TaskResClassifier) else estimator


def residual_norms(estimator):
    """L2 norm of the scaled task residual ``alpha_ * residual_`` of every class.

    This is the length of the correction that TaskRes adds to the base row of
    each class, in the units of the base (for CLIP, of the raw text
    embeddings). It is linear in ``alpha_`` for a given ``residual_``: twice
    the alpha, twice the norm; with ``alpha=0`` (zero-shot) it is zero.

    Parameters
    ----------
    estimator : TaskResHead, TaskResClassifier or Pipeline
        A fitted estimator, or a fitted Pipeline whose last step is one.

    Returns
    -------
    norms : ndarray of shape (n_classes,)
        ``||alpha_ * residual_[k]||`` in float64; entries follow ``classes_``.

    Raises
    ------
    NotFittedError
        If the estimator is not fitted.
    TypeError
        If the estimator is neither a TaskResHead nor a TaskResClassifier.

    See Also
    --------
    relative_residual_magnitude_per_class : The same norms divided by those of
        the base rows.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_taskres import TaskResHead
    >>> from sklearn_taskres.diagnostics import residual_norms
    >>> rng = np.random.RandomState(0)
    >>> base = rng.normal(size=(3, 16))
    >>> y = np.repeat([0, 1, 2], 10)
    >>> X = base[y] + 0.5 * rng.normal(size=(30, 16))
    >>> head = TaskResHead(base, max_iter=20, device="cpu", random_state=0).fit(X, y)
    >>> norms = residual_norms(head)
    >>> norms.shape
    (3,)
    >>> bool(np.allclose(norms, np.linalg.norm(head.alpha_ * head.residual_, axis=1)))
    True
    """
    return _fitted_head(estimator).residual_norms_


def relative_residual_magnitude_per_class(estimator):
    """Norm of the scaled residual over the norm of the base, for every class.

    For class ``k``: ``||alpha_ * x_k|| / ||t_k||``, with ``x_k`` the row of
    ``residual_`` and ``t_k`` the row of ``base_weights_``. Since
    predictions use cosines, the ratio and not either norm alone says how far
    the residual can turn the class's row: at most
    ``arcsin(ratio)`` radians when the ratio is below 1.

    Parameters
    ----------
    estimator : TaskResHead, TaskResClassifier or Pipeline
        A fitted estimator, or a fitted Pipeline whose last step is one.

    Returns
    -------
    magnitudes : ndarray of shape (n_classes,)
        Entries follow ``classes_``. It scales with ``alpha_`` as
        :func:`residual_norms` does. A zero base row gives ``inf`` (``nan``
        when its residual is zero too).

    Raises
    ------
    NotFittedError
        If the estimator is not fitted.
    TypeError
        If the estimator is neither a TaskResHead nor a TaskResClassifier.

    See Also
    --------
    relative_residual_magnitude : Their mean over classes.
    relative_residual_report : Mean, median, max and the per-class values.

    Examples
    --------
    Classes 2 and 3 lie close together and the base cannot tell them apart,
    so their rows need a residual and the others hardly any:

    >>> import numpy as np
    >>> from sklearn_taskres import TaskResHead
    >>> from sklearn_taskres.diagnostics import relative_residual_magnitude_per_class
    >>> rng = np.random.RandomState(0)
    >>> centers = rng.normal(size=(4, 64))
    >>> centers[3] = centers[2] + rng.normal(size=64)
    >>> y = np.repeat([0, 1, 2, 3], 10)
    >>> X = centers[y] + 0.3 * rng.normal(size=(40, 64))
    >>> base = centers.copy()
    >>> base[3] = base[2]
    >>> head = TaskResHead(base, learning_rate=1e-2, max_iter=30, device="cpu",
    ...                    random_state=0).fit(X, y)
    >>> magnitudes = relative_residual_magnitude_per_class(head)
    >>> (magnitudes > 0.01).tolist()
    [False, False, True, True]
    """
    head = _fitted_head(estimator)
    base_norms = np.linalg.norm(head.base_weights_.astype(np.float64), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return head.residual_norms_ / base_norms


def relative_residual_magnitude(estimator):
    """Mean over classes of ``||alpha_ * x_k|| / ||t_k||``.

    The TaskRes paper (Yu et al., CVPR 2023) relates the magnitude of the
    learned task residual, relative to the base classifier, to how hard it is
    to transfer CLIP to the task. Here that magnitude is defined as the
    unweighted mean, over the ``K`` classes, of the ratio of the norm of the
    scaled residual row ``alpha_ * x_k`` to the norm of the base row ``t_k``::

        (1 / K) * sum_k ||alpha_ * x_k|| / ||t_k||

    Per-class ratios make classes with a long base row count as much as the
    others. Compare values between fits with the same ``alpha`` and the same
    training budget: the ratio scales with ``alpha_`` and depends on the
    number of epochs and the learning rate.

    Parameters
    ----------
    estimator : TaskResHead, TaskResClassifier or Pipeline
        A fitted estimator, or a fitted Pipeline whose last step is one.

    Returns
    -------
    magnitude : float
        The mean of :func:`relative_residual_magnitude_per_class`.

    Raises
    ------
    NotFittedError
        If the estimator is not fitted.
    TypeError
        If the estimator is neither a TaskResHead nor a TaskResClassifier.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_taskres import TaskResHead
    >>> from sklearn_taskres.diagnostics import relative_residual_magnitude
    >>> rng = np.random.RandomState(0)
    >>> base = rng.normal(size=(3, 16))
    >>> y = np.repeat([0, 1, 2], 10)
    >>> X = base[y] + 0.5 * rng.normal(size=(30, 16))
    >>> head = TaskResHead(base, max_iter=20, device="cpu", random_state=0).fit(X, y)
    >>> magnitude = relative_residual_magnitude(head)
    >>> isinstance(magnitude, float), magnitude >= 0
    (True, True)
    >>> relative_residual_magnitude(head.set_params(alpha=0.0).fit(X, y))
    0.0
    """
    return float(np.mean(relative_residual_magnitude_per_class(estimator)))


def relative_residual_report(estimator):
    """Summary of the relative residual magnitudes of a fitted model.

    Parameters
    ----------
    estimator : TaskResHead, TaskResClassifier or Pipeline
        A fitted estimator, or a fitted Pipeline whose last step is one.

    Returns
    -------
    report : dict
        With the keys

        - ``"mean"`` (float): :func:`relative_residual_magnitude`;
        - ``"median"`` (float) and ``"max"`` (float) of the per-class values;
        - ``"max_class"``: the label from ``classes_`` with the largest value;
        - ``"per_class"`` (ndarray of shape (n_classes,)):
          :func:`relative_residual_magnitude_per_class`;
        - ``"classes"`` (ndarray of shape (n_classes,)): ``classes_``, the
          labels of ``"per_class"``.

    Raises
    ------
    NotFittedError
        If the estimator is not fitted.
    TypeError
        If the estimator is neither a TaskResHead nor a TaskResClassifier.

    Examples
    --------
    Class ``"d"`` lies close to class ``"c"`` and has the same base row:

    >>> import numpy as np
    >>> from sklearn_taskres import TaskResHead
    >>> from sklearn_taskres.diagnostics import relative_residual_report
    >>> rng = np.random.RandomState(0)
    >>> centers = rng.normal(size=(4, 64))
    >>> centers[3] = centers[2] + rng.normal(size=64)
    >>> y = np.repeat([0, 1, 2, 3], 10)
    >>> X = centers[y] + 0.3 * rng.normal(size=(40, 64))
    >>> base = centers.copy()
    >>> base[3] = base[2]
    >>> head = TaskResHead(base, classes=["a", "b", "c", "d"], learning_rate=1e-2,
    ...                    max_iter=30, device="cpu", random_state=0)
    >>> report = relative_residual_report(head.fit(X, np.take(["a", "b", "c", "d"], y)))
    >>> sorted(report)
    ['classes', 'max', 'max_class', 'mean', 'median', 'per_class']
    >>> str(report["max_class"])
    'd'
    """
    per_class = relative_residual_magnitude_per_class(estimator)
    classes = _fitted_head(estimator).classes_
    return {
        "mean": float(np.mean(per_class)),
        "median": float(np.median(per_class)),
        "max": float(np.max(per_class)),
        "max_class": classes[int(np.nanargmax(per_class))],
        "per_class": per_class,
        "classes": classes,
    }
