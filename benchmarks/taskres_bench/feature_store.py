"""The on-disk feature store, packed shards against one file per vector.

Writes ``--n`` feature vectors of width ``--width`` (float32, keyed as image
features are) with each store, then reads them all back through a fresh
instance (as a new process would, index included), and clears the store.
For each it prints the files and folders created, the seconds to write, read
and delete, and the bytes on disk (allocated blocks, and the files' sizes).

- ``one file per vector``: the layout ``cache_dir`` had before the packed
  store (one checksummed file per vector in 256 folders, each written to a
  temporary file and renamed), reproduced here as it was;
- ``packed shards``: :mod:`sklearn_taskres._feature_store`, written in
  batches of ``--batch`` vectors as one call of the feature cache writes its
  misses, and read in batches of the same size.

Both run in one process, one after the other, in a temporary folder under
``--dir`` (default: the system's temporary folder). Reads come from the page
cache in both cases, so they measure the file system's per-file costs, not
the disk. Run::

    python benchmarks/run.py --config store                 # 20,000 x 512
    python benchmarks/run.py --config store --n 500 --json results.json
"""

import hashlib
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from sklearn_taskres._feature_store import FeatureStore, clear_feature_store

_IDENTITY = ("ViT-B-32", "openai", "fp32", "Compose(Resize(224), CenterCrop(224), ...)")


class OneFilePerVector:
    """The former ``cache_dir`` layout: ``DIR/ab/<40 hex digits>.feat`` per vector."""

    magic = b"TRF1"

    def __init__(self, directory):
        self.directory = Path(directory)

    def _path(self, key):
        name = hashlib.blake2b(repr(key).encode(), digest_size=20).hexdigest()
        return self.directory / name[:2] / f"{name}.feat"

    def put(self, key, value):
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        payload = np.ascontiguousarray(value, dtype=np.float32).tobytes()
        checksum = hashlib.blake2b(payload, digest_size=16).digest()
        descriptor, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(descriptor, "wb") as file:
                file.write(self.magic + checksum + payload)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def get(self, key):
        try:
            data = self._path(key).read_bytes()
        except FileNotFoundError:
            return None
        payload = data[20:]
        if data[:4] != self.magic or data[4:20] != hashlib.blake2b(payload,
                                                                   digest_size=16).digest():
            return None
        return np.frombuffer(payload, dtype=np.float32).copy()


def _keys(n):
    return [("image", _IDENTITY, hashlib.blake2b(str(i).encode(), digest_size=20).hexdigest())
            for i in range(n)]


def _usage(directory):
    """(files, folders, bytes allocated on disk, bytes in the files) under ``directory``."""
    n_files = n_folders = allocated = size = 0
    for root, folders, files in os.walk(directory):
        n_folders += len(folders)
        for name in files:
            status = os.stat(os.path.join(root, name))
            n_files += 1
            allocated += getattr(status, "st_blocks", 0) * 512 or status.st_size
            size += status.st_size
    return n_files, n_folders, allocated, size


def measure_one_file_per_vector(directory, keys, vectors):
    store = OneFilePerVector(directory)
    start = time.perf_counter()
    for key, vector in zip(keys, vectors, strict=True):
        store.put(key, vector)
    write = time.perf_counter() - start
    usage = _usage(directory)
    start = time.perf_counter()
    fresh = OneFilePerVector(directory)
    read = [fresh.get(key) for key in keys]
    read_seconds = time.perf_counter() - start
    _check(read, vectors)
    start = time.perf_counter()
    shutil.rmtree(directory)
    clear = time.perf_counter() - start
    return write, read_seconds, clear, usage


def measure_packed_shards(directory, keys, vectors, batch):
    store = FeatureStore(directory)
    start = time.perf_counter()
    for begin in range(0, len(keys), batch):
        store.put_many(list(zip(keys[begin : begin + batch], vectors[begin : begin + batch],
                                strict=True)))
    store.close()
    write = time.perf_counter() - start
    usage = _usage(directory)
    start = time.perf_counter()
    fresh = FeatureStore(directory)
    read = []
    for begin in range(0, len(keys), batch):
        read += fresh.get_many(keys[begin : begin + batch])
    read_seconds = time.perf_counter() - start
    _check(read, vectors)
    start = time.perf_counter()
    clear_feature_store(directory)
    clear = time.perf_counter() - start
    return write, read_seconds, clear, usage


def _check(read, vectors):
    if any(value is None for value in read) or not np.array_equal(np.stack(read), vectors):
        raise AssertionError("expected every vector back as written; got others")


def add_arguments(parser):
    """Add this benchmark's own options to ``parser`` (``--repeats`` and ``--json`` are shared)."""
    group = parser.add_argument_group(
        "--config store", "the on-disk feature store: packed shards against one file per vector")
    group.add_argument("--n", type=int, default=20_000, help="vectors (default 20000)")
    group.add_argument("--width", type=int, default=512, help="vector width (default 512)")
    group.add_argument("--batch", type=int, default=256,
                       help="vectors per write and read call of the packed store (default 256)")
    group.add_argument("--dir", default=None, help="where to create the stores "
                       "(default: the system's temporary folder)")


def run(args):
    """Measure both stores as ``args`` says; print the table and write the JSON if asked."""
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((args.n, args.width), dtype=np.float32)
    keys = _keys(args.n)
    runs = {"one file per vector": [], "packed shards": []}
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="feature-store-") as root:
        for repeat in range(args.repeats):  # alternate, so both see the same machine
            runs["one file per vector"].append(measure_one_file_per_vector(
                Path(root) / f"files{repeat}", keys, vectors))
            runs["packed shards"].append(measure_packed_shards(
                Path(root) / f"packed{repeat}", keys, vectors, args.batch))
    rows = {name: (*(min(run[i] for run in measured) for i in range(3)), measured[0][3])
            for name, measured in runs.items()}
    payload_mib = vectors.nbytes / 2**20
    print(f"{args.n} vectors x {args.width} float32 ({payload_mib:.1f} MiB of vectors), "
          f"packed batches of {args.batch}, fastest of {args.repeats} run(s); "
          f"{platform.system()} {platform.release()}, "
          f"Python {platform.python_version()}")
    header = (f"{'store':<20} {'files':>7} {'folders':>7} {'write s':>8} {'read s':>8} "
              f"{'clear s':>8} {'MiB on disk':>11} {'MiB in files':>12}")
    print(header)
    print("-" * len(header))
    results = {"n": args.n, "width": args.width, "batch": args.batch,
               "repeats": args.repeats, "stores": {}}
    for name, (write, read, clear, (files, folders, allocated, size)) in rows.items():
        print(f"{name:<20} {files:>7} {folders:>7} {write:>8.2f} {read:>8.2f} {clear:>8.2f} "
              f"{allocated / 2**20:>11.1f} {size / 2**20:>12.1f}")
        results["stores"][name] = {
            "files": files, "folders": folders, "write_seconds": write, "read_seconds": read,
            "clear_seconds": clear, "bytes_on_disk": allocated, "bytes_in_files": size,
        }
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
