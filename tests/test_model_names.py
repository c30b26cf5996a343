"""Models named with a schema: ``hf-hub:org/repo`` and ``local-dir:/path``."""

import json
import math
import os
import pickle
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from helpers import make_dataset, make_images
from scipy.special import softmax

from sklearn_taskres import (
    TaskResClassifier,
    WeightsUnavailableError,
    load_model,
    save_model,
)
from sklearn_taskres._clip import load_encoder, register_model_config
from sklearn_taskres._features import image_features
from sklearn_taskres.testing import TINY_CLIP_CONFIG

CPU = torch.device("cpu")
REPO = "sklearn-taskres/tiny-clip"
COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """An empty Hugging Face cache in a temporary folder, used offline."""
    import huggingface_hub.constants as hub_constants

    cache = tmp_path / "hub"
    cache.mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    return cache


def cache_repo(cache, folder, repo=REPO, commit=COMMIT, files=None):
    """Lay out ``folder``'s files as the cached snapshot ``commit`` of ``repo``."""
    root = cache / f"models--{repo.replace('/', '--')}"
    snapshot = root / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for path in sorted(folder.iterdir()):
        if files is None or path.name in files:
            shutil.copy(path, snapshot / path.name)
    (root / "refs").mkdir(exist_ok=True)
    (root / "refs" / "main").write_text(commit)
    return snapshot


def features(encoder, seed=3):
    return image_features(encoder, make_images(3, seed=seed))


def test_local_dir_loads_the_folder_weights_by_default(tiny_model, tiny_folder):
    """model='local-dir:...' alone (pretrained left at its default) loads the folder's weights."""
    encoder = load_encoder(f"local-dir:{tiny_folder}", "auto", CPU)
    reference = load_encoder(tiny_model, None, CPU)
    np.testing.assert_allclose(features(encoder), features(reference), rtol=1e-5, atol=1e-6)
    assert encoder.identity[0] == f"local-dir:{tiny_folder}"
    images, y = make_dataset(n_per_class=2, n_classes=2, seed=5)
    clf = TaskResClassifier(["red", "blue"], model=f"local-dir:{tiny_folder}", max_iter=2,
                            device="cpu", random_state=0).fit(images, y)
    assert clf.pretrained == "auto" and clf.predict(images).shape == (4,)


def test_local_dir_random_init_is_the_config_without_weights(tiny_model, tiny_folder):
    """pretrained=None with a schema: the folder's config, random (seeded) weights."""
    encoder = load_encoder(f"local-dir:{tiny_folder}", None, CPU)
    assert encoder.identity[1][-1] == "random"
    assert encoder is not load_encoder(f"local-dir:{tiny_folder}", "auto", CPU)


def test_relative_local_dir_is_made_absolute(tiny_folder, monkeypatch):
    monkeypatch.chdir(tiny_folder.parent)
    encoder = load_encoder(f"local-dir:{tiny_folder.name}", "auto", CPU)
    assert encoder is load_encoder(f"local-dir:{tiny_folder}", "auto", CPU)


@pytest.mark.parametrize("pretrained", ["openai", "laion2b_s34b_b79k", "__file__"])
def test_a_tag_or_file_with_a_schema_is_an_error(tiny_folder, pretrained):
    """open_clip would ignore them silently; we say why they cannot apply."""
    if pretrained == "__file__":
        pretrained = str(tiny_folder / "open_clip_model.safetensors")
    for name in (f"local-dir:{tiny_folder}", f"hf-hub:{REPO}"):
        with pytest.raises(ValueError, match=r"expected pretrained='auto' .* or None .*; got "
                                             r"pretrained=.*open_clip would silently ignore"):
            load_encoder(name, pretrained, CPU)
    clf = TaskResClassifier(["a", "b"], model=f"hf-hub:{REPO}", pretrained=pretrained)
    with pytest.raises(ValueError, match="open_clip would silently ignore"):
        clf.fit(make_images(2, seed=0), [0, 1])


def test_a_folder_without_config_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="expected model='local-dir:PATH' to name a folder "
                                         "holding open_clip_config.json .*without"):
        load_encoder(f"local-dir:{tmp_path}", "auto", CPU)
    with pytest.raises(ValueError, match="got the missing folder"):
        load_encoder(f"local-dir:{tmp_path / 'absent'}", "auto", CPU)


def test_local_dir_identity_follows_the_files(tiny_folder, tmp_path):
    """Another folder, or the same folder rewritten, is another model: features are not shared."""
    first = load_encoder(f"local-dir:{tiny_folder}", "auto", CPU)
    copy = shutil.copytree(tiny_folder, tmp_path / "copy")
    other = load_encoder(f"local-dir:{copy}", "auto", CPU)
    assert other.identity != first.identity
    weights = copy / "open_clip_model.safetensors"
    stat = weights.stat()
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    rewritten = load_encoder(f"local-dir:{copy}", "auto", CPU)
    assert rewritten is not other and rewritten.identity != other.identity


def test_a_hub_model_in_the_local_cache_loads_offline(tiny_model, tiny_folder, hub_cache):
    """hf-hub:org/repo reads the cached snapshot without a network."""
    cache_repo(hub_cache, tiny_folder)
    encoder = load_encoder(f"hf-hub:{REPO}", "auto", CPU)
    reference = load_encoder(tiny_model, None, CPU)
    np.testing.assert_allclose(features(encoder), features(reference), rtol=1e-5, atol=1e-6)
    assert encoder.identity[:2] == (f"hf-hub:{REPO}", (REPO, COMMIT))
    images, y = make_dataset(n_per_class=2, n_classes=2, seed=6)
    clf = TaskResClassifier(["red", "blue"], model=f"hf-hub:{REPO}", max_iter=2, device="cpu",
                            random_state=0).fit(images, y)
    restored = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(restored.predict_proba(images), clf.predict_proba(images))


def test_a_new_hub_snapshot_is_another_model(tiny_folder, hub_cache):
    """The identity names the revision of the cached snapshot."""
    cache_repo(hub_cache, tiny_folder)
    first = load_encoder(f"hf-hub:{REPO}", "auto", CPU)
    cache_repo(hub_cache, tiny_folder, commit="f" * 40)
    second = load_encoder(f"hf-hub:{REPO}", "auto", CPU)
    assert second is not first and second.identity[1] == (REPO, "f" * 40)


@pytest.mark.parametrize("files", [[], ["open_clip_config.json"]])
def test_a_hub_model_not_cached_fails_at_once_offline(tiny_folder, hub_cache, files):
    """No config or no weights in the cache: a clear error within seconds, no random model."""
    if files:  # a commit of its own: encoders loaded earlier are keyed by their commit
        cache_repo(hub_cache, tiny_folder, commit="e" * 40, files=files)
    start = time.perf_counter()
    with pytest.raises(WeightsUnavailableError, match=r"'hf-hub:sklearn-taskres/tiny-clip' is "
                                                      r"not in the local Hugging Face cache"):
        load_encoder(f"hf-hub:{REPO}", "auto", CPU)
    assert time.perf_counter() - start < 5


@pytest.fixture(scope="module")
def siglip_model():
    """A tiny sigmoid-trained style model: SigLIP's logit scale (10) and a learned bias."""
    config = {**TINY_CLIP_CONFIG, "init_logit_scale": math.log(10), "init_logit_bias": -10.0}
    return register_model_config("TinySigmoidBiasCLIP", config)


def test_a_logit_bias_leaves_the_softmax_unchanged(siglip_model):
    """The bias is the same for every class: TaskRes's probabilities are those with the bias."""
    images, y = make_dataset(n_per_class=2, n_classes=3, seed=7)
    clf = TaskResClassifier(["red", "green", "blue"], model=siglip_model, pretrained=None,
                            alpha=0.0, max_iter=1, device="cpu", precision="fp32",
                            random_state=0).fit(images, y)
    encoder = load_encoder(siglip_model, None, CPU, "fp32")
    bias = float(encoder.model.logit_bias.detach())
    assert bias == -10.0 and clf.logit_scale_ == pytest.approx(10.0)
    z = image_features(encoder, images)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    t = clf.base_weights_ / np.linalg.norm(clf.base_weights_, axis=1, keepdims=True)
    with_bias = encoder.logit_scale * z @ t.T + bias
    np.testing.assert_allclose(clf.predict_proba(images), softmax(with_bias, axis=1),
                               rtol=1e-5, atol=1e-7)


def test_saved_and_pickled_local_dir_models_load_in_a_fresh_process(tiny_folder, tmp_path):
    """The name finds the model again: nothing to register in the loading process."""
    images, y = make_dataset(n_per_class=2, n_classes=2, seed=8)
    clf = TaskResClassifier(["red", "blue"], model=f"local-dir:{tiny_folder}", max_iter=2,
                            device="cpu", random_state=0).fit(images, y)
    save_model(clf, tmp_path / "clf.skops")
    with open(tmp_path / "clf.pkl", "wb") as file:
        pickle.dump(clf, file)
    np.save(tmp_path / "images.npy", np.stack(images))
    np.save(tmp_path / "expected.npy", clf.predict_proba(images))
    assert load_model(tmp_path / "clf.skops").model == f"local-dir:{tiny_folder}"
    script = (
        "import pickle, sys, numpy as np\n"
        "from sklearn_taskres import load_model\n"
        "d = sys.argv[1]\n"
        "images = list(np.load(d + '/images.npy'))\n"
        "expected = np.load(d + '/expected.npy')\n"
        "for clf in (load_model(d + '/clf.skops'), pickle.load(open(d + '/clf.pkl', 'rb'))):\n"
        "    np.testing.assert_allclose(clf.predict_proba(images), expected, rtol=1e-5)\n"
        "print('ok')\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [os.getcwd(), *sys.path]))}
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True,
                            text=True, env=env, timeout=300)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_the_cli_fits_a_local_dir_model(tiny_folder, tmp_path, capsys):
    """--model local-dir:... with the default --pretrained."""
    from PIL import Image

    from sklearn_taskres.cli import main

    for colour, value in (("red", (250, 10, 10)), ("blue", (10, 10, 250))):
        (tmp_path / "data" / colour).mkdir(parents=True)
        Image.new("RGB", (32, 32), value).save(tmp_path / "data" / colour / "a.png")
    output = tmp_path / "model.skops"
    status = main(["fit", str(tmp_path / "data"), "-o", str(output), "--model",
                   f"local-dir:{tiny_folder}", "--epochs", "2", "--device", "cpu"])
    assert status == 0, capsys.readouterr().err
    assert load_model(output).model == f"local-dir:{tiny_folder}"


def test_the_folder_has_the_hub_layout(tiny_folder):
    config = json.loads((tiny_folder / "open_clip_config.json").read_text())
    assert config["model_cfg"]["embed_dim"] == TINY_CLIP_CONFIG["embed_dim"]
    assert config["preprocess_cfg"]["size"] in (32, [32, 32])
    assert (tiny_folder / "open_clip_model.safetensors").is_file()


def test_an_unreachable_hub_is_asked_offline_for_a_schema_name(tiny_model, tiny_folder,
                                                               hub_cache, monkeypatch):
    """Online mode but no network: a cached repository loads, a missing one fails at once."""
    import huggingface_hub.constants as hub_constants

    from sklearn_taskres import _clip

    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(_clip._names, "_hub_reachable", lambda endpoint, timeout=3.0: False)
    with pytest.raises(WeightsUnavailableError, match="not in the local Hugging Face cache"):
        load_encoder("hf-hub:sklearn-taskres/absent", "auto", CPU)
    cache_repo(hub_cache, tiny_folder, commit="d" * 40)
    encoder = load_encoder(f"hf-hub:{REPO}", "auto", CPU)
    assert encoder.identity[1] == (REPO, "d" * 40)
    assert hub_constants.HF_HUB_OFFLINE is False


def test_the_identity_holds_no_object_address(tiny_model, monkeypatch):
    """A transform with a plain function (older open_clip) gives the same identity everywhere."""
    import re

    from sklearn_taskres._clip._encoder import _stable_repr

    def to_rgb(image):
        return image

    text = _stable_repr([to_rgb])
    assert "to_rgb" in text and not re.search(r"0x[0-9a-f]+", text)
    encoder = load_encoder(tiny_model, None, CPU)
    assert not re.search(r" at 0x[0-9a-f]+", repr(encoder.identity))


def test_the_cli_says_how_to_use_a_hub_model_offline(hub_cache, tmp_path, capsys):
    """A hub model missing offline: exit 1, and the way out is a local-dir: folder."""
    from PIL import Image

    from sklearn_taskres.cli import main

    for colour in ("red", "blue"):
        (tmp_path / "data" / colour).mkdir(parents=True)
        Image.new("RGB", (8, 8)).save(tmp_path / "data" / colour / "a.png")
    status = main(["fit", str(tmp_path / "data"), "-o", str(tmp_path / "m.skops"), "--model",
                   "hf-hub:sklearn-taskres/absent", "--device", "cpu"])
    err = capsys.readouterr().err
    assert status == 1
    assert "not in the local Hugging Face cache" in err
    assert err.strip().endswith("On the command line: --model local-dir:/path/to/folder.")


def test_a_failed_hub_download_online_is_the_same_clear_error(hub_cache, monkeypatch):
    """Online, a download that fails inside open_clip becomes WeightsUnavailableError."""
    import huggingface_hub.constants as hub_constants
    import open_clip

    from sklearn_taskres import _clip

    def failing_config(*args, **kwargs):
        raise OSError("connection reset")

    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(_clip._names, "_hub_reachable", lambda endpoint, timeout=3.0: True)
    monkeypatch.setattr(open_clip.factory, "_get_hf_config", failing_config)
    with pytest.raises(WeightsUnavailableError, match="could not be downloaded"):
        load_encoder("hf-hub:sklearn-taskres/elsewhere", "auto", CPU)
