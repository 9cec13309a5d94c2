"""Options shared by several commands: the parser class, number types, model and vector options, and
the keyword arguments they become."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any, NoReturn

from aerialseg.card import MAX_TILE, MIN_TILE


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line naming the option, with status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"aerialseg: error: {message}; see '{self.prog} --help'\n")


def int_range(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` to ``high`` (no upper bound if None)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            limit = f"from {low} to {high}" if high is not None else f"{low} or more"
            raise argparse.ArgumentTypeError(f"expected a whole number {limit}, got {text!r}")
        return value
    return parse


def float_range(low: float, inclusive: bool = True) -> Callable[[str], float]:
    """An argparse type: a finite number at least ``low`` (above it if not ``inclusive``)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < low or (not inclusive and value == low):
            raise argparse.ArgumentTypeError(f"expected a finite number {'>=' if inclusive else '>'} {low:g}, "
                                             f"got {text!r}")
        return value
    return parse


def add_command(sub: Any, name: str, run: Callable, help_text: str, writes: bool = True) -> argparse.ArgumentParser:
    """A subcommand running ``run(args, reporter)``, with the options every command has (``--overwrite``
    for those that write files)."""
    p = sub.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
    p.set_defaults(func=run)
    p.add_argument("--progress", choices=("auto", "bar", "json", "none"), default="auto",
                   help="progress display: a bar on a terminal (auto), JSON lines on stdout ending in one "
                        "'result' line (docs/json-stream.md), or none")
    if writes:
        p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("-v", "--verbose", action="store_true", help="more log output")
    p.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    return p


def add_model_options(p: argparse.ArgumentParser) -> None:
    """The options of classify and map: the model, the device, tiling and the input's values."""
    p.add_argument("--model", "-m", default="auto",
                   help="auto: the bundled or downloaded model whose ground resolution fits the input best (the "
                        "default model when the input has none); or a model name, an .onnx/.pt path, an https URL")
    p.add_argument("--input-gsd", type=float, metavar="METRES",
                   help="ground size of an input pixel, for images without georeferencing (drone JPGs, screenshots)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where the model runs: CUDA GPU if one works (auto), or force cpu/cuda")
    p.add_argument("--precision", choices=("auto", "fp32", "fp16", "int8"), default="auto",
                   help="int8: the model's quantised variant; fp16: float16 arithmetic (for a CUDA GPU); auto: fp16 on "
                        "a CUDA GPU, int8 on the CPU when the model card shows it at least 1.5x faster and as accurate")
    p.add_argument("--output-grid", choices=("input", "working"), default="input",
                   help="the class raster on the input's grid, or on the model's coarser working grid (same ground, "
                        "fewer pixels, faster; for inputs finer than the model)")
    p.add_argument("--tile-size", type=int_range(MIN_TILE, MAX_TILE),
                   help=f"model input tile in pixels, {MIN_TILE}-{MAX_TILE} (default: the model card's)")
    p.add_argument("--overlap", type=int_range(0, MAX_TILE // 2),
                   help="pixels shared by neighbouring tiles, at most half a tile (default: the model card's)")
    p.add_argument("--batch-size", type=int_range(1, 4096),
                   help="tiles per model call (default: 1 on the CPU, 8 on a GPU)")
    p.add_argument("--tta", choices=("none", "flip", "d4"), default="none",
                   help="test-time augmentation: flips (4x) or flips and rotations (8x); slower, smoother")
    p.add_argument("--no-resample", action="store_true",
                   help="use the input at its own resolution instead of the model's ground resolution")
    p.add_argument("--value-range", type=float_range(0, inclusive=False), metavar="MAX",
                   help="input value meaning full brightness, e.g. 255, 1 (reflectance) or 10000 (default: from "
                        "the data type and the data: uint8 as it is, float within 0..1 as reflectance, wider "
                        "data stretched)")
    p.add_argument("--threads", type=int, help="CPU threads for the model (default: all cores, shared by workers)")
    p.add_argument("--workers", type=int, help="run on a local Dask cluster of this many worker processes")
    p.add_argument("--scheduler", metavar="ADDRESS", help="run on the Dask cluster at this scheduler (tcp://host:8786)")


def add_vector_options(p: argparse.ArgumentParser) -> None:
    """The options of vectorize and map: which classes, the smallest polygon, simplification, squaring."""
    p.add_argument("--classes", help="comma-separated class names or ids (default: building,road,water)")
    p.add_argument("--min-area", type=float_range(0),
                   help="drop polygons smaller than this many square metres (default 1; on rasters without "
                        "georeferencing and --input-gsd: pixels, default 16)")
    p.add_argument("--simplify", type=float_range(0), help="simplification tolerance in metres")
    p.add_argument("--regularize", action=argparse.BooleanOptionalAction, default=None,
                   help="square building outlines to right angles (map: on by default for models finer than 0.5 m)")


def classify_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of ``classify`` that the model options give."""
    return {"device": args.device, "tile_size": args.tile_size, "overlap": args.overlap,
            "batch_size": args.batch_size, "tta": args.tta, "resample": not args.no_resample,
            "value_range": args.value_range, "threads": args.threads, "precision": args.precision,
            "input_gsd": args.input_gsd, "output_grid": args.output_grid}


def vectorize_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of ``vectorize`` that the vector options give (``regularize`` None: map decides)."""
    options: dict[str, Any] = {"regularize": args.regularize}
    if args.classes:
        options["classes"] = class_list(args.classes)
    if args.min_area is not None:
        options["min_area_m2"] = args.min_area
    if args.simplify is not None:
        options["simplify_m"] = args.simplify
    if args.input_gsd is not None:  # a raster without georeferencing: its pixel size (ignored otherwise)
        options["pixel_size_m"] = args.input_gsd
    return options


def class_list(text: str) -> list[str | int]:
    """``--classes building,2`` as names and ids."""
    return [int(c) if c.isdigit() else c for c in text.split(",")]


