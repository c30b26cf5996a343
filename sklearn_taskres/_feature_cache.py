"""The in-process feature cache: feature vectors by key, the least recently used dropped first.

``set_config(feature_cache_bytes=...)`` bounds it and the feature lookups of
``_features`` go through it; it imports neither.
"""

import threading
from collections import OrderedDict


class FeatureCache:
    """A thread-safe LRU mapping of keys to feature vectors, bounded in bytes."""

    def __init__(self, max_bytes):
        self.max_bytes = max_bytes
        self._entries = OrderedDict()
        self._nbytes = 0
        self._lock = threading.Lock()

    def __len__(self):
        return len(self._entries)

    @property
    def nbytes(self):
        """Bytes held by the cached vectors."""
        return self._nbytes

    def get(self, key):
        with self._lock:
            value = self._entries.get(key)
            if value is not None:
                self._entries.move_to_end(key)
            return value

    def put(self, key, value):
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._nbytes -= old.nbytes
            self._entries[key] = value
            self._nbytes += value.nbytes
            self._evict(keep=1)

    def shrink_to(self, max_bytes):
        """Set the bound and drop the least recently used entries beyond it."""
        with self._lock:
            self.max_bytes = max_bytes
            self._evict(keep=0)

    def _evict(self, keep):
        while self._nbytes > self.max_bytes and len(self._entries) > keep:
            _, evicted = self._entries.popitem(last=False)
            self._nbytes -= evicted.nbytes

    def clear(self):
        with self._lock:
            self._entries.clear()
            self._nbytes = 0


#: The bound of the in-process feature cache at start: 2 GiB (see ``set_config``).
DEFAULT_MAX_BYTES = 2 * 1024**3

#: The process's feature cache, shared by every estimator and call.
FEATURES = FeatureCache(DEFAULT_MAX_BYTES)
