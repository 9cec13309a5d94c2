"""Optimisers and learning-rate schedules of a training run.

``adamw``: AdamW over all parameters. ``sgd``: SGD with Nesterov momentum 0.9 and three parameter groups,
weight decay only on the weights of convolutions and linear layers (not on biases, nor on the weights of
normalisation layers, whose decay only fights their scale). Schedules: ``onecycle`` and ``cosine`` step
after every batch; ``exponential`` and ``plateau`` (on validation mIoU) after every epoch.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from aerialseg.errors import InputError

NORM_LAYERS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.modules.instancenorm._InstanceNorm)
PER_EPOCH_SCHEDULERS = ("exponential", "plateau")


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Weights with decay, biases without, weights of normalisation layers without (empty groups left out)."""
    decayed: list[nn.Parameter] = []
    biases: list[nn.Parameter] = []
    norms: list[nn.Parameter] = []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            if name == "bias":
                biases.append(p)
            elif isinstance(module, NORM_LAYERS):
                norms.append(p)
            else:
                decayed.append(p)
    groups = [{"params": decayed, "weight_decay": weight_decay}, {"params": biases, "weight_decay": 0.0},
              {"params": norms, "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


def build_optimizer(name: str, model: nn.Module, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """The optimiser ``name`` (adamw | sgd) over ``model``'s parameters."""
    if name == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    if name == "sgd":
        return torch.optim.SGD(parameter_groups(model, weight_decay), lr=lr, momentum=0.9, nesterov=True)
    raise InputError(f"unknown optimizer {name!r}; choose adamw or sgd")


def build_scheduler(
    name: str, optimizer: torch.optim.Optimizer, lr: float, epochs: int, steps: int, decay: float = 0.0,
    patience: int = 5,
) -> Any:
    """The schedule ``name`` over ``epochs`` of ``steps`` batches.

    ``decay``: exponential's factor per epoch (0: the one that reaches 1% of ``lr`` at the last epoch), or
    plateau's factor when validation mIoU stalls for ``patience`` epochs (0: 0.5).
    """
    total = epochs * steps
    if name == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total, pct_start=0.1)
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total, eta_min=lr * 0.01)
    if name == "exponential":
        gamma = decay or 0.01 ** (1 / max(1, epochs - 1))
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=gamma)
    if name == "plateau":
        return torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=decay or 0.5,
                                                          patience=patience)
    raise InputError(f"unknown scheduler {name!r}; choose onecycle, cosine, exponential or plateau")


def step_after_epoch(name: str, scheduler: Any, miou: float | None) -> None:
    """Step an epoch-wise schedule once an epoch is validated (plateau: on its mIoU, when anything was scored)."""
    if name == "exponential":
        scheduler.step()
    elif name == "plateau" and miou is not None:
        scheduler.step(miou)
