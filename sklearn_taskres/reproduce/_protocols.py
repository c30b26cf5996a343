"""The protocols: few-shot, base-to-new and distribution shift, one record per run."""

import time

import numpy as np

from .._head import TaskResHead
from .._templates import resolve_templates, text_base
from ._datasets import DISTRIBUTION_SHIFT_DATASETS, DatasetLayoutError, base_and_new_classes
from ._draws import draw_record, plan_draws
from ._encoding import encode_split
from ._methods import (
    _accuracy,
    fit_gda,
    fit_linear_probe,
    harmonic_mean,
    head_for_classes,
    linear_probe_predict,
    prompt_classnames,
    taskres_settings,
    zero_shot_predict,
)


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
        """A run scored by its accuracy (%)."""
        self._add(dataset, method, shots, seed, accuracy=round(accuracy, 4), **extra)

    def _record_base_to_new(self, dataset, method, shots, seed, base, new, **extra):
        """A base-to-new run: its base and new accuracy (%) and their harmonic mean."""
        self._add(dataset, method, shots, seed, base_accuracy=round(base, 4),
                  new_accuracy=round(new, 4), harmonic_mean=round(harmonic_mean(base, new), 4),
                  **extra)

    def _add(self, dataset, method, shots, seed, **fields):
        self.records.append(
            {"dataset": dataset, "method": method, "shots": shots, "seed": seed, **fields}
        )

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

    def _settings(self, dataset, shots):
        """The paper's TaskRes settings, with the alpha of ``--alpha`` unless it is "paper"."""
        settings = taskres_settings(dataset.key, shots, self.args.epochs)
        alpha = getattr(self.args, "alpha", "auto")
        if alpha != "paper":
            settings["alpha"] = alpha
        return settings

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
            settings = self._settings(dataset, shots)
            views = train_views.rows(train) if args.augment_views else None
            head = self._fit_taskres(self._base(dataset, "taskres"), dataset.classes, settings,
                                     seed, X_train, y_train, views)
            tr = _accuracy(head.predict(X_test), test.labels)
            self._record(dataset.key, "taskres", shots, seed, tr, epochs=settings["max_iter"],
                         alpha=head.alpha_, learning_rate=settings["learning_rate"],
                         augment_views=args.augment_views,
                         seconds=round(time.perf_counter() - start, 3), **common)
            self.log(f"[{dataset.key}] {shots}-shot seed {seed}: linear probe {lp:.2f} "
                     f"(C={C:.3g}), TaskRes {tr:.2f} (alpha {head.alpha_:g})")
            if getattr(args, "gda", False):
                start = time.perf_counter()
                gda = fit_gda(X_train, y_train, self._base(dataset, "taskres"),
                              dataset.classes, logit_scale=self.encoder.logit_scale, seed=seed)
                accuracy = _accuracy(gda.predict(X_test), test.labels)
                self._record(dataset.key, "gda", shots, seed, accuracy, blend=gda.blend_,
                             seconds=round(time.perf_counter() - start, 3), **common)
                self.log(f"[{dataset.key}] {shots}-shot seed {seed}: GDA {accuracy:.2f} "
                         f"(blend {gda.blend_:g})")
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
        self._record_base_to_new(dataset.key, "zero-shot", 0, None, base_accuracy, new_accuracy,
                                 n_train=0, n_test=len(test), trained_on=dataset.key)
        self.log(f"[{dataset.key}] zero-shot base {base_accuracy:.2f}, new {new_accuracy:.2f}")

        taskres_base = self._base(dataset, "taskres")
        new_accuracy = text_accuracy("new", taskres_base)
        classes, rows, X_base, y_base = halves["base"]
        for (shots, seed), train in trains.items():
            start = time.perf_counter()
            settings = self._settings(dataset, shots)
            views = train_views.rows(train) if args.augment_views else None
            head = self._fit_taskres(taskres_base[rows], classes, settings, seed,
                                     encoded.rows(train), y_all[train], views)
            base_accuracy = _accuracy(head.predict(X_base), y_base)
            self._record_base_to_new(
                dataset.key, "taskres", shots, seed, base_accuracy, new_accuracy,
                n_train=len(train), n_test=len(test), trained_on=dataset.key,
                epochs=settings["max_iter"], alpha=head.alpha_,
                learning_rate=settings["learning_rate"], augment_views=args.augment_views,
                seconds=round(time.perf_counter() - start, 3),
            )
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
                         alpha=head.alpha_, learning_rate=settings["learning_rate"],
                         augment_views=self.args.augment_views, **common)
            self.log(f"[{dataset.key}] {shots}-shot seed {seed} (trained on imagenet): "
                     f"linear probe {lp:.2f}, TaskRes {tr:.2f}")
