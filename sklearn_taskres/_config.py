"""Process-wide settings of sklearn-taskres, in the manner of :func:`sklearn.set_config`.

The only settings are those of the feature cache, which is itself
process-wide: every estimator of the process shares the encoded features.
"""

import contextlib
import numbers

import numpy as np

from ._feature_cache import DEFAULT_MAX_BYTES, FEATURES

_DEFAULTS = {
    "feature_cache_bytes": DEFAULT_MAX_BYTES,
    "feature_cache_dtype": "float32",
}
_CACHE_DTYPES = ("float32", "float16")
_config = dict(_DEFAULTS)


def get_config():
    """The current settings, as a dict (a copy).

    Returns
    -------
    config : dict
        ``feature_cache_bytes`` and ``feature_cache_dtype``; see :func:`set_config`.

    Examples
    --------
    >>> import sklearn_taskres
    >>> sklearn_taskres.get_config()["feature_cache_dtype"]
    'float32'
    """
    return dict(_config)


def set_config(feature_cache_bytes=None, feature_cache_dtype=None):
    """Change process-wide settings; arguments left as None keep their value.

    Parameters
    ----------
    feature_cache_bytes : int, default=None
        Bound on the memory of the in-process feature cache (2 GiB at
        start). The least recently used features are dropped beyond it,
        at once when the bound shrinks. With 0, the cache keeps no more
        than the last feature vector between calls.
    feature_cache_dtype : {"float32", "float16"}, default=None
        How features are kept in the caches, in memory and in ``cache_dir``
        ("float32" at start). "float16" halves their memory and disk space.
        Every image and prompt feature is then rounded to float16 (a
        relative error below 5e-4) before it is used, whether it was just
        encoded or read from a cache, so results do not depend on what was
        cached before; training and prediction still compute in float32.
        Entries of the two dtypes are kept apart.

    Examples
    --------
    >>> import sklearn_taskres
    >>> sklearn_taskres.set_config(feature_cache_dtype="float16")
    >>> sklearn_taskres.get_config()["feature_cache_dtype"]
    'float16'
    >>> sklearn_taskres.set_config(feature_cache_dtype="float32")
    """
    changes = {}
    if feature_cache_bytes is not None:
        if (
            not isinstance(feature_cache_bytes, numbers.Integral)
            or isinstance(feature_cache_bytes, bool)
            or feature_cache_bytes < 0
        ):
            raise ValueError(
                "expected feature_cache_bytes to be an int >= 0; "
                f"got {feature_cache_bytes!r}"
            )
        changes["feature_cache_bytes"] = int(feature_cache_bytes)
    if feature_cache_dtype is not None:
        name = feature_cache_dtype if isinstance(feature_cache_dtype, str) else None
        if name is None:
            try:
                name = np.dtype(feature_cache_dtype).name
            except TypeError:
                pass
        if name not in _CACHE_DTYPES:
            raise ValueError(
                f"expected feature_cache_dtype to be one of {_CACHE_DTYPES}; "
                f"got {feature_cache_dtype!r}"
            )
        changes["feature_cache_dtype"] = name
    _config.update(changes)
    if "feature_cache_bytes" in changes:
        FEATURES.shrink_to(changes["feature_cache_bytes"])


@contextlib.contextmanager
def config_context(**settings):
    """Apply :func:`set_config` settings inside a ``with`` block, then restore the old ones.

    Examples
    --------
    >>> import sklearn_taskres
    >>> with sklearn_taskres.config_context(feature_cache_dtype="float16"):
    ...     sklearn_taskres.get_config()["feature_cache_dtype"]
    'float16'
    >>> sklearn_taskres.get_config()["feature_cache_dtype"]
    'float32'
    """
    old = get_config()
    set_config(**settings)
    try:
        yield
    finally:
        set_config(**old)
