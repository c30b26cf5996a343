"""The table: the seconds of every stage of an end-to-end use of one model."""

import functools
from concurrent.futures import ThreadPoolExecutor

import torch

from sklearn_taskres import clear_feature_cache
from sklearn_taskres._features import DECODE_WORKERS, decoding_for
from sklearn_taskres._images import image_sources
from sklearn_taskres._templates import text_base
from sklearn_taskres._training import train_residual

from .common import (
    ALPHA,
    BATCH_SIZE,
    WEIGHT_DECAY,
    classifier,
    encode_in_batches,
    load_cold,
    medians,
    precision_of,
    timed,
    warm_up,
)

STAGES = ("load", "text", "decode", "encode", "train", "predict")


def breakdown(config, model, data, repeats, device):
    """Seconds of every stage of an end-to-end use of ``model`` (medians over repeats).

    load: the model's first load in the process; text: the base classifier of
    ``text_classes`` classes x templates; decode: read, decode and preprocess
    the training images (in the library's decoding threads); encode: the
    image encoder on them; train: the residual on their features
    (``epochs``); predict: ``predict`` on new images, feature cache cold.
    """
    seconds = {stage: [] for stage in STAGES}
    fitted = None
    for _ in range(repeats):
        for stage, elapsed in breakdown_once(config, model, data, device).items():
            seconds[stage].append(elapsed)
        if fitted is None:
            fitted = classifier(config, model, data, device).fit(data.fit_paths, data.fit_labels)
        clear_feature_cache()
        elapsed, _ = timed(functools.partial(fitted.predict, data.predict_paths), device)
        seconds["predict"].append(elapsed)
    return {
        "config": config.name,
        "model": model,
        "device": device,
        "precision": precision_of(device),
        "n_prompts": len(data.text_names) * len(data.templates),
        "n_images": len(data.fit_paths),
        "n_predict": len(data.predict_paths),
        "epochs": config.epochs,
        "median_seconds": medians(seconds),
        "seconds": seconds,
    }


def breakdown_once(config, model, data, device):
    """One repetition of the load, text, decode, encode and train stages: their seconds."""
    seconds = {}
    seconds["load"], encoder = timed(lambda: load_cold(model, device), device)
    sources = image_sources(data.fit_paths)
    warm_up(encoder, [encoder.preprocess(sources[0].load())] * 2)

    clear_feature_cache()
    seconds["text"], _ = timed(
        lambda: text_base(encoder, data.text_names, data.templates), device)

    decoding = decoding_for(encoder)  # as fit and predict decode

    def decode():
        with ThreadPoolExecutor(max_workers=DECODE_WORKERS) as pool:
            return list(pool.map(lambda source: encoder.preprocess(source.load(decoding)),
                                 sources))

    seconds["decode"], pixels = timed(decode, device)
    warm_up(encoder, pixels)
    seconds["encode"], features = timed(lambda: encode_in_batches(encoder, pixels), device)

    base = text_base(encoder, data.names, data.templates)
    seconds["train"], _ = timed(
        lambda: train_residual(
            features, data.fit_labels, base, alpha=ALPHA, logit_scale=encoder.logit_scale,
            learning_rate=config.learning_rate, max_iter=config.epochs, batch_size=BATCH_SIZE,
            weight_decay=WEIGHT_DECAY, seed=0, device=torch.device(device),
        ),
        device,
    )
    return seconds
