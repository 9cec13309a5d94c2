"""Confusion-matrix metrics for segmentation (pure numpy).

``cm[i, j]`` counts pixels whose reference class is ``i`` and predicted class is ``j``. Pixels whose
reference (or prediction) is the ignore value are left out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

IGNORE_INDEX = 255  # reference (mask) value of unlabelled pixels: scored nowhere, learnt from by no loss


def confusion_matrix(
    reference: np.ndarray, prediction: np.ndarray, num_classes: int, ignore_index: int | None = IGNORE_INDEX
) -> np.ndarray:
    """The (K, K) int64 confusion matrix of two same-shaped class-id arrays.

    Pixels where the reference is ``ignore_index`` or either value is outside ``0..K-1`` are skipped.
    """
    ref, pred = np.asarray(reference).ravel().astype(np.int64), np.asarray(prediction).ravel().astype(np.int64)
    if ref.shape != pred.shape:
        raise ValueError(f"reference has {ref.size} pixels but prediction has {pred.size}")
    keep = (ref >= 0) & (ref < num_classes) & (pred >= 0) & (pred < num_classes)
    if ignore_index is not None:
        keep &= ref != ignore_index
    return np.bincount(ref[keep] * num_classes + pred[keep], minlength=num_classes**2).reshape(num_classes, num_classes)


def scores(cm: np.ndarray, class_names: Sequence[str] | None = None) -> dict[str, Any]:
    """Per-class IoU/F1/precision/recall and overall pixel accuracy, mIoU and mean F1 of a confusion matrix.

    Classes absent from both reference and prediction get ``None`` scores and are left out of the means.

    Returns:
        ``{"pixel_accuracy", "miou", "mean_f1", "pixels", "per_class": {name: {...}}, "confusion_matrix"}``.
    """
    cm = np.asarray(cm, np.float64)
    k = cm.shape[0]
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    tp, ref_n, pred_n = np.diag(cm), cm.sum(1), cm.sum(0)
    union = ref_n + pred_n - tp
    per_class: dict[str, dict[str, Any]] = {}
    ious, f1s = [], []
    for i, name in enumerate(names):
        if union[i] == 0:
            per_class[name] = {"iou": None, "f1": None, "precision": None, "recall": None, "support": 0}
            continue
        iou, f1 = tp[i] / union[i], 2 * tp[i] / (ref_n[i] + pred_n[i])
        ious.append(iou)
        f1s.append(f1)
        per_class[name] = {
            "iou": float(iou),
            "f1": float(f1),
            "precision": float(tp[i] / pred_n[i]) if pred_n[i] else 0.0,
            "recall": float(tp[i] / ref_n[i]) if ref_n[i] else 0.0,
            "support": int(ref_n[i]),
        }
    total = cm.sum()
    return {
        "pixel_accuracy": float(tp.sum() / total) if total else None,
        "miou": float(np.mean(ious)) if ious else None,
        "mean_f1": float(np.mean(f1s)) if f1s else None,
        "pixels": int(total),
        "per_class": per_class,
        "confusion_matrix": cm.astype(np.int64).tolist(),
    }


def format_scores(result: dict[str, Any]) -> str:
    """A small text table of ``scores()`` output."""
    lines = [f"{'class':<16}{'IoU':>8}{'F1':>8}{'support':>12}"]
    for name, s in result["per_class"].items():
        iou = "-" if s["iou"] is None else f"{s['iou']:.3f}"
        f1 = "-" if s["f1"] is None else f"{s['f1']:.3f}"
        lines.append(f"{name:<16}{iou:>8}{f1:>8}{s['support']:>12}")
    fmt = lambda v: "-" if v is None else f"{v:.4f}"
    lines.append(
        f"pixel accuracy {fmt(result['pixel_accuracy'])}  mIoU {fmt(result['miou'])}  mean F1 {fmt(result['mean_f1'])}"
    )
    return "\n".join(lines)
