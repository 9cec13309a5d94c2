"""``aerialseg train``: train a model from image + mask pairs.

The options are generated from :class:`aerialseg.trainconfig.TrainConfig`'s fields (help text, group and
flag in each field's metadata); the run is :func:`aerialseg.train.train`. Both import torch, so only when
this command is chosen.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aerialseg.cli.options import add_command
from aerialseg.cli.report import Reporter

if TYPE_CHECKING:
    from aerialseg.trainconfig import TrainConfig

MODULE = "aerialseg.train"
EPILOG = (
    "Data sets: dubai (--data ROOT with tile_N/images + masks), landcoverai (--data ROOT with images/, masks/, "
    "train.txt ...; --train-split train --val-split val), potsdam (--data ROOT, tile ids), folder (--images DIR "
    "--masks DIR of same-named rasters of class ids, or colours with --class-colours CSV), vector (--images "
    "RASTER|DIR --labels POLYGONS --label-field FIELD). Recipes: --config recipes/dubai.toml (see recipes/). "
    "Re-running the same command resumes from the run folder's last.pt."
)


def add_parser(sub: Any, selected: bool) -> None:
    """The subcommand; its options only when it is the one run (``selected``), as they import torch."""
    p = add_command(sub, "train", run, "train a model from image + mask pairs")
    if selected:
        add_arguments(p)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the training options, generated from :class:`TrainConfig`'s fields, grouped and documented.

    Options left out are absent from the parsed namespace (``argparse.SUPPRESS``), so that
    :func:`config_from_args` can tell them from a recipe's values.
    """
    from aerialseg.trainconfig import FIELDS, GROUPS, PARSERS, flag

    parser.epilog = EPILOG
    parser.add_argument("--config", metavar="TOML", default=argparse.SUPPRESS,
                        help="a recipe: training options as key = value (names as the options', dashes or "
                             "underscores); options given here override it")
    groups = {g: parser.add_argument_group(g) for g in GROUPS}
    for f in FIELDS.values():
        text = f.metadata["help"]
        if f.default is not True and f.default not in (None, "", ()):
            text += f" (default: {_text(f.default)})"
        text = text.replace("%", "%%")  # argparse formats help text with %
        group = groups[f.metadata["group"]]
        if f.type == "bool":
            group.add_argument(flag(f), dest="no_" + f.name, action="store_true", default=argparse.SUPPRESS, help=text)
            continue
        kind = PARSERS[str(f.type)]
        group.add_argument(flag(f), dest=f.name, type=_option_type(flag(f), kind), default=argparse.SUPPRESS,
                           choices=f.metadata["choices"] or None, help=text,
                           metavar=None if f.metadata["choices"] else flag(f)[2:].upper().replace("-", "_"))


def _text(value: Any) -> str:
    """A default as it would be typed on the command line."""
    if isinstance(value, tuple):
        return ",".join(f"{v[0]}={v[1]}" if isinstance(v, tuple) else str(v) for v in value)
    return str(value)


def _option_type(option: str, kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        try:
            return kind(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(f"invalid value {text!r}: {e}") from None

    parse.__name__ = option  # argparse names the option's type in its messages
    return parse


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig of parsed options: the defaults, overridden by ``--config``'s recipe, then by the options."""
    from aerialseg.errors import InputError
    from aerialseg.trainconfig import FIELDS, load_config, read_recipe

    values = read_recipe(args.config) if getattr(args, "config", None) else {}
    values |= {n: getattr(args, n) for n in FIELDS if n in vars(args) and n != "progress"}
    if getattr(args, "no_progress", False) or getattr(args, "progress", "auto") not in ("auto", "bar"):
        values["progress"] = False  # --no-progress, or the command line's --progress json|none
    if not values.get("out_dir"):
        raise InputError("--out is required: the run folder (on the command line, or out = \"...\" in --config)")
    return load_config(overrides=values)


def run(args: argparse.Namespace, rep: Reporter) -> int:
    """Train; each finished epoch is a step of the bar (unless ``--no-progress``) or a JSON progress line, and
    the result (best scores and epoch, the checkpoints that exist) the summary text or the last JSON line."""
    from aerialseg.train import train

    config = config_from_args(args)
    show = rep.mode == "json" or config.progress
    result = train(config, rep.progress("train", "epoch") if show else None)
    outputs = {k: result[k] for k in ("best_checkpoint", "last_checkpoint", "best_epoch")}
    rep.result(_summary(result), run=config.out_dir, scores=result["best"], **outputs)
    return 0


def _summary(result: dict[str, Any]) -> str:
    """The end of a run, as text: the best scores and where the checkpoints are."""
    from aerialseg.metrics import format_scores

    lines = [format_scores(result["best"]) if result.get("best") else "no validation result"]
    if result["best_checkpoint"] is None:
        lines.append(f"no best checkpoint: no epoch scored on labelled validation pixels; the last epoch is in "
                     f"{result['last_checkpoint']}")
    else:
        lines.append(f"best checkpoint: {result['best_checkpoint']} (epoch {result['best_epoch']})")
    return "\n".join(lines)
