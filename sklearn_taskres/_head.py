"""TaskResHead: the TaskRes method on precomputed image embeddings."""

import copy
from numbers import Integral, Real

import numpy as np
from scipy.special import log_softmax, softmax
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context, clone
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from ._alpha_selection import AUTO_ALPHAS, select_alpha
from ._callbacks import (
    CallbackSupportMixin,
    EpochTasks,
    callback_metadata,
    fit_callback_context,
)
from ._open_set import NONE_LABEL, fit_open_set, none_mask, unknown_scores
from ._state import VersionedStateMixin
from ._training import resolve_device, train_residual
from ._weights import check_sample_weight, training_weights


def _normalize_rows(array):
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return array / np.maximum(norms, np.finfo(array.dtype).tiny)


def check_missing_labels(y):
    """Raise a ValueError naming the first None or NaN label of ``y``."""
    if y.dtype.kind == "f":
        missing = np.flatnonzero(np.isnan(y))
    elif y.dtype.kind == "O":
        missing = [
            i for i, label in enumerate(y.tolist())
            if label is None or (isinstance(label, float) and label != label)
        ]
    else:
        return
    if len(missing):
        raise ValueError(
            f"expected a label for every sample; got {y.tolist()[missing[0]]!r} "
            f"at y[{missing[0]}]"
            + (f" and {len(missing) - 1} more missing" if len(missing) > 1 else "")
        )


def encode_labels(y, classes, what="y"):
    """Index of every label of ``y`` in ``classes``; a ValueError names unknown labels."""
    index = {label: i for i, label in enumerate(classes.tolist())}
    try:
        return np.fromiter((index[label] for label in y.tolist()), dtype=np.int64, count=len(y))
    except (KeyError, TypeError):
        unknown = [label for label in dict.fromkeys(y.tolist()) if label not in index]
        shown = ", ".join(repr(label) for label in unknown[:5])
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise ValueError(
            f"expected every label of {what} to be one of classes_ {classes.tolist()[:20]}"
            f"{' ...' if len(classes) > 20 else ''}; got unknown label(s) {shown}{more}"
        ) from None


def concatenate_labels(labels, more):
    """``labels`` followed by ``more``, an object array where the two kinds do not mix."""
    joined = np.concatenate([labels, more])
    if joined.tolist() != labels.tolist() + more.tolist():  # e.g. ints and strings
        joined = np.empty(len(labels) + len(more), dtype=object)
        joined[:] = labels.tolist() + more.tolist()
    return joined


def _class_means(views, targets, classes, weights):
    """Per class, the (weighted) mean of the normalised embeddings of every view, float32."""
    n_classes, n_features = len(classes), views.shape[2]
    sums = np.zeros((n_classes, n_features), dtype=np.float64)
    for view in views:
        rows = _normalize_rows(view)
        np.add.at(sums, targets, rows if weights is None else weights[:, None] * rows)
    totals = np.bincount(targets, weights=weights, minlength=n_classes)
    empty = np.flatnonzero(totals == 0)
    if len(empty):
        raise ValueError(
            "expected a positive total weight for every class of y, as base_weights=None "
            "makes the base of a class the weighted mean of its embeddings; got zero for "
            f"class(es) {classes[empty].tolist()[:5]}"
        )
    return (sums / (len(views) * totals[:, None])).astype(np.float32)


class TaskResHead(CallbackSupportMixin, ClassifierMixin, VersionedStateMixin, BaseEstimator):
    """TaskRes classifier on precomputed image embeddings.

    Learns a task residual ``x`` on top of a frozen base classifier ``t``
    (Yu et al., "Task Residual for Tuning Vision-Language Models", CVPR 2023)::

        t' = t + alpha * x
        logits = logit_scale * normalize(X) @ normalize(t').T

    with cross-entropy, Adam and the official schedule (one warm-up epoch at
    1e-5, then cosine annealing per epoch). Only ``x`` is learned; it starts
    at zero, so an untrained head is exactly the base classifier.

    Parameters
    ----------
    base_weights : array-like of shape (n_classes, n_features), default=None
        The base classifier ``t``: for CLIP, the raw (unnormalised) text
        embedding of every class. Row ``k`` belongs to ``classes[k]``. When
        None, the base is the per-class mean of the normalised training
        embeddings and ``classes_`` are the sorted labels of ``y``.
    classes : array-like of shape (n_classes,), default=None
        Labels of the rows of ``base_weights``; default ``0 .. n_classes - 1``.
        Classes without training samples are still predicted. Ignored when
        ``base_weights`` is None.
    alpha : float or "auto", default=0.5
        Scale of the residual (the paper's alpha, 0.5; 1.0 for Flowers102).
        ``"auto"`` chooses it from the training labels alone among
        ``0, 0.05, 0.1, 0.25, 0.5, 1``, where 0 is the base alone
        (zero-shot): each candidate is scored by stratified cross-validation
        (at most 4 folds, as many as the smallest class allows), with the
        sample and class weights; the most accurate is kept, the nearest
        zero-shot unless a larger one clearly lowers the held-out log-loss.
        The residual is then trained on every sample with the chosen value
        (``alpha_``). With one label in a class, the fold that holds it out
        trains without its class; the largest alpha whose held-out loss stays
        near zero-shot's is then scaled by zero-shot's error rate on the
        labels, so a base that already labels them right stays zero-shot.
        An auto fit costs about 1.5 to 3 fixed fits (the folds' residuals
        train as one batched problem). The default stays the paper's value,
        so that a fit reproduces TaskRes exactly; with few labels and a
        strong zero-shot prefer ``"auto"`` (see the user guide, "How far to
        move from zero-shot").
    logit_scale : float, default=100.0
        Temperature of the cosine logits: CLIP's ``exp(logit_scale)``.
    learning_rate : float, default=2e-3
        Peak learning rate of Adam.
    max_iter : int, default=200
        Number of epochs (including the warm-up epoch).
    batch_size : int, default=256
        Minibatch size. Each epoch visits the samples in a fresh random order
        and drops the last partial batch when there are at least
        ``batch_size`` samples.
    weight_decay : float, default=5e-4
        L2 penalty added to the gradient (coupled, as ``torch.optim.Adam``).
    class_weight : dict, "balanced" or None, default=None
        Weights of the classes in the loss, as in ``LogisticRegression``:
        ``{label: weight}`` (labels left out weigh 1), or ``"balanced"``,
        ``n_samples / (n_classes_in_y * np.bincount(y))``. A sample weighs
        its class weight times its ``sample_weight``.
    device : str, default="auto"
        Where to train: ``"auto"`` (CUDA when available), ``"cpu"``,
        ``"cuda"`` or ``"cuda:N"``. Fitted attributes are NumPy either way.
    random_state : int, RandomState instance or None, default=None
        Seeds the batch order. Training on the CPU with a fixed seed is
        deterministic.
    verbose : int, default=0
        When positive, a progress bar on stderr shows the epochs and loss.
    none_label : object, default="_none"
        The label that marks, in ``y``, an image of none of the classes. Such
        images never become a class and are not trained on; they sharpen the
        "none of these" score (:meth:`score_unknown`). With integer labels,
        use an integer such as -1.
    unknown_label : object, default=None
        What :meth:`predict` returns for an image whose :meth:`score_unknown`
        is above the threshold. None: every image gets a class, as in any
        scikit-learn classifier. :meth:`predict_proba` is never changed.
    unknown_threshold : float or "auto", default="auto"
        The threshold of :meth:`score_unknown` above which an image is of
        none of the classes. ``"auto"``: ``unknown_threshold_``, chosen from
        the labels. Read at predict time, so it takes effect without a refit.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels, in the order of the rows of ``base_weights_``.
    base_weights_ : ndarray of shape (n_classes, n_features)
        The frozen base classifier ``t``.
    residual_ : ndarray of shape (n_classes, n_features)
        The learned task residual ``x``.
    alpha_ : float
        The residual scale the residual was trained with (``alpha``, or the
        value ``alpha="auto"`` chose); predictions use it, so
        ``set_params(alpha=...)`` takes effect at the next fit.
    residual_norms_ : ndarray of shape (n_classes,)
        ``||alpha_ * residual_[k]||`` per class.
    logit_scale_ : float
        The temperature used.
    n_iter_ : int
        Number of epochs run.
    loss_curve_ : list of float
        Mean training loss of every epoch: the mean over its batches of each
        batch's (weighted) mean loss; with sample weights, only the batches
        that made a step count (NaN for an epoch without any).
    n_features_in_ : int
        Width of the embeddings seen during fit.
    unknown_threshold_ : float
        The :meth:`score_unknown` that keeps 95 % of the labelled images of
        the classes, each scored leave-one-out.
    prototypes_ : ndarray of shape (n_classes, n_features)
        The normalised mean labelled embedding of every class (zero rows for
        classes without labelled images).
    none_features_ : ndarray of shape (n_none, n_features)
        The normalised embeddings of the images marked ``none_label``.

    See Also
    --------
    TaskResClassifier : The same method end to end on images, with CLIP.

    Notes
    -----
    With scikit-learn 1.9 or later, ``set_callbacks`` takes scikit-learn's
    callbacks (``sklearn.callback``): every epoch is a task, whose end
    offers a fitted view with the residual of that epoch, so
    ``ScoringMonitor`` logs a score per epoch and ``ProgressBar`` nests the
    epochs under a grid search. Callbacks do not change the result.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_taskres import TaskResHead
    >>> rng = np.random.RandomState(0)
    >>> base = rng.normal(size=(3, 16))
    >>> y = np.repeat([0, 1, 2], 10)
    >>> X = base[y] + 0.5 * rng.normal(size=(30, 16))
    >>> head = TaskResHead(base, max_iter=20, device="cpu", random_state=0).fit(X, y)
    >>> head.predict(X[:3])
    array([0, 0, 0])
    >>> head.residual_.shape
    (3, 16)
    """

    _parameter_constraints = {
        "base_weights": ["array-like", None],
        "classes": ["array-like", None],
        "alpha": [Interval(Real, 0, None, closed="left"), StrOptions({"auto"})],
        "logit_scale": [Interval(Real, 0, None, closed="neither")],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "class_weight": [StrOptions({"balanced"}), dict, None],
        "device": [str],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "none_label": "no_validation",
        "unknown_label": "no_validation",
        "unknown_threshold": [Real, StrOptions({"auto"})],
    }

    def __init__(
        self,
        base_weights=None,
        *,
        classes=None,
        alpha=0.5,
        logit_scale=100.0,
        learning_rate=2e-3,
        max_iter=200,
        batch_size=256,
        weight_decay=5e-4,
        class_weight=None,
        device="auto",
        random_state=None,
        verbose=0,
        none_label=NONE_LABEL,
        unknown_label=None,
        unknown_threshold="auto",
    ):
        self.base_weights = base_weights
        self.classes = classes
        self.alpha = alpha
        self.logit_scale = logit_scale
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.class_weight = class_weight
        self.device = device
        self.random_state = random_state
        self.verbose = verbose
        self.none_label = none_label
        self.unknown_label = unknown_label
        self.unknown_threshold = unknown_threshold

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Learn the task residual from embeddings and labels.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Image embeddings (normalised internally).
        y : array-like of shape (n_samples,)
            Labels; each must be one of ``classes`` when a base is given, or
            ``none_label`` for an image of none of the classes.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights of the samples (times their class weight).
            The loss of a batch is the weighted mean of its samples' losses;
            a batch whose weights sum to zero makes no step. With
            ``base_weights=None``, the base of a class is the weighted mean of
            its embeddings.

        Returns
        -------
        self : TaskResHead
            The fitted head.
        """
        labels = np.asarray(y)
        if labels.ndim == 1:  # name the missing label before sklearn's generic message
            check_missing_labels(labels)
        sample_weight = check_sample_weight(sample_weight, len(labels) if labels.ndim else 1)
        X, y = validate_data(self, X, y, dtype=[np.float32, np.float64])
        fit_task = fit_callback_context(self, max_subtasks=self.max_iter)
        data = {"X": X, "y": y, "metadata": callback_metadata(sample_weight)}
        fit_task.call_on_fit_task_begin(estimator=self, **data)
        self._fit_views(
            X[np.newaxis], y, sample_weight, epoch_tasks=EpochTasks(fit_task, self, **data)
        )
        fit_task.call_on_fit_task_end(estimator=self, reconstruction_attributes={}, **data)
        return self

    def _fit_views(self, views, y, sample_weight=None, *, epoch_tasks=None):
        """Fit on ``views`` (n_views, n_samples, n_features): one view per sample each epoch.

        ``fit`` is the one-view case; TaskResClassifier passes augmented views.
        The caller has validated the parameters, the shapes and ``sample_weight``.
        ``epoch_tasks`` (an :class:`~._callbacks.EpochTasks`) makes every epoch a
        callback task.
        """
        none = none_mask(y, self.none_label)
        none_views, views = views[:, none], views[:, ~none]
        y = np.asarray(y)[~none]
        if sample_weight is not None:
            sample_weight = np.asarray(sample_weight)[~none]
        if not len(y):
            raise ValueError(
                f"expected labels of the classes besides none_label={self.none_label!r}; got "
                f"only {int(none.sum())} sample(s) marked none_label"
            )
        if self.base_weights is None:
            # With a given base, the label space is `classes` and any
            # hashable label is fine; without one it is inferred from y.
            check_classification_targets(y)
        device = resolve_device(self.device)
        classes, base = self._label_space_and_base(views, y)
        self._check_open_set_labels(classes)
        targets = encode_labels(y, classes)
        weights = training_weights(sample_weight, self.class_weight, classes, targets)
        if base is None:
            base = _class_means(views, targets, classes, weights)
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        n_features = views.shape[2]
        features = views if len(views) > 1 else views[0]
        recipe = {
            "logit_scale": self.logit_scale,
            "learning_rate": self.learning_rate,
            "max_iter": self.max_iter,
            "batch_size": self.batch_size,
            "weight_decay": self.weight_decay,
            "seed": seed,
            "device": device,
            "sample_weight": weights,
        }
        if self.alpha == "auto":
            alpha, _ = select_alpha(features, targets, base, alphas=AUTO_ALPHAS, **recipe)
        else:
            alpha = float(self.alpha)

        def fitted_state(residual, loss_curve):
            return self._fitted_state(classes, base, residual, loss_curve, n_features,
                                      alpha=alpha)

        hooks = {} if epoch_tasks is None else epoch_tasks.hooks(fitted_state)
        residual, loss_curve = train_residual(
            features, targets, base, alpha=alpha, verbose=self.verbose, **recipe, **hooks
        )
        vars(self).update(fitted_state(residual, loss_curve))
        self._fit_open_set(views[0], targets, none_views[0])
        return self

    def _check_open_set_labels(self, classes):
        for name in ("none_label", "unknown_label"):
            value = getattr(self, name)
            if value is not None and value in set(classes.tolist()):
                raise ValueError(
                    f"expected {name} to be none of the classes; got {name}={value!r}, "
                    "which is a class"
                )

    def _fit_open_set(self, known, targets, none_features):
        """Fit the "none of these" score on the plain embeddings of the labelled images."""
        state, _ = fit_open_set(known, targets, none_features, self.base_weights_,
                                self.logit_scale_, len(self.classes_))
        self.prototypes_ = state["prototypes"]
        self.none_features_ = state["none_features"]
        self.unknown_calibration_ = state["calibration"]
        self.unknown_threshold_ = state["threshold"]

    def score_unknown(self, X):
        """The "none of these" score of every embedding: higher is less like any class.

        The sum of three terms, each standardised over the labelled images:
        how far the embedding is from every class name (the energy of the
        zero-shot logits), from every class prototype (mean labelled
        embedding), and how much closer it is to an image marked
        ``none_label`` than to any prototype.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Image embeddings.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            Above ``unknown_threshold_`` (or ``unknown_threshold``), the image
            is taken for none of the classes.
        """
        check_is_fitted(self)
        if not hasattr(self, "unknown_threshold_"):
            raise ValueError(
                "expected a head fitted with the none-of-these score; got one fitted by an "
                "older sklearn-taskres, without it. Refit it."
            )
        X = validate_data(self, X, dtype=[np.float32, np.float64], reset=False)
        return unknown_scores(X, self.prototypes_, self.none_features_,
                              self.unknown_calibration_, self.base_weights_, self.logit_scale_)

    def _unknown_threshold(self):
        if isinstance(self.unknown_threshold, str):
            return self.unknown_threshold_
        return float(self.unknown_threshold)

    def _with_unknown(self, labels, X):
        """``labels`` with ``unknown_label`` where ``score_unknown(X)`` is above the threshold."""
        if getattr(self, "unknown_label", None) is None:  # None in heads pickled before it
            return labels
        rejected = self.score_unknown(X) > self._unknown_threshold()
        labels = concatenate_labels(labels, np.asarray([self.unknown_label]))[:-1]
        labels[rejected] = self.unknown_label
        return labels

    def _fitted_state(self, classes, base, residual, loss_curve, n_features, *, alpha=None):
        """The fitted attributes of a head with ``residual``, after ``len(loss_curve)`` epochs.

        ``alpha`` is the strength the residual was trained with; None means
        the parameter's (0 for "auto", as before any training).
        """
        if alpha is None:
            alpha = 0.0 if self.alpha == "auto" else self.alpha
        return {
            "classes_": classes,
            "base_weights_": base,
            "residual_": residual,
            "alpha_": float(alpha),
            "logit_scale_": float(self.logit_scale),
            "n_iter_": len(loss_curve),
            "loss_curve_": loss_curve,
            "n_features_in_": n_features,
        }

    def _label_space_and_base(self, views, y):
        """The label space and the given base; the base is None when it comes from y."""
        n_features = views.shape[2]
        if self.base_weights is None:
            return np.unique(y), None

        base = check_array(
            self.base_weights, dtype=[np.float32, np.float64], input_name="base_weights"
        )
        if base.shape[1] != n_features:
            raise ValueError(
                f"expected base_weights with {n_features} columns (the width of X); "
                f"got shape {base.shape}"
            )
        if self.classes is None:
            classes = np.arange(base.shape[0])
        else:
            classes = np.asarray(self.classes)
            if classes.ndim != 1 or len(classes) != base.shape[0]:
                raise ValueError(
                    f"expected classes of length {base.shape[0]} (the rows of base_weights); "
                    f"got shape {classes.shape}"
                )
            if len(set(classes.tolist())) != len(classes):
                raise ValueError(f"expected distinct classes; got {classes.tolist()}")
        return classes, base.astype(np.float32, copy=True)

    def _scores(self, X):
        X = validate_data(self, X, dtype=[np.float32, np.float64], reset=False)
        classifier = (self.base_weights_ + self.alpha_ * self.residual_).astype(X.dtype)
        cosines = _normalize_rows(X) @ _normalize_rows(classifier).T
        # float64 logits: with a scale of 100 the probabilities of unlikely
        # classes underflow float32 and their log-probabilities would be -inf.
        return self.logit_scale_ * cosines.astype(np.float64)

    @property
    def residual_norms_(self):
        check_is_fitted(self, "residual_")
        return np.linalg.norm(self.alpha_ * self.residual_.astype(np.float64), axis=1)

    def restrict_classes(self, classes):
        """A fitted copy of the head that only knows a subset of its classes.

        For evaluation on a label space that covers part of the training one
        (ImageNet-A and -R cover 200 of ImageNet's 1,000 classes): the copy
        keeps the base and residual rows of ``classes``, in the given order.

        Parameters
        ----------
        classes : array-like of shape (n_kept,)
            Distinct labels from ``classes_``.

        Returns
        -------
        head : TaskResHead
            A new fitted head; ``self`` is unchanged.
        """
        check_is_fitted(self)
        rows = self._rows_of(classes)
        restricted = copy.deepcopy(self)
        restricted.classes_ = self.classes_[rows]
        restricted.base_weights_ = self.base_weights_[rows]
        restricted.residual_ = self.residual_[rows]
        if hasattr(self, "prototypes_"):  # heads built without a fit have no open-set state
            restricted.prototypes_ = self.prototypes_[rows]
        restricted.set_params(base_weights=restricted.base_weights_, classes=restricted.classes_)
        return restricted

    def extend_classes(self, base_weights, classes):
        """A fitted copy of the head that also knows new classes, without refitting.

        The copy's label space is ``classes_`` followed by ``classes``; their
        rows of ``base_weights_`` are ``base_weights`` and their residual rows
        are zero, so they are scored by their base alone (zero-shot, for CLIP
        text embeddings), while every old row is unchanged. The residual of
        the old classes was trained without the new classes as negatives:
        refit when their images are at hand.

        Parameters
        ----------
        base_weights : array-like of shape (n_new, n_features)
            Base rows of the new classes, as ``base_weights`` at fit (for CLIP,
            the raw text embeddings of their names).
        classes : array-like of shape (n_new,)
            Distinct labels of the new classes, none of them in ``classes_``.

        Returns
        -------
        head : TaskResHead
            A new fitted head; ``self`` is unchanged.

        Examples
        --------
        >>> import numpy as np
        >>> from sklearn_taskres import TaskResHead
        >>> base = np.random.RandomState(0).normal(size=(4, 8))
        >>> head = TaskResHead(base[:3], classes=["ant", "bee", "cat"], max_iter=2,
        ...                    device="cpu").fit(base[:3], ["ant", "bee", "cat"])
        >>> extended = head.extend_classes(base[3:], ["dog"])
        >>> extended.classes_.tolist(), extended.predict(base[3:]).tolist()
        (['ant', 'bee', 'cat', 'dog'], ['dog'])
        """
        check_is_fitted(self)
        new_base = check_array(
            base_weights, dtype=[np.float32, np.float64], input_name="base_weights"
        )
        if new_base.shape[1] != self.n_features_in_:
            raise ValueError(
                f"expected base_weights with {self.n_features_in_} columns (the width of the "
                f"fitted base); got shape {new_base.shape}"
            )
        new_classes = np.asarray(classes)
        if new_classes.ndim != 1 or len(new_classes) != len(new_base):
            raise ValueError(
                f"expected classes of length {len(new_base)} (the rows of base_weights); "
                f"got shape {new_classes.shape}"
            )
        known = set(self.classes_.tolist())
        present = [label for label in new_classes.tolist() if label in known]
        if present:
            raise ValueError(
                f"expected classes that are not in classes_ yet; got {present[0]!r}, "
                "already a class of this head"
            )
        if len(set(new_classes.tolist())) != len(new_classes):
            raise ValueError(f"expected distinct classes; got {new_classes.tolist()}")
        # clone and copy the fitted state: deepcopy would go through __getstate__.
        extended = clone(self)
        for name, value in vars(self).items():
            if name.endswith("_") and not name.startswith("_"):
                setattr(extended, name, copy.deepcopy(value))
        extended.classes_ = concatenate_labels(self.classes_, new_classes)
        extended.base_weights_ = np.concatenate(
            [self.base_weights_, new_base.astype(self.base_weights_.dtype)]
        )
        extended.residual_ = np.concatenate(
            [self.residual_, np.zeros(new_base.shape, dtype=self.residual_.dtype)]
        )
        if hasattr(self, "prototypes_"):  # heads built without a fit have no open-set state
            extended.prototypes_ = np.concatenate(
                [self.prototypes_, np.zeros(new_base.shape, dtype=self.prototypes_.dtype)]
            )
        extended.set_params(base_weights=extended.base_weights_, classes=extended.classes_)
        return extended

    def _rows_of(self, classes):
        classes = np.asarray(classes)
        if classes.ndim != 1 or len(classes) == 0:
            raise ValueError(f"expected a non-empty 1-d sequence of classes; got {classes!r}")
        if len(set(classes.tolist())) != len(classes):
            raise ValueError(f"expected distinct classes; got {classes.tolist()}")
        return encode_labels(classes, self.classes_, what="classes")

    def decision_function(self, X):
        """Logits of every class: ``logit_scale * cos(X, t + alpha * x)``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Image embeddings.

        Returns
        -------
        scores : ndarray of shape (n_samples, n_classes) or (n_samples,)
            Columns follow ``classes_``. With two classes, as everywhere in
            scikit-learn, the score of ``classes_[1]`` relative to
            ``classes_[0]``: the difference of their logits, which is the
            log-odds of ``classes_[1]``.
        """
        check_is_fitted(self)
        scores = self._scores(X)
        if scores.shape[1] == 2:
            return scores[:, 1] - scores[:, 0]
        return scores

    def predict(self, X):
        """Predict the class of every embedding.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Image embeddings.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Labels from ``classes_``, or ``unknown_label`` (when set) for
            embeddings whose :meth:`score_unknown` is above the threshold.
        """
        check_is_fitted(self)
        return self._with_unknown(self.classes_.take(np.argmax(self._scores(X), axis=1)), X)

    def predict_proba(self, X):
        """Class probabilities: the softmax of the logits.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Image embeddings.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns follow ``classes_``.
        """
        check_is_fitted(self)
        return softmax(self._scores(X), axis=1)

    def predict_log_proba(self, X):
        """Logarithm of the class probabilities.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Image embeddings.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            Columns follow ``classes_``.
        """
        check_is_fitted(self)
        return log_softmax(self._scores(X), axis=1)
