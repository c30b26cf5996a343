"""What the benchmark prints (the table and the ratios) and the JSON it writes."""

import json
import math
from dataclasses import asdict

import numpy as np

from .configs import CONFIGS
from .registry import MEASUREMENTS


def ratio_lines(name, ratios):
    """The human-readable lines of every measured ratio of one configuration."""
    lines = []
    for key, entry in ratios.items():
        measurement = MEASUREMENTS[key]
        first, *rest = measurement.lines(entry, entry["median_seconds"])
        lines += [f"[{name}] {measurement.title}{first}", *rest]
    return lines


def table_lines(rows):
    """The breakdown table: one row per configuration and model."""
    header = (f"{'config':<7}{'model':<22}{'device':<7}{'load':>8}{'text':>18}{'decode':>19}"
              f"{'encode':>19}{'train':>17}{'predict':>19}")
    lines = [header, "-" * len(header)]
    for row in rows:
        s = row["median_seconds"]

        def rate(count, seconds):
            return f"{seconds:7.2f} ({count / seconds:6.0f}/s)"

        lines.append(
            f"{row['config']:<7}{row['model']:<22}{row['device']:<7}{s['load']:8.2f}"
            f"{rate(row['n_prompts'], s['text']):>18}{rate(row['n_images'], s['decode']):>19}"
            f"{rate(row['n_images'], s['encode']):>19}"
            f"{s['train']:8.2f} ({row['epochs']:>3} ep)"
            f"{rate(row['n_predict'], s['predict']):>19}"
        )
    return lines


def print_results(environment, names, rows, ratios):
    """Print the header, the breakdown table, the configurations' notes and the ratios."""
    print(f"sklearn-taskres benchmarks, {environment['date']}")
    print(f"device: {environment['device']} ({environment['device_name']}), torch "
          f"{environment['torch']}, {environment['torch_threads']} threads, repeats "
          f"{environment['repeats']}, load average "
          f"{environment['load_average_before'][0]:.1f} before, "
          f"{environment['load_average_after'][0]:.1f} after")
    print("Random-initialised models (same compute as real weights); medians, in seconds "
          "(rates per second in brackets).")
    if rows:
        print("decode = read + decode + preprocess; predict = decode + encode + head, cache "
              "cold.")
        print()
        for line in table_lines(rows):
            print(line)
    for name in names:
        for note in CONFIGS[name].notes:
            print(f"  {name}: {note}")
    print()
    print("Ratios (each measured side by side, repetitions interleaved; median of the "
          "per-repetition ratios):")
    for name in names:
        for line in ratio_lines(name, ratios[name]):
            print(line)


def write_json(path, environment, names, rows, ratios):
    """Write the environment, the configurations, the breakdown rows and the ratios to ``path``."""
    results = {
        **environment,
        "configs": {name: _jsonable(asdict(CONFIGS[name])) for name in names},
        "breakdown": _jsonable(rows),
        "ratios": _jsonable(ratios),
    }
    path.write_text(json.dumps(results, indent=2) + "\n")


def _jsonable(value):
    """Plain JSON values: numpy scalars and tuples converted, non-finite floats as null."""
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
