"""Persistence: a format version in every pickle, and a pickle-free save/load.

A fitted estimator holds NumPy arrays and plain parameters only, so it can be
written as arrays plus JSON: :func:`save_model` / :func:`load_model` never
execute code from the file, unlike pickle and joblib.
"""

import json
import os
import warnings
from numbers import Integral

import numpy as np

from ._clip import custom_model_config, ensure_model_config
from ._version import __version__

#: Version of the fitted state's layout. Raise it when attributes change
#: meaning; loading refuses layouts newer than this.
FORMAT_VERSION = 1
_FORMAT_KEY = "_sklearn_taskres_format"
_FITTED_SCALARS = ("alpha_", "logit_scale_", "n_iter_", "loss_curve_", "n_features_in_")


class VersionedStateMixin:
    """Adds the format version to pickles and checks it on load."""

    def __getstate__(self):
        # object.__getstate__ returns the instance's own __dict__: copy it, or
        # pickling would add the key to the estimator itself.
        state = dict(super().__getstate__())
        state[_FORMAT_KEY] = FORMAT_VERSION
        return state

    def __setstate__(self, state):
        state = dict(state)
        check_format(state.pop(_FORMAT_KEY, None), type(self).__name__)
        super().__setstate__(state)


def check_format(version, what):
    if version is None:
        warnings.warn(
            f"this {what} was saved without a sklearn-taskres format version, by a release "
            "older than 0.1 or another program; its fitted state may not load correctly. "
            "Refit it with this release.",
            UserWarning,
            stacklevel=3,
        )
    elif version > FORMAT_VERSION:
        raise ValueError(
            f"expected a {what} saved in format {FORMAT_VERSION} or older; got format {version}, "
            f"written by a newer sklearn-taskres than this one ({__version__}). Upgrade: "
            "pip install -U sklearn-taskres"
        )


def save_model(estimator, path):
    """Write a fitted estimator's arrays and parameters to ``path`` without pickle.

    The file is a NumPy ``.npz`` archive: the base, the residual and the
    classes as arrays, the parameters and the rest of the fitted state as
    JSON. :func:`load_model` reads it back without executing any code from
    the file, so it is the format to exchange models with people you do not
    trust. Like a pickle, it holds no CLIP weights: the encoder is found
    again from ``model`` and ``pretrained``.

    Parameters
    ----------
    estimator : TaskResClassifier or TaskResHead
        A fitted estimator.
    path : str or path
        Destination file (``.npz`` is appended by NumPy when missing).

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from sklearn_taskres import TaskResHead, save_model, load_model
    >>> X = np.random.RandomState(0).normal(size=(20, 8)); y = np.arange(20) % 2
    >>> head = TaskResHead(max_iter=3, device="cpu").fit(X, y)
    >>> path = os.path.join(tempfile.mkdtemp(), "head.npz")
    >>> save_model(head, path)
    >>> bool(np.allclose(load_model(path).predict_proba(X), head.predict_proba(X)))
    True
    """
    from sklearn.utils.validation import check_is_fitted

    from ._classifier import TaskResClassifier
    from ._head import TaskResHead

    if not isinstance(estimator, (TaskResClassifier, TaskResHead)):
        raise TypeError(
            f"expected a TaskResClassifier or TaskResHead; got {type(estimator).__name__}"
        )
    check_is_fitted(estimator)
    head = estimator.head_ if isinstance(estimator, TaskResClassifier) else estimator
    params = {
        name: _json_param(name, value)
        for name, value in estimator.get_params(deep=False).items()
        if name not in ("base_weights", "classes")
    }
    if isinstance(estimator, TaskResHead):
        params["base_weights"] = None if estimator.base_weights is None else "base_weights_"
        params["classes"] = None if estimator.classes is None else "classes_"
    metadata = {
        "format": FORMAT_VERSION,
        "version": __version__,
        "estimator": type(estimator).__name__,
        "params": params,
        "fitted": {name: _json_scalar(getattr(head, name)) for name in _FITTED_SCALARS},
    }
    if isinstance(estimator, TaskResClassifier):
        metadata["open_clip_config"] = custom_model_config(estimator.model)
    arrays = {"base_weights_": head.base_weights_, "residual_": head.residual_}
    classes = head.classes_
    if classes.dtype.kind in "iuU":
        arrays["classes_"] = classes
    else:
        metadata["classes_"] = [_json_label(label) for label in classes.tolist()]
    np.savez(path, metadata=np.array(json.dumps(metadata)), **arrays)


def load_model(path):
    """Read an estimator written by :func:`save_model`; no code from the file runs.

    Parameters
    ----------
    path : str or path
        A file written by :func:`save_model`.

    Returns
    -------
    estimator : TaskResClassifier or TaskResHead
        The fitted estimator, predicting as the saved one did.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from sklearn_taskres import TaskResHead, save_model, load_model
    >>> X = np.random.RandomState(1).normal(size=(12, 4)); y = ["a", "b", "c"] * 4
    >>> path = os.path.join(tempfile.mkdtemp(), "head.npz")
    >>> save_model(TaskResHead(max_iter=2, device="cpu").fit(X, y), path)
    >>> head = load_model(path)
    >>> head.classes_.tolist(), head.n_features_in_
    (['a', 'b', 'c'], 4)
    """
    from ._classifier import TaskResClassifier, _as_label_array
    from ._head import TaskResHead

    with np.load(os.fspath(path), allow_pickle=False) as archive:
        metadata = json.loads(str(archive["metadata"]))
        arrays = {name: archive[name] for name in archive.files if name != "metadata"}
    check_format(metadata.get("format"), metadata.get("estimator", "model"))
    classes = arrays.get("classes_")
    if classes is None:
        classes = _as_label_array(metadata["classes_"])
    params = dict(metadata["params"])
    fitted = metadata["fitted"]

    if metadata["estimator"] == "TaskResHead":
        if params["base_weights"] is not None:
            params["base_weights"] = arrays["base_weights_"]
        if params["classes"] is not None:
            params["classes"] = classes
        head = TaskResHead(**params)
    elif metadata["estimator"] == "TaskResClassifier":
        classnames = params["classnames"]
        if isinstance(classnames, dict):  # {"mapping": [[label, name], ...]}
            params["classnames"] = {label: name for label, name in classnames["mapping"]}
        ensure_model_config(params["model"], metadata.get("open_clip_config"))
        estimator = TaskResClassifier(**params)
        head = TaskResHead(
            arrays["base_weights_"],
            classes=classes,
            alpha=fitted["alpha_"],
            logit_scale=fitted["logit_scale_"],
            learning_rate=estimator.learning_rate,
            max_iter=estimator.max_iter,
            batch_size=estimator.batch_size,
            weight_decay=estimator.weight_decay,
            device=estimator.device,
            random_state=estimator.random_state,
            verbose=estimator.verbose,
        )
    else:
        raise ValueError(
            f"expected a file written by save_model; got estimator {metadata['estimator']!r}"
        )
    head.classes_ = classes
    head.base_weights_ = arrays["base_weights_"]
    head.residual_ = arrays["residual_"]
    for name in _FITTED_SCALARS:
        setattr(head, name, fitted[name])
    if metadata["estimator"] == "TaskResHead":
        return head
    estimator._set_fitted(head)
    return estimator


def _json_param(name, value):
    if name == "classnames":
        if isinstance(value, dict):
            return {"mapping": [[_json_label(k), v] for k, v in value.items()]}
        return [str(v) for v in value]
    if name in ("pretrained", "cache_dir") and value is not None:
        return os.fspath(value)
    if name == "templates" and value is not None and not isinstance(value, str):
        return list(value)
    if name == "random_state" and not (value is None or isinstance(value, Integral)):
        warnings.warn(
            "random_state is a RandomState instance, which save_model cannot write; "
            "it is saved as None (the fitted state is saved exactly)",
            UserWarning,
            stacklevel=3,
        )
        return None
    return _json_scalar(value)


def _json_scalar(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (list, tuple)):
        return [_json_scalar(v) for v in value]
    return value


def _json_label(label):
    label = _json_scalar(label)
    if not isinstance(label, (str, int, float, bool)):
        raise ValueError(
            f"expected class labels that are strings or numbers to save without pickle; "
            f"got {label!r} of type {type(label).__name__} (use joblib for such labels)"
        )
    return label
