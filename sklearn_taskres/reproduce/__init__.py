"""Reproduce the few-shot benchmark of TaskRes: zero-shot CLIP, linear probe and TaskRes.

Run ``python -m sklearn_taskres.reproduce --root DATA`` on a dataset root laid
out as CoOp's DATASETS.md describes. For every dataset, number of shots and
seed it draws the few-shot training set as CoOp does (by default the very
images CoOp's loaders draw for that seed, see :func:`plan_draws`), encodes the
images once (features go to the feature store in ``--cache-dir``, by default
``OUTPUT/features``, so later runs encode nothing; it is the store of
``TaskResClassifier(cache_dir=...)``, and the two share what they encoded),
and evaluates on the test split:

- zero-shot CLIP: the text base classifier alone, with the class names as
  CoOp's zero-shot CLIP writes them (underscores replaced by spaces);
- a linear probe: scikit-learn's ``LogisticRegression`` on the same features,
  its ``C`` chosen on a few-shot validation set;
- TaskRes: :class:`~sklearn_taskres.TaskResHead` with the paper's settings,
  its base built from the class names as the official code writes them (as
  the dataset holds them, see :func:`prompt_classnames`).

ImageNetV2, -Sketch, -A and -R are evaluated with the classifiers trained on
ImageNet (same shots and seed). The script prints one table of mean accuracy
over seeds beside the published RN50 numbers, and writes every run to
``results.csv`` and ``results.json`` in the output folder; ``results.json``
also lists the image paths of every draw, in the order drawn.

``--protocol base2new`` runs CoCoOp's base-to-new generalization instead: the
classes are split in halves as CoOp's ``subsample_classes`` does, TaskRes
learns the base half and is tested on both (see
:meth:`Benchmark.run_base_to_new`); the table gives base, new and harmonic
mean accuracy beside CoCoOp's published means, and each run's record holds
``base_accuracy``, ``new_accuracy`` and ``harmonic_mean`` (see
:func:`read_results`).

With ``--augment-views V`` TaskRes trains on ``V`` augmented views of every
training image (the official augmentation: random resized crop with scale
0.08-1, bicubic, and horizontal flip), one view per image drawn at random in
every epoch. The views are encoded once and stored with the other features,
keyed by the view seed and each view's number. The view seed is fixed
(:data:`VIEW_SEED`) rather than taken from the run's seed: every (shots, seed)
then trains on the same views of an image, so an image drawn by several runs is
augmented and encoded once. Only images that some draw trains on get views.
The linear probe and zero-shot CLIP stay on the evaluation crop, and every
method is evaluated on the evaluation crop.

Costs
-----
Each image is decoded and encoded once, then read from the feature store, so a
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

Precision differs too: the official code (``PREC: fp16``) encodes the prompts
with CLIP's fp16 weights, then casts the model to fp32 and encodes the
training images in fp32 with TF32 matrix products allowed; here the text and
the images are encoded in fp32 (``--precision fp32``, the default), so the
base and the features differ from the official ones by rounding only. Images are decoded as
the official code reads them: JPEG files at full size and EXIF orientation
tags ignored, whatever ``jpeg_draft`` and ``exif_orientation`` say
(:func:`sklearn_taskres.set_config`).
"""

# Where each piece lives, from the bottom up:
#   _datasets   the datasets as CoOp's DATASETS.md lays them out
#   _draws      the few-shot training and validation images of every (shots, seed)
#   _encoding   their features, through the feature store
#   _methods    zero-shot CLIP, the linear probe and TaskRes's settings; the scores
#   _protocols  Benchmark: few-shot, base-to-new and distribution shift, a record per run
#   _results    results.csv and results.json
#   _tables     the published numbers, and the tables that print runs beside them
#   _command    the command line (python -m sklearn_taskres.reproduce)
from . import _draws, _encoding, _methods, _tables
from ._command import build_parser, main
from ._datasets import (  # noqa: F401 (the layouts: importable from here too)
    ALL_DATASETS,
    DISTRIBUTION_SHIFT_DATASETS,
    FEW_SHOT_DATASETS,
    DatasetLayoutError,
    base_and_new_classes,
    load_dataset,
)
from ._draws import draw_record, plan_draws
from ._encoding import ENCODE_CHUNK, CountingEncoder, EncodedSplit, encode_split
from ._methods import (
    LINEAR_PROBE_MAX_ITER,
    GDABlend,
    fit_gda,
    fit_linear_probe,
    gda_weights,
    harmonic_mean,
    head_for_classes,
    linear_probe_predict,
    prompt_classnames,
    taskres_settings,
    zero_shot_predict,
)
from ._protocols import Benchmark
from ._results import CSV_FIELDS, read_results, write_results
from ._tables import METHOD_TITLES, format_base_to_new_table, format_table

# The constants the API reference documents, with the comments it shows (it reads
# them from this file); each is the object its own module defines and uses.

#: Published 11-dataset mean accuracy (%) with CLIP RN50 (OpenAI weights), by shots.
PUBLISHED_RN50_MEAN = _tables.PUBLISHED_RN50_MEAN
#: Base-to-new generalization, 11-dataset means (%) of CoCoOp's Table 1 (CLIP
#: ViT-B/16, 16 shots): (base, new, harmonic mean). The per-dataset rows of
#: that table are not given here.
PUBLISHED_BASE_TO_NEW_MEAN = _tables.PUBLISHED_BASE_TO_NEW_MEAN
#: CoOp draws min(shots, 4) validation images per class.
MAX_VALIDATION_SHOTS = _draws.MAX_VALIDATION_SHOTS
#: Coarse grid of the linear probe's inverse regularisation C, as CoOp's linear probe.
LINEAR_PROBE_GRID = _methods.LINEAR_PROBE_GRID
#: Refinements around the best C: +-1, +-0.5 and +-0.25 decades.
LINEAR_PROBE_REFINE_STEPS = _methods.LINEAR_PROBE_REFINE_STEPS
#: Seed of the augmented views of every run, whatever its seed: each image is
#: augmented (and encoded) once and its views are shared by every (shots, seed).
VIEW_SEED = _encoding.VIEW_SEED

__all__ = [
    "CSV_FIELDS",
    "ENCODE_CHUNK",
    "LINEAR_PROBE_GRID",
    "LINEAR_PROBE_MAX_ITER",
    "LINEAR_PROBE_REFINE_STEPS",
    "MAX_VALIDATION_SHOTS",
    "METHOD_TITLES",
    "PUBLISHED_BASE_TO_NEW_MEAN",
    "PUBLISHED_RN50_MEAN",
    "VIEW_SEED",
    "Benchmark",
    "CountingEncoder",
    "GDABlend",
    "EncodedSplit",
    "build_parser",
    "draw_record",
    "encode_split",
    "fit_gda",
    "fit_linear_probe",
    "format_base_to_new_table",
    "format_table",
    "gda_weights",
    "harmonic_mean",
    "head_for_classes",
    "linear_probe_predict",
    "main",
    "plan_draws",
    "prompt_classnames",
    "read_results",
    "taskres_settings",
    "write_results",
    "zero_shot_predict",
]
