"""Ratio 4: ``predict`` throughput against the raw encoder on the same images."""

import torch
from PIL import Image

from sklearn_taskres import clear_feature_cache
from sklearn_taskres._features import IMAGE_BATCH_SIZE

from .common import (
    classifier,
    load_encoder,
    mark,
    medians,
    paired_ratio,
    ratio_entry,
    side_by_side,
)


def ratio(config, model, data, repeats, device):
    """Ratio 4: ``predict`` (cache cold) against preprocess + encode_image in a plain loop."""
    fitted = classifier(config, model, data, device, max_iter=1).fit(
        data.fit_paths, data.fit_labels)
    encoder = load_encoder(model, device)
    paths = data.predict_paths
    batch_size = IMAGE_BATCH_SIZE.get(encoder.device.type, 64)

    def predict():
        clear_feature_cache()
        return fitted.predict(paths)

    def raw_encoder():
        chunks = []
        for start in range(0, len(paths), batch_size):
            pixels = []
            for path in paths[start : start + batch_size]:
                with Image.open(path) as image:
                    pixels.append(encoder.preprocess(image.convert("RGB")))
            chunks.append(torch.from_numpy(encoder.encode_images(torch.stack(pixels))))
        return torch.cat(chunks)

    seconds, _ = side_by_side({"predict": predict, "raw_encoder": raw_encoder}, repeats, device)
    medians_ = medians(seconds)
    return ratio_entry(
        paired_ratio(seconds["raw_encoder"], seconds["predict"]),
        "throughput ratio: predict images/s / raw encoder images/s",
        (">=", 0.9),
        seconds,
        model=model,
        n_images=len(paths),
        images_per_second={name: len(paths) / value for name, value in medians_.items()},
    )


def lines(predict, times):
    """The printed line of ratio 4."""
    rates = predict["images_per_second"]
    return [
        f" throughput vs the raw encoder (preprocess + encode_image; {predict['model']}, "
        f"{predict['n_images']} images, cache cold): {predict['ratio']:.2f} (predict "
        f"{rates['predict']:.1f} img/s, raw {rates['raw_encoder']:.1f} img/s)  {mark(predict)}",
    ]
