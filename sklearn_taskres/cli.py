"""The command line: ``sklearn-taskres`` (or ``python -m sklearn_taskres``).

Subcommands:

- ``fit DIR -o MODEL``: learn TaskRes on a folder of labelled images;
- ``predict MODEL PATHS...``: label images (files or folders, scanned recursively);
  with ``--ray ADDRESS`` on a Ray cluster (``local``, ``auto`` or ``ray://host:port``),
  printing the same rows, or writing them as Parquet files with ``--output DIR``;
- ``evaluate MODEL DIR``: accuracy, per-class accuracy and confusion matrix on a folder;
- ``zero-shot DIR``: CLIP's zero-shot classifier from the folder names, evaluated there;
- ``cache info|compact|clear DIR``: what the feature store of a ``--cache-dir``
  holds; rewrite it as one shard; delete it.

A labelled folder is laid out as ``DIR/<class folder>/<images>``: every
subfolder of ``DIR`` is a class, in sorted order, and its images are found
recursively. Image files end in .jpg, .jpeg, .png, .bmp, .gif, .webp, .tif or
.tiff (in any case); other files, and files and folders whose name starts with
a dot, are ignored. The class labels are the folder names; the names shown to
CLIP in the prompts are the folder names with underscores as spaces, unless
``--classnames-file`` gives them: a UTF-8 file of ``folder<TAB>display name``
lines (or ``folder,display name``, split at the first comma); folders it does
not list keep their default name.

``--model-config FILE.json`` registers an open_clip model config, named after
the file's stem, before the command runs (so that custom or tiny models work
offline); ``--debug`` shows the traceback of an error. Both are accepted
before or after the subcommand. A model file carries the config of the model
it was fitted with, so ``predict`` and ``evaluate`` need no ``--model-config``.

Exit status
-----------
0
    Success.
1
    A runtime failure: pretrained weights that are neither cached nor
    downloadable (``WeightsUnavailableError``), out of memory, a device or
    I/O error. Any other unexpected exception (a bug) also exits with 1, with
    its traceback.
2
    A usage or input problem: invalid options, a missing folder or model
    file, a folder without images or with fewer than 2 classes, an unreadable
    image, class folders that are not labels of the model.
130
    Interrupted (Ctrl-C).

Expected errors print one line, ``sklearn-taskres: error: ...``, to stderr and
no traceback; ``--debug`` raises them instead.
"""

import argparse
import csv
import json
import os
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np

from . import _argtypes

PROG = "sklearn-taskres"
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

#: Suffixes of the image files that folders are scanned for (compared in lower case).
IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"})
_MODEL_CONFIG_KEYS = ("embed_dim", "vision_cfg", "text_cfg")
_DEFAULT_MODEL = "ViT-B-32"


class CommandError(Exception):
    """An expected failure of a command: reported in one line, with an exit status.

    Parameters
    ----------
    message : str
        What went wrong, worded "expected ...; got ...".
    status : int, default=2
        The exit status: 2 for usage and input problems, 1 for runtime failures.
    """

    def __init__(self, message, status=EXIT_USAGE):
        super().__init__(message)
        self.status = status


# ---------------------------------------------------------------- image folders


def _is_visible(name):
    return not name.startswith(".")


def _is_image_file(name):
    # Dot files are skipped too: macOS writes "._photo.jpg" metadata beside photos.
    return _is_visible(name) and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES


def find_images(directory):
    """Image files under ``directory``, recursively, in sorted order.

    Parameters
    ----------
    directory : str or path
        An existing folder.

    Returns
    -------
    paths : list of pathlib.Path
        Files with an image suffix (in any case), depth first, sorted by name
        within each folder; files and folders whose name starts with a dot are
        skipped.
    """
    found = []
    for root, dirnames, filenames in os.walk(directory):
        dirnames[:] = sorted(name for name in dirnames if _is_visible(name))
        found.extend(Path(root, name) for name in sorted(filenames) if _is_image_file(name))
    return found


def read_labelled_folder(directory):
    """The class folders of ``DIR/<class>/<images>`` and every image with its folder.

    Parameters
    ----------
    directory : str or path
        The folder to read.

    Returns
    -------
    folders : list of str
        The class folder names, sorted; a folder without images is kept.
    paths : list of pathlib.Path
        Every image, class after class.
    labels : list of str
        The class folder of every image.

    Raises
    ------
    CommandError
        When ``directory`` is not a folder, has fewer than 2 class folders, or
        holds no image.
    """
    directory = Path(directory)
    layout = "a folder laid out as DIR/<class>/<images>"
    if not directory.exists():
        raise CommandError(f"expected {layout}; got {str(directory)!r}, which does not exist")
    if not directory.is_dir():
        raise CommandError(f"expected {layout}; got the file {str(directory)!r}")
    folders = sorted(
        entry.name for entry in directory.iterdir() if entry.is_dir() and _is_visible(entry.name)
    )
    if len(folders) < 2:
        raise CommandError(
            f"expected at least 2 class folders in {str(directory)!r} ({layout}); "
            f"got {len(folders)}: {folders}"
        )
    paths, labels = [], []
    for folder in folders:
        images = find_images(directory / folder)
        paths.extend(images)
        labels.extend([folder] * len(images))
    if not paths:
        raise CommandError(
            f"expected image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in the class folders "
            f"of {str(directory)!r}; got none"
        )
    return folders, paths, labels


def _collect_images(paths):
    """Image files from a list of files and folders; folders are scanned recursively."""
    images = []
    for path in map(Path, paths):
        if path.is_dir():
            found = find_images(path)
            if not found:
                raise CommandError(
                    f"expected image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in the folder "
                    f"{str(path)!r}; got none"
                )
            images.extend(found)
        elif path.exists():
            images.append(path)
        else:
            raise CommandError(
                f"expected image files or folders; got {str(path)!r}, which does not exist"
            )
    return images


# ---------------------------------------------------------------- class names


def class_display_names(folders, classnames_file=None):
    """The names CLIP reads in the prompts, for every class folder.

    By default a folder's name with underscores as spaces. A classnames file
    overrides some or all of them: one ``folder<TAB>display name`` per line,
    or ``folder,display name`` on lines without a tab (split at the first
    comma, so display names may hold commas). Blank lines and lines starting
    with ``#`` are skipped. Folders the file does not list keep their default
    name; a folder listed that does not exist is an error (a typo would
    otherwise go unnoticed).

    Parameters
    ----------
    folders : list of str
        The class folder names.
    classnames_file : str or path, default=None
        The file of display names, UTF-8.

    Returns
    -------
    classnames : dict
        ``{folder: display name}`` in the order of ``folders``, ready for
        ``TaskResClassifier(classnames=...)``: the folder names are the labels.

    Examples
    --------
    >>> from sklearn_taskres.cli import class_display_names
    >>> class_display_names(["golden_retriever", "tabby_cat"])
    {'golden_retriever': 'golden retriever', 'tabby_cat': 'tabby cat'}
    """
    names = {folder: " ".join(folder.replace("_", " ").split()) for folder in folders}
    if classnames_file is None:
        return names
    path = Path(classnames_file)
    if not path.is_file():
        raise CommandError(
            f"expected --classnames-file to be a file of 'folder<TAB>display name' lines; "
            f"got {str(path)!r}, which is not a file"
        )
    given = {}
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        folder, separator, display = line.partition("\t" if "\t" in line else ",")
        folder, display = folder.strip(), display.strip()
        if not separator or not folder or not display:
            raise CommandError(
                f"expected 'folder<TAB>display name' or 'folder,display name' on line {number} "
                f"of {str(path)!r}; got {line!r}"
            )
        if folder in given:
            raise CommandError(
                f"expected each folder once in {str(path)!r}; got {folder!r} again on line "
                f"{number}"
            )
        given[folder] = display
    unknown = sorted(set(given) - set(folders))
    if unknown:
        raise CommandError(
            f"expected the folders named in {str(path)!r} to be class folders ({folders}); "
            f"got unknown folder(s) {unknown}"
        )
    names.update(given)
    return names


def _templates(values):
    """``--templates`` values as ``TaskResClassifier(templates=...)``.

    One value is passed on as given (a set name or one template), so that the
    saved model records the set's name; several are expanded and joined.
    """
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    from ._templates import resolve_templates

    return tuple(
        template
        for value in values
        for template in resolve_templates((value,) if "{}" in value else value)
    )


# ---------------------------------------------------------------- models


def register_model_config_file(path):
    """Register the open_clip model config of a JSON file, named after the file's stem.

    Parameters
    ----------
    path : str or path
        A JSON open_clip model config, such as those in open_clip's
        ``model_configs`` folder.

    Returns
    -------
    name : str
        The registered model name, the file's stem.
    """
    from ._clip import register_model_config

    path = Path(path)
    if not path.is_file():
        raise CommandError(
            f"expected --model-config to be a JSON open_clip model config file; "
            f"got {str(path)!r}, which is not a file"
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise CommandError(
            f"expected --model-config {str(path)!r} to hold JSON; got {exc}"
        ) from exc
    missing = [key for key in _MODEL_CONFIG_KEYS if not isinstance(config, dict)
               or key not in config]
    if missing:
        # open_clip silently skips such configs; the model would then be unknown.
        raise CommandError(
            f"expected --model-config {str(path)!r} to be an open_clip model config with "
            f"{', '.join(_MODEL_CONFIG_KEYS)}; got one without {', '.join(missing)}"
        )
    return register_model_config(path.stem, config)


def _pretrained(text):
    return None if text.lower() == "none" else text


def _model_format(path, requested):
    """The format to save ``path`` in: ``requested``, or ``skops`` for a ``.skops`` suffix."""
    suffix = Path(path).suffix.lower()
    if suffix == ".npz":
        raise CommandError(
            f"expected a model file name ending in .skops (or another suffix for joblib); got "
            f"{str(path)!r}: the .npz format of sklearn-taskres 0.1 is deprecated and no "
            "longer written"
        )
    if requested is None:
        return "skops" if suffix == ".skops" else "joblib"
    if requested == "joblib" and suffix == ".skops":
        # predict and evaluate read .skops files without pickle: a pickle there would not load.
        raise CommandError(
            f"expected a model file name without the .skops suffix for --format joblib; "
            f"got {str(path)!r} (use --format skops, or another suffix such as .joblib)"
        )
    return requested


def _check_output(path, requested_format):
    """Fail before any work when the model could not be saved at ``path``."""
    path = Path(path)
    model_format = _model_format(path, requested_format)
    parent = path.parent
    if not parent.is_dir():
        raise CommandError(
            f"expected -o in an existing folder; got {str(path)!r}, whose folder "
            f"{str(parent)!r} does not exist"
        )
    if path.is_dir():
        raise CommandError(f"expected -o to be a file name; got the folder {str(path)!r}")
    return model_format


def _save(classifier, path, model_format):
    import joblib

    from ._persistence import save_model

    if model_format == "skops":
        save_model(classifier, path)
    else:
        joblib.dump(classifier, path)


def load_classifier(path):
    """Load a fitted TaskResClassifier written by ``fit`` or ``zero-shot``.

    A file ending in ``.skops`` (or ``.npz``, the deprecated format of 0.1),
    or any zip archive, is read with :func:`~sklearn_taskres.load_model`,
    which runs no code from the file; anything else with ``joblib.load``,
    which, like every pickle, runs code from the file: load only files you
    trust. A ``.skops`` or ``.npz`` name is never read as a pickle.

    Parameters
    ----------
    path : str or path
        The model file.

    Returns
    -------
    classifier : TaskResClassifier
    """
    import joblib

    from ._classifier import TaskResClassifier
    from ._persistence import load_model

    path = Path(path)
    if not path.is_file():
        raise CommandError(
            f"expected a model file written by '{PROG} fit'; got {str(path)!r}, "
            "which is not a file"
        )
    try:
        if path.suffix.lower() in (".skops", ".npz") or zipfile.is_zipfile(path):
            with warnings.catch_warnings():
                # The deprecation of 0.1's .npz files is for the user: shown, never an error.
                warnings.simplefilter("always", FutureWarning)
                classifier = load_model(path)
        else:
            classifier = joblib.load(path)
    except Exception as exc:  # a damaged or foreign file can fail in any way
        raise CommandError(f"cannot load the model file {str(path)!r}: {exc}") from exc
    if not isinstance(classifier, TaskResClassifier):
        raise CommandError(
            f"expected a TaskResClassifier in {str(path)!r}; got {type(classifier).__name__}, "
            "which does not classify images"
        )
    return classifier


def _with_overrides(classifier, args):
    overrides = {}
    if args.device is not None:
        overrides["device"] = args.device
    if args.pretrained is not None:
        overrides["pretrained"] = _pretrained(args.pretrained)
    return classifier.set_params(**overrides)


def _model_name(args):
    if args.model is not None:
        return args.model
    if args.model_config is not None:
        return Path(args.model_config).stem
    return _DEFAULT_MODEL


def _plain(label):
    """A label as a plain Python value, for CSV and JSON."""
    return label.item() if isinstance(label, np.generic) else label


def _note(message):
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------- evaluation


def evaluation_report(y_true, y_pred, classes):
    """Accuracy, per-class accuracy and confusion matrix of predictions.

    Parameters
    ----------
    y_true, y_pred : array-like of shape (n_samples,)
        True and predicted labels.
    classes : array-like of shape (n_classes,)
        The model's label space; the report keeps, in this order, the classes
        that are true or predicted for some image.

    Returns
    -------
    report : dict
        ``accuracy``, ``n_images``, ``labels``, ``per_class`` (for every label
        with images: ``label``, ``accuracy``, ``n_images``) and
        ``confusion_matrix`` (rows: true labels, columns: predicted labels, in
        the order of ``labels``), all plain JSON values.

    Examples
    --------
    >>> from sklearn_taskres.cli import evaluation_report
    >>> report = evaluation_report(["a", "a", "b"], ["a", "b", "b"], ["a", "b", "c"])
    >>> report["accuracy"], report["labels"], report["confusion_matrix"]
    (0.6666666666666666, ['a', 'b'], [[1, 1], [0, 1]])
    """
    from sklearn.metrics import accuracy_score, confusion_matrix

    y_true, y_pred = list(map(_plain, y_true)), list(map(_plain, y_pred))
    seen = set(y_true) | set(y_pred)
    labels = [label for label in map(_plain, classes) if label in seen]
    matrix = confusion_matrix(y_true, y_pred, labels=labels)
    per_class = [
        {"label": label, "accuracy": float(row[index] / row.sum()), "n_images": int(row.sum())}
        for index, (label, row) in enumerate(zip(labels, matrix, strict=True))
        if row.sum()
    ]
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "n_images": len(y_true),
        "labels": labels,
        "per_class": per_class,
        "confusion_matrix": matrix.tolist(),
    }


def format_report(report):
    """The evaluation report as text for people (``evaluation_report``'s output)."""
    names = [str(label) for label in report["labels"]]
    name_width = max(map(len, names + ["class"]))
    correct = round(report["accuracy"] * report["n_images"])
    lines = [
        f"accuracy: {report['accuracy']:.4f} ({correct} of {report['n_images']} images)",
        "",
        "per-class accuracy:",
        f"  {'class':<{name_width}}  accuracy  images",
    ]
    for entry in report["per_class"]:
        lines.append(
            f"  {str(entry['label']):<{name_width}}  {entry['accuracy']:8.4f}  "
            f"{entry['n_images']:6d}"
        )
    matrix = report["confusion_matrix"]
    widths = [
        max(len(name), *(len(str(row[j])) for row in matrix)) for j, name in enumerate(names)
    ]
    lines += ["", "confusion matrix (rows: true class, columns: predicted class):"]
    lines.append("  " + " " * name_width + "".join(
        f"  {name:>{width}}" for name, width in zip(names, widths, strict=True)
    ))
    for name, row in zip(names, matrix, strict=True):
        lines.append(f"  {name:<{name_width}}" + "".join(
            f"  {count:>{width}}" for count, width in zip(row, widths, strict=True)
        ))
    return "\n".join(lines)


def _evaluate_on(classifier, directory, as_json):
    _, paths, folders = read_labelled_folder(directory)
    label_of = {str(label): label for label in map(_plain, classifier.classes_)}
    unknown = sorted(set(folders) - set(label_of))
    if unknown:
        raise CommandError(
            f"expected the class folders of {str(directory)!r} to be labels of the model "
            f"({sorted(label_of)}); got unknown folder(s) {unknown}"
        )
    y_true = [label_of[folder] for folder in folders]
    report = evaluation_report(y_true, classifier.predict(paths), classifier.classes_)
    print(json.dumps(report, indent=2) if as_json else format_report(report))
    return EXIT_OK


# ---------------------------------------------------------------- commands


def _fit(args):
    """``fit``: learn TaskRes on a labelled folder and save the classifier."""
    from ._classifier import TaskResClassifier
    from .fewshot import sample_few_shot

    model_format = _check_output(args.output, args.format)
    folders, paths, labels = read_labelled_folder(args.directory)
    classnames = class_display_names(folders, args.classnames_file)
    for folder in folders:
        if folder not in labels:
            _note(f"note: class {folder!r} has no images; it is predicted zero-shot")
    if args.shots is not None:
        counts = {folder: labels.count(folder) for folder in folders}
        for folder, count in counts.items():
            if 0 < count < args.shots:
                _note(f"note: class {folder!r} has {count} image(s), fewer than --shots "
                      f"{args.shots}; all of them are used")
        # repeat=False: a class short of images uses each once rather than duplicates.
        indices = sample_few_shot(labels, args.shots, repeat=False, random_state=args.seed)
        paths, labels = [paths[i] for i in indices], [labels[i] for i in indices]
    epochs = args.epochs
    if epochs is None:
        epochs = 100 if args.shots is not None and args.shots <= 4 else 200
    model = _model_name(args)
    classifier = TaskResClassifier(
        classnames,
        model=model,
        pretrained=_pretrained(args.pretrained),
        templates=_templates(args.templates),
        alpha=args.alpha,
        learning_rate=args.learning_rate,
        max_iter=epochs,
        augment_views=args.augment_views,
        class_weight=args.class_weight,
        device=args.device,
        cache_dir=args.cache_dir,
        random_state=args.seed,
    )
    classifier.fit(paths, labels)
    _save(classifier, args.output, model_format)
    _note(f"fitted TaskRes on {len(paths)} images of {len(folders)} classes ({model}, "
          f"{epochs} epochs); saved to {args.output} ({model_format})")
    return EXIT_OK


def _predict(args):
    """``predict``: one row per image, its predicted label and optionally probabilities."""
    if args.output is not None and args.ray is None:
        raise CommandError("expected --output DIR together with --ray ADDRESS; got --output "
                           "alone (without --ray the rows are printed)")
    if args.output is not None:
        _check_empty_output_dir(args.output)
    classifier = _with_overrides(load_classifier(args.model_file), args)
    paths = _collect_images(args.paths)
    classes = [_plain(label) for label in classifier.classes_]
    if args.ray is not None:
        predicted, proba = _predict_on_ray(classifier, paths, args)
        if predicted is None:
            return EXIT_OK
    elif args.proba:
        proba = classifier.predict_proba(paths)
        predicted = classifier.classes_.take(proba.argmax(axis=1))
    else:
        proba = None
        predicted = classifier.predict(paths)
    rows = []
    for index, (path, label) in enumerate(zip(paths, predicted, strict=True)):
        row = {"path": str(path), "label": _plain(label)}
        if proba is not None:
            row["proba"] = dict(zip(map(str, classes), map(float, proba[index]), strict=True))
        rows.append(row)
    if args.format == "json":
        print(json.dumps(rows, indent=2))
        return EXIT_OK
    writer = csv.writer(sys.stdout, lineterminator="\n")
    header = ["path", "label"]
    if proba is not None:
        # Prefixed so that a class called "path" or "label" keeps its own column.
        header += [f"proba_{label}" for label in classes]
    writer.writerow(header)
    for row in rows:
        writer.writerow([row["path"], row["label"], *row.get("proba", {}).values()])
    return EXIT_OK


def _check_empty_output_dir(directory):
    path = Path(directory)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise CommandError(
            f"expected --output to be a new or empty folder; got {str(path)!r}, which "
            f"{'is not a folder' if not path.is_dir() else 'already holds files'} (nothing is "
            "overwritten: remove it or choose another folder)"
        )


def _predict_on_ray(classifier, paths, args):
    """Predict through :func:`sklearn_taskres.ray.predict_dataset` on the cluster at ``--ray``.

    Returns the labels and probabilities in the order of ``paths``, or
    ``(None, None)`` after writing Parquet files to ``--output``.
    """
    try:
        import ray

        from .ray import predict_dataset
    except ImportError as exc:
        raise CommandError(str(exc), EXIT_FAILURE) from exc

    started = not ray.is_initialized()
    if started:
        options = {"include_dashboard": False} if args.ray == "local" else {}
        ray.init(address=args.ray, logging_level="WARNING", **options)
    try:
        dataset = ray.data.from_items([{"path": str(path)} for path in paths])
        predicted = predict_dataset(classifier, dataset, image_column="path",
                                    proba=args.proba, num_gpus=args.num_gpus)
        if args.output is not None:
            predicted.write_parquet(str(args.output))
            _note(f"wrote the predictions of {len(paths)} images to {args.output} (Parquet: "
                  "columns path, label" + (", proba" if args.proba else "") + ")")
            return None, None
        predicted.context.execution_options.preserve_order = True  # the rows of `paths`
        batches = list(predicted.iter_batches(batch_format="numpy", batch_size=None))
        labels = np.concatenate([batch["label"] for batch in batches])
        proba = np.concatenate([batch["proba"] for batch in batches]) if args.proba else None
        return labels.astype(classifier.classes_.dtype, copy=False), proba
    finally:
        if started:
            ray.shutdown()


def _evaluate(args):
    """``evaluate``: accuracy, per-class accuracy and confusion matrix on a labelled folder."""
    classifier = _with_overrides(load_classifier(args.model_file), args)
    return _evaluate_on(classifier, args.directory, args.json)


def _zero_shot(args):
    """``zero-shot``: CLIP's zero-shot classifier from the folder names, evaluated on DIR.

    The classifier is a TaskResClassifier with ``alpha=0``. The estimator API
    has no way to build it without ``fit``, so it is fitted on the folder's
    own images with ``max_iter=1``: fit builds the text base ``t`` from the
    class names and encodes the images (which the evaluation then reads from
    the feature cache), and trains the residual ``x`` for one epoch. With
    ``alpha=0`` the classifier is ``t' = t + 0 * x = t`` whatever ``x`` is,
    so the predictions are exactly CLIP's zero-shot ones and the labels of
    the evaluated images cannot leak into them.
    """
    from ._classifier import TaskResClassifier

    model_format = None if args.output is None else _check_output(args.output, args.format)
    folders, paths, labels = read_labelled_folder(args.directory)
    classifier = TaskResClassifier(
        class_display_names(folders, args.classnames_file),
        model=_model_name(args),
        pretrained=_pretrained(args.pretrained),
        templates=_templates(args.templates),
        alpha=0.0,
        max_iter=1,
        device=args.device,
        cache_dir=args.cache_dir,
        random_state=0,
    )
    classifier.fit(paths, labels)
    if args.output is not None:
        _save(classifier, args.output, model_format)
        _note(f"saved the zero-shot classifier to {args.output} ({model_format})")
    return _evaluate_on(classifier, args.directory, args.json)


def _cache(args):
    """``cache info|compact|clear DIR``: what a feature store holds; compact it; delete it."""
    from ._feature_store import clear_feature_store, compact_feature_store, feature_store_info

    if args.action == "compact":
        n_files = compact_feature_store(args.directory)
        info = feature_store_info(args.directory)
        print(f"replaced {n_files} file(s) by one shard of {info['n_vectors']} vector(s) in "
              f"{args.directory}")
        return EXIT_OK
    if args.action == "clear":
        n_files = clear_feature_store(args.directory, legacy_only=args.legacy)
        print(f"removed {n_files} file(s) from {args.directory}")
        return EXIT_OK
    info = feature_store_info(args.directory, verify=args.verify)
    if args.json:
        print(json.dumps(info, indent=1))
        return EXIT_OK
    print(f"{info['directory']}: {info['n_vectors']} vector(s) in {info['n_shards']} shard(s), "
          f"{info['n_files']} file(s), {info['n_bytes'] / 2**20:.1f} MiB")
    checked = "vectors and index entries" if args.verify else "index entries"
    print(f"damaged {checked}: {info['n_damaged']}")
    if info["n_legacy_files"]:
        print(f"former one-file-per-vector layout: {info['n_legacy_files']} file(s), "
              f"{info['n_legacy_bytes'] / 2**20:.1f} MiB (read when used; "
              f"'{PROG} cache clear --legacy DIR' removes them)")
    return EXIT_OK


# ---------------------------------------------------------------- parser


def _float(low, low_inclusive):
    def parse(text):
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        if not (value >= low if low_inclusive else value > low) or value == float("inf"):
            bound = ">=" if low_inclusive else ">"
            raise argparse.ArgumentTypeError(f"expected a number {bound} {low}; got {text!r}")
        return value

    return parse


def _common_options():
    """Options accepted before and after the subcommand.

    Their defaults are suppressed here so that a value given before the
    subcommand is not overwritten by the subcommand's default.
    """
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("--model-config", metavar="FILE.json", default=argparse.SUPPRESS,
                        help="register this JSON open_clip model config, named after the "
                        "file's stem, before running (for custom or tiny models, offline)")
    parent.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the traceback of errors instead of one line")
    return parent


def _add_model_options(parser):
    parser.add_argument("--model", default=None,
                        help="open_clip model name, hf-hub:org/repo or local-dir:/path "
                        "(default: the --model-config stem if given, else "
                        f"{_DEFAULT_MODEL})")
    parser.add_argument("--pretrained", default="auto",
                        help="open_clip pretrained tag or local checkpoint file; 'none' for a "
                        "random initialisation; 'auto': the weights of a hf-hub: or "
                        "local-dir: model, else openai (default: auto)")
    parser.add_argument("--templates", action="append", metavar="TEMPLATE",
                        help="prompt template with one {} (such as 'a photo of a {}.') or the "
                        "name of a built-in set (such as eurosat or imagenet); repeat to "
                        "average several (default: 'a photo of a {}.')")
    parser.add_argument("--classnames-file", metavar="FILE",
                        help="names for the prompts: lines 'folder<TAB>display name' (or "
                        "'folder,display name'); unlisted folders keep their name with "
                        "underscores as spaces")
    parser.add_argument("--device", default="auto",
                        help="auto (CUDA when available), cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--cache-dir", metavar="DIR",
                        help="on-disk feature cache shared by runs (default: none)")


def _add_save_options(parser, required):
    parser.add_argument("-o", "--output", required=required, metavar="MODEL",
                        help="model file to write; .skops is the pickle-free format")
    parser.add_argument("--format", choices=("joblib", "skops"), default=None,
                        help="model file format (default: skops for a .skops name, else joblib)")


def _add_loaded_model_options(parser):
    parser.add_argument("model_file", metavar="MODEL",
                        help="a model from fit or zero-shot: .skops files load without pickle; "
                        "other files are joblib pickles, which run code when loaded (load "
                        "only files you trust)")
    parser.add_argument("--device", default=None,
                        help="auto, cpu, cuda or cuda:N (default: the model's)")
    parser.add_argument("--pretrained", default=None,
                        help="where the CLIP weights are now, if they moved since fit: a tag or "
                        "a checkpoint file (default: the model's)")


def build_parser():
    """The argument parser of ``sklearn-taskres``.

    Returns
    -------
    parser : argparse.ArgumentParser

    Examples
    --------
    >>> from sklearn_taskres.cli import build_parser
    >>> args = build_parser().parse_args(["predict", "model.skops", "photos/", "--proba"])
    >>> args.paths, args.proba, args.format
    (['photos/'], True, 'csv')
    """
    common = _common_options()
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="TaskRes few-shot image classification on CLIP (open_clip), from the "
        "command line. Labelled folders are laid out as DIR/<class>/<images>.",
        epilog="exit status: 0 success, 1 runtime failure (such as unavailable weights), "
        "2 usage or input problem, 130 interrupted",
    )
    parser.add_argument("--model-config", metavar="FILE.json", default=None,
                        help="register this JSON open_clip model config, named after the "
                        "file's stem, before running (for custom or tiny models, offline)")
    parser.add_argument("--debug", action="store_true", default=False,
                        help="show the traceback of errors instead of one line")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    fit = commands.add_parser(
        "fit", parents=[common], help="learn TaskRes on a labelled image folder",
        description="Learn TaskRes on DIR/<class>/<images> and save the classifier. The labels "
        "are the class folder names (sorted); CLIP reads them with underscores as spaces.",
    )
    fit.add_argument("directory", metavar="DIR", help="labelled image folder")
    _add_save_options(fit, required=True)
    _add_model_options(fit)
    fit.add_argument("--alpha", type=_float(0, True), default=0.5,
                     help="scale of the task residual (default: 0.5)")
    fit.add_argument("--learning-rate", type=_float(0, False), default=2e-3,
                     help="peak learning rate of Adam (default: 2e-3; the paper uses 2e-4 "
                     "on ImageNet)")
    fit.add_argument("--epochs", type=_argtypes.positive_int, default=None,
                     help="training epochs (default: 100 with --shots up to 4, else 200, as in "
                     "the paper)")
    fit.add_argument("--shots", type=_argtypes.positive_int, default=None, metavar="K",
                     help="train on K images per class, drawn at random with --seed (a class "
                     "with fewer uses all of them once; default: all images)")
    fit.add_argument("--augment-views", type=_argtypes.non_negative_int, default=0, metavar="V",
                     help="train on V augmented views of every image (random resized crop and "
                     "flip, encoded once; default: 0, the plain evaluation crop)")
    fit.add_argument("--class-weight", choices=("balanced",), default=None,
                     help="weigh every class inversely to its number of images, "
                     "n_images / (n_classes * n_images_of_the_class), as scikit-learn's "
                     "class_weight='balanced' (default: every image weighs 1)")
    fit.add_argument("--seed", type=_argtypes.seed, default=0,
                     help="seed of the --shots draw, the batch order and the views (default: 0)")
    fit.set_defaults(handler=_fit)

    predict = commands.add_parser(
        "predict", parents=[common], help="predict the class of images",
        description="Print one row per image: its path, the predicted label and, with --proba, "
        "the probability of every class. Folders are scanned recursively for images.",
    )
    _add_loaded_model_options(predict)
    predict.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    predict.add_argument("--proba", action="store_true",
                         help="add the probability of every class")
    predict.add_argument("--format", choices=("csv", "json"), default="csv",
                         help="csv (columns path, label, proba_<class>...) or json (a list of "
                         "{path, label, proba}) (default: csv)")
    predict.add_argument("--ray", metavar="ADDRESS", default=None,
                         help="predict on a Ray cluster (needs the ray extra): 'local' starts "
                         "Ray on this machine; 'auto' or ray://host:10001 joins a cluster")
    predict.add_argument("--num-gpus", type=_float(0, True), default=0, metavar="N",
                         help="with --ray: GPUs per worker (default: 0, workers on the CPU)")
    predict.add_argument("--output", metavar="DIR", default=None,
                         help="with --ray: write Parquet files (columns path, label and, with "
                         "--proba, proba in the order of the model's classes) to DIR, a new or "
                         "empty folder, instead of printing the rows")
    predict.set_defaults(handler=_predict)

    evaluate = commands.add_parser(
        "evaluate", parents=[common], help="score a model on a labelled image folder",
        description="Print the accuracy, the per-class accuracy and the confusion matrix of a "
        "model on DIR/<class>/<images>; the class folder names must be labels of the model.",
    )
    _add_loaded_model_options(evaluate)
    evaluate.add_argument("directory", metavar="DIR", help="labelled image folder")
    evaluate.add_argument("--json", action="store_true", help="print the report as JSON")
    evaluate.set_defaults(handler=_evaluate)

    zero_shot = commands.add_parser(
        "zero-shot", parents=[common], help="evaluate zero-shot CLIP on a labelled folder",
        description="Build CLIP's zero-shot classifier from the class folder names (no "
        "training) and print its evaluation on DIR/<class>/<images>, as evaluate does.",
    )
    zero_shot.add_argument("directory", metavar="DIR", help="labelled image folder")
    _add_save_options(zero_shot, required=False)
    _add_model_options(zero_shot)
    zero_shot.add_argument("--json", action="store_true", help="print the report as JSON")
    zero_shot.set_defaults(handler=_zero_shot)

    cache = commands.add_parser(
        "cache", parents=[common], help="show or clear an on-disk feature store",
        description="The feature store that --cache-dir (and cache_dir=) fills: 'info DIR' "
        "says what it holds, 'compact DIR' rewrites it as one shard with one copy of each "
        "vector, 'clear DIR' deletes it (and nothing else in DIR). Compact and clear while no "
        "process is writing to the store.",
    )
    actions = cache.add_subparsers(dest="action", required=True, metavar="ACTION")
    info = actions.add_parser("info", help="vectors, shards, files and bytes of a store")
    info.add_argument("directory", metavar="DIR", help="the --cache-dir of earlier runs")
    info.add_argument("--verify", action="store_true",
                      help="read every vector and check it against its checksum")
    info.add_argument("--json", action="store_true", help="print the figures as JSON")
    compact = actions.add_parser("compact", help="rewrite a store as one shard")
    compact.add_argument("directory", metavar="DIR", help="the --cache-dir of earlier runs")
    clear = actions.add_parser("clear", help="delete a store")
    clear.add_argument("directory", metavar="DIR", help="the --cache-dir of earlier runs")
    clear.add_argument("--legacy", action="store_true",
                       help="only delete the files of the former one-file-per-vector layout")
    cache.set_defaults(handler=_cache)
    return parser


def _version():
    from ._version import __version__

    return __version__


# ---------------------------------------------------------------- entry point


def _exit_status(exc):
    """The exit status of an expected error, or None for a bug (shown with its traceback)."""
    from ._clip import WeightsUnavailableError

    if isinstance(exc, CommandError):
        return exc.status
    if isinstance(exc, WeightsUnavailableError):
        return EXIT_FAILURE
    # The library reports bad input (files, labels, options) as ValueError.
    if isinstance(exc, (FileNotFoundError, ValueError)):
        return EXIT_USAGE
    if isinstance(exc, (OSError, RuntimeError, MemoryError)):
        return EXIT_FAILURE
    return None


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"{PROG}: warning: {message}", file=sys.stderr if file is None else file)


def main(argv=None):
    """Run ``sklearn-taskres`` with ``argv`` and return its exit status.

    Parameters
    ----------
    argv : list of str, default=None
        The arguments without the program name; None reads ``sys.argv``.

    Returns
    -------
    status : int
        0 on success, 1 for a runtime failure, 2 for a usage or input problem,
        130 when interrupted (see the module docstring).
    """
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version and usage errors
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            if args.model_config is not None:
                register_model_config_file(args.model_config)
            return args.handler(args)
    except KeyboardInterrupt:
        if args.debug:
            raise
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        from ._clip import WeightsUnavailableError  # torch: imported once there is work

        status = _exit_status(exc)
        if args.debug or status is None:
            raise
        message = " ".join(str(exc).split()) or type(exc).__name__
        if isinstance(exc, WeightsUnavailableError):
            message += f" On the command line: {exc.command_line_hint}."
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return status
