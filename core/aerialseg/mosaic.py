"""Many inputs in one run: a folder or a glob of orthophotos -> one class raster each plus a VRT mosaic.

Each input is classified on its own grid (a whole file is one unit of work: in this process, or one
task per file on a Dask cluster). The class rasters are written into a hidden work folder and moved
into the output folder together with a VRT mosaic of them (colour table, class names and class table
included) only when every file is done: a failed or cancelled run leaves no output, and a rerun of
the same job skips the files already done. Vectorising the mosaic gives polygons that are whole
across the inputs' shared edges.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import os
import shutil
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import rasterio

from aerialseg._version import __version__
from aerialseg.card import NODATA_CLASS, ModelCard
from aerialseg.errors import Cancelled, InputError, OutputError, RasterError, first_line
from aerialseg.options import ClassifyOptions
from aerialseg.raster import CLASS_TABLE_TAG, check_bands, open_raster, style_files
from aerialseg.scratch import claim_outputs
from aerialseg.style import category_names_xml, class_table_json, colormap, raster_qml

log = logging.getLogger("aerialseg")
RASTER_SUFFIXES = {".tif", ".tiff", ".jp2", ".png", ".jpg", ".jpeg", ".img", ".vrt"}


def expand_inputs(spec: str | Path) -> list[Path] | None:
    """The rasters named by a folder or a glob pattern, sorted; None for a single raster."""
    text = str(spec)
    if Path(text).is_file():  # a file whose name merely contains [ ] or *
        return None
    if Path(text).is_dir():
        files = sorted(p for p in Path(text).iterdir() if p.suffix.lower() in RASTER_SUFFIXES and p.is_file())
        if not files:
            raise InputError(f"folder {text} holds no rasters ({', '.join(sorted(RASTER_SUFFIXES))})")
    elif any(ch in text for ch in "*?[") and not text.startswith("/vsi"):
        files = sorted(Path(p) for p in glob.glob(text) if Path(p).suffix.lower() in RASTER_SUFFIXES)
        if not files:
            raise InputError(f"no rasters match {text}")
    else:
        return None
    stems = [p.stem for p in files]
    clash = sorted({s for s in stems if stems.count(s) > 1})
    if clash:
        raise InputError(f"inputs share the file name(s) {', '.join(clash)}; their outputs would collide")
    return files


def mosaic_name(spec: str | Path) -> str:
    """Name of a folder's (or a glob's) outputs: the folder's name."""
    path = Path(str(spec))
    folder = path if path.is_dir() else path.parent
    while any(ch in folder.name for ch in "*?["):  # a glob's first folder without wildcards
        folder = folder.parent
    return folder.resolve().name or "mosaic"


def output_paths(inputs: Sequence[Path], folder: Path, name: str) -> tuple[list[Path], Path]:
    """The class raster of each input and the mosaic VRT, in ``folder``."""
    return [folder / f"{p.stem}_landcover.tif" for p in inputs], folder / f"{name}_landcover.vrt"


def classify_many(
    inputs: Sequence[Path],
    folder: Path,
    name: str,
    model: str | Path | None,
    options: ClassifyOptions | Mapping[str, Any],
    *,
    client: Any = None,
    overwrite: bool = False,
    work_in: Path | None = None,
    on_progress: Callable[[int, int], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> tuple[list[Path], Path]:
    """Classify every input into ``folder`` (one class raster each) and write their VRT mosaic.

    Every input is checked first (readable, the model's bands, north-up, one CRS for all): a bad one
    fails the run before any classification. The resumable work folder lives in ``work_in`` (default:
    ``folder``). Returns the class rasters and the VRT. ``options``: :func:`aerialseg.classify`'s options (or
    a mapping of its keywords, checked here before any work).
    """
    from aerialseg.runtime import model_card, resolve_model

    options = ClassifyOptions.of(options)
    model_path = str(resolve_model(model).resolve())  # type: ignore[arg-type]
    card = model_card(model_path)
    rasters, vrt = output_paths(inputs, folder, name)
    targets = [*rasters, vrt, *(s for r in (*rasters, vrt) for s in style_files(r))]
    taken = [t for t in targets if t.exists()]
    if taken and not overwrite:
        raise OutputError(f"output {taken[0]} already exists; pass --overwrite (overwrite=True) to replace it")
    check_inputs(inputs, card)
    with claim_outputs([*rasters, vrt], overwrite):
        _classify_into(inputs, folder, work_in or folder, name, model_path, card, options, client,
                       on_progress or (lambda done, total: None), should_cancel or (lambda: False))
    return rasters, vrt


def check_inputs(inputs: Sequence[Path], card: ModelCard) -> None:
    """Refuse, naming the file, an input that cannot be classified or mosaicked with the others."""
    first: tuple[Path, Any] | None = None
    for path in inputs:
        with open_raster(path) as ds:
            check_bands(ds, card, path)
            t = ds.transform
            if ds.crs is None or t.a <= 0 or t.e >= 0 or t.b or t.d:
                raise InputError(f"{path} is not georeferenced north-up (no CRS, or a south-up or rotated grid), so "
                                 "it cannot join a mosaic; warp it north-up (gdalwarp) or classify it on its own")
            if first is not None and ds.crs != first[1]:
                raise InputError(f"{path} is in {ds.crs.to_string()} but {first[0].name} is in {first[1].to_string()}; "
                                 "a mosaic needs one CRS: reproject it or classify it on its own")
            first = first or (path, ds.crs)


def _classify_into(inputs: Sequence[Path], folder: Path, work_in: Path, name: str, model_path: str,
                   card: ModelCard, options: ClassifyOptions, client: Any, progress: Callable[[int, int], None],
                   cancel: Callable[[], bool]) -> None:
    """Classify in the work folder, then move the rasters and the VRT into ``folder``."""
    rasters, vrt = output_paths(inputs, folder, name)
    work = _work_dir(work_in, name, [str(p.resolve()) for p in inputs], model_path, options)
    started = time.perf_counter()
    try:
        jobs = [(str(src.resolve()), str(work / dst.name)) for src, dst in zip(inputs, rasters)]
        if client is None:
            _run_here(jobs, model_path, options, progress, cancel)
        else:
            _run_on_cluster(client, jobs, model_path, options, progress, cancel)
        write_vrt([work / r.name for r in rasters], work / vrt.name, card)
    except BaseException as e:  # keep finished rasters for a rerun to resume, unless cancelled or none
        from aerialseg.cluster import remove_work_dir

        if isinstance(e, Cancelled | KeyboardInterrupt) or not any(work.glob("*_landcover.tif")):
            remove_work_dir(work)
        else:
            log.info("finished rasters are kept in %s: rerun the same command to resume", work)
        raise
    for target in (*rasters, vrt):  # only the outputs: a killed task's hidden leftovers stay behind
        for path in (target, *style_files(target)):
            if (work / path.name).exists():
                os.replace(work / path.name, path)
    shutil.rmtree(work, ignore_errors=True)
    log.info("classified %d rasters in %.1f s -> %s", len(inputs), time.perf_counter() - started, vrt)


def _work_dir(folder: Path, name: str, inputs: list[str], model: str, options: ClassifyOptions) -> Path:
    from aerialseg.cluster import work_folder

    stats = [[st.st_size, st.st_mtime_ns] for st in map(os.stat, [*inputs, model])]  # a changed file is a new job
    what = [inputs, model, options.output_key(), stats, __version__]
    key = hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:16]
    work = work_folder(folder / f".{name}.aerialseg-work", key)
    done = len(list(work.glob("*_landcover.tif")))
    if done:
        log.info("resuming: %d of %d rasters already done in %s", done, len(inputs), work)
    return work


def classify_file(src: str, dst: str, model: str, options: ClassifyOptions,
                  host_threads: dict[str, int] | None = None) -> str:
    """Classify one input into ``dst`` unless an earlier run did (a task on a worker, or a loop step);
    ``host_threads``: ONNX Runtime threads per worker host, unless the options say."""
    from aerialseg.cluster import worker_model, worker_threads
    from aerialseg.predict import classify_with

    if not Path(dst).exists():
        threads = options.threads or worker_threads(host_threads or {})
        classify_with(options, src, dst, worker_model(model, options.device, threads, options.precision))
    return dst


def _run_here(jobs: list[tuple[str, str]], model: str, options: ClassifyOptions,
              progress: Callable[[int, int], None], cancel: Callable[[], bool]) -> None:
    progress(0, len(jobs))
    for i, (src, dst) in enumerate(jobs):
        if cancel():
            raise Cancelled("cancelled by the user; no output was written")
        classify_file(src, dst, model, options)
        progress(i + 1, len(jobs))


def _run_on_cluster(client: Any, jobs: list[tuple[str, str]], model: str, options: ClassifyOptions,
                    progress: Callable[[int, int], None], cancel: Callable[[], bool]) -> None:
    from aerialseg.cluster import host_threads, wait_for

    threads = host_threads(client)
    run = uuid.uuid4().hex[:12]  # task names unique to this run: Dask shares results between equal names
    futures = [client.submit(classify_file, src, dst, model, options, threads, key=f"aerialseg-file-{run}-{i}",
                             retries=2) for i, (src, dst) in enumerate(jobs)]
    wait_for(client, futures, progress, cancel, what="a raster")


def write_vrt(rasters: Sequence[Path], vrt: Path, card: ModelCard) -> Path:
    """A VRT mosaic of class rasters sharing one CRS, at the finest resolution, styled like a class raster."""
    grids = []
    for path in rasters:
        try:
            with rasterio.open(path) as ds:
                grids.append((path, ds.crs, ds.transform, ds.width, ds.height))
        except rasterio.errors.RasterioError as e:
            raise RasterError(f"cannot open {path}: {first_line(e)}") from None
    crs = grids[0][1]
    if crs is None or any(g[2].a <= 0 or g[2].e >= 0 for g in grids):
        raise InputError("the inputs are not georeferenced (no CRS or no north-up transform), so they cannot be "
                         "mosaicked; classify them one by one")
    if any(g[1] != crs for g in grids) or any(g[2].b or g[2].d for g in grids):
        raise InputError("the inputs do not share one north-up CRS, so they cannot be mosaicked; "
                         "classify them separately or reproject them first")
    dx = min(g[2].a for g in grids)
    dy = min(-g[2].e for g in grids)
    bounds = [(t.c, t.f + h * t.e, t.c + w * t.a, t.f) for _, _, t, w, h in grids]
    x0, y1 = min(b[0] for b in bounds), max(b[3] for b in bounds)
    width = round((max(b[2] for b in bounds) - x0) / dx)
    height = round((y1 - min(b[1] for b in bounds)) / dy)
    sources = "".join(_vrt_source(path, t, w, h, x0, y1, dx, dy, vrt.parent) for path, _, t, w, h in grids)
    colours = colormap(card)
    entries = "".join('      <Entry c1="{}" c2="{}" c3="{}" c4="{}"/>\n'.format(*colours.get(i, (0, 0, 0, 0)))
                      for i in range(256))
    text = (
        f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">\n  <SRS>{escape(crs.to_wkt())}</SRS>\n'
        f"  <GeoTransform>{x0!r}, {dx!r}, 0, {y1!r}, 0, {-dy!r}</GeoTransform>\n"
        f'  <Metadata>\n    <MDI key="{CLASS_TABLE_TAG}">{escape(class_table_json(card))}</MDI>\n'
        f'    <MDI key="AERIALSEG_MODEL">{escape(card.name)}</MDI>\n  </Metadata>\n'
        f'  <VRTRasterBand dataType="Byte" band="1">\n    <NoDataValue>{NODATA_CLASS}</NoDataValue>\n'
        f"    <ColorInterp>Palette</ColorInterp>\n    <ColorTable>\n{entries}    </ColorTable>\n"
        f"    <CategoryNames>\n{category_names_xml(card)}    </CategoryNames>\n{sources}  </VRTRasterBand>\n"
        "</VRTDataset>\n"
    )
    vrt.write_text(text, encoding="utf-8")
    vrt.with_suffix(".qml").write_text(raster_qml(card), encoding="utf-8")
    return vrt


def _vrt_source(path: Path, t: Any, w: int, h: int, x0: float, y1: float, dx: float, dy: float, base: Path) -> str:
    rel = os.path.relpath(path, base)
    xo, yo = (t.c - x0) / dx, (y1 - t.f) / dy
    xs, ys = w * t.a / dx, h * -t.e / dy
    return (
        f'    <ComplexSource>\n      <SourceFilename relativeToVRT="1">{escape(rel)}</SourceFilename>\n'
        f"      <SourceBand>1</SourceBand>\n"
        f'      <SrcRect xOff="0" yOff="0" xSize="{w}" ySize="{h}"/>\n'
        f'      <DstRect xOff="{xo:.10g}" yOff="{yo:.10g}" xSize="{xs:.10g}" ySize="{ys:.10g}"/>\n'
        f"      <NODATA>{NODATA_CLASS}</NODATA>\n    </ComplexSource>\n"
    )

