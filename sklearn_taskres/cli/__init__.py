"""The command line: ``sklearn-taskres`` (or ``python -m sklearn_taskres``).

Subcommands, one module each (the shared plumbing is in ``_common`` and the
prediction files in ``_predictions``):

- ``fit DIR -o MODEL``: learn TaskRes on a folder of labelled images;
- ``predict MODEL PATHS...``: label images (files or folders, scanned
  recursively), printed or written to ``--output FILE`` (``.csv``, ``.jsonl``
  or ``.parquet``) batch by batch; a rerun resumes FILE; an unreadable image
  gets a row with the reason and the run goes on. With ``--ray ADDRESS`` on
  a Ray cluster (``local``, ``auto`` or ``ray://host:port``), printing the
  same rows, or writing Parquet files to a new folder ``--output DIR``;
- ``evaluate MODEL DIR``: accuracy, per-class accuracy and confusion matrix on a folder;
- ``zero-shot``: CLIP's zero-shot classifier from ``--classes`` or
  ``--classnames-file`` (saved with ``-o``), or from the folder names of
  ``DIR``, evaluated there;
- ``review PREDICTIONS -o PAGE.html``: one self-contained HTML page of
  thumbnails, least confident first per class, the images to label next and
  the unreadable files;
- ``sort PREDICTIONS DEST``: copy (or link) every image to ``DEST/<label>/``,
  the layout ``fit`` reads;
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

``--model TinyDigitsCLIP`` is the tiny CLIP of
:func:`sklearn_taskres.testing.trained_tiny_clip`, offline: trained on
first use, then cached; it needs no ``--pretrained`` and no config.
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
    image given to ``fit`` or ``evaluate``, class folders that are not labels
    of the model, a prediction file of another model.
3
    Some images could not be read (``predict``, ``sort``): their rows say
    why, and every other image was done. For ``predict``, the images of this
    run: a run that resumes ``--output FILE`` does not count the unreadable
    files of the earlier runs (it names how many FILE holds).
130
    Interrupted (Ctrl-C).

Expected errors print one line, ``sklearn-taskres: error: ...``, to stderr and
no traceback; ``--debug`` raises them instead.
"""

from ._common import (
    IMAGE_SUFFIXES,
    CommandError,
    class_display_names,
    find_images,
    load_classifier,
    read_labelled_folder,
    register_model_config_file,
)
from ._evaluate import evaluation_report, format_report
from ._main import build_parser, main
from ._predictions import model_fingerprint, read_predictions

__all__ = [
    "IMAGE_SUFFIXES",
    "CommandError",
    "build_parser",
    "class_display_names",
    "evaluation_report",
    "find_images",
    "format_report",
    "load_classifier",
    "main",
    "model_fingerprint",
    "read_labelled_folder",
    "read_predictions",
    "register_model_config_file",
]
