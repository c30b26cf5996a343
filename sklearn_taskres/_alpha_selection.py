"""Choosing how far to move from zero-shot: the residual's strength from the training labels.

``alpha="auto"`` scores every candidate strength, zero-shot (alpha 0) among
them, by cross-validation on the training labels alone, and keeps the best.
The residuals of every (fold, candidate) pair are trained at once, as one
batched tensor problem with the recipe of :func:`~._training.train_residual`,
so that the choice costs a few fixed fits rather than folds x candidates.

Pure functions: arrays in, arrays out. They know nothing about scikit-learn.
"""

import math

import numpy as np
import torch
import torch.nn.functional as F

from ._training import (
    ADAM_BETAS,
    ADAM_EPS,
    _training_tensors,
    _TrainingPlan,
    learning_rate_schedule,
)

#: The strengths ``alpha="auto"`` chooses from; 0 is zero-shot (the base alone).
AUTO_ALPHAS = (0.0, 0.05, 0.1, 0.25, 0.5, 1.0)
#: At most this many folds; fewer when the smallest class has fewer samples.
MAX_FOLDS = 4
#: A larger strength must lower the held-out log-loss by more than this, times the logit
#: scale (0.5 nats at CLIP's 100), to be kept.
LOSS_MARGIN = 0.005
#: With one label in a class: how far above zero-shot's (times the logit scale) the
#: pessimistic held-out log-loss of a strength may be.
ONE_LABEL_TOLERANCE = 1 / 30


def validation_folds(targets, weights, *, max_folds=MAX_FOLDS, seed=0):
    """The fold of every sample: stratified where the classes allow it.

    The number of folds is the size of the smallest class that has a
    positive weight, at least 2 and at most ``max_folds``; ``max_folds``
    when a class has a single label. The classes, in a random order, and
    the samples of each, shuffled, are dealt to the folds in turn, so that
    every class is spread evenly and the folds differ in size by one at most.
    A class with fewer samples than folds (one label per class, say) is then
    absent from the training side of the fold that holds its sample out:
    that fold asks whether the residual learned from the other classes keeps
    the class's zero-shot row right.

    Parameters
    ----------
    targets : ndarray of shape (n_samples,)
        Class index of every sample.
    weights : ndarray of shape (n_samples,) or None
        Sample weights; samples of zero weight are dealt to folds too but
        count nowhere.
    max_folds : int, default=MAX_FOLDS
    seed : int, default=0

    Returns
    -------
    folds : ndarray of shape (n_samples,), int
        The fold of every sample, ``0 .. n_folds - 1``.
    n_folds : int
    """
    rng = np.random.RandomState(seed)
    targets = np.asarray(targets)
    positive = np.ones(len(targets), bool) if weights is None else np.asarray(weights) > 0
    counts = np.bincount(targets[positive])
    smallest = counts[counts > 0].min() if positive.any() else 1
    # With one label in a class, any number of folds leaves it out of one
    # training side: take the most folds, so that each trains on the most classes.
    n_folds = int(min(max_folds, smallest if smallest >= 2 else max_folds, len(targets)))
    n_folds = max(n_folds, 2)
    folds = np.empty(len(targets), dtype=np.int64)
    dealt = rng.randint(n_folds)
    for label in rng.permutation(np.unique(targets)):
        members = rng.permutation(np.flatnonzero(targets == label))
        folds[members] = (dealt + np.arange(len(members))) % n_folds
        dealt += len(members)
    return folds, n_folds


def select_alpha(
    features,
    targets,
    base,
    *,
    alphas=AUTO_ALPHAS,
    logit_scale,
    learning_rate,
    max_iter,
    batch_size,
    weight_decay,
    seed,
    device,
    sample_weight=None,
    max_folds=MAX_FOLDS,
):
    """The residual strength among ``alphas`` with the best cross-validated accuracy.

    Every fold trains a residual per non-zero candidate on the other folds
    with the recipe of :func:`~._training.train_residual`, all at once;
    every sample is scored once, by the residuals that did not see it.
    Alpha 0 needs no training: its held-out score is the base's score on
    every sample. The scores are the weighted accuracy and log-loss
    (``sample_weight``, class weights included); :func:`choose` keeps the
    most accurate strength, the nearest zero-shot unless a larger one is
    clearly better in log-loss; with a single label in some class, a
    pessimistic bound scaled by zero-shot's error on the labels.

    Parameters
    ----------
    features : ndarray of shape (n_samples, n_features) or (n_views, n_samples, n_features)
        Image embeddings; with several views, training draws one per epoch
        and scoring uses the first.
    targets : ndarray of shape (n_samples,)
    base : ndarray of shape (n_classes, n_features)
    alphas : sequence of float, default=AUTO_ALPHAS
    logit_scale, learning_rate, max_iter, batch_size, weight_decay, seed, device
        The training recipe, as in :func:`~._training.train_residual`.
    sample_weight : ndarray of shape (n_samples,), default=None
    max_folds : int, default=MAX_FOLDS

    Returns
    -------
    alpha : float
        The chosen strength.
    scores : dict
        ``{alpha: (accuracy, log_loss)}`` of every candidate, held out.
    """
    alphas = [float(alpha) for alpha in alphas]
    n_samples = len(targets)
    weights = (np.ones(n_samples) if sample_weight is None
               else np.asarray(sample_weight, dtype=np.float64))
    folds, n_folds = validation_folds(targets, weights, max_folds=max_folds, seed=seed)
    trained = [alpha for alpha in alphas if alpha > 0]
    problems = [(fold, alpha) for fold in range(n_folds) for alpha in trained]
    views, target_tensor = _training_tensors(features, targets, device)
    base_tensor = torch.tensor(base, dtype=torch.float32, device=device)

    log_proba = {}  # alpha -> (n_samples, n_classes) held-out log-probabilities
    with torch.no_grad():
        zero_shot = cosine_log_proba(views[0], base_tensor[None], logit_scale)[0]
    if 0.0 in alphas:
        log_proba[0.0] = zero_shot.cpu().numpy()
    if problems:
        train_weight = np.stack([np.where(folds == fold, 0.0, weights)
                                 for fold, _ in problems])
        residuals = train_residuals(
            views, target_tensor, base_tensor,
            alphas=[alpha for _, alpha in problems],
            sample_weight=train_weight,
            logit_scale=logit_scale, learning_rate=learning_rate, max_iter=max_iter,
            batch_size=batch_size, weight_decay=weight_decay, seed=seed,
        )
        alpha_column = torch.tensor([alpha for _, alpha in problems], device=device)
        with torch.no_grad():
            classifiers = base_tensor + alpha_column[:, None, None] * residuals
            held_out = cosine_log_proba(views[0], classifiers, logit_scale).cpu().numpy()
        for alpha in trained:
            log_proba[alpha] = np.empty_like(log_proba.get(0.0, held_out[0]))
        for p, (fold, alpha) in enumerate(problems):
            rows = folds == fold
            log_proba[alpha][rows] = held_out[p][rows]

    rows = np.arange(n_samples)
    total = weights.sum()
    scores = {}
    for alpha in alphas:
        predicted = log_proba[alpha].argmax(axis=1)
        accuracy = float(np.sum(weights * (predicted == targets)) / total)
        loss = float(-np.sum(weights * log_proba[alpha][rows, targets]) / total)
        scores[alpha] = (accuracy, loss)
    one_label = _smallest_class(targets, weights) < 2
    return choose(scores, one_label=one_label, logit_scale=logit_scale), scores


def choose(scores, *, one_label, logit_scale=100.0):
    """The strength to keep, from the held-out ``{alpha: (accuracy, log_loss)}``.

    Losses are compared in units of ``logit_scale`` (a confident mistake
    costs about ``logit_scale`` times a cosine gap, in nats).

    - The most accurate candidates are kept, and among them the smallest
      (the nearest zero-shot) unless a larger one lowers the held-out
      log-loss by more than :data:`LOSS_MARGIN` times ``logit_scale``.
    - With one label in some class (``one_label``), the fold that holds a
      label out trains without its class, so held-out scores are
      pessimistic for every alpha > 0. The candidates are then those whose
      held-out loss is at most :data:`ONE_LABEL_TOLERANCE` times
      ``logit_scale`` above zero-shot's, and, in the spirit of CLAP's
      class-adaptive constraint, the distance allowed shrinks with how well
      zero-shot already labels the training images: the largest of them is
      scaled by ``1 - zero-shot accuracy`` and rounded down to a candidate.
    """
    alphas = sorted(scores)
    if one_label:
        tolerance = ONE_LABEL_TOLERANCE * logit_scale
        reference = alphas[0]
        bound = max(alpha for alpha in alphas
                    if scores[alpha][1] <= scores[reference][1] + tolerance)
        cap = (1.0 - scores[reference][0]) * bound
        return max(alpha for alpha in alphas if alpha <= cap + 1e-9)
    top = max(scores[alpha][0] for alpha in alphas)
    kept = [alpha for alpha in alphas if scores[alpha][0] >= top]
    reference = kept[0]
    lowest = min(kept, key=lambda alpha: (scores[alpha][1], alpha))
    if scores[lowest][1] < scores[reference][1] - LOSS_MARGIN * logit_scale:
        return lowest
    return reference


def _smallest_class(targets, weights):
    counts = np.bincount(targets[weights > 0])
    return counts[counts > 0].min() if (weights > 0).any() else 0


def cosine_log_proba(features, classifiers, logit_scale):
    """Log-softmax of ``logit_scale * cos`` for a stack of classifiers: (P, n_samples, K)."""
    logits = logit_scale * torch.matmul(features, F.normalize(classifiers, dim=-1).transpose(1, 2))
    return logits.log_softmax(dim=-1)


def _batch_terms(image, labels, weight, batch):
    """A batch's features, labels, weights relative to each problem's batch mean, and steps.

    ``active`` (P, 1, 1) marks the problems with weight in the batch; None
    when every problem has some.
    """
    totals = weight.sum(dim=1)
    relative = (weight * (batch / totals.clamp_min(1e-30))[:, None])[:, None, :]
    positive = totals > 0
    active = None if bool(positive.all()) else positive.float()[:, None, None]
    return image, labels, relative, active


def train_residuals(
    views,
    targets,
    base,
    *,
    alphas,
    sample_weight,
    logit_scale,
    learning_rate,
    max_iter,
    batch_size,
    weight_decay,
    seed,
):
    """Train one TaskRes residual per row of ``sample_weight``, all at once.

    The step of :func:`~._training.train_residual` (the hand-derived gradient
    through the normalised classifier, Adam with coupled weight decay in
    place, the warm-up and cosine schedule) on a stack of P problems that
    share the features and the batch order and differ in their strength and
    their sample weights (zero for the samples a problem holds out). A
    problem whose weights in a batch sum to zero makes no step there, and
    its Adam bias correction counts only its own steps.

    Parameters
    ----------
    views : tensor of shape (n_views, n_samples, n_features)
        Normalised embeddings.
    targets : tensor of shape (n_samples,)
    base : tensor of shape (n_classes, n_features)
    alphas : sequence of float, length P
    sample_weight : ndarray of shape (P, n_samples)

    Returns
    -------
    residuals : tensor of shape (P, n_classes, n_features)
    """
    device = views.device
    n_views, n_samples, n_features = views.shape
    n_problems, n_classes = len(alphas), len(base)
    plan = _TrainingPlan(views, max_iter, batch_size, seed)
    flat_views = views.flatten(0, 1)
    one_hot = F.one_hot(targets, n_classes).T.float()  # (n_classes, n_samples)
    weight_all = torch.tensor(sample_weight, dtype=torch.float32, device=device)

    alpha = torch.tensor(alphas, dtype=torch.float32, device=device)[:, None, None]
    residual = torch.zeros(n_problems, n_classes, n_features, device=device)
    exp_avg = torch.zeros_like(residual)
    exp_avg_sq = torch.zeros_like(residual)
    steps = torch.zeros(n_problems, 1, 1, device=device)
    ones = torch.ones_like(steps)
    beta1, beta2 = ADAM_BETAS
    batch = plan.batch_size
    radial_factor = alpha / (batch * logit_scale**2)
    grad_factor = alpha / batch
    # The few-label case: one batch of every sample, one view, weight in every
    # problem. The batch is the same each epoch (its order cannot change the
    # mean gradient) and every problem steps every time: all is set up once.
    whole = plan.whole and n_views == 1 and bool((weight_all.sum(dim=1) > 0).all())
    if whole:
        fixed = _batch_terms(views[0], one_hot, weight_all, batch)

    step = 0
    for epoch, rate in enumerate(learning_rate_schedule(learning_rate, max_iter)):
        batches = ([(None, None)] if whole
                   else zip(plan.rows[epoch], plan.orders[epoch], strict=True))
        for rows, samples in batches:
            if whole:
                image, labels, relative, active = fixed
            else:
                image, labels, relative, active = _batch_terms(
                    flat_views[rows], one_hot[:, samples], weight_all[:, samples], batch)

            classifier = torch.addcmul(base, alpha, residual)  # (P, K, D)
            norm = torch.linalg.vector_norm(classifier, dim=2, keepdim=True).clamp_min_(1e-12)
            scale = norm.reciprocal_().mul_(logit_scale)  # (P, K, 1)
            logits = torch.matmul(classifier, image.T).mul_(scale)  # (P, K, batch)
            grad_logits = logits.softmax(dim=1).sub_(labels).mul_(relative)
            radial = (grad_logits * logits).sum(dim=2, keepdim=True)  # (P, K, 1)
            grad = torch.matmul(grad_logits.mul_(scale), image).mul_(grad_factor)
            grad.sub_(classifier.mul_(radial.mul_(scale.square_()).mul_(radial_factor)))
            grad.add_(residual, alpha=weight_decay)

            if whole:  # every problem steps every time: Adam's scalars are Python floats
                step += 1
                exp_avg.lerp_(grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                root_bias_correction2 = math.sqrt(1 - beta2**step)
                step_size = float(rate) * root_bias_correction2 / (1 - beta1**step)
                denom = exp_avg_sq.sqrt().add_(ADAM_EPS * root_bias_correction2)
                residual.addcdiv_(exp_avg, denom, value=-step_size)
                continue
            if active is None:
                active = ones
            steps += active
            exp_avg.lerp_(grad, (1 - beta1) * active)
            exp_avg_sq.mul_(1 - (1 - beta2) * active).addcmul_(grad, grad * active,
                                                              value=1 - beta2)
            counted = steps.clamp_min(1)
            root_bias_correction2 = torch.sqrt(1 - beta2**counted)
            step_size = float(rate) * root_bias_correction2 / (1 - beta1**counted) * active
            denom = exp_avg_sq.sqrt() + ADAM_EPS * root_bias_correction2
            residual -= step_size * exp_avg / denom
    return residual

