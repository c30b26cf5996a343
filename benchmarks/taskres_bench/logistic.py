"""Ratio 5: TaskRes against ``LogisticRegression`` on the same features (accuracy, time)."""

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from sklearn_taskres import TaskResHead

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


def ratio(config, model, data, repeats, device):
    """Ratio 5: TaskRes against LogisticRegression on the same features: time and accuracy."""
    task = config.comparison
    X, y, X_test, y_test, base = feature_task(task, seed=2)

    def taskres():
        return TaskResHead(base, alpha=ALPHA, logit_scale=CLIP_LOGIT_SCALE,
                           learning_rate=task.learning_rate, max_iter=task.epochs,
                           batch_size=BATCH_SIZE, weight_decay=WEIGHT_DECAY, device=device,
                           random_state=0).fit(X, y)

    def logistic():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return LogisticRegression(max_iter=1000).fit(X, y)

    seconds, fitted = side_by_side({"taskres": taskres, "logistic": logistic}, repeats, device)
    unit_test = X_test / np.linalg.norm(X_test, axis=1, keepdims=True)
    unit_base = base / np.linalg.norm(base, axis=1, keepdims=True)
    accuracy = {
        "taskres": float(fitted["taskres"].score(X_test, y_test)),
        "logistic": float(fitted["logistic"].score(X_test, y_test)),
        "zero_shot": float(np.mean(np.argmax(unit_test @ unit_base.T, axis=1) == y_test)),
    }
    return ratio_entry(
        paired_ratio(seconds["logistic"], seconds["taskres"]),
        "speed-up: LogisticRegression seconds / TaskRes seconds (fit on features)",
        None,
        seconds,
        accuracy=accuracy,
        accuracy_ratio=accuracy["taskres"] / accuracy["logistic"],
        logistic_iterations=int(np.max(fitted["logistic"].n_iter_)),
        size={"n_classes": task.n_classes, "n_features": task.n_features,
              "shots": task.per_class, "n_test": len(y_test), "epochs": task.epochs},
    )


def lines(logistic, times):
    """The printed line of ratio 5."""
    size, accuracy = logistic["size"], logistic["accuracy"]
    return [
        f" on the same features (K={size['n_classes']}, D={size['n_features']}, "
        f"{size['shots']} shots, {size['n_test']} test): accuracy {accuracy['taskres']:.3f} "
        f"vs {accuracy['logistic']:.3f} (zero-shot {accuracy['zero_shot']:.3f}); fit "
        f"{times['taskres']:.2f} s vs {times['logistic']:.2f} s, time ratio "
        f"(logreg / TaskRes) {logistic['ratio']:.2f}  {mark(logistic)}",
    ]
