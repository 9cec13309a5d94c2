"""``aerialseg.pipeline.map_image``: classify then vectorise, both outputs replaced together or neither."""

from __future__ import annotations

import numpy as np
import pyogrio
import pytest

from aerialseg.errors import Cancelled, InputError
from aerialseg.pipeline import MapOutputs, default_outputs, map_image
from rasters import expected_classes, read_band, scene, write_raster

SCENE = scene(200, 260, seed=5)


def _files(*folders) -> dict[str, bytes]:
    return {f"{folder.name}/{p.name}": p.read_bytes() for folder in folders for p in sorted(folder.iterdir())}


def test_map_into_a_folder_reports_both_stages(tmp_path, colour_model):
    src = write_raster(tmp_path / "ortho.tif", SCENE)
    seen: dict[str, list[tuple[int, int]]] = {"classify": [], "vectorize": []}
    done = map_image(src, tmp_path / "out", colour_model, classify_options={"device": "cpu"},
                     on_classify_progress=lambda d, t: seen["classify"].append((d, t)),
                     on_vectorize_progress=lambda d, t: seen["vectorize"].append((d, t)))
    assert done == default_outputs(src, tmp_path / "out") == MapOutputs(
        tmp_path / "out" / "ortho_landcover.tif", tmp_path / "out" / "ortho_features.gpkg")
    np.testing.assert_array_equal(read_band(done.raster), expected_classes(SCENE))
    assert {"building", "water"} <= {name for name, _ in pyogrio.list_layers(done.vector)}
    for stage, calls in seen.items():
        assert calls and calls[-1][0] == calls[-1][1], stage
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        "ortho_features.gpkg", "ortho_landcover.qml", "ortho_landcover.tif", "ortho_landcover.tif.aux.xml"]


def test_given_paths_in_two_folders_are_replaced_together(tmp_path, colour_model):
    src = write_raster(tmp_path / "ortho.tif", SCENE)
    (tmp_path / "r").mkdir()
    (tmp_path / "v").mkdir()
    outputs = MapOutputs(tmp_path / "r" / "lc.tif", tmp_path / "v" / "polygons.gpkg")
    outputs.raster.write_bytes(b"old raster")
    outputs.vector.write_bytes(b"old polygons")
    with pytest.raises(InputError, match="unknown class id 7"):  # vectorise fails after classify
        map_image(src, outputs, colour_model, vectorize_options={"classes": [7]}, overwrite=True)
    assert _files(tmp_path / "r", tmp_path / "v") == {"r/lc.tif": b"old raster", "v/polygons.gpkg": b"old polygons"}
    assert map_image(src, outputs, colour_model, overwrite=True) == outputs
    np.testing.assert_array_equal(read_band(outputs.raster), expected_classes(SCENE))
    assert sorted(_files(tmp_path / "r", tmp_path / "v")) == ["r/lc.qml", "r/lc.tif", "r/lc.tif.aux.xml",
                                                              "v/polygons.gpkg"]


def test_a_cancelled_map_leaves_no_folder_and_no_trace(tmp_path, colour_model):
    src = write_raster(tmp_path / "ortho.tif", SCENE)
    with pytest.raises(Cancelled):
        map_image(src, tmp_path / "new", colour_model, should_cancel=lambda: True)
    assert not (tmp_path / "new").exists()
    with pytest.raises(InputError, match="output folder"):  # many inputs need a folder, not two names
        map_image(tmp_path, MapOutputs(tmp_path / "a.tif", tmp_path / "b.gpkg"), colour_model)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ortho.tif"]
