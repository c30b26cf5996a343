"""Where the time of sklearn-taskres goes, and how it compares with the alternatives.

Every model is random-initialised (``pretrained=None``): it costs the same
compute as real weights and needs no download. Images are synthetic JPEG files
written to a temporary folder.

The script prints one table, the time of every stage of an end-to-end use
(model load, text encoding, decode, encode, train, predict), then six ratios.
Each ratio compares two variants measured side by side in the same run: the
repetitions are interleaved (in alternating order) and the ratio is the median
of the per-repetition ratios, so that a slow spell of a shared machine hits
both variants alike.

1. residual training: our hand-derived gradient and in-place Adam against
   eager autograd and ``torch.optim.Adam`` with the same batch order;
2. fit: encoding every image once through the cache, then training, against
   an emulation of the official loop, which decodes, augments and encodes every
   training image in every epoch;
3. ``GridSearchCV`` over 5 alphas x 5 folds against one fit on the same images;
4. ``predict`` throughput against the raw encoder on the same images;
5. TaskRes against ``LogisticRegression`` on the same features (accuracy, time);
6. one fit against one pass of decode + encode over its images.

Run ``python benchmarks/run.py --help`` for the options; benchmarks/README.md
explains the configurations, the targets and a result.
"""

import argparse
import datetime
import functools
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Random-initialised models need no download: never let the Hub client retry a network.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from PIL import Image  # noqa: E402
from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402

import sklearn_taskres  # noqa: E402
from sklearn_taskres import TaskResClassifier, TaskResHead, clear_feature_cache  # noqa: E402
from sklearn_taskres import _clip as clip_adapter  # noqa: E402
from sklearn_taskres._features import (  # noqa: E402
    DECODE_WORKERS,
    IMAGE_BATCH_SIZE,
    image_features,
)
from sklearn_taskres._images import image_sources  # noqa: E402
from sklearn_taskres._templates import resolve_templates, text_base  # noqa: E402
from sklearn_taskres._training import (  # noqa: E402
    ADAM_BETAS,
    ADAM_EPS,
    fit_parameter,
    learning_rate_schedule,
    minibatches,
    residual_logits,
    train_residual,
)
from sklearn_taskres.testing import register_tiny_clip  # noqa: E402

ALPHA = 0.5
BATCH_SIZE = 256
WEIGHT_DECAY = 5e-4
CLIP_LOGIT_SCALE = 100.0  # CLIP's exp(logit_scale), for the synthetic feature tasks
GRID_ALPHAS = (0.25, 0.5, 1.0, 2.0, 4.0)
GRID_FOLDS = 5
SAME_RESIDUAL_TOLERANCE = 1e-3  # on max |ours - reference| / max |reference|

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

RATIO_TITLES = {
    "residual_training": "1. residual training",
    "fit_vs_official": "2. fit",
    "grid_search_vs_fit": "3. grid search",
    "predict_vs_encoder": "4. predict",
    "taskres_vs_logistic": "5. TaskRes vs LogisticRegression",
    "fit_vs_encoding": "6. fit vs encoding",
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


@dataclass(frozen=True)
class Config:
    """The sizes of one benchmark configuration."""

    name: str
    models: tuple  # open_clip model names; the first one also gives ratios 2-4
    image_size: tuple  # (width, height) of the synthetic JPEG files
    n_classes: int  # classes of the training images
    shots: int  # training images per class
    templates: object  # prompt templates, or the name of a built-in set
    text_classes: int  # classes whose prompts the text-encoding column encodes
    n_predict: int  # images of the predict column and of ratio 4
    epochs: int  # epochs of every fit (the official recipe: 200 for 16 shots)
    official_epochs: int  # epochs of the measured official loop (ratio 2)
    training: FeatureTask = None  # ratio 1
    comparison: FeatureTask = None  # ratio 5
    learning_rate: float = 2e-3  # of every fit on images
    needs_cuda: bool = False  # real-size models: too slow for a CPU
    notes: tuple = field(default_factory=tuple)
    ratios: tuple = tuple(RATIO_TITLES)  # which ratios to measure
    breakdown: bool = True  # whether to time the stages of every model
    in_all: bool = True  # part of --config all


CONFIGS = {
    "tiny": Config(
        name="tiny",
        models=("TinyTaskResCLIP",),
        image_size=(64, 48),
        n_classes=4,
        shots=10,
        templates=("a photo of a {}.", "a picture of a {}."),
        text_classes=4,
        n_predict=64,
        epochs=20,
        official_epochs=2,
        training=FeatureTask(n_classes=8, per_class=64, n_features=32, noise=0.5, epochs=20),
        comparison=FeatureTask(n_classes=10, per_class=16, n_features=32, noise=0.5,
                               epochs=20, n_test_per_class=50),
        notes=("a smoke run: the tiny model has 32x32 inputs and 32-d embeddings",),
    ),
    "mid": Config(
        name="mid",
        models=(MID_CLIP_NAME,),
        image_size=(400, 300),
        n_classes=10,
        shots=16,
        templates="imagenet",
        text_classes=10,
        n_predict=160,
        epochs=200,
        official_epochs=2,
        training=FeatureTask(n_classes=100, per_class=40, n_features=512, noise=0.25,
                             epochs=100),
        comparison=FeatureTask(n_classes=100, per_class=16, n_features=512, noise=0.25,
                               n_test_per_class=50),
        notes=(f"{MID_CLIP_NAME}: a random CLIP with 224-pixel inputs, 512-d embeddings "
               "and 4-layer towers of width 256 (real architectures are too slow here)",),
    ),
    "grid-cpu": Config(
        name="grid-cpu",
        models=("ViT-B-32",),
        image_size=(400, 300),
        n_classes=10,
        shots=16,
        templates="imagenet",
        text_classes=10,
        n_predict=0,
        epochs=200,
        official_epochs=0,
        ratios=("grid_search_vs_fit",),
        breakdown=False,
        in_all=False,
        notes=("ratio 3 with a real architecture on the CPU: the mid images and recipe, "
               "encoded by a random ViT-B-32 (slow: about a minute per repetition here)",),
    ),
    "real": Config(
        name="real",
        models=("ViT-B-32", "RN50", "ViT-L-14"),
        image_size=(500, 375),
        n_classes=64,
        shots=8,
        templates="imagenet",
        text_classes=1000,
        n_predict=512,
        epochs=200,
        official_epochs=2,
        training=FeatureTask(n_classes=1000, per_class=16, n_features=1024, noise=0.18,
                             epochs=200, learning_rate=2e-4),
        comparison=FeatureTask(n_classes=100, per_class=16, n_features=1024, noise=0.18,
                               n_test_per_class=50),
        needs_cuda=True,
        notes=("ratio 1 at ImageNet-16-shot size with the ImageNet recipe (lr 2e-4)",),
    ),
}


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
    clip_adapter._ENCODERS.clear()
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


# ---------------------------------------------------------------- the breakdown

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

    def decode():
        with ThreadPoolExecutor(max_workers=DECODE_WORKERS) as pool:
            return list(pool.map(lambda source: encoder.preprocess(source.load()), sources))

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


# ---------------------------------------------------------------- the ratios


def ratio_residual_training(config, model, data, repeats, device):
    """Ratio 1: ``train_residual`` against autograd + torch.optim.Adam, same batches."""
    task = config.training
    X, y, _, _, base = feature_task(task, seed=1)
    torch_device = torch.device(device)

    def recipe(max_iter):
        return dict(learning_rate=task.learning_rate, max_iter=max_iter, batch_size=BATCH_SIZE,
                    weight_decay=WEIGHT_DECAY, seed=0, device=torch_device)

    def ours(max_iter=task.epochs, sample_weight=None):
        residual, _ = train_residual(X, y, base, alpha=ALPHA, logit_scale=CLIP_LOGIT_SCALE,
                                     sample_weight=sample_weight, **recipe(max_iter))
        return residual

    def autograd(max_iter=task.epochs, sample_weight=None):
        frozen = torch.tensor(base, device=torch_device)
        residual = torch.zeros_like(frozen, requires_grad=True)

        def logits(features):
            return residual_logits(features, frozen, residual, ALPHA, CLIP_LOGIT_SCALE)

        fit_parameter(residual, logits, X, y, sample_weight=sample_weight, **recipe(max_iter))
        return residual.detach().cpu().numpy()

    def relative_difference(ours_residual, reference):
        return float(np.abs(ours_residual - reference).max() / np.abs(reference).max())

    ours(1), autograd(1)  # warm-up
    seconds, results = side_by_side({"ours": ours, "autograd": autograd}, repeats, device)
    difference = relative_difference(results["ours"], results["autograd"])
    # Once more, untimed, with sample weights (a fifth of them zero): weights enter the
    # hand-derived gradient, and the weighted residual must be the same too.
    rng = np.random.RandomState(2)
    weights = rng.uniform(0, 2, len(y)) * (rng.uniform(size=len(y)) > 0.2)
    weighted_difference = relative_difference(ours(sample_weight=weights),
                                              autograd(sample_weight=weights))
    n_steps = task.epochs * max(1, len(y) // BATCH_SIZE)
    return ratio_entry(
        paired_ratio(seconds["autograd"], seconds["ours"]),
        "speed-up: autograd seconds / our seconds",
        (">=", 1.25),
        seconds,
        size={"n_samples": len(y), "n_features": task.n_features,
              "n_classes": task.n_classes, "batch_size": BATCH_SIZE, "epochs": task.epochs,
              "steps": n_steps, "learning_rate": task.learning_rate},
        max_relative_difference=difference,
        weighted_max_relative_difference=weighted_difference,
        same_residual=max(difference, weighted_difference) <= SAME_RESIDUAL_TOLERANCE,
        tolerance=SAME_RESIDUAL_TOLERANCE,
    )


def official_fit(encoder, data, *, epochs, learning_rate, device):
    """Emulate the official training loop; return the seconds of its text encoding.

    Every epoch decodes every training image, applies the official training
    augmentation, encodes it with the frozen image encoder, and takes one
    autograd + Adam step per batch, as the official code does. Decoding runs
    in as many threads as the library's own (the official data loader's
    workers); the encoder runs in the library's precision.
    """
    start = time.perf_counter()
    base = torch.tensor(text_base(encoder, data.names, data.templates), device=device)
    text_seconds = time.perf_counter() - start
    residual = torch.zeros_like(base, requires_grad=True)
    optimizer = torch.optim.Adam([residual], lr=learning_rate, betas=ADAM_BETAS, eps=ADAM_EPS,
                                 weight_decay=WEIGHT_DECAY)
    augment = encoder.augmentation
    labels = torch.as_tensor(data.fit_labels, device=device)
    generator = torch.Generator().manual_seed(0)
    view_seeds = np.random.default_rng(0)

    def augmented(path, seed):
        with Image.open(path) as image:
            return augment(image.convert("RGB"), seed)

    # The pool stands for the official data loader's workers.
    with ThreadPoolExecutor(max_workers=DECODE_WORKERS) as pool:
        for rate in learning_rate_schedule(learning_rate, epochs):
            for group in optimizer.param_groups:
                group["lr"] = float(rate)
            for batch in minibatches(len(data.fit_paths), BATCH_SIZE, generator):
                paths = [data.fit_paths[index] for index in batch.tolist()]
                seeds = view_seeds.integers(2**62, size=len(paths)).tolist()
                pixels = torch.stack(list(pool.map(augmented, paths, seeds)))
                with torch.no_grad(), encoder._autocast():
                    features = encoder.model.encode_image(pixels.to(device)).float()
                logits = residual_logits(F.normalize(features, dim=-1), base, residual, ALPHA,
                                         encoder.logit_scale)
                loss = F.cross_entropy(logits, labels[batch.to(device)])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
    return text_seconds


def ratio_fit(config, model, data, repeats, device):
    """Ratio 2: our fit against the official per-epoch re-encoding, same epochs."""
    encoder = load_encoder(model, device)
    text_seconds = []

    def ours():
        clear_feature_cache()
        classifier(config, model, data, device, config.official_epochs).fit(
            data.fit_paths, data.fit_labels)

    def ours_recipe():
        clear_feature_cache()
        classifier(config, model, data, device).fit(data.fit_paths, data.fit_labels)

    def official():
        clear_feature_cache()
        text_seconds.append(official_fit(encoder, data, epochs=config.official_epochs,
                                         learning_rate=config.learning_rate, device=device))

    variants = {"ours": ours, "official": official, "ours_recipe_epochs": ours_recipe}
    seconds, _ = side_by_side(variants, repeats, device)
    # The official loop pays its per-epoch cost `epochs` times: scale that part linearly.
    text = statistics.median(text_seconds)
    per_epoch = (statistics.median(seconds["official"]) - text) / config.official_epochs
    official_recipe = text + per_epoch * config.epochs
    ours_recipe_seconds = statistics.median(seconds["ours_recipe_epochs"])
    return ratio_entry(
        paired_ratio(seconds["official"], seconds["ours"]),
        "speed-up: official-loop seconds / our fit seconds, same epochs (measured)",
        None,
        seconds,
        model=model,
        n_images=len(data.fit_paths),
        epochs_measured=config.official_epochs,
        recipe_epochs=config.epochs,
        official_recipe_seconds_extrapolated=official_recipe,
        ratio_recipe_extrapolated=official_recipe / ours_recipe_seconds,
    )


def ratio_grid_search(config, model, data, repeats, device):
    """Ratio 3: GridSearchCV over 5 alphas x 5 folds against one fit, both from a cold cache."""
    estimator = classifier(config, model, data, device)
    # Load and run the encoder once first, so that neither variant pays for that.
    clone(estimator).set_params(max_iter=1).fit(data.fit_paths[:4], data.fit_labels[:4])

    def grid_search():
        clear_feature_cache()
        search = GridSearchCV(estimator, {"alpha": list(GRID_ALPHAS)}, cv=GRID_FOLDS)
        return search.fit(data.fit_paths, data.fit_labels)

    def one_fit():
        clear_feature_cache()
        return clone(estimator).fit(data.fit_paths, data.fit_labels)

    seconds, _ = side_by_side({"grid_search": grid_search, "one_fit": one_fit}, repeats, device)
    n_fits = len(GRID_ALPHAS) * GRID_FOLDS + 1
    return ratio_entry(
        paired_ratio(seconds["grid_search"], seconds["one_fit"]),
        "slow-down: grid-search seconds / one-fit seconds",
        ("<=", 1.3),
        seconds,
        model=model,
        n_images=len(data.fit_paths),
        n_fits=n_fits,
        epochs=config.epochs,
    )


def ratio_predict(config, model, data, repeats, device):
    """Ratio 4: ``predict`` (cache cold) against preprocess + encode_image in a plain loop."""
    fitted = classifier(config, model, data, device, max_iter=1).fit(
        data.fit_paths, data.fit_labels)
    encoder = load_encoder(model, device)
    paths = data.predict_paths
    batch_size = IMAGE_BATCH_SIZE.get(encoder.device.type, 64)

    def predict():
        clear_feature_cache()
        return fitted.predict(paths)

    def raw_encoder():
        chunks = []
        for start in range(0, len(paths), batch_size):
            pixels = []
            for path in paths[start : start + batch_size]:
                with Image.open(path) as image:
                    pixels.append(encoder.preprocess(image.convert("RGB")))
            with torch.inference_mode(), encoder._autocast():
                batch = torch.stack(pixels).to(encoder.device)
                chunks.append(encoder.model.encode_image(batch).float().cpu())
        return torch.cat(chunks)

    seconds, _ = side_by_side({"predict": predict, "raw_encoder": raw_encoder}, repeats, device)
    medians_ = medians(seconds)
    return ratio_entry(
        paired_ratio(seconds["raw_encoder"], seconds["predict"]),
        "throughput ratio: predict images/s / raw encoder images/s",
        (">=", 0.9),
        seconds,
        model=model,
        n_images=len(paths),
        images_per_second={name: len(paths) / value for name, value in medians_.items()},
    )


def ratio_logistic(config, model, data, repeats, device):
    """Ratio 5: TaskRes against LogisticRegression on the same features: time and accuracy."""
    task = config.comparison
    X, y, X_test, y_test, base = feature_task(task, seed=2)

    def taskres():
        return TaskResHead(base, alpha=ALPHA, logit_scale=CLIP_LOGIT_SCALE,
                           learning_rate=task.learning_rate, max_iter=task.epochs,
                           batch_size=BATCH_SIZE, weight_decay=WEIGHT_DECAY, device=device,
                           random_state=0).fit(X, y)

    def logistic():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return LogisticRegression(max_iter=1000).fit(X, y)

    seconds, fitted = side_by_side({"taskres": taskres, "logistic": logistic}, repeats, device)
    unit_test = X_test / np.linalg.norm(X_test, axis=1, keepdims=True)
    unit_base = base / np.linalg.norm(base, axis=1, keepdims=True)
    accuracy = {
        "taskres": float(fitted["taskres"].score(X_test, y_test)),
        "logistic": float(fitted["logistic"].score(X_test, y_test)),
        "zero_shot": float(np.mean(np.argmax(unit_test @ unit_base.T, axis=1) == y_test)),
    }
    return ratio_entry(
        paired_ratio(seconds["logistic"], seconds["taskres"]),
        "speed-up: LogisticRegression seconds / TaskRes seconds (fit on features)",
        None,
        seconds,
        accuracy=accuracy,
        accuracy_ratio=accuracy["taskres"] / accuracy["logistic"],
        logistic_iterations=int(np.max(fitted["logistic"].n_iter_)),
        size={"n_classes": task.n_classes, "n_features": task.n_features,
              "shots": task.per_class, "n_test": len(y_test), "epochs": task.epochs},
    )


# ---------------------------------------------------------------- running and reporting


def ratio_fit_vs_encoding(config, model, data, repeats, device):
    """Ratio 6: one fit against one pass of decode + encode over its images, both cache cold."""
    estimator = classifier(config, model, data, device)
    encoder = load_encoder(model, device)

    def fit():
        clear_feature_cache()
        return clone(estimator).fit(data.fit_paths, data.fit_labels)

    def encode():
        clear_feature_cache()
        return image_features(encoder, data.fit_paths)

    seconds, _ = side_by_side({"fit": fit, "encode": encode}, repeats, device)
    return ratio_entry(
        paired_ratio(seconds["fit"], seconds["encode"]),
        "slow-down: fit seconds / seconds of one decode + encode pass over the same images",
        ("<=", 1.25),
        seconds,
        model=model,
        n_images=len(data.fit_paths),
        n_prompts=len(data.names) * len(data.templates),
        epochs=config.epochs,
    )


RATIO_FUNCTIONS = {
    "residual_training": ratio_residual_training,
    "fit_vs_official": ratio_fit,
    "grid_search_vs_fit": ratio_grid_search,
    "predict_vs_encoder": ratio_predict,
    "taskres_vs_logistic": ratio_logistic,
    "fit_vs_encoding": ratio_fit_vs_encoding,
}


def run_config(config, repeats, device, directory):
    """Run the breakdown of every model of ``config`` and the config's ratios."""
    log(f"[{config.name}] writing images")
    data = image_data(config, directory / config.name)
    rows = []
    if config.breakdown:
        for model in config.models:
            log(f"[{config.name}] breakdown of {model}")
            rows.append(breakdown(config, model, data, repeats, device))
    model = config.models[0]
    ratios = {}
    for key in config.ratios:
        log(f"[{config.name}] ratio {RATIO_TITLES[key]} ({model})")
        ratios[key] = RATIO_FUNCTIONS[key](config, model, data, repeats, device)
    return rows, ratios


def mark(entry):
    """PASS or MISS beside a ratio with a target."""
    if entry["target"] is None:
        return "(no target)"
    return f"target {entry['target']}: {'PASS' if entry['met'] else 'MISS'}"


def ratio_lines(name, ratios):
    """The human-readable lines of every measured ratio of one configuration."""
    lines = []
    for key, entry in ratios.items():
        first, *rest = RATIO_LINES[key](entry, entry["median_seconds"])
        lines += [f"[{name}] {RATIO_TITLES[key]}{first}", *rest]
    return lines


def _training_lines(training, times):
    size = training["size"]
    same = "yes" if training["same_residual"] else "NO"
    return [
        f", ours vs autograd + torch.optim.Adam (N={size['n_samples']}, "
        f"D={size['n_features']}, K={size['n_classes']}, batch {size['batch_size']}, "
        f"{size['epochs']} epochs = {size['steps']} steps): {training['ratio']:.2f}x faster "
        f"(ours {times['ours']:.2f} s, autograd {times['autograd']:.2f} s)  {mark(training)}",
        f"      same residual: {same} (max |ours - autograd| / max |autograd| = "
        f"{training['max_relative_difference']:.1e}, with sample weights "
        f"{training['weighted_max_relative_difference']:.1e}; tolerance "
        f"{training['tolerance']:.0e})",
    ]


def _fit_lines(fit, times):
    return [
        f", ours (encode once, then train) vs the official per-epoch re-encoding "
        f"({fit['model']}, {fit['n_images']} images, {fit['epochs_measured']} epochs): "
        f"{fit['ratio']:.1f}x faster (ours {times['ours']:.2f} s, official "
        f"{times['official']:.2f} s)  {mark(fit)}",
        f"      at {fit['recipe_epochs']} epochs: ours {times['ours_recipe_epochs']:.2f} s "
        f"(measured), official {fit['official_recipe_seconds_extrapolated']:.1f} s "
        f"(EXTRAPOLATED linearly from {fit['epochs_measured']} epochs): "
        f"{fit['ratio_recipe_extrapolated']:.0f}x faster",
    ]


def _grid_lines(grid, times):
    return [
        f", GridSearchCV over {len(GRID_ALPHAS)} alphas x {GRID_FOLDS} folds "
        f"({grid['n_fits']} fits with the refit) vs one fit ({grid['model']}, "
        f"{grid['n_images']} images, {grid['epochs']} epochs, cache cold): "
        f"{grid['ratio']:.2f}x the time (grid {times['grid_search']:.2f} s, one fit "
        f"{times['one_fit']:.2f} s)  {mark(grid)}",
    ]


def _predict_lines(predict, times):
    rates = predict["images_per_second"]
    return [
        f" throughput vs the raw encoder (preprocess + encode_image; {predict['model']}, "
        f"{predict['n_images']} images, cache cold): {predict['ratio']:.2f} (predict "
        f"{rates['predict']:.1f} img/s, raw {rates['raw_encoder']:.1f} img/s)  {mark(predict)}",
    ]


def _logistic_lines(logistic, times):
    size, accuracy = logistic["size"], logistic["accuracy"]
    return [
        f" on the same features (K={size['n_classes']}, D={size['n_features']}, "
        f"{size['shots']} shots, {size['n_test']} test): accuracy {accuracy['taskres']:.3f} "
        f"vs {accuracy['logistic']:.3f} (zero-shot {accuracy['zero_shot']:.3f}); fit "
        f"{times['taskres']:.2f} s vs {times['logistic']:.2f} s, time ratio "
        f"(logreg / TaskRes) {logistic['ratio']:.2f}  {mark(logistic)}",
    ]


def _encoding_lines(entry, times):
    return [
        f", one fit vs one decode + encode pass over its images ({entry['model']}, "
        f"{entry['n_images']} images, {entry['n_prompts']} prompts, {entry['epochs']} epochs, "
        f"cache cold): {entry['ratio']:.2f}x the time (fit {times['fit']:.2f} s, encode "
        f"{times['encode']:.2f} s)  {mark(entry)}",
    ]


RATIO_LINES = {
    "residual_training": _training_lines,
    "fit_vs_official": _fit_lines,
    "grid_search_vs_fit": _grid_lines,
    "predict_vs_encoder": _predict_lines,
    "taskres_vs_logistic": _logistic_lines,
    "fit_vs_encoding": _encoding_lines,
}


def table_lines(rows):
    """The breakdown table: one row per configuration and model."""
    header = (f"{'config':<7}{'model':<22}{'device':<7}{'load':>8}{'text':>18}{'decode':>19}"
              f"{'encode':>19}{'train':>17}{'predict':>19}")
    lines = [header, "-" * len(header)]
    for row in rows:
        s = row["median_seconds"]

        def rate(count, seconds):
            return f"{seconds:7.2f} ({count / seconds:6.0f}/s)"

        lines.append(
            f"{row['config']:<7}{row['model']:<22}{row['device']:<7}{s['load']:8.2f}"
            f"{rate(row['n_prompts'], s['text']):>18}{rate(row['n_images'], s['decode']):>19}"
            f"{rate(row['n_images'], s['encode']):>19}"
            f"{s['train']:8.2f} ({row['epochs']:>3} ep)"
            f"{rate(row['n_predict'], s['predict']):>19}"
        )
    return lines


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


def parse_args(argv=None):
    """The command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", choices=(*CONFIGS, "all"), default="all",
                        help="tiny: smoke run (seconds); mid: CPU-sized; grid-cpu: ratio 3 "
                        "with ViT-B-32 on the CPU (minutes); real: RN50, ViT-B-32 and "
                        "ViT-L-14 at real sizes (CUDA only); all: tiny and mid, plus real on "
                        "CUDA (default)")
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu",
                        help="where to encode and train (default: cpu)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="interleaved repetitions of every measurement (default: 3)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's own choice)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available on this machine")
    if args.config != "all" and CONFIGS[args.config].needs_cuda and args.device != "cuda":
        parser.error(f"--config {args.config} runs real-size models and needs --device cuda")
    return args


def main(argv=None):
    """Run the chosen configurations, print the table and the ratios, write the JSON."""
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    register_tiny_clip()
    clip_adapter.register_model_config(MID_CLIP_NAME, MID_CLIP_CONFIG)
    if args.config == "all":
        names = [name for name, config in CONFIGS.items()
                 if config.in_all and (args.device == "cuda" or not config.needs_cuda)]
    else:
        names = [args.config]

    environment = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "device": args.device,
        "device_name": device_name(args.device),
        "torch": torch.__version__,
        "sklearn_taskres": sklearn_taskres.__version__,
        "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
        "config": args.config,
        "repeats": args.repeats,
        "load_average_before": os.getloadavg(),
    }
    rows, ratios = [], {}
    with tempfile.TemporaryDirectory(prefix="taskres_bench_") as directory:
        for name in names:
            config_rows, ratios[name] = run_config(CONFIGS[name], args.repeats, args.device,
                                                   Path(directory))
            rows.extend(config_rows)
    environment["load_average_after"] = os.getloadavg()

    print(f"sklearn-taskres benchmarks, {environment['date']}")
    print(f"device: {args.device} ({environment['device_name']}), torch {torch.__version__}, "
          f"{environment['torch_threads']} threads, repeats {args.repeats}, load average "
          f"{environment['load_average_before'][0]:.1f} before, "
          f"{environment['load_average_after'][0]:.1f} after")
    print("Random-initialised models (same compute as real weights); medians, in seconds "
          "(rates per second in brackets).")
    if rows:
        print("decode = read + decode + preprocess; predict = decode + encode + head, cache "
              "cold.")
        print()
        for line in table_lines(rows):
            print(line)
    for name in names:
        for note in CONFIGS[name].notes:
            print(f"  {name}: {note}")
    print()
    print("Ratios (each measured side by side, repetitions interleaved; median of the "
          "per-repetition ratios):")
    for name in names:
        for line in ratio_lines(name, ratios[name]):
            print(line)

    if args.json:
        results = {
            **environment,
            "configs": {name: _jsonable(asdict(CONFIGS[name])) for name in names},
            "breakdown": _jsonable(rows),
            "ratios": _jsonable(ratios),
        }
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nwrote {args.json}")


def _jsonable(value):
    """Plain JSON values: numpy scalars and tuples converted, non-finite floats as null."""
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


if __name__ == "__main__":
    main()
