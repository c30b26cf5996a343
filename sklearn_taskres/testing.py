"""Helpers to use sklearn-taskres without pretrained weights: tiny CLIP models.

Two tiny open_clip models, both offline:

- :func:`register_tiny_clip`: a random-initialised model. It predicts nothing
  meaningful, but it runs every code path (tokenizer, text and image towers,
  preprocessing, checkpoint loading) in well under a second. The tests use it.
- :func:`trained_tiny_clip`: a tiny CLIP trained on scikit-learn's handwritten
  digits with captions, on first use (under a minute on a CPU), then cached
  on disk. Its zero-shot classifier reads digits, so TaskRes has something to
  improve on: the offline examples and the documentation use it, with
  :func:`load_held_out_digits`, and the command line knows it as
  ``--model TinyDigitsCLIP``; :func:`save_held_out_digits` writes its held-out
  digits as a folder of image files for the command line.
"""

from ._clip import register_model_config, save_checkpoint
from ._tiny_digits import TRAINED_TINY_CLIP_CONFIG as TRAINED_TINY_CLIP_CONFIG
from ._tiny_digits import TRAINED_TINY_CLIP_NAME, held_out_digits, trained_checkpoint

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


def trained_tiny_clip(*, cache_dir=None, verbose=0):
    """A tiny CLIP trained on handwritten digits: its model name and checkpoint file.

    On first use, trains a small open_clip model (a ViT image tower on 32x32
    images, a 2-layer text tower with CLIP's tokenizer) on 1,000 of
    scikit-learn's 1,797 digit scans, each paired with captions such as
    ``'a photo of the number: "7".'`` or ``"the digit seven."``, by CLIP's
    contrastive objective. Training is seeded (the same weights on every run
    of a machine) and takes under a minute on a 2-core CPU. The checkpoint
    is then cached on disk, under a key of the model config and the training
    recipe; a cached file that does not match its key or its checksum is
    trained again. Concurrent first uses wait for one training.

    The other 797 digits are held out: :func:`load_held_out_digits` returns
    them, as they are or in a style the model never saw.

    Parameters
    ----------
    cache_dir : str or path, default=None
        Folder of the cached checkpoint. By default
        ``$SKLEARN_TASKRES_CACHE_DIR`` if set, else
        ``$XDG_CACHE_HOME/sklearn_taskres`` (``~/.cache/sklearn_taskres``).
    verbose : int, default=0
        When positive, show a progress bar while training.

    Returns
    -------
    model : str
        The registered open_clip model name (``"TinyDigitsCLIP"``).
    pretrained : pathlib.Path
        The checkpoint file: pass it as ``pretrained=``.

    See Also
    --------
    register_tiny_clip : A random tiny CLIP, built in a fraction of a second.

    Examples
    --------
    >>> from sklearn_taskres import TaskResClassifier
    >>> from sklearn_taskres.testing import load_held_out_digits, trained_tiny_clip
    >>> model, pretrained = trained_tiny_clip()
    >>> X, y = load_held_out_digits()
    >>> clf = TaskResClassifier([str(digit) for digit in range(10)], model=model,
    ...                         pretrained=str(pretrained),
    ...                         templates=['a photo of the number: "{}".'],
    ...                         alpha=0.0, max_iter=1)
    >>> clf.fit(X[:20], y[:20]).score(X, y) > 0.8    # zero-shot, from the names alone
    True
    """
    path = trained_checkpoint(cache_dir, verbose=verbose)
    return TRAINED_TINY_CLIP_NAME, path


def load_held_out_digits(style="plain", *, random_state=0):
    """The digit scans that :func:`trained_tiny_clip` was not trained on.

    Parameters
    ----------
    style : {"plain", "bold", "noisy"}, default="plain"
        ``"plain"``: the 8x8 scans as they are (uint8, 0-255), the style of
        the pretraining. ``"bold"``: a style the pretraining never saw,
        enlarged to 32x32 with thick, rotated and blurred strokes.
        ``"noisy"``: the bold digits with Gaussian pixel noise (standard
        deviation 0.15 of the range), harder still.
    random_state : int, RandomState instance or None, default=0
        Draws the rotation of every ``"bold"`` or ``"noisy"`` digit, and the noise.

    Returns
    -------
    X : ndarray of shape (797, 8, 8) or (797, 32, 32), dtype uint8
        Grayscale images.
    y : ndarray of shape (797,)
        The digits, 0-9.

    Examples
    --------
    >>> from sklearn_taskres.testing import load_held_out_digits
    >>> X, y = load_held_out_digits("bold")
    >>> X.shape, X.dtype
    ((797, 32, 32), dtype('uint8'))
    """
    return held_out_digits(style, random_state=random_state)


def save_held_out_digits(directory, n_images=None, *, style="plain", random_state=0):
    """Write the held-out digits as PNG files, a folder of photos for the command line.

    The files are ``scan_0000.png``, ``scan_0001.png``... in the order of
    :func:`load_held_out_digits`, which gives their digits. Files already
    there are overwritten.

    Parameters
    ----------
    directory : str or path
        The folder to write to; created if needed.
    n_images : int, default=None
        Write the first ``n_images`` digits; None writes all 797.
    style : {"plain", "bold", "noisy"}, default="plain"
        As for :func:`load_held_out_digits`.
    random_state : int, RandomState instance or None, default=0
        As for :func:`load_held_out_digits`.

    Returns
    -------
    paths : list of pathlib.Path
        The files written, in order.
    y : ndarray of shape (n_images,)
        Their digits.

    Examples
    --------
    >>> import tempfile
    >>> from sklearn_taskres.testing import save_held_out_digits
    >>> paths, y = save_held_out_digits(tempfile.mkdtemp(), 3)
    >>> [path.name for path in paths], y.tolist()
    (['scan_0000.png', 'scan_0001.png', 'scan_0002.png'], [0, 3, 7])
    """
    from pathlib import Path

    from PIL import Image

    X, y = held_out_digits(style, random_state=random_state)
    if n_images is not None:
        X, y = X[:n_images], y[:n_images]
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = [directory / f"scan_{index:04d}.png" for index in range(len(X))]
    for path, pixels in zip(paths, X, strict=True):
        Image.fromarray(pixels).save(path)
    return paths, y
