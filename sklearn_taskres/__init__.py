"""TaskRes (Task Residual for Tuning Vision-Language Models) as scikit-learn estimators.

The public names are imported on first use, so that ``import sklearn_taskres``
and ``sklearn-taskres --help`` do not wait for torch and scikit-learn.
"""

import importlib
from typing import TYPE_CHECKING

from ._version import __version__

_EXPORTS = {
    "CLIPImageEncoder": "._image_encoder",
    "SKOPS_TRUSTED_TYPES": "._persistence",
    "TaskResClassifier": "._classifier",
    "TaskResHead": "._head",
    "WeightsUnavailableError": "._clip",
    "clear_feature_cache": "._features",
    "clear_feature_store": "._feature_store",
    "compact_feature_store": "._feature_store",
    "config_context": "._config",
    "feature_store_info": "._feature_store",
    "get_config": "._config",
    "load_model": "._persistence",
    "sample_few_shot": ".fewshot",
    "save_model": "._persistence",
    "set_config": "._config",
    "zero_shot_classifier": "._zero_shot",
}

__all__ = [
    "CLIPImageEncoder",
    "SKOPS_TRUSTED_TYPES",
    "TaskResClassifier",
    "TaskResHead",
    "WeightsUnavailableError",
    "clear_feature_cache",
    "clear_feature_store",
    "compact_feature_store",
    "config_context",
    "feature_store_info",
    "get_config",
    "load_model",
    "sample_few_shot",
    "save_model",
    "set_config",
    "zero_shot_classifier",
    "__version__",
]

if TYPE_CHECKING:  # for static analysis; at run time, __getattr__ imports on demand
    from ._classifier import TaskResClassifier
    from ._clip import WeightsUnavailableError
    from ._config import config_context, get_config, set_config
    from ._feature_store import clear_feature_store, compact_feature_store, feature_store_info
    from ._features import clear_feature_cache
    from ._head import TaskResHead
    from ._image_encoder import CLIPImageEncoder
    from ._persistence import SKOPS_TRUSTED_TYPES, load_model, save_model
    from ._zero_shot import zero_shot_classifier
    from .fewshot import sample_few_shot


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name], __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted({*globals(), *__all__})
