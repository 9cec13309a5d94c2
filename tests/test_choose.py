"""``--model auto``: the bundled model whose ground resolution fits the input, among those with the classes."""

from __future__ import annotations

import pytest

from aerialseg.choose import choose_model, resolve_auto
from aerialseg.errors import InputError
from conftest import RASTERS
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


def test_resolve_auto_reads_the_input_and_keeps_explicit_choices():
    assert resolve_auto("auto", RASTERS / "nl_aerial_rd_new_1210x718.tif") == BUILDINGS  # 0.19 m
    assert resolve_auto(None, RASTERS / "rasterio_RGB.byte.tif") == LANDCOVER  # Landsat, 300 m
    assert resolve_auto(None, RASTERS / "neon_osbs_029_10cm.tif", input_gsd=2.0) == LANDCOVER
    assert resolve_auto("my.onnx", RASTERS / "neon_osbs_029_10cm.tif") == "my.onnx"
