"""Training the task residual on cached image features.

Pure torch functions: arrays in, arrays out. They know nothing about
scikit-learn; the estimators validate their inputs and hold the results.
"""

import math
import warnings

import numpy as np
import torch
import torch.nn.functional as F

from ._progress import logger, progress

WARMUP_LEARNING_RATE = 1e-5
ADAM_BETAS = (0.9, 0.999)
ADAM_EPS = 1e-8


def resolve_device(device, *, cpu_fallback=False):
    """Return the ``torch.device`` meant by the estimator parameter ``device``.

    ``"auto"`` means CUDA when it is available, else the CPU. With
    ``cpu_fallback``, a CUDA device on a machine without CUDA gives the CPU and
    a warning instead of an error: a model fitted on a GPU box must still
    predict where it is loaded.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"expected device to be 'auto', 'cpu', 'cuda' or 'cuda:N'; got {device!r}"
        ) from exc
    if resolved.type == "cuda":
        if cpu_fallback and not torch.cuda.is_available():
            warnings.warn(
                f"device={device!r} but CUDA is not available on this machine; using the CPU. "
                "Set device='auto' or 'cpu' to silence this warning.",
                UserWarning,
                stacklevel=3,
            )
            return torch.device("cpu")
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} was requested but CUDA is not available on this "
                "machine; use device='cpu' or device='auto'"
            )
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r} was requested but this machine has "
                f"{torch.cuda.device_count()} CUDA device(s)"
            )
    return resolved


def learning_rate_schedule(learning_rate, max_iter):
    """Learning rate of every epoch in the official TaskRes recipe.

    One warm-up epoch at the constant rate 1e-5, then cosine annealing over
    ``max_iter`` epochs stepped once per epoch: epoch ``e >= 1`` trains at
    ``learning_rate * (1 + cos(pi * (e - 1) / max_iter)) / 2``. The last
    epoch therefore never reaches zero, as with Dassl's warm-up wrapper
    around ``CosineAnnealingLR(T_max=max_iter)``.
    """
    rates = [WARMUP_LEARNING_RATE]
    for epoch in range(1, max_iter):
        rates.append(learning_rate * (1 + math.cos(math.pi * (epoch - 1) / max_iter)) / 2)
    return np.asarray(rates[:max_iter])


def cosine_logits(features, classifier, logit_scale):
    """``logit_scale * features @ normalize(classifier).T`` for normalised ``features``."""
    return logit_scale * (features @ F.normalize(classifier, dim=-1).T)


def residual_logits(features, base, residual, alpha, logit_scale):
    """Logits of the TaskRes classifier ``t' = base + alpha * residual``."""
    return cosine_logits(features, base + alpha * residual, logit_scale)


def minibatches(n_samples, batch_size, generator):
    """Index batches for one epoch: a fresh random order, last partial batch dropped.

    As in Dassl's training loader, the partial batch is dropped only when
    there is at least one full batch; smaller sets train as one batch.
    """
    order = torch.randperm(n_samples, generator=generator)
    if n_samples < batch_size:
        return [order]
    n_batches = n_samples // batch_size
    return list(order[: n_batches * batch_size].view(n_batches, batch_size))


def train_residual(
    features,
    targets,
    base,
    *,
    alpha,
    logit_scale,
    learning_rate,
    max_iter,
    batch_size,
    weight_decay,
    seed,
    device,
    verbose=0,
):
    """Learn the task residual ``x`` of TaskRes with the official recipe.

    The same optimisation as autograd and ``torch.optim.Adam`` on
    :func:`residual_logits` (see :func:`fit_parameter`), written out: the
    gradient of the cross-entropy through the normalised classifier is derived
    by hand and Adam updates its buffers in place. That saves the autograd
    graph and most allocations of every step, which is what a step costs when
    the matrices are small.

    Parameters
    ----------
    features : ndarray of shape (n_samples, n_features) or (n_views, n_samples, n_features)
        Image embeddings (normalised here). With several views, every epoch
        trains on one view per image, drawn at random.
    targets : ndarray of shape (n_samples,)
        Row of ``base`` that each sample belongs to.
    base : ndarray of shape (n_classes, n_features)
        The frozen base classifier ``t``.
    alpha, logit_scale : float
        Scale of the residual and temperature of the logits.
    learning_rate, max_iter, batch_size, weight_decay, seed, device, verbose
        The training recipe, as in :func:`fit_parameter`.

    Returns
    -------
    residual : ndarray of shape (n_classes, n_features), float32
    loss_curve : list of float
        Mean training loss of every epoch.
    """
    views, targets = _training_tensors(features, targets, device)
    base = torch.tensor(base, dtype=torch.float32, device=device)
    residual = torch.zeros_like(base)
    exp_avg = torch.zeros_like(base)
    exp_avg_sq = torch.zeros_like(base)
    classifier = torch.empty_like(base)
    beta1, beta2 = ADAM_BETAS

    step = 0
    loss_curve = []
    for rate, epoch_features, batches in _epochs(
        views, learning_rate, max_iter, batch_size, seed, device, verbose, loss_curve
    ):
        batch_losses = []
        for batch in batches:
            step += 1
            image = epoch_features[batch]
            labels = targets[batch]
            torch.add(base, residual, alpha=alpha, out=classifier)
            norms = classifier.norm(dim=1, keepdim=True).clamp_min_(1e-12)
            unit = classifier / norms
            log_proba = torch.mm(image, unit.T).mul_(logit_scale).log_softmax(dim=1)
            batch_losses.append(-log_proba.gather(1, labels[:, None]).mean())

            # d(mean cross-entropy)/d(logits) = (softmax - one_hot) / batch
            grad_logits = log_proba.exp_()
            grad_logits[torch.arange(len(labels), device=device), labels] -= 1.0
            grad_unit = torch.mm(grad_logits.T, image).mul_(logit_scale / len(labels))
            # Through the row normalisation: remove the radial part, divide by the norm.
            radial = (grad_unit * unit).sum(dim=1, keepdim=True)
            grad = grad_unit.sub_(unit.mul_(radial)).div_(norms).mul_(alpha)
            grad.add_(residual, alpha=weight_decay)

            # torch.optim.Adam's update (coupled weight decay above), in place.
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            bias_correction1 = 1 - beta1**step
            bias_correction2 = 1 - beta2**step
            denom = (exp_avg_sq.sqrt() / math.sqrt(bias_correction2)).add_(ADAM_EPS)
            residual.addcdiv_(exp_avg, denom, value=-rate / bias_correction1)
        loss_curve.append(torch.stack(batch_losses).mean().item())
    return residual.cpu().numpy(), loss_curve


def train_projection(features, targets, pooled_text, projection, *, logit_scale, **recipe):
    """Tune CLIP's text projection on labelled images: the enhanced base of TaskRes*.

    The classifier is ``pooled_text @ projection`` (the template-mean text
    features before the projection, mapped to the joint space), trained with
    the same loss, optimiser and schedule as the residual.

    Parameters
    ----------
    features : ndarray of shape (n_samples, n_features) or (n_views, n_samples, n_features)
        Image embeddings.
    targets : ndarray of shape (n_samples,)
        Row of ``pooled_text`` that each sample belongs to.
    pooled_text : ndarray of shape (n_classes, width)
        Template-mean text features before the projection.
    projection : ndarray of shape (width, n_features)
        CLIP's text projection, the starting point.

    Returns
    -------
    projection : ndarray of shape (width, n_features), float32
    loss_curve : list of float
    """
    device = recipe["device"]
    pooled_text = torch.tensor(pooled_text, dtype=torch.float32, device=device)
    weights = torch.tensor(projection, dtype=torch.float32, device=device, requires_grad=True)

    def logits(batch_features):
        return cosine_logits(batch_features, pooled_text @ weights, logit_scale)

    loss_curve = fit_parameter(weights, logits, features, targets, **recipe)
    return weights.detach().cpu().numpy(), loss_curve


def fit_parameter(
    parameter,
    logits,
    features,
    targets,
    *,
    learning_rate,
    max_iter,
    batch_size,
    weight_decay,
    seed,
    device,
    verbose=0,
):
    """Minimise the cross-entropy of ``logits(features)`` over ``parameter``, in place.

    Adam with coupled weight decay, one warm-up epoch then cosine annealing
    per epoch, minibatches in a fresh order every epoch (drawn on the CPU, so
    a seed gives the same batches on every device). Returns the mean loss of
    every epoch.
    """
    views, targets = _training_tensors(features, targets, device)
    optimizer = torch.optim.Adam(
        [parameter], lr=learning_rate, betas=ADAM_BETAS, eps=ADAM_EPS, weight_decay=weight_decay
    )
    loss_curve = []
    for rate, epoch_features, batches in _epochs(
        views, learning_rate, max_iter, batch_size, seed, device, verbose, loss_curve
    ):
        for group in optimizer.param_groups:
            group["lr"] = float(rate)
        batch_losses = []
        for batch in batches:
            loss = F.cross_entropy(logits(epoch_features[batch]), targets[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            batch_losses.append(loss.detach())
        loss_curve.append(torch.stack(batch_losses).mean().item())
    return loss_curve


def _training_tensors(features, targets, device):
    """Normalised views (n_views, n_samples, D) and targets on ``device``."""
    # torch.tensor copies: inputs may be read-only (memmaps) and must not be aliased.
    features = torch.tensor(features, dtype=torch.float32, device=device)
    views = F.normalize(features if features.ndim == 3 else features[None], dim=-1)
    return views, torch.tensor(targets, dtype=torch.long, device=device)


def _epochs(views, learning_rate, max_iter, batch_size, seed, device, verbose, loss_curve):
    """Yield ``(learning rate, features of the epoch, index batches)`` for every epoch.

    With several views, each epoch takes one view per sample, drawn before
    the batch order from the same generator. The caller appends each epoch's
    mean loss to ``loss_curve``; with ``verbose`` a progress bar shows it.
    """
    n_views, n_samples = views.shape[:2]
    generator = torch.Generator().manual_seed(seed)
    schedule = learning_rate_schedule(learning_rate, max_iter)
    with progress(verbose, total=max_iter, desc="Training", unit="epoch") as bar:
        for rate in schedule:
            if n_views == 1:
                epoch_features = views[0]
            else:
                chosen = torch.randint(n_views, (n_samples,), generator=generator).to(device)
                epoch_features = views[chosen, torch.arange(n_samples, device=device)]
            batches = [
                batch.to(device) for batch in minibatches(n_samples, batch_size, generator)
            ]
            yield float(rate), epoch_features, batches
            bar.set_postfix(loss=f"{loss_curve[-1]:.4f}", refresh=False)
            bar.update()
    logger.debug("trained %d epochs; final mean loss %.6f", max_iter, loss_curve[-1])
