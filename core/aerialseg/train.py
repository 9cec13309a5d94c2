"""Training: a segmentation network (smp UNet / DeepLabV3+) from image + mask pairs.

``train(TrainConfig(...))`` writes into ``out_dir``: ``last.pt`` (every epoch; re-running the same
command resumes from it), ``best.pt`` (best validation mIoU), ``history.csv``/``history.json``
(per-epoch metrics), ``curves.png`` and ``config.json``. A checkpoint is a dict with ``arch``
(see :func:`build_model`), ``card`` (a :class:`ModelCard` dict), ``state_dict`` (the network returns
logits) and the optimiser, scheduler, epoch and early-stopping state.

Command line: ``aerialseg train --help``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import random
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aerialseg import datasets as ds
from aerialseg.card import ClassInfo, ModelCard
from aerialseg.errors import InputError
from aerialseg.losses import LOSS_NAMES, build_loss, class_weights
from aerialseg.metrics import format_scores
from aerialseg.nets import (
    ARCHITECTURES,
    DECODER_CHANNEL_ARCHITECTURES,
    build_model,
    check_architecture,
    load_checkpoint,
)

log = logging.getLogger(__name__)
# Fields that may change between a run and its resumption (they do not change what is computed).
_RUNTIME_FIELDS = {"max_minutes", "num_workers", "threads", "device", "progress"}


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (saved with it; a resumed run must use the same)."""

    out_dir: str
    dataset: str = "dubai"  # dubai | landcoverai | potsdam | folder | vector
    data_root: str = ""
    train_split: tuple[str, ...] = ("1", "2", "3", "4", "5", "6")  # Dubai tiles, Potsdam ids, LandCover.ai split
    val_split: tuple[str, ...] = ("7",)
    images: str = ""  # folder dataset: training images / masks, validation images / masks
    masks: str = ""
    val_images: str = ""
    val_masks: str = ""
    class_names: tuple[str, ...] = ()  # folder and vector data sets
    labels: str = ""  # vector data set: labelled polygons over the images (and the validation images)
    label_field: str = ""
    label_layer: str = ""
    unlabelled: str = "ignore"  # vector data set: pixels outside every polygon: ignore, or a class name
    val_fraction: float = 0.2  # folder/vector data set without validation images: bottom rows held out
    scale: float = 1.0  # resampling of all data (0.5 = half the pixels per side)
    tile_scales: tuple[tuple[str, float], ...] = ()  # per Dubai tile / Potsdam id, overrides scale
    name: str = "aerialseg-model"
    arch: str = "unet"
    encoder: str = "resnet18"
    encoder_depth: int = 4
    decoder_channels: tuple[int, ...] = (128, 64, 16, 8)
    chip: int = 256
    batch_size: int = 8
    chips_per_epoch: int = 480
    epochs: int = 300
    lr: float = 2e-3
    weight_decay: float = 1e-4
    scheduler: str = "onecycle"  # onecycle | cosine
    loss: str = "ce+dice"
    class_weighting: str = "inverse_sqrt"  # none | inverse | inverse_sqrt
    scale_jitter: tuple[float, float] = (0.75, 1.33)
    brightness: float = 0.15
    contrast: float = 0.15
    colour: float = 0.0
    blur: float = 0.0
    mean: tuple[float, ...] = ()  # empty: measured on the training images
    std: tuple[float, ...] = ()
    patience: int = 40  # early stopping: epochs without a better validation mIoU
    seed: int = 0
    val_tile: int = 1280  # validation images up to this size are predicted in one pass
    gsd_m: float | None = None
    tile_size: int = 512
    overlap: int = 64
    licence: str = ""
    training_data: str = ""
    description: str = ""
    init_weights: str = ""  # start from this checkpoint's weights (same architecture; fine-tuning)
    max_minutes: float | None = None  # stop (resumably) after this long
    num_workers: int = 0
    threads: int = 2
    device: str = "auto"
    progress: bool = True

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict` (lists become tuples)."""
        conv: dict[str, Any] = {
            k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
            for k, v in d.items()
        }
        return cls(**conv)


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
        classes = _named_classes(config)
        train = ds.folder_samples(config.images, config.masks, config.scale)
        if not config.val_images:
            return (*ds.hold_out_rows(train, config.val_fraction), classes)
        return train, ds.folder_samples(config.val_images, config.val_masks, config.scale), classes
    if config.dataset == "vector":
        classes = _named_classes(config)
        labels = _vector_labels(config)
        train = ds.vector_samples(config.images, labels, config.scale)
        if not config.val_images:
            return (*ds.hold_out_rows(train, config.val_fraction), classes)
        return train, ds.vector_samples(config.val_images, labels, config.scale), classes
    raise InputError(f"unknown data set {config.dataset!r}; choose dubai, landcoverai, potsdam, folder or vector")


def _named_classes(config: TrainConfig) -> tuple[ClassInfo, ...]:
    if len(config.class_names) < 2:
        raise InputError(f"a {config.dataset} data set needs at least two class names (--class-names a,b,...)")
    return tuple(
        ClassInfo(i, n, ds.FALLBACK_COLOURS[i % len(ds.FALLBACK_COLOURS)]) for i, n in enumerate(config.class_names)
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


def _scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer, steps: int) -> Any:
    total = config.epochs * steps
    if config.scheduler == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.lr, total_steps=total, pct_start=0.1)
    if config.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total, eta_min=config.lr * 0.01)
    raise InputError(f"unknown scheduler {config.scheduler!r}; choose onecycle or cosine")


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
    on_progress: Callable[[float, str], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> dict[str, Any]:
    """Train (or resume) the run described by ``config``; returns the best validation scores and paths."""
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
    counts = {"--epochs": config.epochs, "--batch-size": config.batch_size, "--chip": config.chip,
              "--chips-per-epoch": config.chips_per_epoch, "--patience": config.patience,
              "--val-tile": config.val_tile, "--threads": config.threads}
    for option, value in counts.items():
        if value < 1:
            raise InputError(f"{option} must be at least 1, got {value}")
    if config.max_minutes is not None and not config.max_minutes >= 0:  # 0: stop after one epoch
        raise InputError(f"--max-minutes must be 0 or more minutes, got {config.max_minutes}")
    if not 0 < config.val_fraction < 1:
        raise InputError(f"--val-fraction must be between 0 and 1 (exclusive), got {config.val_fraction}")
    if not (math.isfinite(config.lr) and config.lr > 0):
        raise InputError(f"--lr must be a positive number, got {config.lr}")
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
    on_progress: Callable[[float, str], None] | None,
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
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps = config.chips_per_epoch // config.batch_size
    if steps < 1:
        raise InputError(f"chips per epoch ({config.chips_per_epoch}) must be at least the batch size")
    scheduler = _scheduler(config, optimizer, steps)
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


class _HelpWithDefaults(argparse.HelpFormatter):
    """Help lines end with the option's default, unless it is empty."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if action.option_strings and action.default not in (None, "", False, argparse.SUPPRESS):
            text += " (default: %(default)s)"
        return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the training options to ``parser`` (used by ``aerialseg train`` too), grouped and documented."""
    d = TrainConfig(out_dir="")
    parser.epilog = (
        "Data sets: dubai (--data ROOT with tile_N/images + masks), landcoverai (--data ROOT with images/, masks/, "
        "train.txt ...; --train-split train --val-split val), potsdam (--data ROOT, tile ids), folder (--images DIR "
        "--masks DIR of same-named rasters of class ids), vector (--images RASTER|DIR --labels POLYGONS "
        "--label-field FIELD). Re-running the same command resumes from the run folder's last.pt."
    )
    parser.formatter_class = _HelpWithDefaults
    parser.add_argument("--out", required=True, help="run folder (checkpoints, history, curves); re-run to resume")
    data = parser.add_argument_group("data")
    data.add_argument(
        "--dataset", default=d.dataset, choices=("dubai", "landcoverai", "potsdam", "folder", "vector"), help="layout"
    )
    data.add_argument("--data", default="", help="data set root folder (dubai, landcoverai, potsdam)")
    data.add_argument(
        "--train-split",
        default=",".join(d.train_split),
        help="Dubai tiles (1,2,3), Potsdam tile ids (2_10,2_11) or a LandCover.ai split name",
    )
    data.add_argument("--val-split", default=",".join(d.val_split), help="the same, for validation")
    data.add_argument("--images", default="", help="folder: a folder of images; vector: an image raster or a folder")
    data.add_argument("--masks", default="", help="folder: masks of class ids, named like the images")
    data.add_argument("--val-images", default="", help="validation images (folder/vector); empty: --val-fraction")
    data.add_argument("--val-masks", default="", help="folder: masks of the validation images")
    data.add_argument("--class-names", default="", help="folder/vector: comma-separated class names in id order")
    data.add_argument("--labels", default="", help="vector: polygons labelling the images (any GDAL vector format)")
    data.add_argument("--label-field", default="", help="vector: the field holding class ids or class names")
    data.add_argument("--label-layer", default="", help="vector: the layer of a multi-layer file")
    data.add_argument("--unlabelled", default=d.unlabelled, help="vector: pixels outside polygons: ignore or a class")
    data.add_argument(
        "--val-fraction",
        type=float,
        default=d.val_fraction,
        help="folder/vector without --val-images: share of each image's rows, at the bottom, held out",
    )
    data.add_argument("--scale", type=float, default=d.scale, help="resample all data by this factor (0.5 = half)")
    data.add_argument("--tile-scales", default="", help="per-tile factors, e.g. 7=0.55 (Dubai tile 7)")
    net = parser.add_argument_group("network")
    net.add_argument("--arch", default=d.arch, choices=ARCHITECTURES, help="network")
    net.add_argument("--encoder", default=d.encoder, help="a segmentation-models-pytorch encoder (from scratch)")
    net.add_argument("--encoder-depth", type=int, default=d.encoder_depth, help="encoder stages used (3-5)")
    net.add_argument("--decoder-channels", default=",".join(map(str, d.decoder_channels)), help="UNet decoder widths")
    fit = parser.add_argument_group("training")
    for name, help_text in (
        ("chip", "side of the random training chips, px"),
        ("batch-size", "chips per step"),
        ("chips-per-epoch", "random chips drawn per epoch"),
        ("epochs", "epochs (the learning-rate schedule spans them all)"),
        ("patience", "early stop after this many epochs without a better validation mIoU"),
        ("seed", "random seed (chips, augmentation, initial weights)"),
        ("val-tile", "validation images up to this side are predicted in one pass, larger ones in tiles"),
    ):
        fit.add_argument(f"--{name}", type=int, default=getattr(d, name.replace("-", "_")), help=help_text)
    fit.add_argument("--lr", type=float, default=d.lr, help="peak learning rate (AdamW)")
    fit.add_argument("--weight-decay", type=float, default=d.weight_decay, help="AdamW weight decay")
    fit.add_argument("--scheduler", default=d.scheduler, choices=("onecycle", "cosine"), help="learning-rate schedule")
    fit.add_argument("--loss", default=d.loss, choices=LOSS_NAMES, help="loss (ignore pixels left out)")
    fit.add_argument(
        "--class-weighting",
        default=d.class_weighting,
        choices=("none", "inverse", "inverse_sqrt"),
        help="cross-entropy class weights from the class frequencies",
    )
    fit.add_argument("--brightness", type=float, default=d.brightness, help="brightness change, share of the range")
    fit.add_argument("--contrast", type=float, default=d.contrast, help="contrast change, +- share")
    fit.add_argument("--colour", type=float, default=d.colour, help="per-band colour and saturation change, +- share")
    fit.add_argument("--blur", type=float, default=d.blur, help="probability of a blur or sensor noise per chip")
    fit.add_argument("--scale-jitter", default=",".join(map(str, d.scale_jitter)), help="min,max zoom of the chips")
    fit.add_argument("--mean", default="", help="per-band mean of value/255; empty: measured on the images")
    fit.add_argument("--std", default="", help="per-band std of value/255; empty: measured")
    fit.add_argument("--init-weights", default="", help="start from this checkpoint's weights (same architecture)")
    card = parser.add_argument_group("model card")
    card.add_argument("--name", default=d.name, help="model name")
    card.add_argument("--gsd", type=float, default=None, help="ground sample distance of the data, metres")
    card.add_argument("--tile-size", type=int, default=d.tile_size, help="inference tile side, px")
    card.add_argument("--overlap", type=int, default=d.overlap, help="inference tile overlap, px")
    for name in ("licence", "training-data", "description"):
        card.add_argument(f"--{name}", default="", help=f"{name.replace('-', ' ')} recorded in the card")
    run_ = parser.add_argument_group("run")
    run_.add_argument("--max-minutes", type=float, default=None, help="stop after this long (re-run to resume)")
    run_.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="auto: CUDA when torch sees it")
    run_.add_argument("--threads", type=int, default=d.threads, help="CPU threads of torch")
    run_.add_argument("--num-workers", type=int, default=d.num_workers, help="chip loader processes (0: in-process)")
    run_.add_argument("--no-progress", action="store_true", help="no progress bar")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """Build a TrainConfig from parsed command-line options."""
    split = lambda s: tuple(x.strip() for x in s.split(",") if x.strip())
    floats = lambda s: tuple(float(x) for x in split(s))
    try:
        scales = tuple((k, float(v)) for k, v in (p.split("=") for p in split(args.tile_scales)))
        return TrainConfig(
            out_dir=args.out,
            dataset=args.dataset,
            data_root=args.data,
            train_split=split(args.train_split),
            val_split=split(args.val_split),
            images=args.images,
            masks=args.masks,
            val_images=args.val_images,
            val_masks=args.val_masks,
            class_names=split(args.class_names),
            labels=args.labels,
            label_field=args.label_field,
            label_layer=args.label_layer,
            unlabelled=args.unlabelled,
            val_fraction=args.val_fraction,
            scale=args.scale,
            tile_scales=scales,
            name=args.name,
            arch=args.arch,
            encoder=args.encoder,
            encoder_depth=args.encoder_depth,
            decoder_channels=tuple(int(x) for x in split(args.decoder_channels)),
            chip=args.chip,
            batch_size=args.batch_size,
            chips_per_epoch=args.chips_per_epoch,
            epochs=args.epochs,
            lr=args.lr,
            weight_decay=args.weight_decay,
            scheduler=args.scheduler,
            loss=args.loss,
            class_weighting=args.class_weighting,
            scale_jitter=floats(args.scale_jitter),  # type: ignore[arg-type]
            brightness=args.brightness,
            contrast=args.contrast,
            colour=args.colour,
            blur=args.blur,
            mean=floats(args.mean),
            std=floats(args.std),
            patience=args.patience,
            seed=args.seed,
            val_tile=args.val_tile,
            gsd_m=args.gsd,
            tile_size=args.tile_size,
            overlap=args.overlap,
            licence=args.licence,
            training_data=args.training_data,
            description=args.description,
            init_weights=args.init_weights,
            max_minutes=args.max_minutes,
            num_workers=args.num_workers,
            threads=args.threads,
            device=args.device,
            progress=not args.no_progress and getattr(args, "progress", "auto") in ("auto", "bar"),
        )
    except ValueError as e:
        raise InputError(f"invalid training option: {e}") from None


def run(args: argparse.Namespace, rep: Any = None) -> int:
    """Run training from parsed options; returns 0 (AerialSegError propagates to the caller).

    ``rep``: the command line's Reporter; with ``--progress json`` each finished epoch is a progress
    line and the result (best scores and epoch, the checkpoints that exist) the last line.
    """
    config = config_from_args(args)
    as_json = rep is not None and rep.mode == "json"
    epochs = rep.progress("train", "epoch") if as_json else None
    on_progress = (lambda pct, _: epochs(round(pct * config.epochs / 100), config.epochs)) if epochs else None
    result = train(config, on_progress)
    outputs = {k: result[k] for k in ("best_checkpoint", "last_checkpoint", "best_epoch")}
    if rep is not None:
        rep.result(_summary(result), run=config.out_dir, scores=result["best"], **outputs)
    else:
        print(_summary(result))
    return 0


def _summary(result: dict[str, Any]) -> str:
    """The end of a run, as text: the best scores and where the checkpoints are."""
    lines = [format_scores(result["best"]) if result.get("best") else "no validation result"]
    if result["best_checkpoint"] is None:
        lines.append(f"no best checkpoint: no epoch scored on labelled validation pixels; the last epoch is in "
                     f"{result['last_checkpoint']}")
    else:
        lines.append(f"best checkpoint: {result['best_checkpoint']} (epoch {result['best_epoch']})")
    return "\n".join(lines)
