"""The features of a dataset's images, through the feature store, counted for the run's log."""

import numpy as np

from .._features import augmented_image_features, image_features
from ._datasets import DatasetLayoutError

ENCODE_CHUNK = 1024
#: How the harness decodes images: at full size, orientation tags ignored, as
#: the official code reads them (the process's settings do not apply).
DECODING = {"jpeg_draft": False, "exif_orientation": False}
#: Seed of the augmented views of every run, whatever its seed: each image is
#: augmented (and encoded) once and its views are shared by every (shots, seed).
VIEW_SEED = 0


class EncodedSplit:
    """Features of some images of a split, looked up by position in the split."""

    def __init__(self, positions, features):
        self.positions = positions
        self.features = features

    def rows(self, positions):
        return self.features[np.searchsorted(self.positions, positions)]


class CountingEncoder:
    """An image encoder that counts the images it encodes, for the run's log."""

    def __init__(self, encoder):
        self.encoder = encoder
        self.n_encoded = 0

    def __getattr__(self, name):
        return getattr(self.encoder, name)

    def encode_images(self, pixels):
        self.n_encoded += len(pixels)
        return self.encoder.encode_images(pixels)


def encode_split(encoder, dataset, split, positions, cache_dir, log, n_views=0):
    """Features of ``dataset.splits[split]`` at ``positions`` (sorted, unique).

    The features go through the feature store in ``cache_dir``, the one
    ``TaskResClassifier(cache_dir=...)`` uses, keyed by the images' content:
    an image encoded by an earlier run, or by a classifier fitted on the same
    files, is read, not encoded. Images are encoded ``ENCODE_CHUNK`` at a
    time and each chunk is stored at once, so an interrupted run keeps its
    work. With ``n_views``, the rows are the ``n_views`` augmented views of
    each image (seed :data:`VIEW_SEED`), shape (n_images, n_views, D).
    """
    split_data = dataset.splits[split]
    paths = [dataset.directory / split_data.paths[p] for p in positions]
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(
                f"expected the image {path} listed by the dataset's split; it does not exist"
            )
    before = encoder.n_encoded
    chunks = []
    for start in range(0, len(paths), ENCODE_CHUNK):
        chunk = paths[start : start + ENCODE_CHUNK]
        try:
            if n_views:
                views = augmented_image_features(encoder, chunk, n_views, VIEW_SEED,
                                                 cache_dir=cache_dir, decoding=DECODING)
                chunks.append(views.transpose(1, 0, 2))
            else:
                chunks.append(image_features(encoder, chunk, cache_dir=cache_dir,
                                             decoding=DECODING))
        except ValueError as exc:  # an undecodable image, named in the message
            raise DatasetLayoutError(f"{dataset.key} {split} split: {exc}") from exc
    encoded = encoder.n_encoded - before
    if encoded:
        total = len(paths) * max(n_views, 1)
        what = f"augmented views ({n_views} per image)" if n_views else "images"
        rest = ", the rest read from the feature store" if encoded < total else ""
        log(f"[{dataset.key}] {split}: encoded {encoded} of {total} {what}{rest}")
    return EncodedSplit(np.asarray(positions), np.concatenate(chunks).astype(np.float32))
