"""An on-disk feature cache shared by processes and scripts.

One small file per feature vector, named by a hash of its cache key. Writes
are atomic (a temporary file in the same folder, then ``os.replace``), so two
processes writing the same entry at once both leave a complete file; every
file carries a checksum of its payload, and a corrupt or truncated entry is
deleted and recomputed rather than served.
"""

import hashlib
import os
import tempfile
from pathlib import Path

import numpy as np

_MAGIC = b"TRF1"
_CHECKSUM_SIZE = 16


class DiskCache:
    """Feature vectors (float32, 1-d) on disk under ``directory``, keyed by any repr-able key."""

    def __init__(self, directory):
        self.directory = Path(directory).expanduser()

    def _path(self, key):
        name = hashlib.blake2b(repr(key).encode(), digest_size=20).hexdigest()
        return self.directory / name[:2] / f"{name}.feat"

    def get(self, key):
        """The vector stored for ``key``, or None when missing or corrupt."""
        path = self._path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        header = len(_MAGIC) + _CHECKSUM_SIZE
        payload = data[header:]
        valid = (
            data[: len(_MAGIC)] == _MAGIC
            and len(payload) % 4 == 0
            and data[len(_MAGIC) : header] == _checksum(payload)
        )
        if not valid:
            path.unlink(missing_ok=True)
            return None
        return np.frombuffer(payload, dtype=np.float32).copy()

    def put(self, key, value):
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = np.ascontiguousarray(value, dtype=np.float32).tobytes()
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(_MAGIC + _checksum(payload) + payload)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def _checksum(payload):
    return hashlib.blake2b(payload, digest_size=_CHECKSUM_SIZE).digest()
