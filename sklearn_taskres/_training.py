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
    sample_weight=None,
    verbose=0,
    on_epoch_begin=None,
    on_epoch_end=None,
):
    """Learn the task residual ``x`` of TaskRes with the official recipe.

    The same optimisation as autograd and ``torch.optim.Adam`` on
    :func:`residual_logits` (see :func:`fit_parameter`), written out. With
    small matrices a step costs its number of operations, not its FLOPs, so
    the step is arranged to do as few as possible:

    - the gradient of the cross-entropy through the normalised classifier is
      derived by hand, with the radial part computed from the logits
      (n_classes x batch) rather than from the classifier (n_classes x D);
    - Adam updates its buffers in place, and nothing of size n_classes x D
      is allocated per step except the gradient;
    - every epoch's batch order is drawn up front and moved to the device
      once; the losses stay on the device until the end;
    - when the whole set is one batch (``n_samples <= batch_size``), the
      random order of the epoch cannot change the mean gradient, so the
      features are used as they lie instead of being gathered. Results then
      differ from the shuffled loop by float rounding only.

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
    learning_rate, max_iter, batch_size, weight_decay, seed, device, sample_weight, verbose
        The training recipe, as in :func:`fit_parameter`.
    on_epoch_begin, on_epoch_end : callable, default=None
        Called as ``hook(epoch, snapshot)`` before and after every epoch.
        ``snapshot()`` returns ``(residual, loss_curve)``: a NumPy copy of
        the residual and the mean losses of the epochs done so far. It is
        only computed when called, as it waits for the device; the hooks
        leave the training as it is.

    Returns
    -------
    residual : ndarray of shape (n_classes, n_features), float32
    loss_curve : list of float
        Mean training loss of every epoch.
    """
    views, targets = _training_tensors(features, targets, device)
    plan = _TrainingPlan(views, max_iter, batch_size, seed, sample_weight)
    flat_views = views.flatten(0, 1)  # row v * n_samples + i is view v of sample i
    one_hot = F.one_hot(targets, len(base)).T.contiguous().float()  # (n_classes, n_samples)

    base = torch.tensor(base, dtype=torch.float32, device=device)
    residual = torch.zeros_like(base)
    exp_avg = torch.zeros_like(base)
    exp_avg_sq = torch.zeros_like(base)
    classifier = torch.empty_like(base)
    denom = torch.empty_like(base)
    batch_features = torch.empty(plan.batch_size, views.shape[2], device=device)
    losses = torch.zeros(max_iter, device=device)
    beta1, beta2 = ADAM_BETAS
    batch = plan.batch_size
    radial_factor = -alpha / (batch * logit_scale**2)

    step = 0
    divisors = plan.counted_batches * batch

    def snapshot(n_epochs):
        return lambda: (residual.to("cpu", copy=True).numpy(),
                        (losses[:n_epochs] / divisors[:n_epochs]).tolist())

    for epoch, rate in _epochs(learning_rate, max_iter, verbose, losses, divisors):
        if on_epoch_begin is not None:
            on_epoch_begin(epoch, snapshot(epoch))
        epoch_loss = losses[epoch]
        for rows, samples, weight in plan.batches(epoch, shuffled=False):
            step += 1
            if rows is None:  # the whole set, one view, in sample order
                image = views[0]
            else:
                image = torch.index_select(flat_views, 0, rows, out=batch_features)
            labels = one_hot if samples is None else one_hot.index_select(1, samples)

            # Logits, transposed: (n_classes, batch). z = scale * cos(c_k, f_i).
            torch.add(base, residual, alpha=alpha, out=classifier)
            norm = torch.linalg.vector_norm(classifier, dim=1, keepdim=True)
            scale = norm.clamp_min_(1e-12).reciprocal_().mul_(logit_scale)  # s / |c_k|
            logits = torch.mm(classifier, image.T).mul_(scale)
            log_proba = logits.log_softmax(dim=0)
            if weight is None:
                epoch_loss.sub_(torch.vdot(log_proba.view(-1), labels.view(-1)))
                grad_logits = log_proba.exp_().sub_(labels)
            else:
                # Sample i counts w_i / mean(w) of the batch: the weighted mean
                # loss is the plain mean of these scaled losses.
                labels = labels * weight
                epoch_loss.sub_(torch.vdot(log_proba.view(-1), labels.view(-1)))
                grad_logits = log_proba.exp_().mul_(weight).sub_(labels)

            # With G = softmax - one_hot (columns scaled by the weights), the
            # mean loss has gradient s/B * G @ F in the unit classifier
            # u_k = c_k / |c_k|; through the normalisation,
            # d/dc_k = (g_k - (g_k . u_k) u_k) / |c_k|, where
            # g_k . u_k = sum_i G[k, i] z[k, i] / B needs no (K, D) product.
            radial = torch.mul(grad_logits, logits, out=logits).sum(dim=1, keepdim=True)
            grad_logits.mul_(scale)
            grad = torch.mm(grad_logits, image).mul_(alpha / batch)
            # (g_k . u_k) u_k / |c_k| = (g_k . u_k) c_k / |c_k|^2, and 1/|c_k|^2 = (scale/s)^2.
            grad.addcmul_(classifier, radial.mul_(scale.square_()), value=radial_factor)
            grad.add_(residual, alpha=weight_decay)

            # torch.optim.Adam's update (coupled weight decay above), in place;
            # sqrt(v / bc2) + eps is written (sqrt(v) + eps sqrt(bc2)) / sqrt(bc2).
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            root_bias_correction2 = math.sqrt(1 - beta2**step)
            torch.sqrt(exp_avg_sq, out=denom).add_(ADAM_EPS * root_bias_correction2)
            step_size = rate * root_bias_correction2 / (1 - beta1**step)
            residual.addcdiv_(exp_avg, denom, value=-step_size)
        if on_epoch_end is not None:
            on_epoch_end(epoch, snapshot(epoch + 1))
    loss_curve = (losses / divisors).tolist()
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
    sample_weight=None,
    verbose=0,
):
    """Minimise the cross-entropy of ``logits(features)`` over ``parameter``, in place.

    Adam with coupled weight decay, one warm-up epoch then cosine annealing
    per epoch, minibatches in a fresh order every epoch (drawn on the CPU, so
    a seed gives the same batches on every device). Returns the mean loss of
    every epoch.

    With ``sample_weight`` (non-negative, shape (n_samples,)), the loss of a
    batch is the weighted mean ``sum_i w_i loss_i / sum_i w_i``, as torch's
    cross-entropy with class weights; a batch whose weights sum to zero makes
    no step. The loss of an epoch is then the mean over the batches that made
    a step (NaN for an epoch without any).
    """
    views, targets = _training_tensors(features, targets, device)
    plan = _TrainingPlan(views, max_iter, batch_size, seed, sample_weight)
    flat_views = views.flatten(0, 1)
    optimizer = torch.optim.Adam(
        [parameter], lr=learning_rate, betas=ADAM_BETAS, eps=ADAM_EPS, weight_decay=weight_decay
    )
    losses = torch.zeros(max_iter, device=device)
    divisors = plan.counted_batches
    for epoch, rate in _epochs(learning_rate, max_iter, verbose, losses, divisors):
        for group in optimizer.param_groups:
            group["lr"] = rate
        for rows, samples, weight in plan.batches(epoch, shuffled=True):
            if weight is None:
                loss = F.cross_entropy(logits(flat_views[rows]), targets[samples])
            else:
                losses_i = F.cross_entropy(logits(flat_views[rows]), targets[samples],
                                           reduction="none")
                loss = (losses_i * weight[0]).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses[epoch] += loss.detach()
    return (losses / divisors).tolist()


def _training_tensors(features, targets, device):
    """Normalised views (n_views, n_samples, D) and targets on ``device``."""
    # torch.tensor copies: inputs may be read-only (memmaps) and must not be aliased.
    features = torch.tensor(features, dtype=torch.float32, device=device)
    views = F.normalize(features if features.ndim == 3 else features[None], dim=-1)
    return views, torch.tensor(targets, dtype=torch.long, device=device)


class _TrainingPlan:
    """The batches of every epoch, drawn up front on the CPU and moved to the device once.

    Each epoch draws, from one generator seeded with ``seed``, first the view
    of every sample (with several views), then the batch order (see
    :func:`minibatches`): a seed gives the same batches on every device.
    Batches address the views flattened to (n_views * n_samples, D).

    With ``sample_weight``, every batch carries the weight of each of its
    samples relative to the batch's mean weight, so that the plain mean of
    the scaled losses is the weighted mean. The order is known before any
    step, so a batch whose weights sum to zero is left out of the plan (it
    makes no step); a plan without any step left is an error.
    """

    def __init__(self, views, max_iter, batch_size, seed, sample_weight=None):
        n_views, n_samples = views.shape[:2]
        device = views.device
        generator = torch.Generator().manual_seed(seed)
        chosen, orders = [], []
        for _ in range(max_iter):
            if n_views > 1:
                chosen.append(torch.randint(n_views, (n_samples,), generator=generator))
            orders.append(torch.stack(minibatches(n_samples, batch_size, generator)))
        orders = torch.stack(orders)  # (max_iter, n_batches, batch)
        self.n_batches, self.batch_size = orders.shape[1:]
        self.whole = self.n_batches == 1 and self.batch_size == n_samples
        self.counted_batches = torch.full((max_iter,), float(self.n_batches), device=device)
        self.weights = self.steps = self.whole_weight = None
        if sample_weight is not None:
            self._weigh(orders, torch.as_tensor(sample_weight, dtype=torch.float64), device)
        self.orders = orders.to(device)
        if n_views == 1:
            self.view_rows = None
            self.rows = self.orders
        else:
            # Row of the flattened views that holds sample i's view in each epoch.
            self.view_rows = torch.stack(chosen).to(device) * n_samples
            self.view_rows += torch.arange(n_samples, device=device)
            self.rows = self.view_rows.gather(1, self.orders.flatten(1)).view_as(self.orders)

    def _weigh(self, orders, sample_weight, device):
        batch_weight = sample_weight[orders]
        totals = batch_weight.sum(dim=-1, keepdim=True)
        steps = totals[..., 0] > 0
        if not steps.any():
            n_positive = int((sample_weight > 0).sum())
            raise ValueError(
                "expected at least one batch with a positive total weight; got zero weight "
                f"in every batch of every epoch ({n_positive} of {len(sample_weight)} samples "
                "have a positive weight, and every epoch drops them with the last partial "
                "batch): lower batch_size or weigh more samples"
            )
        relative = torch.where(steps[..., None], batch_weight * self.batch_size / totals, 0.0)
        self.weights = relative.to(torch.float32)[:, :, None, :].to(device)  # (.., 1, batch)
        self.steps = steps.tolist()
        self.counted_batches = steps.sum(dim=1).to(device=device, dtype=torch.float32)
        if self.whole:
            weight = sample_weight * len(sample_weight) / sample_weight.sum()
            self.whole_weight = weight.to(torch.float32)[None].to(device)

    def batches(self, epoch, *, shuffled):
        """``(rows, samples, weight)`` of every batch of ``epoch`` that makes a step.

        ``rows`` index the flattened views and ``samples`` the targets; with
        sample weights, ``weight`` (shape (1, batch)) is every sample's weight
        relative to the batch mean, else None. Unless ``shuffled``, a batch
        that holds the whole set comes in sample order (``samples`` is None,
        and so is ``rows`` with one view).
        """
        if self.whole and not shuffled:
            rows = None if self.view_rows is None else self.view_rows[epoch]
            return [(rows, None, self.whole_weight)]
        if self.weights is None:
            return zip(self.rows[epoch], self.orders[epoch], [None] * self.n_batches,
                       strict=True)
        return [
            (rows, samples, weight)
            for rows, samples, weight, step in zip(
                self.rows[epoch], self.orders[epoch], self.weights[epoch], self.steps[epoch],
                strict=True,
            )
            if step
        ]


def _epochs(learning_rate, max_iter, verbose, losses, divisors):
    """Yield ``(epoch, learning rate)``; a progress bar shows the mean loss of the epoch."""
    with progress(verbose, total=max_iter, desc="Training", unit="epoch") as bar:
        for epoch, rate in enumerate(learning_rate_schedule(learning_rate, max_iter)):
            yield epoch, float(rate)
            if not bar.disable:  # reading the loss waits for the device
                loss = (losses[epoch] / divisors[epoch]).item()
                bar.set_postfix(loss=f"{loss:.4f}", refresh=False)
            bar.update()
    logger.debug("trained %d epochs; final mean loss %.6f", max_iter, losses[-1] / divisors[-1])
