"""
How many labelled images does TaskRes need? A curve on the tiny digits CLIP
===========================================================================

The few-shot benchmark of the TaskRes paper trains on 1, 2, 4, 8 and 16
labelled images per class and reports the test accuracy of each. This example
draws the same curve, offline, on the tiny digits CLIP of
:func:`sklearn_taskres.testing.trained_tiny_clip` (a small CLIP trained on
1,000 of scikit-learn's digit scans with captions, on first use): its test
set is the 797 other digits, drawn in a style it never saw (thick, rotated and
blurred strokes).

Zero-shot CLIP, the base classifier built from the names alone, needs no
labelled image: it is a flat line. TaskRes learns a residual on top of it
with the paper's recipe (alpha 0.5, learning rate 2e-3, 100 epochs up to 4
shots, 200 beyond), three draws of the training images per number of shots.
Every image is encoded once: the 30 fits below share the feature cache.

The numbers are those of a toy model, not of CLIP: they show the method at
work, not what a real backbone scores. Run it with
``python examples/shots_curve.py``; it needs matplotlib.
"""

# %%
# The model and the data
# ----------------------
# The first call trains the tiny CLIP (under a minute on a CPU) and caches
# it; later calls read the cached checkpoint.

import matplotlib.pyplot as plt
import numpy as np

from sklearn_taskres import TaskResClassifier, sample_few_shot
from sklearn_taskres.plotting import plot_residual_norms
from sklearn_taskres.testing import load_held_out_digits, trained_tiny_clip

model, pretrained = trained_tiny_clip()
X, y = load_held_out_digits("bold")
classnames = [str(digit) for digit in range(10)]
params = dict(model=model, pretrained=str(pretrained), random_state=0,
              templates=['a photo of the number: "{}".'])

fig, axes = plt.subplots(2, 10, figsize=(8, 1.9))
for digit in range(10):
    axes[0, digit].imshow(X[np.flatnonzero(y == digit)[0]], cmap="gray_r")
    axes[1, digit].imshow(X[np.flatnonzero(y == digit)[1]], cmap="gray_r")
for ax in axes.ravel():
    ax.set_axis_off()
fig.suptitle("Held-out digits in the new style (two per class)")

# %%
# Accuracy against the number of shots
# ------------------------------------

SHOTS = [1, 2, 4, 8, 16]
SEEDS = [0, 1, 2]
zero_shot, taskres = [], {shots: [] for shots in SHOTS}
for shots in SHOTS:
    for seed in SEEDS:
        train = sample_few_shot(y, shots, random_state=seed)
        test = np.setdiff1d(np.arange(len(y)), train)
        epochs = 100 if shots <= 4 else 200
        clf = TaskResClassifier(classnames, alpha=0.5, max_iter=epochs, **params)
        taskres[shots].append(clf.fit(X[train], y[train]).score(X[test], y[test]))
        if shots == SHOTS[0]:
            base = TaskResClassifier(classnames, alpha=0.0, max_iter=1, **params)
            zero_shot.append(base.fit(X[train], y[train]).score(X[test], y[test]))

print(f"zero-shot: {np.mean(zero_shot):.3f}")
for shots in SHOTS:
    print(f"TaskRes, {shots:>2} shots: {np.mean(taskres[shots]):.3f} "
          f"(seeds: {', '.join(f'{score:.3f}' for score in taskres[shots])})")

fig, ax = plt.subplots(figsize=(5.5, 3.5), layout="constrained")
means = [np.mean(taskres[shots]) for shots in SHOTS]
spreads = [np.std(taskres[shots]) for shots in SHOTS]
ax.errorbar(SHOTS, means, yerr=spreads, marker="o", capsize=3, label="TaskRes")
ax.axhline(np.mean(zero_shot), color="gray", linestyle="--", label="zero-shot CLIP")
ax.set_xscale("log", base=2)
ax.set_xticks(SHOTS, [str(shots) for shots in SHOTS])
ax.set_xlabel("labelled images per class")
ax.set_ylabel("test accuracy")
ax.set_title("Tiny digits CLIP, unseen style")
ax.legend()

# %%
# Which digits needed the largest correction?
# -------------------------------------------
# The residual norm per class, relative to the base row: the digits whose
# zero-shot row fitted the new style worst moved the most.

train = sample_few_shot(y, 16, random_state=0)
clf = TaskResClassifier(classnames, alpha=0.5, max_iter=200, **params).fit(X[train], y[train])
plot_residual_norms(clf, relative=True)
plt.show()
