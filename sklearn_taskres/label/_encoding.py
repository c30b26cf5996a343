"""Encoding the session's images in the background, into the feature store as usual.

Labelling starts while the folder is being encoded: the queue ranks what is
encoded so far. Batches go through the classifier's feature cache (and its
``cache_dir``), so a second session on the same folder reads them back at once.
"""

import re
import threading

import numpy as np

from .._progress import logger

#: Images per batch: each batch reaches the page (and the store) as soon as it is encoded.
BATCH_SIZE = 32
#: How the library names the image it could not read: "X[i]: reason".
_IMAGE_ERROR = re.compile(r"X\[(\d+)\]: (.*)", re.DOTALL)


def encode_paths(classifier, paths):
    """Features of the image files ``paths``, and ``(position, reason)`` of unreadable ones.

    Returns
    -------
    positions : list of int
        The positions in ``paths`` of the images encoded.
    features : ndarray of shape (len(positions), n_features)
    failures : list of (int, str)
    """
    pending, failures = list(range(len(paths))), []
    while pending:
        try:
            features = classifier._features([paths[position] for position in pending])
            return pending, features, failures
        except (ValueError, OSError) as exc:
            match = _IMAGE_ERROR.match(str(exc))
            if match is None or int(match[1]) >= len(pending):
                raise
            failures.append((pending.pop(int(match[1])), " ".join(match[2].split())))
    return [], np.zeros((0, classifier.base_weights_.shape[1]), np.float32), failures


class Encoder(threading.Thread):
    """Encodes every image of ``session`` in :meth:`~LabellingSession.encoding_order`."""

    def __init__(self, session, batch_size=BATCH_SIZE):
        super().__init__(name="sklearn-taskres-encoder", daemon=True)
        self.session = session
        self.batch_size = batch_size
        self.stopping = threading.Event()
        self.done = threading.Event()

    def stop(self):
        self.stopping.set()

    def run(self):
        session = self.session
        try:
            order = session.encoding_order()
            for start in range(0, len(order), self.batch_size):
                if self.stopping.is_set():
                    return
                batch = order[start:start + self.batch_size]
                positions, features, failures = encode_paths(
                    session.start_model, [session.paths[index] for index in batch])
                session.add_features([batch[position] for position in positions], features,
                                     [(batch[position], reason) for position, reason in failures])
        except Exception as exc:  # shown on the page; what is encoded can still be labelled
            logger.exception("encoding failed")
            session.error = f"encoding failed: {type(exc).__name__}: {exc}"
        finally:
            self.done.set()
