"""TaskRes (Task Residual for Tuning Vision-Language Models) as scikit-learn estimators."""

from ._classifier import TaskResClassifier
from ._clip import WeightsUnavailableError
from ._config import config_context, get_config, set_config
from ._features import clear_feature_cache
from ._head import TaskResHead
from ._persistence import load_model, save_model
from ._version import __version__
from .fewshot import sample_few_shot

__all__ = [
    "TaskResClassifier",
    "TaskResHead",
    "WeightsUnavailableError",
    "clear_feature_cache",
    "config_context",
    "get_config",
    "load_model",
    "sample_few_shot",
    "save_model",
    "set_config",
    "__version__",
]
