"""classify: streaming, tiled, blended inference from an orthophoto to a class raster.

The model runs on a global tile grid over the working grid (the input resampled to the model's ground
resolution). Tiles are read in a background thread while the model runs, batched, optionally
test-time augmented, weighted with smooth blending weights and summed as fixed-point integers (so the
sum is exact and independent of order). A block of the working grid is final once its own tiles are
in; its classes are mapped back onto the input grid and written. Memory is bounded by the block size.
"""

from __future__ import annotations

import contextlib
import logging
import math
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
from rasterio.windows import Window

from aerialseg.card import MAX_TILE, MIN_TILE, NODATA_CLASS, ModelCard
from aerialseg.choose import AUTO, resolve_auto
from aerialseg.errors import Cancelled, InputError, RasterError
from aerialseg.raster import (
    ClassRasterWriter,
    TileReader,
    WorkingGrid,
    WorkingGridRaster,
    check_bands,
    check_output,
    check_raster_suffix,
    check_style_files,
    normalisation,
    open_raster,
    read_valid_mask,
    working_grid,
    working_valid_mask,
)
from aerialseg.runtime import Model, load_model
from aerialseg.scratch import claim_outputs, remove_stale, scratch_prefix
from aerialseg.tiling import Block, Tile, TileGrid, blend_weights, tile_borders

log = logging.getLogger("aerialseg")
FIXED_POINT = np.float32(2**26)  # blended probability 1.0 in the integer accumulators
TTA_MODES = ("none", "flip", "d4")
OUTPUT_GRIDS = ("input", "working")
WRITE_STRIP_PIXELS = 1 << 22  # input pixels written at once (bounds memory for fine inputs)
ProgressCallback = Callable[[int, int], None]


def classify(
    input: str | Path,
    output: str | Path,
    model: str | Path | Model | None = "auto",
    *,
    device: str = "auto",
    tile_size: int | None = None,
    overlap: int | None = None,
    batch_size: int | None = None,
    tta: str = "none",
    resample: bool = True,
    value_range: float | None = None,
    confidence: str | Path | None = None,
    overwrite: bool = False,
    block_size: int = 2048,
    threads: int | None = None,
    precision: str = "auto",
    input_gsd: float | None = None,
    output_grid: str = "input",
    client: Any = None,
    work_in: str | Path | None = None,
    on_progress: ProgressCallback | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> Path:
    """Classify ``input`` into a land-cover class raster written to ``output`` on the same grid.

    Args:
        input: any GDAL raster (GeoTIFF, JPEG, PNG, VRT, ...).
        output: the class raster to write (a cloud-optimised GeoTIFF, uint8, nodata 255).
        model: "auto" (the bundled model whose ground resolution fits the input best), a bundled model
            name, an ONNX or checkpoint path or https URL, a loaded model, or None (the default model).
        device: "auto" (CUDA if it works, else CPU), "cpu" or "cuda".
        tile_size: model input size in working pixels (default: the model card's).
        overlap: pixels shared by neighbouring tiles (default: the card's), at most tile_size / 2.
        batch_size: tiles per model call (default: 1 on the CPU, where larger batches only cost memory;
            8 on a GPU).
        tta: test-time augmentation: "none", "flip" (4 flips) or "d4" (flips and rotations, 8x).
        resample: resample the input to the model's ground resolution (True) or use it as it is.
        value_range: the input value meaning full brightness (0..value_range becomes the model's range);
            default: decided from the data type and the data (uint8 as it is, float 0..1 as reflectance).
        confidence: optional path of a per-pixel confidence raster (uint8 percent).
        overwrite: replace existing outputs.
        block_size: working-grid pixels finished together (bounds memory).
        threads: CPU threads for ONNX Runtime (default: all cores; on a cluster, the cores of each
            worker's machine shared among the workers there).
        precision: "fp32", "int8" or "auto" (the model's int8 variant on the CPU when its card shows it
            at least 1.5x faster with an mIoU within 0.01; see :func:`aerialseg.runtime.load_model`).
        input_gsd: ground metres per pixel of an input without georeferencing (else it runs at its native
            pixel size).
        output_grid: "input" (the class raster on the input's grid) or "working" (on the model's grid:
            for a fine input and a coarse model, many times fewer pixels on the same ground).
        client: a ``distributed.Client``: run the blocks on its Dask cluster (same output, byte for byte).
        work_in: with ``client``, the folder that keeps the run's resumable work (default: the output's).
        on_progress: called with (tiles done, tiles in total).
        should_cancel: polled between batches; returning True stops the run, leaving no output.

    Returns:
        The path of the class raster.
    """
    if tta not in TTA_MODES:
        raise InputError(f"tta must be one of {', '.join(TTA_MODES)}, got '{tta}'")
    if batch_size is not None and batch_size < 1:
        raise InputError(f"batch size must be at least 1, got {batch_size}")
    if value_range is not None and not (math.isfinite(value_range) and value_range > 0):
        raise InputError(f"value range (--value-range) must be a positive number, got {value_range}")
    out = check_output(output, [input], overwrite)
    conf = check_output(confidence, [input, output], overwrite) if confidence else None
    outputs = [out, *([conf] if conf else [])]
    for path in outputs:
        check_raster_suffix(path)
    check_style_files([out, *([conf] if conf else [])], input, overwrite)
    if threads is not None and threads < 1:
        raise InputError(f"threads must be at least 1, got {threads}")
    if output_grid not in OUTPUT_GRIDS:
        raise InputError(f"output grid must be one of {', '.join(OUTPUT_GRIDS)}, got '{output_grid}'")
    if output_grid == "working" and client is not None:
        raise InputError("--output-grid working does not run on a Dask cluster yet; leave out --workers/--scheduler")
    if isinstance(model, str) and model == AUTO:
        model = resolve_auto(model, input, (), input_gsd)
    if client is not None:
        from aerialseg.distributed import classify_on_cluster

        options = {"device": device, "tile_size": tile_size, "overlap": overlap, "batch_size": batch_size,
                   "tta": tta, "resample": resample, "value_range": value_range, "block_size": block_size,
                   "threads": threads, "precision": precision, "input_gsd": input_gsd}
        with claim_outputs(outputs, overwrite):
            return classify_on_cluster(input, out, conf, model, client, options, on_progress or (lambda d, t: None),
                                       should_cancel or (lambda: False), Path(work_in) if work_in else None)
    started = time.perf_counter()
    remove_stale(Path(tempfile.gettempdir()))  # margins of runs killed earlier
    with contextlib.ExitStack() as stack, open_raster(input) as ds:
        stack.enter_context(claim_outputs(outputs, overwrite))
        net = cast(Model, model) if hasattr(model, "predict") else load_model(model, device, threads, precision)
        check_bands(ds, net.card, input)
        grid, tiles = plan_grid(ds, net.card, tile_size, overlap, resample, block_size, input_gsd)
        gain, offset = normalisation(ds, net.card, value_range)
        margins = tempfile.TemporaryDirectory(prefix=scratch_prefix("aerialseg-margins", hidden=False))
        spills = Path(stack.enter_context(margins))
        run = _Run(net, tiles, tta, on_progress or (lambda done, total: None), should_cancel or (lambda: False),
                   confidence=conf is not None, spill_dir=spills)
        batch = batch_size or (8 if net.device == "cuda" else 1)
        batches = _prefetched(lambda: _tile_batches(TileReader(input, net.card, grid, gain, offset), tiles, batch))
        working = output_grid == "working" and grid.resampled
        like = WorkingGridRaster(ds, grid) if working else ds
        write = _write_working_block if working else _write_block
        with ClassRasterWriter(out, like, net.card, conf) as writer:
            with contextlib.closing(batches):  # stop the reader thread and close its file on any exit
                for block, classes, confidence_pct in run.blocks(batches):
                    write(writer, ds, grid, tiles, block, classes, confidence_pct)
            if run.predicted == 0:
                raise RasterError(f"{input} has no valid pixels (all nodata); nothing to classify")
            writer.commit()
    log.info("classified %s: %d tiles (%d empty, skipped) in %.1f s -> %s",
             Path(str(input)).name, run.predicted, run.skipped, time.perf_counter() - started, out)
    return out


def plan_grid(ds: Any, card: ModelCard, tile_size: int | None, overlap: int | None, resample: bool,
              block_size: int, input_gsd: float | None = None) -> tuple[WorkingGrid, TileGrid]:
    """The working grid and its tile grid: the one plan every process (or Dask worker) of a run shares."""
    tile, ov = _tile_geometry(card.tile_size, card.overlap, tile_size, overlap)
    grid = working_grid(ds, card, resample, input_gsd)
    return grid, TileGrid.create(grid.height, grid.width, tile, ov, block_size)


def _tile_geometry(card_tile: int, card_overlap: int, tile: int | None, overlap: int | None) -> tuple[int, int]:
    """Tile size and overlap from the card or the user, checked."""
    tile = card_tile if tile is None else tile
    if not MIN_TILE <= tile <= MAX_TILE or tile % 16:
        raise InputError(f"tile size must be a multiple of 16 from {MIN_TILE} to {MAX_TILE}, got {tile}")
    ov = card_overlap if overlap is None else overlap
    if overlap is None and tile != card_tile:  # keep the card's overlap ratio
        ov = round(card_overlap * tile / card_tile)
    if not 0 <= ov <= tile // 2:
        raise InputError(f"overlap must be between 0 and half the tile size ({tile // 2}), got {ov}")
    return tile, ov


@dataclass
class _Batch:
    block: Block
    tiles: list[Tile]
    images: np.ndarray | None  # (N, C, T, T) normalised; None when every tile was empty
    skipped: int


def _tile_batches(
    reader: TileReader, tiles: TileGrid, batch_size: int, blocks: list[Block] | None = None
) -> Iterator[_Batch]:
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
                    yield _Batch(block, kept, np.stack(images), skipped)
                    kept, images, skipped = [], [], 0
            yield _Batch(block, kept, np.stack(images) if images else None, skipped)
    finally:
        reader.close()


@dataclass
class _Run:
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

    def blocks(self, batches: Iterator[_Batch]) -> Iterator[tuple[Block, np.ndarray, np.ndarray | None]]:
        """Consume batches in block order; yield (block, class ids, confidence %) per finished block."""
        sums: np.ndarray | None = None
        current: Block | None = None
        for batch in batches:
            if self.should_cancel():
                raise Cancelled("cancelled by the user; no output was written")
            if batch.block != current:
                if current is not None and sums is not None:
                    yield current, *self._finish(current, sums)
                current, sums = batch.block, self._start(batch.block)
            if batch.images is not None:
                assert sums is not None  # started with the first batch's block
                self._add(sums, batch.block, batch.tiles, _predict(self.net, batch.images, self.tta))
            self.predicted += len(batch.tiles)
            self.skipped += batch.skipped
            self.on_progress(self.predicted + self.skipped, self.tiles.n_tiles)
        if current is not None and sums is not None:
            yield current, *self._finish(current, sums)

    def _start(self, block: Block) -> np.ndarray:
        """Integer sums over the block plus its spill margin, seeded with earlier blocks' spills."""
        h = min(self.tiles.block + self.tiles.overlap, self.tiles.height - block.y0)
        w = min(self.tiles.block + self.tiles.overlap, self.tiles.width - block.x0)
        sums = np.zeros((len(self.net.card.classes), h, w), dtype=np.uint32)
        for y, x, piece in self.pending.pop((block.row, block.col), []):
            if isinstance(piece, Path):  # spooled to disk by _pass_spills
                path, piece = piece, np.load(piece)
                path.unlink()
            sums[:, y - block.y0 : y - block.y0 + piece.shape[1], x - block.x0 : x - block.x0 + piece.shape[2]] += piece
        return sums

    def _add(self, sums: np.ndarray, block: Block, tiles: list[Tile], probs: np.ndarray) -> None:
        """Add weighted, fixed-point tile probabilities into the block's sums."""
        for tile, p in zip(tiles, probs):
            weights = _fixed_point_weights(self.tiles.tile, self.tiles.overlap, tile_borders(self.tiles, tile))
            y, x = tile.y0 - block.y0, tile.x0 - block.x0
            h, w = min(tile.size, sums.shape[1] - y), min(tile.size, sums.shape[2] - x)
            scaled = np.multiply(p[:, :h, :w], weights[:h, :w])
            sums[:, y : y + h, x : x + w] += np.rint(scaled, out=scaled).astype(np.uint32)

    def _finish(self, block: Block, sums: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Pass the spill margins on to the blocks right and below; return class ids and confidence."""
        self._pass_spills(block, sums)
        return classes_from_sums(sums[:, : block.height, : block.width], self.confidence)

    def _pass_spills(self, block: Block, sums: np.ndarray) -> None:
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


def _predict(net: Model, images: np.ndarray, tta: str) -> np.ndarray:
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


def _write_block(writer: WindowWriter, ds, grid: WorkingGrid, tiles: TileGrid, block: Block,
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


def _write_working_block(writer: WindowWriter, ds, grid: WorkingGrid, tiles: TileGrid, block: Block,
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


_END = object()


def _prefetched(make: Callable[[], Iterator[_Batch]], depth: int = 2) -> Generator[_Batch, None, None]:
    """Run the generator from ``make`` in a background thread, ``depth`` items ahead."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def work() -> None:
        try:
            for item in make():
                if not _put(q, item, stop):
                    return
            _put(q, _END, stop)
        except BaseException as e:  # handed to the consumer, which re-raises it
            _put(q, e, stop)

    thread = threading.Thread(target=work, name="aerialseg-reader", daemon=True)
    thread.start()
    try:
        while (item := q.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a worker waiting to put its last item
            with contextlib.suppress(queue.Empty):
                q.get(timeout=0.05)
        thread.join()


def _put(q: queue.Queue, item: object, stop: threading.Event) -> bool:
    """Put ``item`` unless ``stop`` gets set first; return whether it was put."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False
