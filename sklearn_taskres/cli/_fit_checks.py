"""What ``fit`` says about its labels: a labels file as input, empty classes, cross-validation."""

import copy
import os
from pathlib import Path

import numpy as np

from .._labels_log import (
    LabelsFileError,
    final_decisions,
    is_labels_log,
    read_labels_log,
    session_classes,
)
from ._common import (
    NONE_FOLDER,
    PROG,
    UNKNOWN_LABEL,
    CommandError,
    default_display_name,
    note,
    read_classnames_file,
)

#: Fewest labelled images for the cross-validated accuracy; folds.
MIN_CROSS_VALIDATION = 20
N_FOLDS = 5


def read_labels_file(path, classnames_file=None):
    """The classes, images and labels of a labels file of ``label``: its last decision per image.

    Returns
    -------
    classnames : dict
        ``{label: name}`` of the session's classes, in order (names overridden
        by ``classnames_file``).
    paths, labels : list
        The images whose last decision is a class, and that class. "None of
        these" and withdrawn decisions are left out.
    none_paths : list
        The images whose last decision is "none of these".
    """
    path = Path(path)
    if not path.is_file() or not is_labels_log(path):
        raise CommandError(f"expected --labels to be a labels file written by '{PROG} label'; "
                           f"got {str(path)!r}")
    try:
        rows = read_labels_log(path)
    except LabelsFileError as exc:
        raise CommandError(str(exc)) from exc
    for number, row in enumerate(rows, 2):  # record 1 is the header
        if row["event"] in ("label", "class") and row["label"] in (NONE_FOLDER, UNKNOWN_LABEL):
            raise CommandError(
                f"expected class labels in {str(path)!r}; got {row['label']!r} in record "
                f"{number} ({row['event']} row), which stands for images of none of the "
                "classes and is never a class: a 'none' row marks such an image"
            )
    classnames = session_classes(rows) or None
    decisions = final_decisions(rows)
    paths = [image for image, label in decisions.items() if label is not None]
    labels = [decisions[image] for image in paths]
    none_paths = [image for image, label in decisions.items() if label is None]
    if none_paths and not paths:
        first = next(number for number, row in enumerate(rows, 2) if row["event"] == "none")
        raise CommandError(
            f"expected images labelled with a class in {str(path)!r}; got only 'none of "
            f"these' decisions ({len(none_paths)}, the first in record {first}): label at "
            "least one image of a class"
        )
    if classnames is None:
        classnames = {label: default_display_name(label) for label in sorted(set(labels))}
    if classnames_file is not None:
        classnames.update(read_classnames_file(classnames_file, bare_names=True))
    missing = [image for image in paths + none_paths if not os.path.isfile(image)]
    if missing:
        raise CommandError(f"expected the labelled images of {str(path)!r} to exist; got "
                           f"{len(missing)} missing, such as {missing[0]!r}")
    if not paths:
        raise CommandError(f"expected labelled images in {str(path)!r}; got none")
    return classnames, paths, labels, none_paths


def warn_unlabelled_classes(classes, labels):
    """Warn about every class without a labelled image, and say what that does to it."""
    for label in classes:
        if label not in labels:
            note(f"warning: class {label!r} has no labelled image: TaskRes learns it only as "
                 "what the other classes' images are not, which pulls its images to the "
                 "others (on 200 digits, 20 labels without a 0 or a 1 took accuracy from 0.96 "
                 "zero-shot to 0.89). Label a few of its images")


def cross_validation_report(classifier, paths, labels, seed=0):
    """The cross-validated accuracy of the fitted classifier's recipe on its labelled images.

    Against the zero-shot classifier (its base without residual) on the same
    images. None when there are fewer than :data:`MIN_CROSS_VALIDATION` images.
    """
    from sklearn.base import clone
    from sklearn.model_selection import KFold, StratifiedKFold

    y = np.asarray(labels)
    if len(y) < MIN_CROSS_VALIDATION:
        return None
    features = classifier._features(paths)
    zero_shot = copy.deepcopy(classifier.head_)
    zero_shot.residual_ = np.zeros_like(zero_shot.residual_)
    zero_shot_accuracy = float(np.mean(zero_shot.predict(features) == y))
    counts = np.unique(y, return_counts=True)[1]
    splitter = (StratifiedKFold(N_FOLDS, shuffle=True, random_state=seed)
                if counts.min() >= N_FOLDS else KFold(N_FOLDS, shuffle=True, random_state=seed))
    scores = []
    for train, test in splitter.split(features, y):
        head = clone(classifier.head_).fit(features[train], y[train])
        scores.append(float(np.mean(head.predict(features[test]) == y[test])))
    return {"accuracy": float(np.mean(scores)), "std": float(np.std(scores)),
            "zero_shot": zero_shot_accuracy, "n": len(y), "folds": N_FOLDS}


def say_cross_validation(report):
    if report is None:
        note(f"fewer than {MIN_CROSS_VALIDATION} labelled images: no cross-validated accuracy")
        return
    verdict = ("better than" if report["accuracy"] > report["zero_shot"] else
               "NOT better than")
    note(f"cross-validated accuracy on the {report['n']} labelled images ({report['folds']} "
         f"folds): {report['accuracy']:.3f} ± {report['std']:.3f}, {verdict} zero-shot "
         f"{report['zero_shot']:.3f} on the same images")
