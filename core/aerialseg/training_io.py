"""The epoch loop of :mod:`aerialseg.train`.

Validation on whole images, checkpoints, history (CSV, JSON), curves (PNG).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from aerialseg import datasets as ds
from aerialseg.errors import Cancelled
from aerialseg.metrics import confusion_matrix, format_scores, scores
from aerialseg.nets import save_checkpoint
from aerialseg.optimizers import PER_EPOCH_SCHEDULERS, step_after_epoch

log = logging.getLogger(__name__)


def predict_logits(model: nn.Module, image: torch.Tensor, tile: int = 512, overlap: int = 64) -> torch.Tensor:
    """Logits (K, H, W) of a normalised image (C, H, W), by overlapping tiles averaged together."""
    _, h, w = image.shape
    if h <= tile and w <= tile:  # one pass over the whole image, padded to a multiple of 32
        tile = max(32 * math.ceil(h / 32), 32 * math.ceil(w / 32))
        overlap = 0
    ph, pw = max(0, tile - h), max(0, tile - w)
    x = nn.functional.pad(image[None], (0, pw, 0, ph), mode="replicate")[0] if ph or pw else image
    H, W, step = x.shape[1], x.shape[2], tile - overlap
    starts = lambda n: sorted({*range(0, n - tile + 1, step), n - tile})
    out, count = None, torch.zeros(1, H, W, device=image.device)
    for y in starts(H):
        for xx in starts(W):
            logits = model(x[None, :, y : y + tile, xx : xx + tile])[0].float()
            if out is None:
                out = torch.zeros(logits.shape[0], H, W, device=image.device)
            out[:, y : y + tile, xx : xx + tile] += logits
            count[:, y : y + tile, xx : xx + tile] += 1
    assert out is not None
    return (out / count)[:, :h, :w]


@torch.no_grad()
def validate(
    model: nn.Module,
    samples: Sequence[ds.Sample],
    num_classes: int,
    mean: Sequence[float],
    std: Sequence[float],
    tile: int = 512,
    device: str = "cpu",
) -> np.ndarray:
    """Confusion matrix of whole validation images, scored at their native (mask) resolution."""
    model.eval()
    cm = np.zeros((num_classes, num_classes), np.int64)
    m = torch.tensor(mean, device=device)[:, None, None] * 255
    s = torch.tensor(std, device=device)[:, None, None] * 255
    for sample in samples:
        image, _ = ds.load_pair(sample, num_classes)
        mask = ds.read_sample_mask(sample, num_classes)
        x = (torch.from_numpy(np.asarray(image, np.float32)).to(device) - m) / s
        with torch.autocast("cuda", enabled=device == "cuda"):
            logits = predict_logits(model, x, tile)
        if logits.shape[1:] != mask.shape:
            logits = nn.functional.interpolate(logits[None], size=mask.shape, mode="bilinear", align_corners=False)[0]
        cm += confusion_matrix(mask, logits.argmax(0).cpu().numpy(), num_classes)
    return cm


def write_history(out: Path, history: Sequence[dict[str, Any]], class_names: Sequence[str]) -> None:
    """``history.json`` (full), ``history.csv`` (one row per epoch) and ``curves.png``."""
    (out / "history.json").write_text(json.dumps(list(history), indent=1))
    cols = ["epoch", "train_loss", "lr", "seconds", "pixel_accuracy", "miou", "mean_f1"] + [
        f"iou_{n}" for n in class_names
    ]
    with open(out / "history.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(cols)
        for h in history:
            w.writerow([_fmt(h.get(c)) for c in cols])
    _plot(out / "curves.png", history, class_names)


def _fmt(v: Any) -> Any:
    return f"{v:.5g}" if isinstance(v, float) else ("" if v is None else v)


def _plot(path: Path, history: Sequence[dict[str, Any]], class_names: Sequence[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    a.plot(epochs, [h["train_loss"] for h in history], label="train loss")
    a.set_xlabel("epoch")
    a.legend()
    for key in ("pixel_accuracy", "miou"):
        b.plot(epochs, [h.get(key) or np.nan for h in history], label=key, linewidth=2)
    for n in class_names:
        b.plot(epochs, [h.get(f"iou_{n}") or np.nan for h in history], label=f"IoU {n}", linewidth=0.8)
    b.set_xlabel("epoch")
    b.set_ylim(0, 1)
    b.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _train_epoch(ctx: dict[str, Any], epoch: int, bar: Any, should_cancel: Callable[[], bool] | None) -> float:
    model, opt, sched, loss_fn, device = ctx["model"], ctx["optimizer"], ctx["scheduler"], ctx["loss_fn"], ctx["device"]
    data = ctx["data"]
    data.epoch = epoch
    torch.manual_seed(ctx["config"].seed * 1000 + epoch)
    loader = torch.utils.data.DataLoader(
        data, batch_size=ctx["config"].batch_size, shuffle=False, drop_last=True, num_workers=ctx["config"].num_workers
    )
    scaler = ctx["scaler"]
    per_batch = ctx["config"].scheduler not in PER_EPOCH_SCHEDULERS
    model.train()
    losses = []
    for x, y in loader:
        if should_cancel is not None and should_cancel():
            raise Cancelled("training cancelled; the last finished epoch is kept in last.pt")
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        with torch.autocast("cuda", enabled=device == "cuda"):
            loss = loss_fn(model(x), y)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        if per_batch:
            sched.step()
        losses.append(float(loss.detach()))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{np.mean(losses[-20:]):.3f}")
    return float(np.mean(losses)) if losses else math.nan


def _checkpoint(ctx: dict[str, Any], epoch: int, history: list, best: dict[str, Any]) -> dict[str, Any]:
    best_scores = best.get("scores")
    metrics = {"validation": _card_metrics(best_scores), "best_epoch": best.get("epoch")} if best_scores else {}
    return {
        "arch": ctx["arch"],
        "card": ctx["card"](metrics).to_dict(),
        "state_dict": ctx["model"].state_dict(),
        "optimizer": ctx["optimizer"].state_dict(),
        "scheduler": ctx["scheduler"].state_dict(),
        "scaler": ctx["scaler"].state_dict(),
        "epoch": epoch,
        "history": history,
        "best": best,
        "config": ctx["config"].to_dict(),
        "class_weights": ctx["weights"],
    }


def _card_metrics(s: dict[str, Any]) -> dict[str, Any]:
    """Validation scores for the card (no confusion matrix, rounded)."""
    r = lambda v: None if v is None else round(v, 4)
    return {
        "pixel_accuracy": r(s["pixel_accuracy"]),
        "miou": r(s["miou"]),
        "mean_f1": r(s["mean_f1"]),
        "iou": {n: r(c["iou"]) for n, c in s["per_class"].items()},
        "f1": {n: r(c["f1"]) for n, c in s["per_class"].items()},
    }


def run_epochs(
    ctx: dict[str, Any], on_progress: Callable[[float, str], None] | None, should_cancel: Callable[[], bool] | None
) -> dict[str, Any]:
    """Train from the checkpointed epoch (or 0) until the last epoch, early stop or time budget."""
    config, model, state = ctx["config"], ctx["model"], ctx["state"]
    out, names = Path(config.out_dir), [c.name for c in ctx["classes"]]
    ctx["scaler"] = torch.amp.GradScaler("cuda", enabled=ctx["device"] == "cuda")
    history: list[dict[str, Any]] = []
    best: dict[str, Any] = {"miou": -1.0, "epoch": None, "scores": None, "stale": 0}
    start = 0
    if state is not None:
        for key in ("optimizer", "scheduler", "scaler"):
            ctx[key].load_state_dict(state[key])
        model.load_state_dict(state["state_dict"])
        history, best, start = state["history"], state["best"], state["epoch"] + 1
        log.info("resuming %s at epoch %d (best mIoU %.4f at epoch %s)", out, start + 1, best["miou"], best["epoch"])
    t0 = time.time()
    bar = None
    if config.progress:
        from tqdm import tqdm

        bar = tqdm(total=(config.epochs - start) * ctx["steps"], unit="batch", desc="train", dynamic_ncols=True)
    try:
        for epoch in range(start, config.epochs):
            if best["stale"] >= config.patience:
                log.info("early stop: no better validation mIoU for %d epochs", best["stale"])
                break
            te = time.time()
            loss = _train_epoch(ctx, epoch, bar, should_cancel)
            cm = validate(
                model, ctx["val_samples"], len(names), ctx["mean"], ctx["std"], config.val_tile, ctx["device"]
            )
            s = scores(cm, names)
            row = {
                "epoch": epoch + 1,
                "train_loss": loss,
                "lr": ctx["optimizer"].param_groups[0]["lr"],
                "seconds": round(time.time() - te, 1),
                "pixel_accuracy": s["pixel_accuracy"],
                "miou": s["miou"],
                "mean_f1": s["mean_f1"],
                **{f"iou_{n}": c["iou"] for n, c in s["per_class"].items()},
                "confusion_matrix": s["confusion_matrix"],
            }
            history.append(row)
            step_after_epoch(config.scheduler, ctx["scheduler"], s["miou"])  # after "lr" is recorded
            improved = s["miou"] is not None and s["miou"] > best["miou"]  # None: nothing labelled
            best = (
                {"miou": s["miou"], "epoch": epoch + 1, "scores": s, "stale": 0}
                if improved
                else {**best, "stale": best["stale"] + 1}
            )
            ckpt = _checkpoint(ctx, epoch, history, best)
            save_checkpoint(out / "last.pt", ckpt)
            if improved:
                save_checkpoint(out / "best.pt", ckpt)
            write_history(out, history, names)
            log.info(
                "epoch %d/%d loss %.4f acc %.4f mIoU %.4f%s (%.0f s)",
                epoch + 1,
                config.epochs,
                loss,
                s["pixel_accuracy"] or 0,
                s["miou"] or 0,
                " *best*" if improved else "",
                row["seconds"],
            )
            if on_progress is not None:
                on_progress(100.0 * (epoch + 1) / config.epochs, f"epoch {epoch + 1}: mIoU {s['miou'] or 0:.4f}")
            if config.max_minutes is not None and time.time() - t0 > 60 * config.max_minutes:
                log.info("time budget of %s min used; re-run the same command to resume", config.max_minutes)
                break
    finally:
        if bar is not None:
            bar.close()
    if best["scores"]:
        log.info("best epoch %s:\n%s", best["epoch"], format_scores(best["scores"]))
    return {
        "best": best["scores"],
        "best_epoch": best["epoch"],
        "best_checkpoint": str(out / "best.pt") if (out / "best.pt").exists() else None,  # none: nothing scored
        "last_checkpoint": str(out / "last.pt") if (out / "last.pt").exists() else None,
        "history": history,
    }
