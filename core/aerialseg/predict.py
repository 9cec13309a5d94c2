"""classify: streaming, tiled, blended inference from an orthophoto to a class raster.

The model runs on a global tile grid over the working grid (the input resampled to the model's ground
resolution). Tiles are read in a background thread while the model runs, batched, optionally
test-time augmented, weighted with smooth blending weights and summed as fixed-point integers (so the
sum is exact and independent of order). A block of the working grid is final once its own tiles are
in; its classes are mapped back onto the input grid and written. Memory is bounded by the block size.
The tiling, blending and block writing shared with the Dask backend live in :mod:`aerialseg.inference`.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import tempfile
import threading
import time
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any, cast

from aerialseg.choose import AUTO, resolve_auto
from aerialseg.errors import InputError
from aerialseg.inference import (
    BlockBlender,
    ProgressCallback,
    TileBatch,
    plan_grid,
    require_valid_pixels,
    tile_batches,
    write_block,
    write_working_block,
)
from aerialseg.options import ClassifyOptions
from aerialseg.raster import (
    ClassRasterWriter,
    TileReader,
    WorkingGridRaster,
    check_bands,
    check_input,
    check_output,
    check_raster_suffix,
    check_style_files,
    normalisation,
    open_raster,
)
from aerialseg.runtime import Model, load_model
from aerialseg.scratch import claim_outputs, remove_stale, scratch_prefix

log = logging.getLogger("aerialseg")


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
    options = ClassifyOptions(device=device, tile_size=tile_size, overlap=overlap, batch_size=batch_size, tta=tta,
                              resample=resample, value_range=value_range, block_size=block_size, threads=threads,
                              precision=precision, input_gsd=input_gsd, output_grid=output_grid)
    return classify_with(options, input, output, model, confidence=confidence, overwrite=overwrite, client=client,
                         work_in=work_in, on_progress=on_progress, should_cancel=should_cancel)


def classify_with(
    options: ClassifyOptions,
    input: str | Path,
    output: str | Path,
    model: str | Path | Model | None = "auto",
    *,
    confidence: str | Path | None = None,
    overwrite: bool = False,
    client: Any = None,
    work_in: str | Path | None = None,
    on_progress: ProgressCallback | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> Path:
    """:func:`classify` with its options made (and checked) already; a loaded ``model`` keeps its own device,
    threads and precision."""
    check_input(input)  # a missing input is named before an existing output
    out = check_output(output, [input], overwrite)
    conf = check_output(confidence, [input, output], overwrite) if confidence else None
    outputs = [out, *([conf] if conf else [])]
    for path in outputs:
        check_raster_suffix(path)
    check_style_files(outputs, input, overwrite)
    if options.output_grid == "working" and client is not None:
        raise InputError("--output-grid working does not run on a Dask cluster yet; leave out --workers/--scheduler")
    if isinstance(model, str) and model == AUTO:
        model = resolve_auto(model, input, (), options.input_gsd)
    progress, cancel = on_progress or (lambda done, total: None), should_cancel or (lambda: False)
    if client is not None:
        from aerialseg.cluster import classify_on_cluster

        with claim_outputs(outputs, overwrite):
            return classify_on_cluster(input, out, conf, model, client, options, progress, cancel,
                                       Path(work_in) if work_in else None)
    return _classify_here(input, out, conf, model, options, overwrite, progress, cancel)


def _classify_here(input: str | Path, out: Path, conf: Path | None, model: str | Path | Model | None,
                   options: ClassifyOptions, overwrite: bool, on_progress: ProgressCallback,
                   should_cancel: Callable[[], bool]) -> Path:
    """Classify in this process."""
    started = time.perf_counter()
    remove_stale(Path(tempfile.gettempdir()))  # margins of runs killed earlier
    with contextlib.ExitStack() as stack, open_raster(input) as ds:
        stack.enter_context(claim_outputs([out, *([conf] if conf else [])], overwrite))
        net = cast(Model, model) if hasattr(model, "predict") else load_model(
            model, options.device, options.threads, options.precision)
        check_bands(ds, net.card, input)
        grid, tiles = plan_grid(ds, net.card, options)
        gain, offset = normalisation(ds, net.card, options.value_range)
        margins = tempfile.TemporaryDirectory(prefix=scratch_prefix("aerialseg-margins", hidden=False))
        spills = Path(stack.enter_context(margins))
        run = BlockBlender(net, tiles, options.tta, on_progress, should_cancel, confidence=conf is not None,
                           spill_dir=spills)
        batch = options.batch_for(net.device)
        batches = _prefetched(lambda: tile_batches(TileReader(input, net.card, grid, gain, offset), tiles, batch))
        working = options.output_grid == "working" and grid.resampled
        like = WorkingGridRaster(ds, grid) if working else ds
        write = write_working_block if working else write_block
        with ClassRasterWriter(out, like, net.card, conf) as writer:
            with contextlib.closing(batches):  # stop the reader thread and close its file on any exit
                for block, classes, confidence_pct in run.blocks(batches):
                    write(writer, ds, grid, tiles, block, classes, confidence_pct)
            require_valid_pixels(input, run.predicted > 0)
            writer.commit()
    log.info("classified %s: %d tiles (%d empty, skipped) in %.1f s -> %s",
             Path(str(input)).name, run.predicted, run.skipped, time.perf_counter() - started, out)
    return out


_END = object()


def _prefetched(make: Callable[[], Iterator[TileBatch]], depth: int = 2) -> Generator[TileBatch, None, None]:
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
