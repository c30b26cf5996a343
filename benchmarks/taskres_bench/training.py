"""Ratio 1: our residual training against eager autograd and ``torch.optim.Adam``.

Both train on the same synthetic feature task with the same recipe and batch
order; the hand-derived gradient and in-place Adam must also give the same
residual, with and without sample weights.
"""

import numpy as np
import torch

from sklearn_taskres._training import fit_parameter, residual_logits, train_residual

from .common import (
    ALPHA,
    BATCH_SIZE,
    CLIP_LOGIT_SCALE,
    WEIGHT_DECAY,
    feature_task,
    mark,
    paired_ratio,
    ratio_entry,
    side_by_side,
)

SAME_RESIDUAL_TOLERANCE = 1e-3  # on max |ours - reference| / max |reference|


def ratio(config, model, data, repeats, device):
    """Ratio 1: ``train_residual`` against autograd + torch.optim.Adam, same batches."""
    task = config.training
    X, y, _, _, base = feature_task(task, seed=1)
    torch_device = torch.device(device)

    def recipe(max_iter):
        return dict(learning_rate=task.learning_rate, max_iter=max_iter, batch_size=BATCH_SIZE,
                    weight_decay=WEIGHT_DECAY, seed=0, device=torch_device)

    def ours(max_iter=task.epochs, sample_weight=None):
        residual, _ = train_residual(X, y, base, alpha=ALPHA, logit_scale=CLIP_LOGIT_SCALE,
                                     sample_weight=sample_weight, **recipe(max_iter))
        return residual

    def autograd(max_iter=task.epochs, sample_weight=None):
        frozen = torch.tensor(base, device=torch_device)
        residual = torch.zeros_like(frozen, requires_grad=True)

        def logits(features):
            return residual_logits(features, frozen, residual, ALPHA, CLIP_LOGIT_SCALE)

        fit_parameter(residual, logits, X, y, sample_weight=sample_weight, **recipe(max_iter))
        return residual.detach().cpu().numpy()

    def relative_difference(ours_residual, reference):
        return float(np.abs(ours_residual - reference).max() / np.abs(reference).max())

    ours(1), autograd(1)  # warm-up
    seconds, results = side_by_side({"ours": ours, "autograd": autograd}, repeats, device)
    difference = relative_difference(results["ours"], results["autograd"])
    # Once more, untimed, with sample weights (a fifth of them zero): weights enter the
    # hand-derived gradient, and the weighted residual must be the same too.
    rng = np.random.RandomState(2)
    weights = rng.uniform(0, 2, len(y)) * (rng.uniform(size=len(y)) > 0.2)
    weighted_difference = relative_difference(ours(sample_weight=weights),
                                              autograd(sample_weight=weights))
    n_steps = task.epochs * max(1, len(y) // BATCH_SIZE)
    return ratio_entry(
        paired_ratio(seconds["autograd"], seconds["ours"]),
        "speed-up: autograd seconds / our seconds",
        (">=", 1.25),
        seconds,
        size={"n_samples": len(y), "n_features": task.n_features,
              "n_classes": task.n_classes, "batch_size": BATCH_SIZE, "epochs": task.epochs,
              "steps": n_steps, "learning_rate": task.learning_rate},
        max_relative_difference=difference,
        weighted_max_relative_difference=weighted_difference,
        same_residual=max(difference, weighted_difference) <= SAME_RESIDUAL_TOLERANCE,
        tolerance=SAME_RESIDUAL_TOLERANCE,
    )


def lines(training, times):
    """The printed lines of ratio 1."""
    size = training["size"]
    same = "yes" if training["same_residual"] else "NO"
    return [
        f", ours vs autograd + torch.optim.Adam (N={size['n_samples']}, "
        f"D={size['n_features']}, K={size['n_classes']}, batch {size['batch_size']}, "
        f"{size['epochs']} epochs = {size['steps']} steps): {training['ratio']:.2f}x faster "
        f"(ours {times['ours']:.2f} s, autograd {times['autograd']:.2f} s)  {mark(training)}",
        f"      same residual: {same} (max |ours - autograd| / max |autograd| = "
        f"{training['max_relative_difference']:.1e}, with sample weights "
        f"{training['weighted_max_relative_difference']:.1e}; tolerance "
        f"{training['tolerance']:.0e})",
    ]
