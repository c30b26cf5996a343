"""TaskRes (Task Residual for Tuning Vision-Language Models) as scikit-learn estimators."""

from ._classifier import TaskResClassifier
from ._clip import WeightsUnavailableError
from ._head import TaskResHead
from ._persistence import load_model, save_model
from ._version import __version__
from .fewshot import sample_few_shot

__all__ = [
    "TaskResClassifier",
    "TaskResHead",
    "WeightsUnavailableError",
    "load_model",
    "sample_few_shot",
    "save_model",
    "__version__",
]
