"""An independent reference of the official TaskRes training loop (geekyutao/TaskRes on Dassl).

Written from the method's description, not from the package: torch's own
CosineAnnealingLR behind a constant warm-up wrapper with Dassl's stepping
semantics, a plain nn.Parameter, autograd and torch.optim.Adam, one
full batch per epoch.
"""

import warnings

import numpy as np
import torch


class ConstantWarmupThen(torch.optim.lr_scheduler.LRScheduler):
    """Dassl's warm-up semantics: a constant rate for `warmup_epochs`, then `successor` steps."""

    def __init__(self, optimizer, successor, warmup_epochs, warmup_lr):
        self.successor = successor
        self.warmup_epochs = warmup_epochs
        self.warmup_lr = warmup_lr
        super().__init__(optimizer)

    def get_lr(self):
        if self.last_epoch >= self.warmup_epochs:
            return self.successor.get_last_lr()
        return [self.warmup_lr for _ in self.base_lrs]

    def step(self):
        if self.last_epoch >= self.warmup_epochs:
            self.successor.step()
            self._last_lr = self.successor.get_last_lr()
        else:
            super().step()


def reference_rates(learning_rate, max_epoch):
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([parameter], lr=learning_rate)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # stepping schedulers without optimizer steps
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max_epoch)
        scheduler = ConstantWarmupThen(optimizer, cosine, warmup_epochs=1, warmup_lr=1e-5)
        rates = []
        for _ in range(max_epoch):
            rates.append(optimizer.param_groups[0]["lr"])
            scheduler.step()
    return np.array(rates)


def reference_residual(features, targets, base, alpha, scale, lr, epochs, weight_decay,
                       sample_weight=None):
    """The official loop written plainly: full-batch epochs, autograd, torch Adam.

    With ``sample_weight``, the loss is the weighted mean of the per-sample
    cross-entropies, sum(w * loss) / sum(w).
    """
    features = torch.tensor(features)
    targets = torch.tensor(targets)
    weights = None if sample_weight is None else torch.tensor(sample_weight, dtype=torch.float32)
    base = torch.tensor(base)
    residual = torch.nn.Parameter(torch.zeros_like(base))
    optimizer = torch.optim.Adam([residual], lr=lr, betas=(0.9, 0.999),
                                 weight_decay=weight_decay)
    rates = reference_rates(lr, epochs)
    for epoch in range(epochs):
        optimizer.param_groups[0]["lr"] = rates[epoch]
        image = features / features.norm(dim=-1, keepdim=True)
        text = base + alpha * residual
        text = text / text.norm(dim=-1, keepdim=True)
        losses = torch.nn.functional.cross_entropy(scale * image @ text.t(), targets,
                                                   reduction="none")
        loss = losses.mean() if weights is None else (weights * losses).sum() / weights.sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return residual.detach().numpy()
