"""The C heap keeps its pages while images are encoded, and gives them back after."""

import ctypes
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from sklearn_taskres import _features, _heap
from sklearn_taskres._clip import load_encoder
from sklearn_taskres._heap import kept_heap

glibc_only = pytest.mark.skipif(
    _heap._glibc() is None,
    reason="the heap is tuned on glibc only, and not where MALLOC_*, GLIBC_TUNABLES or a "
    "preloaded allocator are set",
)
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _libc():
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = (ctypes.c_size_t,)
    libc.free.argtypes = (ctypes.c_void_p,)
    return libc


def _faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def _allocate_and_touch(libc, n_bytes, times):
    """Minor page faults of ``times`` blocks of ``n_bytes``, each written then freed."""
    before = _faults()
    for _ in range(times):
        block = libc.malloc(n_bytes)
        assert block
        ctypes.memset(block, 1, n_bytes)
        libc.free(block)
    return _faults() - before


def _resident_bytes():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * _PAGE


_MEASURE_IN_A_NEW_PROCESS = """
import json, sys
sys.path.insert(0, sys.argv[1])
from test_heap import _PAGE, _allocate_and_touch, _libc
from sklearn_taskres._heap import kept_heap
libc, n_bytes, times = _libc(), 40 * 2**20, 6
with kept_heap():
    pass  # the thresholds glibc is left with afterwards
outside = _allocate_and_touch(libc, n_bytes, times)
with kept_heap():
    inside = _allocate_and_touch(libc, n_bytes, times)
print(json.dumps([outside, inside, n_bytes // _PAGE, times]))
"""


@glibc_only
def test_blocks_allocated_again_inside_take_no_new_pages():
    """A 40 MiB block (an activation of a large batch) is paged in once, not at every batch.

    Measured in a new interpreter: what earlier tests allocated and freed in this
    process changes where glibc puts the next large block.
    """
    result = subprocess.run([sys.executable, "-c", _MEASURE_IN_A_NEW_PROCESS,
                             str(Path(__file__).parent)], capture_output=True, text=True,
                            check=True, timeout=120)
    outside, inside, pages, times = json.loads(result.stdout)
    assert outside >= times * pages * 0.9  # a fresh mapping every time
    assert inside <= 1.5 * pages  # the first block only


@glibc_only
def test_the_memory_kept_inside_is_given_back_on_leaving():
    libc, n_bytes = _libc(), 256 * 2**20
    with kept_heap():
        block = libc.malloc(n_bytes)
        ctypes.memset(block, 1, n_bytes)
        libc.free(block)
        kept = _resident_bytes()
    after = _resident_bytes()
    assert kept - after >= 0.75 * n_bytes


class _Recorder:
    def __init__(self):
        self.calls = []

    def mallopt(self, parameter, value):
        self.calls.append(("mallopt", parameter, value))
        return 1

    def malloc_trim(self, pad):
        self.calls.append(("malloc_trim", pad))
        return 1


def test_nested_blocks_set_the_heap_once_and_restore_it_once(monkeypatch):
    recorder = _Recorder()
    monkeypatch.setattr(_heap, "_libc", recorder)
    with kept_heap():
        with kept_heap():
            assert recorder.calls == [
                ("mallopt", _heap._M_MMAP_THRESHOLD, 32 * 2**20),
                ("mallopt", _heap._M_MMAP_MAX, 0),
                ("mallopt", _heap._M_TRIM_THRESHOLD, 2**31 - 1),
            ]
        assert len(recorder.calls) == 3
    assert recorder.calls[3:] == [
        ("mallopt", _heap._M_MMAP_MAX, 65536),
        ("mallopt", _heap._M_TRIM_THRESHOLD, 64 * 2**20),
        ("malloc_trim", 0),
    ]


def test_an_error_inside_still_restores_the_heap(monkeypatch):
    recorder = _Recorder()
    monkeypatch.setattr(_heap, "_libc", recorder)
    with pytest.raises(KeyError), kept_heap():
        raise KeyError("boom")
    assert recorder.calls[-1] == ("malloc_trim", 0)
    assert _heap._depth == 0


@pytest.mark.parametrize("variable, value", [
    ("MALLOC_TRIM_THRESHOLD_", "1000000"),
    ("GLIBC_TUNABLES", "glibc.malloc.trim_threshold=1000000"),
    ("LD_PRELOAD", "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"),
])
def test_an_allocator_the_user_set_is_left_alone(monkeypatch, variable, value):
    monkeypatch.setattr(_heap, "_libc", None)  # ask again
    monkeypatch.setenv(variable, value)
    assert _heap._glibc() is None
    with kept_heap():
        pass


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_process_forked_inside_starts_outside(monkeypatch):
    recorder = _Recorder()
    monkeypatch.setattr(_heap, "_libc", recorder)
    read, write = os.pipe()
    with kept_heap():
        pid = os.fork()
        if pid == 0:  # the child: its heap is restored, and a block of its own works
            try:
                with kept_heap():
                    pass
                state = f"{_heap._depth} {recorder.calls.count(('malloc_trim', 0))}"
                os.write(write, state.encode())
            finally:
                os._exit(0)
        os.close(write)
        os.waitpid(pid, 0)
        with os.fdopen(read) as pipe:
            depth, trims = pipe.read().split()
        assert _heap._depth == 1  # the parent is still inside
    assert (int(depth), int(trims)) == (0, 2)  # restored once at the fork, once after its block


def test_encoding_on_the_cpu_keeps_the_heap_for_the_whole_loop(monkeypatch, tiny_model):
    """One kept heap around all batches of an encode: its pages serve every batch."""
    entered = []

    class Recording:
        def __enter__(self):
            entered.append("enter")

        def __exit__(self, *exc):
            entered.append("exit")

    monkeypatch.setattr(_features, "kept_heap", Recording)
    monkeypatch.setitem(_features.IMAGE_BATCH_SIZE, "cpu", 2)
    images = [np.full((24, 24, 3), value, np.uint8) for value in range(5)]
    _features.clear_feature_cache()
    encoder = load_encoder(tiny_model, None, torch.device("cpu"), "fp32")
    features = _features.image_features(encoder, images)
    assert features.shape[0] == 5
    assert entered == ["enter", "exit"]
