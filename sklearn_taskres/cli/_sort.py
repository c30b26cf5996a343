"""``sort PREDICTIONS DEST``: copy (or link) every image to ``DEST/<label>/``, which fit reads.

Source files are only read: never moved, changed or deleted.
"""

import argparse
import filecmp
import os
import shutil
from pathlib import Path

from .._labels_log import final_decisions, is_labels_log, read_labels_log
from ._common import (
    EXIT_OK,
    EXIT_SOME_FAILED,
    NONE_FOLDER,
    PROG,
    UNKNOWN_LABEL,
    CommandError,
    note,
)
from ._predictions import read_predictions
from ._review import confidence


def add_parser(commands, common):
    sort = commands.add_parser(
        "sort", parents=[common], help="copy images into DEST/<label>/ folders",
        description="Copy (or, with --link, symlink) every image of a file of 'predict "
        "--output' to DEST/<label>/, the layout that 'fit DEST' reads. Images whose "
        "probability is below --min-proba go to the review folder instead, under their "
        "predicted label: DEST-review/<label>/ beside DEST (or --review-dir), outside the class "
        "folders. Images the model took for none of the classes (label _unknown) go to "
        "DEST/_unknown/, which 'fit DEST' leaves out. Source files are never moved, changed "
        "or deleted; a name already taken in "
        "a folder by another file gets a unique name (photo-1.jpg), and an identical copy "
        "already there is kept, so a rerun adds only what is new. Unreadable images are left "
        "out and listed.",
        epilog="exit status: 0 every image sorted, 3 some image(s) left out (unreadable or "
        "missing), 2 usage or input problem",
    )
    sort.add_argument("predictions", metavar="PREDICTIONS",
                      help="a .csv, .jsonl or .parquet file of 'predict --output', or the "
                      "labels file of 'label' (the last decision of every image; images of "
                      "none of the classes are left where they are)")
    sort.add_argument("destination", metavar="DEST", help="folder of the class folders")
    sort.add_argument("--min-proba", type=_probability, default=None, metavar="P",
                      help="images predicted with a probability below P go to the review "
                      "folder (needs 'predict --proba'; default: none, every image to its class)")
    sort.add_argument("--review-dir", metavar="DIR", default=None,
                      help="the review folder (default: DEST-review beside DEST)")
    sort.add_argument("--link", action="store_true",
                      help="make symbolic links to the images instead of copies")
    sort.set_defaults(handler=run)


def _probability(text):
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a probability in [0, 1]; got {text!r}")
    return value


def _labels_rows(path):
    """The rows of a labels file of ``label`` as prediction rows: one per labelled image."""
    decisions = final_decisions(read_labels_log(path))
    n_none = sum(label is None for label in decisions.values())
    if n_none:
        note(f"{n_none} image(s) of none of the classes in {path!r} are not sorted")
    return None, [{"path": image, "label": label, "proba": None, "error": None}
                  for image, label in decisions.items() if label is not None]


def _check_folder_name(label):
    """A label as the name of a class folder that fit reads back as the same label."""
    name = str(label)
    if (not name or name in (".", "..") or name.startswith(".") or "/" in name
            or "\\" in name or "\0" in name):
        raise CommandError(
            f"expected labels that can be folder names (no '/', '\\\\', not starting with "
            f"'.'); got {name!r}. Nothing was copied"
        )
    return name


def _inside(path, folder):
    return path == folder or folder in path.parents


def run(args):
    """``sort``: copy or link the images into class folders."""
    if is_labels_log(args.predictions):
        classes, rows = _labels_rows(args.predictions)
    else:
        classes, rows = read_predictions(args.predictions)
    if args.min_proba is not None and classes is None:
        raise CommandError(
            f"expected probabilities in {args.predictions!r} for --min-proba (written by "
            "'predict --proba --output'); got rows without them"
        )
    destination = Path(args.destination).resolve()
    review = (Path(args.review_dir) if args.review_dir is not None
              else Path(args.destination).parent / f"{destination.name}-review").resolve()
    if _inside(review, destination):
        raise CommandError(
            f"expected --review-dir outside DEST (fit would read it as a class); got "
            f"{str(review)!r} inside {str(destination)!r}"
        )
    plan, left_out = [], []
    sources = set()
    for row in rows:
        if row["error"] is not None or row["label"] is None:
            left_out.append((row["path"], row["error"] or "no label"))
            continue
        folder = _check_folder_name(row["label"])
        source = Path(row["path"])
        low = args.min_proba is not None and confidence(row["proba"])[0] < args.min_proba
        plan.append((source, (review if low else destination) / folder))
        sources.add(source.resolve().parent)
    for root in (destination, review):
        for source_folder in sources:
            if _inside(root, source_folder):
                raise CommandError(
                    f"expected DEST and the review folder outside the folders of the images; "
                    f"got {str(root)!r} inside {str(source_folder)!r} (a later predict of that "
                    "folder would see the copies). Nothing was copied"
                )
            if _inside(source_folder, root):
                raise CommandError(
                    f"expected DEST and the review folder not to hold the images; got the "
                    f"folder {str(source_folder)!r} inside {str(root)!r} (fit would read it as "
                    "a class). Nothing was copied"
                )
    # (placed now, already there) per root: the class folders and the review folder.
    counts = {destination: [0, 0], review: [0, 0]}
    for source, folder in plan:
        if not source.is_file():
            left_out.append((str(source), "no such file now"))
            continue
        folder.mkdir(parents=True, exist_ok=True)
        target, exists = _target(source, folder, args.link)
        if not exists:
            _place(source, target, args.link)
        counts[folder.parent][exists] += 1
    print(_summary(counts, destination, review, args))
    n_unknown = sum(folder.name == UNKNOWN_LABEL for _, folder in plan)
    if n_unknown:
        note(f"{n_unknown} of them taken for none of the classes: in "
             f"{str(destination / UNKNOWN_LABEL)!r}, which fit leaves out (move those of a "
             f"class to its folder, the others to {NONE_FOLDER}{os.sep} to teach the model)")
    for path, reason in left_out:
        note(f"left out {path!r}: {reason}")
    if left_out:
        note(f"{len(left_out)} image(s) left out (listed above)")
    return EXIT_SOME_FAILED if left_out else EXIT_OK


def _summary(counts, destination, review, args):
    """Where the images went: how many into the class folders, how many into review."""

    def part(root, shown, which):
        placed, kept = counts[root]
        text = f"{placed} image(s){which} into {Path(shown) / '<label>'}{os.sep}"
        return text + (f" ({kept} already there)" if kept else "")

    summary = f"{'linked' if args.link else 'copied'} " + part(destination, args.destination, "")
    if args.min_proba is not None:
        shown = (args.review_dir if args.review_dir is not None
                 else Path(args.destination).parent / review.name)
        summary += " and " + part(review, shown, f" below --min-proba {args.min_proba}")
    return summary


def _target(source, folder, link):
    """Where ``source`` goes in ``folder``, and whether the same image is already there."""
    stem, suffix = os.path.splitext(source.name)
    number = 0
    while True:
        target = folder / (source.name if not number else f"{stem}-{number}{suffix}")
        if not os.path.lexists(target):
            return target, False
        if _same(source, target, link):
            return target, True
        number += 1


def _same(source, target, link):
    if link:
        return target.is_symlink() and Path(os.readlink(target)) == source.resolve()
    return (not target.is_symlink() and target.is_file()
            and filecmp.cmp(source, target, shallow=False))


def _place(source, target, link):
    if link:
        os.symlink(source.resolve(), target)
        return
    # A copy appears complete or not at all: fit never reads half a file.
    temporary = target.with_name(f".{target.name}.{PROG}.tmp")
    shutil.copy2(source, temporary)
    os.replace(temporary, target)
