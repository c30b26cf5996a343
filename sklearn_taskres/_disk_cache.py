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

# The first bytes of a file name the dtype of its payload.
_MAGICS = {b"TRF1": np.dtype(np.float32), b"TRH1": np.dtype(np.float16)}
_MAGIC_OF = {dtype: magic for magic, dtype in _MAGICS.items()}
_MAGIC_SIZE = 4
_CHECKSUM_SIZE = 16


class DiskCache:
    """1-d feature vectors (float32 or float16) under ``directory``, keyed by any repr-able key."""

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
        header = _MAGIC_SIZE + _CHECKSUM_SIZE
        payload = data[header:]
        dtype = _MAGICS.get(data[:_MAGIC_SIZE])
        valid = (
            dtype is not None
            and len(payload) % dtype.itemsize == 0
            and data[_MAGIC_SIZE:header] == _checksum(payload)
        )
        if not valid:
            path.unlink(missing_ok=True)
            return None
        return np.frombuffer(payload, dtype=dtype).copy()

    def put(self, key, value):
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        value = np.ascontiguousarray(value)
        magic = _MAGIC_OF[value.dtype]
        payload = value.tobytes()
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(magic + _checksum(payload) + payload)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


def _checksum(payload):
    return hashlib.blake2b(payload, digest_size=_CHECKSUM_SIZE).digest()
