"""classify: grid, classes, seamless blending, resampling, nodata, formats, atomic outputs."""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from rasterio.transform import from_origin

from aerialseg import classify
from aerialseg.errors import Cancelled, ModelError, RasterError
from aerialseg.raster import read_class_table
from aerialseg.runtime import gpu_present
from rasters import expected_classes, read_band, scene, write_raster
from shared_data import RASTERS, needs_shared_data


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_output_is_on_the_input_grid_and_styled(rgb_tif, colour_model, tmp_path):
    out = classify(rgb_tif, tmp_path / "lc.tif", colour_model)
    with rasterio.open(rgb_tif) as src, rasterio.open(out) as dst:
        assert (dst.crs, dst.transform, dst.width, dst.height) == (src.crs, src.transform, src.width, src.height)
        assert dst.count == 1 and dst.dtypes[0] == "uint8" and dst.nodata == 255
        assert dst.colormap(1)[0] == (60, 16, 152, 255)
        assert [c.name for c in read_class_table(dst)] == ["building", "water", "land"]
        assert dst.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG" and dst.block_shapes == [(512, 512)]
        np.testing.assert_array_equal(dst.read(1), expected_classes(src.read()))
    assert (tmp_path / "lc.qml").read_text().count("paletteEntry") == 3
    assert "<Category>water</Category>" in (tmp_path / "lc.tif.aux.xml").read_text()


@pytest.mark.parametrize("tile,overlap,block", [(64, 16, 48), (64, 0, 2048), (96, 32, 128), (128, 64, 64)])
def test_pointwise_model_gives_the_same_raster_whatever_the_tiling(
    rgb_tif, colour_model, tmp_path, tile, overlap, block
):
    out = classify(rgb_tif, tmp_path / "lc.tif", colour_model, tile_size=tile, overlap=overlap, block_size=block)
    np.testing.assert_array_equal(read_band(out), expected_classes(rasterio.open(rgb_tif).read()))


def test_block_split_never_changes_the_output(rgb_tif, conv_model, tmp_path):
    """The tile grid is global and sums are exact: any block size gives the same bytes."""
    ref = read_band(classify(rgb_tif, tmp_path / "a.tif", conv_model, block_size=4096, batch_size=1))
    for i, block in enumerate((48, 96, 144)):
        out = classify(rgb_tif, tmp_path / f"b{i}.tif", conv_model, block_size=block, batch_size=3)
        np.testing.assert_array_equal(read_band(out), ref)


def test_blending_leaves_no_seams(tmp_path, conv_model):
    """A CNN-like model on a uniform-ish scene: tile edges must not show in the class raster or confidence."""
    rng = np.random.default_rng(1)
    img = np.clip(rng.normal([[[140]], [[120]], [[125]]], 6, size=(3, 256, 256)), 0, 255).astype(np.uint8)
    src = write_raster(tmp_path / "flat.tif", img)
    conf = tmp_path / "conf.tif"
    classify(src, tmp_path / "lc.tif", conv_model, confidence=conf)
    c = read_band(conf).astype(float)
    edges = [48 * k + d for k in range(1, 5) for d in range(16)]  # the overlap strips
    inner = [i for i in range(256) if i not in edges]
    assert abs(c[:, edges].mean() - c[:, inner].mean()) < 1.0
    assert abs(c[edges, :].mean() - c[inner, :].mean()) < 1.0


def test_tta_of_an_equivariant_model_changes_nothing(rgb_tif, colour_model, conv_model, tmp_path):
    base = read_band(classify(rgb_tif, tmp_path / "a.tif", colour_model))
    for mode in ("flip", "d4"):
        out = classify(rgb_tif, tmp_path / f"{mode}.tif", colour_model, tta=mode)
        np.testing.assert_array_equal(read_band(out), base)
    conv = read_band(classify(rgb_tif, tmp_path / "c.tif", conv_model, tta="d4"))
    assert set(np.unique(conv)) <= {0, 1, 2}


def test_resampling_maps_a_known_pattern(tmp_path, gsd_model):
    """0.25 m input, 1 m model: tiles run on a 4x smaller grid and classes land back on the input grid."""
    img = np.zeros((3, 512, 512), np.uint8)
    yy, xx = np.mgrid[0:512, 0:512]
    red = ((yy // 64) + (xx // 64)) % 2 == 0  # 16 m squares
    img[0][red] = 230
    img[2][~red] = 230
    src = write_raster(tmp_path / "fine.tif", img, transform=from_origin(500000, 4000000, 0.25, 0.25))
    totals: list[int] = []
    out = classify(src, tmp_path / "lc.tif", gsd_model, on_progress=lambda d, t: totals.append(t))
    assert totals[-1] == 3 * 3  # a 128 px working grid: 3 x 3 tiles of 64 px with 16 px overlap
    got = read_band(out)
    assert got.shape == (512, 512)
    agree = (got == np.where(red, 0, 1)).mean()
    assert agree > 0.98, agree
    totals.clear()
    classify(src, tmp_path / "native.tif", gsd_model, resample=False, on_progress=lambda d, t: totals.append(t))
    assert totals[-1] == 11 * 11


def test_geographic_input_is_resampled_by_true_ground_size(tmp_path, gsd_model):
    """EPSG:4326 pixels of 1e-5 degrees at 52 N are 0.69 x 1.11 m: the working grid follows metres."""
    img = scene(200, 300)
    src = write_raster(tmp_path / "geo.tif", img, crs="EPSG:4326", transform=from_origin(5.0, 52.0, 1e-5, 1e-5))
    totals: list[int] = []
    out = classify(src, tmp_path / "lc.tif", gsd_model, on_progress=lambda d, t: totals.append(t))
    # working grid: ceil(300 * 0.686) = 206 wide, ceil(200 * 1.113) = 223 high -> 4 x 5 tiles
    assert totals[-1] == 4 * 5
    with rasterio.open(out) as dst, rasterio.open(src) as s:
        assert (dst.crs, dst.transform, dst.shape) == (s.crs, s.transform, s.shape)


def test_nodata_and_alpha_become_the_nodata_class(tmp_path, colour_model, caplog):
    img = scene(300, 400)
    img[:, :, :150] = 0
    nod = write_raster(tmp_path / "nodata.tif", img, nodata=0)
    out = read_band(classify(nod, tmp_path / "a.tif", colour_model))
    assert (out[:, :150] == 255).all() and (out[:, 150:] != 255).all()

    alpha = np.full((1, 300, 400), 255, np.uint8)
    alpha[:, 100:200, :] = 0
    rgba = write_raster(tmp_path / "rgba.tif", np.concatenate([scene(300, 400), alpha]), photometric="RGB", alpha="YES")
    caplog.set_level(logging.INFO, logger="aerialseg")
    out = read_band(classify(rgba, tmp_path / "b.tif", colour_model, block_size=48))
    assert (out[100:200] == 255).all() and (out[:100] != 255).all() and (out[200:] != 255).all()


def test_empty_tiles_are_skipped(tmp_path, colour_model, caplog):
    img = scene(256, 256)
    img[:, 128:, :] = 0
    src = write_raster(tmp_path / "half.tif", img, nodata=0)
    caplog.set_level(logging.INFO, logger="aerialseg")
    classify(src, tmp_path / "a.tif", colour_model)
    assert "(10 empty, skipped)" in caplog.text  # tile rows starting at 144 and 192 lie in the nodata half


def test_all_nodata_raster_is_an_error_and_leaves_nothing(tmp_path, colour_model):
    src = write_raster(tmp_path / "empty.tif", np.zeros((3, 100, 100), np.uint8), nodata=0)
    with pytest.raises(RasterError, match="no valid pixels"):
        classify(src, tmp_path / "a.tif", colour_model)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.tif"]


def test_uint16_and_multiband_inputs(tmp_path, colour_model):
    img = scene(200, 200)
    ref = expected_classes(img)
    fits = write_raster(tmp_path / "u16.tif", img.astype(np.uint16))  # values within 0..255: used as they are
    np.testing.assert_array_equal(read_band(classify(fits, tmp_path / "a.tif", colour_model)), ref)
    wide = write_raster(tmp_path / "u16w.tif", img.astype(np.uint16) * 16)  # 12-bit data: stretched
    assert (read_band(classify(wide, tmp_path / "b.tif", colour_model)) == ref).mean() > 0.9
    nir = np.concatenate([img, np.full((1, 200, 200), 77, np.uint8)])  # RGBN: the model takes bands 1-3
    rgbn = write_raster(tmp_path / "rgbn.tif", nir)
    np.testing.assert_array_equal(read_band(classify(rgbn, tmp_path / "c.tif", colour_model)), ref)


def test_single_band_input_for_an_rgb_model_is_refused(tmp_path, colour_model):
    src = write_raster(tmp_path / "grey.tif", scene(64, 64)[:1])
    with pytest.raises(RasterError, match="1 image band"):
        classify(src, tmp_path / "a.tif", colour_model)
    assert not (tmp_path / "a.tif").exists()


@pytest.mark.parametrize("fmt", ["striped", "bigtiff", "png", "jpeg", "vrt"])
def test_input_formats(tmp_path, colour_model, fmt, caplog):
    img = scene(150, 170)
    if fmt == "striped":
        src = write_raster(tmp_path / "s.tif", img, tiled=False)
    elif fmt == "bigtiff":
        src = write_raster(tmp_path / "b.tif", img, BIGTIFF="YES", tiled=True, blockxsize=64, blockysize=64)
    elif fmt in ("png", "jpeg"):
        src = write_raster(tmp_path / f"i.{fmt}", img, crs=None, driver=fmt.upper())
    else:
        src = tmp_path / "v.vrt"
        rasterio.shutil.copy(write_raster(tmp_path / "base.tif", img), src, driver="VRT")
    caplog.set_level(logging.WARNING, logger="aerialseg")
    out = read_band(classify(src, tmp_path / "lc.tif", colour_model))
    with rasterio.open(src) as s:
        data = s.read()
    assert out.shape == (150, 170)
    np.testing.assert_array_equal(out, expected_classes(data))
    assert ("no georeferencing" in caplog.text) == (fmt in ("png", "jpeg"))


def test_cancel_leaves_no_output_and_the_input_untouched(rgb_tif, colour_model, tmp_path):
    before = _md5(rgb_tif)
    calls = iter(range(100))
    with pytest.raises(Cancelled):
        classify(rgb_tif, tmp_path / "out.tif", colour_model, block_size=48, should_cancel=lambda: next(calls) > 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rgb.tif"]
    assert _md5(rgb_tif) == before


def test_confidence_raster(rgb_tif, colour_model, tmp_path):
    classify(rgb_tif, tmp_path / "lc.tif", colour_model, confidence=tmp_path / "conf.tif")
    conf = read_band(tmp_path / "conf.tif")
    assert conf.shape == (300, 500) and conf.max() <= 100 and conf.min() >= 33
    assert (tmp_path / "conf.qml").exists()


@needs_shared_data(RASTERS / "nl_aerial_rd_new_1210x718.tif", RASTERS / "rasterio_RGB.byte.tif")
def test_real_orthophotos_keep_their_grid_and_nodata(tmp_path, colour_model):
    for name in ("nl_aerial_rd_new_1210x718.tif", "rasterio_RGB.byte.tif"):
        src = RASTERS / name
        out = classify(src, tmp_path / f"{name}.lc.tif", colour_model)
        with rasterio.open(src) as s, rasterio.open(out) as d:
            assert (d.crs, d.transform, d.shape) == (s.crs, s.transform, s.shape)
            classes = d.read(1)
            np.testing.assert_array_equal(classes == 255, s.dataset_mask() == 0)


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_present(), reason="needs an NVIDIA GPU (none on this machine)")
def test_cuda_provider_gives_the_cpu_result(rgb_tif, conv_model, tmp_path):
    gpu = classify(rgb_tif, tmp_path / "gpu.tif", conv_model, device="cuda", batch_size=8)
    cpu = classify(rgb_tif, tmp_path / "cpu.tif", conv_model, device="cpu")
    assert (read_band(gpu) == read_band(cpu)).mean() > 0.999


def test_asking_for_cuda_without_a_gpu_is_a_clear_error(rgb_tif, colour_model, tmp_path):
    if gpu_present():
        pytest.skip("a GPU is present: covered by test_cuda_provider_gives_the_cpu_result")
    with pytest.raises(ModelError, match="cuda"):
        classify(rgb_tif, tmp_path / "a.tif", colour_model, device="cuda")
    assert not (tmp_path / "a.tif").exists()


def test_classes_from_sums_matches_argmax_with_ties_and_uncovered_pixels():
    """The plane-by-plane arg-max equals numpy's argmax (ties -> lowest id), uncovered pixels are nodata,
    and confidence is floor(100 * largest / total)."""
    from aerialseg.inference import classes_from_sums

    rng = np.random.default_rng(3)
    core = rng.integers(0, 2**26, (5, 64, 80), dtype=np.uint32)
    core[:, :4, :4] = 0  # no tile covered these
    core[3, 10:20, 10:20] = core[1, 10:20, 10:20] = 2**27  # ties between classes 1 and 3
    classes, confidence = classes_from_sums(core)
    expected = core.argmax(axis=0).astype(np.uint8)
    expected[:4, :4] = 255
    np.testing.assert_array_equal(classes, expected)
    total, best = core.sum(axis=0, dtype=np.uint64), core.max(axis=0).astype(np.uint64)
    np.testing.assert_array_equal(confidence, np.where(total > 0, 100 * best // np.maximum(total, 1), 0))
    assert classes[15, 15] == 1
    np.testing.assert_array_equal(classes_from_sums(core, confidence=False)[0], classes)
    assert classes_from_sums(core, confidence=False)[1] is None
