"""Helpers to use sklearn-taskres without pretrained weights: tiny random CLIP models.

A random-initialised open_clip model predicts nothing meaningful, but it runs
every code path (tokenizer, text and image towers, preprocessing, checkpoint
loading) in well under a second, offline. Tests, examples and smoke runs use it.
"""

from ._clip import register_model_config, save_checkpoint

TINY_CLIP_NAME = "TinyTaskResCLIP"

TINY_CLIP_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}

_registered = set()


def register_tiny_clip(name=TINY_CLIP_NAME):
    """Register a tiny CLIP config with open_clip and return its model name.

    The model has 32-dimensional embeddings, 32x32 input images and CLIP's
    real tokenizer. With ``pretrained=None`` it is initialised from a fixed
    seed, so it is the same model in every process.

    Parameters
    ----------
    name : str, default="TinyTaskResCLIP"
        The open_clip model name to register.

    Returns
    -------
    name : str
        Pass it as ``model=`` to :class:`~sklearn_taskres.TaskResClassifier`.

    Examples
    --------
    >>> from sklearn_taskres.testing import register_tiny_clip
    >>> register_tiny_clip()
    'TinyTaskResCLIP'
    """
    if name not in _registered:
        register_model_config(name, TINY_CLIP_CONFIG)
        _registered.add(name)
    return name


def save_tiny_checkpoint(path, name=TINY_CLIP_NAME):
    """Save the tiny model's weights to ``path`` to exercise ``pretrained=<path>``.

    Parameters
    ----------
    path : str or path
        Destination; ``.safetensors`` writes safetensors, anything else ``torch.save``.
    name : str, default="TinyTaskResCLIP"
        A name registered with :func:`register_tiny_clip`.

    Returns
    -------
    path : pathlib.Path

    Examples
    --------
    >>> import tempfile, os
    >>> from sklearn_taskres import TaskResClassifier
    >>> from sklearn_taskres.testing import register_tiny_clip, save_tiny_checkpoint
    >>> path = save_tiny_checkpoint(os.path.join(tempfile.mkdtemp(), "tiny.safetensors"))
    >>> clf = TaskResClassifier(["a", "b"], model=register_tiny_clip(), pretrained=str(path))
    >>> path.suffix
    '.safetensors'
    """
    register_tiny_clip(name)
    return save_checkpoint(name, path)
