"""Ratio 6: one fit against one pass of decode + encode over its images."""

from sklearn.base import clone

from sklearn_taskres import clear_feature_cache
from sklearn_taskres._features import image_features

from .common import classifier, load_encoder, mark, paired_ratio, ratio_entry, side_by_side


def ratio(config, model, data, repeats, device):
    """Ratio 6: one fit against one pass of decode + encode over its images, both cache cold."""
    estimator = classifier(config, model, data, device)
    encoder = load_encoder(model, device)

    def fit():
        clear_feature_cache()
        return clone(estimator).fit(data.fit_paths, data.fit_labels)

    def encode():
        clear_feature_cache()
        return image_features(encoder, data.fit_paths)

    seconds, _ = side_by_side({"fit": fit, "encode": encode}, repeats, device)
    return ratio_entry(
        paired_ratio(seconds["fit"], seconds["encode"]),
        "slow-down: fit seconds / seconds of one decode + encode pass over the same images",
        ("<=", 1.25),
        seconds,
        model=model,
        n_images=len(data.fit_paths),
        n_prompts=len(data.names) * len(data.templates),
        epochs=config.epochs,
    )


def lines(entry, times):
    """The printed line of ratio 6."""
    return [
        f", one fit vs one decode + encode pass over its images ({entry['model']}, "
        f"{entry['n_images']} images, {entry['n_prompts']} prompts, {entry['epochs']} epochs, "
        f"cache cold): {entry['ratio']:.2f}x the time (fit {times['fit']:.2f} s, encode "
        f"{times['encode']:.2f} s)  {mark(entry)}",
    ]
