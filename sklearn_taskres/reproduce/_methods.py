"""The methods of the benchmark: zero-shot CLIP, the linear probe and TaskRes, and their scores."""

import warnings

import numpy as np
from sklearn.covariance import ledoit_wolf
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from .._alpha_selection import validation_folds
from .._head import encode_labels

# ---------------------------------------------------------------- the paper's settings


def taskres_settings(dataset, shots, epochs=None):
    """The paper's TaskRes settings for ``dataset`` at ``shots`` shots.

    Parameters
    ----------
    dataset : str
        A dataset key, e.g. ``"imagenet"``.
    shots : int
        Training images per class.
    epochs : int, default=None
        Overrides the paper's number of epochs (100 up to 4 shots, else 200).

    Returns
    -------
    settings : dict
        Keyword arguments of :class:`~sklearn_taskres.TaskResHead`.

    Examples
    --------
    >>> from sklearn_taskres.reproduce import taskres_settings
    >>> settings = taskres_settings("imagenet", 16)
    >>> settings["learning_rate"], settings["max_iter"], settings["alpha"]
    (0.0002, 200, 0.5)
    >>> taskres_settings("oxford_flowers", 2)["alpha"], taskres_settings("dtd", 4)["max_iter"]
    (1.0, 100)
    """
    return {
        "alpha": 1.0 if dataset == "oxford_flowers" else 0.5,
        "learning_rate": 2e-4 if dataset == "imagenet" else 2e-3,
        "max_iter": epochs if epochs is not None else (100 if shots <= 4 else 200),
        "batch_size": 256,
        "weight_decay": 5e-4,
    }


def prompt_classnames(classnames, method, naming="official"):
    """The class names as the prompts of ``method`` write them.

    The official TaskRes code fills its templates with the class names as
    the dataset holds them (``trainers/taskres.py``; Oxford Pets reads "a
    photo of a american_bulldog, a type of pet."), for its base and for the
    enhanced base of TaskRes*; CoOp's zero-shot CLIP replaces underscores by
    spaces. ``naming="official"`` follows both; ``naming="spaces"`` replaces
    underscores by spaces for every method.

    Parameters
    ----------
    classnames : list of str
        The dataset's class names.
    method : {"zero-shot", "taskres"}
        The row the prompts are for; TaskRes* names its classes as TaskRes.
    naming : {"official", "spaces"}, default="official"

    Returns
    -------
    names : list of str

    Examples
    --------
    >>> from sklearn_taskres.reproduce import prompt_classnames
    >>> prompt_classnames(["american_bulldog"], "taskres")
    ['american_bulldog']
    >>> prompt_classnames(["american_bulldog"], "zero-shot")
    ['american bulldog']
    >>> prompt_classnames(["american_bulldog"], "taskres", naming="spaces")
    ['american bulldog']
    """
    if naming == "spaces" or method == "zero-shot":
        return [name.replace("_", " ") for name in classnames]
    return list(classnames)


# ---------------------------------------------------------------- zero-shot CLIP


def _normalize(array):
    return array / np.maximum(np.linalg.norm(array, axis=1, keepdims=True), 1e-12)


def zero_shot_predict(features, base, classes):
    """Labels predicted by the text base alone (cosine similarity)."""
    return classes[np.argmax(_normalize(features) @ _normalize(base).T, axis=1)]


# ---------------------------------------------------------------- the linear probe

#: Coarse grid of the linear probe's inverse regularisation C, as CoOp's linear probe.
LINEAR_PROBE_GRID = (1e6, 1e4, 1e2, 1.0, 1e-2, 1e-4, 1e-6)
#: Refinements around the best C: +-1, +-0.5 and +-0.25 decades.
LINEAR_PROBE_REFINE_STEPS = 3
LINEAR_PROBE_MAX_ITER = 1000


def fit_linear_probe(X_train, y_train, X_val, y_val):
    """Logistic regression with ``C`` chosen on the few-shot validation set.

    As CoOp's linear probe (which follows CLIP's): L-BFGS, L2 penalty, at
    most 1,000 iterations, raw image features, and ``C`` searched over
    1e6, 1e4, ..., 1e-6 on the validation images. CoOp then refines ``C`` by
    a bisection in log space; we refine around the best value by +-1, +-0.5
    and +-0.25 decades within the grid's range, keeping a candidate only when
    it is better. Few-shot validation accuracy ties often, so ties go to the
    lower validation log-loss.

    Returns
    -------
    classifier : LogisticRegression
    C : float
    """
    fitted = {}

    def evaluate(log_c):
        key = round(float(log_c), 6)
        if key not in fitted:
            with warnings.catch_warnings():
                # Weakly regularised fits stop at max_iter, as in CoOp's search.
                warnings.simplefilter("ignore", ConvergenceWarning)
                model = LogisticRegression(C=10.0**key, max_iter=LINEAR_PROBE_MAX_ITER)
                model.fit(X_train, y_train)
            accuracy = np.mean(model.predict(X_val) == y_val)
            loss = log_loss(y_val, model.predict_proba(X_val), labels=model.classes_)
            fitted[key] = ((accuracy, -loss), model)
        return fitted[key][0]

    grid = np.log10(LINEAR_PROBE_GRID)
    low, high = grid.min(), grid.max()
    best = max(grid, key=evaluate)
    step = 1.0
    for _ in range(LINEAR_PROBE_REFINE_STEPS):
        candidates = [c for c in (best - step, best + step) if low <= c <= high]
        best = max([best, *candidates], key=evaluate)
        step /= 2
    key = round(float(best), 6)
    return fitted[key][1], 10.0**key


def linear_probe_settings():
    """The linear probe's search of ``C``, as ``results.json`` records it."""
    return {"grid": list(LINEAR_PROBE_GRID), "refine_steps": LINEAR_PROBE_REFINE_STEPS,
            "max_iter": LINEAR_PROBE_MAX_ITER}


def linear_probe_predict(model, features, classes):
    """Labels among ``classes`` (a subset of ``model.classes_``) predicted by ``model``."""
    columns = np.searchsorted(model.classes_, classes)
    scores = model.predict_proba(features)[:, columns]
    return np.asarray(classes)[np.argmax(scores, axis=1)]


# ---------------------------------------------------------------- TaskRes


def head_for_classes(head, classes):
    """``head`` predicting among ``classes`` only (a subset of its ``classes_``)."""
    if set(np.asarray(classes).tolist()) == set(head.classes_.tolist()):
        return head
    return head.restrict_classes(classes)


# ---------------------------------------------------------------- scores


def _accuracy(predicted, y):
    return float(100.0 * np.mean(np.asarray(predicted) == np.asarray(y)))


def harmonic_mean(base, new):
    """The harmonic mean of base and new accuracy, as CoCoOp reports it.

    Examples
    --------
    >>> from sklearn_taskres.reproduce import harmonic_mean
    >>> round(harmonic_mean(80.47, 71.69), 2)
    75.83
    """
    return 0.0 if base + new == 0 else 2.0 * base * new / (base + new)


# ---------------------------------------------------------------- GDA

#: Blend weights of the GDA logits that :func:`fit_gda` chooses from; 0 is zero-shot.
GDA_BLENDS = (0.0, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)


def gda_weights(X, targets, n_classes, sample_weight=None):
    """Linear discriminant of normalised ``X``: class means, one shared shrunk covariance.

    The Gaussian discriminant of GDA (Wang et al., "A Hard-to-Beat Baseline
    for Training-free CLIP-based Adaptation", ICLR 2024): every class is a
    Gaussian around its (weighted) mean with one covariance shared by all,
    estimated from the samples around their class means and shrunk toward a
    multiple of the identity (Ledoit-Wolf). Where no sample shares a class
    with another (one label per class), the scatter around the overall mean
    stands in for the within-class one.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
    targets : ndarray of shape (n_samples,)
        Class index of every sample, ``0 .. n_classes - 1``.
    n_classes : int
    sample_weight : ndarray of shape (n_samples,), default=None

    Returns
    -------
    coef : ndarray of shape (n_classes, n_features)
        ``mean_k @ precision``; zero for a class without samples.
    intercept : ndarray of shape (n_classes,)
        ``-mean_k @ precision @ mean_k / 2``.
    present : ndarray of shape (n_classes,), bool
        Which classes had samples (with a positive weight).
    """
    X = _normalize(np.asarray(X, dtype=np.float64))
    weights = np.ones(len(X)) if sample_weight is None else np.asarray(sample_weight, float)
    totals = np.bincount(targets, weights=weights, minlength=n_classes)
    present = totals > 0
    sums = np.zeros((n_classes, X.shape[1]))
    np.add.at(sums, targets, weights[:, None] * X)
    means = sums / np.maximum(totals, 1e-300)[:, None]
    kept = weights > 0
    centred = X[kept] - means[targets[kept]]
    if kept.sum() - present.sum() < 1:  # no class with two samples: no within-class scatter
        centred = X[kept] - np.average(X[kept], axis=0, weights=weights[kept])
    scaled = centred * np.sqrt(weights[kept] / weights[kept].mean())[:, None]
    covariance, _ = ledoit_wolf(scaled, assume_centered=True)
    covariance += 1e-6 * max(np.trace(covariance) / len(covariance), 1e-12) * np.eye(
        len(covariance))
    precision = np.linalg.inv(covariance)
    coef = np.where(present[:, None], means @ precision, 0.0)
    intercept = np.where(present, -0.5 * np.einsum("kd,kd->k", coef, means), 0.0)
    return coef, intercept, present


def _gda_logits(X, coef, intercept, present):
    """GDA logits; a class without samples gets the mean logit of the others (no vote)."""
    logits = _normalize(np.asarray(X, dtype=np.float64)) @ coef.T + intercept
    logits[:, ~present] = logits[:, present].mean(axis=1, keepdims=True)
    return logits


class GDABlend:
    """Zero-shot logits plus ``blend_`` times the GDA logits; see :func:`fit_gda`."""

    def __init__(self, base, classes, logit_scale, coef, intercept, present, blend, scores):
        self.classes_ = np.asarray(classes)
        self.base_weights_ = np.asarray(base, dtype=np.float64)
        self.logit_scale_ = float(logit_scale)
        self.coef_, self.intercept_, self.present_ = coef, intercept, present
        self.blend_ = float(blend)
        self.blend_scores_ = scores

    def decision_function(self, X):
        """``logit_scale * cos(X, base) + blend_ * GDA logits``."""
        zero_shot = self.logit_scale_ * _normalize(np.asarray(X, np.float64)) @ _normalize(
            self.base_weights_).T
        return zero_shot + self.blend_ * _gda_logits(X, self.coef_, self.intercept_,
                                                      self.present_)

    def predict(self, X):
        """The class of highest blended logit."""
        return self.classes_.take(np.argmax(self.decision_function(X), axis=1))


def fit_gda(X, y, base, classes, *, logit_scale=100.0, blends=GDA_BLENDS, sample_weight=None,
            seed=0):
    """GDA on top of the zero-shot classifier, its blend weight chosen from the labels alone.

    The blend weight is chosen as ``TaskResHead(alpha="auto")`` chooses its
    alpha: every candidate of ``blends`` (0 is zero-shot) is scored by the
    weighted accuracy of the held-out samples of the same stratified folds
    (:func:`sklearn_taskres._alpha_selection.validation_folds`), ties to the
    smaller blend. No test or validation set is used, unlike the original
    code, which searches its weight on a validation split.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Image embeddings.
    y : ndarray of shape (n_samples,)
        Labels from ``classes``.
    base : ndarray of shape (n_classes, n_features)
        The text base (zero-shot classifier).
    classes : ndarray of shape (n_classes,)
    logit_scale : float, default=100.0
    blends : sequence of float, default=GDA_BLENDS
    sample_weight : ndarray of shape (n_samples,), default=None
    seed : int, default=0
        Deals the samples to the folds.

    Returns
    -------
    model : GDABlend
        With ``predict``, ``decision_function``, ``blend_`` and
        ``blend_scores_`` (the held-out accuracy of every candidate).

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_taskres.reproduce import fit_gda
    >>> rng = np.random.RandomState(0)
    >>> base = rng.normal(size=(3, 8))
    >>> y = np.repeat([0, 1, 2], 4)
    >>> X = base[y] + rng.normal(size=(12, 8))
    >>> model = fit_gda(X, y, base, np.arange(3))
    >>> model.predict(X).shape
    (12,)
    """
    classes = np.asarray(classes)
    targets = encode_labels(np.asarray(y), classes)
    weights = np.ones(len(targets)) if sample_weight is None else np.asarray(sample_weight,
                                                                             float)
    n_classes = len(classes)
    zero_shot = logit_scale * _normalize(np.asarray(X, np.float64)) @ _normalize(
        np.asarray(base, np.float64)).T
    folds, n_folds = validation_folds(targets, weights, seed=seed)
    held_out = np.zeros((len(targets), n_classes))
    for fold in range(n_folds):
        rows = folds == fold
        train_weight = np.where(rows, 0.0, weights)
        coef, intercept, present = gda_weights(X, targets, n_classes, train_weight)
        held_out[rows] = _gda_logits(X[rows], coef, intercept, present)
    scores = {}
    for blend in blends:
        predicted = np.argmax(zero_shot + blend * held_out, axis=1)
        scores[float(blend)] = float(np.sum(weights * (predicted == targets)) / weights.sum())
    best = max(scores, key=lambda blend: (scores[blend], -blend))
    coef, intercept, present = gda_weights(X, targets, n_classes, weights)
    return GDABlend(base, classes, logit_scale, coef, intercept, present, best, scores)
