"""The CLIP adapter: the only package that imports open_clip (lazily).

- :mod:`._names`: model names and weights, resolved and checked before loading;
- :mod:`._configs`: custom model configs, registered and carried to other processes;
- :mod:`._encoder`: the loaded encoder in its precision, once per process and key.
"""

from ._configs import (
    custom_model_config,
    ensure_model_config,
    register_model_config,
)
from ._encoder import (
    PRECISIONS,
    RANDOM_INIT_SEED,
    ClipEncoder,
    encoders_loaded,
    load_encoder,
    native_bf16,
    resolve_precision,
    save_checkpoint,
    save_model_folder,
)
from ._names import (
    DEFAULT_TAG,
    HUB_CONFIG_NAME,
    HUB_WEIGHTS_NAMES,
    SCHEMAS,
    WeightsUnavailableError,
    model_schema,
    resolve_model,
)

__all__ = [
    "DEFAULT_TAG", "HUB_CONFIG_NAME", "HUB_WEIGHTS_NAMES", "PRECISIONS", "RANDOM_INIT_SEED",
    "SCHEMAS", "ClipEncoder", "WeightsUnavailableError", "custom_model_config",
    "encoders_loaded", "ensure_model_config", "load_encoder", "model_schema", "native_bf16",
    "register_model_config", "resolve_model", "resolve_precision", "save_checkpoint",
    "save_model_folder",
]
