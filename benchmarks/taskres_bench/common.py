"""The shared plumbing of the measurements: recipe, timing, data and encoders.

Every measurement module builds on these and on nothing else of the package,
so that they stay independent of one another.
"""

import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from sklearn_taskres import TaskResClassifier
from sklearn_taskres import _clip as clip_adapter
from sklearn_taskres._clip import _encoder as clip_encoder
from sklearn_taskres._features import IMAGE_BATCH_SIZE
from sklearn_taskres._templates import resolve_templates

ALPHA = 0.5
BATCH_SIZE = 256
WEIGHT_DECAY = 5e-4
CLIP_LOGIT_SCALE = 100.0  # CLIP's exp(logit_scale), for the synthetic feature tasks

# A small CLIP-like model for the CPU: real 224-pixel preprocessing and 512-d
# embeddings, but a vision and a text tower of 4 layers of width 256.
MID_CLIP_NAME = "TaskResBenchMidCLIP"
MID_CLIP_CONFIG = {
    "embed_dim": 512,
    "vision_cfg": {
        "image_size": 224, "layers": 4, "width": 256, "head_width": 64, "patch_size": 32,
    },
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 256, "heads": 4,
                 "layers": 4},
}


@dataclass(frozen=True)
class FeatureTask:
    """A synthetic classification task on embeddings, drawn around class centres.

    Every class has a random unit centre; an embedding is its centre plus
    Gaussian noise of standard deviation ``noise`` per dimension. The base
    classifier (the stand-in for CLIP's text embeddings) is every centre plus
    a random vector of norm ``base_noise``, so that zero-shot accuracy is
    imperfect and training has something to learn.
    """

    n_classes: int
    per_class: int
    n_features: int
    noise: float
    base_noise: float = 1.0
    epochs: int = 200
    learning_rate: float = 2e-3
    n_test_per_class: int = 0


# ---------------------------------------------------------------- measuring


def log(message):
    """Progress to stderr, so that stdout holds the results only."""
    print(message, file=sys.stderr, flush=True)


def synchronize(device):
    """Wait for queued CUDA work, so that a timer measures it."""
    if device == "cuda":
        torch.cuda.synchronize()


def timed(function, device):
    """Run ``function()`` and return ``(seconds, result)``."""
    synchronize(device)
    start = time.perf_counter()
    result = function()
    synchronize(device)
    return time.perf_counter() - start, result


def side_by_side(variants, repeats, device):
    """Time every variant ``repeats`` times, interleaved, in alternating order.

    Returns the seconds of every repetition per variant and the result of
    every variant's last run.
    """
    names = list(variants)
    seconds = {name: [] for name in names}
    results = {}
    for repeat in range(repeats):
        for name in names if repeat % 2 == 0 else names[::-1]:
            elapsed, results[name] = timed(variants[name], device)
            seconds[name].append(elapsed)
    return seconds, results


def paired_ratio(numerators, denominators):
    """Median over repetitions of ``numerator / denominator``."""
    return statistics.median(a / b for a, b in zip(numerators, denominators, strict=True))


def medians(seconds):
    """The median of every list of seconds."""
    return {name: statistics.median(values) for name, values in seconds.items()}


def ratio_entry(ratio, meaning, target, seconds, **details):
    """One ratio with its target (``(">=", 1.25)``, ``("<=", 1.3)`` or None) and whether met."""
    met = None
    if target is not None:
        operator, bound = target
        met = ratio >= bound if operator == ">=" else ratio <= bound
    return {
        "ratio": float(ratio),
        "meaning": meaning,
        "target": None if target is None else f"{target[0]} {target[1]}",
        "met": met,
        "median_seconds": {name: float(value) for name, value in medians(seconds).items()},
        "seconds": {name: [float(v) for v in values] for name, values in seconds.items()},
        **details,
    }


def mark(entry):
    """PASS or MISS beside a ratio with a target."""
    if entry["target"] is None:
        return "(no target)"
    return f"target {entry['target']}: {'PASS' if entry['met'] else 'MISS'}"


# ---------------------------------------------------------------- data


def write_images(directory, n_images, size, seed):
    """Write ``n_images`` smooth synthetic JPEG files of ``size`` (w, h); return their paths.

    Upsampled colour noise plus grain: JPEG files of a photo's size and
    decoding cost, all different.
    """
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(seed)
    width, height = size
    paths = []
    for index in range(n_images):
        coarse = rng.randint(0, 256, (6, 8, 3), dtype=np.uint8)
        smooth = np.asarray(Image.fromarray(coarse).resize((width, height), Image.BICUBIC))
        grain = rng.randint(-20, 21, smooth.shape)
        pixels = np.clip(smooth.astype(np.int16) + grain, 0, 255).astype(np.uint8)
        path = directory / f"{index:05d}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(str(path))
    return paths


def feature_task(task, seed):
    """Draw a :class:`FeatureTask`: ``(X, y, X_test, y_test, base)`` as float32 arrays."""
    rng = np.random.RandomState(seed)

    def unit(rows):
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)

    centres = unit(rng.normal(size=(task.n_classes, task.n_features)))
    base = centres + task.base_noise * unit(rng.normal(size=centres.shape))

    def draw(per_class):
        y = np.repeat(np.arange(task.n_classes), per_class)
        noise = task.noise * rng.normal(size=(len(y), task.n_features))
        return (centres[y] + noise).astype(np.float32), y

    X, y = draw(task.per_class)
    X_test, y_test = draw(task.n_test_per_class)
    return X, y, X_test, y_test, base.astype(np.float32)


@dataclass
class ImageData:
    """The image files and labels of one configuration."""

    names: list
    text_names: list
    templates: tuple
    fit_paths: list
    fit_labels: np.ndarray
    predict_paths: list


def image_data(config, directory):
    """Write the training and prediction images of ``config`` under ``directory``."""
    text_names = [f"object number {k}" for k in range(max(config.text_classes,
                                                          config.n_classes))]
    fit_labels = np.repeat(np.arange(config.n_classes), config.shots)
    fit_paths = write_images(directory / "fit", len(fit_labels), config.image_size, seed=0)
    predict_paths = write_images(directory / "predict", config.n_predict, config.image_size,
                                 seed=1)
    return ImageData(
        names=text_names[: config.n_classes],
        text_names=text_names[: config.text_classes],
        templates=resolve_templates(config.templates),
        fit_paths=fit_paths,
        fit_labels=fit_labels,
        predict_paths=predict_paths,
    )


def classifier(config, model, data, device, max_iter=None):
    """A TaskResClassifier on the random-initialised ``model`` with the config's recipe."""
    return TaskResClassifier(
        data.names,
        model=model,
        pretrained=None,
        templates=data.templates,
        alpha=ALPHA,
        learning_rate=config.learning_rate,
        max_iter=config.epochs if max_iter is None else max_iter,
        batch_size=BATCH_SIZE,
        weight_decay=WEIGHT_DECAY,
        device=device,
        random_state=0,
    )


def precision_of(device):
    """The encoders' precision that TaskResClassifier's default ``precision="auto"`` picks."""
    return clip_adapter.resolve_precision("auto", torch.device(device))


def load_encoder(model, device):
    """The process-wide encoder that a TaskResClassifier on ``model`` and ``device`` uses."""
    return clip_adapter.load_encoder(model, None, torch.device(device), precision_of(device))


def load_cold(model, device):
    """Load ``model`` as a first use in the process does (the process-wide encoders dropped)."""
    clip_encoder._ENCODERS.clear()
    return load_encoder(model, device)


def encode_in_batches(encoder, pixels):
    """Embeddings of preprocessed images, in the library's batch size for the device."""
    batch_size = IMAGE_BATCH_SIZE.get(encoder.device.type, 64)
    chunks = [
        encoder.encode_images(torch.stack(pixels[start : start + batch_size]))
        for start in range(0, len(pixels), batch_size)
    ]
    return np.concatenate(chunks)


def warm_up(encoder, pixels):
    """Run the encoder once on a full batch: the first call pays one-off kernel set-up."""
    batch_size = min(len(pixels), IMAGE_BATCH_SIZE.get(encoder.device.type, 64))
    encoder.encode_images(torch.stack(pixels[:batch_size]))


def device_name(device):
    """The accelerator's or the CPU's name, and the CPU count."""
    if device == "cuda":
        return torch.cuda.get_device_name()
    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} cores"
