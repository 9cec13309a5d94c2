"""vectorize: class raster -> GeoPackage of polygons, one styled layer per class.

The raster is polygonised block by block (4-connectivity). Polygons inside a block are final at once;
polygons touching an internal block edge wait until their block row is done, are merged with their
neighbours across the seam (``union_all``, then split into parts, so pieces that meet only at a
corner stay apart, as within a block) and are final once they no longer touch the next block row. The
result is the same as polygonising the whole raster in one go, whatever the block size, with one
exception that keeps memory and time bounded: a polygon still open after spanning ``MAX_OPEN_HEIGHT``
rows (8192 px: a continent of "land", a river system) is written as it is at the edge of the block
row it has reached, and its continuation below starts a new polygon — the way OpenStreetMap's land
and water polygons are split. Polygons of buildings, roads and fields are never that tall.

Final polygons are filtered by area, then simplified and (for buildings) squared in a local metric
frame: the pixel grid scaled by the true ground size of a pixel, so tolerances are real metres and
right angles are right on the ground in any CRS (EPSG:4326 and Web Mercator included). Rings are
normalised first, so the output does not depend on where a ring started. Polygons are written in
chunks into a hidden temporary GeoPackage that replaces ``output`` only when complete.

A raster without georeferencing has no ground size: unless it is given (``pixel_size_m``), areas and
tolerances are in pixels (the area field is then ``area_px``) and the layers carry the GeoPackage's
undefined Cartesian SRS (srs_id -1), not a made-up CRS.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import sqlite3
import tempfile
import warnings
from collections.abc import Callable, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyogrio
import pyogrio.errors
import rasterio
import shapely
from affine import Affine
from rasterio.errors import RasterioError
from rasterio.features import shapes
from rasterio.windows import Window
from shapely.geometry import Polygon, shape

from aerialseg import style
from aerialseg.card import FALLBACK_COLOURS, NODATA_CLASS, ClassInfo
from aerialseg.errors import AerialSegError, Cancelled, InputError, OutputError, RasterError, first_line
from aerialseg.raster import check_output, ground_pixel_size, open_raster, read_class_table
from aerialseg.scratch import claim_outputs, disk_full, remove_stale, scratch_prefix, write_error

log = logging.getLogger("aerialseg")
DEFAULT_CLASSES = ("building", "road", "water")
CHUNK = 5000  # final polygons of a class buffered before they are written
MAX_OPEN_HEIGHT = 8192  # px: a polygon taller than this is cut at a block row's edge (bounds memory and time)
READ_CACHE_MB = 16  # every block is read once: a bigger GDAL cache only grows memory with the raster
ALIGN = 512  # class rasters are tiled 512 x 512: blocks of 512 px or more are whole tiles
MAX_SIMPLIFY_AREA_CHANGE = 0.1  # simplified outlines changing the area more than this are not used
MAX_SQUARING_AREA_CHANGE = 0.2  # ... nor squared outlines changing it more than this
MIN_AREA_M2 = 1.0  # default minimum polygon area on rasters with a known ground size ...
MIN_AREA_PX = 16  # ... and, in pixels, on rasters without one (a 4 x 4 px speck is noise)
UNDEFINED_CARTESIAN_SRS = "-1"  # the GeoPackage spec's srs_id for coordinates without a CRS
GPKG_VERSION = "1.3"  # GDAL before 3.9 (QGIS 3.22's, for one) warns on every open of a 1.4 GeoPackage
# Output formats by extension; all but GeoPackage hold one layer, with every class in it.
VECTOR_DRIVERS = {".gpkg": "GPKG", ".shp": "ESRI Shapefile", ".geojson": "GeoJSON", ".json": "GeoJSON",
                  ".fgb": "FlatGeobuf"}


def vectorize(
    input: str | Path,
    output: str | Path,
    *,
    classes: Sequence[str | int] | str | int | None = None,
    min_area_m2: float | None = None,
    simplify_m: float | None = None,
    pixel_size_m: float | None = None,
    regularize: bool = False,
    block_size: int = 2048,
    overwrite: bool = False,
    on_progress: Callable[[int, int], None] | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> Path:
    """Turn a class raster into a GeoPackage with one polygon layer per class.

    Args:
        input: a class raster (1 band, uint8, nodata 255) as written by ``aerialseg.classify``.
        output: the GeoPackage to write, or a Shapefile (.shp), GeoJSON (.geojson, .json) or FlatGeobuf
            (.fgb) file, which holds every class in one layer named after the file. GeoPackage layers are
            named after the classes (other formats get no stored style). Each feature has
            ``class_id``, ``class_name`` and ``area_m2`` (ground area of the output polygon; ``area_px``
            in pixels on a raster without georeferencing and ``pixel_size_m``); the CRS is the raster's.
            Classes without polygons get no layer; if no class has any, every requested class gets an
            empty layer so the file is always a valid, openable GeoPackage. Each layer's
            QGIS style is stored in the ``layer_styles`` table. Rasters without georeferencing give
            pixel coordinates with y pointing up (QGIS's convention) and no CRS (GeoPackage srs_id -1).
        classes: class names (case-insensitive) or ids; default: building, road and water, those the
            raster's class table has. Rasters without a class table need ids (named ``class_<id>``).
        min_area_m2: polygons smaller than this ground area (counted in whole pixels) are dropped; default
            1 m², or 16 px on a raster without georeferencing and ``pixel_size_m`` (where it is in pixels).
        simplify_m: Douglas-Peucker tolerance in ground metres, applied after seams are merged;
            default (None) one pixel's ground size, which straightens pixel staircases; 0 keeps every
            pixel corner. In pixels on a raster without georeferencing and ``pixel_size_m``.
        pixel_size_m: the ground size of a pixel of a raster without georeferencing (e.g. the
            ``--input-gsd`` it was classified with): areas and tolerances are then metres. Ignored for
            georeferenced rasters.
        regularize: square building outlines (the class named ``building``) to right angles.
        block_size: pixels per block side; 512 or more is rounded down to a multiple of 512.
        overwrite: replace ``output`` if it exists.
        on_progress: called as ``on_progress(done_blocks, total_blocks)``.
        should_cancel: polled before each block; returning True raises Cancelled, leaving no output.

    Returns:
        The path of the file written.
    """
    out = check_output(output, [input], overwrite)
    driver = _vector_driver(output)
    sizes_ok = all(math.isfinite(v) and v >= 0 for v in (min_area_m2, simplify_m) if v is not None)
    if block_size < 1 or not sizes_ok:
        raise InputError("block_size must be >= 1 and min_area_m2 and simplify_m finite numbers >= 0")
    if pixel_size_m is not None and not (math.isfinite(pixel_size_m) and pixel_size_m > 0):
        raise InputError(f"pixel size {pixel_size_m}: give the ground size of a pixel in metres, a number > 0")
    step = block_size // ALIGN * ALIGN if block_size >= ALIGN else block_size
    with open_raster(input) as ds, claim_outputs([out], overwrite):
        if ds.count != 1 or ds.dtypes[0] != "uint8":
            raise RasterError(f"{input} is not a class raster: expected 1 band of uint8 class ids (as written by "
                              f"aerialseg classify), got {ds.count} band(s) of {ds.dtypes[0]}")
        selected = _select_classes(ds, classes, input)
        frame = _Frame.of(ds, pixel_size_m)
        tol = frame.pixel_m if simplify_m is None else simplify_m
        if min_area_m2 is None:
            min_area_m2 = MIN_AREA_M2 if frame.metric else MIN_AREA_PX
        tmpdir = _scratch_dir(out)
        try:
            final = tmpdir / "final"  # what is moved into place: the output and its sidecars (.shp: .dbf, ...)
            final.mkdir()
            gpkg = final / out.name if driver == "GPKG" else tmpdir / "polygons.gpkg"
            writer = _Writer(gpkg, selected, ds.crs.to_string() if ds.crs else None, frame, min_area_m2, tol,
                             regularize, layer=None if driver == "GPKG" else out.stem)
            with rasterio.Env(GDAL_CACHEMAX=READ_CACHE_MB):
                _polygonize(ds, selected, step, writer, on_progress, should_cancel or (lambda: False))
            writer.close()
            if driver != "GPKG":
                _convert(gpkg, final / out.name, driver, writer.crs)
            for path in final.iterdir():
                os.replace(path, out.parent / path.name)
        except AerialSegError:
            raise
        except (pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError, sqlite3.Error, OSError) as e:
            if disk_full(e, out.parent):
                raise write_error(e, out.parent) from None
            raise OutputError(f"cannot write {out}: {first_line(e)}") from None
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)
    return out


def _vector_driver(output: str | Path) -> str:
    """The OGR driver for an output name; refuses names of formats AerialSeg does not write."""
    driver = VECTOR_DRIVERS.get(Path(output).suffix.lower())
    if driver is None:
        raise OutputError(f"output {output}: polygons are written as GeoPackage, Shapefile, GeoJSON or FlatGeobuf; "
                          "give a name ending in .gpkg, .shp, .geojson or .fgb")
    return driver


def _scratch_dir(out: Path) -> Path:
    remove_stale(out.parent)  # what runs killed earlier left behind
    try:
        return Path(tempfile.mkdtemp(prefix=scratch_prefix(out.name), dir=out.parent))
    except OSError as e:
        raise write_error(e, out.parent) from None


def _convert(gpkg: Path, target: Path, driver: str, crs: str | None) -> None:
    """Copy the one layer of ``gpkg`` into ``target`` in another format, streamed in batches."""
    from pyogrio.raw import open_arrow, write_arrow

    with open_arrow(gpkg, use_pyarrow=False, batch_size=CHUNK) as (meta, stream), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*crs.*was not provided")  # rasters without georeferencing
        write_arrow(stream, target, layer=target.stem, driver=driver, geometry_name=meta["geometry_name"] or "geom",
                    geometry_type="Polygon", crs=crs, encoding="UTF-8" if driver == "ESRI Shapefile" else None)


@dataclass(frozen=True)
class _Frame:
    """Pixel grid <-> local metric frame (pixels scaled by ground size) <-> CRS coordinates."""

    gx: float  # ground metres per pixel along rows
    gy: float  # ... and along columns
    transform: Affine  # pixel -> CRS
    metric: bool  # False: the ground size is unknown, "metres" are pixels

    @classmethod
    def of(cls, ds: Any, pixel_size_m: float | None = None) -> _Frame:
        ground = ground_pixel_size(ds)
        if ground is None and pixel_size_m is not None:
            ground = (pixel_size_m, pixel_size_m)
        elif ground is None:
            log.warning("%s has no georeferencing: areas (area_px) and tolerances are in pixels; give the pixel "
                        "size (--input-gsd) for metres", ds.name)
        transform = Affine(1, 0, 0, 0, -1, 0) if ds.transform == Affine.identity() else ds.transform
        return cls(*(ground or (1.0, 1.0)), transform, ground is not None)

    @property
    def pixel_m(self) -> float:
        return math.sqrt(self.gx * self.gy)

    def to_metres(self, geoms: np.ndarray) -> np.ndarray:
        return shapely.transform(geoms, lambda c: c * (self.gx, self.gy))

    def metres_to_crs(self, geoms: np.ndarray) -> np.ndarray:
        t = self.transform

        def apply(c: np.ndarray) -> np.ndarray:
            col, row = c[:, 0] / self.gx, c[:, 1] / self.gy
            return np.column_stack([t.a * col + t.b * row + t.c, t.d * col + t.e * row + t.f])

        return shapely.transform(geoms, apply)


def _select_classes(ds: Any, classes: Sequence[str | int] | str | int | None, path: str | Path) -> list[ClassInfo]:
    """The ClassInfo of each requested class, with one-line InputErrors for unknown ones."""
    table = read_class_table(ds)
    available = ", ".join(c.name for c in table) if table else "none (the raster has no class table; give ids)"
    if classes is None:
        if table is None:
            raise InputError(f"{path} has no AerialSeg class table; give the classes to vectorise as ids, e.g. [1, 2]")
        chosen = [c for c in table if c.name.lower() in DEFAULT_CLASSES]
        if not chosen:
            raise InputError(f"{path} has none of the default classes ({', '.join(DEFAULT_CLASSES)}); "
                             f"choose classes from: {available}")
        return chosen
    chosen = []
    for item in [classes] if isinstance(classes, (str, int)) else classes:
        if isinstance(item, str) and not item.strip().isdigit():
            match = [c for c in table or () if c.name.lower() == item.strip().lower()]
            if not match:
                raise InputError(f"unknown class '{item}'; available classes: {available}")
        else:
            cid = int(item)
            match = [c for c in table if c.id == cid] if table else []
            if table is None and 0 <= cid < NODATA_CLASS:
                match = [ClassInfo(cid, f"class_{cid}", FALLBACK_COLOURS[cid % len(FALLBACK_COLOURS)])]
            if not match:
                raise InputError(f"unknown class id {cid}; available classes: "
                                 + (", ".join(f"{c.id} {c.name}" for c in table) if table else "ids 0-254"))
        if match[0] not in chosen:
            chosen.append(match[0])
    return chosen


def _polygonize(ds: Any, selected: list[ClassInfo], step: int, writer: _Writer,
                on_progress: Callable[[int, int], None] | None, should_cancel: Callable[[], bool]) -> None:
    """Polygonise ``ds`` block row by block row, merging polygons across block seams."""
    ids = np.array([c.id for c in selected], np.uint8)
    rows, cols = range(0, ds.height, step), range(0, ds.width, step)
    total, done = len(rows) * len(cols), 0
    log.info("vectorising %s: classes %s, %d block(s) of %d px", ds.name, [c.name for c in selected], total, step)
    pending: dict[int, list[Polygon]] = {c.id: [] for c in selected}  # touching a seam: wait for neighbours
    for r0 in rows:
        for c0 in cols:
            if should_cancel():
                raise Cancelled("vectorisation cancelled; no output was written")
            window = Window(c0, r0, min(step, ds.width - c0), min(step, ds.height - r0))
            try:
                data = ds.read(1, window=window)
            except RasterioError as e:
                raise RasterError(f"cannot read {ds.name} near pixel ({c0}, {r0}): {first_line(e)}; "
                                  "the file may be corrupt") from None
            for cid, geoms in _block_polygons(data, window, ids).items():
                seam = _on_internal_edge(shapely.bounds(geoms), window, ds.width, ds.height)
                pending[cid].extend(geoms[seam])
                writer.add(cid, geoms[~seam])
            done += 1
            if on_progress:
                on_progress(done, total)
        row_end = min(r0 + step, ds.height)
        for cid, polys in pending.items():  # this block row is done: merge across its seams
            if polys:
                merged = shapely.get_parts(shapely.union_all(polys))
                merged = shapely.simplify(merged, 0)  # drop the vertices left on the seams
                bounds = shapely.bounds(merged)
                waiting = (bounds[:, 3] == row_end) & (row_end < ds.height)
                waiting &= row_end - bounds[:, 1] < MAX_OPEN_HEIGHT  # a giant polygon is cut here, not held
                pending[cid] = list(merged[waiting])
                writer.add(cid, merged[~waiting])


def _block_polygons(data: np.ndarray, window: Window, ids: np.ndarray) -> dict[int, np.ndarray]:
    """Polygons of the classes ``ids`` in one block, by class, in global pixel coordinates."""
    mask = np.isin(data, ids)
    if not mask.any():
        return {}
    found: dict[int, list[Polygon]] = {}
    for geom, value in shapes(data, mask=mask, connectivity=4,
                              transform=Affine.translation(window.col_off, window.row_off)):
        found.setdefault(int(value), []).append(shape(geom))
    return {cid: np.array(polys, dtype=object) for cid, polys in found.items()}


def _on_internal_edge(bounds: np.ndarray, window: Window, width: int, height: int) -> np.ndarray:
    """Which polygons (by their pixel bounds) touch an edge of ``window`` shared with another block."""
    x0, y0 = window.col_off, window.row_off
    x1, y1 = x0 + window.width, y0 + window.height
    return (((bounds[:, 0] == x0) & (x0 > 0)) | ((bounds[:, 2] == x1) & (x1 < width))
            | ((bounds[:, 1] == y0) & (y0 > 0)) | ((bounds[:, 3] == y1) & (y1 < height)))


class _Writer:
    """Finishes polygons (filter, simplify, square, attributes) and appends them to a GeoPackage."""

    def __init__(self, path: Path, classes: list[ClassInfo], crs: str | None, frame: _Frame, min_area_m2: float,
                 tol: float, regularize: bool, layer: str | None = None):
        self.path, self.crs, self.frame = path, crs, frame
        self.layer = layer  # one layer for every class (formats that hold one layer), or one per class
        self.min_area_m2, self.tol, self.regularize = min_area_m2, tol, regularize
        self.classes = {c.id: c for c in classes}
        self.buffers: dict[int, list[Polygon]] = {c.id: [] for c in classes}
        self.counts: dict[int, int] = {c.id: 0 for c in classes}

    def add(self, cid: int, polys: np.ndarray) -> None:
        self.buffers[cid].extend(polys)
        if len(self.buffers[cid]) >= CHUNK:
            self._flush(cid)

    def close(self) -> None:
        """Write what is buffered, empty layers if nothing was found at all, and the layer styles."""
        for cid in self.classes:
            self._flush(cid)
        layers = [c for c in self.classes.values() if self.counts[c.id]]
        if not layers:
            layers = list(self.classes.values())
            log.warning("no polygons of %s found: writing empty layers", ", ".join(c.name for c in layers))
            for c in layers:
                self._write(c, np.array([], dtype=object), np.array([], float))
        if self.layer is None:
            _write_styles(self.path, layers)
        log.info("polygons written: %s", ", ".join(f"{self.counts[c.id]} {c.name}" for c in layers))

    def _flush(self, cid: int) -> None:
        polys = np.array(self.buffers[cid], dtype=object)
        self.buffers[cid] = []
        if not len(polys):
            return
        f = self.frame
        polys = polys[shapely.area(polys) * f.gx * f.gy >= self.min_area_m2]
        metric = shapely.normalize(f.to_metres(polys))
        if self.tol > 0:  # polygons of a few pixels that simplification would deform keep their outline
            simple = shapely.simplify(metric, self.tol, preserve_topology=True)
            area = shapely.area(metric)
            metric = np.where(np.abs(shapely.area(simple) - area) <= MAX_SIMPLIFY_AREA_CHANGE * area, simple, metric)
        cls = self.classes[cid]
        if self.regularize and cls.name.lower() == "building":  # square outlines at least a pixel simple
            base = metric if self.tol >= f.pixel_m else shapely.simplify(metric, f.pixel_m, preserve_topology=True)
            min_edge = max(2 * self.tol, 3 * f.pixel_m)  # shorter sides are jogs: folded away
            squared = [_square(b, min_edge) for b in base]
            metric = np.array([p if q is None else q for p, q in zip(metric, squared)], dtype=object)
        metric = metric[~shapely.is_empty(metric)]
        if len(metric):
            self._write(cls, f.metres_to_crs(metric), shapely.area(metric))

    def _write(self, cls: ClassInfo, geoms: np.ndarray, areas: np.ndarray) -> None:
        import geopandas as gpd  # imported when first needed: it is slow to import

        area_field = "area_m2" if self.frame.metric else "area_px"
        df = gpd.GeoDataFrame({"class_id": np.full(len(geoms), cls.id, np.int32),
                               "class_name": np.full(len(geoms), cls.name, object),
                               area_field: np.asarray(areas, float)}, geometry=gpd.GeoSeries(geoms), crs=self.crs)
        no_crs = {} if self.crs else {"SRID": UNDEFINED_CARTESIAN_SRS}  # not GDAL's made-up "Undefined SRS"
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*crs.*was not provided")
            pyogrio.write_dataframe(df, self.path, layer=self.layer or cls.name, driver="GPKG", append=True,
                                    geometry_type="Polygon", layer_options=no_crs,
                                    dataset_options={"VERSION": GPKG_VERSION})
        self.counts[cls.id] = self.counts.get(cls.id, 0) + len(geoms)


def _square(poly: Polygon, min_edge: float) -> Polygon | None:
    """``poly`` with every side parallel or perpendicular to the long side of its minimum rotated
    rectangle; None if that fails or changes the area by more than MAX_SQUARING_AREA_CHANGE.
    Holes too small to square are filled."""
    box = np.asarray(shapely.minimum_rotated_rectangle(poly).exterior.coords)
    dx, dy = max(np.diff(box[:3], axis=0), key=lambda v: float(np.hypot(*v)))
    angle = math.atan2(dy, dx)
    shell = _square_ring(np.asarray(poly.exterior.coords), angle, min_edge)
    if shell is None:
        return None
    holes = [_square_ring(np.asarray(r.coords), angle, min_edge) for r in poly.interiors]
    squared = Polygon(shell, [h for h in holes if h is not None])
    if not squared.is_valid or abs(squared.area - poly.area) > MAX_SQUARING_AREA_CHANGE * poly.area:
        return None
    return squared


def _square_ring(coords: np.ndarray, angle: float, min_edge: float) -> np.ndarray | None:
    """Snap a closed ring's edges to the axes rotated by ``angle``; None if fewer than 4 sides remain."""
    cos, sin = math.cos(angle), math.sin(angle)
    p = coords[:-1] @ np.array([[cos, -sin], [sin, cos]])  # rotate by -angle: the axes are now x and y
    d = np.roll(p, -1, axis=0) - p
    mid = p + d / 2
    horizontal = np.abs(d[:, 0]) >= np.abs(d[:, 1])
    lines: list[list[Any]] = []  # [horizontal, sum(length * offset), sum(length)], alternating H and V
    for h, off, length in zip(horizontal, np.where(horizontal, mid[:, 1], mid[:, 0]), np.hypot(d[:, 0], d[:, 1])):
        if lines and lines[-1][0] == h:
            lines[-1][1:] = [lines[-1][1] + length * off, lines[-1][2] + length]
        elif length > 0:
            lines.append([h, length * off, length])
    if len(lines) > 1 and lines[0][0] == lines[-1][0]:
        h, s, w = lines.pop()
        lines[0][1:] = [lines[0][1] + s, lines[0][2] + w]
    while len(lines) > 4:  # fold short sides: drop the shortest, merge its two (parallel) neighbours
        n, offsets = len(lines), [s / w for _, s, w in lines]
        sides = [abs(offsets[(k + 1) % n] - offsets[k - 1]) for k in range(n)]
        i = int(np.argmin(sides))
        if sides[i] >= min_edge:
            break
        prev, nxt = lines[i - 1], lines[(i + 1) % n]
        prev[1:] = [prev[1] + nxt[1], prev[2] + nxt[2]]
        lines = [line for k, line in enumerate(lines) if k not in (i, (i + 1) % n)]
    if len(lines) < 4 or len(lines) % 2:
        return None
    offsets = [s / w for _, s, w in lines]
    nxt = offsets[1:] + offsets[:1]
    corners = [(o2, o1) if line[0] else (o1, o2) for line, o1, o2 in zip(lines, offsets, nxt)]  # (x, y)
    return np.array(corners + corners[:1]) @ np.array([[cos, sin], [-sin, cos]])  # rotate back


def _write_styles(path: Path, layers: list[ClassInfo]) -> None:
    """Store each layer's QGIS style in the GeoPackage's ``layer_styles`` table (as QGIS itself does)."""
    with closing(sqlite3.connect(path)) as db, db:
        geom_column = dict(db.execute("SELECT table_name, column_name FROM gpkg_geometry_columns"))
        db.execute(
            'CREATE TABLE layer_styles (id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, f_table_catalog TEXT(256), '
            "f_table_schema TEXT(256), f_table_name TEXT(256), f_geometry_column TEXT(256), styleName TEXT(30), "
            "styleQML TEXT, styleSLD TEXT, useAsDefault BOOLEAN, description TEXT, owner TEXT(30), ui TEXT(30), "
            "update_time DATETIME DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))"
        )
        db.execute("INSERT INTO gpkg_contents (table_name, data_type, identifier) "
                   "VALUES ('layer_styles', 'attributes', 'layer_styles')")
        db.executemany(
            "INSERT INTO layer_styles (f_table_catalog, f_table_schema, f_table_name, f_geometry_column, styleName, "
            "styleQML, styleSLD, useAsDefault, description, owner) VALUES ('', '', ?, ?, ?, ?, '', 1, ?, '')",
            [(c.name, geom_column.get(c.name, "geom"), c.name, style.polygon_qml(c), f"AerialSeg {c.name} polygons")
             for c in layers],
        )

