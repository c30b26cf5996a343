"""Model names and their weights: what a (model, pretrained) pair designates, checked early.

Resolves ``"auto"``, ``hf-hub:`` and ``local-dir:`` names, open_clip tags and
checkpoint files; stamps what changes when the weights behind a name change;
says clearly when weights cannot be had offline, instead of open_clip's long
retries.
"""

import contextlib
import os
import socket
import urllib.parse
from pathlib import Path

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
