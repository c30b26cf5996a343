"""The labelling page: label a folder in the browser while TaskRes retrains after every label.

Needs the ``app`` extra (Starlette and uvicorn)::

    pip install "sklearn-taskres[app]"

:func:`serve` serves the page of a folder on 127.0.0.1 until Ctrl+C (the
``sklearn-taskres label`` command calls it); :class:`LabellingServer` does
the same in a background thread, for notebooks and scripts. The pieces, each
usable alone: :class:`LabellingSession` (the pool, the decisions, the
models), :func:`next_images` (the queue policy, a pure function),
:func:`refit` (the trainer's fit on labelled features) and
:func:`wilson_interval` (the accuracy estimate's interval).
"""

try:
    import starlette  # noqa: F401
    import uvicorn  # noqa: F401
except ImportError as exc:
    raise ImportError(
        'the labelling page needs Starlette and uvicorn: pip install "sklearn-taskres[app]"'
    ) from exc

from ._estimate import Estimate, audit_estimates, wilson_interval
from ._policy import AUDIT_SHARE, next_images
from ._server import LabellingServer, serve
from ._session import LabellingSession, SessionError
from ._trainer import refit

__all__ = [
    "AUDIT_SHARE",
    "Estimate",
    "LabellingServer",
    "LabellingSession",
    "SessionError",
    "audit_estimates",
    "next_images",
    "refit",
    "serve",
    "wilson_interval",
]
