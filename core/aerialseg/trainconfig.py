"""The settings of a training run (:class:`TrainConfig`) and TOML recipes.

Each field carries its option's help text, group and (where it differs from the field name) flag in
``dataclasses.field(metadata=...)``; the command line (:mod:`aerialseg.cli.train`) generates ``aerialseg
train``'s options from them. :func:`load_config` merges the defaults, a TOML recipe, then overrides (the
options given on the command line).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aerialseg.errors import InputError
from aerialseg.losses import LOSS_NAMES
from aerialseg.nets import ARCHITECTURES

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, from PyPI
    import tomli as tomllib

DATASETS = ("dubai", "landcoverai", "potsdam", "folder", "vector")
OPTIMIZERS = ("adamw", "sgd")
SCHEDULERS = ("onecycle", "cosine", "exponential", "plateau")
SPLITS = ("rows", "stratified")
GROUPS = ("data", "network", "training", "model card", "run")


def _opt(default: Any, help: str, group: str, flag: str = "", choices: tuple[str, ...] = ()) -> Any:
    """A field with its command-line option: help text, group, flag (default: --field-name) and choices."""
    meta = {"help": help, "group": group, "flag": flag, "choices": choices}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (saved with it; a resumed run must use the same)."""

    out_dir: str = _opt("", "run folder (checkpoints, history, curves); re-run to resume", "run", "--out")
    dataset: str = _opt("dubai", "layout of the data", "data", choices=DATASETS)
    data_root: str = _opt("", "data set root folder (dubai, landcoverai, potsdam)", "data", "--data")
    train_split: tuple[str, ...] = _opt(
        ("1", "2", "3", "4", "5", "6"),
        "Dubai tiles (1,2,3), Potsdam tile ids (2_10,2_11) or a LandCover.ai split name", "data")
    val_split: tuple[str, ...] = _opt(("7",), "the same, for validation", "data")
    images: str = _opt("", "folder: a folder of images; vector: an image raster or a folder", "data")
    masks: str = _opt("", "folder: masks named like the images: class ids, or colours with --class-colours", "data")
    val_images: str = _opt("", "validation images (folder/vector); empty: --split", "data")
    val_masks: str = _opt("", "folder: masks of the validation images", "data")
    class_names: tuple[str, ...] = _opt((), "folder/vector: comma-separated class names in id order", "data")
    class_colours: str = _opt(
        "", "folder: a CSV of name,r,g,b (e.g. class_dict.csv): the masks are RGB colours, one per class, in "
        "this order; it also gives the class names and colours", "data")
    labels: str = _opt("", "vector: polygons labelling the images (any GDAL vector format)", "data")
    label_field: str = _opt("", "vector: the field holding class ids or class names", "data")
    label_layer: str = _opt("", "vector: the layer of a multi-layer file", "data")
    unlabelled: str = _opt("ignore", "vector: pixels outside polygons: ignore or a class", "data")
    split: str = _opt(
        "rows", "folder/vector without --val-images: rows holds out the bottom --val-fraction of each image's rows; "
        "stratified holds out --val-fraction of the whole images, balanced on the classes each holds (only for "
        "independent images: neighbouring crops of one scene leak across a split by image)", "data", choices=SPLITS)
    val_fraction: float = _opt(0.2, "share held out for validation by --split", "data")
    scale: float = _opt(1.0, "resample all data by this factor (0.5 = half)", "data")
    tile_scales: tuple[tuple[str, float], ...] = _opt((), "per-tile factors, e.g. 7=0.55 (Dubai tile 7)", "data")
    name: str = _opt("aerialseg-model", "model name", "model card")
    arch: str = _opt("unet", "network", "network", choices=ARCHITECTURES)
    encoder: str = _opt("resnet18", "a segmentation-models-pytorch encoder, or tu-<timm model> (from scratch)",
                        "network")
    encoder_depth: int = _opt(4, "encoder stages used (3-5)", "network")
    decoder_channels: tuple[int, ...] = _opt((128, 64, 16, 8), "decoder widths (unet, unetplusplus, manet)",
                                             "network")
    chip: int = _opt(256, "side of the random training chips, px", "training")
    batch_size: int = _opt(8, "chips per step", "training")
    chips_per_epoch: int = _opt(480, "random chips drawn per epoch", "training")
    epochs: int = _opt(300, "epochs (the learning-rate schedule spans them all)", "training")
    optimizer: str = _opt("adamw", "adamw, or sgd (Nesterov momentum 0.9; no weight decay on biases and norm "
                          "layers)", "training", choices=OPTIMIZERS)
    lr: float = _opt(2e-3, "peak (onecycle) or initial learning rate", "training")
    weight_decay: float = _opt(1e-4, "weight decay", "training")
    scheduler: str = _opt("onecycle", "learning-rate schedule: onecycle and cosine step every batch, exponential "
                          "and plateau (on validation mIoU) every epoch", "training", choices=SCHEDULERS)
    lr_decay: float = _opt(0.0, "exponential: learning-rate factor per epoch (0: down to 1% of --lr at the last "
                           "epoch); plateau: factor on a plateau (0: 0.5)", "training")
    lr_patience: int = _opt(5, "plateau: epochs without a better validation mIoU before the rate drops", "training")
    loss: str = _opt("ce+dice", "loss (ignore pixels left out)", "training", choices=LOSS_NAMES)
    class_weighting: str = _opt("inverse_sqrt", "cross-entropy class weights from the class frequencies",
                                "training", choices=("none", "inverse", "inverse_sqrt"))
    scale_jitter: tuple[float, float] = _opt((0.75, 1.33), "min,max zoom of the chips", "training")
    brightness: float = _opt(0.15, "brightness change, share of the range", "training")
    contrast: float = _opt(0.15, "contrast change, +- share", "training")
    colour: float = _opt(0.0, "per-band colour and saturation change, +- share", "training")
    blur: float = _opt(0.0, "probability of a blur or sensor noise per chip", "training")
    mean: tuple[float, ...] = _opt((), "per-band mean of value/255; empty: measured on the images", "training")
    std: tuple[float, ...] = _opt((), "per-band std of value/255; empty: measured", "training")
    patience: int = _opt(40, "early stop after this many epochs without a better validation mIoU", "training")
    seed: int = _opt(0, "random seed (chips, augmentation, initial weights, --split stratified)", "training")
    gsd_m: float | None = _opt(None, "ground sample distance of the data, metres", "model card", "--gsd")
    tile_size: int = _opt(512, "inference tile side, px", "model card")
    overlap: int = _opt(64, "inference tile overlap, px", "model card")
    licence: str = _opt("", "licence recorded in the card", "model card")
    training_data: str = _opt("", "training data recorded in the card", "model card")
    description: str = _opt("", "description recorded in the card", "model card")
    init_weights: str = _opt("", "start from this checkpoint's weights (same architecture; fine-tuning)", "training")
    max_minutes: float | None = _opt(None, "stop after this long (re-run to resume)", "run")
    num_workers: int = _opt(0, "chip loader processes (0: in-process)", "run")
    threads: int = _opt(2, "CPU threads of torch", "run")
    device: str = _opt("auto", "auto: CUDA when torch sees it", "run", choices=("auto", "cpu", "cuda"))
    progress: bool = _opt(True, "no progress bar", "run", "--no-progress")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict` (lists become tuples; fields older runs had and this version dropped are
        left out)."""
        known = {f.name for f in dataclasses.fields(cls)}
        conv: dict[str, Any] = {
            k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
            for k, v in d.items() if k in known
        }
        return cls(**conv)


FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def flag(f: dataclasses.Field) -> str:
    """The command-line option of a field."""
    return f.metadata["flag"] or "--" + f.name.replace("_", "-")


def _split(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def _pair(text: str) -> tuple[str, float]:
    key, sep, value = text.partition("=")
    if not sep:
        raise ValueError(f"{text!r} is not KEY=FACTOR")
    return key.strip(), float(value)


# How a field's text (a command-line or recipe value) is read, by its annotation.
PARSERS: dict[str, Callable[[str], Any]] = {
    "str": str,
    "int": int,
    "float": float,
    "float | None": float,
    "tuple[str, ...]": _split,
    "tuple[int, ...]": lambda s: tuple(int(x) for x in _split(s)),
    "tuple[float, ...]": lambda s: tuple(float(x) for x in _split(s)),
    "tuple[float, float]": lambda s: tuple(float(x) for x in _split(s)),
    "tuple[tuple[str, float], ...]": lambda s: tuple(_pair(x) for x in _split(s)),
}


def read_recipe(path: str | Path) -> dict[str, Any]:
    """The fields set by a TOML recipe (keys: option or field names, dashes or underscores), checked and typed."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise InputError(f"--config: cannot read {path}: {e.strerror or e}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InputError(f"--config: {path} is not valid TOML: {e}") from None
    by_name = {n: n for n in FIELDS} | {flag(f)[2:].replace("-", "_"): n for n, f in FIELDS.items()}
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = by_name.get(key.replace("-", "_"))
        if name is None:
            raise InputError(f"--config: unknown option {key!r} in {path}; see aerialseg train --help")
        if key.replace("-", "_") == "no_progress":
            value = not value if isinstance(value, bool) else value
        values[name] = _typed(FIELDS[name], value, f"{key!r} in {path}")
    return values


def _typed(f: dataclasses.Field, value: Any, where: str) -> Any:
    """A recipe's value as the field's type (text is read as on the command line); InputError naming ``where``."""
    kind, choices = str(f.type), f.metadata["choices"]
    try:
        if isinstance(value, str) and kind != "bool":
            value = PARSERS[kind](value)
        elif kind == "tuple[tuple[str, float], ...]" and isinstance(value, dict):
            value = tuple((str(k), float(v)) for k, v in value.items())
        elif isinstance(value, list) and kind.startswith("tuple["):
            value = PARSERS[kind](",".join(map(str, value)))
        elif kind in ("float", "float | None") and type(value) in (int, float):
            value = float(value)
        elif not (kind == "bool" and isinstance(value, bool) or kind == "int" and type(value) is int):
            raise ValueError(f"expected {kind}, got {type(value).__name__}")
    except ValueError as e:
        raise InputError(f"--config: invalid value {value!r} of {where}: {e}") from None
    if choices and value not in choices:
        raise InputError(f"--config: {where} must be one of {', '.join(choices)}, not {value!r}")
    return value


def load_config(recipe: str | Path | None = None, overrides: dict[str, Any] | None = None) -> TrainConfig:
    """The TrainConfig of a run: the defaults, overridden by a TOML ``recipe`` (see :func:`read_recipe`), then by
    ``overrides`` (field names and typed values), as ``aerialseg train --config RECIPE --option ...`` does."""
    values = read_recipe(recipe) if recipe else {}
    unknown = sorted(set(overrides or {}) - set(FIELDS))
    if unknown:
        raise InputError(f"unknown training setting(s) {', '.join(unknown)}; see TrainConfig's fields")
    return TrainConfig(**(values | dict(overrides or {})))
