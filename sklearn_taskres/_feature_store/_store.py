"""Reading and writing the feature store: its shards, its index, one store per directory.

The layout, and what each of its guarantees rests on: the package's docstring.
"""

import hashlib
import os
import re
import secrets
import socket
import struct
import tempfile
import threading
import warnings
from pathlib import Path

import numpy as np

from .._progress import logger

FORMAT = "sklearn-taskres feature store, packed shards, version 1\n"
MARKER = "FEATURE_STORE"
SHARDS = "shards"
#: A writer starts a new shard once its ``.dat`` holds this many bytes.
SHARD_BYTES = 1 << 30

_DATA_MAGIC = b"TRSDATA1"
_INDEX_MAGIC = b"TRSINDX1"
_MAGIC_SIZE = 8
# key digest, offset, size, dtype code, checksum of the vector
_ENTRY = struct.Struct("<20sQIB3x16s")
_ENTRY_CHECK_SIZE = 12
_ENTRY_SIZE = _ENTRY.size + _ENTRY_CHECK_SIZE  # 64
_KEY_SIZE = 20
_CHECKSUM_SIZE = 16
_DTYPES = {1: np.dtype(np.float32), 2: np.dtype(np.float16)}
_CODES = {dtype: code for code, dtype in _DTYPES.items()}

# The former layout: DIR/ab/<40 hex digits>.feat, a 4-byte magic naming the
# dtype, a 16-byte checksum, then the vector.
_LEGACY_MAGICS = {b"TRF1": np.dtype(np.float32), b"TRH1": np.dtype(np.float16)}
_LEGACY_HEADER = 4 + _CHECKSUM_SIZE
_LEGACY_FOLDER = re.compile(r"^[0-9a-f]{2}$")


def key_digest(key):
    """The 20-byte digest that stands for a repr-able ``key`` in the store."""
    return hashlib.blake2b(repr(key).encode(), digest_size=_KEY_SIZE).digest()


def _checksum(payload):
    return hashlib.blake2b(payload, digest_size=_CHECKSUM_SIZE).digest()


def _entry_check(packed):
    return hashlib.blake2b(packed, digest_size=_ENTRY_CHECK_SIZE).digest()


class FeatureStore:
    """1-d feature vectors (float32 or float16) in ``directory``, keyed by repr-able keys.

    Use :func:`open_store`, which keeps one instance per directory and
    process. Thread-safe.
    """

    def __init__(self, directory):
        self.directory = Path(directory).expanduser()
        self._lock = threading.Lock()
        self._index = {}  # key digest -> (shard, offset, size, dtype code, checksum)
        self._spares = {}  # key digest -> further locations of the same key
        self._consumed = {}  # shard -> bytes of its index read so far
        self._unreadable = set()  # shards whose index does not start with the magic
        self._writer = None
        self._legacy = None  # whether the former layout is present, checked once
        self.n_damaged = 0  # entries or vectors found damaged, and skipped

    @property
    def shard_directory(self):
        return self.directory / SHARDS

    def __len__(self):
        with self._lock:
            self._refresh()
            return len(self._index)

    def get(self, key):
        """The vector stored for ``key``, or None when missing or damaged."""
        return self.get_many([key])[0]

    def get_many(self, keys):
        """The vectors stored for ``keys``: a list with None where missing or damaged."""
        digests = [key_digest(key) for key in keys]
        with self._lock:
            if any(digest not in self._index for digest in digests):
                self._refresh()
            values = self._read(digests)
        missing = [i for i, value in enumerate(values) if value is None]
        if missing and self._has_legacy():
            found = []
            for i in missing:
                values[i] = _read_legacy(self.directory, digests[i])
                if values[i] is not None:
                    found.append((keys[i], values[i]))
            if found:
                self.put_many(found)
        return values

    def put(self, key, value):
        self.put_many([(key, value)])

    def put_many(self, items):
        """Append ``(key, vector)`` pairs to this process's shard."""
        records = []
        for key, value in items:
            value = np.ascontiguousarray(value)
            if value.ndim != 1 or value.dtype not in _CODES:
                raise ValueError(
                    "expected a 1-d float32 or float16 feature vector; got dtype "
                    f"{value.dtype} and shape {value.shape}"
                )
            records.append((key_digest(key), _CODES[value.dtype], value.tobytes()))
        if not records:
            return
        with self._lock:
            try:
                located = self._current_writer().append(records)
            except OSError as exc:  # read-only, full or gone: the caller has its vectors
                if self._writer is not None:
                    self._writer.close()
                    self._writer = None
                warnings.warn(
                    f"could not write to the feature store {str(self.directory)!r} ({exc}); "
                    f"{len(records)} computed vector(s) were not stored",
                    UserWarning,
                    stacklevel=4,
                )
                return
            for digest, location in located:
                self._index[digest] = location
                self._spares.pop(digest, None)

    def close(self):
        """Close this process's shard; a later write opens a new one."""
        with self._lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None

    # ------------------------------------------------------------ for upkeep

    def scan(self, *, verify=False):
        """Read every index (with ``verify``, every vector too); the digests of the vectors.

        Entries and vectors that fail their checks are left out and counted in
        ``n_damaged``. Upkeep calls it on an instance of its own.
        """
        with self._lock:
            self._refresh()
            if verify:
                self._read(list(self._index))
            return list(self._index)

    def read_digests(self, digests):
        """The checked vectors of ``digests`` (from :meth:`scan`), None where damaged."""
        with self._lock:
            return self._read(digests)

    @property
    def shard_names(self):
        """The shards whose index was read, readable or not."""
        with self._lock:
            return set(self._consumed) | self._unreadable

    # ------------------------------------------------------------ reading

    def _refresh(self):
        """Read the entries added to every index since the last look."""
        try:
            names = sorted(os.listdir(self.shard_directory))
        except (FileNotFoundError, NotADirectoryError):
            return
        for name in names:
            if not name.endswith(".idx"):
                continue
            shard = name[:-4]
            if shard in self._unreadable:
                continue
            consumed = self._consumed.get(shard, 0)
            try:
                with open(self.shard_directory / name, "rb") as file:
                    file.seek(consumed)
                    data = file.read()
            except OSError:
                continue
            start = 0
            if consumed == 0:
                if len(data) < _MAGIC_SIZE:  # being created: look again later
                    continue
                if data[:_MAGIC_SIZE] != _INDEX_MAGIC:
                    logger.warning("ignoring the unreadable shard index %s", name)
                    self._unreadable.add(shard)
                    self.n_damaged += 1
                    continue
                start = _MAGIC_SIZE
            n_entries = (len(data) - start) // _ENTRY_SIZE
            for position in range(start, start + n_entries * _ENTRY_SIZE, _ENTRY_SIZE):
                packed = data[position : position + _ENTRY.size]
                check = data[position + _ENTRY.size : position + _ENTRY_SIZE]
                if _entry_check(packed) != check:
                    self.n_damaged += 1
                    continue
                digest, offset, size, code, checksum = _ENTRY.unpack(packed)
                location = (shard, offset, size, code, checksum)
                if digest in self._index:
                    self._spares.setdefault(digest, []).append(location)
                else:
                    self._index[digest] = location
            self._consumed[shard] = consumed + start + n_entries * _ENTRY_SIZE

    def _read(self, digests):
        """Read and check the vectors of ``digests``; drop the locations that fail."""
        found = {}
        pending = list(dict.fromkeys(digests))
        n_damaged = self.n_damaged
        while pending:
            by_shard = {}
            for digest in pending:
                location = self._index.get(digest)
                if location is not None:
                    by_shard.setdefault(location[0], []).append(digest)
            pending = []
            for shard, group in by_shard.items():
                try:
                    descriptor = os.open(self.shard_directory / f"{shard}.dat", os.O_RDONLY)
                except OSError:
                    descriptor = None
                try:
                    for digest, value in _read_vectors(
                        descriptor, [(digest, self._index[digest]) for digest in group]
                    ):
                        if value is not None:
                            found[digest] = value
                        else:
                            self._drop(digest, self._index[digest])
                            if digest in self._index:  # a spare copy to try
                                pending.append(digest)
                finally:
                    if descriptor is not None:
                        os.close(descriptor)
        if self.n_damaged > n_damaged:
            logger.warning("%d damaged vector(s) in the feature store %s: not used",
                           self.n_damaged - n_damaged, self.directory)
        return [found.get(digest) for digest in digests]

    def _drop(self, digest, location):
        if self._index.get(digest) != location:
            return
        self.n_damaged += 1
        spares = self._spares.get(digest)
        if spares:
            self._index[digest] = spares.pop(0)
        else:
            del self._index[digest]
            self._spares.pop(digest, None)

    def _has_legacy(self):
        if self._legacy is None:
            n_files = sum(1 for _ in _legacy_files(self.directory))
            self._legacy = n_files > 0
            if n_files:
                warnings.warn(
                    f"the feature cache {str(self.directory)!r} holds {n_files} file(s) of the "
                    "former one-file-per-vector layout: they are read, and copied into the "
                    "packed store, when used; 'sklearn-taskres cache clear --legacy "
                    f"{self.directory}' removes them",
                    UserWarning,
                    stacklevel=5,
                )
        return self._legacy

    # ------------------------------------------------------------ writing

    def _current_writer(self):
        writer = self._writer
        if writer is None or writer.pid != os.getpid() or writer.size >= SHARD_BYTES:
            if writer is not None and writer.pid == os.getpid():
                writer.close()
            _write_marker(self.directory)
            self._writer = writer = _ShardWriter(self.shard_directory)
        return writer


class _ShardWriter:
    """The shard one process appends to: a ``.dat`` and its ``.idx``."""

    def __init__(self, directory):
        directory.mkdir(parents=True, exist_ok=True)
        host = re.sub(r"[^A-Za-z0-9_-]+", "-", socket.gethostname())[:40] or "host"
        self.pid = os.getpid()
        self.name = f"{host}-{self.pid}-{secrets.token_hex(4)}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | getattr(os, "O_BINARY", 0)
        self._data = os.open(directory / f"{self.name}.dat", flags, 0o644)
        self._index = os.open(directory / f"{self.name}.idx", flags, 0o644)
        _write_all(self._data, _DATA_MAGIC)
        _write_all(self._index, _INDEX_MAGIC)
        self.size = _MAGIC_SIZE

    def append(self, records):
        """Append ``(digest, dtype code, payload)`` records; their locations, in order."""
        # The file's own size, not a count of our writes: safe even if it was cut short.
        offset = os.fstat(self._data).st_size
        entries = []
        located = []
        for digest, code, payload in records:
            checksum = _checksum(payload)
            packed = _ENTRY.pack(digest, offset, len(payload), code, checksum)
            entries.append(packed + _entry_check(packed))
            located.append((digest, (self.name, offset, len(payload), code, checksum)))
            offset += len(payload)
        # The vectors first: an entry is never written before the bytes it points to.
        _write_all(self._data, b"".join(payload for _, _, payload in records))
        self.size = offset
        _write_all(self._index, b"".join(entries))
        return located

    def close(self):
        for descriptor in (self._data, self._index):
            try:
                os.close(descriptor)
            except OSError:
                pass


def _write_all(descriptor, data):
    view = memoryview(data)
    while view:
        view = view[os.write(descriptor, view) :]


def _read_vectors(descriptor, located):
    """``(digest, vector or None)`` for ``(digest, location)`` pairs of one shard.

    Vectors that lie back to back (written in one batch) are read in one call.
    """
    located = sorted(located, key=lambda pair: pair[1][1])
    runs = []
    for pair in located:
        _, offset, size, _, _ = pair[1]
        if runs and runs[-1][1] == offset:
            runs[-1][1] += size
            runs[-1][2].append(pair)
        else:
            runs.append([offset, offset + size, [pair]])
    for start, end, pairs in runs:
        try:
            block = os.pread(descriptor, end - start, start) if descriptor is not None else b""
        except OSError:
            block = b""
        block = memoryview(block)
        for digest, location in pairs:
            _, offset, size, code, checksum = location
            payload = block[offset - start : offset - start + size]
            dtype = _DTYPES.get(code)
            if (dtype is None or len(payload) != size or size % dtype.itemsize
                    or _checksum(payload) != checksum):
                yield digest, None
            else:
                yield digest, np.frombuffer(payload, dtype=dtype).copy()


def _write_marker(directory):
    marker = directory / MARKER
    if marker.exists():
        return
    directory.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=directory, prefix=MARKER, suffix=".tmp")
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(FORMAT)
        os.replace(temporary, marker)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------- the former layout


def _legacy_folders(directory):
    try:
        children = list(os.scandir(directory))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [Path(child.path) for child in children
            if _LEGACY_FOLDER.match(child.name) and child.is_dir()]


def _legacy_files(directory):
    for folder in _legacy_folders(directory):
        yield from folder.glob("*.feat")


def _read_legacy(directory, digest):
    name = digest.hex()
    try:
        data = (directory / name[:2] / f"{name}.feat").read_bytes()
    except OSError:
        return None
    dtype = _LEGACY_MAGICS.get(data[:4])
    payload = data[_LEGACY_HEADER:]
    if (dtype is None or len(payload) % dtype.itemsize
            or data[4:_LEGACY_HEADER] != _checksum(payload)):
        return None
    return np.frombuffer(payload, dtype=dtype).copy()


# ---------------------------------------------------------------- one store per directory

_STORES = {}
_STORES_LOCK = threading.Lock()


def open_store(directory):
    """The :class:`FeatureStore` of ``directory`` for this process (one per directory)."""
    path = Path(directory).expanduser().absolute()
    key = (os.getpid(), str(path))
    with _STORES_LOCK:
        store = _STORES.get(key)
        if store is None:
            store = _STORES[key] = FeatureStore(path)
        return store


def forget_stores():
    """Drop every store's index from memory and close this process's shards."""
    with _STORES_LOCK:
        stores = list(_STORES.values())
        _STORES.clear()
    for store in stores:
        store.close()


def _forget_store(directory):
    path = str(Path(directory).expanduser().absolute())
    with _STORES_LOCK:
        for key in [key for key in _STORES if key[1] == path]:
            _STORES.pop(key).close()
