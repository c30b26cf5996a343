"""The feature cache: every distinct image and prompt is encoded once per process.

Keys are content digests plus the encoder's identity (model, weights,
precision, preprocessing), so a grid search over ``alpha`` encodes each image
once in total, test folds included, and clones share the work.
"""

import contextlib
import functools
import hashlib
import warnings
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from ._config import decoding_config, get_config
from ._feature_cache import FEATURES
from ._feature_store import forget_stores, open_store
from ._heap import kept_heap
from ._images import DECODE_WORKERS, Decoding, forget_file_digests, image_sources
from ._progress import logger, progress

IMAGE_BATCH_SIZE = {"cpu": 32, "cuda": 256}
TEXT_BATCH_SIZE = 256


def clear_feature_cache():
    """Forget the features, file digests and store indexes held in memory by this process.

    The next use of every image and prompt then reads and hashes it again
    and encodes it (or reads it from ``cache_dir``, which is left alone).

    Examples
    --------
    >>> import sklearn_taskres
    >>> sklearn_taskres.clear_feature_cache()
    """
    FEATURES.clear()
    forget_file_digests()
    forget_stores()


def _lookup_or_compute(keys, compute_missing, cache_dir=None):
    """Features for ``keys`` (duplicates allowed); ``compute_missing(positions)`` fills misses.

    Looks in memory, then in ``cache_dir`` when given, then computes.
    ``compute_missing`` yields ``(positions, values)`` batch by batch: each
    batch goes into the memory cache and the store as soon as it is
    computed, so an error or a kill part way loses at most the batches under
    way. Results are gathered in a local dict so that eviction during a
    large call never loses a row of that call.
    """
    dtype = np.dtype(get_config()["feature_cache_dtype"])
    if dtype != np.float32:  # rounded features are other entries
        keys = [(*key, dtype.name) for key in keys]
    store = open_store(cache_dir) if cache_dir is not None else None
    found = {}
    missing = {}
    for position, key in enumerate(keys):
        if key in found or key in missing:
            continue
        value = FEATURES.get(key)
        if value is None:
            missing[key] = position
        else:
            found[key] = value
    if missing and store is not None:
        for key, value in zip(list(missing), store.get_many(list(missing)), strict=True):
            if value is not None:
                FEATURES.put(key, value)
                found[key] = value
                del missing[key]
    logger.debug("%d distinct keys: %d cached, %d to compute", len(found) + len(missing),
                 len(found), len(missing))
    if missing:
        for positions, values in compute_missing(list(missing.values())):
            stored = []
            for position, value in zip(positions, values, strict=True):
                key, value = keys[position], np.array(value, dtype=dtype)
                FEATURES.put(key, value)
                stored.append((key, value))
                found[key] = value
            if store is not None:
                store.put_many(stored)
    return np.stack([found[key] for key in keys]).astype(np.float32, copy=False)


def image_features(encoder, X, cache_dir=None, verbose=0, decoding=None):
    """Raw CLIP embeddings (n_images, D) of a sequence of images, through the cache.

    ``decoding``: the decoding settings (:func:`~sklearn_taskres._config.decoding_config`;
    None for this process's).
    """
    sources = image_sources(X)
    decoding = decoding_for(encoder, decoding)
    keys = [("image", encoder.identity, *source.key(decoding)) for source in sources]

    def pixels_of(position):
        return encoder.preprocess(sources[position].load(decoding))

    return _lookup_or_compute(
        keys, lambda positions: _encode(encoder, pixels_of, positions, verbose), cache_dir
    )


def augmented_image_features(encoder, X, n_views, seed, cache_dir=None, verbose=0,
                             decoding=None):
    """Embeddings of ``n_views`` augmented views of every image: (n_views, n_images, D).

    View ``v`` of an image is drawn from a seed derived from ``seed``, ``v``
    and the image's content, so it is the same view wherever the image
    appears, and it is cached like any other feature. Images decode at full
    size: a random crop may zoom in far.
    """
    sources = image_sources(X)
    augment = encoder.augmentation
    decoding = decoding_for(encoder, decoding, draft=False)
    keys = [
        ("view", encoder.identity, repr(augment), seed, view, *source.key(decoding))
        for source in sources
        for view in range(n_views)
    ]
    # The views of one image are neighbours: decode it once for all of them.
    decoded = functools.lru_cache(maxsize=2 * DECODE_WORKERS)(
        lambda i: sources[i].load(decoding))

    def pixels_of(position):
        source, view = sources[position // n_views], position % n_views
        view_seed = _view_seed(seed, view, source.digest)
        return augment(decoded(source.index), view_seed)

    features = _lookup_or_compute(
        keys, lambda positions: _encode(encoder, pixels_of, positions, verbose), cache_dir
    )
    return features.reshape(len(sources), n_views, -1).transpose(1, 0, 2)


def decoding_for(encoder, settings=None, draft=True):
    """The :class:`Decoding` of ``settings`` (None: this process's) for ``encoder``.

    JPEG drafts keep both sides at least twice the model's input size;
    ``draft=False`` decodes at full size whatever the setting.
    """
    settings = decoding_config() if settings is None else settings
    draft_size = 2 * max(encoder.image_size) if draft and settings["jpeg_draft"] else None
    return Decoding(exif_orientation=settings["exif_orientation"], draft_size=draft_size)


def _encode(encoder, pixels_of, positions, verbose=0):
    """Encode the images at ``positions`` in batches; yield ``(positions, features)`` per batch.

    Decoding and preprocessing run in worker threads (PIL and torch release
    the GIL). Where the encoder has a device of its own, the next batch is
    decoded while the current one encodes. On the CPU, whose every core torch
    uses to encode, a batch is decoded on all cores and then encoded on all
    cores: decoding threads running beside torch's would stall its parallel
    kernels, which wait for their slowest thread; and the C heap keeps the
    pages of one batch's activations for the next (:mod:`._heap`). On CUDA,
    batches go through pinned memory, and an out-of-memory error halves the
    batch instead of failing.
    """
    batch_size = IMAGE_BATCH_SIZE.get(encoder.device.type, 64)
    batches = [positions[start : start + batch_size]
               for start in range(0, len(positions), batch_size)]
    overlap = encoder.device.type != "cpu"
    step = batch_size  # shrinks for good after an out-of-memory error
    bar = progress(verbose, total=len(positions), desc="Encoding images", unit="img")
    heap = kept_heap() if encoder.device.type == "cpu" else contextlib.nullcontext()
    with heap, bar, ThreadPoolExecutor(max_workers=DECODE_WORKERS) as pool:
        pending = None
        for index, batch in enumerate(batches):
            if pending is None:
                pending = [pool.submit(pixels_of, position) for position in batch]
            try:
                pixels = torch.stack([future.result() for future in pending])
            except BaseException:
                for future in pending:
                    future.cancel()
                raise
            pending = None
            if overlap and index + 1 < len(batches):
                pending = [pool.submit(pixels_of, position) for position in batches[index + 1]]
            if encoder.device.type == "cuda":
                pixels = pixels.pin_memory()
            done = 0
            while done < len(pixels):
                chunk = pixels[done : done + step]
                try:
                    features = encoder.encode_images(chunk)
                except torch.cuda.OutOfMemoryError as exc:
                    if len(chunk) == 1:
                        raise MemoryError(
                            "CUDA ran out of memory encoding a single image with "
                            f"{encoder.identity[0]}; free GPU memory or use device='cpu'"
                        ) from exc
                    torch.cuda.empty_cache()
                    step = len(chunk) // 2
                    warnings.warn(
                        "CUDA out of memory while encoding images; retrying with batches "
                        f"of {step}",
                        ResourceWarning,
                        stacklevel=2,
                    )
                    continue
                yield batch[done : done + len(chunk)], features
                done += len(chunk)
                bar.update(len(chunk))


def _view_seed(seed, view, digest):
    material = f"{seed}:{view}:{digest}".encode()
    return int.from_bytes(hashlib.blake2b(material, digest_size=8).digest(), "little") >> 1


def text_features(encoder, prompts, *, pooled=False, cache_dir=None):
    """Raw CLIP text embeddings (n_prompts, D), through the cache.

    With ``pooled``, the features before the text projection (n_prompts, width).
    """
    kind = "pooled text" if pooled else "text"
    keys = [(kind, encoder.identity, prompt) for prompt in prompts]
    encode_text = encoder.encode_text_pooled if pooled else encoder.encode_text

    def encode(positions):
        for start in range(0, len(positions), TEXT_BATCH_SIZE):
            batch = positions[start : start + TEXT_BATCH_SIZE]
            yield batch, encode_text([prompts[p] for p in batch])

    return _lookup_or_compute(keys, encode, cache_dir)
