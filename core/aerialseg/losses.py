"""Segmentation losses: cross-entropy, Dice, focal and weighted sums of them.

Every loss takes raw logits (N, K, H, W) and integer targets (N, H, W); target pixels equal to
``ignore_index`` contribute nothing (not to the value, not to the gradient).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from aerialseg.errors import InputError
from aerialseg.metrics import IGNORE_INDEX

LOSS_NAMES = ("ce", "dice", "focal", "ce+dice", "focal+dice")


class CrossEntropyLoss(nn.Module):
    """Pixel-wise cross-entropy with optional class weights and an ignore index."""

    weight: torch.Tensor | None

    def __init__(self, weight: torch.Tensor | None = None, ignore_index: int = IGNORE_INDEX) -> None:
        super().__init__()
        self.register_buffer("weight", weight)
        self.ignore_index = ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if not (target != self.ignore_index).any():
            return logits.sum() * 0.0
        return F.cross_entropy(logits.float(), target, weight=self.weight, ignore_index=self.ignore_index)


class FocalLoss(nn.Module):
    """Focal loss (Lin et al. 2017): cross-entropy scaled by ``(1 - p_true) ** gamma``."""

    weight: torch.Tensor | None

    def __init__(
        self, gamma: float = 2.0, weight: torch.Tensor | None = None, ignore_index: int = IGNORE_INDEX
    ) -> None:
        super().__init__()
        self.register_buffer("weight", weight)
        self.gamma, self.ignore_index = gamma, ignore_index

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        valid = target != self.ignore_index
        if not valid.any():
            return logits.sum() * 0.0
        safe = torch.where(valid, target, torch.zeros_like(target))
        logp = F.log_softmax(logits.float(), dim=1).gather(1, safe[:, None])[:, 0]
        loss = -((1 - logp.exp()) ** self.gamma) * logp
        w = self.weight[safe] if self.weight is not None else torch.ones_like(loss)
        w = w * valid
        return (loss * w).sum() / w.sum().clamp_min(1e-8)


class DiceLoss(nn.Module):
    """Soft multi-class Dice loss, ``1 - mean_k dice_k`` over the classes present in the target."""

    def __init__(self, ignore_index: int = IGNORE_INDEX, smooth: float = 1.0) -> None:
        super().__init__()
        self.ignore_index, self.smooth = ignore_index, smooth

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        k = logits.shape[1]
        valid = (target != self.ignore_index)[:, None].float()
        probs = F.softmax(logits.float(), dim=1) * valid
        safe = torch.where(target == self.ignore_index, torch.zeros_like(target), target)
        onehot = F.one_hot(safe, k).permute(0, 3, 1, 2).float() * valid
        dims = (0, 2, 3)
        inter, total = (probs * onehot).sum(dims), probs.sum(dims) + onehot.sum(dims)
        dice = (2 * inter + self.smooth) / (total + self.smooth)
        present = onehot.sum(dims) > 0
        return 1 - (dice[present].mean() if present.any() else dice.mean())


class CombinedLoss(nn.Module):
    """A weighted sum of losses: ``sum(w * loss(logits, target))``."""

    def __init__(self, terms: Sequence[tuple[float, nn.Module]]) -> None:
        super().__init__()
        self.factors = [float(w) for w, _ in terms]
        self.terms = nn.ModuleList([m for _, m in terms])

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return sum(w * m(logits, target) for w, m in zip(self.factors, self.terms))  # type: ignore[return-value]


def build_loss(
    name: str,
    class_weights: Sequence[float] | None = None,
    ignore_index: int = IGNORE_INDEX,
    dice_weight: float = 1.0,
    gamma: float = 2.0,
) -> nn.Module:
    """Build a loss by name: one of ``ce``, ``dice``, ``focal``, ``ce+dice``, ``focal+dice``.

    Args:
        name: Loss name.
        class_weights: Optional per-class weights for the CE / focal term.
        ignore_index: Target value excluded from the loss.
        dice_weight: Factor of the Dice term in the combinations.
        gamma: Focal loss focusing parameter.
    """
    weight = torch.tensor(class_weights, dtype=torch.float32) if class_weights is not None else None
    terms: list[tuple[float, nn.Module]] = []
    for part in name.lower().split("+"):
        if part == "ce":
            terms.append((1.0, CrossEntropyLoss(weight, ignore_index)))
        elif part == "focal":
            terms.append((1.0, FocalLoss(gamma, weight, ignore_index)))
        elif part == "dice":
            terms.append((dice_weight if "+" in name else 1.0, DiceLoss(ignore_index)))
        else:
            raise InputError(f"unknown loss {name!r}; choose one of {', '.join(LOSS_NAMES)}")
    return terms[0][1] if len(terms) == 1 else CombinedLoss(terms)


def class_weights(
    counts: Sequence[int] | np.ndarray, method: str = "inverse_sqrt", max_ratio: float = 10.0
) -> list[float]:
    """Per-class loss weights from pixel counts, normalised to a pixel-weighted mean of 1.

    Args:
        counts: Labelled pixels per class.
        method: ``inverse`` (1/f), ``inverse_sqrt`` (1/sqrt f) or ``none`` (all 1).
        max_ratio: Largest allowed ratio between the biggest and smallest weight.
    """
    c = np.asarray(counts, np.float64)
    if method == "none":
        return [1.0] * len(c)
    if method not in ("inverse", "inverse_sqrt"):
        raise InputError(f"unknown class weighting {method!r}; choose none, inverse or inverse_sqrt")
    freq = np.maximum(c, 1) / max(c.sum(), 1)
    w = 1 / freq if method == "inverse" else 1 / np.sqrt(freq)
    w = np.minimum(w, w.min() * max_ratio)
    w = w / (w * freq).sum()
    return [round(float(v), 4) for v in w]
