"""``python -m sklearn_taskres.reproduce``: the options, and the run from end to end."""

import argparse
import json
import sys
from pathlib import Path

from .. import _argtypes
from .._clip import load_encoder, register_model_config, resolve_precision
from .._training import resolve_device
from ._datasets import (
    ALL_DATASETS,
    DISTRIBUTION_SHIFT_DATASETS,
    FEW_SHOT_DATASETS,
    DatasetLayoutError,
    load_dataset,
)
from ._draws import MAX_VALIDATION_SHOTS
from ._encoding import VIEW_SEED, CountingEncoder
from ._methods import linear_probe_settings
from ._protocols import Benchmark
from ._results import write_results
from ._tables import format_base_to_new_table, format_table


def _alpha(text):
    if text in ("auto", "paper"):
        return text
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(
            f"expected 'auto', 'paper' or a number >= 0; got {text!r}")
    return value


def build_parser():
    """The argument parser of ``python -m sklearn_taskres.reproduce``."""
    parser = argparse.ArgumentParser(
        prog="python -m sklearn_taskres.reproduce",
        description="Reproduce TaskRes's few-shot benchmark (zero-shot CLIP, linear probe, "
        "TaskRes) on datasets laid out as CoOp's DATASETS.md describes.",
    )
    parser.add_argument("--root", required=True, type=Path,
                        help="dataset root holding eurosat/, dtd/, imagenet/, ...")
    parser.add_argument("--datasets", nargs="+", choices=ALL_DATASETS,
                        default=list(FEW_SHOT_DATASETS), metavar="DATASET",
                        help=f"datasets to run (default: the eleven few-shot datasets); "
                        f"any of {', '.join(ALL_DATASETS)}")
    parser.add_argument("--model", default="RN50",
                        help="open_clip model name, hf-hub:org/repo or local-dir:/path "
                        "(default RN50)")
    parser.add_argument("--pretrained", default="auto",
                        help="open_clip pretrained tag or checkpoint file; 'none' for random "
                        "weights; 'auto': the weights of a hf-hub: or local-dir: model, else "
                        "openai (default auto)")
    parser.add_argument("--model-config", type=Path, default=None,
                        help="a JSON open_clip model config to register, named after the file")
    parser.add_argument("--shots", nargs="+", type=_argtypes.positive_int,
                        default=[1, 2, 4, 8, 16],
                        help="training images per class (default 1 2 4 8 16)")
    parser.add_argument("--seeds", nargs="+", type=_argtypes.seed, default=[1, 2, 3],
                        help="seeds of the few-shot draws and of training (default 1 2 3)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--precision", choices=("fp32", "bf16", "fp16", "auto"),
                        default="fp32",
                        help="the image tower's weights (see TaskResClassifier's precision). "
                        "fp32, as the official code encodes images (default); features are "
                        "shared through --cache-dir only with classifiers that encoded in the "
                        "same precision")
    parser.add_argument("--output", type=Path, default=Path("taskres-results"),
                        help="folder for results and cached features (default ./taskres-results)")
    parser.add_argument("--cache-dir", type=Path, default=None,
                        help="feature store shared with earlier runs and with "
                        "TaskResClassifier(cache_dir=...) (default: OUTPUT/features)")
    parser.add_argument("--epochs", type=_argtypes.positive_int, default=None,
                        help="TaskRes epochs for every run (default: 100 up to 4 shots, else 200)")
    parser.add_argument("--alpha", type=_alpha, default="auto",
                        help="TaskRes's residual scale: auto chooses it from each draw's "
                        "training labels by cross-validation (zero-shot among the "
                        "candidates); paper: the paper's fixed value (0.5, Oxford Flowers "
                        "1.0); or a number (default auto; results record the value used)")
    parser.add_argument("--gda", action="store_true",
                        help="also run GDA (class means and one shared shrunk covariance "
                        "added to the zero-shot logits, its blend weight chosen as auto "
                        "chooses alpha) in the few-shot protocol")
    parser.add_argument("--augment-views", type=_argtypes.non_negative_int, default=0, metavar="V",
                        help="train TaskRes on V augmented views of every training image "
                        "(random resized crop + flip, encoded once and cached; one view per "
                        "image each epoch); the linear probe and zero-shot CLIP stay on the "
                        "evaluation crop (default 0: TaskRes too)")
    parser.add_argument("--draws", choices=("dassl", "numpy"), default="dassl",
                        help="dassl: the few-shot images CoOp's loaders draw for each seed, "
                        "image for image (Python's random, as Dassl); numpy: NumPy's "
                        "generator, same distribution, other images (default dassl)")
    parser.add_argument("--class-names", choices=("official", "spaces"), default="official",
                        help="official: TaskRes's base keeps the dataset's class names as they "
                        "are (underscores and all), as the official TaskRes code does, and "
                        "zero-shot CLIP replaces underscores by spaces, as CoOp's does; "
                        "spaces: spaces for every method (default official)")
    parser.add_argument("--protocol", choices=("fewshot", "base2new"), default="fewshot",
                        help="fewshot: all classes; base2new: CoCoOp's base-to-new "
                        "generalization, TaskRes trained on the first half of the classes and "
                        "tested on both halves (default fewshot)")
    return parser


def _log(message):
    print(message, file=sys.stderr, flush=True)


def _note_former_cache(cache_dir):
    """Say that the per-split ``.npz`` files of earlier versions are no longer read."""
    former = sorted(Path(cache_dir).glob("*/*.npz"))
    if former:
        _log(f"ignoring {len(former)} per-split feature file(s) (*/*.npz) of an earlier "
             f"version under {cache_dir}: they are no longer read and can be deleted")


def main(argv=None):
    """Run the benchmark from the command line; returns the exit status.

    Parameters
    ----------
    argv : list of str, default=None
        Arguments without the program name; None reads ``sys.argv``.

    Returns
    -------
    status : int
        0 on success, 2 when the data, model or options cannot be used.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    args.shots = list(dict.fromkeys(args.shots))
    args.seeds = list(dict.fromkeys(args.seeds))
    requested = list(dict.fromkeys(args.datasets))
    shifted = [key for key in requested if key in DISTRIBUTION_SHIFT_DATASETS]
    if shifted and "imagenet" not in requested:
        _log("the ImageNet variants are evaluated with classifiers trained on imagenet; "
             "adding imagenet")
        requested.insert(0, "imagenet")
    if args.protocol == "base2new" and shifted:
        parser.error(f"expected --protocol base2new with few-shot datasets only; got "
                     f"{', '.join(shifted)}")
    # The variants need the ImageNet classifiers, so they run last.
    datasets = [key for key in requested if key not in shifted] + shifted
    args.datasets = datasets
    pretrained = None if args.pretrained.lower() == "none" else args.pretrained

    try:
        if args.model_config is not None:
            config_text = args.model_config.read_text(encoding="utf-8")
            register_model_config(args.model_config.stem, json.loads(config_text))
        device = resolve_device(args.device)
        loaded = {key: load_dataset(args.root, key) for key in datasets}
        precision = resolve_precision(args.precision, device)
        encoder = load_encoder(args.model, pretrained, device, precision)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    settings = {
        "root": str(args.root), "datasets": datasets, "model": args.model,
        "pretrained": pretrained, "shots": args.shots, "seeds": args.seeds,
        "epochs": args.epochs, "device": str(device), "precision": precision,
        "augment_views": args.augment_views, "alpha": args.alpha, "gda": args.gda,
        "view_seed": VIEW_SEED if args.augment_views else None,
        "draws": args.draws, "class_names": args.class_names, "protocol": args.protocol,
        "linear_probe": {**linear_probe_settings(),
                         "max_validation_shots": MAX_VALIDATION_SHOTS},
    }
    if args.cache_dir is None:
        args.cache_dir = args.output / "features"
    _note_former_cache(args.cache_dir)
    counting = CountingEncoder(encoder)
    benchmark = Benchmark(args, counting, device, _log)
    try:
        for key in datasets:
            if key in DISTRIBUTION_SHIFT_DATASETS:
                benchmark.run_distribution_shift(loaded[key], loaded["imagenet"])
            elif args.protocol == "base2new":
                benchmark.run_base_to_new(loaded[key])
            else:
                benchmark.run_few_shot(loaded[key])
            write_results(args.output, benchmark.records, settings, benchmark.draws)
    except (FileNotFoundError, DatasetLayoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    table = format_base_to_new_table if args.protocol == "base2new" else format_table
    print(table(benchmark.records, args.shots, datasets))
    _log(f"{counting.n_encoded} image(s) encoded (augmented views included); features in "
         f"{args.cache_dir}; results in {args.output}")
    return 0
