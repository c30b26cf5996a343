"""Ratio 2: our fit against an emulation of the official per-epoch re-encoding loop."""

import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from sklearn_taskres import clear_feature_cache
from sklearn_taskres._features import DECODE_WORKERS
from sklearn_taskres._templates import text_base
from sklearn_taskres._training import (
    ADAM_BETAS,
    ADAM_EPS,
    learning_rate_schedule,
    minibatches,
    residual_logits,
)

from .common import (
    ALPHA,
    BATCH_SIZE,
    WEIGHT_DECAY,
    classifier,
    load_encoder,
    mark,
    paired_ratio,
    ratio_entry,
    side_by_side,
)


def official_fit(encoder, data, *, epochs, learning_rate, device):
    """Emulate the official training loop; return the seconds of its text encoding.

    Every epoch decodes every training image, applies the official training
    augmentation, encodes it with the frozen image encoder, and takes one
    autograd + Adam step per batch, as the official code does. Decoding runs
    in as many threads as the library's own (the official data loader's
    workers); the encoder runs in the library's precision.
    """
    start = time.perf_counter()
    base = torch.tensor(text_base(encoder, data.names, data.templates), device=device)
    text_seconds = time.perf_counter() - start
    residual = torch.zeros_like(base, requires_grad=True)
    optimizer = torch.optim.Adam([residual], lr=learning_rate, betas=ADAM_BETAS, eps=ADAM_EPS,
                                 weight_decay=WEIGHT_DECAY)
    augment = encoder.augmentation
    labels = torch.as_tensor(data.fit_labels, device=device)
    generator = torch.Generator().manual_seed(0)
    view_seeds = np.random.default_rng(0)

    def augmented(path, seed):
        with Image.open(path) as image:
            return augment(image.convert("RGB"), seed)

    # The pool stands for the official data loader's workers.
    with ThreadPoolExecutor(max_workers=DECODE_WORKERS) as pool:
        for rate in learning_rate_schedule(learning_rate, epochs):
            for group in optimizer.param_groups:
                group["lr"] = float(rate)
            for batch in minibatches(len(data.fit_paths), BATCH_SIZE, generator):
                paths = [data.fit_paths[index] for index in batch.tolist()]
                seeds = view_seeds.integers(2**62, size=len(paths)).tolist()
                pixels = torch.stack(list(pool.map(augmented, paths, seeds)))
                with torch.no_grad():  # the image tower in the encoder's dtype
                    pixels = pixels.to(device, dtype=encoder.image_dtype)
                    features = encoder.model.encode_image(pixels).float()
                logits = residual_logits(F.normalize(features, dim=-1), base, residual, ALPHA,
                                         encoder.logit_scale)
                loss = F.cross_entropy(logits, labels[batch.to(device)])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
    return text_seconds


def ratio(config, model, data, repeats, device):
    """Ratio 2: our fit against the official per-epoch re-encoding, same epochs."""
    encoder = load_encoder(model, device)
    text_seconds = []

    def ours():
        clear_feature_cache()
        classifier(config, model, data, device, config.official_epochs).fit(
            data.fit_paths, data.fit_labels)

    def ours_recipe():
        clear_feature_cache()
        classifier(config, model, data, device).fit(data.fit_paths, data.fit_labels)

    def official():
        clear_feature_cache()
        text_seconds.append(official_fit(encoder, data, epochs=config.official_epochs,
                                         learning_rate=config.learning_rate, device=device))

    variants = {"ours": ours, "official": official, "ours_recipe_epochs": ours_recipe}
    seconds, _ = side_by_side(variants, repeats, device)
    # The official loop pays its per-epoch cost `epochs` times: scale that part linearly.
    text = statistics.median(text_seconds)
    per_epoch = (statistics.median(seconds["official"]) - text) / config.official_epochs
    official_recipe = text + per_epoch * config.epochs
    ours_recipe_seconds = statistics.median(seconds["ours_recipe_epochs"])
    return ratio_entry(
        paired_ratio(seconds["official"], seconds["ours"]),
        "speed-up: official-loop seconds / our fit seconds, same epochs (measured)",
        None,
        seconds,
        model=model,
        n_images=len(data.fit_paths),
        epochs_measured=config.official_epochs,
        recipe_epochs=config.epochs,
        official_recipe_seconds_extrapolated=official_recipe,
        ratio_recipe_extrapolated=official_recipe / ours_recipe_seconds,
    )


def lines(fit, times):
    """The printed lines of ratio 2."""
    return [
        f", ours (encode once, then train) vs the official per-epoch re-encoding "
        f"({fit['model']}, {fit['n_images']} images, {fit['epochs_measured']} epochs): "
        f"{fit['ratio']:.1f}x faster (ours {times['ours']:.2f} s, official "
        f"{times['official']:.2f} s)  {mark(fit)}",
        f"      at {fit['recipe_epochs']} epochs: ours {times['ours_recipe_epochs']:.2f} s "
        f"(measured), official {fit['official_recipe_seconds_extrapolated']:.1f} s "
        f"(EXTRAPOLATED linearly from {fit['epochs_measured']} epochs): "
        f"{fit['ratio_recipe_extrapolated']:.0f}x faster",
    ]
