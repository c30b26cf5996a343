"""Prompt templates and the text-based base classifier."""


from ._features import text_features
from ._training import train_projection

DEFAULT_TEMPLATES = ("a photo of a {}.",)

# The seven ImageNet prompts selected by Tip-Adapter, plus the plain one, as
# averaged by the official TaskRes code for ImageNet and its variants.
_IMAGENET = (
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
    "a photo of a {}.",
)

#: The official prompt templates of TaskRes (and CoOp) for each dataset.
TEMPLATE_SETS = {
    "imagenet": _IMAGENET,
    "imagenet_v2": _IMAGENET,
    "imagenet_sketch": _IMAGENET,
    "imagenet_a": _IMAGENET,
    "imagenet_r": _IMAGENET,
    "caltech101": ("a photo of a {}.",),
    "oxford_pets": ("a photo of a {}, a type of pet.",),
    "stanford_cars": ("a photo of a {}.",),
    "oxford_flowers": ("a photo of a {}, a type of flower.",),
    "food101": ("a photo of {}, a type of food.",),
    "fgvc_aircraft": ("a photo of a {}, a type of aircraft.",),
    "sun397": ("a photo of a {}.",),
    "dtd": ("{} texture.",),
    "eurosat": ("a centered satellite photo of {}.",),
    "ucf101": ("a photo of a person doing {}.",),
}


def resolve_templates(templates):
    """Validate ``templates`` and return them as a tuple of format strings.

    ``templates`` is None (the default prompt), the name of a built-in set
    (case-insensitive, see ``TEMPLATE_SETS``), one format string, or a
    sequence of format strings, each with exactly one ``{}``.
    """
    if templates is None:
        return DEFAULT_TEMPLATES
    if isinstance(templates, str):
        if "{}" in templates:
            return resolve_templates((templates,))
        try:
            return TEMPLATE_SETS[templates.lower()]
        except KeyError:
            raise ValueError(
                f"expected templates to be the name of a built-in set "
                f"({', '.join(sorted(TEMPLATE_SETS))}) or a sequence of strings with one "
                f"'{{}}'; got {templates!r}"
            ) from None
    templates = tuple(templates)
    if not templates:
        raise ValueError("expected at least one prompt template; got an empty sequence")
    for index, template in enumerate(templates):
        if not isinstance(template, str) or template.count("{}") != 1:
            raise ValueError(
                f"templates[{index}]: expected a string with exactly one '{{}}' placeholder "
                f"for the class name, such as 'a photo of a {{}}.'; got {template!r}"
            )
    return templates


def text_base(encoder, classnames, templates, cache_dir=None):
    """The base classifier: per class, the mean raw text embedding over templates.

    Returns an array of shape (n_classes, D), float32; row ``k`` belongs to
    ``classnames[k]``. Embeddings are averaged before any normalisation, as
    in the official TaskRes code.
    """
    prompts = _prompts(classnames, templates)
    return _template_mean(text_features(encoder, prompts, cache_dir=cache_dir), classnames)


def enhanced_text_base(encoder, classnames, templates, features, targets, **recipe):
    """The enhanced base of TaskRes*: the text base after tuning CLIP's text projection.

    The text features before the projection are encoded once (and cached);
    tuning the projection on the image ``features`` is then a small matrix
    problem. The base is the template mean of the tuned text embeddings.

    Parameters
    ----------
    features : ndarray of shape (n_samples, D) or (n_views, n_samples, D)
        Image embeddings of the training images.
    targets : ndarray of shape (n_samples,)
        Index into ``classnames`` of every training image.
    **recipe
        ``logit_scale`` and the training recipe of ``train_projection``.

    Returns
    -------
    base : ndarray of shape (n_classes, D), float32
    """
    pooled = text_features(encoder, _prompts(classnames, templates), pooled=True)
    pooled = _template_mean(pooled, classnames)
    projection, _ = train_projection(features, targets, pooled, encoder.text_projection,
                                     **recipe)
    return pooled @ projection


def _prompts(classnames, templates):
    return [template.format(name) for name in classnames for template in templates]


def _template_mean(embeddings, classnames):
    return embeddings.reshape(len(classnames), -1, embeddings.shape[1]).mean(axis=1)
