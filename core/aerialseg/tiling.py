"""The tile grid, output blocks and blending weights.

The tile grid is global to the (working) raster: tile ``(i, j)`` always starts at
``(i * stride, j * stride)`` whatever part of the raster is being processed, so any split of the
work gives the same result. Output blocks are aligned to the stride; a block *owns* the tiles whose
origin lies inside it, and those tiles spill at most ``overlap`` pixels into the next block to the
right and below. Each tile is therefore computed exactly once.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@dataclass(frozen=True)
class Tile:
    """One model input window on the working grid (it may run past the raster's far edges)."""

    row: int
    col: int
    y0: int
    x0: int
    size: int


@dataclass(frozen=True)
class Block:
    """A rectangle of the working grid whose pixels are finished together."""

    row: int
    col: int
    y0: int
    x0: int
    height: int
    width: int


@dataclass(frozen=True)
class TileGrid:
    """A global tile grid over a ``height`` x ``width`` raster, with blocks of ``block`` pixels."""

    height: int
    width: int
    tile: int
    overlap: int
    block: int

    @classmethod
    def create(cls, height: int, width: int, tile: int, overlap: int, block_target: int = 2048) -> TileGrid:
        """A grid whose block size is the multiple of the stride closest to ``block_target``."""
        if not 0 <= overlap <= tile // 2:
            raise ValueError(f"overlap must be between 0 and tile/2 ({tile // 2}), got {overlap}")
        stride = tile - overlap
        return cls(height, width, tile, overlap, stride * max(1, round(block_target / stride)))

    @property
    def stride(self) -> int:
        return self.tile - self.overlap

    @property
    def tile_rows(self) -> int:
        return _tile_count(self.height, self.tile, self.stride)

    @property
    def tile_cols(self) -> int:
        return _tile_count(self.width, self.tile, self.stride)

    @property
    def n_tiles(self) -> int:
        return self.tile_rows * self.tile_cols

    def blocks(self) -> Iterator[Block]:
        """All blocks in row-major order (the order their spills require)."""
        for r in range(self.block_rows):
            for c in range(self.block_cols):
                yield self.block_at(r, c)

    @property
    def block_rows(self) -> int:
        return math.ceil(self.height / self.block)

    @property
    def block_cols(self) -> int:
        return math.ceil(self.width / self.block)

    def block_at(self, row: int, col: int) -> Block:
        """Block ``(row, col)``, as :meth:`blocks` yields it."""
        y0, x0 = row * self.block, col * self.block
        return Block(row, col, y0, x0, min(self.block, self.height - y0), min(self.block, self.width - x0))

    def owned_tiles(self, block: Block) -> list[Tile]:
        """Tiles whose origin lies in ``block``, in row-major order."""
        rows = _indices_in(block.y0, block.height, self.stride, self.tile_rows)
        cols = _indices_in(block.x0, block.width, self.stride, self.tile_cols)
        return [Tile(i, j, i * self.stride, j * self.stride, self.tile) for i in rows for j in cols]


def _tile_count(length: int, tile: int, stride: int) -> int:
    """Number of tiles needed so that every pixel of ``length`` is covered."""
    return 1 if length <= tile else math.ceil((length - tile) / stride) + 1


def _indices_in(start: int, length: int, stride: int, count: int) -> range:
    """Tile indices whose origin ``i * stride`` lies in ``[start, start + length)``."""
    first = math.ceil(start / stride)
    last = min(count, math.ceil((start + length) / stride))
    return range(first, max(first, last))


@lru_cache(maxsize=64)
def blend_weights(tile: int, overlap: int, borders: tuple[bool, bool, bool, bool] = (False,) * 4) -> np.ndarray:
    """Smooth ``tile`` x ``tile`` float32 weights: 1 inside, raised-cosine ramps across the overlap.

    The ramps of two neighbouring tiles sum to exactly 1 across their shared strip (sin² + cos²), so
    blended probabilities stay probabilities and no tile edge shows. Sides facing the raster's border
    (``borders`` = top, bottom, left, right) have no neighbour and keep full weight up to the edge.
    """
    top, bottom, left, right = borders
    w = np.outer(_ramp(tile, overlap, top, bottom), _ramp(tile, overlap, left, right)).astype(np.float32)
    w.setflags(write=False)
    return w


def _ramp(tile: int, overlap: int, flat_start: bool, flat_end: bool) -> np.ndarray:
    """1-D weights: a sin² rise over ``overlap`` px at each end unless that end is flat."""
    ramp = np.ones(tile, dtype=np.float64)
    if overlap:
        rise = np.sin(0.5 * np.pi * (np.arange(overlap) + 0.5) / overlap) ** 2
        if not flat_start:
            ramp[:overlap] = rise
        if not flat_end:
            ramp[-overlap:] = rise[::-1]
    return ramp


def tile_borders(grid: TileGrid, tile: Tile) -> tuple[bool, bool, bool, bool]:
    """Which sides of ``tile`` face the raster's border (top, bottom, left, right)."""
    return tile.row == 0, tile.row == grid.tile_rows - 1, tile.col == 0, tile.col == grid.tile_cols - 1
