"""map combines two bundled models on a fine orthophoto: buildings from the building model, the rest from the
land-cover model (real ONNX Runtime sessions, the real bundled models, a crop of the bundled drone sample)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.windows import Window

from aerialseg.card import NODATA_CLASS
from aerialseg.combine import WithoutClasses, combination_for
from aerialseg.runtime import load_model, model_card

BUILDINGS, LANDCOVER = "aerial-buildings-unet-r18", "dubai-landcover-unet-r18"
SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample" / "banepa_sample.tif"


def test_the_building_model_is_combined_with_the_land_cover_model():
    pair = combination_for(BUILDINGS)
    assert pair is not None and (pair.base, pair.fine, pair.take) == (LANDCOVER, BUILDINGS, ("building",))
    assert "building from aerial-buildings-unet-r18 (0.13 m/px)" in pair.describe()
    assert "land, road, vegetation, water from dubai-landcover-unet-r18 (2 m/px)" in pair.describe()


def test_no_combination_for_the_default_model_or_when_only_its_classes_are_asked_for():
    assert combination_for(LANDCOVER) is None
    assert combination_for(BUILDINGS, ["Building"]) is None
    assert combination_for(BUILDINGS, ["building", "water"]) is not None


def test_without_classes_sets_them_aside_and_keeps_the_order_of_the_others():
    net = load_model(LANDCOVER, "cpu", 1, "fp32")
    batch = np.random.default_rng(0).normal(size=(2, 3, 64, 64)).astype(np.float32)
    full = net.predict(batch.copy())
    kept = WithoutClasses(net, ["building"]).predict(batch.copy())
    building = net.card.class_by_name("building").id
    assert (kept[:, building] == 0).all()
    np.testing.assert_allclose(kept.sum(axis=1), 1, atol=1e-5)
    others = np.delete(full, building, axis=1).argmax(axis=1)
    expected = np.where(others >= building, others + 1, others)
    assert (kept.argmax(axis=1) == expected).mean() > 0.999  # the same best class among the others


@pytest.fixture(scope="module")
def fine_crop(tmp_path_factory) -> Path:
    """A 512 x 400 px crop of the bundled 0.13 m drone sample (town: roofs, lanes, gardens)."""
    out = tmp_path_factory.mktemp("combine") / "banepa_crop.tif"
    with rasterio.open(SAMPLE) as src:
        window = Window(200, 300, 400, 512)
        profile = src.profile | {"width": 400, "height": 512, "transform": src.window_transform(window)}
        with rasterio.open(out, "w", **profile) as dst:
            dst.write(src.read(window=window))
    return out


def _cli(*args: object) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aerialseg", *map(str, args)], capture_output=True, text=True,
                          timeout=600)


def _band(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)


@pytest.mark.slow
def test_map_takes_buildings_from_the_building_model_and_the_rest_from_land_cover(fine_crop, tmp_path):
    r = _cli("map", fine_crop, tmp_path / "both", "-v", "--progress", "none", "--precision", "fp32")
    assert r.returncode == 0, r.stderr
    assert "map: building from aerial-buildings-unet-r18" in r.stderr and "--single-model" in r.stderr
    downsampled = [line for line in r.stderr.splitlines() if "downsampled" in line]
    assert downsampled and not any(line.lower().startswith("warning") for line in downsampled)  # on purpose here
    both = _band(tmp_path / "both" / "banepa_crop_landcover.tif")
    alone = _cli("classify", fine_crop, tmp_path / "b.tif", "--model", BUILDINGS, "--precision", "fp32")
    assert alone.returncode == 0, alone.stderr
    card = model_card(LANDCOVER)
    building = card.class_by_name("building").id
    found = _band(tmp_path / "b.tif") == model_card(BUILDINGS).class_by_name("building").id
    assert found.mean() > 0.1  # a town: the crop holds many roofs
    assert ((both == building) == found).all()  # buildings exactly where the building model finds them
    assert np.isin(both[~found], [c.id for c in card.classes if c.id != building]).all()  # no coarse blobs
    assert len(np.unique(both[~found])) >= 2 and (both != NODATA_CLASS).all()
    with rasterio.open(tmp_path / "both" / "banepa_crop_landcover.tif") as ds:
        assert ds.tags()["AERIALSEG_MODEL"] == f"{LANDCOVER} + {BUILDINGS}"

    single = _cli("map", fine_crop, tmp_path / "one", "--single-model", "--progress", "none", "--precision", "fp32")
    assert single.returncode == 0, single.stderr
    assert set(np.unique(_band(tmp_path / "one" / "banepa_crop_landcover.tif"))) <= {0, 1}  # background, building
