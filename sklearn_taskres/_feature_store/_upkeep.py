"""The feature store's upkeep: what a store holds, compacting it, clearing it.

These run on a store no process is writing to (see each function). Reading
and writing live in ``_store``.
"""

import shutil
from pathlib import Path

from ._store import (
    _CODES,
    MARKER,
    SHARDS,
    FeatureStore,
    _forget_store,
    _legacy_files,
    _legacy_folders,
    _ShardWriter,
)


def feature_store_info(directory, *, verify=False):
    """What the feature store in ``directory`` (a ``cache_dir``) holds.

    Parameters
    ----------
    directory : str or path
        The ``cache_dir`` of a :class:`~sklearn_taskres.TaskResClassifier`,
        or the ``--cache-dir`` of the reproduction harness.
    verify : bool, default=False
        Also read every vector and check it against its checksum.

    Returns
    -------
    info : dict
        ``n_vectors`` (distinct keys), ``n_shards``, ``n_files`` and
        ``n_bytes`` of the packed store; ``n_damaged`` entries or vectors that
        fail their checks (with ``verify``, every vector is checked; without,
        only the index entries); ``n_legacy_files`` and ``n_legacy_bytes``
        of the former one-file-per-vector layout.

    Raises
    ------
    FileNotFoundError
        When ``directory`` does not exist.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_taskres import feature_store_info
    >>> from sklearn_taskres._feature_store import open_store
    >>> store = open_store(getfixture("tmp_path"))
    >>> store.put(("example", 1), np.ones(4, dtype=np.float32))
    >>> info = feature_store_info(getfixture("tmp_path"))
    >>> info["n_vectors"], info["n_shards"], info["n_files"]
    (1, 1, 3)
    """
    directory = _existing(directory)
    store = FeatureStore(directory)  # a fresh look, not this process's cached index
    digests = store.scan(verify=verify)
    files = [path for path in (directory / SHARDS).glob("*") if path.is_file()]
    files += [directory / MARKER] if (directory / MARKER).is_file() else []
    legacy = list(_legacy_files(directory))
    return {
        "directory": str(directory),
        "n_vectors": len(digests),
        "n_shards": len({path.stem for path in files if path.suffix == ".idx"}),
        "n_files": len(files),
        "n_bytes": sum(path.stat().st_size for path in files),
        "n_damaged": store.n_damaged,
        "n_legacy_files": len(legacy),
        "n_legacy_bytes": sum(path.stat().st_size for path in legacy),
    }


def compact_feature_store(directory):
    """Rewrite the packed store in ``directory`` as one shard; return the files it replaced.

    Every process that writes adds a shard, so a store used by many runs
    gathers many files, and vectors computed by several processes at once are
    stored more than once. Compacting keeps one copy of each vector that
    passes its checksum, drops damaged and torn entries, and leaves a single
    shard. Run it while no process is writing to the store: vectors a
    writer appends during the compaction would go with its shard.

    Parameters
    ----------
    directory : str or path
        The ``cache_dir`` to compact.

    Returns
    -------
    n_files : int
        The files of the former shards, now removed.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_taskres import compact_feature_store, feature_store_info
    >>> from sklearn_taskres._feature_store import FeatureStore
    >>> for writer in range(3):  # as three processes would
    ...     FeatureStore(getfixture("tmp_path")).put(("example", 3), np.ones(4, np.float32))
    >>> compact_feature_store(getfixture("tmp_path"))
    6
    >>> info = feature_store_info(getfixture("tmp_path"))
    >>> info["n_vectors"], info["n_shards"]
    (1, 1)
    """
    directory = _existing(directory)
    _forget_store(directory)
    store = FeatureStore(directory)
    digests = store.scan()
    old = store.shard_names
    writer = None
    try:
        for start in range(0, len(digests), 4096):
            chunk = digests[start : start + 4096]
            records = [(digest, _CODES[value.dtype], value.tobytes())
                       for digest, value in zip(chunk, store.read_digests(chunk), strict=True)
                       if value is not None]
            if records:
                writer = writer or _ShardWriter(store.shard_directory)
                writer.append(records)
    finally:
        if writer is not None:
            writer.close()
    n_files = 0
    for shard in old:
        for suffix in (".idx", ".dat"):
            path = store.shard_directory / f"{shard}{suffix}"
            if path.exists():
                path.unlink()
                n_files += 1
    return n_files


def _existing(directory):
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise FileNotFoundError(
            f"expected a feature store directory; got {str(directory)!r}, which "
            f"{'is not a directory' if directory.exists() else 'does not exist'}"
        )
    return directory


def clear_feature_store(directory, *, legacy_only=False):
    """Delete the feature store in ``directory``; return the number of files removed.

    Removes the packed store and the files of the former one-file-per-vector
    layout, and nothing else in ``directory``. Run it while no process is
    writing to the store: a writer's vectors would go with its deleted shard.

    Parameters
    ----------
    directory : str or path
        The ``cache_dir`` to clear.
    legacy_only : bool, default=False
        Only remove the files of the former layout.

    Returns
    -------
    n_files : int

    Raises
    ------
    FileNotFoundError
        When ``directory`` does not exist.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_taskres import clear_feature_store, feature_store_info
    >>> from sklearn_taskres._feature_store import open_store
    >>> open_store(getfixture("tmp_path")).put(("example", 2), np.ones(4, dtype=np.float32))
    >>> clear_feature_store(getfixture("tmp_path"))
    3
    >>> feature_store_info(getfixture("tmp_path"))["n_vectors"]
    0
    """
    directory = _existing(directory)
    _forget_store(directory)
    n_files = 0
    for folder in _legacy_folders(directory):
        for path in list(folder.iterdir()):
            if path.is_file() and path.suffix in (".feat", ".tmp"):
                path.unlink(missing_ok=True)
                n_files += 1
        if not any(folder.iterdir()):
            folder.rmdir()
    if not legacy_only:
        shards = directory / SHARDS
        if shards.is_dir():
            n_files += sum(1 for path in shards.iterdir() if path.is_file())
            shutil.rmtree(shards, ignore_errors=True)
        for path in directory.glob(f"{MARKER}*"):
            path.unlink(missing_ok=True)
            n_files += 1
    return n_files
