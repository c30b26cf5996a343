"""Data makers shared by the tests."""

import numpy as np


def make_images(n, seed, size=40):
    """Distinct random RGB images as uint8 arrays; each seed gives new pixels."""
    rng = np.random.RandomState(seed)
    return [rng.randint(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(n)]


def make_dataset(n_per_class, n_classes, seed):
    """Images whose mean colour depends on the class, so the tiny model can separate them."""
    rng = np.random.RandomState(seed)
    images, labels = [], []
    for label in range(n_classes):
        tint = rng.randint(0, 256, 3)
        for _ in range(n_per_class):
            noise = rng.randint(-40, 41, (40, 40, 3))
            images.append(np.clip(tint + noise, 0, 255).astype(np.uint8))
            labels.append(label)
    return images, np.asarray(labels)
