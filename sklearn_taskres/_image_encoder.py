"""CLIPImageEncoder: CLIP image embeddings as a scikit-learn transformer."""

import os

from sklearn.base import BaseEstimator, TransformerMixin, _fit_context
from sklearn.utils._param_validation import StrOptions
from sklearn.utils.validation import _generate_get_feature_names_out

from ._callbacks import CallbackSupportMixin, fit_callback_context
from ._carried import CarriedEncoderStateMixin
from ._classifier import TaskResClassifier
from ._clip import PRECISIONS
from ._features import image_features, text_features
from ._images import image_column_of
from ._training import resolve_device


class CLIPImageEncoder(CallbackSupportMixin, TransformerMixin, CarriedEncoderStateMixin,
                       BaseEstimator):
    """Raw CLIP image embeddings of images, as a stateless transformer.

    ``transform`` returns the embeddings that :class:`TaskResClassifier`
    trains and predicts on for the same ``model``, ``pretrained``,
    ``device`` and ``precision``: the same encoder, preprocessing, decoding
    settings and feature cache. An image encoded once, by this transformer or
    by the classifier, is not encoded again. The embeddings feed any
    scikit-learn estimator: ``make_pipeline(CLIPImageEncoder(...),
    LogisticRegression())`` is CLIP's linear probe.

    Parameters
    ----------
    model : str, default="ViT-B-32"
        An open_clip model name, as for :class:`TaskResClassifier`.
    pretrained : str, path or None, default="auto"
        The weights, as for :class:`TaskResClassifier`.
    device : str, default="auto"
        Where to encode: ``"auto"`` (CUDA when available), ``"cpu"``,
        ``"cuda"`` or ``"cuda:N"``. A CUDA device on a machine without CUDA
        encodes on the CPU with a warning, as a loaded classifier predicts.
    precision : {"auto", "fp32", "bf16", "fp16"}, default="auto"
        The precision of the encoder, as for :class:`TaskResClassifier`.
        Part of the feature-cache key.
    cache_dir : str or path, default=None
        A folder for an on-disk feature cache shared by processes and later
        runs, as for :class:`TaskResClassifier`.
    image_column : str, default=None
        The column of images when ``X`` is a DataFrame with other columns
        too, as for :class:`TaskResClassifier`.
    verbose : int, default=0
        When positive, progress bars on stderr for model loading and encoding.

    See Also
    --------
    TaskResClassifier : TaskRes on images, which trains on these embeddings.
    TaskResHead : TaskRes on embeddings such as these.

    Notes
    -----
    The transformer holds no fitted state: ``fit`` only checks the
    parameters, and ``transform`` works without it. Images may be PIL images,
    paths to image files, the bytes of encoded image files (``bytes``,
    ``bytearray`` or ``memoryview``, decoded as the file and sharing its cached
    features), image files in base64, or uint8 arrays of shape (H, W) or
    (H, W, C); ``X`` may be a DataFrame with a column of them (``image_column``). The embeddings
    are not normalised; CLIP compares them by cosine similarity.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_taskres import CLIPImageEncoder
    >>> from sklearn_taskres.testing import register_tiny_clip
    >>> model = register_tiny_clip()  # a tiny random CLIP, so the example runs offline
    >>> images = [np.zeros((32, 32, 3), dtype=np.uint8), np.full((32, 32), 255, np.uint8)]
    >>> encoder = CLIPImageEncoder(model=model, pretrained=None, device="cpu")
    >>> encoder.transform(images).shape
    (2, 32)
    >>> encoder.get_feature_names_out()[:2]
    array(['clipimageencoder0', 'clipimageencoder1'], dtype=object)
    """

    _parameter_constraints = {
        "model": [str],
        "pretrained": [str, os.PathLike, None],
        "device": [str],
        "precision": [StrOptions({"auto", *PRECISIONS})],
        "cache_dir": [str, os.PathLike, None],
        "image_column": [str, None],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        model="ViT-B-32",
        *,
        pretrained="auto",
        device="auto",
        precision="auto",
        cache_dir=None,
        image_column=None,
        verbose=0,
    ):
        self.model = model
        self.pretrained = pretrained
        self.device = device
        self.precision = precision
        self.cache_dir = cache_dir
        self.image_column = image_column
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X=None, y=None):
        """Check the parameters; there is nothing to learn.

        Parameters
        ----------
        X : sequence of images, default=None
            Ignored.
        y : None
            Ignored.

        Returns
        -------
        self : CLIPImageEncoder
            The transformer.
        """
        fit_task = fit_callback_context(self, max_subtasks=0)
        fit_task.call_on_fit_task_begin(estimator=self, X=X, y=y)
        fit_task.call_on_fit_task_end(estimator=self, X=X, y=y)
        return self

    def transform(self, X):
        """CLIP image embeddings of the images.

        Parameters
        ----------
        X : sequence of images or DataFrame
            PIL images, paths to image files, encoded image bytes, image files
            in base64, or uint8 arrays; or a DataFrame with a column of them
            (``image_column``).

        Returns
        -------
        embeddings : ndarray of shape (n_samples, n_features), float32
            One raw (unnormalised) embedding per image, in the order of ``X``.
        """
        self._validate_params()
        return image_features(
            self._encoder(), image_column_of(X, self.image_column), cache_dir=self.cache_dir,
            verbose=self.verbose, decoding=self._decoding(),
        )

    def __setstate__(self, state):
        # Saved before image_column: X is taken as it was then.
        super().__setstate__({"image_column": None, **state})

    def get_feature_names_out(self, input_features=None):
        """Names of the embedding columns: ``clipimageencoder0``, ``clipimageencoder1``, ...

        Parameters
        ----------
        input_features : None
            Ignored: the input is images.

        Returns
        -------
        feature_names_out : ndarray of str objects
            One name per embedding dimension.
        """
        self._validate_params()
        # Image and text embeddings share CLIP's joint space, so one short
        # prompt (cached) gives the width without an image.
        width = text_features(self._encoder(), ["a photo."], cache_dir=self.cache_dir).shape[1]
        return _generate_get_feature_names_out(self, width, input_features=None)

    # The classifier's own loading and decoding settings: the same encoder,
    # precision and decoding for the same parameters, so the features are the
    # classifier's.
    def _encoder(self):
        return TaskResClassifier._encoder(self, resolve_device(self.device, cpu_fallback=True))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.requires_fit = False
        tags.input_tags.two_d_array = False
        return tags
