"""The C heap while images are encoded: keep its memory from one batch to the next.

An image encoder allocates its activations for every batch and frees them at
the end of it. glibc serves a block larger than its mmap threshold with a
fresh mapping and returns free memory at the top of its heap to the system
once more than its trim threshold is free, so the next batch takes every page
again as a page fault on zeroed memory: on a 2-core Xeon, ViT-B-32 took about
85,000 minor faults (330 MB) per batch of 32 inside ``predict``, about a fifth
of the batch's time, and 1,000 to 4,000 with the memory kept (the first batch
of a run still takes its pages once).

:func:`kept_heap` keeps it while a loop of batches runs: no mappings for
single blocks and no trimming; on leaving the last one, the free memory is
given back (``malloc_trim``) and glibc is left with the thresholds that its
own dynamic rule reaches on a process that has freed a large block (mmap
above 32 MiB, trim above 64 MiB). Other C libraries, processes whose
allocator the user set with ``MALLOC_*`` variables or ``GLIBC_TUNABLES``,
and processes that preload another allocator (jemalloc, tcmalloc, mimalloc)
are left alone. A process forked inside the block starts outside it.
"""

import ctypes
import os
import threading
from contextlib import contextmanager

# mallopt parameters, from glibc's malloc.h.
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_MMAP_MAX = -4
_MMAP_THRESHOLD_AFTER = 32 * 2**20  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit
_TRIM_THRESHOLD_AFTER = 2 * _MMAP_THRESHOLD_AFTER  # the dynamic rule: twice the mmap threshold
_MMAP_MAX_DEFAULT = 65536  # glibc's DEFAULT_MMAP_MAX
_NO_TRIM = 2**31 - 1  # mallopt takes an int
_USER_SETTINGS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_MMAP_MAX_",
                  "MALLOC_TOP_PAD_", "GLIBC_TUNABLES")

_lock = threading.Lock()
_depth = 0
_libc = None


def _is_glibc():
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (AttributeError, ValueError, OSError):  # not a GNU system
        return False


def _glibc():
    """glibc's ``mallopt`` and ``malloc_trim``, or None where they are not ours to set."""
    global _libc
    if _libc is None:
        _libc = False
        user_set = any(name in os.environ for name in _USER_SETTINGS)
        other_allocator = "malloc" in os.environ.get("LD_PRELOAD", "")
        if _is_glibc() and not user_set and not other_allocator:
            try:
                libc = ctypes.CDLL(None)
                libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
                libc.malloc_trim.argtypes = (ctypes.c_size_t,)
                _libc = libc
            except (OSError, AttributeError):
                pass
    return _libc or None


def _restore(libc):
    libc.mallopt(_M_MMAP_MAX, _MMAP_MAX_DEFAULT)
    libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD_AFTER)
    libc.malloc_trim(0)


def _after_fork_in_child():
    """A child forked inside the block has none of the threads that entered it."""
    global _depth, _lock
    _lock = threading.Lock()
    if _depth:
        _depth = 0
        if _libc:
            _restore(_libc)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


@contextmanager
def kept_heap():
    """Keep the C heap's free memory mapped inside the block (nested and threads: the outermost).

    Examples
    --------
    >>> import numpy as np
    >>> with kept_heap():
    ...     for _ in range(3):
    ...         block = np.ones(2**22)  # 32 MiB, mapped once
    """
    global _depth
    libc = _glibc()
    if libc is None:
        yield
        return
    with _lock:
        _depth += 1
        if _depth == 1:
            libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_AFTER)
            libc.mallopt(_M_MMAP_MAX, 0)
            libc.mallopt(_M_TRIM_THRESHOLD, _NO_TRIM)
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                _restore(libc)
