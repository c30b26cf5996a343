"""TaskRes on a Ray cluster: predict, encode and fit over Ray Data datasets of images.

A fitted classifier is a few kilobytes (the base, the residual, the labels and
the name of its encoder), so it travels to every worker; each worker process
loads the CLIP encoder once and streams rows through it. Nothing is gathered
on the driver but what ``fit`` needs: one embedding and one label per image.

Fit on a cluster and label a bucket of photos, in a dozen lines::

    import ray
    from sklearn_taskres import TaskResClassifier
    from sklearn_taskres.ray import fit_dataset, predict_dataset

    ray.init()  # or ray.init(address="auto") on a cluster
    names = ["cat", "dog", "horse"]  # the class folders of s3://bucket/train/
    train = ray.data.read_binary_files("s3://bucket/train/", include_paths=True)
    train = train.map(lambda row: {**row, "label": row["path"].split("/")[-2]})
    clf = fit_dataset(TaskResClassifier(names), train, image_column="bytes", num_gpus=1)
    photos = ray.data.read_binary_files("s3://bucket/photos/", include_paths=True)
    labels = predict_dataset(clf, photos, image_column="bytes", num_gpus=1)
    labels.drop_columns(["bytes"]).write_parquet("s3://bucket/labels/")

The image column holds the bytes of encoded image files (what
:func:`ray.data.read_binary_files` yields, and what Parquet columns, WebDataset
shards and databases hold), paths to image files every worker can open, or
uint8 arrays of shape (H, W, C) as :func:`ray.data.read_images` yields; a
string that names no file may be an image file in base64, as for ``predict``. Bytes
and paths are decoded by the workers exactly as ``predict`` decodes a file:
EXIF orientation applied, large JPEGs decoded at reduced DCT scale, HEIC with
the ``heif`` extra; a file that does not decode fails the job with a
``ValueError`` naming its ``path`` column. ``read_images`` does neither: it
decodes every file at full size and keeps the pixels as stored, so a phone
photo taken upright but stored sideways is encoded sideways, and a 12-megapixel
JPEG costs two to three times the decoding and a 36 MB array in the object
store instead of its 3 MB of bytes. It is fine for images that are upright
as stored and near the model's input size (most curated datasets); for photos,
read the bytes. Requires the ``ray`` extra: ``pip install "sklearn-taskres[ray]"``.
"""

try:
    import ray
    import ray.data
except ImportError as exc:
    raise ImportError(
        "sklearn_taskres.ray needs Ray Data, which is not installed: "
        'pip install "sklearn-taskres[ray]"'
    ) from exc

import re

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted, column_or_1d

from ._classifier import TaskResClassifier, _augmentation_seed
from ._clip import custom_model_config, ensure_model_config, load_encoder, resolve_precision
from ._config import decoding_config, set_config
from ._features import augmented_image_features, image_features
from ._head import check_missing_labels, encode_labels
from ._images import short_repr
from ._training import resolve_device
from ._weights import check_sample_weight, training_weights

__all__ = ["encode_dataset", "fit_dataset", "predict_dataset"]

#: Rows per batch handed to a worker when ``batch_size`` is None.
DEFAULT_BATCH_SIZE = {"cpu": 64, "cuda": 256}


class _EncodingWorker:
    """Base of the actors: one CLIP encoder per worker process, loaded in ``__init__``."""

    def __init__(self, model, pretrained, device, precision, model_config, image_column,
                 decoding):
        ensure_model_config(model, model_config)
        # Each row is seen once: keep no features in memory beyond the batch.
        set_config(feature_cache_bytes=0)
        device = torch.device(device)
        precision = resolve_precision(precision, device)
        self.encoder = load_encoder(model, pretrained, device, precision)
        self.image_column = image_column
        self.decoding = decoding  # the driver's, captured at call time

    def _images(self, batch):
        if self.image_column not in batch:
            raise ValueError(
                f"expected the dataset to have the image column {self.image_column!r}; got "
                f"the columns {sorted(batch)}. Pass image_column=<the column of images>."
            )
        return list(batch[self.image_column])

    def _features(self, batch, encode):
        """``encode(images)``, with errors naming the row's path instead of its batch index."""
        images = self._images(batch)
        try:
            return encode(images)
        except ValueError as exc:
            raise ValueError(self._locate(str(exc), images, batch)) from exc

    def _locate(self, message, images, batch):
        match = re.match(r"X\[(\d+)\]: ", message)
        if match is None:
            return f"a row of the {self.image_column!r} column: {message}"
        row, message = int(match.group(1)), message[match.end():]
        item = images[row]
        if isinstance(item, str):
            if short_repr(item) not in message:  # a base64 image is named by its start
                message = f"{self.image_column}={short_repr(item)}: {message}"
        elif "path" in batch:  # read_binary_files or read_images with include_paths=True
            message = f"path={str(batch['path'][row])!r}: {message}"
        return f"a row of the {self.image_column!r} column: {message}"


class _Encoder(_EncodingWorker):
    """Adds the CLIP image embedding of every row (with ``n_views``, of its augmented views)."""

    def __init__(self, model, pretrained, device, precision, model_config, image_column,
                 decoding, output_column, n_views=0, seed=0):
        super().__init__(model, pretrained, device, precision, model_config, image_column,
                         decoding)
        self.output_column = output_column
        self.n_views, self.seed = n_views, seed

    def __call__(self, batch):
        if self.n_views:
            views = self._features(batch, lambda images: augmented_image_features(
                self.encoder, images, self.n_views, self.seed, decoding=self.decoding))
            batch[self.output_column] = np.ascontiguousarray(views.transpose(1, 0, 2))
        else:
            batch[self.output_column] = self._features(
                batch, lambda images: image_features(self.encoder, images,
                                                     decoding=self.decoding))
        return batch


class _Predictor(_EncodingWorker):
    """Adds ``label`` (and ``proba``) of every row, from a fitted TaskResClassifier."""

    def __init__(self, estimator, device, image_column, proba):
        # Unpickling the estimator registered its config and kept its decoding settings.
        super().__init__(estimator.model, estimator.pretrained, device, estimator.precision,
                         None, image_column, estimator._decoding())
        self.head = estimator.head_
        self.proba = proba

    def __call__(self, batch):
        features = self._features(
            batch, lambda images: image_features(self.encoder, images, decoding=self.decoding))
        if features.shape[1] != self.head.n_features_in_:
            raise ValueError(
                f"expected the encoder to give {self.head.n_features_in_}-dimensional features "
                f"as at fit; got {features.shape[1]}"
            )
        proba = self.head.predict_proba(features)
        batch["label"] = self.head.classes_.take(proba.argmax(axis=1))
        if self.proba:
            batch["proba"] = proba
        return batch


def predict_dataset(
    estimator,
    dataset,
    *,
    image_column="image",
    proba=False,
    batch_size=None,
    concurrency=None,
    num_gpus=0,
    num_cpus=None,
):
    """Predict every row of a Ray dataset of images with a fitted TaskResClassifier.

    Lazy and streaming: nothing runs until the result is consumed (for
    instance written with ``write_parquet``), and no row is gathered on the
    driver. Every worker of an actor pool holds the estimator (kilobytes)
    and loads its CLIP encoder once.

    Parameters
    ----------
    estimator : TaskResClassifier
        A fitted classifier. A custom open_clip config travels with it.
    dataset : ray.data.Dataset
        Rows with an image column.
    image_column : str, default="image"
        The column of images: the bytes of encoded image files (``"bytes"``
        for :func:`ray.data.read_binary_files`, the form for photos), paths to
        image files, or uint8 arrays (H, W, C) as :func:`ray.data.read_images`
        yields. Bytes and paths decode as in ``estimator.predict``.
    proba : bool, default=False
        Also add ``proba``, the probability of every class (columns in the
        order of ``estimator.classes_``).
    batch_size : int, default=None
        Rows per call of a worker; None is 256 on GPU workers, 64 on CPU ones.
    concurrency : int or tuple of (int, int), default=None
        Number of workers: a fixed size, or (min, max) for an autoscaling
        pool. None lets Ray size the pool.
    num_gpus : float, default=0
        GPUs per worker; when positive the workers encode on CUDA, otherwise
        on the CPU.
    num_cpus : float, default=None
        CPUs per worker (Ray's default is 1). Decoding and preprocessing run
        inside the worker, in threads.

    Returns
    -------
    dataset : ray.data.Dataset
        Every input row with all its columns, plus ``label`` (a label from
        ``estimator.classes_``) and, with ``proba=True``, ``proba``.
    """
    if not isinstance(estimator, TaskResClassifier):
        raise TypeError(
            f"expected a fitted TaskResClassifier; got {type(estimator).__name__} (for "
            "embeddings, predict with a TaskResHead on the output of encode_dataset)"
        )
    check_is_fitted(estimator)
    device = _worker_device(num_gpus)
    return _raising_our_errors(dataset.map_batches(
        _Predictor,
        fn_constructor_kwargs={"estimator": estimator, "device": device,
                               "image_column": image_column, "proba": bool(proba)},
        **_map_options(device, batch_size, concurrency, num_gpus, num_cpus),
    ))


def encode_dataset(
    dataset,
    *,
    model="ViT-B-32",
    pretrained="auto",
    image_column="image",
    output_column="embedding",
    device=None,
    precision="auto",
    batch_size=None,
    concurrency=None,
    num_gpus=0,
    num_cpus=None,
):
    """Add the CLIP image embedding of every row of a Ray dataset of images.

    The vectors are those :class:`~sklearn_taskres.TaskResClassifier` encodes
    for the same images, model, weights, device and precision: a fitted
    classifier's ``head_.predict`` on them equals its ``predict`` on the
    images.

    Parameters
    ----------
    dataset : ray.data.Dataset
        Rows with an image column.
    model : str, default="ViT-B-32"
        An open_clip model name, ``hf-hub:org/repo`` or ``local-dir:/path``
        (a folder every worker can read); a config registered here with
        ``open_clip.add_model_config`` travels to the workers.
    pretrained : str, path or None, default="auto"
        As for :class:`~sklearn_taskres.TaskResClassifier`: ``"auto"`` is
        the weights of a ``hf-hub:``/``local-dir:`` name and OpenAI's for
        other names; or an open_clip tag, a checkpoint file reachable from
        every worker, or None (random initialisation, for tests).
    image_column : str, default="image"
        The column of images: the bytes of encoded image files, paths to
        image files, or uint8 arrays (H, W, C), as for :func:`predict_dataset`.
    output_column : str, default="embedding"
        The column to add: one float32 vector per row.
    device : str, default=None
        Where the workers encode; None is ``"cuda"`` when ``num_gpus`` is
        positive and ``"cpu"`` otherwise.
    precision : {"auto", "fp32", "bf16", "fp16"}, default="auto"
        As for :class:`~sklearn_taskres.TaskResClassifier`.
    batch_size, concurrency, num_gpus, num_cpus
        As for :func:`predict_dataset`.

    Returns
    -------
    dataset : ray.data.Dataset
        Every input row with all its columns, plus ``output_column``.
    """
    device = _worker_device(num_gpus) if device is None else device
    return _encode(dataset, model, pretrained, device, precision, image_column, output_column,
                   batch_size, concurrency, num_gpus, num_cpus)


def fit_dataset(
    estimator,
    dataset,
    *,
    image_column="image",
    label_column="label",
    weight_column=None,
    batch_size=None,
    concurrency=None,
    num_gpus=0,
    num_cpus=None,
):
    """Fit a TaskResClassifier on a Ray dataset: encode on the cluster, train here.

    The workers encode every image (and, with ``augment_views``, its
    augmented views); the driver gathers one embedding and one label per
    row, in the dataset's row order, builds the text base and trains the
    residual with exactly the recipe of ``fit``. On the same images in the
    same order, with the same devices, the result is the one ``fit`` gives
    (float rounding aside). Embeddings are small: 16,000 images of ViT-L/14
    take 48 MB.

    Parameters
    ----------
    estimator : TaskResClassifier
        The classifier to fit, in place. Its ``device`` is where the residual
        is trained and the text base encoded, on the driver.
    dataset : ray.data.Dataset
        Rows with an image column and a label column.
    image_column : str, default="image"
        The column of images: the bytes of encoded image files, paths to
        image files, or uint8 arrays (H, W, C), as for :func:`predict_dataset`.
    label_column : str, default="label"
        The column of labels, as ``y`` of ``fit``.
    weight_column : str, default=None
        A column of sample weights, as ``sample_weight`` of ``fit`` (times
        the estimator's ``class_weight``); None weighs every row alike.
    batch_size, concurrency, num_gpus, num_cpus
        As for :func:`predict_dataset`; they apply to the encoding workers.

    Returns
    -------
    estimator : TaskResClassifier
        The fitted estimator.
    """
    if not isinstance(estimator, TaskResClassifier):
        raise TypeError(f"expected a TaskResClassifier; got {type(estimator).__name__}")
    estimator._validate_params()
    device = _worker_device(num_gpus)
    n_views = estimator.augment_views
    encoded = _encode(
        dataset, estimator.model, estimator.pretrained, device, estimator.precision,
        image_column, "_taskres_embedding", batch_size, concurrency, num_gpus, num_cpus,
        n_views=n_views, seed=_augmentation_seed(estimator.random_state),
        decoding=estimator._decoding(),
    )
    columns = [label_column] + ([weight_column] if weight_column is not None else [])
    features, y, *weights = _gather(encoded, "_taskres_embedding", columns)
    y = column_or_1d(y, warn=True)
    check_missing_labels(y)
    sample_weight = check_sample_weight(weights[0] if weights else None, len(y))
    classes, _ = estimator._classes_and_names(y)
    training_weights(sample_weight, estimator.class_weight, classes, encode_labels(y, classes))
    views = features.transpose(1, 0, 2) if n_views else features[np.newaxis]
    driver_device = resolve_device(estimator.device)
    encoder = estimator._encoder(driver_device)
    return estimator._fit_views(encoder, views, y, driver_device, sample_weight)


def _encode(dataset, model, pretrained, device, precision, image_column, output_column,
            batch_size, concurrency, num_gpus, num_cpus, n_views=0, seed=0, decoding=None):
    decoding = decoding_config() if decoding is None else decoding
    return _raising_our_errors(dataset.map_batches(
        _Encoder,
        fn_constructor_kwargs={
            "model": model, "pretrained": pretrained, "device": device, "precision": precision,
            "model_config": custom_model_config(model), "image_column": image_column,
            "decoding": decoding, "output_column": output_column, "n_views": n_views,
            "seed": seed,
        },
        **_map_options(device, batch_size, concurrency, num_gpus, num_cpus),
    ))


def _raising_our_errors(dataset):
    """Bad input surfaces as our ValueError (naming the row), not as Ray's wrapper of it."""
    dataset.context.raise_original_map_exception = True
    return dataset


def _gather(dataset, feature_column, columns):
    """The features and ``columns`` of every row, in the dataset's order, as NumPy arrays."""
    dataset = dataset.select_columns([feature_column, *columns])
    dataset.context.execution_options.preserve_order = True
    gathered = {name: [] for name in (feature_column, *columns)}
    for batch in dataset.iter_batches(batch_format="numpy", batch_size=None):
        for name, values in gathered.items():
            values.append(batch[name])
    if not gathered[feature_column]:
        raise ValueError("expected a dataset with at least one row; got an empty dataset")
    return [np.concatenate(values) for values in gathered.values()]


def _worker_device(num_gpus):
    return "cuda" if num_gpus and num_gpus > 0 else "cpu"


def _map_options(device, batch_size, concurrency, num_gpus, num_cpus):
    if concurrency is None:
        compute = ray.data.ActorPoolStrategy(min_size=1, max_size=None)
    elif isinstance(concurrency, tuple):
        compute = ray.data.ActorPoolStrategy(min_size=concurrency[0], max_size=concurrency[1])
    else:
        compute = ray.data.ActorPoolStrategy(size=concurrency)
    options = {
        "batch_format": "numpy",
        "batch_size": batch_size or DEFAULT_BATCH_SIZE[torch.device(device).type],
        "compute": compute,
        "udf_modifying_row_count": False,
        "num_gpus": num_gpus or None,
    }
    if num_cpus is not None:
        options["num_cpus"] = num_cpus
    return options
