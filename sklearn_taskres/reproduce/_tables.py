"""The published numbers, and the tables that print a run's results beside them."""

import numpy as np

from ._datasets import FEW_SHOT_DATASETS
from ._methods import harmonic_mean

METHOD_TITLES = {"zero-shot": "zero-shot", "linear-probe": "LP", "taskres": "TaskRes",
                 "gda": "GDA"}

#: Published 11-dataset mean accuracy (%) with CLIP RN50 (OpenAI weights), by shots.
PUBLISHED_RN50_MEAN = {
    "zero-shot CLIP": {0: 58.77},
    "TaskRes": {1: 64.55, 2: 66.89, 4: 70.04, 8: 73.08, 16: 75.83},
    "Tip-Adapter-F": {1: 64.60, 2: 66.65, 4: 69.67, 8: 72.45, 16: 75.83},
}

#: Base-to-new generalization, 11-dataset means (%) of CoCoOp's Table 1 (CLIP
#: ViT-B/16, 16 shots): (base, new, harmonic mean). The per-dataset rows of
#: that table are not given here.
PUBLISHED_BASE_TO_NEW_MEAN = {
    "CLIP": (69.34, 74.22, 71.70),
    "CoOp": (82.69, 63.22, 71.66),
    "CoCoOp": (80.47, 71.69, 75.83),
}


def _cell(values):
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{np.mean(values):.2f}±{np.std(values):.2f}"


def format_table(records, shots_list, datasets):
    """The results table: mean (± std over seeds) accuracy per dataset, method and shots.

    A mean row over the eleven few-shot datasets is added when all of them
    ran, and the published RN50 means follow, in the columns of the method
    (or, for Tip-Adapter-F, in the TaskRes columns).
    """
    methods = ["linear-probe", "taskres"]
    if any(record["method"] == "gda" for record in records):
        methods.append("gda")
    columns = [("zero-shot", 0)] + [
        (method, shots) for method in methods for shots in shots_list
    ]
    titles = ["zero-shot"] + [
        f"{METHOD_TITLES[method]} {shots}-shot" for method, shots in columns[1:]
    ]
    accuracies = {}
    for record in records:
        key = (record["dataset"], record["method"], record["shots"])
        accuracies.setdefault(key, {})[record["seed"]] = record["accuracy"]

    rows = []
    for dataset in datasets:
        cells = [
            _cell(list(accuracies.get((dataset, method, shots), {}).values()))
            for method, shots in columns
        ]
        rows.append([dataset] + cells)

    if all(dataset in datasets for dataset in FEW_SHOT_DATASETS):
        cells = []
        for method, shots in columns:
            per_dataset = [accuracies.get((d, method, shots), {}) for d in FEW_SHOT_DATASETS]
            seeds = set.intersection(*(set(runs) for runs in per_dataset))
            cells.append(_cell([
                float(np.mean([runs[seed] for runs in per_dataset])) for seed in sorted(
                    seeds, key=lambda s: (s is not None, s)
                )
            ]))
        rows.append([f"mean of {len(FEW_SHOT_DATASETS)}"] + cells)

    published = []
    for name, by_shots in PUBLISHED_RN50_MEAN.items():
        cells = []
        for method, shots in columns:
            if name == "zero-shot CLIP" and method == "zero-shot":
                cells.append(f"{by_shots[0]:.2f}")
            elif name != "zero-shot CLIP" and method == "taskres" and shots in by_shots:
                cells.append(f"{by_shots[shots]:.2f}")
            else:
                cells.append("")
        published.append([f"paper RN50: {name}"] + cells)

    header = ["dataset"] + titles
    line, rule = _table_layout([header] + rows + published)
    out = [line(header), rule] + [line(row) for row in rows] + [rule]
    out += [line(row) for row in published]
    out.append(
        "Accuracy (%) on the test split, mean ± std (ddof=0) over seeds. The paper rows are "
        "11-dataset means\nwith CLIP RN50 (OpenAI weights); Tip-Adapter-F is shown in the "
        "TaskRes columns."
    )
    return "\n".join(out)


def _table_layout(rows):
    """How to print ``rows`` (lists of str) as a table: a line per row, and the rule.

    Columns are as wide as their widest cell; the first is left-aligned, the
    others right-aligned.
    """
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]

    def line(row):
        return "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(row, widths, strict=True))
        ).rstrip()

    return line, "-" * len(line(["-" * width for width in widths]))


def format_base_to_new_table(records, shots_list, datasets):
    """The base-to-new table: base, new and harmonic-mean accuracy per dataset and method.

    Base and new are means over seeds; H is the harmonic mean of those two
    means, and the mean row over the eleven datasets (when all ran) averages
    base and new over the datasets and takes H of the averages, as CoCoOp's
    tables do. CoCoOp's published 11-dataset means follow.
    """
    columns = [("zero-shot", 0)] + [("taskres", shots) for shots in shots_list]
    header = ["dataset"]
    for method, shots in columns:
        title = "zero-shot" if method == "zero-shot" else f"TaskRes {shots}-shot"
        header += [f"{title} base", "new", "H"]
    pairs = {}
    for record in records:
        key = (record["dataset"], record["method"], record["shots"])
        pairs.setdefault(key, []).append((record["base_accuracy"], record["new_accuracy"]))

    def cells(means):
        if means is None:
            return ["-", "-", "-"]
        base, new = means
        return [f"{base:.2f}", f"{new:.2f}", f"{harmonic_mean(base, new):.2f}"]

    def seed_means(dataset, method, shots):
        runs = pairs.get((dataset, method, shots))
        return None if not runs else tuple(np.mean(runs, axis=0).tolist())

    rows = []
    for dataset in datasets:
        row = [dataset]
        for method, shots in columns:
            row += cells(seed_means(dataset, method, shots))
        rows.append(row)
    if all(dataset in datasets for dataset in FEW_SHOT_DATASETS):
        row = [f"mean of {len(FEW_SHOT_DATASETS)}"]
        for method, shots in columns:
            means = [seed_means(d, method, shots) for d in FEW_SHOT_DATASETS]
            row += cells(None if None in means else tuple(np.mean(means, axis=0).tolist()))
        rows.append(row)

    line, rule = _table_layout([header] + rows)
    out = [line(header), rule] + [line(row) for row in rows] + [rule]
    out += [
        f"paper (CoCoOp, ViT-B/16, 16 shots, mean of 11): {name} base {base:.2f}, new "
        f"{new:.2f}, H {h:.2f}"
        for name, (base, new, h) in PUBLISHED_BASE_TO_NEW_MEAN.items()
    ]
    out.append(
        "Accuracy (%) on the test split: base on the base classes' images among the base "
        "classes, new on the\nnew classes' images among the new classes (TaskRes: its text "
        "base, untouched by training), H their\nharmonic mean; base and new are means over "
        "seeds. TaskRes has no published base-to-new numbers."
    )
    return "\n".join(out)
