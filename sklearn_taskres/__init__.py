"""TaskRes (Task Residual for Tuning Vision-Language Models) as scikit-learn estimators."""

from ._classifier import TaskResClassifier
from ._clip import WeightsUnavailableError
from ._head import TaskResHead
from ._version import __version__

__all__ = ["TaskResClassifier", "TaskResHead", "WeightsUnavailableError", "__version__"]
