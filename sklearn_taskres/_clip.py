"""The CLIP adapter: the only module that imports open_clip.

Models are loaded lazily, once per process and key (model, pretrained,
device, precision), and shared by every estimator and clone.
"""

import contextlib
import functools
import hashlib
import json
import os
import re
import socket
import sys
import threading
import urllib.parse
from pathlib import Path

import torch

from ._progress import logger, progress

PRECISIONS = ("fp32", "bf16", "fp16")
_HALF_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# open_clip initialises random models from torch's global generator; a fixed
# seed (in a forked RNG state) makes `pretrained=None` the same model in every
# process, so pickles and on-disk features of test models stay meaningful.
RANDOM_INIT_SEED = 0
#: Prefixes of the open_clip model names whose config and weights come with the name.
SCHEMAS = ("hf-hub", "local-dir")
#: The ``pretrained`` that ``"auto"`` means for model names without a schema.
DEFAULT_TAG = "openai"
HUB_CONFIG_NAME = "open_clip_config.json"
# The weight files open_clip looks for in a repository, in its order.
HUB_WEIGHTS_NAMES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")


class WeightsUnavailableError(OSError):
    """Pretrained CLIP weights could not be found locally nor downloaded.

    ``command_line_hint`` is the option of the command-line programs that
    points at a local copy.
    """

    command_line_hint = "--pretrained /path/to/checkpoint"


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
        from ._augment import TrainAugmentation

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
    """``"auto"`` is bf16 where ``device`` computes it natively (:func:`native_bf16`), else fp32."""
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision


def native_bf16(device):
    """Whether ``device`` has native bf16 matrix units.

    CUDA devices that support bf16 without emulation (compute capability 8.0
    and newer); CPUs with AMX or AVX512-BF16, as torch detects them. On
    other CPUs bf16 is emulated, several times slower than fp32.
    """
    if device.type == "cuda":
        try:
            return torch.cuda.is_bf16_supported(including_emulation=False)
        except TypeError:  # torch < 2.3 has no including_emulation and does not emulate
            return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return _cpu_has_bf16_units()
    return False


def _cpu_has_bf16_units():
    cpu = torch.cpu
    return any(
        getattr(cpu, probe, lambda: False)()
        for probe in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    )


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


def model_schema(model_name):
    """``"hf-hub"`` or ``"local-dir"`` for names with that schema, else None."""
    for schema in SCHEMAS:
        if model_name.startswith(schema + ":"):
            return schema
    return None


def resolve_model(model_name, pretrained):
    """``(model_name, pretrained)`` as loaded: ``"auto"`` resolved, paths absolute.

    With a schema, the config and the weights come from the repository or
    folder: ``pretrained`` is ``"auto"`` (those weights) or None (random
    weights of that config); a tag or file would be ignored by open_clip,
    so it is an error.
    """
    schema = model_schema(model_name)
    if pretrained is not None:
        pretrained = os.path.expanduser(os.fspath(pretrained))
    if schema is None:
        return model_name, DEFAULT_TAG if pretrained == "auto" else pretrained
    location = model_name[len(schema) + 1:]
    if not location.strip():
        raise ValueError(f"expected a {schema}: name followed by a location; got {model_name!r}")
    if schema == "local-dir":
        location = os.path.abspath(os.path.expanduser(location))
        model_name = f"local-dir:{location}"
    if pretrained not in ("auto", None):
        where = "Hugging Face repository" if schema == "hf-hub" else "folder"
        raise ValueError(
            f"expected pretrained='auto' (the weights in the {where}) or None (a random "
            f"initialisation) with model={model_name!r}; got pretrained={pretrained!r}. A model "
            f"named with the {schema}: schema takes its config and weights from its {where}, "
            "and open_clip would silently ignore another tag or file: put the weights in the "
            f"{where}, or name the model without the schema"
        )
    return model_name, pretrained


def _source_stamp(model_name, pretrained):
    """What changes when the weights behind the same name change."""
    schema = model_schema(model_name)
    if schema == "local-dir":
        return _folder_stamp(model_name[len("local-dir:"):])
    if schema == "hf-hub":
        return _hub_revision(model_name[len("hf-hub:"):])
    return _file_stamp(pretrained)


def _folder_stamp(folder):
    """Name, size and modification time of every file in ``folder`` (not recursive)."""
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except OSError:
        return None
    return tuple(
        (entry.name, entry.stat().st_size, entry.stat().st_mtime_ns)
        for entry in entries if entry.is_file()
    )


def _file_stamp(pretrained):
    if pretrained is None or not os.path.isfile(pretrained):
        return None
    stat = os.stat(pretrained)
    return stat.st_size, stat.st_mtime_ns


def _hub_revision(repo_id):
    """Commit of the cached snapshot of ``repo_id`` (None when its config is not cached)."""
    from huggingface_hub import try_to_load_from_cache

    path = try_to_load_from_cache(repo_id, HUB_CONFIG_NAME)
    if not isinstance(path, str):
        return None
    return Path(path).parent.name  # .../snapshots/<commit>/open_clip_config.json


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

    with torch.random.fork_rng(devices=[]):
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
                raise _unavailable(model_name, pretrained, force_quick_gelu) from exc
            if weights["kind"] == "hf-hub" and _is_download_failure(exc):
                raise _hub_unavailable(model_name) from exc
            raise
    model.eval()
    channels_last = _to_precision(model, precision)
    if weights["kind"] == "hf-hub":  # the snapshot actually read, once open_clip has read it
        repo_id = weights["identity"][0]
        weights["identity"] = (repo_id, _hub_revision(repo_id)) + (
            () if pretrained is not None else ("random",)
        )
    # "bf16" meant autocast over fp32 weights before 0.2: other features, other keys.
    computed_in = precision if precision == "fp32" else f"{precision} weights" + (
        ", channels_last" if channels_last else "")
    identity = (_config_identity(model_name), weights["identity"], computed_in,
                _stable_repr(preprocess))
    return ClipEncoder(model, preprocess, tokenizer, device, precision, identity,
                       channels_last=channels_last)


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


def _resolve_schema_weights(model_name, pretrained):
    """What a ``hf-hub:`` or ``local-dir:`` name designates, checked before loading.

    A folder must hold ``open_clip_config.json``. A repository must be in the
    local Hugging Face cache when the Hub cannot be reached (offline mode or
    no network): then a cache miss fails at once.
    """
    schema = model_schema(model_name)
    location = model_name[len(schema) + 1:]
    if schema == "local-dir":
        folder = Path(location)
        if not (folder / HUB_CONFIG_NAME).is_file():
            what = "folder" if folder.is_dir() else "missing folder"
            raise ValueError(
                f"expected model='local-dir:PATH' to name a folder holding {HUB_CONFIG_NAME} "
                f"and the weights; got the {what} {location!r}"
                + (f" without {HUB_CONFIG_NAME}" if folder.is_dir() else "")
            )
        identity = (str(folder), _folder_stamp(folder)) + (
            () if pretrained is not None else ("random",)
        )
        return {"kind": "local-dir", "identity": identity}
    import huggingface_hub.constants as hub_constants

    unreachable = not hub_constants.HF_HUB_OFFLINE and not _hub_reachable(hub_constants.ENDPOINT)
    weights = {"kind": "hf-hub", "identity": (location,), "config": {"hf_hub": location},
               "unreachable": unreachable}
    if hub_constants.HF_HUB_OFFLINE or unreachable:
        if _hub_revision(location) is None or (
            pretrained is not None and not _hub_weights_cached(location)
        ):
            raise _hub_unavailable(model_name)
    return weights


def _is_download_failure(exc):
    """Whether open_clip's error says a file could not be fetched from the Hub."""
    message = str(exc).lower()
    return "hf hub" in message or "download" in message or "could not be loaded" in message


def _hub_weights_cached(repo_id):
    from huggingface_hub import try_to_load_from_cache

    return any(
        isinstance(try_to_load_from_cache(repo_id, name), str) for name in HUB_WEIGHTS_NAMES
    )


def _hub_unavailable(model_name):
    error = WeightsUnavailableError(
        f"the model {model_name!r} is not in the local Hugging Face cache "
        "(open_clip_config.json and the weights) and could not be downloaded. Connect to the "
        "internet once (huggingface_hub caches the repository under ~/.cache/huggingface, or "
        "HF_HUB_CACHE), or download the repository elsewhere and name its folder: "
        "model='local-dir:/path/to/folder'."
    )
    error.command_line_hint = "--model local-dir:/path/to/folder"
    return error


def _resolve_weights(open_clip, model_name, pretrained):
    """What ``pretrained`` designates, and whether it needs QuickGELU.

    OpenAI's weights were trained with QuickGELU while open_clip's plain model
    configs use GELU; open_clip only warns on the mismatch, and the features
    come out subtly wrong. The tag's own config says which activation it
    needs, so we follow it.
    """
    if pretrained is None:
        return {"kind": "random", "identity": None}, False
    tag_config = open_clip.get_pretrained_cfg(model_name, pretrained)
    if tag_config:
        quick_gelu = bool(tag_config.get("quick_gelu", False))
        return {"kind": "tag", "identity": pretrained, "config": tag_config}, quick_gelu
    path = Path(pretrained).expanduser()
    if path.is_file():
        identity = (str(path.resolve()), *_file_stamp(str(path)))
        return {"kind": "file", "identity": identity}, False
    if path.exists():
        raise ValueError(
            f"expected pretrained to be a checkpoint file; got the directory {pretrained!r}"
        )
    tags = open_clip.list_pretrained_tags_by_model(model_name)
    raise ValueError(
        f"expected pretrained to be a tag of {model_name!r} ({', '.join(tags) or 'none known'}), "
        f"a local checkpoint file or None; got {pretrained!r}, which is neither a known tag "
        "nor an existing file"
    )


def _unavailable(model_name, pretrained, quick_gelu):
    message = (
        f"the pretrained weights {pretrained!r} of {model_name!r} are not in the local cache "
        "and could not be downloaded. Connect to the internet once (open_clip caches the "
        "weights under ~/.cache/huggingface), or download the checkpoint elsewhere and pass "
        "its path: pretrained='/path/to/open_clip_pytorch_model.bin'."
    )
    if quick_gelu and not model_name.endswith("-quickgelu"):
        message += (
            f" These weights need QuickGELU: from a file, name the model "
            f"{model_name + '-quickgelu'!r}."
        )
    return WeightsUnavailableError(message)


@contextlib.contextmanager
def _hub_access(weights):
    """Avoid the Hub's long retry loop when it cannot be reached.

    Without a network, huggingface_hub retries for about a minute before it
    falls back to its cache. When the Hub is unreachable we switch it to
    offline mode for this one load: cached weights load at once, and missing
    ones fail at once with our error.
    """
    if weights["kind"] not in ("tag", "hf-hub") or not weights["config"].get("hf_hub"):
        yield
        return
    import huggingface_hub.constants as hub_constants

    unreachable = weights.get("unreachable")
    if unreachable is None:
        unreachable = not _hub_reachable(hub_constants.ENDPOINT)
    if hub_constants.HF_HUB_OFFLINE or not unreachable:
        yield
        return
    hub_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hub_constants.HF_HUB_OFFLINE = False


def _hub_reachable(endpoint, timeout=3.0):
    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY")):
        return True  # cannot tell cheaply through a proxy; let the Hub client try
    parsed = urllib.parse.urlsplit(endpoint)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def encoders_loaded():
    """Number of encoders held by this process (for tests and diagnostics)."""
    return len(_ENCODERS)


def register_model_config(name, config):
    """Register an open_clip model config (a dict) under ``name`` for this process."""
    import tempfile

    import open_clip

    text = json.dumps(config, sort_keys=True)
    # One folder per distinct config, reused by later calls and processes.
    digest = hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
    directory = Path(tempfile.gettempdir()) / "sklearn_taskres_configs" / digest
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.json"
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    open_clip.add_model_config(path)
    return name


def custom_model_config(name):
    """The open_clip config of ``name`` when another process may not know it, else None.

    None for the configs open_clip ships (unchanged), for names with a schema
    (``hf-hub:``, ``local-dir:``: the name says where the config is) and for
    names open_clip does not know (fitting fails on those anyway). A config
    registered with ``open_clip.add_model_config`` exists only in the process
    that registered it: estimators carry it in their pickles and saved files,
    and :func:`ensure_model_config` registers it where they are loaded.
    """
    if "open_clip" not in sys.modules or not isinstance(name, str) or ":" in name:
        return None  # a process that never imported open_clip registered nothing
    import open_clip

    config = open_clip.get_model_config(name)
    if config is None:
        return None
    config = _normalised(config)
    return None if config == _shipped_config(name) else config


@functools.cache
def _shipped_config(name):
    """The config open_clip ships under ``name`` (None for other names), read once.

    Every encoder lookup asks whether its model's config is a custom one;
    the shipped files do not change while the process runs.
    """
    import open_clip

    shipped = Path(open_clip.__file__).parent / "model_configs" / f"{name}.json"
    return _normalised(json.loads(shipped.read_text())) if shipped.is_file() else None


def ensure_model_config(name, config):
    """Make the open_clip model ``name`` mean ``config`` in this process.

    Registers the config when the process does not know the name; does
    nothing when it knows it with the same config; refuses a different one.

    Raises
    ------
    ValueError
        When ``name`` is registered here with a different config: loading
        must never swap one model for another silently.
    """
    if config is None:
        return
    import open_clip

    config = _normalised(config)
    known = open_clip.get_model_config(name)
    if known is None:
        register_model_config(name, config)
        return
    known = _normalised(known)
    if known != config:
        raise ValueError(
            f"expected the open_clip model {name!r} of this process to have the config saved "
            f"with the estimator; got two different configs. Saved: {json.dumps(config)}. "
            f"Registered here: {json.dumps(known)}. Register the saved config under its name "
            "(or load the estimator in a process that does not register another one)."
        )


def _config_identity(model_name):
    """The model name, with a digest of its config when the config is a custom one.

    Two configs registered under one name in different processes are
    different models, and must not share cached features.
    """
    config = custom_model_config(model_name)
    if config is None:
        return model_name
    text = json.dumps(config, sort_keys=True).encode()
    return f"{model_name}#{hashlib.blake2b(text, digest_size=8).hexdigest()}"


def _normalised(config):
    """A config as JSON would give it back (tuples as lists, keys as strings)."""
    return json.loads(json.dumps(config))


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
