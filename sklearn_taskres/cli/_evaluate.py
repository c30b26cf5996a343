"""``evaluate MODEL DIR``: accuracy, per-class accuracy and confusion matrix on a folder."""

import copy
import json

from ._common import (
    EXIT_OK,
    NONE_FOLDER,
    CommandError,
    add_loaded_model_options,
    load_classifier,
    plain,
    read_labelled_folder,
    with_overrides,
)


def add_parser(commands, common):
    evaluate = commands.add_parser(
        "evaluate", parents=[common], help="score a model on a labelled image folder",
        description="Print the accuracy, the per-class accuracy and the confusion matrix of a "
        "model on DIR/<class>/<images>; the class folder names must be labels of the model. "
        "Images in DIR/_none/ are of none of the classes: with them, the report adds how well "
        "the model's unknown_score tells them from the others (AUROC, the share of them kept "
        "where 95 %% of the others are, FPR95) and what its threshold keeps; the accuracy is "
        "then on the classes' images.",
    )
    add_loaded_model_options(evaluate)
    evaluate.add_argument("directory", metavar="DIR", help="labelled image folder")
    evaluate.add_argument("--json", action="store_true", help="print the report as JSON")
    evaluate.set_defaults(handler=run)


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

    y_true, y_pred = list(map(plain, y_true)), list(map(plain, y_pred))
    seen = set(y_true) | set(y_pred)
    labels = [label for label in map(plain, classes) if label in seen]
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


def open_set_report(scores, is_none, y_true, y_pred, threshold):
    """How well ``scores`` tell the none images apart, and what ``threshold`` keeps.

    Returns a dict of plain values: ``auroc``, ``fpr95`` (the share of none
    images whose score is at most the 95th percentile of the others'),
    ``threshold``, ``known_kept`` and ``none_kept`` (shares at or below the
    threshold), ``accuracy_kept`` (on the kept images of the classes) and
    ``n_none``.

    Examples
    --------
    >>> from sklearn_taskres.cli._evaluate import open_set_report
    >>> report = open_set_report([0.0, 1.0, 3.0, 2.0], [False, False, True, True],
    ...                          ["a", "b"], ["a", "a"], 1.5)
    >>> report["auroc"], report["fpr95"], report["known_kept"], report["accuracy_kept"]
    (1.0, 0.0, 1.0, 0.5)
    """
    import numpy as np
    from sklearn.metrics import roc_auc_score

    scores, is_none = np.asarray(scores, dtype=float), np.asarray(is_none, dtype=bool)
    known = scores[~is_none]
    kept = known <= threshold
    correct = np.asarray([plain(a) == plain(b) for a, b in zip(y_true, y_pred, strict=True)])
    return {
        "auroc": float(roc_auc_score(is_none, scores)),
        "fpr95": float(np.mean(scores[is_none] <= np.quantile(known, 0.95))),
        "threshold": float(threshold),
        "known_kept": float(np.mean(kept)),
        "none_kept": float(np.mean(scores[is_none] <= threshold)),
        "accuracy_kept": float(np.mean(correct[kept])) if kept.any() else None,
        "n_none": int(is_none.sum()),
    }


def format_open_set(report):
    """The open-set part of the report as text for people."""
    kept = report["accuracy_kept"]
    return "\n".join([
        "",
        f"none of these ({report['n_none']} images in {NONE_FOLDER}/):",
        f"  AUROC of unknown_score: {report['auroc']:.4f}",
        f"  FPR95 (share of them kept where 95 % of the others are): {report['fpr95']:.4f}",
        f"  the model's threshold {report['threshold']:.3f} keeps {report['known_kept']:.1%} of "
        f"the images of the classes and {report['none_kept']:.1%} of those of none; accuracy "
        f"on the kept images of the classes: {'-' if kept is None else f'{kept:.4f}'}",
    ])


def evaluate_on(classifier, directory, as_json):
    _, paths, folders = read_labelled_folder(directory)
    none_paths = [path for path, folder in zip(paths, folders, strict=True)
                  if folder == NONE_FOLDER]
    paths, folders = paths[:len(paths) - len(none_paths)], folders[:len(folders) - len(none_paths)]
    label_of = {str(label): label for label in map(plain, classifier.classes_)}
    unknown = sorted(set(folders) - set(label_of))
    if unknown:
        raise CommandError(
            f"expected the class folders of {str(directory)!r} to be labels of the model "
            f"({sorted(label_of)}); got unknown folder(s) {unknown}"
        )
    y_true = [label_of[folder] for folder in folders]
    if not none_paths:
        report = evaluation_report(y_true, classifier.predict(paths), classifier.classes_)
        print(json.dumps(report, indent=2) if as_json else format_report(report))
        return EXIT_OK
    if not hasattr(classifier.head_, "unknown_threshold_"):
        raise CommandError(
            f"expected a model with the none-of-these score for the images of "
            f"{str(directory)!r}/{NONE_FOLDER}; got one saved by an older sklearn-taskres. "
            "Fit it again"
        )
    head = classifier._synced_head()
    features = classifier._features([*paths, *none_paths])
    y_pred = copy.copy(head).set_params(unknown_label=None).predict(features[:len(paths)])
    report = evaluation_report(y_true, y_pred, classifier.classes_)
    report["none_of_these"] = open_set_report(
        head.score_unknown(features), [False] * len(paths) + [True] * len(none_paths),
        y_true, y_pred, head._unknown_threshold())
    print(json.dumps(report, indent=2) if as_json
          else format_report(report) + "\n" + format_open_set(report["none_of_these"]))
    return EXIT_OK



def run(args):
    """``evaluate``: accuracy, per-class accuracy and confusion matrix on a labelled folder."""
    classifier = with_overrides(load_classifier(args.model_file), args)
    return evaluate_on(classifier, args.directory, args.json)


