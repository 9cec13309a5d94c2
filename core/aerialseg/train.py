"""Training: a segmentation network (any segmentation-models-pytorch architecture) from image + mask pairs.

``train(TrainConfig(...))`` writes into ``out_dir``: ``last.pt`` (every epoch; re-running the same
command resumes from it), ``best.pt`` (best validation mIoU), ``history.csv``/``history.json``
(per-epoch metrics), ``curves.png`` and ``config.json``. A checkpoint is a dict with ``arch``
(see :func:`build_model`), ``card`` (a :class:`ModelCard` dict), ``state_dict`` (the network returns
logits) and the optimiser, scheduler, epoch and early-stopping state.

``load_config("recipe.toml", {"out_dir": "runs/x", "epochs": 10})`` reads a TOML recipe as the command line
does. Command line: ``aerialseg train --help`` (:mod:`aerialseg.cli.train`, options generated from
:class:`TrainConfig`'s fields).
"""

from __future__ import annotations

import json
import logging
import math
import random
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aerialseg import datasets as ds
from aerialseg.card import FALLBACK_COLOURS, ClassInfo, ModelCard
from aerialseg.errors import InputError
from aerialseg.losses import LOSS_NAMES, build_loss, class_weights
from aerialseg.nets import DECODER_CHANNEL_ARCHITECTURES, build_model, check_architecture, load_checkpoint
from aerialseg.optimizers import build_optimizer, build_scheduler
from aerialseg.presets import read_class_colours
from aerialseg.splits import stratified_split
from aerialseg.trainconfig import TrainConfig, load_config

__all__ = ["TrainConfig", "check_config", "load_config", "make_card", "train"]

log = logging.getLogger(__name__)
# Fields that may change between a run and its resumption (they do not change what is computed).
_RUNTIME_FIELDS = {"max_minutes", "num_workers", "threads", "device", "progress"}


def _arch(config: TrainConfig, num_classes: int) -> dict[str, Any]:
    arch = {
        "name": config.arch,
        "encoder": config.encoder,
        "encoder_depth": config.encoder_depth,
        "in_channels": 3,
        "classes": num_classes,
    }
    if config.arch in DECODER_CHANNEL_ARCHITECTURES:
        arch["decoder_channels"] = list(config.decoder_channels)
    return arch


def _data(config: TrainConfig) -> tuple[list[ds.Sample], list[ds.Sample], tuple[ClassInfo, ...]]:
    """Training samples, validation samples and classes of the configured data set."""
    scales = {str(k): float(v) for k, v in config.tile_scales}
    if config.dataset == "dubai":
        ts = {int(k): v for k, v in scales.items()} | {
            int(t): config.scale for t in (*config.train_split, *config.val_split) if t not in scales
        }
        get = lambda split: ds.dubai_samples(config.data_root, [int(t) for t in split], ts)
        return get(config.train_split), get(config.val_split), ds.DUBAI_CLASSES
    if config.dataset == "landcoverai":
        get = lambda split: ds.landcoverai_samples(config.data_root, split[0], config.scale)
        return get(config.train_split), get(config.val_split), ds.LANDCOVERAI_CLASSES
    if config.dataset == "potsdam":
        get = lambda split: ds.potsdam_samples(config.data_root, split, config.scale)
        return get(config.train_split), get(config.val_split), ds.POTSDAM_CLASSES
    if config.dataset == "folder":
        classes = _folder_classes(config)
        colours = classes if config.class_colours else None
        train = ds.folder_samples(config.images, config.masks, config.scale, colours)
        if not config.val_images:
            return (*_split(config, train, len(classes)), classes)
        return train, ds.folder_samples(config.val_images, config.val_masks, config.scale, colours), classes
    if config.dataset == "vector":
        classes = _named_classes(config)
        labels = _vector_labels(config)
        train = ds.vector_samples(config.images, labels, config.scale)
        if not config.val_images:
            return (*_split(config, train, len(classes)), classes)
        return train, ds.vector_samples(config.val_images, labels, config.scale), classes
    raise InputError(f"unknown data set {config.dataset!r}; choose dubai, landcoverai, potsdam, folder or vector")


def _split(config: TrainConfig, samples: list[ds.Sample], k: int) -> tuple[list[ds.Sample], list[ds.Sample]]:
    """Training and validation parts of data without validation images (``--split``)."""
    if config.split == "stratified":
        return stratified_split(samples, k, config.val_fraction, config.seed)
    return ds.hold_out_rows(samples, config.val_fraction)


def _folder_classes(config: TrainConfig) -> tuple[ClassInfo, ...]:
    """Classes of a folder data set: from --class-colours (names and colours), else --class-names."""
    if not config.class_colours:
        return _named_classes(config)
    classes = read_class_colours(config.class_colours)
    if config.class_names and list(config.class_names) != [c.name for c in classes]:
        raise InputError(f"--class-names differ from the names in --class-colours {config.class_colours}; "
                         "leave --class-names out (the CSV names the classes)")
    return classes


def _named_classes(config: TrainConfig) -> tuple[ClassInfo, ...]:
    if len(config.class_names) < 2:
        raise InputError(f"a {config.dataset} data set needs at least two class names (--class-names a,b,...)")
    return tuple(
        ClassInfo(i, n, FALLBACK_COLOURS[i % len(FALLBACK_COLOURS)]) for i, n in enumerate(config.class_names)
    )


def _vector_labels(config: TrainConfig) -> ds.VectorLabels:
    if not config.images or not config.labels or not config.label_field:
        raise InputError("a vector data set needs --images (a raster or folder), --labels (polygons) and --label-field")
    names = [n.lower() for n in config.class_names]
    if config.unlabelled != "ignore" and config.unlabelled.lower() not in names:
        raise InputError(f"--unlabelled must be 'ignore' or one of the classes {', '.join(config.class_names)}")
    unlabelled = ds.IGNORE_INDEX if config.unlabelled == "ignore" else names.index(config.unlabelled.lower())
    return ds.VectorLabels(
        Path(config.labels), config.label_field, tuple(config.class_names), config.label_layer or None, unlabelled
    )


def make_card(
    config: TrainConfig,
    classes: Sequence[ClassInfo],
    mean: Sequence[float],
    std: Sequence[float],
    metrics: dict[str, Any] | None = None,
    output: str = "logits",
) -> ModelCard:
    """The model card of a run (``output`` is "logits" for the checkpoint, "probabilities" once exported)."""
    arch = f"{config.arch} {config.encoder} depth {config.encoder_depth}"
    if config.arch == "unet":
        arch += f" decoder {list(config.decoder_channels)}"
    return ModelCard(
        name=config.name,
        classes=tuple(classes),
        bands=(1, 2, 3),
        scale=255.0,
        mean=tuple(mean),
        std=tuple(std),
        gsd_m=config.gsd_m,
        tile_size=config.tile_size,
        overlap=config.overlap,
        output=output,
        architecture=arch,
        description=config.description,
        licence=config.licence,
        training_data=config.training_data,
        metrics=metrics or {},
    )


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _check_resumable(config: TrainConfig, saved: dict[str, Any]) -> None:
    defaults = TrainConfig(out_dir="").to_dict()  # runs saved before a field existed used its default
    old, new = saved, config.to_dict()
    diff = sorted(k for k in new if k not in _RUNTIME_FIELDS and old.get(k, defaults[k]) != new[k])
    if diff:
        raise InputError(
            f"{config.out_dir} holds a run with other settings ({', '.join(diff)}); "
            "use the same options to resume, or another --out"
        )


def _init_checkpoint(config: TrainConfig, num_classes: int) -> dict[str, Any]:
    """The checkpoint named by ``--init-weights``, checked to hold the configured architecture."""
    path = Path(config.init_weights)
    if not path.is_file():
        raise InputError(f"--init-weights: {path} does not exist")
    init = load_checkpoint(path)
    want = _arch(config, num_classes)
    if init.get("arch") != want:
        raise InputError(f"--init-weights: {path} holds {init.get('arch')}, not the configured {want}")
    return init


def _check_init_classes(init: dict[str, Any], classes: tuple[ClassInfo, ...]) -> None:
    """The starting weights must predict the same classes in the same order."""
    have = [c.get("name") for c in init.get("card", {}).get("classes", [])]
    if have != [c.name for c in classes]:
        raise InputError(
            f"--init-weights: the checkpoint's classes {have} are not this data set's {[c.name for c in classes]}"
        )


def train(
    config: TrainConfig,
    on_progress: Callable[[int, int], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Train (or resume) the run described by ``config``; returns the best validation scores and paths.

    ``on_progress(epochs done, epochs in total)`` is called after each epoch (its scores go to the log);
    ``should_cancel()`` is polled every batch (:class:`Cancelled`; the last finished epoch stays in last.pt).
    """
    check_config(config)
    check_architecture(config.arch, config.encoder)  # a typo fails now, not after reading the data
    out = Path(config.out_dir)
    created = [p for p in (out, *out.parents) if not p.exists()]  # folders this run makes
    out.mkdir(parents=True, exist_ok=True)
    try:
        return _train(config, out, on_progress, should_cancel)
    except BaseException:
        if created and not (out / "last.pt").exists():  # failed before its first epoch: leave no empty run
            shutil.rmtree(created[-1], ignore_errors=True)
        raise


def check_config(config: TrainConfig) -> None:
    """Raise InputError, naming the option, for settings no run can use (before anything is written)."""
    if not config.out_dir:
        raise InputError("--out is required: the run folder (new, or a run to resume)")
    counts = {"--epochs": config.epochs, "--batch-size": config.batch_size, "--chip": config.chip,
              "--chips-per-epoch": config.chips_per_epoch, "--patience": config.patience,
              "--threads": config.threads}
    for option, value in counts.items():
        if value < 1:
            raise InputError(f"{option} must be at least 1, got {value}")
    if config.max_minutes is not None and not config.max_minutes >= 0:  # 0: stop after one epoch
        raise InputError(f"--max-minutes must be 0 or more minutes, got {config.max_minutes}")
    if not 0 < config.val_fraction < 1:
        raise InputError(f"--val-fraction must be between 0 and 1 (exclusive), got {config.val_fraction}")
    if not (math.isfinite(config.lr) and config.lr > 0):
        raise InputError(f"--lr must be a positive number, got {config.lr}")
    if config.class_colours and config.dataset != "folder":
        raise InputError(f"--class-colours is for --dataset folder (colour masks), not {config.dataset}")
    if config.split != "rows" and config.dataset not in ("folder", "vector"):
        raise InputError(f"--split {config.split} is for folder and vector data; {config.dataset} has its own splits")
    if config.lr_patience < 0:
        raise InputError(f"--lr-patience must be 0 or more epochs, got {config.lr_patience}")
    if not 0 <= config.lr_decay < 1:
        raise InputError(f"--lr-decay must be 0 (automatic) or a factor below 1, got {config.lr_decay}")
    if Path(config.out_dir).exists() and not Path(config.out_dir).is_dir():
        raise InputError(f"--out {config.out_dir} is a file; give a folder for the run (new, or a run to resume)")


def _check_labels(counts: np.ndarray, config: TrainConfig, k: int) -> None:
    """Refuse training data whose masks hold no pixel of any class (it would train on nothing)."""
    if counts.sum() == 0:
        where = config.masks or config.labels or config.data_root or config.images
        raise InputError(f"the masks in {where} hold no pixel of the classes 0..{k - 1}: every value lies outside "
                         "them; check the masks (class ids, or colours for the data set) and --class-names")


def _train(
    config: TrainConfig,
    out: Path,
    on_progress: Callable[[int, int], None] | None,
    should_cancel: Callable[[], bool] | None,
) -> dict[str, Any]:
    from aerialseg.training_io import run_epochs

    torch.set_num_threads(config.threads)
    device = "cuda" if config.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu"
    if config.device == "cuda" and device != "cuda":
        raise InputError("device 'cuda' requested but torch sees no CUDA GPU; use --device cpu")
    last = out / "last.pt"
    state = load_checkpoint(last) if last.exists() else None
    if state is not None:
        _check_resumable(config, state["config"])
    train_samples, val_samples, classes = _data(config)
    k = len(classes)
    init = _init_checkpoint(config, k) if state is None and config.init_weights else None
    if init is not None:
        _check_init_classes(init, classes)
    if state is not None:
        mean, std = state["card"]["mean"], state["card"]["std"]
    elif init is not None:
        mean, std = init["card"]["mean"], init["card"]["std"]
    elif config.mean:
        mean, std = config.mean, config.std
    else:
        mean, std = ds.channel_stats(train_samples)
    jitter: tuple[float, float] = tuple(config.scale_jitter)  # type: ignore[assignment]
    aug = ds.Augment(jitter, True, config.brightness, config.contrast, config.colour, config.blur)
    cache = sum(h * w for h, w in map(ds.sample_shape, train_samples)) < 200e6
    data = ds.ChipDataset(
        train_samples, k, config.chip, config.chips_per_epoch, mean, std, augment=aug, seed=config.seed, cache=cache
    )
    counts = ds.class_pixel_counts(
        [m for _, m in data.pairs] if data.pairs else [data[i][1].numpy().astype(np.uint8) for i in range(64)], k
    )
    _check_labels(counts, config, k)
    weights = state["class_weights"] if state else class_weights(counts, config.class_weighting)
    _seed_everything(config.seed)
    arch = _arch(config, k)
    model = build_model(arch)
    if init is not None:
        model.load_state_dict(init["state_dict"])
        log.info("starting from the weights of %s", config.init_weights)
    model = model.to(device)
    if config.loss not in LOSS_NAMES:
        raise InputError(f"unknown loss {config.loss!r}; choose one of {', '.join(LOSS_NAMES)}")
    loss_fn = build_loss(config.loss, weights).to(device)
    optimizer = build_optimizer(config.optimizer, model, config.lr, config.weight_decay)
    steps = config.chips_per_epoch // config.batch_size
    if steps < 1:
        raise InputError(f"chips per epoch ({config.chips_per_epoch}) must be at least the batch size")
    scheduler = build_scheduler(config.scheduler, optimizer, config.lr, config.epochs, steps, config.lr_decay,
                                config.lr_patience)
    (out / "config.json").write_text(json.dumps(config.to_dict(), indent=1))
    log.info(
        "training %s on %s: %d train / %d val images, class weights %s, mean %s std %s",
        arch,
        device,
        len(train_samples),
        len(val_samples),
        weights,
        mean,
        std,
    )
    ctx = {
        "config": config,
        "model": model,
        "arch": arch,
        "classes": classes,
        "mean": mean,
        "std": std,
        "weights": weights,
        "data": data,
        "val_samples": val_samples,
        "loss_fn": loss_fn,
        "optimizer": optimizer,
        "scheduler": scheduler,
        "device": device,
        "steps": steps,
        "state": state,
        "card": lambda metrics, output="logits": make_card(config, classes, mean, std, metrics, output),
    }
    return run_epochs(ctx, on_progress, should_cancel)
