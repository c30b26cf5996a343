"""The CLIP encoder: a loaded open_clip model in its precision, once per process and key.

Models are loaded lazily, once per process and key (model, pretrained,
device, precision), and shared by every estimator and clone.
"""

import contextlib
import logging
import os
import re
import threading
from pathlib import Path

import torch

from .._progress import logger, progress
from ._configs import _config_identity
from ._names import (
    HUB_CONFIG_NAME,
    HUB_WEIGHTS_NAMES,
    _hub_access,
    _hub_revision,
    _hub_unavailable,
    _is_download_failure,
    _resolve_schema_weights,
    _resolve_weights,
    _source_stamp,
    _unavailable,
    model_schema,
    resolve_model,
)

PRECISIONS = ("fp32", "bf16", "fp16")
_HALF_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# open_clip initialises random models from torch's global generator; a fixed
# seed (in a forked RNG state) makes `pretrained=None` the same model in every
# process, so pickles and on-disk features of test models stay meaningful.
RANDOM_INIT_SEED = 0


class ClipEncoder:
    """A loaded open_clip model with its tokenizer and evaluation transform.

    Attributes
    ----------
    identity : tuple
        What the features depend on: model name, weights, precision and
        preprocessing. Part of every feature-cache key.
    logit_scale : float
        The model's ``exp(logit_scale)``.
    image_dtype : torch.dtype
        The dtype of the image tower's weights, and of its input.
    channels_last : bool
        Whether the image tower and its input are in channels-last layout.
    """

    def __init__(self, model, preprocess, tokenizer, device, precision, identity,
                 channels_last=False):
        self.model = model
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.device = device
        self.precision = precision
        self.identity = identity
        self.image_dtype = _HALF_DTYPES.get(precision, torch.float32)
        self.channels_last = channels_last
        self.logit_scale = float(model.logit_scale.detach().exp().item())
        self._text_lock = threading.Lock()

    @property
    def image_size(self):
        """The (height, width) of the image tower's input."""
        size = self.model.visual.preprocess_cfg["size"]
        return tuple(size) if isinstance(size, (tuple, list)) else (int(size), int(size))

    @property
    def augmentation(self):
        """The official training augmentation, for this model's input size and normalisation.

        Random resized crop (scale 0.08-1, bicubic) and horizontal flip, as in
        the TaskRes/Dassl training pipeline, then the model's normalisation.
        """
        from .._augment import TrainAugmentation

        config = self.model.visual.preprocess_cfg
        return TrainAugmentation(config["size"], config["mean"], config["std"])

    @torch.inference_mode()
    def encode_images(self, pixels):
        """Raw image embeddings of a preprocessed batch (n, 3, H, W) -> (n, D) float32."""
        pixels = pixels.to(self.device, dtype=self.image_dtype, non_blocking=True)
        if self.channels_last:
            pixels = pixels.contiguous(memory_format=torch.channels_last)
        return self.model.encode_image(pixels).float().cpu().numpy()

    @torch.inference_mode()
    def encode_text(self, prompts):
        """Raw (unnormalised) text embeddings of a list of prompts -> (n, D) float32.

        The text tower stays in fp32 at every precision: it encodes a few
        prompts per class, once, and the base classifier is then the same
        whatever the image tower's precision.
        """
        tokens = self.tokenizer(list(prompts)).to(self.device)
        with self._text_lock, self._cut_context(tokens) as tokens:
            return self.model.encode_text(tokens).float().cpu().numpy()

    @contextlib.contextmanager
    def _cut_context(self, tokens):
        """``tokens`` cut after the batch's last end-of-text token, and the model cut to match.

        In CLIP's text tower the attention is causal and the output is read
        at the end-of-text token, the token of highest id ("argmax"
        pooling): what follows it in the context never reaches the output.
        Prompts fill about 10 of the 77 positions, so the cut saves most of
        the tower's work. Inside the block the model's positional embedding
        and causal mask are cut to the same length (callers hold
        ``_text_lock``); other text towers get the tokens unchanged.
        """
        model = self.model
        length = int(tokens.argmax(dim=-1).max()) + 1
        cuttable = (
            type(model).__name__ == "CLIP"
            and getattr(model, "text_pool_type", None) == "argmax"
            and getattr(model, "attn_mask", None) is not None
            and length < tokens.shape[1]
        )
        if not cuttable:
            yield tokens
            return
        positions, mask = model.positional_embedding, model.attn_mask
        model.positional_embedding = torch.nn.Parameter(positions[:length], requires_grad=False)
        model.attn_mask = mask[:length, :length]
        try:
            yield tokens[:, :length]
        finally:
            model.positional_embedding = positions
            model.attn_mask = mask

    @property
    def text_projection(self):
        """CLIP's text projection (width, D) as a float32 array."""
        projection = getattr(self.model, "text_projection", None)
        if isinstance(projection, torch.nn.Linear) and projection.bias is None:
            projection = projection.weight.T
        if not isinstance(projection, torch.Tensor):
            raise ValueError(
                "expected a model whose text tower ends in a linear projection without bias "
                f"(open_clip's CLIP models) for base='enhanced'; got {type(self.model).__name__} "
                f"with text_projection {type(projection).__name__}"
            )
        return projection.detach().float().cpu().numpy()

    @torch.inference_mode()
    def encode_text_pooled(self, prompts):
        """Text features before the projection, (n, width) float32.

        open_clip's ``encode_text`` skips the projection when it is None: we
        detach it for the call (under a lock, so no concurrent text encoding
        sees the model without it).
        """
        self.text_projection  # noqa: B018 (raises for towers it does not apply to)
        tokens = self.tokenizer(list(prompts)).to(self.device)
        with self._text_lock, self._cut_context(tokens) as tokens:
            projection = self.model.text_projection
            self.model.text_projection = None
            try:
                return self.model.encode_text(tokens).float().cpu().numpy()
            finally:
                self.model.text_projection = projection


_ENCODERS = {}
_LOCK = threading.Lock()


def resolve_precision(precision, device):
    """``"auto"`` is bf16 where ``device`` has native bf16 (:func:`native_bf16`), else fp32."""
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


def native_bf16(device):
    """Whether ``device`` has bf16 matrix units that make bf16 faster than fp32.

    CUDA devices that support bf16 without emulation (compute capability 8.0
    and newer); CPUs with AMX tiles, as torch detects them. AVX512-BF16
    alone is not enough: on a Xeon with it and without AMX, torch's bf16
    matrix products ran at half the speed of fp32 ones (ViT-B-32 encoded
    0.63 times as fast). On other CPUs bf16 is emulated, several times
    slower. For the CPU, ``$SKLEARN_TASKRES_NATIVE_BF16`` set to ``yes`` or
    ``no`` replaces torch's answer.
    """
    if device.type == "cuda":
        try:
            return torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:  # torch < 2.3 has no including_emulation and does not emulate
            return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return _cpu_has_bf16_units()
    return False


#: Overrides the CPU probe of "auto": "yes" or "no" (for a CPU whose flags a virtual
#: machine hides, or to run a test suite as the other kind of CPU).
NATIVE_BF16_ENV = "SKLEARN_TASKRES_NATIVE_BF16"


def _cpu_has_bf16_units():
    value = os.environ.get(NATIVE_BF16_ENV, "")
    answer = value.strip().lower()
    if answer in ("yes", "no"):
        return answer == "yes"
    if answer:
        raise ValueError(f"expected ${NATIVE_BF16_ENV} to be 'yes', 'no' or unset; "
                         f"got {value!r}")
    return bool(getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)())


def load_encoder(model_name, pretrained, device, precision="fp32", verbose=0):
    """The process-wide encoder for (model, pretrained, device, precision).

    Parameters
    ----------
    model_name : str
        An open_clip model name, including names registered with
        ``open_clip.add_model_config``, ``"hf-hub:org/repo"`` (config and
        weights from a Hugging Face repository) and ``"local-dir:/path"`` (a
        folder holding ``open_clip_config.json`` and the weights).
    pretrained : str, path or None
        ``"auto"`` (the weights of a schema name's repository or folder;
        ``"openai"`` for other names), an open_clip pretrained tag, a local
        checkpoint file, or None for a random initialisation (for tests).
    device : torch.device
    precision : {"fp32", "bf16", "fp16"}
        The dtype of the image tower's weights (see :func:`_to_precision`);
        the text tower stays fp32.
    """
    model_name, pretrained = resolve_model(model_name, pretrained)
    # A checkpoint or folder rewritten in place, or a newer snapshot in the
    # Hugging Face cache, is another model; so is a name registered again
    # with another config.
    key = (_config_identity(model_name), pretrained, _source_stamp(model_name, pretrained),
           str(device), precision)
    with _LOCK:
        encoder = _ENCODERS.get(key)
        if encoder is None:
            logger.info("loading open_clip %s (pretrained=%s) on %s, %s", model_name,
                        pretrained, device, precision)
            with progress(verbose, total=1, desc=f"Loading {model_name}") as bar:
                encoder = _create_encoder(model_name, pretrained, device, precision)
                bar.update()
            _ENCODERS[key] = encoder
    return encoder


def _create_encoder(model_name, pretrained, device, precision="fp32"):
    import open_clip

    schema = model_schema(model_name)
    if schema is None and model_name not in open_clip.list_models():
        raise ValueError(
            f"expected model to be an open_clip model name (see open_clip.list_models(), "
            f"register a config with open_clip.add_model_config, or name a repository "
            f"'hf-hub:org/repo' or a folder 'local-dir:/path'); got {model_name!r}"
        )
    if schema is None:
        weights, force_quick_gelu = _resolve_weights(open_clip, model_name, pretrained)
    else:
        weights, force_quick_gelu = _resolve_schema_weights(model_name, pretrained), False
    options = {"pretrained": pretrained}
    if schema is not None:
        # The weights come with the name; without them (pretrained=None) open_clip
        # must not load any, and with them it must not fall back to random ones.
        options = {"load_weights": pretrained is not None,
                   "require_pretrained": pretrained is not None}

    with torch.random.fork_rng(devices=[]), _held_download_errors() as held:
        torch.manual_seed(RANDOM_INIT_SEED)
        try:
            with _hub_access(weights):
                model, _, preprocess = open_clip.create_model_and_transforms(
                    model_name,
                    precision="fp32",
                    device=device,
                    force_quick_gelu=force_quick_gelu,
                    **options,
                )
                tokenizer = open_clip.get_tokenizer(model_name)
        except RuntimeError as exc:
            if weights["kind"] == "tag" and "download" in str(exc).lower():
                held.clear()  # our error says it, and what to do
                raise _unavailable(model_name, pretrained, force_quick_gelu) from exc
            if weights["kind"] == "hf-hub" and _is_download_failure(exc):
                held.clear()
                raise _hub_unavailable(model_name) from exc
            raise
    model.eval()
    channels_last = _to_precision(model, precision)
    if weights["kind"] == "hf-hub":  # the snapshot actually read, once open_clip has read it
        repo_id = weights["identity"][0]
        weights["identity"] = (repo_id, _hub_revision(repo_id)) + (
            () if pretrained is not None else ("random",)
        )
    # "bf16" meant autocast over fp32 weights in 0.1: other features, other keys.
    computed_in = precision if precision == "fp32" else f"{precision} weights" + (
        ", channels_last" if channels_last else "")
    identity = (_config_identity(model_name), weights["identity"], computed_in,
                _stable_repr(preprocess))
    return ClipEncoder(model, preprocess, tokenizer, device, precision, identity,
                       channels_last=channels_last)


@contextlib.contextmanager
def _held_download_errors():
    """Hold back open_clip's "Failed to download" log records; emit the rest at the end.

    open_clip logs a failed download on the root logger before it raises; when
    we raise :class:`WeightsUnavailableError` instead, which says the same and
    how to fix it, the caller clears the held records. Every other record,
    and these ones when nothing clears them, goes out as usual.
    """
    root = logging.getLogger()
    held = []

    def hold(record):
        if record.levelno >= logging.ERROR and str(record.msg).startswith("Failed to download"):
            held.append(record)
            return False
        return True

    root.addFilter(hold)
    try:
        yield held
    finally:
        root.removeFilter(hold)
        for record in held:
            root.handle(record)


def _to_precision(model, precision):
    """Put the image tower's weights in ``precision``; return whether it went channels-last.

    For bf16 and fp16, open_clip's own conversion (its
    ``precision="bf16"``): the weights of convolutions, linear layers,
    attention and projections in half precision, LayerNorm computed in fp32.
    The text tower stays in fp32. Convolutional towers (ResNets) also go
    channels-last, the layout the CPU's and cuDNN's half-precision
    convolutions run fastest in; fp32 is left exactly as it was.
    """
    dtype = _HALF_DTYPES.get(precision)
    if dtype is None:
        return False
    from open_clip.model import convert_weights_to_lp
    from open_clip.modified_resnet import ModifiedResNet
    from open_clip.transformer import LayerNorm, LayerNormFp32, VisionTransformer

    visual = model.visual
    if isinstance(visual, (VisionTransformer, ModifiedResNet)):
        convert_weights_to_lp(visual, dtype=dtype)
        for module in visual.modules():
            if type(module) is LayerNorm:  # the class open_clip builds for half precision
                module.__class__ = LayerNormFp32
    else:  # timm towers, as open_clip converts them
        visual.to(dtype=dtype)
        for module in visual.modules():
            if isinstance(module, LayerNormFp32):
                module.float()
    n_convolutions = sum(isinstance(m, torch.nn.Conv2d) for m in visual.modules())
    if n_convolutions > 1:  # more than a ViT's patch embedding
        visual.to(memory_format=torch.channels_last)
        return True
    return False


def _stable_repr(transform):
    """``repr(transform)`` without object addresses, the same in every process.

    Older open_clip releases put a plain function in the transform, whose repr
    holds its address: the on-disk feature cache would then never be shared
    between processes.
    """
    return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(transform))


def encoders_loaded():
    """Number of encoders held by this process (for tests and diagnostics)."""
    return len(_ENCODERS)


def save_checkpoint(model_name, path, pretrained=None):
    """Write the weights of an open_clip model to ``path`` (a state dict), for tests.

    ``.safetensors`` paths are written with safetensors, others with ``torch.save``.
    """
    encoder = load_encoder(model_name, pretrained, torch.device("cpu"))
    state = {key: value.detach().clone() for key, value in encoder.model.state_dict().items()}
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import save_file

        save_file(state, str(path))
    else:
        torch.save(state, path)
    return path


def save_model_folder(model_name, folder, pretrained=None):
    """Write an open_clip model as a folder that ``model="local-dir:<folder>"`` loads.

    The folder gets ``open_clip_config.json`` (the model config and the
    preprocessing) and the weights as ``open_clip_model.safetensors``: the
    layout of a model repository on the Hugging Face Hub.

    Parameters
    ----------
    model_name : str
        A registered or built-in open_clip model name.
    folder : str or path
        Created when missing.
    pretrained : str, path or None, default=None
        The weights to write, as for :func:`load_encoder`.

    Returns
    -------
    folder : pathlib.Path
    """
    import json

    import open_clip
    from safetensors.torch import save_file

    encoder = load_encoder(model_name, pretrained, torch.device("cpu"))
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "model_cfg": open_clip.get_model_config(model_name),
        "preprocess_cfg": dict(encoder.model.visual.preprocess_cfg),
    }
    (folder / HUB_CONFIG_NAME).write_text(json.dumps(config, indent=2))
    state = {key: value.detach().clone().contiguous()
             for key, value in encoder.model.state_dict().items()}
    save_file(state, str(folder / HUB_WEIGHTS_NAMES[0]))
    return folder
