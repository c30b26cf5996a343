"""Prompt templates and the text-based base classifier."""


from ._features import text_features

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


def text_base(encoder, classnames, templates):
    """The base classifier: per class, the mean raw text embedding over templates.

    Returns an array of shape (n_classes, D), float32; row ``k`` belongs to
    ``classnames[k]``. Embeddings are averaged before any normalisation, as
    in the official TaskRes code.
    """
    prompts = [template.format(name) for name in classnames for template in templates]
    embeddings = text_features(encoder, prompts)
    return embeddings.reshape(len(classnames), len(templates), -1).mean(axis=1)
