"""A fine input with a coarser model: decimated reads (block averages), classes back on the input grid, or
the class raster on the model's working grid (``output_grid="working"``)."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from aerialseg.predict import classify
from aerialseg.raster import ground_pixel_size
from rasters import expected_classes, read_band, write_raster
from shared_data import RASTERS, needs_shared_data
from tinymodels import colour_card, write_colour_model

NL = RASTERS / "nl_aerial_rd_new_1210x718.tif"
pytestmark = needs_shared_data(NL)
FACTOR = 8


@pytest.fixture(scope="module")
def coarse_model(tmp_path_factory):
    """The pointwise colour model, said to work at 8 input pixels of the Dutch orthophoto."""
    with rasterio.open(NL) as ds:
        gsd = ground_pixel_size(ds)[0] * FACTOR  # true ground metres: exactly 8 x 8 input pixels per working one
    return write_colour_model(tmp_path_factory.mktemp("m") / "coarse.onnx", colour_card(name="coarse", gsd_m=gsd))


def _block_means(img: np.ndarray, f: int) -> np.ndarray:
    c, h, w = img.shape
    h, w = h // f * f, w // f * f
    return img[:, :h, :w].reshape(c, h // f, f, w // f, f).astype(np.float64).mean(axis=(2, 4))


def test_decimated_read_is_the_block_average_of_a_real_orthophoto(tmp_path, coarse_model):
    out = classify(NL, tmp_path / "lc.tif", coarse_model)
    with rasterio.open(NL) as ds:
        rgb = ds.read((1, 2, 3))
    means = _block_means(rgb, FACTOR)
    r, b = means[0], means[2]  # the model's rule: red > 127.5 building, blue > 127.5 water, the larger wins
    clear = (np.abs(r - 127.5) > 1) & (np.abs(b - 127.5) > 1) & (np.abs(r - b) > 1)  # not within GDAL's rounding
    up = lambda a: np.repeat(np.repeat(a, FACTOR, axis=0), FACTOR, axis=1)
    want, clear = up(expected_classes(means)), up(clear)
    got = read_band(out)[: want.shape[0], : want.shape[1]]
    assert clear.mean() > 0.9
    assert (got == want)[clear].mean() >= 0.999


def test_working_grid_output_is_the_same_ground_with_fewer_pixels(tmp_path, coarse_model):
    fine = classify(NL, tmp_path / "fine.tif", coarse_model)
    coarse = classify(NL, tmp_path / "coarse.tif", coarse_model, output_grid="working")
    with rasterio.open(fine) as f, rasterio.open(coarse) as c:
        assert c.crs == f.crs and c.transform.a == pytest.approx(f.transform.a * FACTOR, rel=1e-3)  # ground m/px
        assert (c.width, c.height) == (-(-f.width // FACTOR), -(-f.height // FACTOR))
        assert (c.transform.c, c.transform.f) == (f.transform.c, f.transform.f)
        a, b = c.read(1), f.read(1)
    rows = np.minimum((np.arange(a.shape[0]) + 0.5) * FACTOR, b.shape[0] - 1).astype(int)
    cols = np.minimum((np.arange(a.shape[1]) + 0.5) * FACTOR, b.shape[1] - 1).astype(int)
    assert (a == b[np.ix_(rows, cols)]).all()


def test_nodata_is_carried_to_the_working_grid(tmp_path, coarse_model):
    with rasterio.open(NL) as ds:
        rgb, profile = ds.read((1, 2, 3)), ds.profile
    rgb[:, :, :400] = 0  # a nodata collar on the left
    src = write_raster(tmp_path / "collar.tif", rgb, crs=profile["crs"], transform=profile["transform"], nodata=0)
    out = read_band(classify(src, tmp_path / "c.tif", coarse_model, output_grid="working"))
    assert (out[:, : 400 // FACTOR] == 255).all() and (out[:, 400 // FACTOR + 1 :] != 255).all()
    fine = read_band(classify(src, tmp_path / "f.tif", coarse_model))
    assert (fine[:, :400] == 255).all() and (fine[:, 400:] != 255).all()
