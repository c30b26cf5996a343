"""Shared plumbing of the commands: errors, image folders, class names, models, options."""

import argparse
import json
import os
import sys
import warnings
import zipfile
from pathlib import Path

import numpy as np

from .._images import _COMMON_SUFFIXES, image_suffixes
from .._open_set import NONE_LABEL

PROG = "sklearn-taskres"
EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_SOME_FAILED = 3
EXIT_INTERRUPTED = 130

#: The suffixes of the folder scans where no optional format is installed (see
#: :func:`sklearn_taskres._images.image_suffixes`: AVIF where Pillow reads it,
#: HEIC/HEIF with the heif extra).
IMAGE_SUFFIXES = frozenset(_COMMON_SUFFIXES)
_MODEL_CONFIG_KEYS = ("embed_dim", "vision_cfg", "text_cfg")
DEFAULT_MODEL = "ViT-B-32"
#: The tiny digits CLIP of sklearn_taskres.testing: the one name known besides open_clip's.
TRAINED_TINY_CLIP_NAME = "TinyDigitsCLIP"


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


#: The folder of images of none of the classes in a labelled folder; their label in y.
NONE_FOLDER = NONE_LABEL
#: What predict, sort and review say for an image of none of the classes.
UNKNOWN_LABEL = "_unknown"


def _is_visible(name):
    return not name.startswith(".")


def _is_image_file(name):
    # Dot files are skipped too: macOS writes "._photo.jpg" metadata beside photos.
    return _is_visible(name) and os.path.splitext(name)[1].lower() in image_suffixes()


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
        ``_none/`` (:data:`NONE_FOLDER`), the images of none of the classes,
        is not a class.
    paths : list of pathlib.Path
        Every image, class after class, then those of ``_none/``.
    labels : list of str
        The class folder of every image (``"_none"`` for ``_none/``).

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
    if UNKNOWN_LABEL in folders:
        # what sort files as none of the classes: not labelled by a person.
        note(f"{str(directory / UNKNOWN_LABEL)!r} left out: images a model took for none of "
             f"the classes; move those that are to {NONE_FOLDER}{os.sep}, the others to their "
             "class")
        folders.remove(UNKNOWN_LABEL)
    with_none = folders
    folders = [folder for folder in folders if folder != NONE_FOLDER]
    if len(folders) < 2:
        raise CommandError(
            f"expected at least 2 class folders in {str(directory)!r} ({layout}); "
            f"got {len(folders)}: {folders}"
        )
    paths, labels = [], []
    for folder in [*folders, NONE_FOLDER] if NONE_FOLDER in with_none else folders:
        images = find_images(directory / folder)
        paths.extend(images)
        labels.extend([folder] * len(images))
    if not paths or all(label == NONE_FOLDER for label in labels):
        raise CommandError(
            f"expected image files ({', '.join(sorted(image_suffixes()))}) in the class folders "
            f"of {str(directory)!r}; got none" + (
                f" (only in {str(directory / NONE_FOLDER)!r}, images of none of the classes)"
                if paths else "")
        )
    return folders, paths, labels


def collect_images(paths):
    """Image files from a list of files and folders; folders are scanned recursively."""
    images = []
    for path in map(Path, paths):
        if path.is_dir():
            found = find_images(path)
            if not found:
                raise CommandError(
                    f"expected image files ({', '.join(sorted(image_suffixes()))}) in the folder "
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


def default_display_name(label):
    """The name CLIP reads for a label: underscores as spaces, runs of spaces as one."""
    return " ".join(label.replace("_", " ").split())


def read_classnames_file(classnames_file, bare_names=False):
    """``{label: display name}`` from a classnames file, in the file's order.

    Lines are ``label<TAB>display name`` or ``label,display name`` (split at
    the first comma); with ``bare_names``, a line may also hold a label alone,
    read with underscores as spaces. Blank lines and lines starting with ``#``
    are skipped.
    """
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
        if bare_names and not separator:
            display = default_display_name(folder)
        elif not separator or not folder or not display:
            raise CommandError(
                f"expected 'folder<TAB>display name' or 'folder,display name' on line {number} "
                f"of {str(path)!r}; got {line!r}"
            )
        if folder in (NONE_FOLDER, UNKNOWN_LABEL):
            raise CommandError(
                f"expected class folders on line {number} of {str(path)!r}; got {folder!r}, "
                "which stands for images of none of the classes and is never a class"
            )
        if folder in given:
            raise CommandError(
                f"expected each folder once in {str(path)!r}; got {folder!r} again on line "
                f"{number}"
            )
        given[folder] = display
    return given


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
    names = {folder: default_display_name(folder) for folder in folders}
    if classnames_file is None:
        return names
    given = read_classnames_file(classnames_file)
    unknown = sorted(set(given) - set(folders))
    if unknown:
        raise CommandError(
            f"expected the folders named in {str(classnames_file)!r} to be class folders "
            f"({folders}); got unknown folder(s) {unknown}"
        )
    names.update(given)
    return names


def templates_of(values):
    """``--templates`` values as ``TaskResClassifier(templates=...)``.

    One value is passed on as given (a set name or one template), so that the
    saved model records the set's name; several are expanded and joined.
    """
    if not values:
        return None
    if len(values) == 1:
        return values[0]
    from .._templates import resolve_templates

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
    from .._clip import register_model_config

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


def pretrained_of(text):
    return None if text.lower() == "none" else text


def model_and_weights(args):
    """``(model, pretrained)`` of ``--model``, ``--model-config`` and ``--pretrained``.

    Besides open_clip's names, the command line knows ``TinyDigitsCLIP``, the
    tiny CLIP of :func:`sklearn_taskres.testing.trained_tiny_clip`: its config
    is registered here, and ``--pretrained auto`` means its checkpoint,
    trained on first use (with a progress bar) and cached.
    """
    model = model_name(args)
    pretrained = pretrained_of(args.pretrained)
    if model == TRAINED_TINY_CLIP_NAME:
        pretrained = _tiny_digits_weights(pretrained)
    return model, pretrained


def _tiny_digits_weights(pretrained):
    """Register the tiny digits CLIP's config; its checkpoint for ``"auto"``."""
    import open_clip

    from .._clip import register_model_config
    from .._tiny_digits import TRAINED_TINY_CLIP_CONFIG, cached_checkpoint, trained_checkpoint

    known = open_clip.get_model_config(TRAINED_TINY_CLIP_NAME)
    if known is not None and json.loads(json.dumps(known)) != TRAINED_TINY_CLIP_CONFIG:
        raise CommandError(
            f"expected --model {TRAINED_TINY_CLIP_NAME} to be the tiny digits CLIP, whose "
            "config the command line knows; got another config registered under that name "
            "by --model-config (rename that file to use both)"
        )
    register_model_config(TRAINED_TINY_CLIP_NAME, TRAINED_TINY_CLIP_CONFIG)
    if pretrained != "auto":
        return pretrained
    path, cached = cached_checkpoint()
    if not cached:
        note(f"training {TRAINED_TINY_CLIP_NAME}, the tiny CLIP of scikit-learn's digits, "
             f"on first use (about a minute on a CPU); then cached as {str(path)!r}")
        path = trained_checkpoint(verbose=1)
    return str(path)


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


def check_model_output(path, requested_format):
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


def save_classifier(classifier, path, model_format):
    import joblib

    from .._persistence import save_model

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

    from .._classifier import TaskResClassifier
    from .._persistence import load_model

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


def encoder_params(args):
    """The parameters of a new classifier's encoder, from the model options of a command.

    ``model``, ``pretrained`` (through :func:`model_and_weights`: the tiny
    digits CLIP and ``--model-config`` included), ``templates``, ``device``
    and ``cache_dir``. Every command that builds a classifier takes them
    from here, so that none of them misses a step.
    """
    model, pretrained = model_and_weights(args)
    return {"model": model, "pretrained": pretrained, "templates": templates_of(args.templates),
            "device": args.device, "cache_dir": args.cache_dir}


def with_overrides(classifier, args):
    """A loaded classifier with the command's ``--device``, ``--pretrained``, ``--cache-dir``.

    Options left at None keep the model's own value, and so does ``--pretrained
    auto``, except for the tiny digits CLIP, whose cached checkpoint it names.
    Every command that runs a saved model goes through here.
    """
    overrides = {}
    if getattr(args, "device", None) is not None:
        overrides["device"] = args.device
    pretrained = getattr(args, "pretrained", None)
    if classifier.model == TRAINED_TINY_CLIP_NAME and pretrained is not None:
        overrides["pretrained"] = _tiny_digits_weights(pretrained_of(pretrained))
    elif pretrained not in (None, "auto"):
        overrides["pretrained"] = pretrained_of(pretrained)
    if getattr(args, "cache_dir", None) is not None:
        overrides["cache_dir"] = args.cache_dir
    return classifier.set_params(**overrides)


def model_name(args):
    if args.model is not None:
        return args.model
    if args.model_config is not None:
        return Path(args.model_config).stem
    return DEFAULT_MODEL


def plain(label):
    """A label as a plain Python value, for CSV and JSON."""
    return label.item() if isinstance(label, np.generic) else label


def note(message):
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)



# ---------------------------------------------------------------- options


def float_type(low, low_inclusive):
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


def alpha_type(text):
    """An argparse type: ``auto`` or a number >= 0, the ``alpha`` of TaskRes."""
    if text == "auto":
        return text
    try:
        return float_type(0, True)(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(
            f"expected 'auto' or a number >= 0; got {text!r}") from None


def common_options():
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


def add_model_options(parser):
    parser.add_argument("--model", default=None,
                        help="open_clip model name, hf-hub:org/repo or local-dir:/path, or "
                        f"{TRAINED_TINY_CLIP_NAME} (offline: a tiny CLIP trained on "
                        "scikit-learn's digits on first use, then cached) (default: the "
                        f"--model-config stem if given, else {DEFAULT_MODEL})")
    parser.add_argument("--pretrained", default="auto",
                        help="open_clip pretrained tag or local checkpoint file; 'none' for a "
                        "random initialisation; 'auto': the weights of a hf-hub: or "
                        f"local-dir: model, the cached checkpoint of {TRAINED_TINY_CLIP_NAME}, "
                        "else openai (default: auto)")
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


def add_save_options(parser, required):
    parser.add_argument("-o", "--output", required=required, metavar="MODEL",
                        help="model file to write; .skops is the pickle-free format")
    parser.add_argument("--format", choices=("joblib", "skops"), default=None,
                        help="model file format (default: skops for a .skops name, else joblib)")


def add_loaded_model_options(parser):
    parser.add_argument("model_file", metavar="MODEL",
                        help="a model from fit or zero-shot: .skops files load without pickle; "
                        "other files are joblib pickles, which run code when loaded (load "
                        "only files you trust)")
    parser.add_argument("--device", default=None,
                        help="auto, cpu, cuda or cuda:N (default: the model's)")
    parser.add_argument("--pretrained", default=None,
                        help="where the CLIP weights are now, if they moved since fit: a tag or "
                        "a checkpoint file (default: the model's)")
    parser.add_argument("--cache-dir", metavar="DIR", default=None,
                        help="on-disk feature cache shared by runs (default: the model's)")


