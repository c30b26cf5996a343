"""The feature store behind cache_dir: packed, keyed by content, checksummed, crash-safe."""

import hashlib
import os
import signal
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
import torch
from helpers import make_dataset, make_images
from PIL import Image

from sklearn_taskres import (
    TaskResClassifier,
    clear_feature_store,
    compact_feature_store,
    feature_store_info,
)
from sklearn_taskres._clip import load_encoder
from sklearn_taskres._feature_store import FeatureStore, key_digest, open_store
from sklearn_taskres._feature_store._store import _forget_store
from sklearn_taskres._features import FEATURES, _lookup_or_compute, image_features
from sklearn_taskres._images import image_sources
from sklearn_taskres.cli import main


def store_files(directory):
    return sorted(path for path in directory.rglob("*") if path.is_file())


def vector(i, width=16):
    """The vector the tests store under key ("v", i)."""
    return (np.arange(width) + 1000 * i).astype(np.float32)  # float32 on numpy 1.x too


@pytest.fixture
def encoder(tiny_model):
    return load_encoder(tiny_model, None, torch.device("cpu"))


@pytest.mark.auto_precision
def test_a_fresh_process_reads_instead_of_encoding(tiny_model, tmp_path, encoded_rows):
    """With cache_dir, a second run (empty memory cache) encodes nothing and fits the same."""
    images, y = make_dataset(n_per_class=3, n_classes=3, seed=700)
    params = dict(model=tiny_model, pretrained=None, max_iter=3, device="cpu", random_state=0,
                  cache_dir=str(tmp_path))
    FEATURES.clear()  # the prompts too, which other tests may have encoded
    first = TaskResClassifier(["a", "b", "c"], **params).fit(images, y)
    assert encoded_rows["rows"] == len(images)
    assert feature_store_info(tmp_path)["n_vectors"] == len(images) + 3  # images and prompts
    FEATURES.clear()
    second = TaskResClassifier(["a", "b", "c"], **params).fit(images, y)
    assert encoded_rows["rows"] == len(images)
    np.testing.assert_array_equal(second.residual_, first.residual_)


def test_ten_thousand_vectors_are_a_handful_of_files_and_appends_keep_old_bytes(tmp_path):
    """10,000 vectors: 3 files; a later append leaves the bytes already written untouched."""
    store = FeatureStore(tmp_path)
    for start in range(0, 10_000, 2_500):
        store.put_many([(("v", i), vector(i)) for i in range(start, start + 2_500)])
    files = store_files(tmp_path)
    assert len(files) == 3  # the marker, one .dat and its .idx
    before = {path: path.read_bytes() for path in files}
    store.put_many([(("v", 10_000), vector(10_000))])
    for path, content in before.items():
        assert path.read_bytes().startswith(content)
    fresh = FeatureStore(tmp_path)
    assert len(fresh) == 10_001
    values = fresh.get_many([("v", i) for i in (0, 4_321, 10_000)])
    for i, value in zip((0, 4_321, 10_000), values, strict=True):
        np.testing.assert_array_equal(value, vector(i))


def test_a_new_shard_is_started_past_the_size_limit(tmp_path, monkeypatch):
    from sklearn_taskres._feature_store import _store

    monkeypatch.setattr(_store, "SHARD_BYTES", 100)
    store = FeatureStore(tmp_path)
    for i in range(3):
        store.put(("v", i), vector(i))  # 64 bytes each: every second one starts a shard
    assert feature_store_info(tmp_path)["n_shards"] == 2
    assert [value[0] for value in FeatureStore(tmp_path).get_many([("v", i) for i in range(3)])
            ] == [0, 1000, 2000]


def test_corrupt_or_truncated_vectors_are_recomputed_never_served(encoder, tmp_path,
                                                                  encoded_rows):
    images = make_images(4, seed=701)
    expected = image_features(encoder, images, cache_dir=tmp_path)
    (data,) = (tmp_path / "shards").glob("*.dat")
    content = bytearray(data.read_bytes())
    content[8 + 3] ^= 0xFF  # one flipped byte in the first vector
    data.write_bytes(bytes(content[: len(content) - 7]))  # and the last vector truncated
    assert feature_store_info(tmp_path, verify=True)["n_damaged"] == 2
    FEATURES.clear()
    # Two images encoded as a batch of their own: equal up to the CPU's batch-size
    # dependent rounding (a flipped or cut byte is far larger).
    np.testing.assert_allclose(image_features(encoder, images, cache_dir=tmp_path), expected,
                               rtol=1e-5, atol=1e-6)
    assert encoded_rows["rows"] == 4 + 2
    info = feature_store_info(tmp_path, verify=True)
    assert info["n_vectors"] == 4 and info["n_damaged"] == 2  # the two bad copies, skipped


def test_torn_and_garbage_index_entries_are_skipped(tmp_path):
    store = FeatureStore(tmp_path)
    store.put_many([(("v", i), vector(i)) for i in range(3)])
    (index,) = (tmp_path / "shards").glob("*.idx")
    with open(index, "ab") as file:
        file.write(os.urandom(64) + b"torn entry")  # one garbage entry, one partial
    fresh = FeatureStore(tmp_path)
    values = fresh.get_many([("v", i) for i in range(3)])
    assert [value[0] for value in values] == [0, 1000, 2000]
    assert fresh.n_damaged == 1
    (tmp_path / "shards" / "other.idx").write_bytes(b"NOTINDEX" + bytes(64))
    assert feature_store_info(tmp_path)["n_vectors"] == 3


def test_precision_is_part_of_the_key(tiny_model, tmp_path, encoded_rows):
    images = make_images(2, seed=702)
    cpu = torch.device("cpu")
    image_features(load_encoder(tiny_model, None, cpu, "fp32"), images, cache_dir=tmp_path)
    image_features(load_encoder(tiny_model, None, cpu, "bf16"), images, cache_dir=tmp_path)
    assert encoded_rows["rows"] == 4
    assert feature_store_info(tmp_path)["n_vectors"] == 4


def test_a_rewritten_image_file_is_a_new_key(encoder, tmp_path, encoded_rows):
    paths = [tmp_path / f"{i}.png" for i in range(2)]
    for path, pixels in zip(paths, make_images(2, seed=704), strict=True):
        Image.fromarray(pixels).save(path)
    cache = tmp_path / "cache"
    image_features(encoder, paths, cache_dir=cache)
    Image.fromarray(make_images(1, seed=705)[0]).save(paths[0])
    FEATURES.clear()
    image_features(encoder, paths, cache_dir=cache)
    assert encoded_rows["rows"] == 2 + 1
    assert feature_store_info(cache)["n_vectors"] == 3


WRITER = """
import sys
import numpy as np
from sklearn_taskres._feature_store import open_store
store = open_store(sys.argv[1])
first, last = int(sys.argv[2]), int(sys.argv[3])
for start in range(first, last, 50):
    store.put_many([(("v", i), (np.arange(16) + 1000 * i).astype(np.float32))
                    for i in range(start, min(start + 50, last))])
print("ok")
"""


def test_two_processes_writing_at_once_lose_nothing(tmp_path):
    """Two writers, overlapping keys, at the same time: every vector is there, intact."""
    workers = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), first, last],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for first, last in (("0", "3000"), ("2000", "5000"))
    ]
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        assert "ok" in out
    info = feature_store_info(tmp_path, verify=True)
    assert (info["n_vectors"], info["n_shards"], info["n_damaged"]) == (5000, 2, 0)
    values = FeatureStore(tmp_path).get_many([("v", i) for i in range(5000)])
    np.testing.assert_array_equal(np.stack(values), np.stack([vector(i) for i in range(5000)]))


def test_two_processes_encoding_the_same_images_at_once(tiny_model, tmp_path):
    """Concurrent encoders leave complete, valid entries equal to the features."""
    images = np.stack(make_images(40, seed=703))
    np.save(tmp_path / "images.npy", images)
    cache = tmp_path / "cache"
    script = textwrap.dedent(f"""
        import os
        os.environ["HF_HUB_OFFLINE"] = "1"
        import numpy as np, torch
        from sklearn_taskres.testing import register_tiny_clip
        from sklearn_taskres._clip import load_encoder
        from sklearn_taskres._features import FEATURES, image_features
        encoder = load_encoder(register_tiny_clip({tiny_model!r}), None, torch.device("cpu"))
        images = np.load({str(tmp_path / "images.npy")!r})
        for _ in range(3):
            image_features(encoder, images, cache_dir={str(cache)!r})
            FEATURES.clear()
        print("ok")
    """)
    workers = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for worker in workers:
        out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err
        assert "ok" in out
    encoder = load_encoder(tiny_model, None, torch.device("cpu"))
    expected = image_features(encoder, list(images))
    FEATURES.clear()
    info = feature_store_info(cache, verify=True)
    assert (info["n_vectors"], info["n_damaged"]) == (40, 0)
    assert info["n_files"] <= 5  # the marker and at most one shard per process
    np.testing.assert_allclose(image_features(encoder, list(images), cache_dir=cache),
                               expected, rtol=1e-5, atol=1e-6)


KILLED_WRITER = """
import sys, time
import numpy as np
from sklearn_taskres._feature_store import _store
store = _store.open_store(sys.argv[1])
for start in range(0, 200, 50):
    store.put_many([(("v", i), (np.arange(16) + 1000 * i).astype(np.float32))
                    for i in range(start, start + 50)])
writer = store._writer
slow = writer._data if sys.argv[2] == "data" else writer._index
write_all = _store._write_all

def write_slowly(descriptor, data):  # long enough a write to be killed in
    if descriptor != slow:
        return write_all(descriptor, data)
    for start in range(0, len(data), 100):
        write_all(descriptor, bytes(data[start : start + 100]))
        print("writing", flush=True)
        time.sleep(0.01)

_store._write_all = write_slowly
store.put_many([(("v", i), (np.arange(16) + 1000 * i).astype(np.float32))
                for i in range(200, 400)])
print("finished", flush=True)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
@pytest.mark.parametrize("torn", ["data", "index"])
def test_a_process_killed_mid_write_leaves_a_store_the_next_run_reads_and_repairs(
    tmp_path, torn
):
    """SIGKILL during an append: complete entries are read, the lost ones recomputed once."""
    worker = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(tmp_path), torn],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(3):
        line = worker.stdout.readline()
        assert line == "writing\n", worker.stderr.read()
    os.kill(worker.pid, signal.SIGKILL)
    worker.wait(timeout=30)
    assert worker.returncode == -signal.SIGKILL
    (shard,) = {path.stem for path in (tmp_path / "shards").iterdir()}
    data, index = (tmp_path / "shards" / f"{shard}{suffix}" for suffix in (".dat", ".idx"))
    complete, full = 8 + 200 * 64, 8 + 400 * 64  # both files: 64 bytes a vector
    if torn == "data":
        assert complete < data.stat().st_size < full
        assert index.stat().st_size == complete
    else:
        assert data.stat().st_size == full
        assert complete < index.stat().st_size < full
        assert (index.stat().st_size - 8) % 64  # a torn entry at the end

    keys = [("v", i) for i in range(400)]
    computed = []

    def compute(positions):
        computed.extend(positions)
        yield positions, [vector(i) for i in positions]

    FEATURES.clear()
    features = _lookup_or_compute(keys, compute, cache_dir=tmp_path)
    np.testing.assert_array_equal(features, np.stack([vector(i) for i in range(400)]))
    n_kept = 400 - len(computed)
    assert 200 <= n_kept < 400 and computed == list(range(n_kept, 400))
    FEATURES.clear()
    _forget_store(tmp_path)  # the run after that, as a new process
    computed.clear()
    info = feature_store_info(tmp_path, verify=True)
    assert (info["n_vectors"], info["n_damaged"]) == (400, 0)
    np.testing.assert_array_equal(_lookup_or_compute(keys, compute, cache_dir=tmp_path),
                                  features)
    assert computed == []  # repaired: nothing to compute any more


def write_legacy(directory, key, value):
    """A file of the former one-file-per-vector layout."""
    name = key_digest(key).hex()
    payload = np.asarray(value, dtype=np.float32).tobytes()
    path = directory / name[:2] / f"{name}.feat"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"TRF1" + hashlib.blake2b(payload, digest_size=16).digest() + payload)
    return path


def test_the_former_layout_is_read_with_a_message_and_moved_into_the_store(
    encoder, tmp_path, encoded_rows
):
    images = make_images(3, seed=706)
    expected = image_features(encoder, images)
    FEATURES.clear()
    keys = [("image", encoder.identity, source.digest) for source in image_sources(images)]
    paths = [write_legacy(tmp_path, key, row) for key, row in zip(keys, expected, strict=True)]
    paths[2].write_bytes(paths[2].read_bytes()[:-5])  # a truncated old file: not served
    encoded_rows["rows"] = 0
    with pytest.warns(UserWarning, match=r"3 file\(s\) of the former one-file-per-vector"):
        features = image_features(encoder, images, cache_dir=tmp_path)
    np.testing.assert_array_equal(features[:2], expected[:2])  # read from the old files
    np.testing.assert_allclose(features[2], expected[2], rtol=1e-5, atol=1e-6)  # encoded
    assert encoded_rows["rows"] == 1  # the truncated one
    info = feature_store_info(tmp_path)
    assert (info["n_vectors"], info["n_legacy_files"]) == (3, 3)
    assert clear_feature_store(tmp_path, legacy_only=True) == 3
    assert not list(tmp_path.glob("??"))
    FEATURES.clear()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(image_features(encoder, images, cache_dir=tmp_path),
                                      features)
    assert encoded_rows["rows"] == 1


def test_info_and_clear_touch_only_the_store(tmp_path):
    open_store(tmp_path).put_many([(("v", i), vector(i)) for i in range(5)])
    write_legacy(tmp_path, ("old",), vector(9))
    (tmp_path / "notes.txt").write_text("mine")
    info = feature_store_info(tmp_path)
    assert info["n_vectors"] == 5 and info["n_shards"] == 1 and info["n_files"] == 3
    assert info["n_bytes"] == (tmp_path / "FEATURE_STORE").stat().st_size + 2 * 8 + 5 * (64 + 64)
    assert info["n_legacy_files"] == 1
    assert clear_feature_store(tmp_path) == 4
    assert [path.name for path in tmp_path.iterdir()] == ["notes.txt"]
    open_store(tmp_path).put(("v", 1), vector(1))  # the process's store starts afresh
    assert feature_store_info(tmp_path)["n_vectors"] == 1
    with pytest.raises(FileNotFoundError, match="expected a feature store directory; got .*"
                       "does not exist"):
        feature_store_info(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match="is not a directory"):
        clear_feature_store(tmp_path / "notes.txt")


def test_cli_cache_info_and_clear(tmp_path, capsys):
    open_store(tmp_path).put_many([(("v", i), vector(i)) for i in range(7)])
    assert main(["cache", "info", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "7 vector(s)" in out and "1 shard(s)" in out and "3 file(s)" in out
    assert main(["cache", "info", str(tmp_path), "--verify", "--json"]) == 0
    assert '"n_damaged": 0' in capsys.readouterr().out
    FeatureStore(tmp_path).put(("v", 1), vector(1))  # a second shard, one key again
    assert main(["cache", "compact", str(tmp_path)]) == 0
    assert "replaced 4 file(s) by one shard of 7 vector(s)" in capsys.readouterr().out
    assert main(["cache", "clear", str(tmp_path)]) == 0
    assert "removed 3 file(s)" in capsys.readouterr().out
    assert feature_store_info(tmp_path)["n_vectors"] == 0
    assert main(["cache", "info", str(tmp_path / "nowhere")]) == 2
    assert "expected a feature store directory" in capsys.readouterr().err


def test_writes_after_a_fork_go_to_a_shard_of_the_child(tmp_path):
    if not hasattr(os, "fork"):
        pytest.skip("needs os.fork")
    store = open_store(tmp_path)
    store.put(("v", 0), vector(0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with threads running
        pid = os.fork()
    if pid == 0:  # the child
        try:
            open_store(tmp_path).put(("v", 1), vector(1))
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    store.put(("v", 2), vector(2))
    info = feature_store_info(tmp_path, verify=True)
    assert (info["n_vectors"], info["n_shards"], info["n_damaged"]) == (3, 2, 0)


def test_a_store_that_cannot_be_written_warns_and_the_features_still_come(encoder, tmp_path):
    (tmp_path / "file").write_text("not a folder")
    images = make_images(2, seed=707)
    expected = image_features(encoder, images)
    FEATURES.clear()
    with pytest.warns(UserWarning, match=r"could not write to the feature store .*file/cache"
                      r".*2 computed vector\(s\) were not stored"):
        features = image_features(encoder, images, cache_dir=tmp_path / "file" / "cache")
    np.testing.assert_array_equal(features, expected)


def test_clear_feature_cache_forgets_the_store_index_too(tmp_path):
    from sklearn_taskres import clear_feature_cache
    from sklearn_taskres._feature_store._store import _STORES

    open_store(tmp_path).put(("v", 1), vector(1))
    assert any(key[1] == str(tmp_path) for key in _STORES)
    clear_feature_cache()
    assert not _STORES
    assert open_store(tmp_path).get(("v", 1))[0] == 1000


def test_compacting_keeps_one_good_copy_of_every_vector_in_one_shard(tmp_path):
    shards = []
    for first, last in ((0, 300), (200, 500), (450, 600)):  # three writers, overlapping keys
        store = FeatureStore(tmp_path)
        store.put_many([(("v", i), vector(i)) for i in range(first, last)])
        shards.append(tmp_path / "shards" / f"{store._writer.name}.dat")
    content = bytearray(shards[0].read_bytes())
    content[8 + 64 * 5] ^= 1  # vector 5 of the first writer: its only copy
    content[8 + 64 * 250] ^= 1  # vector 250: the second writer has another copy
    shards[0].write_bytes(bytes(content))
    with open(shards[2].with_suffix(".idx"), "ab") as file:
        file.write(b"torn")
    assert compact_feature_store(tmp_path) == 6
    info = feature_store_info(tmp_path, verify=True)
    assert (info["n_vectors"], info["n_shards"], info["n_files"], info["n_damaged"]) == (
        599, 1, 3, 0)
    assert info["n_bytes"] < 600 * 128 + 200
    values = FeatureStore(tmp_path).get_many([("v", i) for i in range(600)])
    assert values[5] is None
    for i in [*range(5), *range(6, 600)]:
        np.testing.assert_array_equal(values[i], vector(i))
