import numpy as np
import pytest
import torch
from reference import reference_rates, reference_residual

from sklearn_taskres._training import learning_rate_schedule, minibatches, train_residual


@pytest.mark.parametrize(
    "learning_rate, max_iter", [(2e-3, 200), (2e-4, 100), (1e-2, 2), (1e-3, 1)]
)
def test_learning_rates_follow_the_official_warmup_and_cosine(learning_rate, max_iter):
    """1e-5 for the warm-up epoch, then torch's cosine annealing stepped per epoch."""
    rates = learning_rate_schedule(learning_rate, max_iter)
    assert len(rates) == max_iter and rates[0] == 1e-5
    np.testing.assert_allclose(rates, reference_rates(learning_rate, max_iter), rtol=1e-9)


def test_minibatches_drop_the_last_partial_batch():
    """Full batches only, each index at most once; a small set trains as one batch."""
    generator = torch.Generator().manual_seed(0)
    batches = minibatches(10, 4, generator)
    assert [len(b) for b in batches] == [4, 4]
    assert len(set(torch.cat(batches).tolist())) == 8
    (single,) = minibatches(3, 4, generator)
    assert sorted(single.tolist()) == [0, 1, 2]


def test_residual_equals_a_plain_reference_loop():
    """With one batch per epoch, the trained residual equals the plain official loop."""
    rng = np.random.RandomState(0)
    base = rng.normal(size=(4, 12)).astype(np.float32)
    targets = rng.randint(0, 4, 30)
    features = (base[targets] + rng.normal(size=(30, 12))).astype(np.float32)
    kwargs = dict(alpha=0.5, logit_scale=100.0, learning_rate=2e-3, weight_decay=5e-4)
    residual, losses = train_residual(features, targets, base, max_iter=30, batch_size=256,
                                      seed=0, device=torch.device("cpu"), **kwargs)
    expected = reference_residual(features, targets, base, 0.5, 100.0, 2e-3, 30, 5e-4)
    np.testing.assert_allclose(residual, expected, rtol=1e-4, atol=1e-7)
    assert len(losses) == 30 and losses[-1] < losses[0]


# Minibatches and a dropped rest; minibatches that cover the set; the whole set in one.
@pytest.mark.parametrize("batch_size", [64, 100, 512])
@pytest.mark.parametrize("n_views", [1, 3])
def test_hand_derived_step_equals_autograd_and_torch_adam(n_views, batch_size):
    """Minibatches or not, several views: the lean step follows autograd + torch Adam.

    With the whole set in one batch, the lean step skips the shuffle (the
    mean gradient does not depend on the order) and autograd does not.
    """
    from sklearn_taskres._training import fit_parameter, residual_logits

    rng = np.random.RandomState(0)
    base = rng.normal(size=(7, 16)).astype(np.float32)
    targets = rng.randint(0, 7, 300)
    features = (base[targets] + 2 * rng.normal(size=(n_views, 300, 16))).astype(np.float32)
    recipe = dict(learning_rate=5e-3, max_iter=12, batch_size=batch_size, weight_decay=5e-4,
                  seed=3, device=torch.device("cpu"))
    lean, lean_losses = train_residual(features, targets, base, alpha=0.7, logit_scale=30.0,
                                       **recipe)
    base_t = torch.tensor(base)
    residual = torch.zeros_like(base_t, requires_grad=True)
    losses = fit_parameter(residual,
                           lambda z: residual_logits(z, base_t, residual, 0.7, 30.0),
                           features, targets, **recipe)
    np.testing.assert_allclose(lean, residual.detach().numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(lean_losses, losses, rtol=1e-5)
    assert np.abs(lean).max() > 1e-3
