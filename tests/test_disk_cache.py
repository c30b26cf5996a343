"""The on-disk feature cache: shared across processes, atomic, checksummed."""

import subprocess
import sys
import textwrap

import numpy as np
import torch
from helpers import make_dataset, make_images

from sklearn_taskres import TaskResClassifier
from sklearn_taskres._clip import load_encoder
from sklearn_taskres._disk_cache import DiskCache
from sklearn_taskres._features import FEATURES, image_features


def entries(directory):
    return sorted(directory.rglob("*.feat"))


def test_a_fresh_process_reads_instead_of_encoding(tiny_model, tmp_path, encoded_rows):
    """With cache_dir, a second run (empty memory cache) encodes nothing and fits the same."""
    images, y = make_dataset(n_per_class=3, n_classes=3, seed=700)
    params = dict(model=tiny_model, pretrained=None, max_iter=3, device="cpu", random_state=0,
                  cache_dir=str(tmp_path))
    first = TaskResClassifier(["a", "b", "c"], **params).fit(images, y)
    assert encoded_rows["rows"] == len(images)
    assert len(entries(tmp_path)) == len(images) + 3  # images and prompts
    FEATURES.clear()
    second = TaskResClassifier(["a", "b", "c"], **params).fit(images, y)
    assert encoded_rows["rows"] == len(images)
    np.testing.assert_array_equal(second.residual_, first.residual_)


def test_corrupt_or_truncated_entries_are_recomputed(tiny_model, tmp_path, encoded_rows):
    encoder = load_encoder(tiny_model, None, torch.device("cpu"))
    images = make_images(3, seed=701)
    expected = image_features(encoder, images, cache_dir=tmp_path)
    files = entries(tmp_path)
    files[0].write_bytes(files[0].read_bytes()[:-7])  # truncated
    data = bytearray(files[1].read_bytes())
    data[-1] ^= 0xFF  # one flipped byte
    files[1].write_bytes(bytes(data))
    FEATURES.clear()
    np.testing.assert_array_equal(image_features(encoder, images, cache_dir=tmp_path), expected)
    assert encoded_rows["rows"] == 3 + 2
    cache = DiskCache(tmp_path)
    assert all(cache.get(("image",) + key) is None for key in [("nope",)])
    assert len(entries(tmp_path)) == 3


def test_precision_is_part_of_the_key(tiny_model, tmp_path, encoded_rows):
    images = make_images(2, seed=702)
    cpu = torch.device("cpu")
    image_features(load_encoder(tiny_model, None, cpu, "fp32"), images, cache_dir=tmp_path)
    image_features(load_encoder(tiny_model, None, cpu, "bf16"), images, cache_dir=tmp_path)
    assert encoded_rows["rows"] == 4
    assert len(entries(tmp_path)) == 4


def test_two_processes_writing_the_same_entries_at_once(tiny_model, tmp_path):
    """Concurrent writers leave complete, valid entries equal to the features."""
    images = np.stack(make_images(40, seed=703))
    np.save(tmp_path / "images.npy", images)
    cache = tmp_path / "cache"
    script = textwrap.dedent(f"""
        import os
        os.environ["HF_HUB_OFFLINE"] = "1"
        import numpy as np, torch
        from sklearn_taskres.testing import register_tiny_clip
        from sklearn_taskres._clip import load_encoder
        from sklearn_taskres._features import image_features
        encoder = load_encoder(register_tiny_clip({tiny_model!r}), None, torch.device("cpu"))
        images = np.load({str(tmp_path / "images.npy")!r})
        for _ in range(3):
            image_features(encoder, images, cache_dir={str(cache)!r})
            from sklearn_taskres._features import FEATURES
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
    assert len(entries(cache)) == 40
    assert not list(cache.rglob("*.tmp"))
    np.testing.assert_allclose(image_features(encoder, list(images), cache_dir=cache),
                               expected, rtol=1e-5, atol=1e-6)
