"""The few-shot training and validation images of every (shots, seed), drawn as CoOp does."""

import random

import numpy as np

from ..fewshot import sample_few_shot

#: CoOp draws min(shots, 4) validation images per class.
MAX_VALIDATION_SHOTS = 4


def plan_draws(dataset, shots_list, seeds, method="dassl"):
    """Few-shot training and validation draws of every (shots, seed).

    Training images come from the train split; validation images (at most 4
    per class, as CoOp) from the val split. ImageNet has no val split in
    CoOp, whose linear probe then draws them from the test set; we draw them
    from the training images not selected for training instead.

    With ``method="dassl"`` (the default) the draws are those of CoOp's
    dataset loaders, image for image: one ``random.Random(seed)`` stream, as
    Dassl seeds Python's ``random`` with the run's seed, draws the training
    set and then, from where it stopped, the validation set (ImageNet's
    loader draws only the training set, so its validation draw, which is
    ours, comes after and changes nothing before it). The positions come in
    Dassl's order. With ``method="numpy"`` both draws come from one
    ``numpy.random.RandomState(seed)`` and are sorted.

    Returns ``{(shots, seed): (train_positions, val_split, val_positions)}``.
    """
    y_train = dataset.splits["train"].labels
    draws = {}
    for shots in shots_list:
        for seed in seeds:
            rng = random.Random(seed) if method == "dassl" else np.random.RandomState(seed)

            def draw(labels, n_shots, rng=rng):
                return sample_few_shot(labels, n_shots, method=method, random_state=rng)

            train = draw(y_train, shots)
            val_shots = min(shots, MAX_VALIDATION_SHOTS)
            if "val" in dataset.splits:
                draws[shots, seed] = (train, "val", draw(dataset.splits["val"].labels, val_shots))
            else:
                rest = np.setdiff1d(np.arange(len(y_train)), train)
                draws[shots, seed] = (train, "train", rest[draw(y_train[rest], val_shots)])
    return draws


def draw_record(dataset, shots, seed, method, draw):
    """The image paths of one draw, for ``results.json``, in the order drawn.

    The paths are relative to the dataset's folder (CoOp's saved
    ``split_fewshot/shot_K-seed_S.pkl`` holds the same images, by absolute
    path, in the same order).
    """
    train, val_split, val = draw
    train_paths, val_paths = dataset.splits["train"].paths, dataset.splits[val_split].paths
    return {
        "dataset": dataset.key, "shots": shots, "seed": seed, "draws": method,
        "train": [train_paths[p] for p in train.tolist()],
        "val_split": val_split,
        "val": [val_paths[p] for p in val.tolist()],
    }
