"""ModelCard: validation, JSON in the ONNX metadata, Deepness keys both ways, unreadable model files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import aerialseg
from aerialseg.card import CARD_KEY, ClassInfo, ModelCard, read_card, write_card
from aerialseg.errors import ModelError
from aerialseg.runtime import load_model
from rasters import read_band, scene, write_raster
from tinymodels import COLOUR_CLASSES, colour_card, write_colour_model

DEEPNESS_KEYS = {"model_type", "class_names", "resolution", "tile_size", "tiles_size", "tiles_overlap",
                 "standardization_mean", "standardization_std"}


def _card_dict(**overrides) -> dict:
    d = colour_card().to_dict()
    d.update(overrides)
    return d


def _one_line(e: pytest.ExceptionInfo) -> str:
    message = str(e.value)
    assert message and "\n" not in message and "Traceback" not in message
    return message


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize("overrides,fragment", [
    ({"classes": ()}, "at least one class"),
    ({"classes": (ClassInfo(1, "a", "#000000"), ClassInfo(2, "b", "#FFFFFF"))}, "class ids must be 0, 1, 2"),
    ({"classes": (ClassInfo(0, "a", "#000000"), ClassInfo(2, "b", "#FFFFFF"))}, "class ids must be 0, 1, 2"),
    ({"classes": (ClassInfo(1, "b", "#000000"), ClassInfo(0, "a", "#FFFFFF"))}, "class ids must be 0, 1, 2"),
    ({"classes": (ClassInfo(0, " ", "#000000"),)}, "empty name"),
    ({"classes": (ClassInfo(0, "a", "red"),)}, "expected '#RRGGBB'"),
    ({"classes": (ClassInfo(0, "a", "#12345"),)}, "expected '#RRGGBB'"),
    ({"classes": (ClassInfo(0, "a", "#GG0000"),)}, "expected '#RRGGBB'"),
    ({"mean": (0.0, 0.0)}, "one value per band"),
    ({"std": (1.0, 1.0, 1.0, 1.0)}, "one value per band"),
    ({"bands": (0, 1, 2)}, "1-based"),
    ({"std": (1.0, 0.0, 1.0)}, "positive"),
    ({"scale": 0.0}, "positive"),
    ({"gsd_m": 0.0}, "gsd_m must be positive"),
    ({"gsd_m": -0.5}, "gsd_m must be positive"),
    ({"overlap": 33}, "overlap between 0 and tile_size/2"),
    ({"overlap": -1}, "overlap between 0 and tile_size/2"),
    ({"tile_size": 8, "overlap": 0}, "tile_size must be >= 16"),
    ({"output": "scores"}, "'probabilities' or 'logits'"),
])
def test_invalid_cards_are_refused(overrides, fragment):
    with pytest.raises(ModelError, match=fragment) as e:
        colour_card(**overrides)
    _one_line(e)


def test_overlap_of_exactly_half_a_tile_is_allowed():
    assert colour_card(tile_size=64, overlap=32).overlap == 32


def test_too_many_classes_are_refused():
    classes = tuple(ClassInfo(i, f"c{i}", "#000000") for i in range(256))
    with pytest.raises(ModelError, match="at most 255"):
        colour_card(classes=classes)


@pytest.mark.parametrize("change,fragment", [
    (lambda d: d.update(colour_scheme="x", zz=1), "unknown field(s) colour_scheme, zz"),
    (lambda d: d.pop("name"), "missing field(s) name"),
    (lambda d: d.pop("classes"), "missing field(s) classes"),
    (lambda d: d["classes"][0].pop("color"), "KeyError"),
    (lambda d: d["classes"][1].update(id="one"), "invalid model card"),
    (lambda d: d.update(classes="building"), "invalid model card"),
    (lambda d: d.update(mean=[0.5]), "one value per band"),
    (lambda d: d.update(overlap=40), "overlap between 0 and tile_size/2"),
    (lambda d: d["classes"][2].update(color="purple"), "expected '#RRGGBB'"),
])
def test_from_dict_gives_one_line_model_errors_naming_the_source(change, fragment):
    d = json.loads(colour_card().to_json())
    change(d)
    with pytest.raises(ModelError) as e:
        ModelCard.from_dict(d, "my.onnx")
    message = _one_line(e)
    assert message.startswith("invalid model card in my.onnx: ")
    assert fragment in message


def test_json_round_trip_is_exact():
    card = colour_card(gsd_m=0.3, metrics={"miou": 0.71, "per_class": {"water": 0.9}}, architecture="unet",
                       description="d", training_data="t", output="logits")
    again = ModelCard.from_dict(json.loads(card.to_json()))
    assert again == card
    assert isinstance(again.bands, tuple) and isinstance(again.mean, tuple) and isinstance(again.classes[0], ClassInfo)


def test_class_lookup():
    card = colour_card()
    assert card.class_names == ["building", "water", "land"]
    assert card.class_by_name("WATER").id == 1
    assert COLOUR_CLASSES[0].rgb == (0x3C, 0x10, 0x98)
    with pytest.raises(ModelError, match="has no class 'road'; its classes are: building, water, land"):
        card.class_by_name("road")


# ---------------------------------------------------------------- in the ONNX file


def test_write_and_read_card_round_trip_through_a_real_onnx_file(tmp_path):
    path = write_colour_model(tmp_path / "m.onnx")  # writes the default card
    card = colour_card(name="second", gsd_m=0.25, tile_size=128, overlap=32, metrics={"miou": 0.5})
    write_card(path, card)  # replace it in place
    assert read_card(path) == card
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    keys = [p.key for p in onnx.load(str(path)).metadata_props]
    assert len(keys) == len(set(keys)), "rewriting a card must not duplicate metadata keys"
    assert json.loads(meta[CARD_KEY])["name"] == "second"
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"], "no temporary file may be left behind"
    # The file still runs in ONNX Runtime, with the new card.
    model = load_model(path, device="cpu")
    assert model.card == card
    probs = model.predict(np.zeros((1, 3, 128, 128), np.float32))
    assert probs.shape == (1, 3, 128, 128)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_to_metadata_carries_the_deepness_keys_in_deepness_units():
    card = colour_card(gsd_m=0.25, tile_size=64, overlap=16, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    meta = card.to_metadata()
    assert set(meta) == DEEPNESS_KEYS | {CARD_KEY}
    assert all(isinstance(v, str) for v in meta.values())
    values = {k: json.loads(v) for k, v in meta.items() if k != CARD_KEY}
    assert values["model_type"] == "Segmentor"
    assert values["class_names"] == {"0": "building", "1": "water", "2": "land"}
    assert values["resolution"] == 25  # cm per pixel
    assert values["tile_size"] == values["tiles_size"] == 64
    assert values["tiles_overlap"] == 25  # percent of the tile
    assert values["standardization_mean"] == [0.485, 0.456, 0.406]
    assert values["standardization_std"] == [0.229, 0.224, 0.225]
    assert ModelCard.from_dict(json.loads(meta[CARD_KEY])) == card
    # A model for any resolution has no resolution key.
    assert "resolution" not in colour_card(gsd_m=None).to_metadata()


def test_deepness_keys_alone_give_back_the_essentials():
    card = colour_card(gsd_m=0.5, tile_size=256, overlap=64, mean=(0.1, 0.2, 0.3), std=(0.5, 0.6, 0.7))
    meta = {k: v for k, v in card.to_metadata().items() if k != CARD_KEY}
    again = ModelCard.from_metadata(meta, "/models/roofs.onnx", n_channels=3)
    assert again.name == "roofs"
    assert again.class_names == card.class_names
    assert (again.gsd_m, again.tile_size, again.overlap) == (0.5, 256, 64)
    assert (again.bands, again.mean, again.std, again.scale) == ((1, 2, 3), card.mean, card.std, 255.0)


def _deepness_model(path: Path, **extra_meta) -> Path:
    """A 2-class segmentation model carrying ONLY the metadata Deepness's docs tell users to add.

    Class 1 ("building") wins where red > 0.5 after normalisation, class 0 ("_background") elsewhere.
    """
    w = np.zeros((2, 3, 1, 1), np.float32)
    w[1, 0, 0, 0] = 20.0
    b = np.array([0.0, -10.0], np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["input", "w", "b"], ["logits"]),
         helper.make_node("Softmax", ["logits"], ["output"], axis=1)],
        "deepness",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["n", 2, "h", "w"])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    class_names = {0: "_background", 1: "building"}
    meta = {"model_type": json.dumps("Segmentor"), "class_names": json.dumps(class_names),
            "resolution": json.dumps(50), "tiles_size": json.dumps(512), "tiles_overlap": json.dumps(40),
            "standardization_mean": json.dumps([0.0, 0.0, 0.0]),
            "standardization_std": json.dumps([1.0, 1.0, 1.0])}
    meta.update(extra_meta)
    for key, value in meta.items():
        m = model.metadata_props.add()
        m.key, m.value = key, value
    onnx.save(model, str(path))
    return path


def test_a_deepness_only_model_reads_into_a_valid_card(tmp_path):
    card = read_card(_deepness_model(tmp_path / "buildings.onnx"))
    assert card.name == "buildings"
    assert [(c.id, c.name) for c in card.classes] == [(0, "_background"), (1, "building")]
    assert all(c.color.startswith("#") and len(c.color) == 7 for c in card.classes)
    assert len({c.color for c in card.classes}) == 2
    assert card.gsd_m == pytest.approx(0.5)  # 50 cm/px
    assert card.tile_size == 512
    assert card.overlap == round(512 * 0.40) == 205  # 40 % of the tile; below the tile/2 cap of 256
    assert card.bands == (1, 2, 3) and card.mean == (0.0, 0.0, 0.0) and card.std == (1.0, 1.0, 1.0)
    assert card.scale == 255.0 and card.output == "probabilities"


def test_a_deepness_overlap_above_half_a_tile_is_capped(tmp_path):
    card = read_card(_deepness_model(tmp_path / "m.onnx", tiles_overlap=json.dumps(75)))
    assert card.overlap == 256


def _classify_with_deepness_model(tmp_path: Path) -> tuple[np.ndarray, np.ndarray]:
    model = _deepness_model(tmp_path / "buildings.onnx")
    img = scene(300, 500, seed=3)
    src = write_raster(tmp_path / "ortho.tif", img)  # UTM at 0.5 m: the model's own resolution
    out = aerialseg.classify(src, tmp_path / "lc.tif", model, device="cpu")
    assert "<Category>_background</Category>" in Path(f"{out}.aux.xml").read_text()
    expected = (img[0].astype(np.float32) / 255 * 20 - 10 > 0).astype(np.uint8)
    return read_band(out), expected


def test_a_deepness_only_model_classifies_a_raster(tmp_path):
    got, expected = _classify_with_deepness_model(tmp_path)
    assert set(np.unique(expected)) == {0, 1}
    # Deepness's 40 % overlap (205 px): even the raster's corners, covered by one tile, keep their class.
    assert (got != 255).all(), f"{int((got == 255).sum())} valid pixels written as nodata"
    np.testing.assert_array_equal(got, expected)


def test_a_deepness_detector_is_refused(tmp_path):
    path = _deepness_model(tmp_path / "det.onnx", model_type=json.dumps("Detector"))
    with pytest.raises(ModelError, match="Deepness 'Detector' model") as e:
        read_card(path)
    _one_line(e)


def test_a_model_without_any_card_says_how_to_add_one(tmp_path):
    path = write_colour_model(tmp_path / "m.onnx")
    model = onnx.load(str(path))
    del model.metadata_props[:]
    onnx.save(model, str(path))
    with pytest.raises(ModelError, match="has no model card") as e:
        read_card(path)
    _one_line(e)


# ---------------------------------------------------------------- unreadable files


def test_a_file_that_is_not_onnx_gives_a_model_error(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_text("this is not a model\n")
    with pytest.raises(ModelError, match="is not a readable ONNX model") as e:
        read_card(path)
    _one_line(e)


def test_a_missing_model_file_gives_a_model_error(tmp_path):
    with pytest.raises(ModelError, match="model file not found") as e:
        read_card(tmp_path / "nothing.onnx")
    _one_line(e)


def test_an_empty_model_file_gives_a_model_error(tmp_path):
    path = tmp_path / "model.onnx"
    path.write_bytes(b"")  # e.g. an interrupted download
    with pytest.raises(ModelError) as e:
        read_card(path)
    _one_line(e)


@pytest.mark.parametrize("text,fragment", [
    ("{not json", "not JSON"),
    ("[1, 2, 3]", "expected a JSON object"),
    ('{"name": "x"}', "missing field(s) classes"),
    ('{"name": "x", "classes": [{"id": 0, "name": "a", "color": "#000000"}], "colour": 1}', "unknown field(s) colour"),
])
def test_a_broken_json_card_gives_a_one_line_model_error(tmp_path, text, fragment):
    path = write_colour_model(tmp_path / "m.onnx")
    model = onnx.load(str(path))
    for p in model.metadata_props:
        if p.key == CARD_KEY:
            p.value = text
    onnx.save(model, str(path))
    with pytest.raises(ModelError) as e:
        read_card(path)
    message = _one_line(e)
    assert message.startswith(f"invalid model card in {path}")
    assert fragment in message
