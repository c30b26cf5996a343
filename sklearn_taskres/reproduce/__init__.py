"""Reproduce the few-shot benchmark of TaskRes: zero-shot CLIP, linear probe and TaskRes.

Run ``python -m sklearn_taskres.reproduce --root DATA`` on a dataset root laid
out as CoOp's DATASETS.md describes. For every dataset, number of shots and
seed it draws the few-shot training set as CoOp does (by default the very
images CoOp's loaders draw for that seed, see :func:`plan_draws`), encodes the
images once (features go to the feature store in ``--cache-dir``, by default
``OUTPUT/features``, so later runs encode nothing; it is the store of
``TaskResClassifier(cache_dir=...)``, and the two share what they encoded),
and evaluates on the test split:

- zero-shot CLIP: the text base classifier alone, with the class names as
  CoOp's zero-shot CLIP writes them (underscores replaced by spaces);
- a linear probe: scikit-learn's ``LogisticRegression`` on the same features,
  its ``C`` chosen on a few-shot validation set;
- TaskRes: :class:`~sklearn_taskres.TaskResHead` with the paper's settings,
  its base built from the class names as the official code writes them (as
  the dataset holds them, see :func:`prompt_classnames`).

ImageNetV2, -Sketch, -A and -R are evaluated with the classifiers trained on
ImageNet (same shots and seed). The script prints one table of mean accuracy
over seeds beside the published RN50 numbers, and writes every run to
``results.csv`` and ``results.json`` in the output folder; ``results.json``
also lists the image paths of every draw, in the order drawn.

``--protocol base2new`` runs CoCoOp's base-to-new generalization instead: the
classes are split in halves as CoOp's ``subsample_classes`` does, TaskRes
learns the base half and is tested on both (see
:meth:`Benchmark.run_base_to_new`); the table gives base, new and harmonic
mean accuracy beside CoCoOp's published means.

With ``--augment-views V`` TaskRes trains on ``V`` augmented views of every
training image (the official augmentation: random resized crop with scale
0.08-1, bicubic, and horizontal flip), one view per image drawn at random in
every epoch. The views are encoded once and stored with the other features,
keyed by the view seed and each view's number. The view seed is fixed
(:data:`VIEW_SEED`) rather than taken from the run's seed: every (shots, seed)
then trains on the same views of an image, so an image drawn by several runs is
augmented and encoded once. Only images that some draw trains on get views.
The linear probe and zero-shot CLIP stay on the evaluation crop, and every
method is evaluated on the evaluation crop.

Costs
-----
Each image is decoded and encoded once, then read from the feature store, so a
second run encodes nothing: the test split of every dataset (from about 1,700
images for DTD to 30,300 for Food-101 and 50,000 for ImageNet, plus the test
sets of the ImageNet variants) and the drawn training and validation images
(at most ``shots x n_classes`` training images per draw). ``--augment-views V``
adds ``V`` encodings of every drawn training image, stored at ``V x D x 4``
bytes per image (4 KiB per view for RN50's 1,024-d features), on disk and in
memory. Each (dataset, shots, seed) fits the linear probe up to 13 times (7
values of ``C``, then up to 2 in each of 3 refinements), L-BFGS on the CPU for
up to 1,000 iterations: at ImageNet's 16 shots x 1,000 classes, the slowest
step. TaskRes trains on cached features only, about ``epochs x n_train / 256``
minibatch steps (at least one per epoch), with or without views.

Differences from the paper
--------------------------
The official trainer re-encodes every training image in every epoch through a
new random resized crop and flip, so over 100-200 epochs the residual sees as
many views of each image. Without ``--augment-views``, TaskRes here trains on
the cached evaluation crop: one centre crop per image, the same in every
epoch. It misses that augmentation's regularisation, so its accuracy may
differ from the paper's, in either direction. ``--augment-views V`` narrows
the gap: the views come from the official augmentation and every epoch draws
one of the ``V`` views of each image; ``V`` equal to the number of epochs
comes closest. The views are still fixed in advance and shared by all seeds,
where the official trainer draws new crops in every epoch of every seed. The
linear probe also differs from CoOp's in how it refines ``C`` (see
:func:`fit_linear_probe`), and ImageNet's validation images come from its
unused training images (see :func:`plan_draws`).

Precision differs too: the official code (``PREC: fp16``) encodes the prompts
with CLIP's fp16 weights, then casts the model to fp32 and encodes the
training images in fp32 with TF32 matrix products allowed; here the text and
the images are encoded in fp32 (``precision="fp32"``), so the base and the
features differ from the official ones by rounding only.
"""

import argparse
import csv
import json
import os
import random
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from .. import _argtypes
from .._clip import load_encoder, register_model_config
from .._features import augmented_image_features, image_features
from .._head import TaskResHead
from .._templates import resolve_templates, text_base
from .._training import resolve_device
from ..fewshot import sample_few_shot
from ._datasets import (
    ALL_DATASETS,
    DISTRIBUTION_SHIFT_DATASETS,
    FEW_SHOT_DATASETS,
    DatasetLayoutError,
    base_and_new_classes,
    load_dataset,
)

METHOD_TITLES = {"zero-shot": "zero-shot", "linear-probe": "LP", "taskres": "TaskRes"}

#: Published 11-dataset mean accuracy (%) with CLIP RN50 (OpenAI weights), by shots.
PUBLISHED_RN50_MEAN = {
    "zero-shot CLIP": {0: 58.77},
    "TaskRes": {1: 64.55, 2: 66.89, 4: 70.04, 8: 73.08, 16: 75.83},
    "Tip-Adapter-F": {1: 64.60, 2: 66.65, 4: 69.67, 8: 72.45, 16: 75.83},
}

#: Base-to-new generalization, 11-dataset means (%) of CoCoOp's Table 1 (CLIP
#: ViT-B/16, 16 shots): (base, new, harmonic mean). The per-dataset rows of
#: that table are not given here.
PUBLISHED_BASE_TO_NEW_MEAN = {
    "CLIP": (69.34, 74.22, 71.70),
    "CoOp": (82.69, 63.22, 71.66),
    "CoCoOp": (80.47, 71.69, 75.83),
}

#: CoOp draws min(shots, 4) validation images per class.
MAX_VALIDATION_SHOTS = 4
#: Coarse grid of the linear probe's inverse regularisation C, as CoOp's linear probe.
LINEAR_PROBE_GRID = (1e6, 1e4, 1e2, 1.0, 1e-2, 1e-4, 1e-6)
#: Refinements around the best C: +-1, +-0.5 and +-0.25 decades.
LINEAR_PROBE_REFINE_STEPS = 3
LINEAR_PROBE_MAX_ITER = 1000
ENCODE_CHUNK = 1024
#: Seed of the augmented views of every run, whatever its seed: each image is
#: augmented (and encoded) once and its views are shared by every (shots, seed).
VIEW_SEED = 0

CSV_FIELDS = (
    "dataset", "method", "shots", "seed", "accuracy", "n_train", "n_test", "trained_on",
    "C", "epochs", "alpha", "learning_rate", "augment_views", "seconds",
    "base_accuracy", "new_accuracy",
)


def taskres_settings(dataset, shots, epochs=None):
    """The paper's TaskRes settings for ``dataset`` at ``shots`` shots.

    Parameters
    ----------
    dataset : str
        A dataset key, e.g. ``"imagenet"``.
    shots : int
        Training images per class.
    epochs : int, default=None
        Overrides the paper's number of epochs (100 up to 4 shots, else 200).

    Returns
    -------
    settings : dict
        Keyword arguments of :class:`~sklearn_taskres.TaskResHead`.

    Examples
    --------
    >>> from sklearn_taskres.reproduce import taskres_settings
    >>> settings = taskres_settings("imagenet", 16)
    >>> settings["learning_rate"], settings["max_iter"], settings["alpha"]
    (0.0002, 200, 0.5)
    >>> taskres_settings("oxford_flowers", 2)["alpha"], taskres_settings("dtd", 4)["max_iter"]
    (1.0, 100)
    """
    return {
        "alpha": 1.0 if dataset == "oxford_flowers" else 0.5,
        "learning_rate": 2e-4 if dataset == "imagenet" else 2e-3,
        "max_iter": epochs if epochs is not None else (100 if shots <= 4 else 200),
        "batch_size": 256,
        "weight_decay": 5e-4,
    }


def prompt_classnames(classnames, method, naming="official"):
    """The class names as the prompts of ``method`` write them.

    The official TaskRes code fills its templates with the class names as
    the dataset holds them (``trainers/taskres.py``; Oxford Pets reads "a
    photo of a american_bulldog, a type of pet."), for its base and for the
    enhanced base of TaskRes*; CoOp's zero-shot CLIP replaces underscores by
    spaces. ``naming="official"`` follows both; ``naming="spaces"`` replaces
    underscores by spaces for every method.

    Parameters
    ----------
    classnames : list of str
        The dataset's class names.
    method : {"zero-shot", "taskres"}
        The row the prompts are for; TaskRes* names its classes as TaskRes.
    naming : {"official", "spaces"}, default="official"

    Returns
    -------
    names : list of str

    Examples
    --------
    >>> from sklearn_taskres.reproduce import prompt_classnames
    >>> prompt_classnames(["american_bulldog"], "taskres")
    ['american_bulldog']
    >>> prompt_classnames(["american_bulldog"], "zero-shot")
    ['american bulldog']
    >>> prompt_classnames(["american_bulldog"], "taskres", naming="spaces")
    ['american bulldog']
    """
    if naming == "spaces" or method == "zero-shot":
        return [name.replace("_", " ") for name in classnames]
    return list(classnames)


# ---------------------------------------------------------------- few-shot draws


def plan_draws(dataset, shots_list, seeds, method="dassl"):
    """Few-shot training and validation draws of every (shots, seed).

    Training images come from the train split; validation images (at most 4
    per class, as CoOp) from the val split. ImageNet has no val split in
    CoOp, whose linear probe then draws them from the test set; we draw them
    from the training images not selected for training instead.

    With ``method="dassl"`` (the default) the draws are those of CoOp's
    dataset loaders, image for image: one ``random.Random(seed)`` stream, as
    Dassl seeds Python's ``random`` with the run's seed, draws the training
    set and then, from where it stopped, the validation set (ImageNet's
    loader draws only the training set, so its validation draw, which is
    ours, comes after and changes nothing before it). The positions come in
    Dassl's order. With ``method="numpy"`` both draws come from one
    ``numpy.random.RandomState(seed)`` and are sorted.

    Returns ``{(shots, seed): (train_positions, val_split, val_positions)}``.
    """
    y_train = dataset.splits["train"].labels
    draws = {}
    for shots in shots_list:
        for seed in seeds:
            rng = random.Random(seed) if method == "dassl" else np.random.RandomState(seed)

            def draw(labels, n_shots, rng=rng):
                return sample_few_shot(labels, n_shots, method=method, random_state=rng)

            train = draw(y_train, shots)
            val_shots = min(shots, MAX_VALIDATION_SHOTS)
            if "val" in dataset.splits:
                draws[shots, seed] = (train, "val", draw(dataset.splits["val"].labels, val_shots))
            else:
                rest = np.setdiff1d(np.arange(len(y_train)), train)
                draws[shots, seed] = (train, "train", rest[draw(y_train[rest], val_shots)])
    return draws


def draw_record(dataset, shots, seed, method, draw):
    """The image paths of one draw, for ``results.json``, in the order drawn.

    The paths are relative to the dataset's folder (CoOp's saved
    ``split_fewshot/shot_K-seed_S.pkl`` holds the same images, by absolute
    path, in the same order).
    """
    train, val_split, val = draw
    train_paths, val_paths = dataset.splits["train"].paths, dataset.splits[val_split].paths
    return {
        "dataset": dataset.key, "shots": shots, "seed": seed, "draws": method,
        "train": [train_paths[p] for p in train.tolist()],
        "val_split": val_split,
        "val": [val_paths[p] for p in val.tolist()],
    }


# ---------------------------------------------------------------- features


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
                                                 cache_dir=cache_dir)
                chunks.append(views.transpose(1, 0, 2))
            else:
                chunks.append(image_features(encoder, chunk, cache_dir=cache_dir))
        except ValueError as exc:  # an undecodable image, named in the message
            raise DatasetLayoutError(f"{dataset.key} {split} split: {exc}") from exc
    encoded = encoder.n_encoded - before
    if encoded:
        total = len(paths) * max(n_views, 1)
        what = f"augmented views ({n_views} per image)" if n_views else "images"
        rest = ", the rest read from the feature store" if encoded < total else ""
        log(f"[{dataset.key}] {split}: encoded {encoded} of {total} {what}{rest}")
    return EncodedSplit(np.asarray(positions), np.concatenate(chunks).astype(np.float32))


# ---------------------------------------------------------------- methods


def _normalize(array):
    return array / np.maximum(np.linalg.norm(array, axis=1, keepdims=True), 1e-12)


def zero_shot_predict(features, base, classes):
    """Labels predicted by the text base alone (cosine similarity)."""
    return classes[np.argmax(_normalize(features) @ _normalize(base).T, axis=1)]


def fit_linear_probe(X_train, y_train, X_val, y_val):
    """Logistic regression with ``C`` chosen on the few-shot validation set.

    As CoOp's linear probe (which follows CLIP's): L-BFGS, L2 penalty, at
    most 1,000 iterations, raw image features, and ``C`` searched over
    1e6, 1e4, ..., 1e-6 on the validation images. CoOp then refines ``C`` by
    a bisection in log space; we refine around the best value by +-1, +-0.5
    and +-0.25 decades within the grid's range, keeping a candidate only when
    it is better. Few-shot validation accuracy ties often, so ties go to the
    lower validation log-loss.

    Returns
    -------
    classifier : LogisticRegression
    C : float
    """
    fitted = {}

    def evaluate(log_c):
        key = round(float(log_c), 6)
        if key not in fitted:
            with warnings.catch_warnings():
                # Weakly regularised fits stop at max_iter, as in CoOp's search.
                warnings.simplefilter("ignore", ConvergenceWarning)
                model = LogisticRegression(C=10.0**key, max_iter=LINEAR_PROBE_MAX_ITER)
                model.fit(X_train, y_train)
            accuracy = np.mean(model.predict(X_val) == y_val)
            loss = log_loss(y_val, model.predict_proba(X_val), labels=model.classes_)
            fitted[key] = ((accuracy, -loss), model)
        return fitted[key][0]

    grid = np.log10(LINEAR_PROBE_GRID)
    low, high = grid.min(), grid.max()
    best = max(grid, key=evaluate)
    step = 1.0
    for _ in range(LINEAR_PROBE_REFINE_STEPS):
        candidates = [c for c in (best - step, best + step) if low <= c <= high]
        best = max([best, *candidates], key=evaluate)
        step /= 2
    key = round(float(best), 6)
    return fitted[key][1], 10.0**key


def linear_probe_predict(model, features, classes):
    """Labels among ``classes`` (a subset of ``model.classes_``) predicted by ``model``."""
    columns = np.searchsorted(model.classes_, classes)
    scores = model.predict_proba(features)[:, columns]
    return np.asarray(classes)[np.argmax(scores, axis=1)]


def head_for_classes(head, classes):
    """``head`` predicting among ``classes`` only (a subset of its ``classes_``)."""
    if set(np.asarray(classes).tolist()) == set(head.classes_.tolist()):
        return head
    return head.restrict_classes(classes)


def _accuracy(predicted, y):
    return float(100.0 * np.mean(np.asarray(predicted) == np.asarray(y)))


def harmonic_mean(base, new):
    """The harmonic mean of base and new accuracy, as CoCoOp reports it.

    Examples
    --------
    >>> from sklearn_taskres.reproduce import harmonic_mean
    >>> round(harmonic_mean(80.47, 71.69), 2)
    75.83
    """
    return 0.0 if base + new == 0 else 2.0 * base * new / (base + new)


# ---------------------------------------------------------------- the benchmark


class Benchmark:
    """Runs the methods on the datasets and collects one record per run.

    ``encoder`` is a :class:`CountingEncoder`; features go through the
    feature store in ``args.cache_dir``, and TaskRes trains on
    ``args.augment_views`` augmented views of each image when that is not 0.
    """

    def __init__(self, args, encoder, device, log):
        self.args = args
        self.encoder = encoder
        self.device = device
        self.log = log
        self.records = []
        self.draws = []
        self.imagenet_models = {}
        self._bases = {}

    def _record(self, dataset, method, shots, seed, accuracy, **extra):
        record = {"dataset": dataset, "method": method, "shots": shots, "seed": seed,
                  "accuracy": round(accuracy, 4)}
        record.update(extra)
        self.records.append(record)

    def _base(self, dataset, method):
        names = prompt_classnames(dataset.classnames, method, self.args.class_names)
        key = (dataset.key, tuple(names))
        if key not in self._bases:
            self._bases[key] = text_base(self.encoder, names, resolve_templates(dataset.key),
                                         cache_dir=self.args.cache_dir)
        return self._bases[key]

    def _encode(self, dataset, split, positions, n_views=0):
        return encode_split(self.encoder, dataset, split, positions, self.args.cache_dir,
                            self.log, n_views)

    def _plan_draws(self, dataset):
        args = self.args
        draws = plan_draws(dataset, args.shots, args.seeds, args.draws)
        self.draws += [draw_record(dataset, shots, seed, args.draws, draw)
                       for (shots, seed), draw in draws.items()]
        return draws

    def _fit_taskres(self, base, classes, settings, seed, X_train, y_train, views=None):
        """A TaskResHead fitted on features, or on ``views`` (n_samples, n_views, D)."""
        head = TaskResHead(base, classes=classes, logit_scale=self.encoder.logit_scale,
                           device=str(self.device), random_state=seed, **settings)
        if views is None:
            return head.fit(X_train, y_train)
        head._validate_params()
        return head._fit_views(np.ascontiguousarray(views.transpose(1, 0, 2)), y_train)

    def run_few_shot(self, dataset):
        args = self.args
        draws = self._plan_draws(dataset)
        train_needed = [train for train, _, _ in draws.values()]
        train_needed += [val for _, split, val in draws.values() if split == "train"]
        encoded = {
            "train": self._encode(dataset, "train", np.unique(np.concatenate(train_needed)))
        }
        val_needed = [val for _, split, val in draws.values() if split == "val"]
        if val_needed:
            encoded["val"] = self._encode(dataset, "val", np.unique(np.concatenate(val_needed)))
        if args.augment_views:
            drawn = np.unique(np.concatenate([train for train, _, _ in draws.values()]))
            train_views = self._encode(dataset, "train", drawn, args.augment_views)
        test = dataset.splits["test"]
        X_test = self._encode(dataset, "test", np.arange(len(test))).features
        zero_shot_base = self._base(dataset, "zero-shot")
        accuracy = _accuracy(
            zero_shot_predict(X_test, zero_shot_base, dataset.classes), test.labels
        )
        self._record(dataset.key, "zero-shot", 0, None, accuracy, n_train=0,
                     n_test=len(test), trained_on=dataset.key)
        self.log(f"[{dataset.key}] zero-shot {accuracy:.2f}")

        keep_models = dataset.key == "imagenet" and any(
            key in DISTRIBUTION_SHIFT_DATASETS for key in args.datasets
        )
        for (shots, seed), (train, val_split, val) in draws.items():
            X_train, y_train = encoded["train"].rows(train), dataset.splits["train"].labels[train]
            X_val, y_val = encoded[val_split].rows(val), dataset.splits[val_split].labels[val]
            common = {"n_train": len(train), "n_test": len(test), "trained_on": dataset.key}

            start = time.perf_counter()
            probe, C = fit_linear_probe(X_train, y_train, X_val, y_val)
            lp = _accuracy(linear_probe_predict(probe, X_test, dataset.classes), test.labels)
            self._record(dataset.key, "linear-probe", shots, seed, lp, C=C,
                         seconds=round(time.perf_counter() - start, 3), **common)

            start = time.perf_counter()
            settings = taskres_settings(dataset.key, shots, args.epochs)
            views = train_views.rows(train) if args.augment_views else None
            head = self._fit_taskres(self._base(dataset, "taskres"), dataset.classes, settings,
                                     seed, X_train, y_train, views)
            tr = _accuracy(head.predict(X_test), test.labels)
            self._record(dataset.key, "taskres", shots, seed, tr, epochs=settings["max_iter"],
                         alpha=settings["alpha"], learning_rate=settings["learning_rate"],
                         augment_views=args.augment_views,
                         seconds=round(time.perf_counter() - start, 3), **common)
            self.log(f"[{dataset.key}] {shots}-shot seed {seed}: linear probe {lp:.2f} "
                     f"(C={C:.3g}), TaskRes {tr:.2f}")
            if keep_models:
                self.imagenet_models[shots, seed] = (probe, head, settings, len(train))

    def run_base_to_new(self, dataset):
        """CoCoOp's base-to-new protocol: learn the base half of the classes, test both halves.

        The few-shot draws are those of every class (CoOp subsamples the
        classes after drawing); TaskRes trains on the drawn images of the base
        classes and predicts among the base classes on their test images. On
        the new classes it has learned nothing: their rows are the text base,
        so its new accuracy is that of its base alone among the new classes.
        Zero-shot CLIP is measured on both halves the same way.
        """
        args = self.args
        draws = self._plan_draws(dataset)
        y_all = dataset.splits["train"].labels
        base_classes, new_classes = base_and_new_classes(y_all)
        is_base = np.isin(y_all, base_classes)
        trains = {key: train[is_base[train]] for key, (train, _, _) in draws.items()}
        needed = np.unique(np.concatenate(list(trains.values())))
        encoded = self._encode(dataset, "train", needed)
        if args.augment_views:
            train_views = self._encode(dataset, "train", needed, args.augment_views)
        test = dataset.splits["test"]
        X_test = self._encode(dataset, "test", np.arange(len(test))).features
        halves = {}
        for half, classes in (("base", base_classes), ("new", new_classes)):
            in_half = np.isin(test.labels, classes)
            rows = np.searchsorted(dataset.classes, classes)
            halves[half] = (classes, rows, X_test[in_half], test.labels[in_half])

        def text_accuracy(half, text_base_):
            classes, rows, X, y = halves[half]
            return _accuracy(zero_shot_predict(X, text_base_[rows], classes), y)

        zero_shot_base = self._base(dataset, "zero-shot")
        base_accuracy, new_accuracy = (text_accuracy(h, zero_shot_base) for h in halves)
        self._record(dataset.key, "zero-shot", 0, None,
                     harmonic_mean(base_accuracy, new_accuracy),
                     base_accuracy=round(base_accuracy, 4), new_accuracy=round(new_accuracy, 4),
                     n_train=0, n_test=len(test), trained_on=dataset.key)
        self.log(f"[{dataset.key}] zero-shot base {base_accuracy:.2f}, new {new_accuracy:.2f}")

        taskres_base = self._base(dataset, "taskres")
        new_accuracy = text_accuracy("new", taskres_base)
        classes, rows, X_base, y_base = halves["base"]
        for (shots, seed), train in trains.items():
            start = time.perf_counter()
            settings = taskres_settings(dataset.key, shots, args.epochs)
            views = train_views.rows(train) if args.augment_views else None
            head = self._fit_taskres(taskres_base[rows], classes, settings, seed,
                                     encoded.rows(train), y_all[train], views)
            base_accuracy = _accuracy(head.predict(X_base), y_base)
            self._record(dataset.key, "taskres", shots, seed,
                         harmonic_mean(base_accuracy, new_accuracy),
                         base_accuracy=round(base_accuracy, 4),
                         new_accuracy=round(new_accuracy, 4), n_train=len(train),
                         n_test=len(test), trained_on=dataset.key, epochs=settings["max_iter"],
                         alpha=settings["alpha"], learning_rate=settings["learning_rate"],
                         augment_views=args.augment_views,
                         seconds=round(time.perf_counter() - start, 3))
            self.log(f"[{dataset.key}] {shots}-shot seed {seed}: TaskRes base "
                     f"{base_accuracy:.2f}, new {new_accuracy:.2f}")

    def run_distribution_shift(self, dataset, imagenet):
        unknown = sorted(set(dataset.classes.tolist()) - set(imagenet.classes.tolist()))
        if unknown:
            raise DatasetLayoutError(
                f"expected the classes of {dataset.key} to be ImageNet classes; got "
                f"{', '.join(unknown[:5])}"
            )
        test = dataset.splits["test"]
        X_test = self._encode(dataset, "test", np.arange(len(test))).features
        accuracy = _accuracy(
            zero_shot_predict(X_test, self._base(dataset, "zero-shot"), dataset.classes),
            test.labels,
        )
        self._record(dataset.key, "zero-shot", 0, None, accuracy, n_train=0,
                     n_test=len(test), trained_on=dataset.key)
        self.log(f"[{dataset.key}] zero-shot {accuracy:.2f}")
        for (shots, seed), (probe, head, settings, n_train) in self.imagenet_models.items():
            common = {"n_train": n_train, "n_test": len(test), "trained_on": "imagenet"}
            lp = _accuracy(linear_probe_predict(probe, X_test, dataset.classes), test.labels)
            self._record(dataset.key, "linear-probe", shots, seed, lp, **common)
            restricted = head_for_classes(head, dataset.classes)
            tr = _accuracy(restricted.predict(X_test), test.labels)
            self._record(dataset.key, "taskres", shots, seed, tr, epochs=settings["max_iter"],
                         alpha=settings["alpha"], learning_rate=settings["learning_rate"],
                         augment_views=self.args.augment_views, **common)
            self.log(f"[{dataset.key}] {shots}-shot seed {seed} (trained on imagenet): "
                     f"linear probe {lp:.2f}, TaskRes {tr:.2f}")


# ---------------------------------------------------------------- reporting


def write_results(directory, records, settings, draws=()):
    """Write ``results.csv`` and ``results.json`` (each atomically) to ``directory``.

    ``results.json`` holds the settings, every run, and the image paths of
    every few-shot draw (see :func:`draw_record`).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)

    def replace_atomically(name, write):
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=name, suffix=".tmp")
        try:
            with os.fdopen(handle, "w", newline="", encoding="utf-8") as file:
                write(file)
            os.replace(temporary, directory / name)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def write_csv(file):
        writer = csv.DictWriter(file, fieldnames=CSV_FIELDS, restval="")
        writer.writeheader()
        for record in records:
            writer.writerow({k: "" if v is None else v for k, v in record.items()})

    def write_json(file):
        json.dump({"settings": settings, "runs": records, "draws": list(draws)}, file,
                  indent=1)
        file.write("\n")

    replace_atomically("results.csv", write_csv)
    replace_atomically("results.json", write_json)


def _cell(values):
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{np.mean(values):.2f}±{np.std(values):.2f}"


def format_table(records, shots_list, datasets):
    """The results table: mean (± std over seeds) accuracy per dataset, method and shots.

    A mean row over the eleven few-shot datasets is added when all of them
    ran, and the published RN50 means follow, in the columns of the method
    (or, for Tip-Adapter-F, in the TaskRes columns).
    """
    columns = [("zero-shot", 0)] + [
        (method, shots) for method in ("linear-probe", "taskres") for shots in shots_list
    ]
    titles = ["zero-shot"] + [
        f"{METHOD_TITLES[method]} {shots}-shot" for method, shots in columns[1:]
    ]
    accuracies = {}
    for record in records:
        key = (record["dataset"], record["method"], record["shots"])
        accuracies.setdefault(key, {})[record["seed"]] = record["accuracy"]

    rows = []
    for dataset in datasets:
        cells = [
            _cell(list(accuracies.get((dataset, method, shots), {}).values()))
            for method, shots in columns
        ]
        rows.append([dataset] + cells)

    if all(dataset in datasets for dataset in FEW_SHOT_DATASETS):
        cells = []
        for method, shots in columns:
            per_dataset = [accuracies.get((d, method, shots), {}) for d in FEW_SHOT_DATASETS]
            seeds = set.intersection(*(set(runs) for runs in per_dataset))
            cells.append(_cell([
                float(np.mean([runs[seed] for runs in per_dataset])) for seed in sorted(
                    seeds, key=lambda s: (s is not None, s)
                )
            ]))
        rows.append([f"mean of {len(FEW_SHOT_DATASETS)}"] + cells)

    published = []
    for name, by_shots in PUBLISHED_RN50_MEAN.items():
        cells = []
        for method, shots in columns:
            if name == "zero-shot CLIP" and method == "zero-shot":
                cells.append(f"{by_shots[0]:.2f}")
            elif name != "zero-shot CLIP" and method == "taskres" and shots in by_shots:
                cells.append(f"{by_shots[shots]:.2f}")
            else:
                cells.append("")
        published.append([f"paper RN50: {name}"] + cells)

    header = ["dataset"] + titles
    line, rule = _table_layout([header] + rows + published)
    out = [line(header), rule] + [line(row) for row in rows] + [rule]
    out += [line(row) for row in published]
    out.append(
        "Accuracy (%) on the test split, mean ± std (ddof=0) over seeds. The paper rows are "
        "11-dataset means\nwith CLIP RN50 (OpenAI weights); Tip-Adapter-F is shown in the "
        "TaskRes columns."
    )
    return "\n".join(out)


def _table_layout(rows):
    """How to print ``rows`` (lists of str) as a table: a line per row, and the rule.

    Columns are as wide as their widest cell; the first is left-aligned, the
    others right-aligned.
    """
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def line(row):
        return "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()

    return line, "-" * len(line(["-" * width for width in widths]))


def format_base_to_new_table(records, shots_list, datasets):
    """The base-to-new table: base, new and harmonic-mean accuracy per dataset and method.

    Base and new are means over seeds; H is the harmonic mean of those two
    means, and the mean row over the eleven datasets (when all ran) averages
    base and new over the datasets and takes H of the averages, as CoCoOp's
    tables do. CoCoOp's published 11-dataset means follow.
    """
    columns = [("zero-shot", 0)] + [("taskres", shots) for shots in shots_list]
    header = ["dataset"]
    for method, shots in columns:
        title = "zero-shot" if method == "zero-shot" else f"TaskRes {shots}-shot"
        header += [f"{title} base", "new", "H"]
    pairs = {}
    for record in records:
        key = (record["dataset"], record["method"], record["shots"])
        pairs.setdefault(key, []).append((record["base_accuracy"], record["new_accuracy"]))

    def cells(means):
        if means is None:
            return ["-", "-", "-"]
        base, new = means
        return [f"{base:.2f}", f"{new:.2f}", f"{harmonic_mean(base, new):.2f}"]

    def seed_means(dataset, method, shots):
        runs = pairs.get((dataset, method, shots))
        return None if not runs else tuple(np.mean(runs, axis=0).tolist())

    rows = []
    for dataset in datasets:
        row = [dataset]
        for method, shots in columns:
            row += cells(seed_means(dataset, method, shots))
        rows.append(row)
    if all(dataset in datasets for dataset in FEW_SHOT_DATASETS):
        row = [f"mean of {len(FEW_SHOT_DATASETS)}"]
        for method, shots in columns:
            means = [seed_means(d, method, shots) for d in FEW_SHOT_DATASETS]
            row += cells(None if None in means else tuple(np.mean(means, axis=0).tolist()))
        rows.append(row)

    line, rule = _table_layout([header] + rows)
    out = [line(header), rule] + [line(row) for row in rows] + [rule]
    out += [
        f"paper (CoCoOp, ViT-B/16, 16 shots, mean of 11): {name} base {base:.2f}, new "
        f"{new:.2f}, H {h:.2f}"
        for name, (base, new, h) in PUBLISHED_BASE_TO_NEW_MEAN.items()
    ]
    out.append(
        "Accuracy (%) on the test split: base on the base classes' images among the base "
        "classes, new on the\nnew classes' images among the new classes (TaskRes: its text "
        "base, untouched by training), H their\nharmonic mean; base and new are means over "
        "seeds. TaskRes has no published base-to-new numbers."
    )
    return "\n".join(out)


# ---------------------------------------------------------------- command line


def build_parser():
    """The argument parser of ``python -m sklearn_taskres.reproduce``."""
    parser = argparse.ArgumentParser(
        prog="python -m sklearn_taskres.reproduce",
        description="Reproduce TaskRes's few-shot benchmark (zero-shot CLIP, linear probe, "
        "TaskRes) on datasets laid out as CoOp's DATASETS.md describes.",
    )
    parser.add_argument("--root", required=True, type=Path,
                        help="dataset root holding eurosat/, dtd/, imagenet/, ...")
    parser.add_argument("--datasets", nargs="+", choices=ALL_DATASETS,
                        default=list(FEW_SHOT_DATASETS), metavar="DATASET",
                        help=f"datasets to run (default: the eleven few-shot datasets); "
                        f"any of {', '.join(ALL_DATASETS)}")
    parser.add_argument("--model", default="RN50",
                        help="open_clip model name, hf-hub:org/repo or local-dir:/path "
                        "(default RN50)")
    parser.add_argument("--pretrained", default="auto",
                        help="open_clip pretrained tag or checkpoint file; 'none' for random "
                        "weights; 'auto': the weights of a hf-hub: or local-dir: model, else "
                        "openai (default auto)")
    parser.add_argument("--model-config", type=Path, default=None,
                        help="a JSON open_clip model config to register, named after the file")
    parser.add_argument("--shots", nargs="+", type=_argtypes.positive_int,
                        default=[1, 2, 4, 8, 16],
                        help="training images per class (default 1 2 4 8 16)")
    parser.add_argument("--seeds", nargs="+", type=_argtypes.seed, default=[1, 2, 3],
                        help="seeds of the few-shot draws and of training (default 1 2 3)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--output", type=Path, default=Path("taskres-results"),
                        help="folder for results and cached features (default ./taskres-results)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="feature store shared with earlier runs and with "
                        "TaskResClassifier(cache_dir=...) (default: OUTPUT/features)")
    parser.add_argument("--epochs", type=_argtypes.positive_int, default=None,
                        help="TaskRes epochs for every run (default: 100 up to 4 shots, else 200)")
    parser.add_argument("--augment-views", type=_argtypes.non_negative_int, default=0, metavar="V",
                        help="train TaskRes on V augmented views of every training image "
                        "(random resized crop + flip, encoded once and cached; one view per "
                        "image each epoch); the linear probe and zero-shot CLIP stay on the "
                        "evaluation crop (default 0: TaskRes too)")
    parser.add_argument("--draws", choices=("dassl", "numpy"), default="dassl",
                        help="dassl: the few-shot images CoOp's loaders draw for each seed, "
                        "image for image (Python's random, as Dassl); numpy: NumPy's "
                        "generator, same distribution, other images (default dassl)")
    parser.add_argument("--class-names", choices=("official", "spaces"), default="official",
                        help="official: TaskRes's base keeps the dataset's class names as they "
                        "are (underscores and all), as the official TaskRes code does, and "
                        "zero-shot CLIP replaces underscores by spaces, as CoOp's does; "
                        "spaces: spaces for every method (default official)")
    parser.add_argument("--protocol", choices=("fewshot", "base2new"), default="fewshot",
                        help="fewshot: all classes; base2new: CoCoOp's base-to-new "
                        "generalization, TaskRes trained on the first half of the classes and "
                        "tested on both halves (default fewshot)")
    return parser


def _log(message):
    print(message, file=sys.stderr, flush=True)


def _note_former_cache(cache_dir):
    """Say that the per-split ``.npz`` files of earlier versions are no longer read."""
    former = sorted(Path(cache_dir).glob("*/*.npz"))
    if former:
        _log(f"ignoring {len(former)} per-split feature file(s) (*/*.npz) of an earlier "
             f"version under {cache_dir}: they are no longer read and can be deleted")


def main(argv=None):
    """Run the benchmark from the command line; returns the exit status.

    Parameters
    ----------
    argv : list of str, default=None
        Arguments without the program name; None reads ``sys.argv``.

    Returns
    -------
    status : int
        0 on success, 2 when the data, model or options cannot be used.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    args.shots = list(dict.fromkeys(args.shots))
    args.seeds = list(dict.fromkeys(args.seeds))
    requested = list(dict.fromkeys(args.datasets))
    shifted = [key for key in requested if key in DISTRIBUTION_SHIFT_DATASETS]
    if shifted and "imagenet" not in requested:
        _log("the ImageNet variants are evaluated with classifiers trained on imagenet; "
             "adding imagenet")
        requested.insert(0, "imagenet")
    if args.protocol == "base2new" and shifted:
        parser.error(f"expected --protocol base2new with few-shot datasets only; got "
                     f"{', '.join(shifted)}")
    # The variants need the ImageNet classifiers, so they run last.
    datasets = [key for key in requested if key not in shifted] + shifted
    args.datasets = datasets
    pretrained = None if args.pretrained.lower() == "none" else args.pretrained

    try:
        if args.model_config is not None:
            config_text = args.model_config.read_text(encoding="utf-8")
            register_model_config(args.model_config.stem, json.loads(config_text))
        device = resolve_device(args.device)
        loaded = {key: load_dataset(args.root, key) for key in datasets}
        encoder = load_encoder(args.model, pretrained, device)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    settings = {
        "root": str(args.root), "datasets": datasets, "model": args.model,
        "pretrained": pretrained, "shots": args.shots, "seeds": args.seeds,
        "epochs": args.epochs, "device": str(device), "augment_views": args.augment_views,
        "view_seed": VIEW_SEED if args.augment_views else None,
        "draws": args.draws, "class_names": args.class_names, "protocol": args.protocol,
        "linear_probe": {"grid": list(LINEAR_PROBE_GRID),
                         "refine_steps": LINEAR_PROBE_REFINE_STEPS,
                         "max_iter": LINEAR_PROBE_MAX_ITER,
                         "max_validation_shots": MAX_VALIDATION_SHOTS},
    }
    if args.cache_dir is None:
        args.cache_dir = args.output / "features"
    _note_former_cache(args.cache_dir)
    counting = CountingEncoder(encoder)
    benchmark = Benchmark(args, counting, device, _log)
    try:
        for key in datasets:
            if key in DISTRIBUTION_SHIFT_DATASETS:
                benchmark.run_distribution_shift(loaded[key], loaded["imagenet"])
            elif args.protocol == "base2new":
                benchmark.run_base_to_new(loaded[key])
            else:
                benchmark.run_few_shot(loaded[key])
            write_results(args.output, benchmark.records, settings, benchmark.draws)
    except (FileNotFoundError, DatasetLayoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    table = format_base_to_new_table if args.protocol == "base2new" else format_table
    print(table(benchmark.records, args.shots, datasets))
    _log(f"{counting.n_encoded} image(s) encoded (augmented views included); features in "
         f"{args.cache_dir}; results in {args.output}")
    return 0

