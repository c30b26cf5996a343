"""zero_shot_classifier: CLIP's zero-shot classifier from class names, without images."""

import numpy as np

from ._classifier import TaskResClassifier, _as_label_array, _label_space
from ._head import TaskResHead
from ._templates import resolve_templates, text_base
from ._training import resolve_device


def zero_shot_classifier(classnames, **params):
    """A fitted TaskResClassifier that is CLIP's zero-shot classifier of ``classnames``.

    No image is needed: the classifier is the text base ``t`` of the names
    (the mean text embedding over the prompt templates) with a zero task
    residual, so it predicts exactly as a ``TaskResClassifier`` with
    ``alpha=0`` does after any fit. It is an ordinary fitted estimator: it
    saves and loads, ``extend_classes`` and ``restrict_classes`` work, and
    ``clone(classifier).fit(X, y)`` learns a residual on labelled images with
    the same parameters.

    Parameters
    ----------
    classnames : sequence of str or mapping {label: str}
        The class names; ``classes_`` are the names of a sequence, or the
        keys of a mapping (whose values are the names CLIP reads).
    **params
        Any other parameter of :class:`TaskResClassifier` (``model``,
        ``pretrained``, ``templates``, ``device``, ``cache_dir``, ...). The
        training parameters are kept for a later ``fit``.

    Returns
    -------
    classifier : TaskResClassifier
        Fitted, with ``n_iter_ == 0``, ``loss_curve_ == []`` and a residual
        of zeros.

    Examples
    --------
    >>> from sklearn_taskres import zero_shot_classifier
    >>> from sklearn_taskres.testing import register_tiny_clip
    >>> model = register_tiny_clip()  # a tiny random CLIP, so the example runs offline
    >>> clf = zero_shot_classifier(["cat", "dog"], model=model, pretrained=None, device="cpu")
    >>> clf.classes_.tolist(), clf.n_iter_, float(abs(clf.residual_).max())
    (['cat', 'dog'], 0, 0.0)
    """
    classifier = TaskResClassifier(classnames, **params)
    classifier._validate_params()
    if classifier.base == "enhanced":
        raise ValueError(
            "expected base='text' for a zero-shot classifier; got base='enhanced', whose base "
            "is tuned on labelled images (fit it on images instead)"
        )
    labels, names = _label_space(classifier.classnames)
    classes = np.asarray(names) if labels is None else _as_label_array(labels)
    templates = resolve_templates(classifier.templates)
    encoder = classifier._encoder(resolve_device(classifier.device, cpu_fallback=True))
    base = text_base(encoder, names, templates, cache_dir=classifier.cache_dir)
    head = TaskResHead(
        base,
        classes=classes,
        alpha=classifier.alpha,
        logit_scale=encoder.logit_scale,
        learning_rate=classifier.learning_rate,
        max_iter=classifier.max_iter,
        batch_size=classifier.batch_size,
        weight_decay=classifier.weight_decay,
        class_weight=classifier.class_weight,
        device=classifier.device,
        random_state=classifier.random_state,
        verbose=classifier.verbose,
    )
    head.classes_ = classes
    head.base_weights_ = head.base_weights = base
    head.residual_ = np.zeros_like(base)
    head.alpha_ = float(classifier.alpha)
    head.logit_scale_ = float(encoder.logit_scale)
    head.n_iter_ = 0
    head.loss_curve_ = []
    head.n_features_in_ = base.shape[1]
    classifier._set_fitted(head)
    return classifier
