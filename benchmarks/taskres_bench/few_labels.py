"""Ratio 12: a few labels, and how far to move from zero-shot (``--config few-labels``).

The held-out digits of the tiny digits CLIP in three styles (plain, the pretraining's;
bold; bold with pixel noise), split once into a pool of 400 images and a separate test
set of 397. From the pool, :data:`DRAWS` stratified draws of 1, 2 and 4 labels per class
train :class:`sklearn_taskres.TaskResHead` at every fixed alpha of :data:`GRID`, with
``alpha="auto"``, and GDA (:func:`sklearn_taskres.reproduce.fit_gda`); accuracy on the
test set. Targets:

- auto is never below zero-shot by more than 0.5 point (mean of the draws), in any
  style and shot count;
- over all settings (the mean of the nine), auto is within 0.5 point of the best fixed
  alpha, chosen on the test set (a choice no user can make);
- auto is ahead of GDA over all settings;
- an auto fit costs at most 4 fixed fits, features cached, timed side by side.

The ratio: auto fit time over fixed (alpha 0.5) fit time.
"""

import time

import numpy as np

from sklearn_taskres import TaskResHead
from sklearn_taskres.reproduce import fit_gda
from sklearn_taskres.testing import load_held_out_digits

from .common import log, ratio_entry
from .labelling_order import N_POOL, STYLES, start_model

SHOTS = (1, 2, 4)
DRAWS = 5
GRID = (0.05, 0.1, 0.25, 0.5, 1.0)
PAPER_ALPHA = 0.5
TOLERANCE = 0.5  # points


def style_features(model, style):
    """Pool and test features and labels of one style, the split of the labelling benchmark."""
    X, y = load_held_out_digits(style)
    order = np.random.RandomState(0).permutation(len(y))
    pool, test = order[:N_POOL], order[N_POOL:]
    features = model._features(list(X))
    return features[pool], y[pool], features[test], y[test]


def stratified_draw(y, shots, seed):
    """Indices of ``shots`` samples of every class of ``y``."""
    rng = np.random.RandomState(seed)
    return np.concatenate([rng.choice(np.flatnonzero(y == label), shots, replace=False)
                           for label in np.unique(y)])


def run(device="cpu"):
    """Accuracies (in %) of every method, style, shot count and draw; fit times."""
    model = start_model()
    base, classes = model.base_weights_, model.classes_
    recipe = {"logit_scale": model.logit_scale_, "device": device, "random_state": 0}
    results = {}
    times = {"fixed": [], "auto": []}
    for style in STYLES:
        X_pool, y_pool, X_test, y_test = style_features(model, style)
        y_pool, y_test = y_pool.astype(str), y_test.astype(str)
        zero_shot = 100 * float(np.mean(model.head_.predict(X_test) == y_test))
        for shots in SHOTS:
            rows = {name: [] for name in ("zero-shot", *GRID, "auto", "GDA")}
            chosen = []
            for draw in range(DRAWS):
                train = stratified_draw(y_pool, shots, seed=1000 * shots + draw)
                X, y = X_pool[train], y_pool[train]
                rows["zero-shot"].append(zero_shot)
                for alpha in GRID:
                    head = TaskResHead(base, classes=classes, alpha=alpha, **recipe)
                    started = time.perf_counter()
                    head.fit(X, y)
                    if alpha == PAPER_ALPHA:
                        times["fixed"].append(time.perf_counter() - started)
                    rows[alpha].append(100 * head.score(X_test, y_test))
                head = TaskResHead(base, classes=classes, alpha="auto", **recipe)
                started = time.perf_counter()
                head.fit(X, y)
                times["auto"].append(time.perf_counter() - started)
                rows["auto"].append(100 * head.score(X_test, y_test))
                chosen.append(head.alpha_)
                gda = fit_gda(X, y, base, classes, logit_scale=model.logit_scale_)
                rows["GDA"].append(100 * float(np.mean(gda.predict(X_test) == y_test)))
            results[(style, shots)] = {"accuracy": {str(k): v for k, v in rows.items()},
                                       "chosen_alpha": chosen}
            log(f"[few-labels] {style}, {shots} per class: zero-shot {zero_shot:.1f}, "
                f"0.5 {np.mean(rows[PAPER_ALPHA]):.1f}, auto {np.mean(rows['auto']):.1f} "
                f"(alphas {chosen}), GDA {np.mean(rows['GDA']):.1f}")
    return results, times


def summarise(results, times):
    """The table's rows, the targets and whether they are met."""
    methods = ["zero-shot", *map(str, GRID), "auto", "GDA"]
    means = {setting: {m: float(np.mean(entry["accuracy"][m])) for m in methods}
             for setting, entry in results.items()}
    overall = {m: float(np.mean([row[m] for row in means.values()])) for m in methods}
    best_fixed = max(map(str, GRID), key=lambda m: overall[m])
    worst_gap = min(row["auto"] - row["zero-shot"] for row in means.values())
    ratio = float(np.median(times["auto"]) / np.median(times["fixed"]))
    checks = {
        "auto never below zero-shot by more than 0.5 point": (worst_gap >= -TOLERANCE,
                                                              f"worst {worst_gap:+.2f}"),
        "auto within 0.5 point of the best fixed alpha (on test), over all settings": (
            overall["auto"] >= overall[best_fixed] - TOLERANCE,
            f"auto {overall['auto']:.2f}, best fixed alpha {best_fixed}: "
            f"{overall[best_fixed]:.2f}"),
        "auto ahead of GDA over all settings": (overall["auto"] > overall["GDA"],
                                               f"auto {overall['auto']:.2f}, GDA "
                                               f"{overall['GDA']:.2f}"),
        "auto fit / fixed fit <= 4": (ratio <= 4, f"{ratio:.2f}"),
    }
    return {"means": means, "overall": overall, "best_fixed": best_fixed, "checks": checks,
            "ratio": ratio}


def table(summary):
    """The printed table: one row per style and shot count, then the mean of all."""
    methods = ["zero-shot", *map(str, GRID), "auto", "GDA"]
    header = f"{'style':<7}{'shots':>6}" + "".join(
        f"{('a=' + m) if m[0].isdigit() else m:>10}" for m in methods)
    lines = [header, "-" * len(header)]
    for (style, shots), row in summary["means"].items():
        lines.append(f"{style:<7}{shots:>6}" + "".join(f"{row[m]:>10.1f}" for m in methods))
    lines.append(f"{'mean':<13}" + "".join(f"{summary['overall'][m]:>10.2f}" for m in methods))
    for name, (met, detail) in summary["checks"].items():
        lines.append(f"{'met' if met else 'MISSED':<7}{name}: {detail}")
    return lines


def ratio(config, model, data, repeats, device):
    """The table's measurement (the model and images of the configuration are unused)."""
    results, times = run(device)
    summary = summarise(results, times)
    seconds = {"fixed": times["fixed"], "auto": times["auto"]}
    entry = ratio_entry(summary["ratio"], "auto fit time / fixed fit time (alpha 0.5)",
                        ("<=", 4), seconds)
    entry["table"] = table(summary)
    entry["overall"] = summary["overall"]
    entry["checks"] = {name: met for name, (met, _) in summary["checks"].items()}
    entry["chosen_alpha"] = {f"{style}/{shots}": value["chosen_alpha"]
                             for (style, shots), value in results.items()}
    return entry


def lines(entry, times):
    """The printed lines: the ratio, then the table."""
    return [f": auto fit / fixed fit = {entry['ratio']:.2f} (median "
            f"{times['auto']:.3f} s vs {times['fixed']:.3f} s)",
            "accuracy on the 397 test digits, %, mean of 5 draws; a=: fixed alpha",
            *entry["table"]]
