"""Reproduce the few-shot benchmark of TaskRes: zero-shot CLIP, linear probe and TaskRes.

Run ``python -m sklearn_taskres.reproduce --root DATA`` on a dataset root laid
out as CoOp's DATASETS.md describes. For every dataset, number of shots and
seed it draws the few-shot training set as CoOp does, encodes the images once
(features are cached on disk under the output folder, so later runs encode
nothing), and evaluates on the test split:

- zero-shot CLIP: the text base classifier alone;
- a linear probe: scikit-learn's ``LogisticRegression`` on the same features,
  its ``C`` chosen on a few-shot validation set;
- TaskRes: :class:`~sklearn_taskres.TaskResHead` with the paper's settings.

ImageNetV2, -Sketch, -A and -R are evaluated with the classifiers trained on
ImageNet (same shots and seed). The script prints one table of mean accuracy
over seeds beside the published RN50 numbers, and writes every run to
``results.csv`` and ``results.json`` in the output folder.

With ``--augment-views V`` TaskRes trains on ``V`` augmented views of every
training image (the official augmentation: random resized crop with scale
0.08-1, bicubic, and horizontal flip), one view per image drawn at random in
every epoch. The views are encoded once and cached on disk beside the other
features, keyed by ``V`` and the view seed. The view seed is fixed
(:data:`VIEW_SEED`) rather than taken from the run's seed: every (shots, seed)
then trains on the same views of an image, so an image drawn by several runs is
augmented and encoded once. Only images that some draw trains on get views.
The linear probe and zero-shot CLIP stay on the evaluation crop, and every
method is evaluated on the evaluation crop.

Costs
-----
Each image is decoded and encoded once, then read from the disk cache, so a
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
"""

import argparse
import csv
import hashlib
import json
import os
import re
import sys
import tempfile
import time
import warnings
import zipfile
from pathlib import Path

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import log_loss

from . import _argtypes
from ._clip import load_encoder, register_model_config
from ._coop import (
    ALL_DATASETS,
    DISTRIBUTION_SHIFT_DATASETS,
    FEW_SHOT_DATASETS,
    DatasetLayoutError,
    load_dataset,
)
from ._features import augmented_image_features, image_features
from ._head import TaskResHead
from ._templates import resolve_templates, text_base
from ._training import resolve_device
from .fewshot import sample_few_shot

METHOD_TITLES = {"zero-shot": "zero-shot", "linear-probe": "LP", "taskres": "TaskRes"}

#: Published 11-dataset mean accuracy (%) with CLIP RN50 (OpenAI weights), by shots.
PUBLISHED_RN50_MEAN = {
    "zero-shot CLIP": {0: 58.77},
    "TaskRes": {1: 64.55, 2: 66.89, 4: 70.04, 8: 73.08, 16: 75.83},
    "Tip-Adapter-F": {1: 64.60, 2: 66.65, 4: 69.67, 8: 72.45, 16: 75.83},
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


# ---------------------------------------------------------------- few-shot draws


def plan_draws(dataset, shots_list, seeds):
    """Few-shot training and validation draws of every (shots, seed).

    Training images come from the train split; validation images (at most 4
    per class, as CoOp) from the val split. ImageNet has no val split in
    CoOp, whose linear probe then draws them from the test set; we draw them
    from the training images not selected for training instead.

    Returns ``{(shots, seed): (train_positions, val_split, val_positions)}``.
    """
    y_train = dataset.splits["train"].labels
    draws = {}
    for shots in shots_list:
        for seed in seeds:
            rng = np.random.RandomState(seed)
            train = sample_few_shot(y_train, shots, random_state=rng)
            val_shots = min(shots, MAX_VALIDATION_SHOTS)
            if "val" in dataset.splits:
                val_labels = dataset.splits["val"].labels
                draws[shots, seed] = (
                    train, "val", sample_few_shot(val_labels, val_shots, random_state=rng)
                )
            else:
                rest = np.setdiff1d(np.arange(len(y_train)), train)
                val = rest[sample_few_shot(y_train[rest], val_shots, random_state=rng)]
                draws[shots, seed] = (train, "train", val)
    return draws


# ---------------------------------------------------------------- on-disk features


class EncodedSplit:
    """Features of some images of a split, looked up by position in the split."""

    def __init__(self, positions, features):
        self.positions = positions
        self.features = features

    def rows(self, positions):
        return self.features[np.searchsorted(self.positions, positions)]


def _slug(text):
    return re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("_") or "none"


class FeatureStore:
    """Image features on disk, one ``.npz`` per (dataset, split, encoder).

    The file name holds the model, the weights and a digest of the encoder's
    identity (weights file, precision, preprocessing, model config); inside,
    every row is keyed by the image's path and (size, mtime), so a replaced
    image is encoded again and a new image list reuses what it can. Files are
    written to a temporary name and renamed, so an interrupted run never
    leaves a truncated cache behind.
    """

    what = "image(s)"  # what one row is, for the log

    def __init__(self, directory, encoder, tag):
        self.directory = Path(directory)
        self.encoder = encoder
        identity = repr((encoder.identity, tag)).encode()
        self.digest = hashlib.blake2b(identity, digest_size=8).hexdigest()
        model, weights = encoder.identity[0], encoder.identity[1]
        if isinstance(weights, tuple):  # a checkpoint file: (path, size, mtime)
            weights = Path(weights[0]).name
        self.stem = f"{_slug(model)}-{_slug(weights)[:40]}-{self.digest}"
        self.encoded_images = 0

    def path(self, dataset, split):
        return self.directory / dataset.key / f"{split}-{self.stem}.npz"

    def _features(self, images):
        return image_features(self.encoder, images)

    def encode(self, dataset, split, positions, log):
        """Features of ``dataset.splits[split]`` at ``positions`` (sorted, unique)."""
        paths = [dataset.splits[split].paths[p] for p in positions]
        stamps = np.array([_stamp(dataset.directory / path) for path in paths], dtype=np.int64)
        cache_path = self.path(dataset, split)
        cached = self._load(cache_path, log)
        features = [None] * len(paths)
        missing = []
        for row, (path, stamp) in enumerate(zip(paths, stamps, strict=True)):
            hit = cached.get(path)
            if hit is not None and np.array_equal(hit[0], stamp):
                features[row] = hit[1]
            else:
                missing.append(row)
        if missing:
            log(f"[{dataset.key}] encoding {len(missing)} {split} {self.what}")
            for start in range(0, len(missing), ENCODE_CHUNK):
                chunk = missing[start : start + ENCODE_CHUNK]
                try:
                    encoded = self._features([dataset.directory / paths[row] for row in chunk])
                except ValueError as exc:  # an undecodable image, named in the message
                    raise DatasetLayoutError(f"{dataset.key} {split} split: {exc}") from exc
                for row, vector in zip(chunk, encoded, strict=True):
                    features[row] = vector
            self.encoded_images += len(missing)
            for row in missing:
                cached[paths[row]] = (stamps[row], features[row])
            self._save(cache_path, cached)
        return EncodedSplit(np.asarray(positions), np.stack(features).astype(np.float32))

    @staticmethod
    def _load(path, log):
        if not path.exists():
            return {}
        try:
            with np.load(path, allow_pickle=False) as content:
                paths, stamps, features = content["paths"], content["stamps"], content["features"]
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            log(f"ignoring the unreadable feature cache {path}: {exc}")
            return {}
        return {
            str(image): (stamp, vector)
            for image, stamp, vector in zip(paths, stamps, features, strict=True)
        }

    @staticmethod
    def _save(path, cached):
        path.parent.mkdir(parents=True, exist_ok=True)
        paths = sorted(cached)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.stem, suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as file:
                np.savez(
                    file,
                    paths=np.asarray(paths, dtype=str),
                    stamps=np.stack([cached[p][0] for p in paths]),
                    features=np.stack([cached[p][1] for p in paths]).astype(np.float32),
                )
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise


class ViewStore(FeatureStore):
    """Augmented views of images on disk: ``n_views`` embeddings per image and row.

    A sibling of :class:`FeatureStore` with the same keys and guarantees. The
    file name adds the number of views and the view seed, and the digest the
    augmentation recipe, so a run with other views never reads these. Row
    ``i`` holds the views of one image, shape (n_views, D); view ``v`` of an
    image depends only on the seed, ``v`` and the image's content.
    """

    def __init__(self, directory, encoder, tag, n_views, seed=VIEW_SEED):
        super().__init__(directory, encoder, (tag, "views", repr(encoder.augmentation)))
        self.n_views = n_views
        self.seed = seed
        self.what = f"image(s) x {n_views} augmented view(s)"

    def path(self, dataset, split):
        name = f"{split}-views{self.n_views}-seed{self.seed}-{self.stem}.npz"
        return self.directory / dataset.key / name

    def _features(self, images):
        views = augmented_image_features(self.encoder, images, self.n_views, self.seed)
        return views.transpose(1, 0, 2)


def _stamp(path):
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"expected the image {path} listed by the dataset's split; it does not exist"
        ) from None
    return stat.st_size, stat.st_mtime_ns


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


# ---------------------------------------------------------------- the benchmark


class Benchmark:
    """Runs the methods on the datasets and collects one record per run.

    ``views`` is a :class:`ViewStore` when TaskRes trains on augmented views,
    else None.
    """

    def __init__(self, args, encoder, store, device, log, views=None):
        self.args = args
        self.encoder = encoder
        self.store = store
        self.views = views
        self.device = device
        self.log = log
        self.records = []
        self.imagenet_models = {}

    def _record(self, dataset, method, shots, seed, accuracy, **extra):
        record = {"dataset": dataset, "method": method, "shots": shots, "seed": seed,
                  "accuracy": round(accuracy, 4)}
        record.update(extra)
        self.records.append(record)

    def _base(self, dataset):
        names = [name.replace("_", " ") for name in dataset.classnames]
        return text_base(self.encoder, names, resolve_templates(dataset.key))

    def run_few_shot(self, dataset):
        args = self.args
        draws = plan_draws(dataset, args.shots, args.seeds)
        train_needed = [train for train, _, _ in draws.values()]
        train_needed += [val for _, split, val in draws.values() if split == "train"]
        encoded = {"train": self.store.encode(
            dataset, "train", np.unique(np.concatenate(train_needed)), self.log
        )}
        val_needed = [val for _, split, val in draws.values() if split == "val"]
        if val_needed:
            encoded["val"] = self.store.encode(
                dataset, "val", np.unique(np.concatenate(val_needed)), self.log
            )
        if self.views is not None:
            drawn = np.unique(np.concatenate([train for train, _, _ in draws.values()]))
            train_views = self.views.encode(dataset, "train", drawn, self.log)
        test = dataset.splits["test"]
        X_test = self.store.encode(dataset, "test", np.arange(len(test)), self.log).features
        base = self._base(dataset)
        accuracy = _accuracy(zero_shot_predict(X_test, base, dataset.classes), test.labels)
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
            head = TaskResHead(
                base, classes=dataset.classes, logit_scale=self.encoder.logit_scale,
                device=str(self.device), random_state=seed, **settings,
            )
            if self.views is None:
                head.fit(X_train, y_train)
            else:
                head._validate_params()
                head._fit_views(
                    np.ascontiguousarray(train_views.rows(train).transpose(1, 0, 2)), y_train
                )
            tr = _accuracy(head.predict(X_test), test.labels)
            self._record(dataset.key, "taskres", shots, seed, tr, epochs=settings["max_iter"],
                         alpha=settings["alpha"], learning_rate=settings["learning_rate"],
                         augment_views=args.augment_views,
                         seconds=round(time.perf_counter() - start, 3), **common)
            self.log(f"[{dataset.key}] {shots}-shot seed {seed}: linear probe {lp:.2f} "
                     f"(C={C:.3g}), TaskRes {tr:.2f}")
            if keep_models:
                self.imagenet_models[shots, seed] = (probe, head, settings, len(train))

    def run_distribution_shift(self, dataset, imagenet):
        unknown = sorted(set(dataset.classes.tolist()) - set(imagenet.classes.tolist()))
        if unknown:
            raise DatasetLayoutError(
                f"expected the classes of {dataset.key} to be ImageNet classes; got "
                f"{', '.join(unknown[:5])}"
            )
        test = dataset.splits["test"]
        X_test = self.store.encode(dataset, "test", np.arange(len(test)), self.log).features
        accuracy = _accuracy(
            zero_shot_predict(X_test, self._base(dataset), dataset.classes), test.labels
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


def write_results(directory, records, settings):
    """Write ``results.csv`` and ``results.json`` (each atomically) to ``directory``."""
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
        json.dump({"settings": settings, "runs": records}, file, indent=2)
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
    widths = [max(len(row[i]) for row in [header] + rows + published) for i in range(len(header))]

    def line(row):
        return "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()

    rule = "-" * len(line(["-" * width for width in widths]))
    out = [line(header), rule] + [line(row) for row in rows] + [rule]
    out += [line(row) for row in published]
    out.append(
        "Accuracy (%) on the test split, mean ± std (ddof=0) over seeds. The paper rows are "
        "11-dataset means\nwith CLIP RN50 (OpenAI weights); Tip-Adapter-F is shown in the "
        "TaskRes columns."
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
    parser.add_argument("--epochs", type=_argtypes.positive_int, default=None,
                        help="TaskRes epochs for every run (default: 100 up to 4 shots, else 200)")
    parser.add_argument("--augment-views", type=_argtypes.non_negative_int, default=0, metavar="V",
                        help="train TaskRes on V augmented views of every training image "
                        "(random resized crop + flip, encoded once and cached; one view per "
                        "image each epoch); the linear probe and zero-shot CLIP stay on the "
                        "evaluation crop (default 0: TaskRes too)")
    return parser


def _log(message):
    print(message, file=sys.stderr, flush=True)


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
    args = build_parser().parse_args(argv)
    args.shots = list(dict.fromkeys(args.shots))
    args.seeds = list(dict.fromkeys(args.seeds))
    requested = list(dict.fromkeys(args.datasets))
    shifted = [key for key in requested if key in DISTRIBUTION_SHIFT_DATASETS]
    if shifted and "imagenet" not in requested:
        _log("the ImageNet variants are evaluated with classifiers trained on imagenet; "
             "adding imagenet")
        requested.insert(0, "imagenet")
    # The variants need the ImageNet classifiers, so they run last.
    datasets = [key for key in requested if key not in shifted] + shifted
    args.datasets = datasets
    pretrained = None if args.pretrained.lower() == "none" else args.pretrained

    try:
        tag = None
        if args.model_config is not None:
            config_text = args.model_config.read_text(encoding="utf-8")
            register_model_config(args.model_config.stem, json.loads(config_text))
            tag = hashlib.blake2b(config_text.encode(), digest_size=8).hexdigest()
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
        "linear_probe": {"grid": list(LINEAR_PROBE_GRID),
                         "refine_steps": LINEAR_PROBE_REFINE_STEPS,
                         "max_iter": LINEAR_PROBE_MAX_ITER,
                         "max_validation_shots": MAX_VALIDATION_SHOTS},
    }
    store = FeatureStore(args.output / "features", encoder, tag)
    views = None
    if args.augment_views:
        views = ViewStore(args.output / "features", encoder, tag, args.augment_views)
    benchmark = Benchmark(args, encoder, store, device, _log, views)
    try:
        for key in datasets:
            if key in DISTRIBUTION_SHIFT_DATASETS:
                benchmark.run_distribution_shift(loaded[key], loaded["imagenet"])
            else:
                benchmark.run_few_shot(loaded[key])
            write_results(args.output, benchmark.records, settings)
    except (FileNotFoundError, DatasetLayoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_table(benchmark.records, args.shots, datasets))
    encoded = f"{store.encoded_images} image(s) encoded"
    if views is not None:
        encoded += (f", and {views.n_views} augmented view(s) of {views.encoded_images} "
                    "training image(s)")
    _log(f"{encoded}; results in {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
