"""classify on awkward inputs: nodata values, internal masks, GCPs, sidecar clashes, fine inputs, odd models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.control import GroundControlPoint
from rasterio.transform import from_origin

import aerialseg.inference
from aerialseg import classify
from aerialseg.card import ClassInfo, ModelCard
from aerialseg.errors import ModelError, OutputError, RasterError
from rasters import read_band, scene, write_raster
from tinymodels import colour_card, write_colour_model


@pytest.mark.parametrize("nodata", [0.0, -9999.0])
def test_nodata_values_do_not_leak_into_valid_neighbours(tmp_path, conv_model, nodata):
    img = np.zeros((3, 64, 96), np.float32)
    img[0] = 255.0  # all red: every valid pixel is a building
    img[:, :, 48:] = nodata
    src = write_raster(tmp_path / "f.tif", img, nodata=nodata)
    out = read_band(classify(src, tmp_path / "lc.tif", conv_model))
    assert (out[:, :48] == 0).all() and (out[:, 48:] == 255).all()


def test_internal_mask_survives_resampling(tmp_path, gsd_model):
    path = write_raster(tmp_path / "m.tif", scene(128, 128), transform=from_origin(500000, 4000000, 0.5, 0.5))
    with rasterio.open(path, "r+") as ds:
        mask = np.full((128, 128), 255, np.uint8)
        mask[:, :64] = 0
        ds.write_mask(mask)
    out = read_band(classify(path, tmp_path / "lc.tif", gsd_model))  # 0.5 m -> 1 m working grid
    assert (out[:, :64] == 255).all() and (out[:, 66:] != 255).all()
    with rasterio.open(path, "r+") as ds:
        ds.write_mask(np.zeros((128, 128), np.uint8))
    with pytest.raises(RasterError, match="no valid pixels"):
        classify(path, tmp_path / "none.tif", gsd_model)


def test_gcps_are_kept(tmp_path, colour_model):
    gcps = [GroundControlPoint(0, 0, 500000, 4000000), GroundControlPoint(0, 99, 500050, 4000000),
            GroundControlPoint(79, 0, 500000, 3999960), GroundControlPoint(79, 99, 500050, 3999960)]
    src = write_raster(tmp_path / "g.tif", scene(80, 100), crs=None)
    with rasterio.open(src, "r+") as ds:
        ds.gcps = (gcps, rasterio.crs.CRS.from_epsg(32633))
    out = classify(src, tmp_path / "lc.tif", colour_model)
    with rasterio.open(out) as ds:
        points, crs = ds.gcps
        assert len(points) == 4 and crs.to_epsg() == 32633


def test_style_files_never_replace_the_inputs_or_existing_files(tmp_path, colour_model):
    src = write_raster(tmp_path / "scene.png", scene(50, 60), crs=None, driver="PNG")
    (tmp_path / "scene.qml").write_text("<qgis>the user's style</qgis>")
    with pytest.raises(OutputError, match="scene.qml"):
        classify(src, tmp_path / "scene.tif", colour_model)
    assert (tmp_path / "scene.qml").read_text() == "<qgis>the user's style</qgis>"
    (tmp_path / "lc.qml").write_text("old")
    with pytest.raises(OutputError, match="already exists"):
        classify(src, tmp_path / "lc.tif", colour_model)
    classify(src, tmp_path / "lc.tif", colour_model, overwrite=True)
    assert "paletteEntry" in (tmp_path / "lc.qml").read_text()
    with pytest.raises(OutputError, match="written twice"):
        classify(src, tmp_path / "a.tif", colour_model, confidence=tmp_path / "a.tiff")


def test_fine_inputs_are_written_in_bounded_strips(tmp_path, gsd_model, monkeypatch):
    """A coarse working block covers many input pixels: written strip by strip, same result."""
    src = write_raster(tmp_path / "fine.tif", scene(400, 300), transform=from_origin(500000, 4000000, 0.1, 0.1))
    whole = read_band(classify(src, tmp_path / "a.tif", gsd_model))
    monkeypatch.setattr(aerialseg.inference, "WRITE_STRIP_PIXELS", 1000)
    np.testing.assert_array_equal(read_band(classify(src, tmp_path / "b.tif", gsd_model)), whole)


def test_utf8_class_names_in_style_files(tmp_path):
    card = colour_card(classes=(ClassInfo(0, "Gebäude", "#3C1098"), ClassInfo(1, "水", "#E2A929"),
                                ClassInfo(2, "Grünland", "#8429F6")))
    model = write_colour_model(tmp_path / "de.onnx", card)
    out = classify(write_raster(tmp_path / "in.tif", scene(40, 40)), tmp_path / "lc.tif", model)
    assert "Gebäude" in (tmp_path / "lc.qml").read_text(encoding="utf-8")
    assert "<Category>水</Category>" in Path(f"{out}.aux.xml").read_text(encoding="utf-8")


def test_gdal_dataset_names_are_accepted(tmp_path, colour_model):
    gpkg = tmp_path / "rasters.gpkg"
    write_raster(gpkg, scene(64, 64), driver="GPKG", RASTER_TABLE="ortho")
    out = read_band(classify(f"GPKG:{gpkg}:ortho", tmp_path / "lc.tif", colour_model))
    assert out.shape == (64, 64) and (out != 255).all()


def test_a_model_whose_output_is_not_the_input_size_is_a_model_error(tmp_path):
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from aerialseg.card import write_card

    w = np.zeros((3, 3, 1, 1), np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["image", "w"], ["l"], strides=[2, 2]),
         helper.make_node("Softmax", ["l"], ["p"], axis=1)], "s2",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, ["n", 3, "h2", "w2"])],
        [numpy_helper.from_array(w, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "s2.onnx"))
    write_card(tmp_path / "s2.onnx", colour_card())
    with pytest.raises(ModelError, match="expected"):
        classify(write_raster(tmp_path / "in.tif", scene(64, 64)), tmp_path / "lc.tif", tmp_path / "s2.onnx")
    assert not (tmp_path / "lc.tif").exists()


@pytest.mark.parametrize("field,value", [("tile_size", 64.0), ("overlap", 16.0), ("bands", (1.0, 2.0, 3.0)),
                                         ("tile_size", True)])
def test_card_values_of_the_wrong_type_are_refused(field, value):
    d = colour_card().to_dict()
    d[field] = value
    with pytest.raises(ModelError, match=field):
        ModelCard.from_dict(d)
