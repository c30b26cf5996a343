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


def weighted_task(n_samples=300, n_classes=7, n_views=1, seed=0):
    rng = np.random.RandomState(seed)
    base = rng.normal(size=(n_classes, 16)).astype(np.float32)
    targets = rng.randint(0, n_classes, n_samples)
    noise = rng.normal(size=(n_views, n_samples, 16))
    features = (base[targets] + 2 * noise).astype(np.float32)
    weights = rng.uniform(0, 3, n_samples) * (rng.uniform(size=n_samples) > 0.2)
    return base, targets, features if n_views > 1 else features[0], weights


def test_weighted_residual_equals_a_plain_weighted_reference_loop():
    """One batch per epoch: the loss is sum(w * loss) / sum(w), as in the plain reference."""
    base, targets, features, weights = weighted_task(n_samples=40, n_classes=4)
    kwargs = dict(alpha=0.5, logit_scale=100.0, learning_rate=2e-3, weight_decay=5e-4)
    residual, _ = train_residual(features, targets, base, max_iter=30, batch_size=256, seed=0,
                                 device=torch.device("cpu"), sample_weight=weights, **kwargs)
    expected = reference_residual(features, targets, base, 0.5, 100.0, 2e-3, 30, 5e-4,
                                  sample_weight=weights)
    unweighted = reference_residual(features, targets, base, 0.5, 100.0, 2e-3, 30, 5e-4)
    np.testing.assert_allclose(residual, expected, rtol=1e-4, atol=1e-7)
    assert np.abs(expected - unweighted).max() > 100 * np.abs(residual - expected).max()


@pytest.mark.parametrize("batch_size", [64, 512])
@pytest.mark.parametrize("n_views", [1, 3])
def test_weighted_hand_derived_step_equals_autograd(n_views, batch_size):
    """Weights enter the hand-derived gradient as they enter autograd's weighted mean."""
    from sklearn_taskres._training import fit_parameter, residual_logits

    base, targets, features, weights = weighted_task(n_views=n_views)
    recipe = dict(learning_rate=5e-3, max_iter=12, batch_size=batch_size, weight_decay=5e-4,
                  seed=3, device=torch.device("cpu"), sample_weight=weights)
    lean, lean_losses = train_residual(features, targets, base, alpha=0.7, logit_scale=30.0,
                                       **recipe)
    base_t = torch.tensor(base)
    residual = torch.zeros_like(base_t, requires_grad=True)
    losses = fit_parameter(residual,
                           lambda z: residual_logits(z, base_t, residual, 0.7, 30.0),
                           features, targets, **recipe)
    np.testing.assert_allclose(lean, residual.detach().numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(lean_losses, losses, rtol=1e-5)
    unweighted, _ = train_residual(features, targets, base, alpha=0.7, logit_scale=30.0,
                                   **{**recipe, "sample_weight": None})
    assert np.abs(lean - unweighted).max() > 1e-3


@pytest.mark.parametrize("batch_size", [64, 512])
def test_equal_weights_give_the_unweighted_residual(batch_size):
    """Weights that are all equal (here 3.7) train exactly as no weights."""
    base, targets, features, _ = weighted_task()
    recipe = dict(alpha=0.5, logit_scale=100.0, learning_rate=2e-3, max_iter=10,
                  batch_size=batch_size, weight_decay=5e-4, seed=1, device=torch.device("cpu"))
    plain, plain_losses = train_residual(features, targets, base, **recipe)
    weighted, losses = train_residual(features, targets, base,
                                      sample_weight=np.full(len(targets), 3.7), **recipe)
    np.testing.assert_allclose(weighted, plain, rtol=0, atol=1e-6)
    np.testing.assert_allclose(losses, plain_losses, rtol=1e-6)


def test_zero_weights_on_one_batch_equal_dropping_the_samples():
    """On a set that trains as one batch, a zero weight is a sample left out."""
    base, targets, features, _ = weighted_task(n_samples=120)
    weights = (np.arange(120) % 3 != 0).astype(float)
    recipe = dict(alpha=0.5, logit_scale=100.0, learning_rate=2e-3, max_iter=15,
                  batch_size=256, weight_decay=5e-4, seed=0, device=torch.device("cpu"))
    weighted, losses = train_residual(features, targets, base, sample_weight=weights, **recipe)
    kept = weights > 0
    dropped, dropped_losses = train_residual(features[kept], targets[kept], base, **recipe)
    np.testing.assert_allclose(weighted, dropped, rtol=0, atol=1e-6)
    np.testing.assert_allclose(losses, dropped_losses, rtol=1e-5)


def test_a_batch_of_zero_weight_makes_no_step():
    """A batch whose weights sum to zero is skipped: no step, no loss; the rest trains."""
    from sklearn_taskres._training import _TrainingPlan

    base, targets, features, _ = weighted_task(n_samples=64)
    weights = np.zeros(64)
    weights[:4] = 1.0  # 4 weighted samples, 16 batches of 4: most batches weigh nothing
    views = torch.tensor(features)[None]
    plan = _TrainingPlan(views, 3, 4, 0, weights)
    steps = [len(list(plan.batches(epoch, shuffled=True))) for epoch in range(3)]
    assert plan.counted_batches.tolist() == steps and all(1 <= n < 16 for n in steps)
    residual, losses = train_residual(features, targets, base, alpha=0.5, logit_scale=100.0,
                                      learning_rate=2e-3, max_iter=3, batch_size=4,
                                      weight_decay=5e-4, seed=0, device=torch.device("cpu"),
                                      sample_weight=weights)
    assert np.all(np.isfinite(losses)) and np.abs(residual).max() > 0
    from sklearn_taskres._training import fit_parameter, residual_logits

    base_t = torch.tensor(base)
    reference = torch.zeros_like(base_t, requires_grad=True)
    reference_losses = fit_parameter(
        reference, lambda z: residual_logits(z, base_t, reference, 0.5, 100.0), features,
        targets, learning_rate=2e-3, max_iter=3, batch_size=4, weight_decay=5e-4, seed=0,
        device=torch.device("cpu"), sample_weight=weights)
    np.testing.assert_allclose(residual, reference.detach().numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(losses, reference_losses, rtol=1e-5)


def test_a_plan_without_any_weighted_batch_is_an_error():
    """When every epoch drops the only weighted samples, training is refused before it starts."""
    base, targets, features, _ = weighted_task(n_samples=300)
    generator = torch.Generator().manual_seed(5)
    dropped = minibatches(300, 256, generator)
    kept = set(torch.cat(dropped).tolist())
    weights = np.array([0.0 if i in kept else 1.0 for i in range(300)])
    assert weights.sum() == 44
    with pytest.raises(ValueError, match="expected at least one batch with a positive total "
                                         "weight.*44 of 300 samples"):
        train_residual(features, targets, base, alpha=0.5, logit_scale=100.0,
                       learning_rate=2e-3, max_iter=1, batch_size=256, weight_decay=5e-4,
                       seed=5, device=torch.device("cpu"), sample_weight=weights)
