"""The labelling order's figures: means over seeds, the page's gain over random, the targets."""

import numpy as np

from .labelling_order import CHECKPOINTS, STYLES

#: The page must beat random order by this much on the styles zero-shot is weak on.
GAIN_TARGET = 0.03
WEAK_STYLES = ("bold", "noisy")
LATENCY_TARGET_MS = 150


def _mean(values):
    return float(np.mean(values)) if values else float("nan")


def summarise(runs, zero_shot, seeds, page_ran):
    """Means per style, order and checkpoint; page minus random with its standard error."""
    summary, gains = {}, {}
    for style in STYLES:
        summary[style] = {}
        for order, results in runs[style].items():
            results = [run["results"] if "results" in run else run for run in results]
            if not results:
                continue
            summary[style][order] = {
                str(n): {key: _mean([run[n][key] for run in results])
                         for key in ("served", "trained")} for n in CHECKPOINTS}
        gains[style] = {}
        for order in runs[style]:
            if not order.startswith("page") or not runs[style][order]:
                continue
            gains[style][order] = {}
            for n in CHECKPOINTS:
                differences = [page["results"][n]["served"] - random[n]["trained"]
                               for page, random in zip(runs[style][order], runs[style]["random"],
                                                       strict=True)]
                gains[style][order][str(n)] = {
                    "mean": _mean(differences),
                    "standard_error": float(np.std(differences, ddof=1) / np.sqrt(
                        len(differences))) if len(differences) > 1 else float("nan")}
    latencies = [value for style in STYLES for order, results in runs[style].items()
                 if order.startswith("page") for run in results for value in run["latency_ms"]]
    stats = {style: {order: {key: int(sum(run["stats"][key] for run in results))
                             for key in ("ranked", "random", "stale")}
                     for order, results in runs[style].items()
                     if order.startswith("page") and results} for style in STYLES}
    return {"summary": summary, "gains": gains, "zero_shot": zero_shot, "seeds": list(seeds),
            "page_ran": page_ran, "stats": stats,
            "latency_p95_ms": float(np.percentile(latencies, 95)) if latencies else None,
            "latency_p50_ms": float(np.percentile(latencies, 50)) if latencies else None,
            "runs": runs}


def checks(order):
    """``(name, passed)`` of every target of the order."""
    out = []
    for style in WEAK_STYLES:
        for page, gains in order["gains"][style].items():
            ok = all(gains[str(n)]["mean"] >= GAIN_TARGET for n in CHECKPOINTS)
            out.append((f"{style}, {page}: page >= random + {GAIN_TARGET:.2f} at "
                        f"{', '.join(map(str, CHECKPOINTS))} labels", ok))
    for page, means in order["summary"]["plain"].items():
        if page.startswith("page"):
            ok = all(means[str(n)]["served"] >= order["zero_shot"]["plain"] for n in CHECKPOINTS)
            out.append((f"plain, {page}: the model file never below zero-shot", ok))
    if order["latency_p95_ms"] is not None:
        out.append((f"key press to next image p95 < {LATENCY_TARGET_MS} ms in these runs",
                    order["latency_p95_ms"] < LATENCY_TARGET_MS))
    return out


def lines(order):
    """The printed table: per style, every order at every checkpoint, the gains, the checks."""
    out = [f"    {len(order['seeds'])} seeds; pool of 400 digits, a separate test set of 397; "
           "accuracy on the test set"]
    out.append("    style   order                  " + "".join(f"{n:>8}" for n in CHECKPOINTS))
    for style in STYLES:
        out.append(f"    {style:<7} zero-shot              "
                   + "".join(f"{order['zero_shot'][style]:>8.3f}" for _ in CHECKPOINTS))
        for name, means in order["summary"][style].items():
            key = "trained" if name in ("random", "simulation") else "served"
            label = f"{name} ({'retrained' if key == 'trained' else 'model file'})"
            out.append(f"    {'':<7} {label:<23}" + "".join(
                f"{means[str(n)][key]:>8.3f}" for n in CHECKPOINTS))
        for page, gains in order["gains"][style].items():
            out.append(f"    {'':<7} {page + ' - random':<23}" + "".join(
                f"{gains[str(n)]['mean']:>+8.3f}" for n in CHECKPOINTS) + "  (s.e. " + ", ".join(
                f"{gains[str(n)]['standard_error']:.3f}" for n in CHECKPOINTS) + ")")
    if not order["page_ran"]:
        out.append("    the page was not driven (no Playwright or no Chromium)")
    else:
        shown = "; ".join(
            f"{style} {page}: {counts['ranked']} policy, {counts['random']} random, "
            f"{counts['stale']} stale" for style in STYLES
            for page, counts in order["stats"][style].items())
        out.append(f"    images shown by the page: {shown}")
        out.append(f"    key press to next image in these runs: p50 "
                   f"{order['latency_p50_ms']:.0f} ms, p95 {order['latency_p95_ms']:.0f} ms")
    for name, ok in checks(order):
        out.append(f"    {name}: {'PASS' if ok else 'MISS'}")
    return out
