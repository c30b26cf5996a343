import warnings

import numpy as np
import open_clip
import pytest
import torch
from helpers import make_images

from sklearn_taskres import TaskResClassifier, WeightsUnavailableError
from sklearn_taskres._clip import load_encoder
from sklearn_taskres._features import image_features
from sklearn_taskres.testing import save_tiny_checkpoint

CPU = torch.device("cpu")


def test_random_init_is_the_same_model_in_every_load(tiny_model):
    """pretrained=None seeds the initialisation, so every process builds the same model."""
    from sklearn_taskres._clip._encoder import _create_encoder

    a = _create_encoder(tiny_model, None, CPU).model.state_dict()
    b = _create_encoder(tiny_model, None, CPU).model.state_dict()
    assert all(torch.equal(a[key], b[key]) for key in a)


def test_random_init_leaves_the_global_rng_alone(tiny_model):
    from sklearn_taskres._clip._encoder import _create_encoder

    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    _create_encoder(tiny_model, None, CPU)
    np.testing.assert_array_equal(torch.rand(3), expected)


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_local_checkpoint_loads_the_saved_weights(tiny_model, tmp_path, suffix):
    """pretrained=<path> goes through open_clip's checkpoint loading and gives the saved model."""
    path = save_tiny_checkpoint(tmp_path / f"weights{suffix}", tiny_model)
    saved = load_encoder(tiny_model, None, CPU)
    loaded = load_encoder(tiny_model, str(path), CPU)
    assert loaded is not saved
    images = make_images(4, seed=10)
    np.testing.assert_allclose(image_features(loaded, images), image_features(saved, images),
                               rtol=1e-5, atol=1e-6)
    assert loaded.identity != saved.identity  # distinct cache keys


def test_encoder_is_loaded_once_per_key(tiny_model, tiny_checkpoint):
    a = load_encoder(tiny_model, tiny_checkpoint, CPU)
    assert load_encoder(tiny_model, str(tiny_checkpoint), CPU) is a


@pytest.fixture
def quick_gelu_tag(tiny_model, tiny_checkpoint, monkeypatch):
    """A pretrained tag registered like OpenAI's: weights trained with QuickGELU."""
    registry = dict(open_clip.pretrained._PRETRAINED)
    registry[tiny_model] = {"quickgelu_test": {"file": str(tiny_checkpoint), "quick_gelu": True}}
    monkeypatch.setattr(open_clip.pretrained, "_PRETRAINED", registry)
    return "quickgelu_test"


def test_quick_gelu_tags_build_quick_gelu_models(tiny_model, quick_gelu_tag):
    """A tag trained with QuickGELU gets QuickGELU, without open_clip's mismatch warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        encoder = load_encoder(tiny_model, quick_gelu_tag, CPU)
    activations = {type(m).__name__ for m in encoder.model.modules()}
    assert "QuickGELU" in activations and "GELU" not in activations
    plain = load_encoder(tiny_model, None, CPU)
    assert "QuickGELU" not in {type(m).__name__ for m in plain.model.modules()}
    images = make_images(2, seed=11)
    assert not np.allclose(image_features(encoder, images), image_features(plain, images))


def test_missing_weights_say_how_to_fix_it(caplog):
    """A tag whose weights are not cached fails at once with the way out, said once."""
    with pytest.raises(WeightsUnavailableError, match="pretrained='/path/to/"):
        load_encoder("RN50", "openai", CPU)
    # open_clip's own "Failed to download" line is not printed before our explanation.
    assert not [r for r in caplog.records if "Failed to download" in r.getMessage()]


def test_open_clip_log_records_are_held_back_only_for_our_error(caplog):
    """Records other than a download failure we explain go out as usual."""
    import logging

    from sklearn_taskres._clip._encoder import _held_download_errors

    with caplog.at_level(logging.INFO), _held_download_errors():
        logging.error("Failed to download weights for tag 'x': no network")
        logging.warning("No pretrained weights loaded")
    messages = [record.getMessage() for record in caplog.records]
    assert messages == ["No pretrained weights loaded",
                        "Failed to download weights for tag 'x': no network"]


def test_unreachable_hub_switches_to_offline_for_the_load(monkeypatch):
    """Without a network the Hub is asked in offline mode, skipping its minute of retries."""
    import huggingface_hub.constants as hub_constants

    from sklearn_taskres import _clip

    seen = []

    def fake_download(*args, **kwargs):
        seen.append(hub_constants.HF_HUB_OFFLINE)
        raise FileNotFoundError("not cached")

    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(_clip._names, "_hub_reachable", lambda endpoint: False)
    monkeypatch.setattr(open_clip.pretrained, "download_pretrained_from_hf", fake_download)
    with pytest.raises(WeightsUnavailableError):
        load_encoder("RN50", "openai", CPU)
    assert seen == [True]
    assert hub_constants.HF_HUB_OFFLINE is False


@pytest.mark.auto_precision
def test_unknown_model_name():
    match = "expected model to be an open_clip model name.*'ViT-Q-99'"
    with pytest.raises(ValueError, match=match):
        TaskResClassifier(["a", "b"], model="ViT-Q-99").fit(make_images(2, 0), [0, 1])


def test_unknown_tag_lists_the_known_ones(tiny_model):
    match = r"tag of .ViT-B-32. \(.*openai.*\).*neither a known tag"
    with pytest.raises(ValueError, match=match):
        load_encoder("ViT-B-32", "not-a-tag", CPU)


def test_checkpoint_directory_is_rejected(tiny_model, tmp_path):
    with pytest.raises(ValueError, match="expected pretrained to be a checkpoint file"):
        load_encoder(tiny_model, str(tmp_path), CPU)


class _RecordingTextTower:
    """Wraps ``model.encode_text`` to record the token shapes it receives."""

    def __init__(self, model, monkeypatch):
        self.shapes = []
        encode_text = model.encode_text

        def recording(tokens, *args, **kwargs):
            self.shapes.append(tuple(tokens.shape))
            return encode_text(tokens, *args, **kwargs)

        monkeypatch.setattr(model, "encode_text", recording)


PROMPTS = ["a photo of a cat.", "a photo of a very large dog.", "a bird."]


@pytest.mark.parametrize("pooled", [False, True])
def test_text_is_encoded_up_to_the_last_end_of_text_only(tiny_model, monkeypatch, pooled):
    """Padding after the end-of-text token is cut; the features equal the full context's."""
    encoder = load_encoder(tiny_model, None, torch.device("cpu"))
    model = encoder.model
    tokens = encoder.tokenizer(PROMPTS)
    with torch.inference_mode():
        if pooled:
            projection = model.text_projection
            model.text_projection = None
        try:
            expected = model.encode_text(tokens).numpy()
        finally:
            if pooled:
                model.text_projection = projection
    positions, mask = model.positional_embedding, model.attn_mask
    tower = _RecordingTextTower(model, monkeypatch)
    encode = encoder.encode_text_pooled if pooled else encoder.encode_text
    np.testing.assert_allclose(encode(PROMPTS), expected, rtol=1e-5, atol=1e-6)
    longest = int(tokens.argmax(dim=-1).max()) + 1
    assert tower.shapes == [(len(PROMPTS), longest)] and longest < tokens.shape[1]
    assert model.positional_embedding is positions and model.attn_mask is mask


def test_the_text_tower_is_restored_after_an_error(tiny_model, monkeypatch):
    encoder = load_encoder(tiny_model, None, torch.device("cpu"))
    model = encoder.model
    positions, mask = model.positional_embedding, model.attn_mask

    def failing(tokens, *args, **kwargs):
        assert model.positional_embedding.shape[0] == tokens.shape[1]
        raise RuntimeError("boom")

    monkeypatch.setattr(model, "encode_text", failing)
    with pytest.raises(RuntimeError, match="boom"):
        encoder.encode_text(PROMPTS)
    assert model.positional_embedding is positions and model.attn_mask is mask


def test_other_text_pooling_gets_the_full_context(tiny_model, monkeypatch):
    """Without argmax pooling, what follows the end-of-text token may matter: no cut."""
    encoder = load_encoder(tiny_model, None, torch.device("cpu"))
    monkeypatch.setattr(encoder.model, "text_pool_type", "last")
    tower = _RecordingTextTower(encoder.model, monkeypatch)
    encoder.encode_text(PROMPTS)
    assert tower.shapes == [(len(PROMPTS), encoder.model.context_length)]
