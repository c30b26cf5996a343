"""``predict MODEL PATH...``: label images, streamed to stdout or to a resumable file."""

import csv
import json
import re
import sys
from pathlib import Path

import numpy as np

from .._argtypes import positive_int
from .._progress import progress
from ._common import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_SOME_FAILED,
    PROG,
    UNKNOWN_LABEL,
    CommandError,
    add_loaded_model_options,
    collect_images,
    float_type,
    load_classifier,
    note,
    plain,
    with_overrides,
)
from ._predictions import (
    PredictionWriter,
    drop_partial_line,
    model_fingerprint,
    prediction_format,
    read_predictions,
    remove_predictions,
)

#: How the library names the image it could not read: "X[i]: reason".
_IMAGE_ERROR = re.compile(r"X\[(\d+)\]: (.*)", re.DOTALL)


def add_parser(commands, common):
    predict = commands.add_parser(
        "predict", parents=[common], help="predict the class of images",
        description="One row per image: its path, the predicted label, with --proba the "
        "probability of every class, and an error column (empty unless the image could not be "
        "read). Folders are scanned recursively for images. Rows are printed (or written to "
        "--output FILE) as batches finish, with a progress bar on stderr. An unreadable image "
        "does not stop the run: its row has an empty label and the reason in the error column, "
        "and the reason is shown on stderr.",
        epilog="exit status: 0 every image of this run predicted, 3 some image(s) of this run "
        "could not be read (the others are predicted), 1 runtime failure, 2 usage or input "
        "problem, 130 interrupted. A run that resumes --output FILE predicts the images not yet "
        "in FILE, and its status is about those: the unreadable files of an earlier run keep "
        "their rows in FILE and are counted in the last line, but do not make it 3 (a rerun "
        "with nothing to do exits 0)",
    )
    add_loaded_model_options(predict)
    predict.add_argument("paths", nargs="+", metavar="PATH", help="image files or folders")
    predict.add_argument("--proba", action="store_true",
                         help="add the probability of every class")
    predict.add_argument("--unknown-threshold", type=float, default=None, metavar="T",
                         help="with --output: label _unknown the images whose unknown_score "
                         "(the model's none-of-these score, a column of FILE) is above T "
                         "(default: the model's threshold, chosen from its labels to keep 95 %% "
                         "of them)")
    predict.add_argument("--no-unknown", action="store_true",
                         help="with --output: give every image a class, no _unknown label "
                         "(the unknown_score column stays)")
    predict.add_argument("--format", choices=("csv", "json", "jsonl"), default=None,
                         help="of the rows printed: csv (columns path, label, proba_<class>..., "
                         "error), json (a list of {path, label, proba, error}) or jsonl (one "
                         "such object per line) (default: csv)")
    predict.add_argument("--output", metavar="FILE", default=None,
                         help="write the rows to FILE instead: .csv, .jsonl or .parquet (a "
                         "folder of Parquet files, one per batch), each row with a 'model' "
                         "column, the model's fingerprint, and an unknown_score column, the "
                         "model's none-of-these score (label _unknown above its threshold). "
                         "If FILE exists, the run resumes it: "
                         "images already in FILE are skipped and the others appended; a FILE of "
                         "another model (or without/with --proba) is refused. With --ray: a new "
                         "or empty folder that Ray writes Parquet files to (no resume)")
    predict.add_argument("--overwrite", action="store_true",
                         help="start --output FILE afresh instead of resuming it")
    predict.add_argument("--batch-size", type=positive_int, default=64, metavar="N",
                         help="images per batch: each batch is written as soon as it is "
                         "predicted (default: 64)")
    predict.add_argument("--ray", metavar="ADDRESS", default=None,
                         help="predict on a Ray cluster (needs the ray extra): 'local' starts "
                         "Ray on this machine; 'auto' or ray://host:10001 joins a cluster")
    predict.add_argument("--num-gpus", type=float_type(0, True), default=0, metavar="N",
                         help="with --ray: GPUs per worker (default: 0, workers on the CPU)")
    predict.set_defaults(handler=run)


def run(args):
    """``predict``: one row per image, streamed batch by batch."""
    if args.output is not None and args.format is not None:
        raise CommandError(
            f"expected --format for printed rows only; got --format {args.format} with "
            "--output (the format of --output follows its suffix: .csv, .jsonl or .parquet)"
        )
    if args.output is not None and args.ray is not None:
        _check_empty_output_dir(args.output)
    elif args.output is not None:
        prediction_format(args.output)
    classifier = with_overrides(load_classifier(args.model_file), args)
    paths = [str(path) for path in collect_images(args.paths)]
    classes = [plain(label) for label in classifier.classes_]
    if args.ray is not None:  # the cluster's rows: every image a class, no unknown_score yet
        return _run_on_ray(classifier, paths, args)
    if args.output is not None:  # printed rows keep one class per image
        classifier = with_unknown(classifier, args)

    if args.output is None:
        sink = _Printer(args.format or "csv", classes, args.proba)
        todo, n_failed_before = paths, 0
    else:
        fingerprint = model_fingerprint(classifier)
        todo, n_failed_before = _resume(args, paths, classes, fingerprint)
        sink = PredictionWriter(args.output, classes, args.proba, fingerprint,
                                unknown=classifier.unknown_label is not None)
    n_failed = 0
    with progress(True, total=len(todo), unit="image", desc="predict", file=sys.stderr) as bar:
        for start in range(0, len(todo), args.batch_size):
            rows = predict_batch(classifier, todo[start:start + args.batch_size], args.proba)
            sink.write(rows)
            for row in rows:
                if row["error"] is not None:
                    n_failed += 1
                    bar.write(f"{PROG}: cannot read {row['path']!r}: {row['error']}",
                              file=sys.stderr)
            bar.update(len(rows))
    sink.close()
    if args.output is not None:
        note(f"wrote {len(todo)} row(s) to {args.output}" + (
            f" ({len(paths) - len(todo)} already there)" if len(todo) < len(paths) else ""))
    if n_failed:
        note(f"{n_failed} image(s) could not be read: their rows have an empty label and the "
             "reason in the error column")
    if n_failed_before:
        # The status is this run's: a rerun that met no bad file did nothing wrong.
        note(f"{n_failed_before} image(s) that an earlier run could not read keep their rows "
             f"in {args.output}; not counted in the exit status of this run")
    return EXIT_SOME_FAILED if n_failed else EXIT_OK


def with_unknown(classifier, args):
    """The classifier labelling ``_unknown`` the images of none of the classes, unless asked not.

    Models saved before the none-of-these score give every image a class.
    """
    if getattr(args, "no_unknown", False) or not hasattr(classifier.head_, "unknown_threshold_"):
        return classifier.set_params(unknown_label=None)
    threshold = getattr(args, "unknown_threshold", None)
    return classifier.set_params(unknown_label=UNKNOWN_LABEL,
                                 unknown_threshold="auto" if threshold is None else threshold)


def predict_batch(classifier, paths, proba):
    """Rows (``path``, ``label``, ``proba``, ``unknown_score``, ``error``) of a batch of images.

    An image the library cannot read (its error names ``X[i]``) gets a row
    with the reason and no label; the others of the batch are predicted
    again without it. Any other error is not an image's fault and is raised.
    """
    errors, pending = {}, list(range(len(paths)))
    while pending:
        try:
            batch = [paths[index] for index in pending]
            features = classifier._features(batch)  # encoded once for every column
            head = classifier._synced_head()
            values = head.predict_proba(features) if proba else None
            labels = head.predict(features)
            scores = (head.score_unknown(features) if hasattr(head, "unknown_threshold_")
                      else None)
            break
        except (ValueError, OSError) as exc:
            match = _IMAGE_ERROR.match(str(exc))
            if match is None or int(match[1]) >= len(pending):
                raise
            bad = pending.pop(int(match[1]))
            errors[bad] = image_error(match[2], paths[bad])
    else:
        values = labels = scores = []
    predicted = dict(zip(pending, range(len(pending)), strict=True))
    rows = []
    for index, path in enumerate(paths):
        if index in errors:
            rows.append({"path": path, "label": None, "proba": None, "error": errors[index]})
            continue
        position = predicted[index]
        rows.append({
            "path": path,
            "label": plain(labels[position]),
            "proba": None if values is None else [float(p) for p in values[position]],
            "unknown_score": None if scores is None else round(float(scores[position]), 4),
            "error": None,
        })
    return rows


def image_error(message, path):
    """The reason an image could not be read, on one line, without its path.

    The row and the line on stderr name the file once; the library's message
    (and Pillow's within it) name it again.

    Examples
    --------
    >>> from sklearn_taskres.cli._predict import image_error
    >>> image_error("cannot decode the image file 'a b.jpg': cannot identify image file "
    ...             "'a b.jpg'", "a b.jpg")
    'cannot decode the image file: cannot identify image file'
    """
    message = re.sub(r"\s*" + re.escape(repr(str(path))), "", message)
    return " ".join(message.split()).rstrip(":")


def _resume(args, paths, classes, fingerprint):
    """The paths still to predict into ``--output``, and the failures already there."""
    output = args.output
    if args.overwrite:
        remove_predictions(output)
    if not Path(output).exists():
        return list(dict.fromkeys(paths)), 0  # a path given twice is predicted once
    if Path(output).is_file():
        drop_partial_line(output)  # the line a kill cut short is predicted again
    previous_classes, rows = read_predictions(output)
    models = sorted({row["model"] for row in rows} - {fingerprint})
    if models:
        raise CommandError(
            f"expected --output {str(output)!r} to hold predictions of this model (fingerprint "
            f"{fingerprint}) to resume; got rows of the model(s) {models}. Nothing was "
            "overwritten: choose another --output, or add --overwrite to start afresh"
        )
    wanted = [str(label) for label in classes] if args.proba else None
    if rows and (previous_classes is None) != (wanted is None):
        raise CommandError(
            f"expected --output {str(output)!r} to be resumed "
            f"{'with' if previous_classes else 'without'} --proba, as it was written; got "
            f"{'--proba' if args.proba else 'no --proba'}. Nothing was overwritten"
        )
    done = {row["path"] for row in rows}
    n_failed = sum(row["error"] is not None for row in rows)
    todo = [path for path in dict.fromkeys(paths) if path not in done]
    if done:
        note(f"resuming {output}: {len(done)} image(s) already there, {len(todo)} to go")
    return todo, n_failed


class _Printer:
    """Rows printed to stdout as they come: CSV, a JSON list or JSON lines."""

    def __init__(self, kind, classes, proba):
        self.kind, self.classes, self.proba = kind, classes, proba
        self.n_rows = 0
        if kind == "csv":
            self.writer = csv.writer(sys.stdout, lineterminator="\n")
            # Prefixed so that a class called "path" or "label" keeps its own column.
            probas = [f"proba_{label}" for label in classes] if proba else []
            self.writer.writerow(["path", "label", *probas, "error"])
            sys.stdout.flush()

    def _object(self, row):
        entry = {"path": row["path"], "label": row["label"]}
        if self.proba:
            entry["proba"] = None if row["proba"] is None else dict(
                zip(map(str, self.classes), row["proba"], strict=True))
        entry["error"] = row["error"]
        return entry

    def write(self, rows):
        if self.kind == "csv":
            for row in rows:
                probas = (row["proba"] or [""] * len(self.classes)) if self.proba else []
                self.writer.writerow([row["path"], "" if row["label"] is None else row["label"],
                                      *probas, row["error"] or ""])
        elif self.kind == "jsonl":
            sys.stdout.write("".join(json.dumps(self._object(row)) + "\n" for row in rows))
        else:
            for row in rows:
                text = json.dumps(self._object(row), indent=2).replace("\n", "\n  ")
                sys.stdout.write(("[\n  " if not self.n_rows else ",\n  ") + text)
                self.n_rows += 1
        sys.stdout.flush()

    def close(self):
        if self.kind == "json":
            sys.stdout.write("\n]\n" if self.n_rows else "[]\n")
            sys.stdout.flush()


def _check_empty_output_dir(directory):
    path = Path(directory)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise CommandError(
            f"expected --output with --ray to be a new or empty folder; got {str(path)!r}, "
            f"which {'is not a folder' if not path.is_dir() else 'already holds files'} "
            "(nothing is overwritten: remove it or choose another folder)"
        )


def _run_on_ray(classifier, paths, args):
    """Predict through :func:`sklearn_taskres.ray.predict_dataset` on the cluster at ``--ray``.

    Prints the rows in the order of ``paths``, or writes Parquet files to
    ``--output``.
    """
    try:
        import ray

        from ..ray import predict_dataset
    except ImportError as exc:
        raise CommandError(str(exc), EXIT_FAILURE) from exc

    started = not ray.is_initialized()
    if started:
        options = {"include_dashboard": False} if args.ray == "local" else {}
        ray.init(address=args.ray, logging_level="WARNING", **options)
    try:
        dataset = ray.data.from_items([{"path": path} for path in paths])
        predicted = predict_dataset(classifier, dataset, image_column="path",
                                    proba=args.proba, num_gpus=args.num_gpus)
        if args.output is not None:
            predicted.write_parquet(str(args.output))
            note(f"wrote the predictions of {len(paths)} images to {args.output} (Parquet: "
                 "columns path, label" + (", proba" if args.proba else "") + ")")
            return EXIT_OK
        predicted.context.execution_options.preserve_order = True  # the rows of `paths`
        batches = list(predicted.iter_batches(batch_format="numpy", batch_size=None))
        labels = np.concatenate([batch["label"] for batch in batches])
        labels = labels.astype(classifier.classes_.dtype, copy=False)
        proba = np.concatenate([batch["proba"] for batch in batches]) if args.proba else None
    finally:
        if started:
            ray.shutdown()
    printer = _Printer(args.format or "csv", [plain(c) for c in classifier.classes_], args.proba)
    printer.write([
        {"path": path, "label": plain(label), "error": None,
         "proba": None if proba is None else [float(p) for p in proba[index]]}
        for index, (path, label) in enumerate(zip(paths, labels, strict=True))
    ])
    printer.close()
    return EXIT_OK
