"""Ratio 9: phone photos on Ray, ``read_binary_files`` + bytes against ``read_images``.

Both label the same 12-megapixel JPEG photos with ``predict_dataset`` on a
local Ray instance: ``read_images`` decodes every file at full size in Ray's
read tasks (no EXIF orientation, no reduced-DCT decoding) and ships the pixels
to the workers; ``read_binary_files`` ships the files' bytes, which the
workers decode as ``predict`` does. Local ``predict`` on the paths, in this
process, is the third variant: the route for photos should keep its pace.
Each variant starts its workers afresh, as a user's job does, and the ratio is
end to end. The rates after the first batch are printed too, but they flatter
``read_images``: its read tasks decode the photos while the workers start.
"""

import os
import tempfile
import time
from pathlib import Path

import numpy as np

from sklearn_taskres import clear_feature_cache

from .common import classifier, log, mark, medians, paired_ratio, ratio_entry, side_by_side
from .photos import PHOTO_SIZE, write_photos

N_PHOTOS = 12  # distinct photos, written once (about a second each)
N_FILES = 96  # files labelled: the photos in turn, each file with its own bytes
BATCH_SIZE = 4  # rows per worker call: a 12-megapixel array is 36 MB


def ratio(config, model, data, repeats, device):
    """Ratio 9: seconds of read_images / seconds of read_binary_files + bytes, end to end."""
    with tempfile.TemporaryDirectory(prefix="taskres_ray_photos_") as directory:
        log(f"[{config.name}] writing {N_PHOTOS} photos of {PHOTO_SIZE[0]}x{PHOTO_SIZE[1]} "
            f"as {N_FILES} files")
        photos, turns = write_photos(Path(directory) / "photos", n_photos=N_PHOTOS)
        files = Path(directory) / "files"
        paths, orientations = _distinct_copies(photos, turns, files, N_FILES)
        return _measure(config, model, data, repeats, device, str(files), paths, orientations)


def _distinct_copies(photos, orientations, folder, n_files):
    """``n_files`` copies of the photos in turn, made distinct by bytes after their end.

    Decoders stop at a JPEG's end-of-image marker, so every copy decodes as its
    photo, while its content digest is its own: nothing is served from a cache.
    """
    folder.mkdir()
    paths, turns = [], []
    for index in range(n_files):
        source = index % len(photos)
        path = folder / f"IMG_{index:04d}.jpg"
        path.write_bytes(Path(photos[source]).read_bytes() + index.to_bytes(4, "little"))
        paths.append(str(path))
        turns.append(orientations[source])
    return paths, turns


def _measure(config, model, data, repeats, device, directory, paths, orientations):
    import ray  # the ray extra: only the ray configuration needs it

    from sklearn_taskres.ray import predict_dataset

    fitted = classifier(config, model, data, device, max_iter=1).fit(
        data.fit_paths, data.fit_labels)
    # One core stays with Ray's read tasks, which feed the workers (and decode, for read_images).
    workers = max(1, (os.cpu_count() or 1) - 1)
    first_batch = {"read_images": [], "read_binary_files": []}
    steady = {"read_images": [], "read_binary_files": []}
    labels = {}

    def on_ray(name):
        start = time.perf_counter()
        if name == "read_images":
            dataset, column = ray.data.read_images(directory, include_paths=True), "image"
        else:
            dataset, column = ray.data.read_binary_files(directory, include_paths=True), "bytes"
        labelled = predict_dataset(fitted, dataset, image_column=column, batch_size=BATCH_SIZE,
                                   concurrency=workers, num_cpus=1)
        rows, got = 0, {}
        for batch in labelled.select_columns(["path", "label"]).iter_batches(
                batch_format="numpy", batch_size=None):
            if rows == 0:
                first = time.perf_counter() - start
                first_rows = len(batch["label"])
            rows += len(batch["label"])
            got.update(zip(batch["path"], batch["label"], strict=True))
        total = time.perf_counter() - start
        if rows != len(paths):
            raise RuntimeError(f"expected {len(paths)} rows from predict_dataset; got {rows}")
        first_batch[name].append(first)
        steady[name].append((rows - first_rows) / max(total - first, 1e-9))
        labels[name] = [got[path] for path in paths]
        return rows

    def predict():
        clear_feature_cache()
        labels["predict"] = fitted.predict(paths)
        return len(paths)

    started = not ray.is_initialized()
    if started:
        cpus = os.cpu_count() or 1
        log(f"[{config.name}] starting a local Ray instance with {cpus} CPUs")
        ray.init(address="local", num_cpus=cpus, include_dashboard=False, log_to_driver=False,
                 logging_level="ERROR")
    try:
        seconds, _ = side_by_side(
            {"read_images": lambda: on_ray("read_images"),
             "read_binary_files": lambda: on_ray("read_binary_files"),
             "predict": predict}, repeats, device)
    finally:
        if started:
            ray.shutdown()
    n = len(paths)
    rates = {name: n / value for name, value in medians(seconds).items()}
    expected = list(labels["predict"])
    return ratio_entry(
        paired_ratio(seconds["read_images"], seconds["read_binary_files"]),
        "throughput ratio: read_binary_files + bytes images/s / read_images images/s, "
        "predict_dataset on 12-megapixel photos, workers started in every repetition",
        (">=", 1.8),  # the gain of draft decoding alone, as ratio 8's target without bf16
        seconds,
        model=model,
        n_photos=n,
        photo_size=list(PHOTO_SIZE),
        orientations=sorted(set(orientations)),
        workers=workers,
        batch_size=BATCH_SIZE,
        images_per_second=rates,
        ratio_after_first_batch=paired_ratio(steady["read_binary_files"], steady["read_images"]),
        bytes_vs_predict=paired_ratio(seconds["predict"], seconds["read_binary_files"]),
        seconds_to_first_batch={name: float(np.median(values))
                                for name, values in first_batch.items()},
        images_per_second_after_first_batch={name: float(np.median(values))
                                             for name, values in steady.items()},
        labels_as_predict={name: int(sum(a == b for a, b in zip(labels[name], expected,
                                                                 strict=True)))
                           for name in ("read_images", "read_binary_files")},
    )


def lines(entry, times):
    """The printed lines of ratio 9."""
    rates, after = entry["images_per_second"], entry["images_per_second_after_first_batch"]
    first, same = entry["seconds_to_first_batch"], entry["labels_as_predict"]
    width, height = entry["photo_size"]
    n = entry["n_photos"]
    return [
        f" read_binary_files + bytes vs read_images ({entry['model']}, {n} photos of "
        f"{width}x{height}, EXIF orientations {entry['orientations']}, {entry['workers']} Ray "
        f"worker(s) of 1 CPU, batches of {entry['batch_size']}, workers started in every "
        f"repetition): {entry['ratio']:.2f}x (bytes {rates['read_binary_files']:.2f} img/s, "
        f"read_images {rates['read_images']:.2f} img/s)  {mark(entry)}",
        f"   first batch after {first['read_binary_files']:.1f} s (bytes) and "
        f"{first['read_images']:.1f} s (read_images); afterwards bytes "
        f"{after['read_binary_files']:.2f} img/s, read_images {after['read_images']:.2f} img/s "
        f"({entry['ratio_after_first_batch']:.2f}x; read_images decodes while the workers "
        "start)",
        f"   local predict(paths) {rates['predict']:.2f} img/s (bytes on Ray end to end / "
        f"local: {entry['bytes_vs_predict']:.2f}); labels equal to local predict: bytes "
        f"{same['read_binary_files']}/{n}, read_images {same['read_images']}/{n}",
    ]
