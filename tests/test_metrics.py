"""Confusion-matrix metrics against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from aerialseg.metrics import confusion_matrix, format_scores, scores


def test_confusion_matrix_by_hand():
    ref = np.array([[0, 0, 1], [1, 2, 255]])
    pred = np.array([[0, 1, 1], [2, 2, 0]])
    cm = confusion_matrix(ref, pred, 3)
    assert cm.tolist() == [[1, 1, 0], [0, 1, 1], [0, 0, 1]]  # the 255 reference pixel is skipped


def test_out_of_range_predictions_are_skipped():
    cm = confusion_matrix(np.array([0, 1, 1]), np.array([0, -1, 7]), 2)
    assert cm.tolist() == [[1, 0], [0, 0]]


def test_scores_by_hand():
    cm = np.array([[1, 1, 0], [0, 1, 1], [0, 0, 1]])
    s = scores(cm, ["a", "b", "c"])
    assert s["pixel_accuracy"] == pytest.approx(3 / 5)
    # IoU: a 1/(2+1-1)=1/2, b 1/(2+2-1)=1/3, c 1/(1+2-1)=1/2
    assert s["per_class"]["a"]["iou"] == pytest.approx(0.5)
    assert s["per_class"]["b"]["iou"] == pytest.approx(1 / 3)
    assert s["miou"] == pytest.approx((0.5 + 1 / 3 + 0.5) / 3)
    assert s["per_class"]["b"]["f1"] == pytest.approx(2 * 1 / (2 + 2))
    assert s["per_class"]["c"]["precision"] == pytest.approx(0.5) and s["per_class"]["c"]["recall"] == 1.0
    assert s["confusion_matrix"] == cm.tolist() and s["pixels"] == 5
    assert "mIoU 0.4444" in format_scores(s)


def test_absent_class_is_left_out_of_the_means():
    cm = np.array([[4, 0, 0], [0, 0, 0], [1, 0, 5]])
    s = scores(cm)
    assert s["per_class"]["1"]["iou"] is None and s["per_class"]["1"]["support"] == 0
    assert s["miou"] == pytest.approx((4 / 5 + 5 / 6) / 2)


def test_empty_matrix_has_no_scores():
    s = scores(np.zeros((2, 2), np.int64))
    assert s["pixel_accuracy"] is None and s["miou"] is None
