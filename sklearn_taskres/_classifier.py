"""TaskResClassifier: TaskRes end to end on images, with an open_clip model."""

import copy
import os
from collections.abc import Mapping
from numbers import Integral, Real

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, _fit_context, clone
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_consistent_length, check_is_fitted, column_or_1d

from ._callbacks import (
    NO_CALLBACKS,
    CallbackSupportMixin,
    EpochTasks,
    callback_metadata,
    fit_callback_context,
)
from ._carried import CarriedEncoderStateMixin
from ._clip import (
    PRECISIONS,
    load_encoder,
    resolve_precision,
)
from ._features import augmented_image_features, image_features
from ._head import TaskResHead, check_missing_labels, encode_labels
from ._images import image_column_of
from ._open_set import NONE_LABEL, none_mask
from ._state import VersionedStateMixin
from ._templates import enhanced_text_base, resolve_templates, text_base
from ._training import resolve_device
from ._weights import check_sample_weight, training_weights

#: Key of the open_clip config of a custom ``model`` in the pickled state.


def _label_space(classnames):
    """Labels and CLIP names of the classes, validated."""
    if isinstance(classnames, Mapping):
        labels, names = list(classnames.keys()), list(classnames.values())
    else:
        labels, names = None, list(classnames)
    if len(names) < 2:
        raise ValueError(f"expected at least 2 classes in classnames; got {len(names)}")
    for index, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            where = f"classnames[{labels[index]!r}]" if labels else f"classnames[{index}]"
            raise ValueError(f"{where}: expected a non-empty string; got {name!r}")
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"expected distinct class names; got duplicates {duplicates}")
    return labels, names


def _augmentation_seed(random_state):
    """The seed of the augmented views.

    An int seed is used as is. Without one the views are still fixed (seed 0)
    rather than fresh at every fit: the cache then serves refits and every
    clone of a grid search without encoding the views again.
    """
    if random_state is None:
        return 0
    if isinstance(random_state, Integral):
        return int(random_state)
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


def _fitted_copy(head, state):
    """A copy of ``head`` (being fitted) with the fitted attributes ``state``."""
    fitted = copy.copy(head)
    vars(fitted).update(state)
    return fitted


def _as_label_array(labels):
    array = np.asarray(labels)
    if array.ndim != 1 or array.tolist() != list(labels):
        array = np.empty(len(labels), dtype=object)
        array[:] = labels
    return array


class TaskResClassifier(CallbackSupportMixin, ClassifierMixin, CarriedEncoderStateMixin,
                        VersionedStateMixin, BaseEstimator):
    """Few-shot image classifier: CLIP's zero-shot classifier plus a task residual.

    TaskRes (Yu et al., "Task Residual for Tuning Vision-Language Models",
    CVPR 2023) keeps CLIP's text-based classifier ``t`` frozen and learns a
    residual ``x`` on a few labelled images::

        t' = t + alpha * x
        logits = exp(logit_scale) * normalize(image_features) @ normalize(t').T

    ``t`` is built from the class names and prompt templates with the text
    encoder; image features are encoded once, cached by content, and the
    residual is trained on the cached features (on the GPU when there is one).
    The math is :class:`TaskResHead`'s.

    Parameters
    ----------
    classnames : sequence of str or mapping {label: str}
        The K class names, in the order of ``classes_``. With a sequence,
        ``y`` may hold the names themselves or integer indices ``0 .. K-1``,
        and predictions come back in the same kind. With a mapping, labels
        are its keys and names its values.
    model : str, default="ViT-B-32"
        An open_clip model name: a built-in name (``open_clip.list_models()``),
        a name registered with ``open_clip.add_model_config``,
        ``"hf-hub:org/repo"`` (config and weights from a Hugging Face
        repository, such as ``"hf-hub:timm/ViT-B-16-SigLIP"``) or
        ``"local-dir:/path"`` (a folder holding ``open_clip_config.json`` and
        the weights, as such a repository does). Sigmoid-trained models
        (SigLIP) add a learned logit bias; it is the same for every class, so
        the softmax, and TaskRes, do not depend on it.
    pretrained : str, path or None, default="auto"
        ``"auto"`` takes the weights that come with a ``hf-hub:`` or
        ``local-dir:`` name, and OpenAI's (``"openai"``) for other names.
        Otherwise an open_clip pretrained tag (downloaded once and cached by
        open_clip), a local checkpoint file, or None for a random
        initialisation (tests only). With a ``hf-hub:`` or ``local-dir:``
        name, a tag or file is an error: the weights come from the
        repository or folder. For OpenAI tags the QuickGELU activation is
        set to match the weights. A fitted estimator does not store the
        weights: it finds the encoder again from ``model`` and
        ``pretrained``, so they must be reachable wherever it is loaded.
    templates : sequence of str, default=None
        Prompt templates with one ``{}`` for the class name; None means
        ``("a photo of a {}.",)``. The base for a class is the mean of the
        raw (unnormalised) text embeddings over templates.
    alpha : float or "auto", default=0.5
        Scale of the residual: the paper's 0.5 by default, so that a fit is
        TaskRes as published. ``"auto"`` chooses it from the training labels
        alone, zero-shot (0) among the candidates, by cross-validation on the
        cached features (about 1.5 to 3 fixed fits; see ``TaskResHead``); prefer it
        with few labels, where a fixed 0.5 can score below zero-shot. The
        value used is ``alpha_``.
    learning_rate : float, default=2e-3
        Peak learning rate of Adam.
    max_iter : int, default=200
        Number of epochs, the warm-up epoch included.
    batch_size : int, default=256
        Minibatch size of the residual training.
    weight_decay : float, default=5e-4
        L2 penalty (coupled, as ``torch.optim.Adam``).
    class_weight : dict, "balanced" or None, default=None
        Weights of the classes in the loss, as in ``LogisticRegression``:
        ``{label: weight}`` (labels of ``classes_``; those left out weigh 1),
        or ``"balanced"``, ``n_samples / (n_classes_in_y * np.bincount(y))``.
        A sample weighs its class weight times its ``sample_weight``; the
        weights also apply to the projection tuning of ``base="enhanced"``.
    augment_views : int, default=0
        When positive, train on this many augmented views of every training
        image instead of the plain evaluation crop: the official training
        augmentation (random resized crop with scale 0.08-1, bicubic, and
        horizontal flip), encoded once and cached; each epoch uses one view
        per image, drawn at random. The official code draws a new view every
        epoch, so ``augment_views=max_iter`` comes closest. The views are
        fixed by ``random_state`` (seed 0 when None, so that refits and grid
        searches reuse them). Prediction always uses the evaluation
        transform.
    base : {"text", "enhanced"}, default="text"
        The base classifier ``t``. ``"text"`` is CLIP's zero-shot classifier
        (TaskRes). ``"enhanced"`` is TaskRes*: CLIP's text projection is
        first tuned on the training images (same loss, optimiser and schedule
        as the residual), the class embeddings are recomputed with it and
        frozen as the base, and the residual is learned on top as usual. The
        text features before the projection are encoded once and cached, so
        the tuning is a small matrix problem. Models whose text tower does not
        end in a linear projection (Hugging Face text towers) are not
        supported.
    enhance_max_iter : int, default=50
        Epochs of the projection tuning for ``base="enhanced"`` (the paper's
        50).
    enhance_learning_rate : float, default=2e-4
        Peak learning rate of the projection tuning. The official code
        releases only the tuned weights, not this setting: 2e-4 moves the
        projection's entries (about ``1/sqrt(width)``) by the same fraction
        per step as the default 2e-3 moves the residual against the text
        embeddings' entries. Lower it for large datasets (many steps per
        epoch), as the paper lowers ``learning_rate`` for ImageNet.
    device : str, default="auto"
        Where to encode and train: ``"auto"`` (CUDA when available), ``"cpu"``,
        ``"cuda"`` or ``"cuda:N"``.
    precision : {"auto", "fp32", "bf16", "fp16"}, default="auto"
        The dtype of the CLIP image tower's weights (open_clip's own
        half-precision conversion: LayerNorm computed in fp32; ResNet towers
        also run channels-last). The text tower, and so the base classifier,
        stays fp32; features are returned as fp32. ``"auto"`` is bf16 where
        the device has native bf16 units, fp32 elsewhere: CUDA devices of
        compute capability 8.0 and newer, and CPUs with AMX (4.6 times
        fp32's speed for ViT-B-32 on an AMX Xeon, features at cosine >=
        0.9999); on other CPUs bf16 is slower than fp32 (0.63 times its
        speed with AVX512-BF16 alone, several times slower where it is
        emulated). It is resolved where the estimator runs: a model
        fitted with "auto" on one machine resolves it again where it is
        loaded. Part of the feature-cache key.
    cache_dir : str or path, default=None
        A folder for an on-disk feature cache shared by processes and later
        runs: images and prompts already encoded there (same content, model,
        weights, precision and preprocessing) are read instead of encoded.
        Writes are atomic and checksummed; corrupt entries are recomputed.
    image_column : str, default=None
        The column of images when ``X`` is a pandas DataFrame
        with other columns too. None takes the only column of a DataFrame,
        and refuses one with several. ``X`` that is not a DataFrame is the
        sequence of images whatever this says.
    random_state : int, RandomState instance or None, default=None
        Seeds the batch order.
    verbose : int, default=0
        When positive, progress bars on stderr for model loading, encoding
        and training (with the loss of each epoch). Messages always go to
        the ``"sklearn_taskres"`` logger.
    none_label : object, default="_none"
        The label that marks, in ``y``, an image of none of the classes (the
        name of the ``_none/`` folder of the command line). Such images never
        become a class; they sharpen :meth:`score_unknown`. With integer
        labels, use an integer such as -1.
    unknown_label : object, default=None
        What :meth:`predict` returns for an image whose :meth:`score_unknown`
        is above the threshold. None: every image gets a class.
        :meth:`predict_proba` is never changed.
    unknown_threshold : float or "auto", default="auto"
        The threshold of :meth:`score_unknown`; ``"auto"`` is
        ``unknown_threshold_``, chosen from the labels.

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The full label space in the order of ``classnames``; classes without
        training images are still predicted (zero-shot).
    base_weights_ : ndarray of shape (n_classes, n_features)
        The raw template-mean text embeddings ``t``.
    residual_ : ndarray of shape (n_classes, n_features)
        The learned task residual ``x``.
    alpha_ : float
        The residual scale the residual was trained with: ``alpha``, or the
        value ``alpha="auto"`` chose.
    residual_norms_ : ndarray of shape (n_classes,)
        ``||alpha_ * residual_[k]||`` per class: how far each class moved from
        CLIP's zero-shot classifier (see :mod:`sklearn_taskres.diagnostics`).
    logit_scale_ : float
        The model's ``exp(logit_scale)`` (100 for OpenAI weights).
    n_iter_ : int
        Number of epochs run.
    loss_curve_ : list of float
        Mean training loss of every epoch.
    unknown_threshold_ : float
        The :meth:`score_unknown` that keeps 95 % of the labelled images of
        the classes, each scored leave-one-out.
    head_ : TaskResHead
        The fitted head on image embeddings that holds the math.

    See Also
    --------
    TaskResHead : The same method on precomputed embeddings.

    Notes
    -----
    Images may be PIL images (any mode; converted to RGB), paths to image
    files, the bytes of encoded image files (``bytes``, ``bytearray`` or
    ``memoryview``; decoded as the file, and sharing its cached features),
    image files in base64 (a string that names no file and decodes as base64
    to an image file: how JSON carries bytes), or uint8 arrays of shape
    (H, W) or (H, W, C). They are preprocessed with the model's own open_clip
    evaluation transform. ``X`` may be a DataFrame: its column of images is
    ``X`` (see ``image_column``), and ``X[i]`` in an error is its row at
    position ``i``. :ref:`tracking` says how a string is recognised as base64.

    With scikit-learn 1.9 or later, ``set_callbacks`` takes scikit-learn's
    callbacks (``sklearn.callback``). The tasks of a fit are the image
    encoding, the text base (its fitted view is the zero-shot classifier) and
    the training, one task per epoch with a fitted view of that epoch.
    Callbacks do not change the result.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn_taskres import TaskResClassifier
    >>> from sklearn_taskres.testing import register_tiny_clip
    >>> model = register_tiny_clip()  # a tiny random CLIP, so the example runs offline
    >>> rng = np.random.RandomState(0)
    >>> images = [rng.randint(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(6)]
    >>> clf = TaskResClassifier(["cat", "dog"], model=model, pretrained=None,
    ...                         max_iter=5, device="cpu", random_state=0)
    >>> clf.fit(images, ["cat", "dog", "cat", "dog", "cat", "dog"]).predict(images[:2]).shape
    (2,)
    >>> clf.classes_
    array(['cat', 'dog'], dtype='<U3')
    """

    _parameter_constraints = {
        "classnames": [Mapping, "array-like"],
        "model": [str],
        "pretrained": [str, os.PathLike, None],
        "templates": [str, "array-like", None],
        "alpha": [Interval(Real, 0, None, closed="left"), StrOptions({"auto"})],
        "learning_rate": [Interval(Real, 0, None, closed="neither")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "class_weight": [StrOptions({"balanced"}), dict, None],
        "augment_views": [Interval(Integral, 0, None, closed="left")],
        "base": [StrOptions({"text", "enhanced"})],
        "enhance_max_iter": [Interval(Integral, 1, None, closed="left")],
        "enhance_learning_rate": [Interval(Real, 0, None, closed="neither")],
        "device": [str],
        "precision": [StrOptions({"auto", *PRECISIONS})],
        "cache_dir": [str, os.PathLike, None],
        "image_column": [str, None],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
        "none_label": "no_validation",
        "unknown_label": "no_validation",
        "unknown_threshold": [Real, StrOptions({"auto"})],
    }

    def __init__(
        self,
        classnames,
        *,
        model="ViT-B-32",
        pretrained="auto",
        templates=None,
        alpha=0.5,
        learning_rate=2e-3,
        max_iter=200,
        batch_size=256,
        weight_decay=5e-4,
        class_weight=None,
        augment_views=0,
        base="text",
        enhance_max_iter=50,
        enhance_learning_rate=2e-4,
        device="auto",
        precision="auto",
        cache_dir=None,
        image_column=None,
        random_state=None,
        verbose=0,
        none_label=NONE_LABEL,
        unknown_label=None,
        unknown_threshold="auto",
    ):
        self.classnames = classnames
        self.model = model
        self.pretrained = pretrained
        self.templates = templates
        self.alpha = alpha
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.class_weight = class_weight
        self.augment_views = augment_views
        self.base = base
        self.enhance_max_iter = enhance_max_iter
        self.enhance_learning_rate = enhance_learning_rate
        self.device = device
        self.precision = precision
        self.cache_dir = cache_dir
        self.image_column = image_column
        self.random_state = random_state
        self.verbose = verbose
        self.none_label = none_label
        self.unknown_label = unknown_label
        self.unknown_threshold = unknown_threshold

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Build the text base, encode the images and learn the task residual.

        Parameters
        ----------
        X : sequence of images or DataFrame
            PIL images, paths to image files, encoded image bytes, image files
            in base64, or uint8 arrays; or a DataFrame with a column of them
            (``image_column``).
        y : array-like of shape (n_samples,)
            Class names or integer indices (sequence ``classnames``), or keys
            of the ``classnames`` mapping; ``none_label`` for an image of none
            of the classes.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weights of the images (times their class weight). The
            loss of a batch is the weighted mean of its images' losses; a
            batch whose weights sum to zero makes no step.

        Returns
        -------
        self : TaskResClassifier
            The fitted classifier.
        """
        X = image_column_of(X, self.image_column)
        check_consistent_length(X, y)
        y = column_or_1d(y, warn=True)
        check_missing_labels(y)
        sample_weight = check_sample_weight(sample_weight, len(y))
        known = ~none_mask(y, self.none_label)
        classes, names = self._classes_and_names(y[known])
        targets = encode_labels(y[known], classes)  # unknown labels fail before loading a model
        known_weights = None if sample_weight is None else sample_weight[known]
        training_weights(known_weights, self.class_weight, classes, targets)  # bad weights too
        resolve_templates(self.templates)
        device = resolve_device(self.device)
        # The tasks: encode-images, text-base, then train with one subtask per epoch.
        fit_task = fit_callback_context(self, max_subtasks=3)
        data = {"X": X, "y": y, "metadata": callback_metadata(sample_weight)}
        fit_task.call_on_fit_task_begin(estimator=self, **data)
        encode_task = fit_task.subcontext(task_name="encode-images")
        encode_task.call_on_fit_task_begin(estimator=self, **data)
        encoder = self._encoder(device)
        if self.augment_views:
            seed = _augmentation_seed(self.random_state)
            views = augmented_image_features(
                encoder, X, self.augment_views, seed, cache_dir=self.cache_dir,
                verbose=self.verbose, decoding=self._decoding(),
            )
        else:
            features = image_features(encoder, X, cache_dir=self.cache_dir, verbose=self.verbose,
                                      decoding=self._decoding())
            views = features[np.newaxis]
        encode_task.call_on_fit_task_end(estimator=self, **data)
        self._fit_views(encoder, views, y, device, sample_weight, fit_task=fit_task, X=X)
        fit_task.call_on_fit_task_end(estimator=self, reconstruction_attributes={}, **data)
        return self

    def _fit_views(self, encoder, views, y, device, sample_weight=None, *,
                   fit_task=NO_CALLBACKS, X=None):
        """Build the base and learn the residual on encoded views (n_views, n_samples, D).

        ``fit`` encodes the images ``X`` here; :func:`sklearn_taskres.ray.fit_dataset`
        encodes them on a cluster. The text base and the training are subtasks
        of ``fit_task``; after the text base, the callbacks see the zero-shot
        classifier.
        """
        data = {"X": X, "y": y, "metadata": callback_metadata(sample_weight)}
        base_task = fit_task.subcontext(task_name="text-base")
        base_task.call_on_fit_task_begin(estimator=self, **data)
        y = y if isinstance(y, np.ndarray) else column_or_1d(y)
        known = ~none_mask(y, self.none_label)
        classes, names = self._classes_and_names(y[known])
        targets = encode_labels(y[known], classes)
        weights = training_weights(None if sample_weight is None else sample_weight[known],
                                   self.class_weight, classes, targets)
        templates = resolve_templates(self.templates)
        if self.base == "enhanced":
            base = enhanced_text_base(
                encoder,
                names,
                templates,
                views[:, known],
                targets,
                logit_scale=encoder.logit_scale,
                learning_rate=self.enhance_learning_rate,
                max_iter=self.enhance_max_iter,
                batch_size=self.batch_size,
                weight_decay=self.weight_decay,
                seed=check_random_state(self.random_state).randint(np.iinfo(np.int32).max),
                device=device,
                sample_weight=weights,
                verbose=self.verbose,
            )
        else:
            base = text_base(encoder, names, templates, cache_dir=self.cache_dir)

        head = TaskResHead(
            base,
            classes=classes,
            alpha=self.alpha,
            logit_scale=encoder.logit_scale,
            learning_rate=self.learning_rate,
            max_iter=self.max_iter,
            batch_size=self.batch_size,
            weight_decay=self.weight_decay,
            class_weight=self.class_weight,
            device=self.device,
            random_state=self.random_state,
            verbose=self.verbose,
            none_label=self.none_label,
            unknown_label=self.unknown_label,
            unknown_threshold=self.unknown_threshold,
        )
        head._validate_params()

        def view(state):
            return self._fitted_attributes(_fitted_copy(head, state))

        base_task.call_on_fit_task_end(
            estimator=self, **data,
            reconstruction_attributes=lambda: view(head._fitted_state(
                classes, base, np.zeros_like(base), [], base.shape[1])),
        )
        train_task = fit_task.subcontext(task_name="train", max_subtasks=self.max_iter)
        train_task.call_on_fit_task_begin(estimator=self, **data)
        head._fit_views(
            views, y, sample_weight, epoch_tasks=EpochTasks(train_task, self, **data, view=view)
        )
        # The head's parameter and fitted base hold equal values; one array
        # keeps the pickle at one copy of t.
        head.base_weights = head.base_weights_
        self._set_fitted(head)
        train_task.call_on_fit_task_end(estimator=self, **data)
        return self

    def restrict_classes(self, classes):
        """A fitted copy of the classifier that only knows a subset of its classes.

        For evaluation on a label space that covers part of the training one
        (ImageNet-A and -R cover 200 of ImageNet's 1,000 classes). Labels keep
        their meaning: with integer labels, ``classnames`` of the copy becomes
        the mapping ``{label: name}`` of the kept classes.

        Parameters
        ----------
        classes : array-like of shape (n_kept,)
            Distinct labels from ``classes_``.

        Returns
        -------
        classifier : TaskResClassifier
            A new fitted classifier; ``self`` is unchanged.
        """
        check_is_fitted(self)
        head = self.head_.restrict_classes(classes)
        labels, names = _label_space(self.classnames)
        name_of = dict(zip(self.classes_.tolist(), names, strict=True))
        kept = head.classes_.tolist()
        if labels is None and self.classes_.dtype.kind in "US":
            classnames = list(kept)
        else:
            classnames = {label: name_of[label] for label in kept}
        restricted = clone(self).set_params(classnames=classnames)
        restricted._set_fitted(head)
        return restricted

    def extend_classes(self, classnames):
        """A fitted copy of the classifier that also knows new classes, from their names alone.

        CLIP recognises a class it has no image of from its name: the new
        classes get the text base of their names (with this classifier's
        templates and encoder, exactly the rows a fit with these names would
        give) and a zero residual, so they are predicted zero-shot, while
        every old class keeps its base and trained residual. The residual of
        the old classes was trained without the new classes as negatives: once
        the new classes have images, refit.

        Parameters
        ----------
        classnames : sequence of str or mapping {label: str}
            Names of the new classes, with the rules of ``classnames``: a
            sequence when ``classnames`` is one (the new labels are the names,
            or the next integer indices when ``y`` held indices), a mapping of
            new labels to names when ``classnames`` is a mapping.

        Returns
        -------
        classifier : TaskResClassifier
            A new fitted classifier whose ``classes_`` are the old ones followed
            by the new ones; ``self`` is unchanged.
        """
        check_is_fitted(self)
        if self.base == "enhanced":
            raise ValueError(
                "expected a classifier fitted with base='text'; got base='enhanced', whose "
                "class embeddings come from a text projection tuned at fit and not kept. "
                "Refit with the new names in classnames."
            )
        labels, names = _label_space(self.classnames)
        new_labels, new_names = self._new_classes(classnames, labels is not None)
        for name in new_names:
            if name in names:
                raise ValueError(
                    f"expected names of new classes; got {name!r}, already in classnames"
                )
        if labels is None:
            combined = [*names, *new_names]
            if self.classes_.dtype.kind in "US":
                new_labels = np.asarray(new_names)
            else:
                new_labels = np.arange(len(names), len(names) + len(new_names))
        else:
            for label in new_labels:
                if label in set(self.classes_.tolist()):
                    raise ValueError(
                        f"expected labels of new classes; got {label!r}, already in classes_"
                    )
            combined = {**self.classnames, **dict(zip(new_labels, new_names, strict=True))}
            new_labels = _as_label_array(new_labels)
        _label_space(combined)  # every name a distinct non-empty string
        encoder = self._encoder(resolve_device(self.device, cpu_fallback=True))
        templates = resolve_templates(self.templates)
        base = text_base(encoder, new_names, templates, cache_dir=self.cache_dir)
        if base.shape[1] != self.base_weights_.shape[1]:
            raise ValueError(
                f"expected model={self.model!r}, pretrained={self.pretrained!r} to give "
                f"{self.base_weights_.shape[1]}-dimensional text embeddings as at fit; got "
                f"{base.shape[1]}. Set model and pretrained back to the fitted encoder."
            )
        head = self.head_.extend_classes(base, new_labels)
        extended = clone(self).set_params(classnames=combined)
        extended._set_fitted(head)
        return extended

    @staticmethod
    def _new_classes(classnames, mapping_style):
        """Labels (None for a sequence) and names of the classes given to extend_classes."""
        if isinstance(classnames, Mapping) != mapping_style:
            kind = "a mapping {label: name}" if mapping_style else "a sequence of names"
            got = "a mapping" if isinstance(classnames, Mapping) else repr(classnames)
            raise ValueError(
                f"expected {kind}, as this classifier's classnames; got {got}"
            )
        if isinstance(classnames, str):
            raise ValueError(f"expected a sequence of names; got the string {classnames!r}")
        if mapping_style:
            new_labels, new_names = list(classnames.keys()), list(classnames.values())
        else:
            new_labels, new_names = None, list(classnames)
        if not new_names:
            raise ValueError("expected at least one new class; got none")
        for index, name in enumerate(new_names):
            if not isinstance(name, str) or not name.strip():
                where = f"[{new_labels[index]!r}]" if mapping_style else f"[{index}]"
                raise ValueError(f"classnames{where}: expected a non-empty string; got {name!r}")
        return new_labels, new_names

    def _set_fitted(self, head):
        vars(self).update(self._fitted_attributes(head))

    @staticmethod
    def _fitted_attributes(head):
        """The fitted attributes of a classifier around the fitted ``head``."""
        return {
            "head_": head,
            "classes_": head.classes_,
            "base_weights_": head.base_weights_,
            "residual_": head.residual_,
            "alpha_": head.alpha_,
            "logit_scale_": head.logit_scale_,
            "n_iter_": head.n_iter_,
            "loss_curve_": head.loss_curve_,
            **({"unknown_threshold_": head.unknown_threshold_}
               if hasattr(head, "unknown_threshold_") else {}),
        }

    @property
    def residual_norms_(self):
        return self.head_.residual_norms_

    def _classes_and_names(self, y):
        labels, names = _label_space(self.classnames)
        if labels is not None:
            return _as_label_array(labels), names
        if y.dtype.kind in "iu" or (y.dtype.kind == "O" and all(
            isinstance(label, Integral) and not isinstance(label, bool) for label in y
        )):
            return np.arange(len(names)), names
        if y.dtype.kind in "US" or (
            y.dtype.kind == "O" and all(isinstance(label, str) for label in y)
        ):
            return np.asarray(names), names
        raise ValueError(
            "expected y to hold class names or integer indices 0..K-1 into classnames; "
            f"got dtype {y.dtype} (first labels: {y[:3].tolist()})"
        )

    def _encoder(self, device):
        precision = resolve_precision(self.precision, device)
        return load_encoder(self.model, self.pretrained, device, precision, self.verbose)

    def __setstate__(self, state):
        # Saved before image_column: X is taken as it was then.
        super().__setstate__({"image_column": None, **state})

    def _features(self, X):
        X = image_column_of(X, self.image_column)
        encoder = self._encoder(resolve_device(self.device, cpu_fallback=True))
        features = image_features(encoder, X, cache_dir=self.cache_dir, verbose=self.verbose,
                                  decoding=self._decoding())
        if features.shape[1] != self.base_weights_.shape[1]:
            raise ValueError(
                f"expected model={self.model!r}, pretrained={self.pretrained!r} to give "
                f"{self.base_weights_.shape[1]}-dimensional features as at fit; got "
                f"{features.shape[1]}. Set model and pretrained back to the fitted encoder."
            )
        return features

    def score_unknown(self, X):
        """The "none of these" score of every image: higher is less like any class.

        See :meth:`TaskResHead.score_unknown`. With ``unknown_label`` set,
        :meth:`predict` returns it where the score is above
        ``unknown_threshold_`` (or ``unknown_threshold``).

        Parameters
        ----------
        X : sequence of images
            PIL images, paths to image files, encoded image bytes, or uint8 arrays.

        Returns
        -------
        scores : ndarray of shape (n_samples,)
            One score per image.
        """
        check_is_fitted(self)
        return self._synced_head().score_unknown(self._features(X))

    def _synced_head(self):
        """The head with this classifier's predict-time open-set parameters."""
        head = self.head_
        # getattr: estimators pickled before these parameters existed lack them.
        wanted = (getattr(self, "unknown_label", None), getattr(self, "unknown_threshold", "auto"))
        if (getattr(head, "unknown_label", None),
                getattr(head, "unknown_threshold", "auto")) == wanted:
            return head
        head = copy.copy(head)
        head.unknown_label, head.unknown_threshold = wanted
        return head

    def decision_function(self, X):
        """Logits of every class for every image.

        Parameters
        ----------
        X : sequence of images or DataFrame
            Images, or a DataFrame with a column of images, as for ``fit``.

        Returns
        -------
        scores : ndarray of shape (n_samples, n_classes)
            Columns follow ``classes_``.
        """
        check_is_fitted(self)
        return self.head_.decision_function(self._features(X))

    def predict(self, X):
        """Predict the class of every image.

        Parameters
        ----------
        X : sequence of images or DataFrame
            Images, or a DataFrame with a column of images, as for ``fit``.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            Labels from ``classes_``, or ``unknown_label`` (when set) for
            images whose :meth:`score_unknown` is above the threshold.
        """
        check_is_fitted(self)
        return self._synced_head().predict(self._features(X))

    def predict_proba(self, X):
        """Class probabilities of every image.

        Parameters
        ----------
        X : sequence of images or DataFrame
            Images, or a DataFrame with a column of images, as for ``fit``.

        Returns
        -------
        proba : ndarray of shape (n_samples, n_classes)
            Columns follow ``classes_``.
        """
        check_is_fitted(self)
        return self.head_.predict_proba(self._features(X))

    def predict_log_proba(self, X):
        """Logarithm of the class probabilities of every image.

        Parameters
        ----------
        X : sequence of images or DataFrame
            Images, or a DataFrame with a column of images, as for ``fit``.

        Returns
        -------
        log_proba : ndarray of shape (n_samples, n_classes)
            Columns follow ``classes_``.
        """
        check_is_fitted(self)
        return self.head_.predict_log_proba(self._features(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        return tags
