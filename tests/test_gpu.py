"""Checks that need a CUDA device; they skip themselves elsewhere."""

import pickle

import numpy as np
import pytest
import torch
from helpers import make_dataset

from sklearn_taskres import TaskResClassifier, TaskResHead

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@pytest.mark.parametrize("batch_size", [128, 1024])  # minibatches; the whole set
def test_head_trains_on_cuda_like_on_cpu(batch_size):
    """Same batches on both devices: the residuals agree up to float rounding (TF32 off)."""
    rng = np.random.RandomState(0)
    base = rng.normal(size=(5, 64)).astype(np.float32)
    y = rng.randint(0, 5, 600)
    X = base[y] + rng.normal(size=(600, 64)).astype(np.float32)
    params = dict(max_iter=20, batch_size=batch_size, random_state=0)
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


@pytest.mark.parametrize("batch_size", [64, 512])
def test_views_train_on_cuda_like_on_cpu(batch_size):
    """Several views: the view drawn for each sample is the same on both devices."""
    from sklearn_taskres._training import train_residual

    rng = np.random.RandomState(1)
    base = rng.normal(size=(7, 32)).astype(np.float32)
    y = rng.randint(0, 7, 300)
    views = (base[y] + 2 * rng.normal(size=(3, 300, 32))).astype(np.float32)
    recipe = dict(alpha=0.5, logit_scale=50.0, learning_rate=5e-3, max_iter=15,
                  batch_size=batch_size, weight_decay=5e-4, seed=4)
    cpu, cpu_losses = train_residual(views, y, base, device=torch.device("cpu"), **recipe)
    cuda, cuda_losses = train_residual(views, y, base, device=torch.device("cuda"), **recipe)
    np.testing.assert_allclose(cuda, cpu, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(cuda_losses, cpu_losses, rtol=1e-4)


@pytest.mark.parametrize("batch_size", [64, 512])
def test_weighted_training_on_cuda_like_on_cpu(batch_size):
    """Sample weights, zero ones included, train on CUDA as on the CPU."""
    from sklearn_taskres._training import train_residual

    rng = np.random.RandomState(2)
    base = rng.normal(size=(7, 32)).astype(np.float32)
    y = rng.randint(0, 7, 300)
    X = (base[y] + 2 * rng.normal(size=(300, 32))).astype(np.float32)
    weights = rng.uniform(0, 2, 300) * (rng.uniform(size=300) > 0.2)
    recipe = dict(alpha=0.5, logit_scale=50.0, learning_rate=5e-3, max_iter=15,
                  batch_size=batch_size, weight_decay=5e-4, seed=4, sample_weight=weights)
    cpu, cpu_losses = train_residual(X, y, base, device=torch.device("cpu"), **recipe)
    cuda, cuda_losses = train_residual(X, y, base, device=torch.device("cuda"), **recipe)
    np.testing.assert_allclose(cuda, cpu, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(cuda_losses, cpu_losses, rtol=1e-4)
