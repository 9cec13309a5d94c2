"""The inference core shared by the local run (:mod:`aerialseg.predict`), the Dask backend and training validation.

One plan of the working grid and its tiles (from one :class:`~aerialseg.options.ClassifyOptions`); tile batches
read from the input (or from an image in memory, for validation); a :class:`BlockBlender` that
weights tile probabilities with smooth blending weights and sums them as fixed-point integers (exact and
independent of order), passing the margins a block's tiles spill into their neighbours; and the writing
of a finished block back onto the input grid (or as it is, on the working grid).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from rasterio.windows import Window

from aerialseg.card import NODATA_CLASS, ModelCard
from aerialseg.errors import Cancelled, RasterError
from aerialseg.options import ClassifyOptions, check_overlap, check_tile_size
from aerialseg.raster import (
    WorkingGrid,
    finite_pixels,
    normalised_tile,
    read_valid_mask,
    working_grid,
    working_valid_mask,
)
from aerialseg.runtime import Model
from aerialseg.tiling import Block, Tile, TileGrid, blend_weights, tile_borders

FIXED_POINT = np.float32(2**26)  # blended probability 1.0 in the integer accumulators
WRITE_STRIP_PIXELS = 1 << 22  # input pixels written at once (bounds memory for fine inputs)
ProgressCallback = Callable[[int, int], None]


def plan_grid(ds: Any, card: ModelCard, options: ClassifyOptions) -> tuple[WorkingGrid, TileGrid]:
    """The working grid and its tile grid: the one plan every process (or Dask worker) of a run shares."""
    tile, ov = tile_geometry(card.tile_size, card.overlap, options.tile_size, options.overlap)
    grid = working_grid(ds, card, options.resample, options.input_gsd)
    return grid, TileGrid.create(grid.height, grid.width, tile, ov, options.block_size)


def tile_geometry(card_tile: int, card_overlap: int, tile: int | None, overlap: int | None) -> tuple[int, int]:
    """Tile size and overlap from the card or the user, checked."""
    tile = card_tile if tile is None else tile
    check_tile_size(tile)
    ov = card_overlap if overlap is None else overlap
    if overlap is None and tile != card_tile:  # keep the card's overlap ratio
        ov = round(card_overlap * tile / card_tile)
    check_overlap(ov, tile)
    return tile, ov


def require_valid_pixels(input: str | Path, found: bool) -> None:
    """Refuse an input none of whose pixels could be classified (``found``: some were)."""
    if not found:
        raise RasterError(f"{input} has no valid pixels (all nodata); nothing to classify")


class TileSource(Protocol):
    """Normalised model input tiles of the working grid (:class:`aerialseg.raster.TileReader` reads a file)."""

    def read(self, y0: int, x0: int, size: int) -> tuple[np.ndarray, np.ndarray]: ...

    def close(self) -> None: ...


class ArrayTiles:
    """Tiles of an image in memory (C, H, W raw values), normalised and padded as a file's tiles are."""

    def __init__(self, raw: np.ndarray, valid: np.ndarray, gain: np.ndarray, offset: np.ndarray) -> None:
        self.raw, self.valid = raw, valid & finite_pixels(raw)
        self.gain, self.offset = gain[:, None, None], offset[:, None, None]

    def read(self, y0: int, x0: int, size: int) -> tuple[np.ndarray, np.ndarray]:
        raw, valid = self.raw[:, y0 : y0 + size, x0 : x0 + size], self.valid[y0 : y0 + size, x0 : x0 + size]
        return normalised_tile(raw, valid, self.gain, self.offset, size)

    def close(self) -> None:
        pass


def classify_array(net: Model, tiles: ArrayTiles, options: ClassifyOptions) -> Iterator[tuple[Block, np.ndarray]]:
    """Class ids (nodata where invalid) of an image in memory, block by block: :func:`aerialseg.classify`'s
    tile plan, blending and class decision on the image's own grid (what ``resample=False`` does to a file)."""
    _, height, width = tiles.raw.shape
    tile, ov = tile_geometry(net.card.tile_size, net.card.overlap, options.tile_size, options.overlap)
    grid = TileGrid.create(height, width, tile, ov, options.block_size)
    run = BlockBlender(net, grid, options.tta, lambda done, total: None, lambda: False)
    for block, classes, _ in run.blocks(tile_batches(tiles, grid, options.batch_for(net.device))):
        valid = tiles.valid[block.y0 : block.y0 + block.height, block.x0 : block.x0 + block.width]
        yield block, np.where(valid, classes, NODATA_CLASS).astype(np.uint8)


@dataclass
class TileBatch:
    """Up to a batch of one block's tiles, read and normalised (empty tiles only counted)."""

    block: Block
    tiles: list[Tile]
    images: np.ndarray | None  # (N, C, T, T) normalised; None when every tile was empty
    skipped: int


def tile_batches(
    reader: TileSource, tiles: TileGrid, batch_size: int, blocks: list[Block] | None = None
) -> Iterator[TileBatch]:
    """Read the tiles of ``blocks`` (default: all) in order, batched; tiles with no valid pixel are skipped."""
    try:
        for block in tiles.blocks() if blocks is None else blocks:
            kept: list[Tile] = []
            images: list[np.ndarray] = []
            skipped = 0
            for tile in tiles.owned_tiles(block):
                image, valid = reader.read(tile.y0, tile.x0, tile.size)
                if not valid.any():
                    skipped += 1
                    continue
                kept.append(tile)
                images.append(image)
                if len(kept) == batch_size:
                    yield TileBatch(block, kept, np.stack(images), skipped)
                    kept, images, skipped = [], [], 0
            yield TileBatch(block, kept, np.stack(images) if images else None, skipped)
    finally:
        reader.close()


@dataclass
class BlockBlender:
    """Blends tile predictions into blocks and hands out each block when it is final."""

    net: Model
    tiles: TileGrid
    tta: str
    on_progress: ProgressCallback
    should_cancel: Callable[[], bool]
    confidence: bool = False  # also work out the confidence of each pixel
    predicted: int = 0
    skipped: int = 0
    pending: dict[tuple[int, int], list[tuple[int, int, np.ndarray | Path]]] = field(default_factory=dict)
    spill_dir: Path | None = None  # margins for the next block row wait here, on disk, not in memory

    def blocks(self, batches: Iterator[TileBatch]) -> Iterator[tuple[Block, np.ndarray, np.ndarray | None]]:
        """Consume batches in block order; yield (block, class ids, confidence %) per finished block."""
        sums: np.ndarray | None = None
        current: Block | None = None
        for batch in batches:
            if self.should_cancel():
                raise Cancelled("cancelled by the user; no output was written")
            if batch.block != current:
                if current is not None and sums is not None:
                    yield current, *self.finish(current, sums)
                current, sums = batch.block, self.start(batch.block)
            if batch.images is not None:
                assert sums is not None  # started with the first batch's block
                self.add(sums, batch.block, batch.tiles, predict_batch(self.net, batch.images, self.tta))
            self.predicted += len(batch.tiles)
            self.skipped += batch.skipped
            self.on_progress(self.predicted + self.skipped, self.tiles.n_tiles)
        if current is not None and sums is not None:
            yield current, *self.finish(current, sums)

    def start(self, block: Block) -> np.ndarray:
        """Integer sums over the block plus its spill margin, seeded with earlier blocks' spills."""
        h = min(self.tiles.block + self.tiles.overlap, self.tiles.height - block.y0)
        w = min(self.tiles.block + self.tiles.overlap, self.tiles.width - block.x0)
        sums = np.zeros((len(self.net.card.classes), h, w), dtype=np.uint32)
        for y, x, piece in self.pending.pop((block.row, block.col), []):
            if isinstance(piece, Path):  # spooled to disk by pass_spills
                path, piece = piece, np.load(piece)
                path.unlink()
            add_spill(sums, block, y, x, piece)
        return sums

    def add(self, sums: np.ndarray, block: Block, tiles: list[Tile], probs: np.ndarray) -> None:
        """Add weighted, fixed-point tile probabilities into the block's sums."""
        for tile, p in zip(tiles, probs):
            weights = _fixed_point_weights(self.tiles.tile, self.tiles.overlap, tile_borders(self.tiles, tile))
            y, x = tile.y0 - block.y0, tile.x0 - block.x0
            h, w = min(tile.size, sums.shape[1] - y), min(tile.size, sums.shape[2] - x)
            scaled = np.multiply(p[:, :h, :w], weights[:h, :w])
            sums[:, y : y + h, x : x + w] += np.rint(scaled, out=scaled).astype(np.uint32)

    def finish(self, block: Block, sums: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Pass the spill margins on to the blocks right and below; return class ids and confidence."""
        self.pass_spills(block, sums)
        return classes_from_sums(sums[:, : block.height, : block.width], self.confidence)

    def pass_spills(self, block: Block, sums: np.ndarray) -> None:
        """Keep the parts of ``sums`` beyond the block for the blocks right, below and below-right."""
        h, w = block.height, block.width
        for dr, dc, piece in ((0, 1, sums[:, :h, w:]), (1, 0, sums[:, h:, :w]), (1, 1, sums[:, h:, w:])):
            if piece.size:
                key = (block.row + dr, block.col + dc)
                kept: np.ndarray | Path = piece.copy()
                if dr and self.spill_dir is not None:  # waits a whole block row: O(width) memory otherwise
                    kept = self.spill_dir / f"{block.row}_{block.col}_{dc}.npy"
                    np.save(kept, piece)
                self.pending.setdefault(key, []).append((block.y0 + dr * h, block.x0 + dc * w, kept))


def add_spill(sums: np.ndarray, block: Block, y: int, x: int, piece: np.ndarray) -> None:
    """Add the margin ``piece`` (working-grid origin ``y``, ``x``) spilled into ``block`` to its sums."""
    sums[:, y - block.y0 : y - block.y0 + piece.shape[1], x - block.x0 : x - block.x0 + piece.shape[2]] += piece


def classes_from_sums(core: np.ndarray, confidence: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
    """Class ids (nodata where nothing was predicted) and, if asked for, confidence % from a block's sums."""
    # Plane by plane: numpy's argmax(axis=0) strides across the planes and is 5x slower.
    classes = np.zeros(core.shape[1:], np.uint8)
    best = core[0].copy()
    for k in range(1, core.shape[0]):
        np.copyto(classes, np.uint8(k), where=core[k] > best)  # strict: a tie keeps the lower id, like argmax
        np.maximum(best, core[k], out=best)
    classes[best == 0] = NODATA_CLASS  # no tile covered it (sums are >= 0: the largest is 0 only if all are)
    if not confidence:
        return classes, None
    total = core.sum(axis=0, dtype=np.uint64)
    # floor(100 best / total) in float64 is exact: both are integers below 2^36, the quotient at most 100.
    percent = (best * np.float64(100) / np.maximum(total, 1)).astype(np.uint8)
    return classes, percent


@lru_cache(maxsize=16)
def _fixed_point_weights(tile: int, overlap: int, borders: tuple[bool, bool, bool, bool]) -> np.ndarray:
    """Blending weights scaled to the fixed-point unit, computed once per tile shape (not once per tile)."""
    return blend_weights(tile, overlap, borders) * FIXED_POINT


def predict_batch(net: Model, images: np.ndarray, tta: str) -> np.ndarray:
    """Class probabilities for a batch, averaged over test-time augmentations."""
    if tta == "none":
        return net.predict(images)
    ks = range(4) if tta == "d4" else (0, 2)
    total: np.ndarray | None = None
    for k in ks:
        for flip in (False, True):
            x = np.rot90(images, k, axes=(2, 3))
            x = x[..., ::-1] if flip else x
            p = net.predict(np.ascontiguousarray(x))
            p = p[..., ::-1] if flip else p
            p = np.rot90(p, -k, axes=(2, 3))
            total = p if total is None else total + p
    assert total is not None  # ks is never empty
    return total / (2 * len(ks))


class WindowWriter(Protocol):
    """Where finished windows of the input grid go (the class raster writer, or a cluster block's piece)."""

    def write(self, window: Window, classes: np.ndarray, confidence: np.ndarray | None = None) -> None: ...


def write_block(writer: WindowWriter, ds, grid: WorkingGrid, tiles: TileGrid, block: Block,
                 classes: np.ndarray, confidence: np.ndarray | None) -> None:
    """Map a finished working-grid block onto the input grid (nearest), mask nodata and write it.

    Written in strips of at most ``WRITE_STRIP_PIXELS`` input pixels: a block of a coarse working grid
    can cover a huge part of a fine input.
    """
    rows = _input_span(block.y0, block.y0 + block.height, grid.sy, ds.height, tiles.height)
    cols = _input_span(block.x0, block.x0 + block.width, grid.sx, ds.width, tiles.width)
    if rows[1] <= rows[0] or cols[1] <= cols[0]:
        return
    ix = _nearest(cols, grid.sx, block.x0, block.width)
    step = max(1, WRITE_STRIP_PIXELS // (cols[1] - cols[0]))
    for top in range(rows[0], rows[1], step):
        strip = (top, min(rows[1], top + step))
        window = Window(cols[0], strip[0], cols[1] - cols[0], strip[1] - strip[0])
        iy = _nearest(strip, grid.sy, block.y0, block.height)
        c = classes[np.ix_(iy, ix)]
        valid = read_valid_mask(ds, window)
        c = np.where(valid, c, NODATA_CLASS).astype(np.uint8)
        p = None if confidence is None else confidence[np.ix_(iy, ix)]
        writer.write(window, c, None if p is None else np.where(valid & (c != NODATA_CLASS), p, NODATA_CLASS))


def write_working_block(writer: WindowWriter, ds, grid: WorkingGrid, tiles: TileGrid, block: Block,
                         classes: np.ndarray, confidence: np.ndarray | None) -> None:
    """Write a finished block as it is, on the working grid (nodata where most input pixels are nodata)."""
    window = Window(block.x0, block.y0, block.width, block.height)
    valid = working_valid_mask(ds, grid, window)
    c = np.where(valid, classes, NODATA_CLASS).astype(np.uint8)
    writer.write(window, c, None if confidence is None else np.where(valid, confidence, NODATA_CLASS))


def _input_span(w0: int, w1: int, scale: float, n_input: int, n_work: int) -> tuple[int, int]:
    """Input pixels [start, stop) whose nearest working pixel lies in [w0, w1)."""
    if scale == 1.0:
        return w0, w1
    start = 0 if w0 == 0 else min(n_input, math.ceil(w0 / scale - 0.5))
    stop = n_input if w1 >= n_work else min(n_input, math.ceil(w1 / scale - 0.5))
    return start, stop


def _nearest(span: tuple[int, int], scale: float, w0: int, length: int) -> np.ndarray:
    """Index into a block of ``length`` working pixels for each input pixel of ``span``."""
    if scale == 1.0:
        return np.arange(span[0] - w0, span[1] - w0)
    idx = np.floor((np.arange(span[0], span[1]) + 0.5) * scale).astype(np.int64) - w0
    return np.clip(idx, 0, length - 1)
