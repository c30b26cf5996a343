"""Custom open_clip model configs: registered, recognised, carried to other processes.

A config registered with ``open_clip.add_model_config`` exists only in the
process that registered it; estimators carry it in their pickles and saved
files, and these functions register it where they are loaded.
"""

import functools
import hashlib
import json
import sys
from pathlib import Path


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
