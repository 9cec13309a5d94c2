"""vectorize: seams, holes, ground areas in any CRS, simplification, squaring, GeoPackage, atomic output."""

from __future__ import annotations

import importlib
import json
import logging
import sqlite3
import subprocess
import sys
from pathlib import Path

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from affine import Affine
from pyproj import Geod, Transformer
from rasterio.features import rasterize, shapes
from rasterio.transform import from_origin
from shapely import affinity
from shapely.geometry import shape

from aerialseg import classify
from aerialseg.errors import Cancelled, InputError, OutputError, RasterError
from aerialseg.vectorize import vectorize
from rasters import read_band

TABLE = [{"id": 0, "name": "Building", "color": "#FF0000"}, {"id": 1, "name": "water", "color": "#0000FF"},
         {"id": 2, "name": "land", "color": "#00FF00"}, {"id": 3, "name": "road", "color": "#808080"}]
UTM = ("EPSG:32633", from_origin(500000, 4000000, 0.5, 0.5))
LAND, BUILDING, WATER = 2, 0, 1


def class_raster(path: Path, data: np.ndarray, crs: str | None = UTM[0], transform: Affine | None = UTM[1],
                 table: list[dict] | None = TABLE, count: int = 1, dtype: str = "uint8") -> Path:
    """A class raster like classify writes: uint8, nodata 255, class table in the AERIALSEG_CLASSES tag."""
    profile = {"driver": "GTiff", "width": data.shape[1], "height": data.shape[0], "count": count, "dtype": dtype,
               "nodata": 255, "tiled": True, "blockxsize": 16, "blockysize": 16}
    if crs is not None:
        profile.update(crs=crs, transform=transform)
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(np.stack([data] * count).astype(dtype))
        if table is not None:
            ds.update_tags(AERIALSEG_CLASSES=json.dumps(table))
    return path


def layer(path: Path, name: str) -> gpd.GeoDataFrame:
    return gpd.read_file(path, layer=name, engine="pyogrio")


def whole_raster_polygons(path: Path, value: int) -> list:
    """Reference: the whole raster polygonised in one go by GDAL."""
    with rasterio.open(path) as ds:
        data = ds.read(1)
        return [shape(g) for g, _ in shapes(data, mask=data == value, connectivity=4, transform=ds.transform)]


def same_polygons(a, b) -> bool:
    """Same polygons, in any order and whatever the ring start points (to 1e-6 CRS units)."""
    def key(g):
        return tuple(np.round(g.bounds, 4)) + (round(g.area, 4),)
    a, b = sorted(shapely.normalize(list(a)), key=key), sorted(shapely.normalize(list(b)), key=key)
    return len(a) == len(b) and all(shapely.equals_exact(x, y, 1e-6) for x, y in zip(a, b))


def corner_angles(poly) -> np.ndarray:
    c = np.asarray(poly.exterior.coords)[:-1]
    u, v = c - np.roll(c, 1, axis=0), np.roll(c, -1, axis=0) - c
    cos = (u * v).sum(1) / np.hypot(*u.T) / np.hypot(*v.T)
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


@pytest.fixture
def seam_raster(tmp_path) -> Path:
    """160 x 160 px with buildings across the seams of 64 px blocks: a ring whose hole straddles two
    seams, a blob over the 4-block corner, and two pixels meeting diagonally across a seam."""
    a = np.full((160, 160), LAND, np.uint8)
    a[40:110, 30:100] = BUILDING
    a[55:95, 50:80] = LAND  # the hole
    a[120:140, 60:70] = BUILDING  # crosses x = 64 only
    a[100:118, 120:135] = WATER
    a[127, 127] = a[128, 128] = BUILDING  # touch at a corner only: two polygons, as with 4-connectivity
    a[60:70, 120:140] = BUILDING
    a[64:66, 126:128] = LAND  # a hole right on the y = 64 seam
    return class_raster(tmp_path / "seams.tif", a)


def test_polygons_across_block_seams_equal_whole_raster_polygonisation(seam_raster, tmp_path):
    out = vectorize(seam_raster, tmp_path / "v.gpkg", block_size=64, min_area_m2=0, simplify_m=0)
    got = layer(out, "Building")
    assert same_polygons(got.geometry, whole_raster_polygons(seam_raster, BUILDING))
    ring = got.loc[got.area_m2.idxmax()].geometry
    assert len(ring.interiors) == 1 and ring.area == pytest.approx((70 * 70 - 40 * 30) * 0.25)
    assert sorted(len(g.interiors) for g in got.geometry) == [0, 0, 0, 1, 1]
    assert same_polygons(layer(out, "water").geometry, whole_raster_polygons(seam_raster, WATER))


def test_block_size_never_changes_the_output(tmp_path):
    """Random classes (many seams, corners and holes), default simplification, several block sizes."""
    rng = np.random.default_rng(0)
    a = rng.choice([BUILDING, WATER, LAND], size=(90, 120), p=[0.45, 0.15, 0.4]).astype(np.uint8)
    src = class_raster(tmp_path / "noise.tif", a)
    ref = vectorize(src, tmp_path / "ref.gpkg", block_size=4096, min_area_m2=0)
    for block in (32, 13):
        out = vectorize(src, tmp_path / f"b{block}.gpkg", block_size=block, min_area_m2=0)
        for name in ("Building", "water"):
            assert same_polygons(layer(out, name).geometry, layer(ref, name).geometry)


def test_a_giant_polygon_is_cut_once_it_is_taller_than_the_limit(tmp_path, monkeypatch):
    """A river crossing the whole raster is written in pieces of at most MAX_OPEN_HEIGHT (+ a block row)
    rows, cut at block-row edges, so that memory and time stay bounded; smaller polygons stay whole."""
    monkeypatch.setattr(importlib.import_module("aerialseg.vectorize"), "MAX_OPEN_HEIGHT", 64)
    a = np.full((200, 60), LAND, np.uint8)
    a[:, 20:30] = WATER  # 200 rows tall
    a[40:100, 40:50] = BUILDING  # 60 rows tall, across the seams at rows 64: stays whole
    src = class_raster(tmp_path / "river.tif", a)
    out = vectorize(src, tmp_path / "v.gpkg", block_size=32, min_area_m2=0, simplify_m=0)
    rows = sorted((round((4000000 - g.bounds[3]) / 0.5), round((4000000 - g.bounds[1]) / 0.5))
                  for g in layer(out, "water").geometry)
    assert rows == [(0, 64), (64, 128), (128, 192), (192, 200)]  # cut at the first row edge past 64 rows
    assert len(layer(out, "Building")) == 1
    assert same_polygons(layer(out, "Building").geometry, whole_raster_polygons(src, BUILDING))


@pytest.mark.parametrize("crs,transform", [
    UTM,
    ("EPSG:4326", from_origin(10.0, 50.001, 1e-5, 1e-5)),  # ~0.72 x 1.11 m pixels
    ("EPSG:3857", from_origin(1_000_000, 8_400_000, 1.0, 1.0)),  # ~60 deg N: ~0.5 m on the ground
])
def test_min_area_and_areas_are_true_ground_square_metres(tmp_path, crs, transform):
    a = np.full((200, 200), LAND, np.uint8)
    sizes = {(20, 20): 2, (80, 20): 8, (140, 20): 16, (20, 100): 40}  # (row, col) of squares -> side in px
    for (r, c), side in sizes.items():
        a[r : r + side, c : c + side] = BUILDING
    src = class_raster(tmp_path / "sq.tif", a, crs, transform)
    with rasterio.open(src) as ds:
        to_lonlat = Transformer.from_crs(ds.crs, "EPSG:4326", always_xy=True)
    geod = Geod(ellps="WGS84")

    def ground_area(geom) -> float:
        return abs(geod.geometry_area_perimeter(shapely.transform(geom, lambda c: np.column_stack(
            to_lonlat.transform(c[:, 0], c[:, 1]))))[0])

    pixel_m2 = ground_area(shapely.box(*(transform @ (100, 101)), *(transform @ (101, 100))))
    min_area = 20 * pixel_m2  # keeps the 8, 16 and 40 px squares, drops the 2 px one (4 px of area)
    got = layer(vectorize(src, tmp_path / "v.gpkg", min_area_m2=min_area), "Building")
    assert sorted(np.round(got.area_m2 / pixel_m2).astype(int)) == [64, 256, 1600]
    for geom, area in zip(got.geometry, got.area_m2):
        assert area == pytest.approx(ground_area(geom), rel=0.01)
    assert got.crs.to_epsg() == int(crs.split(":")[1])


def test_simplification_straightens_staircases_within_tolerance(tmp_path):
    a = rasterize([(affinity.rotate(shapely.box(25, 35, 95, 85), 30), BUILDING)], out_shape=(120, 120), fill=LAND,
                  dtype="uint8")
    src = class_raster(tmp_path / "rot.tif", a, "EPSG:32633", from_origin(500000, 4000000, 1, 1))
    raw = layer(vectorize(src, tmp_path / "raw.gpkg", simplify_m=0), "Building").geometry[0]
    for tol in (None, 2.0):  # default: one pixel (1 m here)
        simple = layer(vectorize(src, tmp_path / f"s{tol}.gpkg", simplify_m=tol), "Building").geometry[0]
        assert len(simple.exterior.coords) < len(raw.exterior.coords) / 4
        assert simple.area == pytest.approx(raw.area, rel=0.03)
        assert shapely.hausdorff_distance(simple, raw) <= (tol or 1.0) * 1.01
    tiny = np.full((20, 20), LAND, np.uint8)
    tiny[5, 5] = tiny[10, 10:12] = BUILDING  # polygons of 1 and 2 px keep their shape, not triangles
    got = layer(vectorize(class_raster(tmp_path / "t.tif", tiny), tmp_path / "t.gpkg", min_area_m2=0), "Building")
    assert sorted(got.area_m2) == pytest.approx([0.25, 0.5], rel=0.001)
    assert all(len(g.exterior.coords) == 5 for g in got.geometry)


def test_regularize_squares_buildings_only(tmp_path):
    """A rotated rectangle with a noisy outline becomes four right angles along the rectangle."""
    rng = np.random.default_rng(3)
    rect = affinity.rotate(shapely.box(30, 40, 90, 75), 27, origin="centroid")
    a = rasterize([(rect, BUILDING)], out_shape=(120, 240), fill=LAND, dtype="uint8")
    a[:, 120:] = np.where(a[:, :120] == BUILDING, WATER, LAND)  # the same shape as water
    band = rasterize([(rect.buffer(1).difference(rect.buffer(-1)), 1)], out_shape=(120, 240), dtype="uint8") > 0
    band[:, 120:] = band[:, :120]
    flip = band & (rng.random(band.shape) < 0.2)
    a[flip & (a == BUILDING)], a[flip & (a == LAND)] = LAND, BUILDING  # noise on both sides of the outline
    src = class_raster(tmp_path / "house.tif", a, "EPSG:32633", from_origin(500000, 4000000, 1, 1))
    plain = layer(vectorize(src, tmp_path / "p.gpkg", classes=["building"]), "Building")
    for tol in (None, 0):  # squaring works on at least pixel-simplified outlines
        out = vectorize(src, tmp_path / f"r{tol}.gpkg", regularize=True, block_size=64, simplify_m=tol)
        got = layer(out, "Building")
        house = got.loc[got.area_m2.idxmax()].geometry
        assert len(house.exterior.coords) == 5 and house.is_valid
        np.testing.assert_allclose(corner_angles(house), 90, atol=0.01)
        c = np.asarray(house.exterior.coords)
        edge_angles = np.degrees(np.arctan2(-np.diff(c[:, 1]), np.diff(c[:, 0]))) % 90  # y up in the CRS: flip
        np.testing.assert_allclose(edge_angles, 27, atol=1.5)
        assert house.area == pytest.approx(plain.geometry[plain.area_m2.idxmax()].area, rel=0.05)
    water = layer(out, "water")
    assert len(water.geometry[water.area_m2.idxmax()].exterior.coords) > 5  # only buildings are squared



def test_regularize_keeps_an_l_shaped_building_l_shaped(tmp_path):
    rng = np.random.default_rng(5)
    ell = affinity.rotate(shapely.box(20, 20, 80, 45).union(shapely.box(20, 20, 45, 90)), -38, origin="centroid")
    a = rasterize([(ell, BUILDING)], out_shape=(120, 120), fill=LAND, dtype="uint8")
    band = rasterize([(ell.buffer(1).difference(ell.buffer(-1)), 1)], out_shape=(120, 120), dtype="uint8") > 0
    flip = band & (rng.random(band.shape) < 0.2)
    a[flip & (a == BUILDING)], a[flip & (a == LAND)] = LAND, BUILDING
    src = class_raster(tmp_path / "ell.tif", a, "EPSG:32633", from_origin(500000, 4000000, 0.3, 0.3))
    got = layer(vectorize(src, tmp_path / "ell.gpkg", regularize=True, min_area_m2=20), "Building")
    assert len(got) == 1 and len(got.geometry[0].exterior.coords) == 7
    np.testing.assert_allclose(corner_angles(got.geometry[0]), 90, atol=0.01)
    assert got.area_m2[0] == pytest.approx(ell.area * 0.09, rel=0.05)

def test_attributes_crs_layers_and_default_classes(seam_raster, tmp_path):
    out = vectorize(seam_raster, tmp_path / "v.gpkg")
    layers = dict(pyogrio.list_layers(out))
    assert set(layers) == {"Building", "water", "layer_styles"}  # no road pixels: no road layer; land not asked
    info = pyogrio.read_info(out, layer="Building")
    assert info["crs"] == "EPSG:32633" and info["geometry_type"] == "Polygon"
    assert list(info["fields"]) == ["class_id", "class_name", "area_m2"]
    assert info["ogr_types"] == ["OFTInteger", "OFTString", "OFTReal"]
    got = layer(out, "water")
    assert (got.class_id == WATER).all() and (got.class_name == "water").all()
    assert got.area_m2.iloc[0] == pytest.approx(18 * 15 * 0.25, rel=0.005)  # UTM scale factor < 0.5%
    only = vectorize(seam_raster, tmp_path / "w.gpkg", classes=["WATER", 0], overwrite=True)
    assert set(dict(pyogrio.list_layers(only))) == {"water", "Building", "layer_styles"}


def test_layers_carry_their_qgis_style(seam_raster, tmp_path):
    out = vectorize(seam_raster, tmp_path / "v.gpkg")
    with sqlite3.connect(out) as db:
        rows = db.execute("SELECT f_table_catalog, f_table_schema, f_table_name, f_geometry_column, styleName, "
                          "styleQML, useAsDefault, update_time FROM layer_styles ORDER BY f_table_name").fetchall()
        geom = dict(db.execute("SELECT table_name, column_name FROM gpkg_geometry_columns"))
        registered = db.execute("SELECT data_type FROM gpkg_contents WHERE table_name = 'layer_styles'").fetchone()
    assert [r[2] for r in rows] == ["Building", "water"] and registered == ("attributes",)
    for catalog, schema, table, column, name, qml, default, updated in rows:
        assert (catalog, schema, column, name, default) == ("", "", geom[table], table, 1) and updated
        assert qml.startswith("<!DOCTYPE qgis") and "<renderer-v2" in qml
    assert 'v="255,0,0,255"' in rows[0][5] and 'v="0,0,255,255"' in rows[1][5]
    assert len(pyogrio.read_dataframe(out, layer="layer_styles")) == 2  # GDAL (and so QGIS) can read it


def test_cancel_and_errors_leave_nothing_behind(seam_raster, tmp_path):
    calls = []
    with pytest.raises(Cancelled):
        vectorize(seam_raster, tmp_path / "v.gpkg", block_size=64, should_cancel=lambda: len(calls) >= 3,
                  on_progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1, 9), (2, 9), (3, 9)]
    rgb = tmp_path / "rgb.tif"
    class_raster(rgb, np.zeros((8, 8), np.uint8), count=3)
    with pytest.raises(RasterError, match="expected 1 band of uint8") as e:
        vectorize(rgb, tmp_path / "v.gpkg")
    assert "\n" not in str(e.value)
    with pytest.raises(RasterError, match="float32"):
        vectorize(class_raster(tmp_path / "f.tif", np.zeros((8, 8)), dtype="float32"), tmp_path / "v.gpkg")
    with pytest.raises(RasterError, match="not found"):
        vectorize(tmp_path / "missing.tif", tmp_path / "v.gpkg")
    with pytest.raises(InputError, match=r"unknown class 'roof'; available classes: Building, water, land, road$"):
        vectorize(seam_raster, tmp_path / "v.gpkg", classes=["water", "roof"])
    with pytest.raises(InputError, match="unknown class id 9"):
        vectorize(seam_raster, tmp_path / "v.gpkg", classes=[9])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.tif", "rgb.tif", "seams.tif"]


def test_progress_and_overwrite_rules(seam_raster, tmp_path):
    out = tmp_path / "v.gpkg"
    calls = []
    vectorize(seam_raster, out, block_size=64, on_progress=lambda d, t: calls.append((d, t)))
    assert calls == [(i, 9) for i in range(1, 10)]
    before = out.read_bytes()
    with pytest.raises(OutputError, match="already exists"):
        vectorize(seam_raster, out, classes=["water"])
    assert out.read_bytes() == before
    vectorize(seam_raster, out, classes=["water"], overwrite=True)
    assert set(dict(pyogrio.list_layers(out))) == {"water", "layer_styles"}
    with pytest.raises(OutputError, match="is the input"):
        vectorize(seam_raster, seam_raster, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seams.tif", "v.gpkg"]


def test_no_class_table_no_georeferencing_and_no_polygons(tmp_path, caplog):
    a = np.full((30, 40), 5, np.uint8)
    a[2:6, 10:20] = 7
    src = class_raster(tmp_path / "plain.tif", a, crs=None, table=None)
    with pytest.raises(InputError, match="no AerialSeg class table"):
        vectorize(src, tmp_path / "v.gpkg")
    with caplog.at_level(logging.WARNING, logger="aerialseg"):
        out = vectorize(src, tmp_path / "v.gpkg", classes=[7, "5"], min_area_m2=0)
    assert "no georeferencing" in caplog.text
    got = layer(out, "class_7")
    assert got.class_name[0] == "class_7" and got.area_px[0] == 40
    assert got.total_bounds.tolist() == [10, -6, 20, -2]  # pixel coordinates, y up (as QGIS shows the raster)
    assert layer(out, "class_5").area_px.sum() == 30 * 40 - 40
    none = vectorize(class_raster(tmp_path / "land.tif", np.full((20, 20), LAND, np.uint8)), tmp_path / "e.gpkg")
    layers = dict(pyogrio.list_layers(none))
    assert set(layers) == {"Building", "water", "road", "layer_styles"}  # nothing found: empty, styled layers
    assert all(pyogrio.read_info(none, layer=n)["features"] == 0 for n in ("Building", "water", "road"))


def test_classify_then_vectorize(rgb_tif, colour_model, tmp_path):
    """The real pipeline: a class raster from classify (tiny ONNX model) vectorised across seams."""
    classes = classify(rgb_tif, tmp_path / "lc.tif", colour_model)
    out = vectorize(classes, tmp_path / "lc.gpkg", block_size=128, min_area_m2=0, simplify_m=0)
    pixels = read_band(classes)
    for name, cid in (("building", 0), ("water", 1)):
        got = layer(out, name)
        assert got.area_m2.sum() / 0.25 == pytest.approx((pixels == cid).sum(), rel=0.005)
        assert same_polygons(got.geometry, whole_raster_polygons(classes, cid))


def test_raster_without_georeferencing_has_pixel_areas_and_no_made_up_crs(tmp_path):
    """Areas named for their unit (pixels), a minimum area meaningful in pixels, srs_id -1 (not GDAL's 99999)."""
    a = np.full((40, 40), LAND, np.uint8)
    a[2:5, 2:5] = BUILDING  # 9 px: a speck, dropped by the default 16 px minimum
    a[10:15, 10:14] = BUILDING  # 20 px
    src = class_raster(tmp_path / "plain.tif", a, crs=None)
    out = vectorize(src, tmp_path / "px.gpkg", classes=["Building"])
    got = layer(out, "Building")
    assert list(got.columns) == ["class_id", "class_name", "area_px", "geometry"] and list(got.area_px) == [20]
    with sqlite3.connect(out) as db:
        assert [r[0] for r in db.execute("SELECT srs_id FROM gpkg_geometry_columns")] == [-1]
        assert db.execute("SELECT count(*) FROM gpkg_spatial_ref_sys WHERE srs_id = 99999").fetchone()[0] == 0
        assert db.execute("PRAGMA user_version").fetchone()[0] == 10300  # GeoPackage 1.3: QGIS 3.22 reads it quietly
    metres = layer(vectorize(src, tmp_path / "m.gpkg", classes=["Building"], pixel_size_m=0.5), "Building")
    assert sorted(metres.area_m2) == [2.25, 5.0]  # 9 and 20 px of 0.25 m²: both above the default 1 m²
    assert metres.total_bounds.tolist() == [2, -15, 14, -2]  # still on the raster's pixel grid
    with pytest.raises(InputError, match="pixel size"):
        vectorize(src, tmp_path / "bad.gpkg", pixel_size_m=0)


def test_pixel_size_is_ignored_for_georeferenced_rasters(tmp_path):
    a = np.full((20, 20), LAND, np.uint8)
    a[2:6, 2:6] = BUILDING
    src = class_raster(tmp_path / "utm.tif", a)
    got = layer(vectorize(src, tmp_path / "v.gpkg", classes=["Building"], pixel_size_m=3.0), "Building")
    assert list(got.area_m2) == [pytest.approx(4.0, rel=0.005)]  # 16 px of 0.5 m (UTM scale), its own size
    assert got.crs == "EPSG:32633"


def test_map_cli_input_gsd_gives_areas_in_square_metres(colour_model, tmp_path):
    """`map --input-gsd` on a plain PNG: the pixel size reaches vectorise; without it areas stay pixels."""
    from PIL import Image

    from rasters import scene

    png = tmp_path / "drone.png"
    Image.fromarray(scene(120, 160, seed=3).transpose(1, 2, 0)).save(png)
    for gsd, folder in ((["--input-gsd", "0.5"], "m"), ([], "px")):
        r = subprocess.run([sys.executable, "-m", "aerialseg.cli", "map", png, tmp_path / folder, "-m", colour_model,
                            "--classes", "building", "--no-resample", *gsd], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    classes = read_band(tmp_path / "m" / "drone_landcover.tif")
    metres = layer(tmp_path / "m" / "drone_features.gpkg", "building")
    pixels = layer(tmp_path / "px" / "drone_features.gpkg", "building")
    assert "area_px" not in metres and "area_m2" not in pixels
    assert metres.area_m2.sum() == pytest.approx((classes == 0).sum() * 0.25, rel=0.02)
    assert len(metres) >= len(pixels) > 0 and pixels.area_px.min() >= 16  # 1 m² is 4 px of 0.5 m
