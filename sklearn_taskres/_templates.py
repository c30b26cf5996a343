"""Prompt templates and the text-based base classifier."""


from ._features import text_features

DEFAULT_TEMPLATES = ("a photo of a {}.",)


def resolve_templates(templates):
    """Validate ``templates`` and return them as a tuple of format strings."""
    if templates is None:
        return DEFAULT_TEMPLATES
    if isinstance(templates, str):
        templates = (templates,)
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
