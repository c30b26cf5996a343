"""How images flow from the decoding threads to the encoder, batch by batch."""

import threading
import time

import numpy as np
import pytest
import torch
from helpers import make_images

from sklearn_taskres import _features
from sklearn_taskres._features import _encode, image_features
from sklearn_taskres._images import image_sources


class RecordingEncoder:
    """Encodes to zeros; records how many images had begun decoding while each batch encoded."""

    def __init__(self, device, started):
        self.device = torch.device(device)
        self.identity = ("recording",)
        self.started = started
        self.seen = []

    def encode_images(self, pixels):
        before = self.started["n"]
        time.sleep(0.3)  # time enough for decoding threads, if any were given work
        self.seen.append((before, self.started["n"]))
        return np.zeros((len(pixels), 2), dtype=np.float32)


def run(device, n_images, monkeypatch):
    monkeypatch.setattr(_features, "IMAGE_BATCH_SIZE", {device: 4})
    started, lock = {"n": 0}, threading.Lock()

    def pixels_of(position):
        with lock:
            started["n"] += 1
        return torch.zeros(3, 2, 2)

    encoder = RecordingEncoder(device, started)
    batches = list(_encode(encoder, pixels_of, list(range(n_images))))
    assert [list(positions) for positions, _ in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    return encoder.seen


def test_on_the_cpu_decoding_and_encoding_take_turns(monkeypatch):
    """While torch encodes a batch on every core, no image of the next batch is decoded."""
    assert run("cpu", 10, monkeypatch) == [(4, 4), (8, 8), (10, 10)]


def test_beside_a_device_the_next_batch_decodes_while_one_encodes(monkeypatch):
    """An encoder on a device of its own: the CPU decodes the next batch meanwhile."""
    seen = run("meta", 10, monkeypatch)
    assert [after for _, after in seen] == [8, 10, 10]


def test_files_are_hashed_on_every_core_and_the_first_bad_one_is_named(tmp_path, monkeypatch):
    """Describing many files reads them in threads; the error still names the first bad index."""
    from PIL import Image

    paths = []
    for index, image in enumerate(make_images(12, seed=3)):
        paths.append(tmp_path / f"{index}.png")
        Image.fromarray(image).save(paths[-1])
    threads = set()
    from sklearn_taskres import _images

    describe = _images._describe

    def recording(index, item):
        threads.add(threading.get_ident())
        time.sleep(0.02)
        return describe(index, item)

    monkeypatch.setattr(_images, "_describe", recording)
    sources = image_sources(paths)
    assert [source.index for source in sources] == list(range(12))
    assert len(threads) == min(_images.DECODE_WORKERS, 12) > 1 or _images.DECODE_WORKERS == 1
    with pytest.raises(FileNotFoundError, match=r"X\[5\]: no such image file"):
        image_sources(paths[:5] + [tmp_path / "missing.png"] + paths[5:]
                      + [tmp_path / "also-missing.png"])


def test_the_schedule_does_not_change_a_feature(tiny_model, monkeypatch):
    """Features are the same whichever way decoding and encoding are scheduled."""
    from sklearn_taskres._clip import load_encoder

    encoder = load_encoder(tiny_model, None, torch.device("cpu"), "fp32")
    images = make_images(9, seed=4)
    monkeypatch.setattr(_features, "IMAGE_BATCH_SIZE", {"cpu": 3})
    _features.FEATURES.clear()
    taking_turns = image_features(encoder, images)
    expected = np.concatenate([encoder.encode_images(torch.stack(
        [encoder.preprocess(source.load()) for source in image_sources(images[start:start + 3])]))
        for start in range(0, 9, 3)])
    np.testing.assert_array_equal(taking_turns, expected)


def test_a_file_named_at_several_indexes_is_read_once_while_threads_hash(tmp_path,
                                                                        monkeypatch):
    """Threads that meet the same file at once wait for one digest instead of reading it again."""
    from pathlib import Path

    from PIL import Image

    from sklearn_taskres import _images

    monkeypatch.setattr(_images, "_SETTLED_SECONDS", -1.0)
    _images.forget_file_digests()
    path = tmp_path / "img.png"
    Image.fromarray(make_images(1, seed=5)[0]).save(path)
    reads, read_bytes = [], Path.read_bytes

    def slow_read(self):
        reads.append(self)
        time.sleep(0.2)  # every thread has started on the file by now
        return read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", slow_read)
    sources = image_sources([path, str(path), path, str(path)])
    assert len({source.digest for source in sources}) == 1 and len(reads) == 1
