"""raster.py: opening, ground pixel size in any CRS, working grid, bands, normalisation, tile reads, outputs."""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import ColorInterp
from rasterio.transform import from_origin
from rasterio.windows import Window

from aerialseg.card import NODATA_CLASS
from aerialseg.errors import OutputError, RasterError
from aerialseg.raster import (
    CLASS_TABLE_TAG,
    ClassRasterWriter,
    TileReader,
    check_bands,
    check_output,
    data_bands,
    ground_pixel_size,
    is_georeferenced,
    normalisation,
    open_raster,
    read_class_table,
    working_grid,
)
from rasters import scene, write_raster
from shared_data import RASTERS, needs_shared_data
from tinymodels import colour_card

NL_RGBA = RASTERS / "nl_aerial_rd_new_1210x718.tif"


def _listing(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


def _ground(path: Path) -> tuple[float, float] | None:
    with rasterio.open(path) as ds:
        return ground_pixel_size(ds)


# ---------------------------------------------------------------- open_raster


@needs_shared_data(NL_RGBA)
def test_open_raster_opens_a_real_orthophoto():
    with open_raster(NL_RGBA) as ds:
        assert (ds.width, ds.height, ds.count) == (1210, 718, 4)
        assert is_georeferenced(ds)


def test_open_raster_missing_file(tmp_path):
    with pytest.raises(RasterError, match="input raster not found") as e:
        open_raster(tmp_path / "nope.tif")
    assert isinstance(e.value, OSError) and "\n" not in str(e.value)


def test_open_raster_text_file_named_tif(tmp_path):
    path = tmp_path / "notes.tif"
    path.write_text("field notes, not pixels\n" * 10)
    with pytest.raises(RasterError, match="is not a raster GDAL can read") as e:
        open_raster(path)
    assert "\n" not in str(e.value)


def test_open_raster_directory(tmp_path):
    folder = tmp_path / "tiles.tif"
    folder.mkdir()
    with pytest.raises(RasterError, match="is a folder; expected a raster file"):
        open_raster(folder)


def test_open_raster_missing_vsi_path():
    with pytest.raises(RasterError, match="is not a raster GDAL can read"):
        open_raster("/vsimem/aerialseg-test-does-not-exist.tif")


def test_reading_a_truncated_tiff_gives_a_raster_error(tmp_path):
    """The header survives, the tiles do not: the read, not the open, must say the file is corrupt."""
    whole = write_raster(tmp_path / "whole.tif", scene(512, 512), tiled=True, blockxsize=128, blockysize=128)
    data = whole.read_bytes()
    cut = tmp_path / "cut.tif"
    cut.write_bytes(data[: len(data) // 2])
    card = colour_card()
    with open_raster(cut) as ds:
        gain, offset = normalisation(ds, card)  # uint8: no read needed
        grid = working_grid(ds, card)
    reader = TileReader(cut, card, grid, gain, offset)
    try:
        with pytest.raises(RasterError, match="the file may be corrupt") as e:
            for y in range(0, 512, 128):
                for x in range(0, 512, 128):
                    reader.read(y, x, 128)
        assert "\n" not in str(e.value)
    finally:
        reader.close()


# ---------------------------------------------------------------- ground pixel size


def test_ground_pixel_size_in_utm(rgb_tif):
    gx, gy = _ground(rgb_tif)  # 0.5 m grid in UTM 33N
    assert gx == pytest.approx(0.5, rel=0.01) and gy == pytest.approx(0.5, rel=0.01)


def test_ground_pixel_size_in_wgs84_degrees(tmp_path):
    """1e-5 degree pixels at 52 N: about 0.686 m east-west, 1.113 m north-south."""
    path = write_raster(tmp_path / "geo.tif", scene(200, 200), crs="EPSG:4326",
                        transform=from_origin(5.0, 52.001, 1e-5, 1e-5))
    gx, gy = _ground(path)
    assert gx == pytest.approx(0.686, rel=0.01)
    assert gy == pytest.approx(1.113, rel=0.01)


def test_ground_pixel_size_in_web_mercator(tmp_path):
    """A 1 m Web Mercator pixel at 60 N is about 0.5 m on the ground (scale 1 / cos(lat))."""
    y60 = 6378137.0 * math.log(math.tan(math.pi / 4 + math.radians(60) / 2))
    path = write_raster(tmp_path / "merc.tif", scene(100, 100), crs="EPSG:3857",
                        transform=from_origin(1_000_000, y60 + 50, 1.0, 1.0))
    gx, gy = _ground(path)
    assert gx == pytest.approx(0.5, rel=0.01) and gy == pytest.approx(0.5, rel=0.01)


def test_ground_pixel_size_in_us_feet(tmp_path):
    path = write_raster(tmp_path / "ny.tif", scene(50, 50), crs="EPSG:2263",
                        transform=from_origin(1_000_000, 200_000, 2, 2))  # 2 ftUS pixels
    gx, gy = _ground(path)
    assert gx == pytest.approx(0.6096, rel=0.01) and gy == pytest.approx(0.6096, rel=0.01)


@needs_shared_data(NL_RGBA)
def test_ground_pixel_size_of_a_real_rd_new_orthophoto():
    with rasterio.open(NL_RGBA) as ds:
        gx, gy = ground_pixel_size(ds)
        assert gx == pytest.approx(ds.res[0], rel=0.01) and gy == pytest.approx(ds.res[1], rel=0.01)


def test_ground_pixel_size_in_a_local_crs_uses_its_unit(tmp_path):
    crs = CRS.from_wkt('LOCAL_CS["site grid",UNIT["metre",1],AXIS["X",EAST],AXIS["Y",NORTH]]')
    path = write_raster(tmp_path / "local.tif", scene(30, 30), crs=crs, transform=from_origin(100, 500, 0.25, 0.25))
    assert _ground(path) == pytest.approx((0.25, 0.25))


def test_a_plain_png_has_no_ground_pixel_size(tmp_path):
    path = write_raster(tmp_path / "photo.png", scene(40, 60), crs=None, driver="PNG")
    with rasterio.open(path) as ds:
        assert ds.crs is None
        assert ground_pixel_size(ds) is None
        assert not is_georeferenced(ds)


# ---------------------------------------------------------------- working grid


def test_working_grid_downsamples_to_the_model_resolution(rgb_tif):
    card = colour_card(gsd_m=1.0)
    with rasterio.open(rgb_tif) as ds:
        gx, gy = ground_pixel_size(ds)
        grid = working_grid(ds, card)
        assert grid.resampled
        assert (grid.sx, grid.sy) == pytest.approx((gx, gy))
        assert (grid.width, grid.height) == (math.ceil(500 * gx), math.ceil(300 * gy))
        assert 250 <= grid.width <= 251 and 150 <= grid.height <= 151
        # Same origin, pixels 1/sx as big in CRS units: the working grid covers the whole input.
        assert (grid.transform.c, grid.transform.f) == (ds.transform.c, ds.transform.f)
        assert grid.transform.a == pytest.approx(ds.transform.a / grid.sx)
        assert grid.width * grid.transform.a >= ds.width * ds.transform.a - 1e-6


def test_working_grid_upsamples_a_coarse_input(rgb_tif):
    with rasterio.open(rgb_tif) as ds:
        grid = working_grid(ds, colour_card(gsd_m=0.25))
    assert grid.resampled and 1000 <= grid.width <= 1001 and 600 <= grid.height <= 601


@pytest.mark.parametrize("gsd", [None, 0.5, 0.505, 0.495])
def test_working_grid_keeps_the_input_grid_at_or_near_the_model_resolution(rgb_tif, gsd):
    with rasterio.open(rgb_tif) as ds:
        grid = working_grid(ds, colour_card(gsd_m=gsd))
        assert not grid.resampled
        assert (grid.width, grid.height, grid.transform) == (ds.width, ds.height, ds.transform)


def test_working_grid_no_resample_flag(rgb_tif):
    with rasterio.open(rgb_tif) as ds:
        grid = working_grid(ds, colour_card(gsd_m=1.0), resample=False)
        assert not grid.resampled and (grid.sx, grid.sy) == (1.0, 1.0)
        assert (grid.width, grid.height, grid.transform) == (ds.width, ds.height, ds.transform)


def test_working_grid_of_an_ungeoreferenced_image_is_native_with_a_warning(tmp_path, caplog):
    path = write_raster(tmp_path / "photo.png", scene(40, 60), crs=None, driver="PNG")
    with rasterio.open(path) as ds, caplog.at_level(logging.WARNING, logger="aerialseg"):
        grid = working_grid(ds, colour_card(gsd_m=1.0))
    assert not grid.resampled and (grid.width, grid.height) == (60, 40)
    assert "no georeferencing" in caplog.text


# ---------------------------------------------------------------- bands


@needs_shared_data(NL_RGBA)
def test_data_bands_skips_alpha_of_a_real_rgba_orthophoto():
    with rasterio.open(NL_RGBA) as ds:
        assert ds.colorinterp[3] == ColorInterp.alpha
        assert data_bands(ds) == [1, 2, 3]
        check_bands(ds, colour_card(), NL_RGBA)  # a 3-band model fits


def test_data_bands_skips_an_alpha_band_in_first_place(tmp_path):
    data = np.concatenate([np.full((1, 20, 30), 255, np.uint8), scene(20, 30)])
    path = write_raster(tmp_path / "argb.tif", data)
    with rasterio.open(path, "r+") as ds:
        ds.colorinterp = [ColorInterp.alpha, ColorInterp.red, ColorInterp.green, ColorInterp.blue]
    with rasterio.open(path) as ds:
        assert data_bands(ds) == [2, 3, 4]


def test_check_bands_counts_image_bands_not_alpha(tmp_path):
    data = np.concatenate([scene(20, 30)[:2], np.full((1, 20, 30), 255, np.uint8)])
    path = write_raster(tmp_path / "two_plus_alpha.tif", data)
    with rasterio.open(path, "r+") as ds:
        ds.colorinterp = [ColorInterp.gray, ColorInterp.undefined, ColorInterp.alpha]
    with rasterio.open(path) as ds, pytest.raises(RasterError, match=r"has 2 image band\(s\) but model 'colour' needs"):
        check_bands(ds, colour_card(), path)


def test_tile_reader_reads_rgb_not_alpha_and_masks_transparent_pixels(tmp_path):
    rgb = scene(100, 120)
    alpha = np.full((1, 100, 120), 255, np.uint8)
    alpha[0, :, :40] = 0  # a transparent strip on the left
    path = write_raster(tmp_path / "rgba.tif", np.concatenate([rgb, alpha]), photometric="RGB", alpha="YES")
    card = colour_card()
    with open_raster(path) as ds:
        gain, offset = normalisation(ds, card)
        grid = working_grid(ds, card)
    reader = TileReader(path, card, grid, gain, offset)
    try:
        image, valid = reader.read(0, 0, 64)
        assert image.shape == (3, 64, 64) and image.dtype == np.float32
        np.testing.assert_allclose(image[:, :, 40:], rgb[:, :64, 40:64] / 255.0, atol=1e-6)
        assert not valid[:, :40].any() and valid[:, 40:].all()
        assert (image[:, :, :40] == 0).all()  # nodata enters the model as the training mean, not raw values
        # A tile past the far edges is padded: the padding is never valid.
        image, valid = reader.read(64, 96, 64)
        assert image.shape == (3, 64, 64)
        np.testing.assert_allclose(image[:, :36, :24], rgb[:, 64:, 96:] / 255.0, atol=1e-6)
        assert valid[:36, :24].all() and not valid[36:, :].any() and not valid[:, 24:].any()
    finally:
        reader.close()


# ---------------------------------------------------------------- normalisation


def _apply(gain, offset, raw):
    return np.asarray(raw, np.float64) * gain + offset


def test_uint8_input_is_normalised_as_value_over_scale_minus_mean_over_std(tmp_path):
    card = colour_card(mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    path = write_raster(tmp_path / "u8.tif", scene(50, 50))
    with rasterio.open(path) as ds:
        gain, offset = normalisation(ds, card)
    assert gain.dtype == np.float32 and offset.dtype == np.float32
    for raw in (0, 128, 255):
        expected = (raw / 255 - np.array(card.mean)) / np.array(card.std)
        np.testing.assert_allclose(_apply(gain, offset, raw), expected, rtol=1e-5, atol=1e-5)


def test_uint16_within_the_scale_is_not_stretched(tmp_path, caplog):
    data = scene(60, 60).astype(np.uint16)  # uint16 file, values 0..255
    path = write_raster(tmp_path / "u16small.tif", data)
    with rasterio.open(path) as ds, caplog.at_level(logging.INFO, logger="aerialseg"):
        gain, offset = normalisation(ds, colour_card())
    np.testing.assert_allclose(gain, 1 / 255, rtol=1e-6)
    np.testing.assert_allclose(offset, 0, atol=1e-7)
    assert "stretching" not in caplog.text


def test_uint16_beyond_the_scale_is_stretched_from_its_percentiles(tmp_path, caplog):
    rng = np.random.default_rng(5)
    data = np.stack([rng.integers(200, 3000, (80, 90)), rng.integers(1000, 9000, (80, 90)),
                     rng.integers(0, 400, (80, 90))]).astype(np.uint16)
    data[:, :10, :10] = 0  # nodata: must not pull the low percentile down
    path = write_raster(tmp_path / "u16.tif", data, nodata=0)
    card = colour_card(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    with rasterio.open(path) as ds, caplog.at_level(logging.INFO, logger="aerialseg"):
        gain, offset = normalisation(ds, card)
    valid = data[:, 10:, :].reshape(3, -1), data[:, :10, 10:].reshape(3, -1)
    sample = np.concatenate(valid, axis=1)
    lo, hi = np.percentile(sample, 0.5, axis=1), np.percentile(sample, 99.5, axis=1)
    assert lo.min() > 0
    # The 0.5 percentile maps to model value 0, the 99.5 percentile to 1, before mean/std.
    np.testing.assert_allclose(_apply(gain, offset, lo), (0 - 0.5) / 0.25, atol=1e-3)
    np.testing.assert_allclose(_apply(gain, offset, hi), (1 - 0.5) / 0.25, atol=1e-3)
    assert "stretching" in caplog.text


def test_uint16_for_a_16_bit_model_is_not_stretched(tmp_path):
    data = np.full((3, 30, 30), 40000, np.uint16)
    path = write_raster(tmp_path / "u16.tif", data)
    with rasterio.open(path) as ds:
        gain, offset = normalisation(ds, colour_card(scale=65535.0))
    np.testing.assert_allclose(gain, 1 / 65535, rtol=1e-6)
    np.testing.assert_allclose(offset, 0, atol=1e-7)


# ---------------------------------------------------------------- check_output


def test_check_output_accepts_a_new_file_and_resolves_it(tmp_path, rgb_tif, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert check_output("lc.tif", [rgb_tif], overwrite=False) == tmp_path / "lc.tif"


def test_check_output_folder_missing(tmp_path, rgb_tif):
    with pytest.raises(OutputError, match="does not exist; create it first") as e:
        check_output(tmp_path / "no" / "lc.tif", [rgb_tif], overwrite=False)
    assert isinstance(e.value, OSError)
    assert not (tmp_path / "no").exists()


def test_check_output_folder_not_writable(rgb_tif):
    # Tests run as root, who may write into any mode-0555 folder; /proc/self is not writable even for root.
    assert Path("/proc/self").is_dir() and not os.access("/proc/self", os.W_OK)
    with pytest.raises(OutputError, match="is not writable"):
        check_output("/proc/self/lc.tif", [rgb_tif], overwrite=False)


def test_check_output_refuses_the_input_in_any_spelling(tmp_path, rgb_tif):
    (tmp_path / "sub").mkdir()
    link = tmp_path / "link.tif"
    link.symlink_to(rgb_tif)
    for same in (rgb_tif, tmp_path / "sub" / ".." / "rgb.tif", link):
        with pytest.raises(OutputError, match="is the input file"):
            check_output(same, [rgb_tif], overwrite=True)


def test_check_output_existing_file_needs_overwrite(tmp_path, rgb_tif):
    out = tmp_path / "lc.tif"
    out.write_bytes(b"old")
    with pytest.raises(OutputError, match="already exists; pass --overwrite"):
        check_output(out, [rgb_tif], overwrite=False)
    assert check_output(out, [rgb_tif], overwrite=True) == out
    assert out.read_bytes() == b"old"  # checking never touches the file


def test_check_output_refuses_a_folder(tmp_path, rgb_tif):
    (tmp_path / "out").mkdir()
    with pytest.raises(OutputError, match="is a folder"):
        check_output(tmp_path / "out", [rgb_tif], overwrite=True)


# ---------------------------------------------------------------- ClassRasterWriter


def _classes(h: int, w: int) -> np.ndarray:
    c = (np.add.outer(np.arange(h) // 7, np.arange(w) // 11) % 3).astype(np.uint8)
    c[:5, :5] = NODATA_CLASS
    return c


def test_writer_without_commit_leaves_nothing(tmp_path, rgb_tif):
    before = _listing(tmp_path)
    card = colour_card()
    with (
        rasterio.open(rgb_tif) as like,
        ClassRasterWriter(tmp_path / "lc.tif", like, card, confidence=tmp_path / "conf.tif") as w,
    ):
        assert _listing(tmp_path) != before  # the hidden work folder exists while writing
        w.write(Window(0, 0, 500, 300), _classes(300, 500), np.full((300, 500), 80, np.uint8))
    assert _listing(tmp_path) == before


def test_writer_error_inside_the_block_leaves_nothing(tmp_path, rgb_tif):
    before = _listing(tmp_path)
    with (
        rasterio.open(rgb_tif) as like,
        pytest.raises(RuntimeError, match="boom"),
        ClassRasterWriter(tmp_path / "lc.tif", like, colour_card()) as w,
    ):
        w.write(Window(0, 0, 500, 300), _classes(300, 500))
        raise RuntimeError("boom")
    assert _listing(tmp_path) == before


def test_committed_writer_makes_a_styled_cog_on_the_input_grid(tmp_path, rgb_tif):
    card = colour_card()
    classes = _classes(300, 500)
    out, conf = tmp_path / "lc.tif", tmp_path / "lc_conf.tif"
    with rasterio.open(rgb_tif) as like:
        with ClassRasterWriter(out, like, card, confidence=conf) as w:
            w.write(Window(0, 0, 500, 160), classes[:160], np.full((160, 500), 70, np.uint8))
            w.write(Window(0, 160, 500, 140), classes[160:], np.full((140, 500), 90, np.uint8))
            w.commit()
        grid = (like.crs, like.transform, like.width, like.height)
    assert _listing(tmp_path) == {"rgb.tif", "lc.tif", "lc.qml", "lc.tif.aux.xml", "lc_conf.tif", "lc_conf.qml"}
    with rasterio.open(out) as ds:
        assert (ds.crs, ds.transform, ds.width, ds.height) == grid
        assert ds.count == 1 and ds.dtypes[0] == "uint8" and ds.nodata == NODATA_CLASS
        assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        np.testing.assert_array_equal(ds.read(1), classes)
        cmap = ds.colormap(1)
        assert [cmap[i] for i in range(3)] == [(*c.rgb, 255) for c in card.classes]
        assert cmap[NODATA_CLASS][3] == 0  # nodata is transparent
        table = json.loads(ds.tags()[CLASS_TABLE_TAG])
        assert table == [{"id": c.id, "name": c.name, "color": c.color} for c in card.classes]
        assert read_class_table(ds) == card.classes
        assert ds.tags()["AERIALSEG_MODEL"] == "colour"
    aux = (tmp_path / "lc.tif.aux.xml").read_text()
    assert "<CategoryNames>" in aux and [f"<Category>{n}</Category>" in aux for n in card.class_names] == [True] * 3
    qml = (tmp_path / "lc.qml").read_text()
    assert qml.count("<paletteEntry") == 3 and 'label="water"' in qml and "#e2a929" in qml
    with rasterio.open(conf) as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        band = ds.read(1)
        assert (band[:160] == 70).all() and (band[160:] == 90).all()
    assert "singlebandgray" in (tmp_path / "lc_conf.qml").read_text()


@needs_shared_data(NL_RGBA)
def test_a_large_class_raster_gets_nearest_neighbour_overviews(tmp_path):
    """On the grid of a real 1210 x 718 orthophoto: overviews exist and hold class ids only (no averaging)."""
    checker = np.where(np.add.outer(np.arange(718), np.arange(1210)) % 2 == 0, 0, 2).astype(np.uint8)
    with rasterio.open(NL_RGBA) as like, ClassRasterWriter(tmp_path / "lc.tif", like, colour_card()) as w:
        w.write(Window(0, 0, 1210, 718), checker)  # averaging 0 and 2 would make 1
        w.commit()
    with rasterio.open(tmp_path / "lc.tif") as ds:
        assert ds.crs == CRS.from_epsg(28992) and ds.overviews(1)
    with rasterio.open(tmp_path / "lc.tif", overview_level=0) as ov:
        assert ov.width < 1210
        assert set(np.unique(ov.read(1))) <= {0, 2}


def test_commit_replaces_an_existing_output(tmp_path, rgb_tif):
    out = tmp_path / "lc.tif"
    out.write_bytes(b"an older result")
    with rasterio.open(rgb_tif) as like, ClassRasterWriter(out, like, colour_card()) as w:
        w.write(Window(0, 0, 500, 300), np.ones((300, 500), np.uint8))
        w.commit()
    with rasterio.open(out) as ds:
        assert (ds.read(1) == 1).all()
    assert _listing(tmp_path) == {"rgb.tif", "lc.tif", "lc.qml", "lc.tif.aux.xml"}


def test_writer_on_an_ungeoreferenced_image(tmp_path):
    src = write_raster(tmp_path / "photo.png", scene(40, 60), crs=None, driver="PNG")
    with rasterio.open(src) as like, ClassRasterWriter(tmp_path / "lc.tif", like, colour_card()) as w:
        w.write(Window(0, 0, 60, 40), np.zeros((40, 60), np.uint8))
        w.commit()
    with rasterio.open(tmp_path / "lc.tif") as ds:
        assert ds.crs is None and ds.transform == Affine.identity() and (ds.width, ds.height) == (60, 40)
