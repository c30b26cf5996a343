"""A tiny CLIP pretrained on scikit-learn's digits, trained on first use and cached on disk.

The model learns to match 8x8 scans of handwritten digits with captions such
as "a photo of the number seven.", by CLIP's contrastive objective, on a fixed
part of the digits; the rest is held out. Training is seeded and takes under
a minute on a CPU; the checkpoint is cached under a key of the config and the
recipe, and a cached file that does not match its key or its checksum is
trained again.
"""

import contextlib
import hashlib
import json
import logging
import math
import os
import tempfile
from pathlib import Path

import numpy as np

from ._clip import register_model_config

TRAINED_TINY_CLIP_NAME = "TinyDigitsCLIP"

TRAINED_TINY_CLIP_CONFIG = {
    "embed_dim": 256,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 96, "head_width": 32,
                   "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 2,
                 "layers": 2},
}

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")

RECIPE = {
    "seed": 0,
    # CPU threads: the weights depend on how the sums are split between threads.
    "threads": 1,
    "n_pretraining": 1000,
    "epochs": 30,
    "batch_size": 100,
    "learning_rate": 2e-3,
    "weight_decay": 0.05,
    "warmup_steps": 20,
    # CLIP learns its temperature; here it is fixed.
    "logit_scale": 30.0,
    # Norm of the raw caption embeddings after training (by scaling the text
    # projection; cosines, and so CLIP's predictions, are unchanged). TaskRes adds
    # its residual to the raw embeddings: at their trained norm (about 20) the
    # official recipe's steps would barely move them.
    "text_embedding_norm": 2.0,
    # A caption is a template filled with the digit ("7") or its word ("seven").
    "caption_templates": [
        'a photo of the number: "{}".',
        "a photo of the number {}.",
        "a handwritten {}.",
        "the digit {}.",
    ],
}

CACHE_ENV = "SKLEARN_TASKRES_CACHE_DIR"
_FORMAT = "sklearn_taskres.trained_tiny_clip/1"


def cache_directory(cache_dir=None):
    """``cache_dir``, else ``$SKLEARN_TASKRES_CACHE_DIR``, else ``~/.cache/sklearn_taskres``."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "sklearn_taskres"


def cache_key(config=TRAINED_TINY_CLIP_CONFIG, recipe=RECIPE):
    """A digest of everything the trained weights depend on."""
    text = json.dumps({"format": _FORMAT, "config": config, "recipe": recipe}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def pretraining_split(n_samples, n_pretraining, seed):
    """Indices of the digits used for pretraining and of those held out."""
    order = np.random.RandomState(seed).permutation(n_samples)
    return np.sort(order[:n_pretraining]), np.sort(order[n_pretraining:])


def captions_per_class(templates):
    """(n_classes, n_captions) nested list: every template with the digit and its word."""
    return [[template.format(name) for template in templates for name in (str(digit), word)]
            for digit, word in enumerate(DIGIT_WORDS)]


def cached_checkpoint(cache_dir=None, *, recipe=RECIPE):
    """Where the trained checkpoint is cached, and whether a valid one is there now."""
    key = cache_key(recipe=recipe)
    path = cache_directory(cache_dir) / f"tiny-digits-clip-{key[:16]}.safetensors"
    return path, _is_valid(path, key)


def trained_checkpoint(cache_dir=None, verbose=0, *, recipe=RECIPE):
    """Path of the cached trained checkpoint, training and caching it first if needed."""
    register_model_config(TRAINED_TINY_CLIP_NAME, TRAINED_TINY_CLIP_CONFIG)
    key = cache_key(recipe=recipe)
    path, valid = cached_checkpoint(cache_dir, recipe=recipe)
    if valid:
        return path
    directory = path.parent
    directory.mkdir(parents=True, exist_ok=True)
    # One process trains; others wait for it and then read its file.
    with _file_lock(directory / f"{path.name}.lock"):
        if _is_valid(path, key):
            return path
        state = train(recipe, verbose=verbose)
        _write(state, path, key)
    return path


def train(recipe=RECIPE, verbose=0):
    """Train the tiny CLIP by ``recipe``; return its state dict (CPU tensors).

    Training runs on ``recipe["threads"]`` CPU threads (one): the model's
    matrices are too small to gain from more, and on a busy machine several
    threads wait on each other (3 epochs took 2.7 s on one thread and 16 s on
    two of a loaded 2-core CPU). A fixed number of threads also gives the same
    weights whatever the number of cores.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(recipe["threads"])
    try:
        return _train(recipe, verbose)
    finally:
        torch.set_num_threads(threads)


def _train(recipe, verbose):
    import open_clip
    import torch
    from sklearn.datasets import load_digits

    from ._progress import progress

    register_model_config(TRAINED_TINY_CLIP_NAME, TRAINED_TINY_CLIP_CONFIG)
    digits = load_digits()
    indices, _ = pretraining_split(len(digits.target), recipe["n_pretraining"], recipe["seed"])
    with torch.random.fork_rng(devices=[]), _quiet_random_init():
        torch.manual_seed(recipe["seed"])
        model, _, preprocess = open_clip.create_model_and_transforms(
            TRAINED_TINY_CLIP_NAME, pretrained=None, device="cpu"
        )
    model.logit_scale.requires_grad_(False).fill_(math.log(recipe["logit_scale"]))
    # Captions use a few dozen of the tokenizer's 49,408 tokens: their random
    # embeddings stay as they are, which spares the optimiser 3 million entries.
    model.token_embedding.requires_grad_(False)
    tokenizer = open_clip.get_tokenizer(TRAINED_TINY_CLIP_NAME)
    pixels = torch.stack([preprocess(image) for image in digit_images(digits.images[indices])])
    labels = torch.as_tensor(digits.target[indices])
    captions = captions_per_class(recipe["caption_templates"])
    tokens = tokenizer([caption for row in captions for caption in row])
    n_classes, n_captions = len(captions), len(captions[0])
    tokens = tokens.reshape(n_classes, n_captions, -1)

    generator = torch.Generator().manual_seed(recipe["seed"])
    batch_size = recipe["batch_size"]
    steps_per_epoch = math.ceil(len(labels) / batch_size)
    total_steps = recipe["epochs"] * steps_per_epoch
    trained = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    decay = [p for n, p in trained if p.ndim >= 2 and "embedding" not in n]
    other = [p for n, p in trained if not (p.ndim >= 2 and "embedding" not in n)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": recipe["weight_decay"]},
         {"params": other, "weight_decay": 0.0}],
        lr=recipe["learning_rate"],
        foreach=True,
    )

    def learning_rate(step):
        if step < recipe["warmup_steps"]:
            return (step + 1) / recipe["warmup_steps"]
        progress_ = (step - recipe["warmup_steps"]) / max(1, total_steps - recipe["warmup_steps"])
        return 0.5 * (1 + math.cos(math.pi * progress_))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, learning_rate)
    model.train()
    bar = progress(verbose, total=total_steps, desc="Training the tiny digits CLIP")
    with bar:
        for _ in range(recipe["epochs"]):
            order = torch.randperm(len(labels), generator=generator)
            for start in range(0, len(labels), batch_size):
                batch = order[start : start + batch_size]
                # One caption per class, drawn afresh at every step.
                choice = torch.randint(n_captions, (n_classes,), generator=generator)
                loss = _contrastive_loss(
                    model, pixels[batch], labels[batch], tokens[torch.arange(n_classes), choice]
                )
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                scheduler.step()
                bar.update()
                bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    model.eval()
    with torch.no_grad():
        norms = model.encode_text(tokens.reshape(n_classes * n_captions, -1)).norm(dim=-1)
        model.text_projection.mul_(recipe["text_embedding_norm"] / norms.mean())
    return {name: value.detach().clone().contiguous() for name, value in
            model.state_dict().items()}


@contextlib.contextmanager
def _quiet_random_init():
    """Silence open_clip's warning that the model starts random: here it is meant to."""

    def drop(record):
        return not record.getMessage().startswith("No pretrained weights loaded")

    root = logging.getLogger()
    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)


def _contrastive_loss(model, pixels, labels, class_tokens):
    """CLIP's symmetric loss, with every image of a caption's digit counted as its match."""
    import torch
    import torch.nn.functional as F

    images = F.normalize(model.encode_image(pixels), dim=-1)
    texts = F.normalize(model.encode_text(class_tokens), dim=-1)
    logits = model.logit_scale.exp() * images @ texts.T  # (batch, n_classes)
    image_loss = F.cross_entropy(logits, labels)
    matches = (labels[None, :] == torch.arange(len(texts))[:, None]).float()
    present = matches.sum(dim=1) > 0
    targets = matches[present] / matches[present].sum(dim=1, keepdim=True)
    text_loss = -(targets * F.log_softmax(logits.T[present], dim=1)).sum(dim=1).mean()
    return (image_loss + text_loss) / 2


def digit_images(images):
    """scikit-learn's digit scans (values 0-16) as 8-bit grayscale PIL images."""
    from PIL import Image

    pixels = np.clip(np.rint(np.asarray(images) * (255 / 16)), 0, 255).astype(np.uint8)
    return [Image.fromarray(image).convert("RGB") for image in pixels]


def _tensor_digest(state):
    digest = hashlib.sha256()
    for name in sorted(state):
        digest.update(name.encode())
        digest.update(state[name].cpu().numpy().tobytes())
    return digest.hexdigest()


def _write(state, path, key):
    from safetensors.torch import save_file

    metadata = {"format": _FORMAT, "key": key, "sha256": _tensor_digest(state)}
    handle, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(handle)
    try:
        save_file(state, temporary, metadata=metadata)
        os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide a shared cache from others
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def _is_valid(path, key):
    """Whether ``path`` holds the checkpoint of ``key``, intact."""
    if not path.is_file():
        return False
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as file:
            metadata = file.metadata() or {}
            if metadata.get("format") != _FORMAT or metadata.get("key") != key:
                return False
            state = {name: file.get_tensor(name) for name in file.keys()}
    except Exception:  # a truncated or garbled file: train again
        return False
    return metadata.get("sha256") == _tensor_digest(state)


@contextlib.contextmanager
def _file_lock(path):
    try:
        import fcntl
    except ImportError:  # not POSIX: concurrent first uses may both train
        yield
        return
    with open(path, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def bold_rotated_digits(images, random_state=0):
    """Digit scans in a style the pretraining never saw: thick, rotated, blurred strokes.

    Each 8x8 scan (values 0-16) is enlarged to 32x32, its strokes thickened,
    rotated by 5 to 10 degrees either way and blurred; returns uint8 arrays
    of shape (n, 32, 32).
    """
    from scipy import ndimage
    from sklearn.utils import check_random_state

    rng = check_random_state(random_state)
    styled = []
    for image in np.asarray(images, dtype=np.float64) / 16:
        large = ndimage.zoom(image, 4, order=1)
        large = ndimage.grey_dilation(large, size=(2, 2))
        angle = rng.uniform(5, 10) * rng.choice([-1, 1])
        large = ndimage.rotate(large, angle, reshape=False, order=1)
        large = ndimage.gaussian_filter(large, 0.7)
        styled.append(large / max(large.max(), 1e-12))
    return np.clip(np.rint(np.stack(styled) * 255), 0, 255).astype(np.uint8)


def noisy_digits(images, random_state=0, noise=0.15):
    """Bold digits with Gaussian pixel noise: a style harder than bold, for a weaker zero-shot.

    Noise of standard deviation ``noise`` (on the 0-1 scale) is added to
    every pixel of the bold 32x32 images, then clipped; returns uint8 arrays.
    """
    from sklearn.utils import check_random_state

    rng = check_random_state(random_state)
    bold = bold_rotated_digits(images, rng).astype(np.float64) / 255
    noisy = bold + noise * rng.standard_normal(bold.shape)
    return np.clip(np.rint(noisy * 255), 0, 255).astype(np.uint8)


STYLES = ("plain", "bold", "noisy")


def held_out_digits(style="plain", random_state=0, recipe=RECIPE):
    """The digits left out of the pretraining, as uint8 images, and their labels."""
    from sklearn.datasets import load_digits

    if style not in STYLES:
        raise ValueError(f"expected style to be one of {STYLES}; got {style!r}")
    digits = load_digits()
    _, held_out = pretraining_split(len(digits.target), recipe["n_pretraining"], recipe["seed"])
    images, y = digits.images[held_out], digits.target[held_out]
    if style == "bold":
        return bold_rotated_digits(images, random_state), y
    if style == "noisy":
        return noisy_digits(images, random_state), y
    return np.clip(np.rint(images * (255 / 16)), 0, 255).astype(np.uint8), y
