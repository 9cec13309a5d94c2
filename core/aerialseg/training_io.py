"""The epoch loop of :mod:`aerialseg.train`.

Validation on whole images through the inference core (so its scores are the scores ``classify`` gets with
the run's model), checkpoints, history (CSV, JSON), curves (PNG).
"""

from __future__ import annotations

import csv
import json
import logging
import math
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from aerialseg import datasets as ds
from aerialseg.card import ModelCard
from aerialseg.errors import Cancelled
from aerialseg.inference import ArrayTiles, classify_array
from aerialseg.metrics import confusion_matrix, format_scores, scores
from aerialseg.nets import save_checkpoint
from aerialseg.optimizers import PER_EPOCH_SCHEDULERS, step_after_epoch
from aerialseg.options import ClassifyOptions
from aerialseg.raster import card_normalisation
from aerialseg.runtime import Model, TorchModel
from aerialseg.tiling import Block

log = logging.getLogger(__name__)


VALIDATION = ClassifyOptions(resample=False)  # classify's defaults, on each image's own grid


@torch.no_grad()
def validate(model: nn.Module, samples: Sequence[ds.Sample], card: ModelCard, device: str = "cpu") -> np.ndarray:
    """Confusion matrix of whole validation images, each classified as :func:`aerialseg.classify` classifies it
    with ``card`` (its tile size and overlap, the same blending and class decision), at the mask's resolution."""
    net = TorchModel.of_net(model, card, device)
    k = len(card.classes)
    cm = np.zeros((k, k), np.int64)
    for sample in samples:
        for _, classes, mask in validation_blocks(net, sample):
            cm += confusion_matrix(mask, classes, k)
    return cm


def validation_blocks(net: Model, sample: ds.Sample) -> Iterator[tuple[Block, np.ndarray, np.ndarray]]:
    """(block, predicted class ids, mask) of a validation sample, block by block (the predicted classes are
    nodata, 255, where the image has none)."""
    image, mask = ds.load_pair(sample, len(net.card.classes))
    valid = ds.image_validity(sample.image, sample.window, image.shape[1:])
    tiles = ArrayTiles(image, np.ones(image.shape[1:], bool) if valid is None else valid, *card_normalisation(net.card))
    for block, classes in classify_array(net, tiles, VALIDATION):
        yield block, classes, mask[block.y0 : block.y0 + block.height, block.x0 : block.x0 + block.width]


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


def _train_epoch(ctx: dict[str, Any], epoch: int, should_cancel: Callable[[], bool] | None) -> float:
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
    return float(np.mean(losses)) if losses else math.nan


def _checkpoint(ctx: dict[str, Any], epoch: int, history: list, best: dict[str, Any],
                scores_now: dict[str, Any]) -> dict[str, Any]:
    """The checkpoint of epoch ``epoch`` (0-based); its card carries the validation scores of its own weights."""
    metrics = {"validation": _card_metrics(scores_now), "epoch": epoch + 1,
               "best_epoch": best.get("epoch")} if scores_now["miou"] is not None else {}
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


def _epoch(ctx: dict[str, Any], epoch: int, history: list[dict[str, Any]], best: dict[str, Any],
           should_cancel: Callable[[], bool] | None) -> dict[str, Any]:
    """Train one epoch, validate, checkpoint, write the history and log the scores; returns the new best."""
    config, out, names = ctx["config"], Path(ctx["config"].out_dir), [c.name for c in ctx["classes"]]
    te = time.time()
    loss = _train_epoch(ctx, epoch, should_cancel)
    s = scores(validate(ctx["model"], ctx["val_samples"], ctx["card"]({}), ctx["device"]), names)
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
    best = {"miou": s["miou"], "epoch": epoch + 1, "scores": s, "stale": 0} if improved else {
        **best, "stale": best["stale"] + 1}
    ckpt = _checkpoint(ctx, epoch, history, best, s)
    save_checkpoint(out / "last.pt", ckpt)
    if improved:
        save_checkpoint(out / "best.pt", ckpt)
    write_history(out, history, names)
    log.info("epoch %d/%d loss %.4f acc %.4f mIoU %.4f%s (%.0f s)", epoch + 1, config.epochs, loss,
             s["pixel_accuracy"] or 0, s["miou"] or 0, " *best*" if improved else "", row["seconds"])
    return best


def run_epochs(
    ctx: dict[str, Any], on_progress: Callable[[int, int], None] | None, should_cancel: Callable[[], bool] | None
) -> dict[str, Any]:
    """Train from the checkpointed epoch (or 0) until the last epoch, early stop or time budget; after each epoch
    ``on_progress(epochs done, epochs in total)``."""
    config, model, state = ctx["config"], ctx["model"], ctx["state"]
    out = Path(config.out_dir)
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
    for epoch in range(start, config.epochs):
        if best["stale"] >= config.patience:
            log.info("early stop: no better validation mIoU for %d epochs", best["stale"])
            break
        best = _epoch(ctx, epoch, history, best, should_cancel)
        if on_progress is not None:
            on_progress(epoch + 1, config.epochs)
        if config.max_minutes is not None and time.time() - t0 > 60 * config.max_minutes:
            log.info("time budget of %s min used; re-run the same command to resume", config.max_minutes)
            break
    if best["scores"]:
        log.info("best epoch %s:\n%s", best["epoch"], format_scores(best["scores"]))
    return {
        "best": best["scores"],
        "best_epoch": best["epoch"],
        "best_checkpoint": str(out / "best.pt") if (out / "best.pt").exists() else None,  # none: nothing scored
        "last_checkpoint": str(out / "last.pt") if (out / "last.pt").exists() else None,
        "history": history,
    }
