"""Plots of a fitted TaskRes model: training loss, residual per class, confusion matrix.

matplotlib is optional (``pip install sklearn-taskres[plot]``); it is imported
when a function is called, not when this module is.
"""

from numbers import Integral

import numpy as np
from sklearn.utils._param_validation import Interval, validate_params
from sklearn.utils.validation import check_is_fitted, column_or_1d

from ._head import encode_labels
from .diagnostics import _fitted_head, relative_residual_magnitude_per_class, residual_norms

__all__ = ["plot_confusion_matrix", "plot_loss_curve", "plot_residual_norms"]

# More classes than this cannot carry readable labels at a sensible figure size.
MAX_LABELLED_CLASSES = 40


def _pyplot(caller):
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            f"expected matplotlib for {caller}; got {exc}. "
            "Install it with: pip install sklearn-taskres[plot]"
        ) from exc
    return plt


def _axes(plt, ax, figsize=None):
    if ax is None:
        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def plot_loss_curve(estimator, ax=None):
    """Plot the mean training loss of every epoch.

    The first epoch is the warm-up at a learning rate of 1e-5, so the curve
    usually starts flat and falls from the second epoch on.

    Parameters
    ----------
    estimator : TaskResHead, TaskResClassifier or Pipeline
        A fitted estimator, or a fitted Pipeline whose last step is one.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure when None.

    Returns
    -------
    ax : matplotlib Axes
        The Axes holding one line: ``loss_curve_`` against the epoch number.

    Raises
    ------
    NotFittedError
        If the estimator is not fitted.
    ImportError
        If matplotlib is not installed.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from sklearn_taskres import TaskResHead
    >>> from sklearn_taskres.plotting import plot_loss_curve
    >>> rng = np.random.RandomState(0)
    >>> base = rng.normal(size=(3, 16))
    >>> y = np.repeat([0, 1, 2], 10)
    >>> X = base[y] + 0.5 * rng.normal(size=(30, 16))
    >>> head = TaskResHead(base, max_iter=20, device="cpu", random_state=0).fit(X, y)
    >>> ax = plot_loss_curve(head)
    >>> len(ax.lines), ax.get_xlabel()
    (1, 'Epoch')
    """
    loss_curve = _fitted_head(estimator).loss_curve_
    plt = _pyplot("plot_loss_curve")
    ax = _axes(plt, ax)
    epochs = np.arange(1, len(loss_curve) + 1)
    ax.plot(epochs, loss_curve, marker="o" if len(loss_curve) <= 30 else None, markersize=3)
    ax.set_xlabel("Epoch")
    ax.set_ylabel("Mean training loss (cross-entropy)")
    ax.set_title("TaskRes training loss")
    ax.set_xlim(left=1)
    ax.grid(alpha=0.3)
    return ax


@validate_params(
    {
        "estimator": "no_validation",
        "ax": "no_validation",
        "top": [Interval(Integral, 1, None, closed="left"), None],
        "relative": ["boolean"],
    },
    prefer_skip_nested_validation=True,
)
def plot_residual_norms(estimator, ax=None, top=None, *, relative=False):
    """Bar chart of the size of the scaled task residual of every class, largest first.

    Parameters
    ----------
    estimator : TaskResHead, TaskResClassifier or Pipeline
        A fitted estimator, or a fitted Pipeline whose last step is one.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure, sized to the number of bars, when None.
    top : int, default=None
        Show only the ``top`` classes with the largest values; all when None
        or when ``top`` exceeds the number of classes.
    relative : bool, default=False
        Plot :func:`~sklearn_taskres.diagnostics.residual_norms`,
        ``||alpha_ * x_k||`` (False), or
        :func:`~sklearn_taskres.diagnostics.relative_residual_magnitude_per_class`,
        ``||alpha_ * x_k|| / ||t_k||`` (True).

    Returns
    -------
    ax : matplotlib Axes
        The Axes holding one horizontal bar per shown class, the largest at
        the top. Up to 40 bars are labelled with their class and up to 30 with
        their value; use ``top`` to name the leading classes of a large label
        space.

    Raises
    ------
    NotFittedError
        If the estimator is not fitted.
    ImportError
        If matplotlib is not installed.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from sklearn_taskres import TaskResHead
    >>> from sklearn_taskres.plotting import plot_residual_norms
    >>> rng = np.random.RandomState(0)
    >>> base = rng.normal(size=(3, 16))
    >>> y = np.repeat([0, 1, 2], 10)
    >>> X = base[y] + 0.5 * rng.normal(size=(30, 16))
    >>> head = TaskResHead(base, max_iter=20, device="cpu", random_state=0).fit(X, y)
    >>> ax = plot_residual_norms(head, top=2)
    >>> len(ax.patches)
    2
    """
    head = _fitted_head(estimator)
    values = relative_residual_magnitude_per_class(head) if relative else residual_norms(head)
    plt = _pyplot("plot_residual_norms")
    order = np.argsort(-values, kind="stable")[:top]
    labels = [str(label) for label in head.classes_[order]]
    ax = _axes(plt, ax, figsize=(6.4, 1.2 + 0.3 * min(max(len(order), 3), MAX_LABELLED_CLASSES)))
    positions = np.arange(len(order))
    bars = ax.barh(positions, values[order], color="tab:blue")
    if len(order) <= MAX_LABELLED_CLASSES:
        ax.set_yticks(positions, labels)
        ax.set_ylabel("Class")
    else:
        ax.set_yticks([])
        ax.set_ylabel(f"{len(order)} classes, largest first")
    if len(order) <= 30:
        shown = values[order]
        largest = float(np.max(shown[np.isfinite(shown)], initial=0.0))
        # Three significant digits of the largest bar, the same decimals for all.
        decimals = 2 - int(np.floor(np.log10(largest))) if largest > 0 else 0
        ax.bar_label(bars, fmt=f"%.{max(decimals, 0)}f", padding=3, fontsize="small")
        ax.margins(x=0.12)
    ax.invert_yaxis()
    if relative:
        ax.set_xlabel(r"Relative task residual  $\Vert\alpha\,x_k\Vert\,/\,\Vert t_k\Vert$")
        title = "Relative task residual per class"
    else:
        ax.set_xlabel(r"Task residual norm  $\Vert\alpha\,x_k\Vert$")
        title = "Task residual norm per class"
    if len(order) < len(values):
        title += f" (top {len(order)} of {len(values)})"
    ax.set_title(title)
    ax.grid(axis="x", alpha=0.3)
    return ax


def plot_confusion_matrix(estimator, X, y, ax=None, **kwargs):
    """Confusion matrix of the predictions of a fitted classifier on ``X``.

    A thin wrapper of scikit-learn's ``ConfusionMatrixDisplay.from_estimator``
    whose rows and columns follow ``classes_``: every class has a row and a
    column, also those absent from ``y`` and from the predictions.

    Parameters
    ----------
    estimator : fitted classifier
        A fitted TaskResHead, TaskResClassifier, or any fitted classifier
        with ``classes_`` (a Pipeline ending in one, for instance).
    X : array-like or sequence of images
        What ``estimator.predict`` takes: embeddings for a TaskResHead,
        images for a TaskResClassifier.
    y : array-like of shape (n_samples,)
        True labels, each one of ``classes_``.
    ax : matplotlib Axes, default=None
        Where to draw; a new figure when None.
    **kwargs
        Passed to ``ConfusionMatrixDisplay.from_estimator`` (``normalize``,
        ``display_labels``, ``xticks_rotation``, ``cmap`` ...). By default
        ``labels`` is ``classes_`` and the counts are written in the cells
        when there are at most 20 classes (``include_values``). Beyond 40
        classes the ticks carry no labels.

    Returns
    -------
    display : sklearn.metrics.ConfusionMatrixDisplay
        The display; ``display.ax_`` is its Axes, with rows for the true
        labels and columns for the predicted ones.

    Raises
    ------
    NotFittedError
        If the estimator is not fitted.
    ValueError
        If a label of ``y`` is not one of ``classes_``.
    ImportError
        If matplotlib is not installed.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from sklearn_taskres import TaskResHead
    >>> from sklearn_taskres.plotting import plot_confusion_matrix
    >>> rng = np.random.RandomState(0)
    >>> base = rng.normal(size=(3, 16))
    >>> y = np.repeat([0, 1, 2], 10)
    >>> X = base[y] + 0.5 * rng.normal(size=(30, 16))
    >>> head = TaskResHead(base, max_iter=20, device="cpu", random_state=0).fit(X, y)
    >>> display = plot_confusion_matrix(head, X, y)
    >>> display.confusion_matrix.shape, int(display.confusion_matrix.sum())
    ((3, 3), 30)
    """
    check_is_fitted(estimator)
    classes = np.asarray(estimator.classes_)
    # confusion_matrix silently drops samples whose label is not in `labels`.
    encode_labels(column_or_1d(y), classes)
    plt = _pyplot("plot_confusion_matrix")
    from sklearn.metrics import ConfusionMatrixDisplay

    kwargs.setdefault("labels", classes)
    kwargs.setdefault("include_values", len(classes) <= 20)
    display = ConfusionMatrixDisplay.from_estimator(
        estimator, X, y, ax=_axes(plt, ax), **kwargs
    )
    display.ax_.set_title("Confusion matrix")
    if len(kwargs["labels"]) > MAX_LABELLED_CLASSES:
        display.ax_.set_xticks([])
        display.ax_.set_yticks([])
        display.ax_.set_xlabel(f"Predicted label ({len(kwargs['labels'])} classes)")
        display.ax_.set_ylabel("True label")
    return display
