"""What an estimator that encodes images needs in another process, carried in its pickle.

A config registered with ``open_clip.add_model_config`` exists only in the
process that registered it, and so do the decoding settings of
:func:`~sklearn_taskres.set_config`: the pickle carries both to joblib's and
Ray's workers, to a later run and to another machine.
"""

from ._clip import custom_model_config, ensure_model_config
from ._config import decoding_config

_MODEL_CONFIG_KEY = "_open_clip_config"
_DECODING_KEY = "_decoding_config"


class CarriedEncoderStateMixin:
    """Adds the model's custom config and the decoding settings to the state; restores them."""

    def _decoding(self):
        """The decoding settings: this process's, or those carried by the pickle it came from."""
        return decoding_config(getattr(self, "_carried_decoding", None))

    def __getstate__(self):
        state = dict(super().__getstate__())
        state.pop("_carried_decoding", None)
        state[_MODEL_CONFIG_KEY] = custom_model_config(state.get("model"))
        state[_DECODING_KEY] = self._decoding()
        return state

    def __setstate__(self, state):
        state = dict(state)
        config = state.pop(_MODEL_CONFIG_KEY, None)
        decoding = state.pop(_DECODING_KEY, None)
        super().__setstate__(state)
        ensure_model_config(self.model, config)
        if decoding is not None:
            self._carried_decoding = dict(decoding)
