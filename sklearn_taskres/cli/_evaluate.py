"""``evaluate MODEL DIR``: accuracy, per-class accuracy and confusion matrix on a folder."""

import json

from ._common import (
    EXIT_OK,
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
        "model on DIR/<class>/<images>; the class folder names must be labels of the model.",
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


def evaluate_on(classifier, directory, as_json):
    _, paths, folders = read_labelled_folder(directory)
    label_of = {str(label): label for label in map(plain, classifier.classes_)}
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



def run(args):
    """``evaluate``: accuracy, per-class accuracy and confusion matrix on a labelled folder."""
    classifier = with_overrides(load_classifier(args.model_file), args)
    return evaluate_on(classifier, args.directory, args.json)


