"""Precision: half-precision image-tower weights, the fp32 text tower, and what "auto" means."""

import copy

import numpy as np
import pytest
import torch

from sklearn_taskres import TaskResClassifier, sample_few_shot
from sklearn_taskres import _clip as clip_adapter
from sklearn_taskres._clip import _encoder as clip_encoder
from sklearn_taskres._clip import load_encoder, native_bf16, resolve_precision
from sklearn_taskres._features import image_features, text_features
from sklearn_taskres.testing import TINY_CLIP_CONFIG, load_held_out_digits

DIGITS = [str(digit) for digit in range(10)]
TEMPLATES = ['a photo of the number: "{}".']
TINY_RESNET = "TinyTaskResResNetCLIP"


def cosine(a, b):
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


@pytest.fixture(scope="module")
def tiny_resnet():
    """A tiny ResNet CLIP (open_clip's ModifiedResNet): a convolutional image tower."""
    config = copy.deepcopy(TINY_CLIP_CONFIG)
    config["vision_cfg"] = {"image_size": 64, "layers": [1, 1, 1, 1], "width": 8,
                            "head_width": 32}
    return clip_adapter.register_model_config(TINY_RESNET, config)


@pytest.mark.parametrize("precision, dtype", [("bf16", torch.bfloat16),
                                              ("fp16", torch.float16)])
def test_half_precision_is_the_image_towers_weights_and_the_text_stays_fp32(
        tiny_model, precision, dtype):
    """bf16/fp16 put the image tower's weights in half precision; the base is the fp32 one."""
    cpu = torch.device("cpu")
    full, half = load_encoder(tiny_model, None, cpu, "fp32"), load_encoder(
        tiny_model, None, cpu, precision)
    visual = half.model.visual
    assert visual.conv1.weight.dtype == dtype and visual.proj.dtype == dtype
    assert type(visual.ln_pre).__name__ == "LayerNormFp32"
    assert visual.ln_pre.weight.dtype == torch.float32
    assert half.model.token_embedding.weight.dtype == torch.float32
    assert full.model.visual.conv1.weight.dtype == torch.float32
    prompts = ["a photo of a cat.", "a photo of a dog."]
    np.testing.assert_array_equal(text_features(half, prompts), text_features(full, prompts))
    images = [np.random.RandomState(seed).randint(0, 256, (40, 40, 3), dtype=np.uint8)
              for seed in range(8)]
    features = image_features(half, images)
    assert features.dtype == np.float32
    assert cosine(features, image_features(full, images)).min() > 0.999
    assert half.identity[2] == f"{precision} weights" and full.identity[2] == "fp32"


def test_open_clip_converts_the_image_tower_as_we_do(tiny_model):
    """Our image tower is bit for bit the one of open_clip's own precision="bf16"."""
    import open_clip

    ours = load_encoder(tiny_model, None, torch.device("cpu"), "bf16")
    theirs, _, _ = open_clip.create_model_and_transforms(tiny_model, precision="bf16")
    theirs.load_state_dict(load_encoder(tiny_model, None, torch.device("cpu")).model.state_dict())
    pixels = torch.randn(4, 3, 32, 32)
    with torch.inference_mode():
        expected = theirs.eval().encode_image(pixels.bfloat16()).float().numpy()
    np.testing.assert_array_equal(ours.encode_images(pixels), expected)


def test_convolutional_towers_run_channels_last_in_half_precision(tiny_resnet):
    cpu = torch.device("cpu")
    half, full = load_encoder(tiny_resnet, None, cpu, "bf16"), load_encoder(tiny_resnet, None,
                                                                            cpu, "fp32")
    assert half.channels_last and not full.channels_last
    assert half.model.visual.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    assert half.identity[2] == "bf16 weights, channels_last"
    images = [np.random.RandomState(seed).randint(0, 256, (70, 70, 3), dtype=np.uint8)
              for seed in range(4)]
    assert cosine(image_features(half, images), image_features(full, images)).min() > 0.99


def test_a_vit_does_not_go_channels_last(tiny_model):
    assert not load_encoder(tiny_model, None, torch.device("cpu"), "bf16").channels_last


@pytest.mark.parametrize("has_units, expected", [(False, "fp32"), (True, "bf16")])
def test_auto_on_the_cpu_follows_the_bf16_units(monkeypatch, has_units, expected):
    """"auto" is fp32 where the CPU has no bf16 matrix units, bf16 where it has them."""
    monkeypatch.setattr(clip_encoder, "_cpu_has_bf16_units", lambda: has_units)
    assert resolve_precision("auto", torch.device("cpu")) == expected
    assert resolve_precision("fp32", torch.device("cpu")) == "fp32"
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"


@pytest.mark.auto_precision
def test_the_cpu_probe_asks_torch_for_amx_tiles_only(monkeypatch):
    """AVX512-BF16 without AMX runs bf16 slower than fp32: "auto" stays fp32 there."""
    monkeypatch.delenv(clip_encoder.NATIVE_BF16_ENV, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True, raising=False)
    assert not native_bf16(torch.device("cpu"))
    assert resolve_precision("auto", torch.device("cpu")) == "fp32"
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    assert native_bf16(torch.device("cpu"))
    assert resolve_precision("auto", torch.device("cpu")) == "bf16"


@pytest.mark.auto_precision
@pytest.mark.parametrize("answer, expected", [("yes", "bf16"), ("no", "fp32"), (" No ", "fp32")])
def test_the_environment_answers_for_the_cpu(monkeypatch, answer, expected):
    """$SKLEARN_TASKRES_NATIVE_BF16 replaces torch's probe, whatever the CPU has."""
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: expected == "fp32",
                        raising=False)
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: expected == "fp32",
                        raising=False)
    monkeypatch.setenv("SKLEARN_TASKRES_NATIVE_BF16", answer)
    assert resolve_precision("auto", torch.device("cpu")) == expected


@pytest.mark.auto_precision
def test_a_bad_answer_in_the_environment_is_named(monkeypatch):
    monkeypatch.setenv("SKLEARN_TASKRES_NATIVE_BF16", "maybe")
    with pytest.raises(ValueError, match=r"expected \$SKLEARN_TASKRES_NATIVE_BF16 to be 'yes', "
                       r"'no' or unset; got 'maybe'"):
        resolve_precision("auto", torch.device("cpu"))


@pytest.mark.auto_precision
def test_the_run_answers_as_native_bf16_says_here_and_in_other_processes(request):
    """--native-bf16 decides "auto" in this process and in the processes the tests start."""
    import subprocess
    import sys

    answer = request.config.getoption("--native-bf16")
    if answer is None:
        expected = "bf16" if torch.cpu._is_amx_tile_supported() else "fp32"
    else:
        expected = "bf16" if answer == "yes" else "fp32"
    assert resolve_precision("auto", torch.device("cpu")) == expected
    code = ("import torch; from sklearn_taskres._clip import resolve_precision; "
            "print(resolve_precision('auto', torch.device('cpu')))")
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True)
    assert child.stdout.strip() == expected


@pytest.mark.parametrize(
    "native, emulated, expected",
    [(False, False, "fp32"), (False, True, "fp32"), (True, True, "bf16")],
    ids=["no bf16", "emulated bf16 (pre-Ampere)", "native bf16"],
)
def test_auto_on_cuda_is_bf16_only_where_the_gpu_runs_it_natively(monkeypatch, native,
                                                                  emulated, expected):
    """"auto" on a GPU that only emulates bf16 (torch counts emulation by default) is fp32."""

    def is_bf16_supported(including_emulation=True):  # torch's signature and default
        return native or (including_emulation and emulated)

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", is_bf16_supported)
    assert native_bf16(torch.device("cuda")) is native
    assert resolve_precision("auto", torch.device("cuda")) == expected


def test_the_cuda_probe_of_a_torch_without_including_emulation(monkeypatch):
    """Before torch 2.3 the probe had no including_emulation (and did not emulate): asked bare."""
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert resolve_precision("auto", torch.device("cuda")) == "bf16"


def test_auto_on_a_device_without_a_probe_is_fp32():
    """"auto" on a device whose bf16 cannot be probed (Apple's mps) is fp32."""
    assert resolve_precision("auto", torch.device("mps")) == "fp32"


def test_auto_is_resolved_where_the_classifier_runs(tiny_model, monkeypatch):
    """A classifier fitted with "auto" keeps "auto": another machine resolves it again."""
    clf = TaskResClassifier(["a", "b"], model=tiny_model, pretrained=None, device="cpu")
    monkeypatch.setattr(clip_encoder, "_cpu_has_bf16_units", lambda: True)
    assert clf._encoder(torch.device("cpu")).precision == "bf16"
    monkeypatch.setattr(clip_encoder, "_cpu_has_bf16_units", lambda: False)
    assert clf._encoder(torch.device("cpu")).precision == "fp32"
    assert clf.get_params()["precision"] == "auto"


def test_bf16_taskres_on_the_digits_clip_scores_as_fp32(tiny_digits_clip):
    """On unseen bold digits, bf16 TaskRes is within a point of fp32; features at cosine 0.999."""
    model, pretrained = tiny_digits_clip
    X, y = load_held_out_digits("bold", random_state=0)
    train = sample_few_shot(y, 4, random_state=0)
    test = np.setdiff1d(np.arange(len(y)), train)[:400]  # bf16 is emulated on most CPUs
    scores, features = {}, {}
    for precision in ("fp32", "bf16"):
        clf = TaskResClassifier(DIGITS, model=model, pretrained=pretrained, templates=TEMPLATES,
                                max_iter=100, device="cpu", precision=precision,
                                random_state=0).fit(X[train], y[train])
        scores[precision] = clf.score(X[test], y[test])
        features[precision] = image_features(clf._encoder(torch.device("cpu")), X[test])
    assert abs(scores["bf16"] - scores["fp32"]) <= 0.01, scores
    assert cosine(features["bf16"], features["fp32"]).min() >= 0.999
