"""classify on a Dask cluster: the blocks of one big raster, or the files of a folder of rasters.

One raster: every block of the working grid is a task pair. ``_compute_block`` runs the model on the
tiles the block owns (tiles whose origin lies in it) and returns the block's integer sums plus the
margins its tiles spill into the blocks right, below and below-right. ``_finish_block`` adds the
margins spilled into it by its left, upper and upper-left neighbours, turns the sums into classes and
writes them (mapped back onto the input grid) as a piece file in the job's work folder. Every tile
is computed exactly once, sums are integers, so the result is byte-identical to ``classify`` in one
process. The client then assembles the pieces into the class raster with the same writer.

Only small things go through the scheduler (the job description, the block numbers, a summary per
block); the sums and margins stay on the workers and travel between them. Workers read their tiles
straight from the input and write their pieces into the work folder, next to the output, so both
must be reachable from every worker (a shared filesystem on a real cluster).

Resuming: pieces and spill margins are kept in the work folder until the output is complete; a rerun
of the same job skips finished blocks. Cancelling stops the work and deletes the work folder.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import shutil
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from aerialseg.card import NODATA_CLASS, ModelCard
from aerialseg.errors import AerialSegError, Cancelled, InputError, MissingExtra, OutputError, first_line
from aerialseg.inference import (
    BlockBlender,
    add_spill,
    classes_from_sums,
    plan_grid,
    predict_batch,
    require_valid_pixels,
    tile_batches,
    write_block,
)
from aerialseg.options import ClassifyOptions
from aerialseg.raster import (
    ClassRasterWriter,
    TileReader,
    check_bands,
    normalisation,
    open_raster,
)
from aerialseg.runtime import Model, load_model, model_card
from aerialseg.tiling import TileGrid

log = logging.getLogger("aerialseg")
POLL_S = 0.1  # how often the client looks at the cluster's progress (and at a cancel)
WORKER_WAIT_S = 60  # how long a run waits for an existing scheduler's first worker
Spill = tuple[int, int, np.ndarray]  # (y0, x0, sums) of a margin spilled into another block


@dataclass(frozen=True)
class BlockJob:
    """Everything a worker needs to compute and write blocks of one raster (small; sent with each task)."""

    input: str
    model: str
    work_dir: str
    options: ClassifyOptions
    confidence: bool = False
    host_threads: dict[str, int] = field(default_factory=dict)  # ONNX Runtime threads per worker, by host

    def key(self) -> str:
        """A digest of what decides the output (not where or how fast it runs)."""
        what = {"input": self.input, "model": self.model, "confidence": self.confidence, **self.options.output_key()}
        for path in (self.input, self.model):
            with contextlib.suppress(OSError):
                st = os.stat(path)
                what[path] = [st.st_size, st.st_mtime_ns]
        return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


# ---------------------------------------------------------------- worker side


_MODEL_LOCK = threading.Lock()


def worker_model(path: str, device: str, threads: int | None, precision: str = "auto") -> Model:
    """One model per worker process, loaded with the first block that needs it."""
    with _MODEL_LOCK:
        return _cached_model(path, device, threads, precision)


@functools.lru_cache(maxsize=4)
def _cached_model(path: str, device: str, threads: int | None, precision: str) -> Model:
    return load_model(path, device, threads, precision)


def worker_threads(host_threads: dict[str, int]) -> int | None:
    """This worker's share of its machine's cores (None outside a Dask worker: all cores)."""
    with contextlib.suppress(ValueError, ImportError):
        from distributed import get_worker

        return host_threads.get(_host(get_worker().address))
    return None


@dataclass
class _Context:
    net: Model
    tiles: TileGrid
    grid: Any
    gain: np.ndarray
    offset: np.ndarray


_CONTEXTS: dict[str, _Context] = {}
_CONTEXT_LOCK = threading.Lock()


def _context(job: BlockJob) -> _Context:
    """The model, grids and normalisation of a job, made once per worker process."""
    key = job.key()
    with _CONTEXT_LOCK:  # a worker may run several tasks at once, in threads
        if key not in _CONTEXTS:
            opts = job.options
            net = worker_model(job.model, opts.device, opts.threads or worker_threads(job.host_threads), opts.precision)
            with open_raster(job.input) as ds:
                grid, tiles = plan_grid(ds, net.card, opts)
                gain, offset = normalisation(ds, net.card, opts.value_range)
            _CONTEXTS.clear()  # one job at a time per worker is the common case; keep memory bounded
            _CONTEXTS[key] = _Context(net, tiles, grid, gain, offset)
        return _CONTEXTS[key]


def _piece_path(job: BlockJob, row: int, col: int) -> Path:
    return Path(job.work_dir) / f"piece_{row}_{col}.tif"


def _spill_path(job: BlockJob, row: int, col: int) -> Path:
    return Path(job.work_dir) / f"spill_{row}_{col}.npz"


def _compute_block(job: BlockJob, row: int, col: int) -> tuple[Any, ...]:
    """Model sums of block (row, col) and the margins (:data:`Spill`) it spills right, below and below-right.

    A block finished in an earlier run only hands out its saved margins (no model run, no sums).
    """
    saved = _spill_path(job, row, col)
    if _piece_path(job, row, col).exists() and saved.exists():
        return (None, *_load_spills(saved))
    ctx = _context(job)
    tta = job.options.tta
    run = BlockBlender(ctx.net, ctx.tiles, tta, lambda done, total: None, lambda: False)
    block = ctx.tiles.block_at(row, col)
    sums = run.start(block)
    reader = TileReader(job.input, ctx.net.card, ctx.grid, ctx.gain, ctx.offset)
    for b in tile_batches(reader, ctx.tiles, job.options.batch_for(ctx.net.device), [block]):
        if b.images is not None:
            run.add(sums, block, b.tiles, predict_batch(ctx.net, b.images, tta))
    run.pass_spills(block, sums)  # in memory (no spill_dir): right, below, below-right
    spills: list[Any] = [run.pending.get((row + dr, col + dc), [None])[0] for dr, dc in ((0, 1), (1, 0), (1, 1))]
    _save_spills(saved, spills)
    return np.ascontiguousarray(sums[:, : block.height, : block.width]), *spills


def _save_spills(path: Path, spills: list[Spill | None]) -> None:
    arrays: dict[str, np.ndarray] = {}
    for i, spill in enumerate(spills):
        if spill is not None:
            arrays[f"s{i}"], arrays[f"o{i}"] = spill[2], np.array(spill[:2])
    tmp = path.with_suffix(f".{uuid.uuid4().hex[:8]}.tmp.npz")
    np.savez(tmp, allow_pickle=False, **arrays)
    os.replace(tmp, path)


def _load_spills(path: Path) -> tuple[Spill | None, Spill | None, Spill | None]:
    """The margins saved by :func:`_save_spills`: (right, below, below-right)."""
    with np.load(path) as f:
        got = [(int(f[f"o{i}"][0]), int(f[f"o{i}"][1]), f[f"s{i}"]) if f"s{i}" in f else None for i in range(3)]
    return got[0], got[1], got[2]


def _finish_block(job: BlockJob, row: int, col: int, sums: np.ndarray | None, *incoming: Spill | None) -> dict:
    """Add the neighbours' margins, classify and write block (row, col) as a piece; a small summary back."""
    piece = _piece_path(job, row, col)
    if sums is None:  # done in an earlier run
        return {"row": row, "col": col, "resumed": True}
    ctx = _context(job)
    block = ctx.tiles.block_at(row, col)
    sums = sums.copy()  # the compute task's result: a retried finish must start from it unchanged
    for y, x, part in filter(None, incoming):
        add_spill(sums, block, y, x, part)
    classes, confidence = classes_from_sums(sums, job.confidence)
    with open_raster(job.input) as ds, _PieceWriter(piece, job.confidence) as writer:
        write_block(writer, ds, ctx.grid, ctx.tiles, block, classes, confidence)
    valid = bool((classes != NODATA_CLASS).any())
    return {"row": row, "col": col, "resumed": False, "valid": valid, "written": piece.exists()}


class _PieceWriter:
    """Collects one block's windows of the input grid into a small tiled GeoTIFF (written atomically)."""

    def __init__(self, path: Path, confidence: bool) -> None:
        self.path, self.confidence = path, confidence
        self.windows: list[tuple[Window, np.ndarray, np.ndarray]] = []

    def __enter__(self) -> _PieceWriter:
        return self

    def write(self, window: Window, classes: np.ndarray, confidence: np.ndarray | None = None) -> None:
        self.windows.append((window, classes, confidence if confidence is not None else classes))

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if exc_type is not None or not self.windows:
            return
        x0 = min(int(w.col_off) for w, _, _ in self.windows)
        y0 = min(int(w.row_off) for w, _, _ in self.windows)
        x1 = max(int(w.col_off + w.width) for w, _, _ in self.windows)
        y1 = max(int(w.row_off + w.height) for w, _, _ in self.windows)
        tmp = self.path.with_suffix(f".{uuid.uuid4().hex[:8]}.tmp.tif")
        profile = {"driver": "GTiff", "width": x1 - x0, "height": y1 - y0, "count": 2 if self.confidence else 1,
                   "dtype": "uint8", "tiled": True, "blockxsize": 256, "blockysize": 256, "compress": "deflate"}
        with _no_georef_warning(), rasterio.open(tmp, "w", **profile) as dst:
            dst.update_tags(ORIGIN=f"{x0},{y0}")
            for w, c, p in self.windows:
                local = Window(w.col_off - x0, w.row_off - y0, w.width, w.height)
                dst.write(c, 1, window=local)
                if self.confidence:
                    dst.write(p, 2, window=local)
        os.replace(tmp, self.path)


@contextlib.contextmanager
def _no_georef_warning() -> Iterator[None]:
    """Pieces are plain pixel arrays: rasterio's warning about their missing georeferencing is noise."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        yield


# ---------------------------------------------------------------- client side


def classify_on_cluster(
    input: str | Path,
    out: Path,
    conf: Path | None,
    model: str | Path | Model | None,
    client: Any,
    options: ClassifyOptions,
    on_progress: Callable[[int, int], None],
    should_cancel: Callable[[], bool],
    work_in: Path | None = None,
) -> Path:
    """The work of :func:`aerialseg.predict.classify` (outputs already checked) on the Dask ``client``; the
    resumable work folder lives in ``work_in`` (default: the output's folder)."""
    net_path = _model_path(model)
    job = BlockJob(input=_absolute(input), model=net_path, work_dir="", options=options,
                   confidence=conf is not None, host_threads=host_threads(client))
    card = model_card(net_path)  # the workers load the model itself
    with open_raster(input) as ds:
        check_bands(ds, card, input)
        _, tiles = plan_grid(ds, card, options)
        megapixels = ds.width * ds.height / 1e6
        work = _work_dir(out, job, work_in or out.parent)
        job = replace(job, work_dir=str(work))
        started = time.perf_counter()
        try:
            summaries = _run_blocks(client, job, tiles, on_progress, should_cancel)
            found = any(s.get("valid", True) for s in summaries)
            if not found:
                remove_work_dir(work)
            require_valid_pixels(input, found)
            assembling = time.perf_counter()
            _assemble(ds, card, tiles, job, out, conf, summaries)
        except (Cancelled, KeyboardInterrupt):
            remove_work_dir(work)
            raise
    shutil.rmtree(work, ignore_errors=True)
    done = sum(not s["resumed"] for s in summaries)
    now = time.perf_counter()
    log.info("classified %s on the cluster: %d blocks (%d from an earlier run) in %.1f s (%.2f MP/s), of which "
             "assembling the output %.1f s -> %s", Path(str(input)).name, len(summaries), len(summaries) - done,
             now - started, megapixels / (now - started), now - assembling, out)
    return out


def remove_work_dir(work: Path, attempts: int = 10) -> None:
    """Delete a cancelled run's work folder; a task still finishing on a worker may add a file meanwhile."""
    for _ in range(attempts):
        shutil.rmtree(work, ignore_errors=True)
        if not work.exists():
            return
        time.sleep(0.2)


def _model_path(model: str | Path | Model | None) -> str:
    from aerialseg.runtime import resolve_model

    if model is not None and hasattr(model, "predict"):
        path = getattr(model, "path", None)
        if path is None:
            raise InputError("a model object without a file cannot be sent to a cluster; pass its path")
        return str(Path(path).resolve())
    return str(resolve_model(model).resolve())  # type: ignore[arg-type]


def _absolute(path: str | Path) -> str:
    """Local paths made absolute (workers may run elsewhere); GDAL virtual paths and URLs as they are."""
    text = str(path)
    return text if text.startswith("/vsi") or "://" in text or ":" in text.split("/")[0] else str(Path(text).resolve())


def host_threads(client: Any) -> dict[str, int]:
    """ONNX Runtime threads per worker on each host, so that workers x threads fits the host's cores."""
    cores = client.run(os.cpu_count)  # worker address -> cores of its machine
    workers = client.scheduler_info(n_workers=-1)["workers"]
    tasks: dict[str, int] = {}  # tasks that can run at once on each host (worker threads)
    for address in cores:
        tasks[_host(address)] = tasks.get(_host(address), 0) + int(workers.get(address, {}).get("nthreads", 1))
    return {_host(a): max(1, (n or 1) // tasks[_host(a)]) for a, n in cores.items()}


def _host(address: str) -> str:
    return address.split("://")[-1].rsplit(":", 1)[0]


def _work_dir(out: Path, job: BlockJob, folder: Path) -> Path:
    """The job's work folder in ``folder`` (next to the output unless a staging run says otherwise)."""
    work = work_folder(folder / f".{out.name}.aerialseg-work", job.key())
    resumed = sum(".tmp." not in p.name for p in work.glob("piece_*.tif"))
    if resumed:
        log.info("resuming: %d blocks already done in %s", resumed, work)
    return work


def work_folder(work: Path, key: str) -> Path:
    """Create (or keep, for resuming) a run's work folder; one left by a job with another ``key`` is replaced."""
    stamp = work / "job.json"
    try:
        if work.exists() and _stamp_key(stamp) != key:
            shutil.rmtree(work)
        work.mkdir(exist_ok=True)
        stamp.write_text(json.dumps({"key": key}))
    except OSError as e:
        raise OutputError(f"cannot write in {work.parent}: {e.strerror or e}") from None
    return work


def _stamp_key(stamp: Path) -> str | None:
    try:
        return json.loads(stamp.read_text()).get("key")
    except (OSError, ValueError, AttributeError):
        return None


def _run_blocks(client: Any, job: BlockJob, tiles: TileGrid, on_progress: Callable[[int, int], None],
                should_cancel: Callable[[], bool]) -> list[dict]:
    """Build the block graph, run it on the cluster and wait, reporting progress; summaries back."""
    import dask
    run = uuid.uuid4().hex[:12]  # task names unique to this run: Dask shares results between equal names
    computed = {
        (b.row, b.col): dask.delayed(_compute_block, nout=4, pure=True)(
            job, b.row, b.col, dask_key_name=f"aerialseg-compute-{run}-{b.row}-{b.col}")
        for b in tiles.blocks()
    }
    none = (None, None, None, None)
    finished = []
    for (r, c), parts in computed.items():
        left, up = computed.get((r, c - 1), none), computed.get((r - 1, c), none)
        corner = computed.get((r - 1, c - 1), none)
        finished.append(dask.delayed(_finish_block, pure=True)(
            job, r, c, parts[0], left[1], up[2], corner[3], dask_key_name=f"aerialseg-finish-{run}-{r}-{c}"))
    futures = client.compute(finished, retries=2)
    return wait_for(client, futures, on_progress, should_cancel, what="a block")


def wait_for(client: Any, futures: list, on_progress: Callable[[int, int], None],
             should_cancel: Callable[[], bool], what: str) -> list:
    """Results of ``futures`` as they come in, with progress; cancelling or a failure cancels the rest."""
    total, results, pending = len(futures), [], list(futures)
    on_progress(0, total)
    try:
        while pending:
            if should_cancel():
                raise Cancelled("cancelled by the user; no output was written")
            done = [f for f in pending if f.done()]  # polled: a cancel is noticed within POLL_S
            if not done:
                time.sleep(POLL_S)
                continue
            finished = {id(f) for f in done}
            pending = [f for f in pending if id(f) not in finished]
            for future in done:
                results.append(future.result())  # raises the task's error, if it failed
                on_progress(len(results), total)
    except BaseException as e:
        client.cancel(futures, force=True)
        if isinstance(e, AerialSegError | KeyboardInterrupt):
            raise
        raise AerialSegError(f"the cluster failed on {what} ({type(e).__name__}: {first_line(e)}); "
                             "finished work is kept: rerun the same command to resume") from None
    return results


def _assemble(ds: Any, card: ModelCard, tiles: TileGrid, job: BlockJob, out: Path, conf: Path | None,
              summaries: list[dict]) -> None:
    """Copy the pieces, in block order, into the class raster (and confidence raster) and commit."""
    for s in summaries:
        if s.get("written") and not _piece_path(job, s["row"], s["col"]).exists():
            raise OutputError(f"the workers wrote {_piece_path(job, s['row'], s['col'])} but it is not here: the "
                              f"output folder must be on a filesystem the workers share with this machine")
    with ClassRasterWriter(out, ds, card, conf) as writer:
        for block in tiles.blocks():
            _copy_piece(_piece_path(job, block.row, block.col), writer, conf is not None)
        writer.commit()


def _copy_piece(path: Path, writer: ClassRasterWriter, confidence: bool) -> None:
    if not path.exists():  # a block whose input pixels are all outside the input grid
        return
    with _no_georef_warning(), rasterio.open(path) as piece:
        x0, y0 = (int(v) for v in piece.tags()["ORIGIN"].split(","))
        for _, window in piece.block_windows(1):
            target = Window(window.col_off + x0, window.row_off + y0, window.width, window.height)
            classes = piece.read(1, window=window)
            writer.write(target, classes, piece.read(2, window=window) if confidence else None)


# ---------------------------------------------------------------- clusters


@contextlib.contextmanager
def cluster_client(workers: int | None = None, scheduler: str | None = None) -> Iterator[Any]:
    """A Dask client: on a local cluster of ``workers`` processes, or on the cluster at ``scheduler``.

    Yields None when neither is given (run in this process).
    """
    if workers is not None and workers < 1:
        raise InputError(f"--workers must be at least 1, got {workers}")
    if not workers and not scheduler:
        yield None
        return
    try:
        from distributed import Client, LocalCluster
    except ImportError as e:
        raise MissingExtra("--workers/--scheduler (Dask)", "cluster", e.name) from None

    if scheduler:
        try:
            client = Client(scheduler, timeout=15)
        except (OSError, TimeoutError) as e:
            raise InputError(f"cannot reach the Dask scheduler at {scheduler}: {first_line(e)}") from None
        except ValueError as e:  # not an address at all
            raise InputError(f"--scheduler {scheduler} is not a Dask scheduler address ({first_line(e)}); "
                             "give one like tcp://host:8786") from None
        try:
            client.wait_for_workers(1, timeout=WORKER_WAIT_S)
        except (OSError, TimeoutError):
            client.close()
            raise InputError(f"the Dask scheduler at {scheduler} has no workers (waited {WORKER_WAIT_S} s); "
                             "start some with 'dask worker " + scheduler + "'") from None
        log.info("Dask scheduler %s: %d workers; dashboard %s", scheduler,
                 len(client.scheduler_info()["workers"]), client.dashboard_link)
        with client:
            yield client
        return
    with _quiet_dask(), LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                     dashboard_address=":0", silence_logs=logging.ERROR) as cluster, \
            Client(cluster) as client:
        log.info("local Dask cluster: %d worker processes; dashboard %s", workers, client.dashboard_link)
        yield client


@contextlib.contextmanager
def _quiet_dask() -> Iterator[None]:
    """Dask's own INFO lines (cluster start/stop) stay out of the user's terminal."""
    loggers = [logging.getLogger(n) for n in ("distributed", "distributed.scheduler", "distributed.nanny")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
