"""``--model auto``: the bundled model whose ground resolution fits the input, among those with the classes."""

from __future__ import annotations

import pytest

from aerialseg.choose import choose_model, resolve_auto
from aerialseg.errors import InputError
from shared_data import RASTERS, needs_shared_data
from tinymodels import colour_card, write_colour_model

BUILDINGS, LANDCOVER = "aerial-buildings-unet-r18", "dubai-landcover-unet-r18"


@pytest.mark.parametrize(("gsd", "name"), [(0.03, BUILDINGS), (0.19, BUILDINGS), (0.45, BUILDINGS),
                                           (0.6, LANDCOVER), (2.0, LANDCOVER), (300.0, LANDCOVER)])
def test_closest_ground_resolution_on_a_log_scale(gsd, name):
    chosen, why = choose_model(gsd)
    assert chosen == name and "m/px" in why


def test_unknown_resolution_gets_the_default_model():
    name, why = choose_model(None)
    assert name == LANDCOVER and "--input-gsd" in why


def test_only_models_with_the_classes_asked_for(tmp_path, monkeypatch):
    assert choose_model(0.1, ["Road"])[0] == LANDCOVER  # the building model has no road class
    write_colour_model(tmp_path / "fine-water.onnx", colour_card(name="fine-water", gsd_m=0.1))
    monkeypatch.setenv("AERIALSEG_MODELS", str(tmp_path))
    assert choose_model(0.1, ["water"])[0] == "fine-water"
    with pytest.raises(InputError, match="no bundled or downloaded model has the classes"):
        choose_model(0.1, ["glacier"])


@needs_shared_data(*(RASTERS / n for n in ("nl_aerial_rd_new_1210x718.tif", "rasterio_RGB.byte.tif",
                                            "neon_osbs_029_10cm.tif")))
def test_resolve_auto_reads_the_input_and_keeps_explicit_choices():
    assert resolve_auto("auto", RASTERS / "nl_aerial_rd_new_1210x718.tif") == BUILDINGS  # 0.19 m
    assert resolve_auto(None, RASTERS / "rasterio_RGB.byte.tif") == LANDCOVER  # Landsat, 300 m
    assert resolve_auto(None, RASTERS / "neon_osbs_029_10cm.tif", input_gsd=2.0) == LANDCOVER
    assert resolve_auto("my.onnx", RASTERS / "neon_osbs_029_10cm.tif") == "my.onnx"


def _cli(*args, cwd=None):
    import subprocess
    import sys

    return subprocess.run([sys.executable, "-m", "aerialseg.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


@needs_shared_data(RASTERS / "nl_aerial_rd_new_1210x718.tif")
@pytest.mark.slow
def test_map_chooses_the_building_model_for_a_fine_orthophoto_and_squares_its_buildings(tmp_path):
    import pyogrio

    r = _cli("map", RASTERS / "nl_aerial_rd_new_1210x718.tif", tmp_path, "-v", "--progress", "none")
    assert r.returncode == 0, r.stderr
    assert f"model: {BUILDINGS} (chosen automatically" in r.stderr and "regularising building outlines" in r.stderr
    gpkg = tmp_path / "nl_aerial_rd_new_1210x718_features.gpkg"
    assert "building" in [name for name, _ in pyogrio.list_layers(gpkg)]
    assert len(pyogrio.read_dataframe(gpkg, layer="building")) > 10


@pytest.mark.slow
def test_input_gsd_resamples_an_image_without_georeferencing(tmp_path):
    import numpy as np
    from PIL import Image

    from rasters import read_band, scene

    Image.fromarray(scene(120, 160).transpose(1, 2, 0)).save(tmp_path / "drone.png")
    r = _cli("classify", tmp_path / "drone.png", tmp_path / "lc.tif", "--input-gsd", "1.0", "-v", "--progress", "none")
    assert r.returncode == 0, r.stderr
    assert "input's 1 m/px" in r.stderr and "resampling: input 1.000 x 1.000 m/px -> model 2.000 m/px" in r.stderr
    assert read_band(tmp_path / "lc.tif").shape == (120, 160)  # back on the input grid
    assert np.isin(read_band(tmp_path / "lc.tif"), [0, 1, 2, 3, 4]).all()
    bad = _cli("classify", tmp_path / "drone.png", tmp_path / "lc2.tif", "--input-gsd", "-1", "--model",
               LANDCOVER)
    assert bad.returncode == 1 and "--input-gsd must be a positive" in bad.stderr


def test_models_says_how_auto_chooses():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "aerialseg.cli", "models"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stderr == ""
    assert r.stdout.startswith("--model auto (the default) picks the model whose resolution fits the input")
    assert "(default)" not in r.stdout
