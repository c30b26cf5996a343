"""Checks that need a CUDA device; they skip themselves elsewhere."""

import pickle

import numpy as np
import pytest
import torch
from helpers import make_dataset

from sklearn_taskres import TaskResClassifier, TaskResHead

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


def test_head_trains_on_cuda_like_on_cpu():
    """Same batches on both devices: the residuals agree up to float rounding (TF32 off)."""
    rng = np.random.RandomState(0)
    base = rng.normal(size=(5, 64)).astype(np.float32)
    y = rng.randint(0, 5, 600)
    X = base[y] + rng.normal(size=(600, 64)).astype(np.float32)
    params = dict(max_iter=20, batch_size=128, random_state=0)
    cpu = TaskResHead(base, device="cpu", **params).fit(X, y)
    cuda = TaskResHead(base, device="cuda", **params).fit(X, y)
    assert isinstance(cuda.residual_, np.ndarray)
    np.testing.assert_allclose(cuda.residual_, cpu.residual_, rtol=1e-3, atol=1e-5)


def test_classifier_fitted_on_cuda_predicts_on_cpu(tiny_model):
    images, y = make_dataset(n_per_class=6, n_classes=3, seed=200)
    clf = TaskResClassifier(["a", "b", "c"], model=tiny_model, pretrained=None, max_iter=10,
                            device="cuda", random_state=0).fit(images, y)
    payload = pickle.dumps(clf)
    assert b"torch" not in payload
    on_cpu = pickle.loads(payload).set_params(device="cpu")
    np.testing.assert_allclose(on_cpu.predict_proba(images), clf.predict_proba(images),
                               rtol=1e-3, atol=1e-5)
