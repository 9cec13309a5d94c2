"""Losses: values against torch references, ignore index, class weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from aerialseg.errors import InputError
from aerialseg.losses import DiceLoss, FocalLoss, build_loss, class_weights


def _batch(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 4, 8, 8, generator=g, requires_grad=True)
    target = torch.randint(0, 4, (2, 8, 8), generator=g)
    target[:, :2] = 255
    return logits, target


def test_ce_matches_torch_with_weights_and_ignore():
    logits, target = _batch()
    w = [1.0, 2.0, 0.5, 1.5]
    expected = F.cross_entropy(logits, target, weight=torch.tensor(w), ignore_index=255)
    assert torch.allclose(build_loss("ce", w)(logits, target), expected)


@pytest.mark.parametrize("name", ["ce", "dice", "focal", "ce+dice", "focal+dice"])
def test_ignored_pixels_get_no_gradient(name):
    logits, target = _batch()
    build_loss(name, [1.0, 2.0, 1.0, 1.0])(logits, target).backward()
    assert torch.all(logits.grad[:, :, :2] == 0)
    assert logits.grad[:, :, 2:].abs().sum() > 0


def test_all_ignored_gives_zero_loss():
    logits, target = _batch()
    target[:] = 255
    for name in ("ce", "focal", "ce+dice"):
        assert float(build_loss(name)(logits, target).detach()) == pytest.approx(0.0, abs=1e-6)


def test_focal_with_gamma_zero_is_cross_entropy():
    logits, target = _batch(1)
    expected = F.cross_entropy(logits, target, ignore_index=255)
    assert torch.allclose(FocalLoss(gamma=0.0)(logits, target), expected, atol=1e-6)
    assert FocalLoss(gamma=2.0)(logits, target) < expected


def test_dice_is_zero_for_a_perfect_prediction_and_high_for_a_wrong_one():
    target = torch.randint(0, 3, (1, 16, 16))
    perfect = F.one_hot(target, 3).permute(0, 3, 1, 2).float() * 50
    assert float(DiceLoss(smooth=0.0)(perfect, target)) == pytest.approx(0.0, abs=1e-5)
    wrong = F.one_hot((target + 1) % 3, 3).permute(0, 3, 1, 2).float() * 50
    assert float(DiceLoss(smooth=0.0)(wrong, target)) > 0.99


def test_class_weights_favour_rare_classes():
    counts = [1000, 100, 10, 0]
    w = class_weights(counts, "inverse_sqrt")
    assert w[0] < w[1] < w[2]
    freq = np.array([1000, 100, 10, 0]) / 1110
    assert float(np.dot(w, np.maximum(freq, 1 / 1110))) == pytest.approx(1.0, rel=1e-3)
    assert max(w) / min(w) <= 10.0 + 1e-6
    assert class_weights(counts, "none") == [1.0] * 4
    with pytest.raises(InputError):
        class_weights(counts, "median")


def test_unknown_loss_is_input_error():
    with pytest.raises(InputError, match="unknown loss"):
        build_loss("hinge")
