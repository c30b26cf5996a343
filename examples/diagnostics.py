"""
Where does the task residual work hardest? Diagnostics of a TaskRes fit
=======================================================================

A synthetic task on embeddings, so that it runs offline in seconds: eight
classes, five of which the base classifier already gets right. The other
three are small birds (sparrow, finch, warbler): their images share a common
direction, and their base rows know that they are birds but point to the
wrong bird-specific part, 60 degrees away from their images, much as a
zero-shot text classifier can know the group but not tell its members apart.

The script fits a TaskResHead on 16 embeddings per class, compares it with
the base alone on held-out embeddings, prints the relative residual
magnitude ``||alpha * x_k|| / ||t_k||`` per class (the birds should lead),
and saves three plots as PNG files: the training loss, the residual norm
``||alpha * x_k||`` per class (the base rows have length 1 here, so it equals
the relative magnitude) and the confusion matrix on the held-out embeddings.

Run it with ``python examples/diagnostics.py [--output DIR]``; without
``--output`` the plots go to a new temporary folder. It needs matplotlib
(``pip install sklearn-taskres[plot]``).
"""

# sphinx_gallery_thumbnail_number = 2

import argparse
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display needed

import numpy as np  # noqa: E402

from sklearn_taskres import TaskResHead  # noqa: E402
from sklearn_taskres.diagnostics import relative_residual_report  # noqa: E402
from sklearn_taskres.plotting import (  # noqa: E402
    plot_confusion_matrix,
    plot_loss_curve,
    plot_residual_norms,
)

EASY = ["airplane", "car", "ship", "truck", "horse"]
HARD = ["sparrow", "finch", "warbler"]
N_FEATURES = 64
SHOTS = 16
N_TEST_PER_CLASS = 50
NOISE = 0.08


def unit(array):
    return array / np.linalg.norm(array, axis=-1, keepdims=True)


def synthetic_task(seed=0):
    """Base rows, train and test embeddings of the eight classes."""
    rng = np.random.RandomState(seed)
    n_easy, n_hard = len(EASY), len(HARD)
    centers = unit(rng.normal(size=(n_easy + n_hard, N_FEATURES)))
    base = unit(centers + 0.02 * rng.normal(size=centers.shape))
    bird = unit(rng.normal(size=N_FEATURES))
    centers[n_easy:] = unit(bird + centers[n_easy:])
    base[n_easy:] = unit(bird + unit(rng.normal(size=(n_hard, N_FEATURES))))

    def sample(n_per_class):
        y = np.repeat(np.arange(len(centers)), n_per_class)
        X = centers[y] + NOISE * rng.normal(size=(len(y), N_FEATURES))
        return X.astype(np.float32), np.take(EASY + HARD, y)

    return base, sample(SHOTS), sample(N_TEST_PER_CLASS)


def save(ax, path):
    ax.figure.savefig(path, dpi=100)
    return path


def main():
    parser = argparse.ArgumentParser(description="Diagnostics of a TaskRes fit.")
    parser.add_argument("--output", type=Path, default=None,
                        help="folder for the PNG files (default: a new temporary folder)")
    args = parser.parse_args()
    output = args.output or Path(tempfile.mkdtemp(prefix="taskres-diagnostics-"))
    output.mkdir(parents=True, exist_ok=True)

    base, (X_train, y_train), (X_test, y_test) = synthetic_task()
    params = dict(classes=EASY + HARD, device="cpu", random_state=0)
    # alpha=0 leaves the base untouched: one epoch is enough to fit it.
    base_only = TaskResHead(base, alpha=0.0, max_iter=1, **params).fit(X_train, y_train)
    head = TaskResHead(base, alpha=0.5, max_iter=100, **params).fit(X_train, y_train)
    print(f"{len(EASY + HARD)} classes, {SHOTS} training embeddings per class, "
          f"{len(y_test)} held-out embeddings")
    print(f"  base classifier alone (alpha=0) accuracy: {base_only.score(X_test, y_test):.3f}")
    print(f"  TaskRes accuracy:                         {head.score(X_test, y_test):.3f}")

    report = relative_residual_report(head)
    print("\nRelative residual magnitude ||alpha * x_k|| / ||t_k||, largest first:")
    for index in np.argsort(-report["per_class"], kind="stable"):
        label = report["classes"][index]
        group = "bird, base far off" if label in HARD else "base close"
        print(f"  {label:<10} {report['per_class'][index]:.3f}   ({group})")
    print(f"  mean {report['mean']:.3f}, median {report['median']:.3f}, "
          f"max {report['max']:.3f} ({report['max_class']})")

    paths = [
        save(plot_loss_curve(head), output / "loss_curve.png"),
        save(plot_residual_norms(head), output / "residual_norms.png"),
        save(plot_confusion_matrix(head, X_test, y_test, xticks_rotation=45).ax_,
             output / "confusion_matrix.png"),
    ]
    print("\nPlots:")
    for path in paths:
        print(f"  {path}")


if __name__ == "__main__":
    main()
