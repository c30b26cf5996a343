"""Every ratio the benchmark can measure, in the order it prints them.

A new measurement is a module beside the others, exposing ``ratio`` and
``lines`` as they do, and one line in :data:`MEASUREMENTS`. A measurement
registered with ``default=False`` runs only in the configurations whose
``ratios`` name its key.
"""

from collections.abc import Callable
from dataclasses import dataclass

from . import (
    encoding,
    few_labels,
    fit,
    grid,
    labelling,
    logistic,
    open_set,
    photos,
    predict,
    ray_data,
    ray_photos,
    training,
)


@dataclass(frozen=True)
class Measurement:
    """One ratio: its printed title, how to measure it and how to print it.

    Parameters
    ----------
    title : str
        The printed name of the ratio, numbered: ``"[config] <title>..."``.
    ratio : callable
        ``ratio(config, model, data, repeats, device)``: measure the ratio on
        the configuration's first model and its images; return the entry that
        :func:`~taskres_bench.common.ratio_entry` makes.
    lines : callable
        ``lines(entry, times)``: the printed lines of that entry, given its
        median seconds per variant; the first one continues the title.
    default : bool, default=True
        Whether a configuration that does not list its ratios measures this one.
    """

    title: str
    ratio: Callable
    lines: Callable
    default: bool = True


MEASUREMENTS = {
    "residual_training": Measurement("1. residual training", training.ratio, training.lines),
    "fit_vs_official": Measurement("2. fit", fit.ratio, fit.lines),
    "grid_search_vs_fit": Measurement("3. grid search", grid.ratio, grid.lines),
    "predict_vs_encoder": Measurement("4. predict", predict.ratio, predict.lines),
    "taskres_vs_logistic": Measurement("5. TaskRes vs LogisticRegression", logistic.ratio,
                                       logistic.lines),
    "fit_vs_encoding": Measurement("6. fit vs encoding", encoding.ratio, encoding.lines),
    "predict_dataset_vs_predict": Measurement("7. Ray Data predict_dataset", ray_data.ratio,
                                              ray_data.lines, default=False),
    "photos": Measurement("8. 12-megapixel photos", photos.ratio, photos.lines, default=False),
    "ray_photos_bytes_vs_read_images": Measurement(
        "9. Ray Data photos", ray_photos.ratio, ray_photos.lines, default=False),
    "labelling": Measurement("10. labelling page", labelling.ratio, labelling.lines,
                             default=False),
    "open_set": Measurement("11. none of these", open_set.ratio, open_set.lines,
                            default=False),
    "few_labels": Measurement("12. a few labels", few_labels.ratio, few_labels.lines,
                              default=False),
}

# The ratios of a configuration that does not list its own.
DEFAULT_RATIOS = tuple(key for key, measurement in MEASUREMENTS.items() if measurement.default)
