"""Process-wide settings of sklearn-taskres, in the manner of :func:`sklearn.set_config`.

The settings of the feature cache, which is itself process-wide (every
estimator of the process shares the encoded features), and of image
decoding, which every estimator of the process shares too.
"""

import contextlib
import numbers

import numpy as np

_DEFAULTS = {
    "feature_cache_bytes": 2 * 1024**3,
    "feature_cache_dtype": "float32",
    "jpeg_draft": True,
    "exif_orientation": True,
}
_CACHE_DTYPES = ("float32", "float16")
#: The settings that change how image files and PIL images are decoded.
DECODING_SETTINGS = ("jpeg_draft", "exif_orientation")
_config = dict(_DEFAULTS)
# The settings this process has set itself: they win over those an
# unpickled estimator carries (see decoding_config).
_set_here = set()


def get_config():
    """The current settings, as a dict (a copy).

    Returns
    -------
    config : dict
        ``feature_cache_bytes``, ``feature_cache_dtype``, ``jpeg_draft`` and
        ``exif_orientation``; see :func:`set_config`.

    Examples
    --------
    >>> import sklearn_taskres
    >>> sklearn_taskres.get_config()["feature_cache_dtype"]
    'float32'
    """
    return dict(_config)


def set_config(feature_cache_bytes=None, feature_cache_dtype=None, jpeg_draft=None,
               exif_orientation=None):
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
    jpeg_draft : bool, default=None
        Whether JPEG files are decoded at reduced scale (True at start).
        libjpeg decodes at 1/2, 1/4 or 1/8 of the full size in the DCT
        domain, several times faster than a full decode: a file is decoded
        at the smallest of these scales that keeps both sides at least twice
        the model's input size, then goes through the model's own
        preprocessing unchanged. A 12-megapixel photo decodes about 3.6
        times faster, its features at cosine 0.99995 to those of the full
        decode. Files smaller than twice the input, other formats, arrays
        and PIL images are decoded as they are; augmented views
        (``augment_views``) always decode at full size, since their random
        crops may zoom in.
    exif_orientation : bool, default=None
        Whether the EXIF orientation of image files and PIL images is
        applied before anything else (True at start), as image viewers do:
        a phone photo stored sideways with an orientation tag is encoded
        upright. CLIP is not rotation invariant. Arrays are taken as they
        are.

    Notes
    -----
    The decoding settings are part of the feature-cache keys of image files
    and PIL images. They reach every process that decodes: the Ray helpers
    of :mod:`sklearn_taskres.ray` pass them to their workers, and a pickled
    :class:`TaskResClassifier` carries those of the process that pickled it
    (to joblib workers of ``GridSearchCV(n_jobs=...)``, for instance), where
    they apply to that estimator unless the unpickling process has set them
    itself with this function or :func:`config_context`.

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
    for setting, value in (("jpeg_draft", jpeg_draft), ("exif_orientation", exif_orientation)):
        if value is None:
            continue
        if not isinstance(value, (bool, np.bool_)):
            raise ValueError(f"expected {setting} to be True or False; got {value!r}")
        changes[setting] = bool(value)
    _config.update(changes)
    _set_here.update(changes)
    if "feature_cache_bytes" in changes:
        from ._features import FEATURES

        FEATURES.shrink_to(changes["feature_cache_bytes"])


def decoding_config(carried=None):
    """The decoding settings in force, as a dict.

    Those of this process; for the settings this process has not set
    itself, those ``carried`` by an unpickled estimator (a dict as this
    function returns, or None).
    """
    settings = {name: _config[name] for name in DECODING_SETTINGS}
    for name, value in (carried or {}).items():
        if name in settings and name not in _set_here:
            settings[name] = bool(value)
    return settings


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
