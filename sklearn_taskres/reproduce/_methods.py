"""The methods of the benchmark: zero-shot CLIP, the linear probe and TaskRes, and their scores."""

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

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
