"""The on-disk feature store behind ``cache_dir``: packed, content-keyed, checksummed.

One store serves :class:`~sklearn_taskres.TaskResClassifier`, the
reproduction harness and augmented views: any process that encodes an image
with a given encoder leaves the vector here, and any later process reads it
instead of encoding again. Keys are those of the in-memory cache (model,
weights, precision, preprocessing, and a digest of the image's content, so a
rewritten file is a new key), hashed to 20 bytes.

Layout
------
::

    DIR/FEATURE_STORE              names the format and its version
    DIR/shards/<writer>.dat        the vectors' bytes, back to back
    DIR/shards/<writer>.idx        one 64-byte entry per vector: key digest,
                                   offset and size in the .dat, dtype, a
                                   checksum of the vector and one of the entry

Every process that writes appends to a shard of its own, named by its host,
its process id and a random suffix, and never writes to any other file. A
batch of vectors is one append to the ``.dat`` followed by one append of
their entries to the ``.idx``, so old vectors are never rewritten and 10,000
vectors written by one process are two files (a shard is closed for a new
one past ``SHARD_BYTES``). Readers read the indexes (only the bytes added
since their last look), then each vector at its offset, and check it against
its checksum before serving it.

Why append-only shards and not SQLite
-------------------------------------
SQLite (in the standard library) would also give one packed, transactional
file. But its WAL mode, the one that lets readers and a writer work at once,
keeps its index in shared memory (the ``-shm`` file) that only processes on
one host can share: SQLite's documentation says WAL does not work over a
network file system. Its rollback-journal mode instead relies on POSIX
advisory locks, which many NFS setups get wrong, and a broken lock there is a
corrupt database, not a slower one. In either mode one process writes at a
time and the others wait. Clusters keep shared data on network file systems,
and that is where this store has to work.

The shards need no lock and no shared memory: no two processes ever write the
same file, and nothing is modified in place. What each guarantee rests on:

- atomicity: an entry is appended only after its vector, so a reader never
  finds an entry whose bytes were not written; a partly written entry (an
  index whose size is not a whole number of entries, or whose entry checksum
  fails) is not an entry;
- crash safety: a process killed mid-write leaves at most a torn tail in its
  own shard; the next run reads every complete entry, skips the torn one, and
  encodes and stores again only the vectors it lost, in its own shard;
- concurrent writers: two processes writing at once write different files,
  so nothing is lost; a vector both computed is stored twice and read once;
- corruption: a vector whose bytes no longer match its checksum (a flipped
  bit, a truncated ``.dat``, a vector not yet flushed to disk at power loss)
  is dropped from the index and computed again, never served.

On a network file system the store relies only on appends, reads and
listing a folder, which NFS, Lustre and the like all do correctly when one
client writes each file. What it does not get there is immediate
visibility: under NFS's close-to-open consistency another host sees a
writer's new vectors once the writer's client has sent them to the server
(at the latest when the writer closes its shard or exits), and may see an
entry before the bytes it points to. The first is a miss and the second fails
its checksum, so either way that host computes the vector again instead of
using a wrong one, and stores it in its own shard. The price of needing no
locks is that vectors computed by several processes at once are stored
several times, and that every writing process adds a shard:
:func:`compact_feature_store` (``sklearn-taskres cache compact DIR``) rewrites a
store as one shard with one copy of each vector, while no process writes.

The former layout, one ``.feat`` file per vector in 256 folders, is read when
found (its files are checked as before and copied into the packed store as
they are used), with a message that says how to remove it.
"""

# Reading and writing (the shards, the index, one store per directory) are in _store;
# the upkeep (feature_store_info, compact_feature_store, clear_feature_store) in _upkeep.
from ._store import FeatureStore, forget_stores, key_digest, open_store
from ._upkeep import clear_feature_store, compact_feature_store, feature_store_info

__all__ = [
    "FeatureStore",
    "clear_feature_store",
    "compact_feature_store",
    "feature_store_info",
    "forget_stores",
    "key_digest",
    "open_store",
]
