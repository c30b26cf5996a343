"""Ratio 7: ``predict_dataset`` on a local Ray instance against ``predict`` in this process.

Both label the same image files with the same fitted classifier, cache cold.
Ray runs one worker per core (each loads the encoder and decodes its rows),
started afresh for every repetition, so the Ray side pays the start of its
workers as a user's job does; the rate after the first batch shows what is
left once they are up.
"""

import os
import time

from sklearn_taskres import clear_feature_cache

from .common import classifier, log, mark, medians, paired_ratio, ratio_entry, side_by_side


def ratio(config, model, data, repeats, device):
    """Ratio 7: throughput of ``predict_dataset`` / throughput of ``predict``."""
    import ray  # the ray extra: only this measurement needs it

    from sklearn_taskres.ray import predict_dataset

    fitted = classifier(config, model, data, device, max_iter=1).fit(
        data.fit_paths, data.fit_labels)
    paths = data.predict_paths
    workers = os.cpu_count() or 1
    first_batch = []

    def predict():
        clear_feature_cache()
        return fitted.predict(paths)

    def on_ray():
        start = time.perf_counter()
        dataset = ray.data.from_items([{"path": path} for path in paths])
        labelled = predict_dataset(fitted, dataset, image_column="path", concurrency=workers,
                                   num_cpus=1)
        rows = 0
        for batch in labelled.iter_batches(batch_format="numpy", batch_size=None):
            if rows == 0:
                first_batch.append(time.perf_counter() - start)
            rows += len(batch["label"])
        if rows != len(paths):
            raise RuntimeError(f"expected {len(paths)} rows from predict_dataset; got {rows}")
        return rows

    started = not ray.is_initialized()
    if started:
        log(f"[{config.name}] starting a local Ray instance with {workers} CPUs")
        ray.init(address="local", num_cpus=workers, include_dashboard=False,
                 log_to_driver=False, logging_level="ERROR")
    try:
        seconds, _ = side_by_side({"predict": predict, "predict_dataset": on_ray}, repeats,
                                  device)
    finally:
        if started:
            ray.shutdown()
    medians_ = medians(seconds)
    steady = [(len(paths)) / (total - first) for total, first in
              zip(seconds["predict_dataset"], first_batch, strict=True)]
    return ratio_entry(
        paired_ratio(seconds["predict"], seconds["predict_dataset"]),
        "throughput ratio: predict_dataset images/s / predict images/s (workers started "
        "in every repetition)",
        (">=", 0.75),
        seconds,
        model=model,
        n_images=len(paths),
        workers=workers,
        images_per_second={name: len(paths) / value for name, value in medians_.items()},
        seconds_to_first_batch=sorted(first_batch)[len(first_batch) // 2],
        images_per_second_after_first_batch=sorted(steady)[len(steady) // 2],
    )


def lines(entry, times):
    """The printed lines of ratio 7."""
    rates = entry["images_per_second"]
    return [
        f" predict_dataset vs predict ({entry['model']}, {entry['n_images']} image files, "
        f"{entry['workers']} Ray workers of 1 CPU, cache cold): {entry['ratio']:.2f} "
        f"(predict_dataset {rates['predict_dataset']:.1f} img/s, predict "
        f"{rates['predict']:.1f} img/s)  {mark(entry)}",
        f"   first batch after {entry['seconds_to_first_batch']:.1f} s (workers starting); "
        f"afterwards {entry['images_per_second_after_first_batch']:.1f} img/s",
    ]
