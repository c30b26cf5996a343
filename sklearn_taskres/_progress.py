"""Progress bars and the package logger.

``verbose=0`` shows nothing. With ``verbose >= 1`` tqdm bars go to stderr for
model loading, encoding and training (tqdm honours ``TQDM_DISABLE``).
Messages go to the ``"sklearn_taskres"`` logger whatever ``verbose`` is;
configure it with :mod:`logging` to see them.
"""

import logging
import os

from tqdm.auto import tqdm

logger = logging.getLogger("sklearn_taskres")


def progress(verbose, **kwargs):
    """A tqdm bar on stderr when ``verbose``, else a disabled one (same interface)."""
    kwargs.setdefault("dynamic_ncols", True)
    if not verbose or os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true", "yes"):
        kwargs["disable"] = True
    return tqdm(**kwargs)
