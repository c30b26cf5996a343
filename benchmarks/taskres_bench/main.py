"""The command line: run the chosen configurations, print the results, write the JSON."""

import argparse
import datetime
import os
import platform
import tempfile
from pathlib import Path

import torch

import sklearn_taskres
from sklearn_taskres import _clip as clip_adapter
from sklearn_taskres.testing import register_tiny_clip

from . import __doc__ as package_doc
from . import feature_store
from .breakdown import breakdown
from .common import MID_CLIP_CONFIG, MID_CLIP_NAME, device_name, image_data, log
from .configs import CONFIGS
from .registry import MEASUREMENTS
from .report import print_results, write_json

STORE = "store"  # the --config that runs the feature store benchmark


def run_config(config, repeats, device, directory):
    """Run the breakdown of every model of ``config`` and the config's ratios."""
    log(f"[{config.name}] writing images")
    data = image_data(config, directory / config.name)
    rows = []
    if config.breakdown:
        for model in config.models:
            log(f"[{config.name}] breakdown of {model}")
            rows.append(breakdown(config, model, data, repeats, device))
    model = config.models[0]
    ratios = {}
    for key in config.ratios:
        measurement = MEASUREMENTS[key]
        log(f"[{config.name}] ratio {measurement.title} ({model})")
        ratios[key] = measurement.ratio(config, model, data, repeats, device)
    return rows, ratios


def parse_args(argv=None):
    """The command line."""
    parser = argparse.ArgumentParser(description=package_doc.split("\n\n")[0])
    parser.add_argument("--config", choices=(*CONFIGS, "all", STORE), default="all",
                        help="tiny: smoke run (seconds); mid: CPU-sized; grid-cpu: ratio 3 "
                        "with ViT-B-32 on the CPU (minutes); photos: ratio 8, 48 "
                        "12-megapixel JPEG photos with ViT-B-32 (minutes); labelling: ratio 10, "
                        "the labelling page's order, estimate and latency (minutes); open-set: "
                        "ratio 11, the none-of-these score on the digits (minutes); few-labels: "
                        "ratio 12, alpha='auto' against fixed alphas, zero-shot and GDA on "
                        "the digits (minutes); real: RN50, "
                        "ViT-B-32 and ViT-L-14 at real sizes (CUDA only); all: tiny and "
                        "mid, plus real on CUDA (default); store: the on-disk feature "
                        "store alone (options below)")
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu",
                        help="where to encode and train (default: cpu)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="interleaved repetitions of every measurement (default: 3); "
                        "with --config store, runs of each store, the fastest shown")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch intra-op threads (default: torch's own choice)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    feature_store.add_arguments(parser)
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: CUDA is not available on this machine")
    if args.config in CONFIGS and CONFIGS[args.config].needs_cuda and args.device != "cuda":
        parser.error(f"--config {args.config} runs real-size models and needs --device cuda")
    return args


def main(argv=None):
    """Run the chosen configurations, print the table and the ratios, write the JSON."""
    args = parse_args(argv)
    if args.config == STORE:
        feature_store.run(args)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    register_tiny_clip()
    clip_adapter.register_model_config(MID_CLIP_NAME, MID_CLIP_CONFIG)
    if args.config == "all":
        names = [name for name, config in CONFIGS.items()
                 if config.in_all and (args.device == "cuda" or not config.needs_cuda)]
    else:
        names = [args.config]

    environment = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "device": args.device,
        "device_name": device_name(args.device),
        "torch": torch.__version__,
        "sklearn_taskres": sklearn_taskres.__version__,
        "python": platform.python_version(),
        "torch_threads": torch.get_num_threads(),
        "config": args.config,
        "repeats": args.repeats,
        "load_average_before": os.getloadavg(),
    }
    rows, ratios = [], {}
    with tempfile.TemporaryDirectory(prefix="taskres_bench_") as directory:
        for name in names:
            config_rows, ratios[name] = run_config(CONFIGS[name], args.repeats, args.device,
                                                   Path(directory))
            rows.extend(config_rows)
    environment["load_average_after"] = os.getloadavg()

    print_results(environment, names, rows, ratios)
    if args.json:
        write_json(args.json, environment, names, rows, ratios)
        print(f"\nwrote {args.json}")
