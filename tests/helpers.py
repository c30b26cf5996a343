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


def cache_random_weights(cache, model_name, tag, seed=0):
    """Lay out random weights of ``model_name`` in the Hugging Face cache ``cache``.

    Under the repository and file name open_clip downloads for the pretrained
    tag ``tag``, as on a machine that fetched them once: offline, open_clip
    then loads them as the real weights.
    """
    import open_clip
    import torch
    from open_clip.pretrained import get_pretrained_cfg
    from safetensors.torch import save_file

    repo = get_pretrained_cfg(model_name, tag)["hf_hub"].strip("/")
    root = cache / f"models--{repo.replace('/', '--')}"
    snapshot = root / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    torch.manual_seed(seed)
    model = open_clip.create_model(model_name, pretrained=None)
    save_file({key: value.contiguous() for key, value in model.state_dict().items()},
              snapshot / "open_clip_model.safetensors")
    (root / "refs").mkdir()
    (root / "refs" / "main").write_text("0" * 40)
    return cache
