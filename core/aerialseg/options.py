"""The options that decide a classification: one frozen type, validated once when it is made.

:func:`aerialseg.classify` builds it from its keyword arguments, the Dask backend sends it with every
block's task, folder runs hand it to each file; the tile size and overlap the card supplies are checked
against it with the same functions when the model is known.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from aerialseg.card import MAX_TILE, MIN_TILE
from aerialseg.errors import InputError

DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("auto", "fp32", "fp16", "int8")
TTA_MODES = ("none", "flip", "d4")
OUTPUT_GRIDS = ("input", "working")
CPU_BATCH, GPU_BATCH = 1, 8  # default tiles per model call: larger CPU batches only cost memory


@dataclass(frozen=True)
class ClassifyOptions:
    """How to classify (see :func:`aerialseg.classify` for each option); not where the outputs go."""

    device: str = "auto"
    tile_size: int | None = None
    overlap: int | None = None
    batch_size: int | None = None
    tta: str = "none"
    resample: bool = True
    value_range: float | None = None
    block_size: int = 2048
    threads: int | None = None
    precision: str = "auto"
    input_gsd: float | None = None
    output_grid: str = "input"

    def __post_init__(self) -> None:
        check_choice("device", self.device, DEVICES)
        check_choice("precision", self.precision, PRECISIONS)
        check_choice("tta", self.tta, TTA_MODES)
        check_choice("output grid", self.output_grid, OUTPUT_GRIDS)
        if self.tile_size is not None:
            check_tile_size(self.tile_size)
        if self.tile_size is not None and self.overlap is not None:  # else checked with the card's tile size
            check_overlap(self.overlap, self.tile_size)
        counts = (("batch size", self.batch_size), ("threads", self.threads), ("block size", self.block_size))
        for name, value in counts:
            if value is not None and value < 1:
                raise InputError(f"{name} must be at least 1, got {value}")
        if self.value_range is not None and not (math.isfinite(self.value_range) and self.value_range > 0):
            raise InputError(f"value range (--value-range) must be a positive number, got {self.value_range}")
        if self.input_gsd is not None:
            check_input_gsd(self.input_gsd)

    @classmethod
    def of(cls, options: ClassifyOptions | Mapping[str, Any]) -> ClassifyOptions:
        """``options`` as they are, or made (and so checked) from a mapping of classify's keywords."""
        if isinstance(options, ClassifyOptions):
            return options
        unknown = sorted(set(options) - {f.name for f in fields(cls)})
        if unknown:
            raise InputError(f"unknown classify option(s) {', '.join(unknown)}")
        return cls(**options)

    def batch_for(self, device: str) -> int:
        """Tiles per model call on ``device`` ("cpu" or "cuda"): the option, else the device's default."""
        return self.batch_size or (GPU_BATCH if device == "cuda" else CPU_BATCH)

    def output_key(self) -> dict[str, Any]:
        """The options that decide the output (all but the CPU threads, which only change the speed)."""
        return {k: v for k, v in asdict(self).items() if k != "threads"}


def check_choice(what: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise InputError(f"{what} must be one of {', '.join(allowed)}, got '{value}'")


def check_tile_size(tile: int) -> None:
    if not MIN_TILE <= tile <= MAX_TILE or tile % 16:
        raise InputError(f"tile size must be a multiple of 16 from {MIN_TILE} to {MAX_TILE}, got {tile}")


def check_overlap(overlap: int, tile: int) -> None:
    if not 0 <= overlap <= tile // 2:
        raise InputError(f"overlap must be between 0 and half the tile size ({tile // 2}), got {overlap}")


def check_input_gsd(input_gsd: float) -> None:
    if not (math.isfinite(input_gsd) and input_gsd > 0):
        raise InputError(f"--input-gsd must be a positive number of metres, got {input_gsd}")
