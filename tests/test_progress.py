"""verbose=0 is silent; verbose>=1 shows progress on stderr; messages use the logger."""

import logging

import numpy as np
import pytest
from helpers import make_dataset

from sklearn_taskres import TaskResClassifier, TaskResHead
from sklearn_taskres._features import FEATURES


@pytest.mark.auto_precision
def test_silent_by_default(tiny_model, capfd):
    images, y = make_dataset(n_per_class=2, n_classes=2, seed=800)
    TaskResClassifier(["a", "b"], model=tiny_model, pretrained=None, max_iter=3,
                      device="cpu").fit(images, y)
    out, err = capfd.readouterr()
    assert out == ""
    assert "Encoding" not in err and "Training" not in err


@pytest.mark.auto_precision
def test_verbose_shows_encoding_and_training_progress(tiny_model, capfd, monkeypatch):
    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    FEATURES.clear()
    images, y = make_dataset(n_per_class=2, n_classes=2, seed=801)
    TaskResClassifier(["a", "b"], model=tiny_model, pretrained=None, max_iter=3,
                      device="cpu", verbose=1).fit(images, y)
    out, err = capfd.readouterr()
    assert out == ""
    assert "Encoding images" in err and "img" in err
    assert "Training" in err and "loss=" in err


def test_tqdm_disable_silences_the_bars(capfd, monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    X = np.random.RandomState(0).normal(size=(10, 4))
    TaskResHead(max_iter=3, device="cpu", verbose=1).fit(X, np.arange(10) % 2)
    assert "Training" not in capfd.readouterr().err


@pytest.mark.auto_precision
def test_messages_go_to_the_package_logger(tiny_model, caplog):
    FEATURES.clear()
    images, y = make_dataset(n_per_class=2, n_classes=2, seed=802)
    with caplog.at_level(logging.DEBUG, logger="sklearn_taskres"):
        TaskResClassifier(["a", "b"], model=tiny_model, pretrained=None, max_iter=2,
                          device="cpu").fit(images, y)
    messages = [record.getMessage() for record in caplog.records
                if record.name == "sklearn_taskres"]
    assert any("to compute" in message for message in messages)
    assert any("final mean loss" in message for message in messages)


def test_importing_flips_no_global_torch_flags():
    import subprocess
    import sys

    script = (
        "import torch; before = (torch.backends.cudnn.benchmark, "
        "torch.backends.cuda.matmul.allow_tf32, torch.get_num_threads(), "
        "torch.is_grad_enabled(), torch.get_default_dtype()); "
        "from sklearn_taskres import *; after = (torch.backends.cudnn.benchmark, "
        "torch.backends.cuda.matmul.allow_tf32, torch.get_num_threads(), "
        "torch.is_grad_enabled(), torch.get_default_dtype()); "
        "assert before == after, (before, after); print('same')"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert "same" in result.stdout
