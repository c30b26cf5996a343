"""Saving and loading fitted estimators with skops, without pickle.

:func:`save_model` writes a `skops <https://skops.readthedocs.io>`_ file, the
format scikit-learn recommends for exchanging models: NumPy arrays and a JSON
schema in a zip archive. :func:`load_model` reads only files whose every
object is of a type this package writes (its estimators, NumPy arrays,
Python builtins); any other type is refused before anything is built, so no
code from the file runs. :data:`SKOPS_TRUSTED_TYPES` names the estimators for
other tools that load skops files (``skops.io.load``, MLflow's skops format).
"""

import copy
import json
import os
import warnings
import zipfile

import numpy as np
import skops.io
from sklearn.utils.validation import check_is_fitted

from ._classifier import TaskResClassifier, _as_label_array
from ._head import TaskResHead
from ._state import check_format

#: The types of a skops file of this package that skops does not trust by
#: default: its estimators. Pass them to skops, or to any tool that loads skops
#: files, to trust them: ``skops.io.load(path, trusted=SKOPS_TRUSTED_TYPES)``,
#: ``mlflow.sklearn.log_model(clf, name=..., serialization_format="skops",
#: skops_trusted_types=SKOPS_TRUSTED_TYPES)``. :func:`load_model` trusts these
#: and the NumPy and builtin types that skops writes for them, nothing else.
SKOPS_TRUSTED_TYPES = tuple(
    f"{cls.__module__}.{cls.__qualname__}" for cls in (TaskResClassifier, TaskResHead)
)
_ESTIMATORS = dict(zip(SKOPS_TRUSTED_TYPES, (TaskResClassifier, TaskResHead), strict=True))
# What skops writes for the state of our estimators, by loader: each schema
# node names a loader and the type it builds. Some loaders call the type they
# name (an array node calls a scalar type on its content, a random state node
# calls its class), so the names are exact; nodes of other loaders (functions,
# methods, objects of other classes, operators...) are refused.
_BUILTINS = frozenset(
    f"builtins.{name}" for name in
    ("dict", "list", "tuple", "str", "int", "float", "bool", "complex", "NoneType")
)
_NUMPY_ARRAYS = frozenset(
    {"numpy.ndarray"} | {f"numpy.{scalar.__name__}" for scalar in set(np.sctypeDict.values())}
)
_ALLOWED = {
    "ObjectNode": frozenset(_ESTIMATORS),
    "DictNode": _BUILTINS,
    "ListNode": _BUILTINS,
    "TupleNode": _BUILTINS,
    "JsonNode": _BUILTINS,
    "TypeNode": _BUILTINS | _NUMPY_ARRAYS,
    "NdArrayNode": _NUMPY_ARRAYS,
    "RandomStateNode": frozenset({"numpy.random.mtrand.RandomState"}),
    "RandomGeneratorNode": frozenset({"numpy.random._generator.Generator"}),
}


def save_model(estimator, path):
    """Write a fitted estimator to a skops file, which loads without running code.

    The file holds the fitted state (the base, the residual, the classes,
    the parameters) as NumPy arrays and JSON; :func:`load_model` reads it
    back without executing anything from the file, so it is the format to
    exchange models with people you do not trust, and other tools read it
    with ``skops.io``. Like a pickle, it holds no CLIP weights: the encoder
    is found again from ``model`` and ``pretrained``. Callbacks set with
    ``set_callbacks`` are not saved: they are not part of the fitted state.

    Parameters
    ----------
    estimator : TaskResClassifier or TaskResHead
        A fitted estimator.
    path : str, path or binary file object
        Destination, by convention with the suffix ``.skops``.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from sklearn_taskres import TaskResHead, save_model, load_model
    >>> X = np.random.RandomState(0).normal(size=(20, 8)); y = np.arange(20) % 2
    >>> head = TaskResHead(max_iter=3, device="cpu").fit(X, y)
    >>> path = os.path.join(tempfile.mkdtemp(), "head.skops")
    >>> save_model(head, path)
    >>> bool(np.allclose(load_model(path).predict_proba(X), head.predict_proba(X)))
    True
    """
    if not isinstance(estimator, (TaskResClassifier, TaskResHead)):
        raise TypeError(
            f"expected a TaskResClassifier or TaskResHead; got {type(estimator).__name__}"
        )
    check_is_fitted(estimator)
    if hasattr(estimator, "_skl_callbacks"):
        estimator = copy.copy(estimator)
        del estimator._skl_callbacks
    skops.io.dump(estimator, path)


def load_model(path):
    """Read an estimator written by :func:`save_model`; no code from the file runs.

    Every object of the file must be of a type this package writes: its
    estimators (:data:`SKOPS_TRUSTED_TYPES`), NumPy arrays and Python
    builtins. A file with any other type
    is refused, naming the type, before anything is built from it. A ``.npz``
    file written by sklearn-taskres 0.1 still loads, with a deprecation
    warning.

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
    >>> path = os.path.join(tempfile.mkdtemp(), "head.skops")
    >>> save_model(TaskResHead(max_iter=2, device="cpu").fit(X, y), path)
    >>> head = load_model(path)
    >>> head.classes_.tolist(), head.n_features_in_
    (['a', 'b', 'c'], 4)
    """
    path = os.fspath(path)
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"expected a model file written by save_model (a skops zip archive); got {path!r}, "
            "which is not a zip archive"
        )
    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        schema = json.loads(archive.read("schema.json")) if "schema.json" in names else None
    if schema is None:
        if "metadata.npy" in names:
            return _load_npz_0_1(path)
        raise ValueError(
            f"expected a model file written by save_model; got {path!r}, a zip archive "
            "without a skops schema"
        )
    trusted = _audit(schema, path)
    return skops.io.load(path, trusted=sorted(trusted))


def _audit(schema, path):
    """The types named in a skops schema, all of them ours, NumPy's or builtins.

    Raises ``TypeError`` naming the first other type. Reading the schema runs
    nothing: the objects are built by skops after this check.
    """
    top = f"{schema.get('__module__')}.{schema.get('__class__')}"
    if top not in _ESTIMATORS:
        raise TypeError(
            f"expected a file holding a TaskResClassifier or TaskResHead; got {path!r}, "
            f"holding a {top}"
        )
    found = set()
    pending = [schema]
    while pending:
        node = pending.pop()
        if isinstance(node, list):
            pending.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        pending.extend(node.values())
        if "__loader__" not in node:
            continue
        loader = node["__loader__"]
        name = f"{node.get('__module__')}.{node.get('__class__')}"
        module = str(node.get("__module__"))
        allowed = name in _ALLOWED.get(loader if isinstance(loader, str) else None, ()) or (
            # The dtype is read from the array it holds: its name calls nothing.
            loader == "DTypeNode" and (module == "numpy" or module.startswith("numpy."))
        )
        if not allowed:
            raise TypeError(
                f"expected a file holding only sklearn-taskres estimators, NumPy arrays and "
                f"Python builtins; got {path!r}, which holds the type {name} (skops loader "
                f"{loader}). Nothing was loaded from it."
            )
        found.add(name)
    return found


def _load_npz_0_1(path):
    """An estimator from the ``.npz`` + JSON format of sklearn-taskres 0.1 (deprecated)."""
    warnings.warn(
        f"{path!r} is in the .npz format of sklearn-taskres 0.1, which is deprecated and "
        "will stop loading in a future release. Convert it once to a skops file: "
        f"save_model(load_model({path!r}), {os.path.splitext(path)[0] + '.skops'!r})",
        FutureWarning,
        stacklevel=3,
    )
    with np.load(path, allow_pickle=False) as archive:
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
        if isinstance(params["classnames"], dict):  # {"mapping": [[label, name], ...]}
            params["classnames"] = dict(params["classnames"]["mapping"])
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
    for name in ("alpha_", "logit_scale_", "n_iter_", "loss_curve_", "n_features_in_"):
        setattr(head, name, fitted[name])
    if metadata["estimator"] == "TaskResHead":
        return head
    estimator._set_fitted(head)
    return estimator
