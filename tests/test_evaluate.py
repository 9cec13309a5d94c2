"""Evaluation of a prediction raster against a reference, block by block, against hand counts."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from PIL import Image

from aerialseg.cli import main as cli_main
from aerialseg.datasets import DUBAI_CLASSES
from aerialseg.errors import InputError, RasterError
from aerialseg.evaluate import class_table, evaluate, write_report
from aerialseg.metrics import confusion_matrix
from trainkit import write_tif

NAMES = ["building", "land", "road"]


def _pair(tmp_path, h=7, w=11, seed=0):
    rng = np.random.default_rng(seed)
    ref = rng.integers(0, 3, (h, w)).astype(np.uint8)
    pred = np.where(rng.random((h, w)) < 0.7, ref, rng.integers(0, 3, (h, w))).astype(np.uint8)
    pred[0, :4] = 255  # prediction nodata
    ref[-1, -3:] = 255  # unlabeled reference
    return (
        write_tif(tmp_path / "pred.tif", pred[None], crs="EPSG:32633"),
        write_tif(tmp_path / "ref.tif", ref[None], crs="EPSG:32633"),
        pred,
        ref,
    )


def _hand_cm(ref: np.ndarray, pred: np.ndarray, k: int) -> np.ndarray:
    cm = np.zeros((k, k), np.int64)
    for r, p in zip(ref.ravel(), pred.ravel()):
        if r < k and p < k:
            cm[r, p] += 1
    return cm


@pytest.mark.parametrize("block", [3, 4, 1024])  # blocks that do and do not divide the raster
def test_confusion_matrix_matches_hand_count(tmp_path, block):
    pred_path, ref_path, pred, ref = _pair(tmp_path)
    result = evaluate(pred_path, ref_path, NAMES, block=block)
    expected = _hand_cm(ref, pred, 3)
    assert result["confusion_matrix"] == expected.tolist()
    assert result["pixels"] == int(expected.sum()) == 7 * 11 - 4 - 3
    assert result["pixel_accuracy"] == pytest.approx(np.trace(expected) / expected.sum())
    iou0 = expected[0, 0] / (expected[0].sum() + expected[:, 0].sum() - expected[0, 0])
    assert result["per_class"]["building"]["iou"] == pytest.approx(iou0)


def test_small_hand_example(tmp_path):
    ref = np.array([[0, 0, 1], [1, 2, 2]], np.uint8)
    pred = np.array([[0, 1, 1], [1, 2, 255]], np.uint8)
    r = evaluate(write_tif(tmp_path / "p.tif", pred[None]), write_tif(tmp_path / "r.tif", ref[None]), NAMES, block=2)
    assert r["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [0, 0, 1]]
    assert r["miou"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    assert confusion_matrix(ref, pred, 3).tolist() == r["confusion_matrix"]


def test_colour_coded_palette_reference(tmp_path):
    ids = np.array([[0, 1, 2, 3], [4, 4, 5, 0]])  # 5 = unlabeled grey
    colours = np.array([c.rgb for c in DUBAI_CLASSES] + [(155, 155, 155)], np.uint8)
    pal = Image.new("P", (1, 1))
    pal.putpalette([int(v) for v in colours.ravel()] + [0] * (768 - colours.size))
    Image.fromarray(colours[ids]).quantize(palette=pal, dither=Image.Dither.NONE).save(tmp_path / "ref.png")
    with rasterio.open(tmp_path / "ref.png") as src:
        assert src.count == 1  # a real palette PNG
    pred = np.array([[0, 1, 2, 3], [4, 0, 255, 0]], np.uint8)
    Image.fromarray(pred).save(tmp_path / "pred.png")
    r = evaluate(
        tmp_path / "pred.png",
        tmp_path / "ref.png",
        [c.name for c in DUBAI_CLASSES],
        [c.rgb for c in DUBAI_CLASSES],
        block=3,
    )
    assert r["pixels"] == 7 and r["confusion_matrix"][4] == [1, 0, 0, 0, 1]


def test_grid_mismatch_is_a_clear_input_error(tmp_path):
    write_tif(tmp_path / "a.tif", np.zeros((1, 5, 6), np.uint8))
    write_tif(tmp_path / "b.tif", np.zeros((1, 6, 5), np.uint8))
    with pytest.raises(InputError, match="same grid"):
        evaluate(tmp_path / "a.tif", tmp_path / "b.tif", NAMES)
    write_tif(tmp_path / "c.tif", np.zeros((1, 5, 6), np.uint8), crs="EPSG:32633")
    with pytest.raises(InputError, match="CRS"):
        evaluate(tmp_path / "a.tif", tmp_path / "c.tif", NAMES)
    write_tif(tmp_path / "d.tif", np.zeros((1, 5, 6), np.uint8), res=0.5)
    with pytest.raises(InputError, match="geotransform"):
        evaluate(tmp_path / "a.tif", tmp_path / "d.tif", NAMES)


def test_command_writes_json_and_png(tmp_path, capsys):
    pred_path, ref_path, pred, ref = _pair(tmp_path)
    argv = ["evaluate", str(pred_path), str(ref_path), "--classes", "building,land,road", "--json",
            str(tmp_path / "r.json"), "--png", str(tmp_path / "cm.png"), "--block", "5"]
    assert cli_main(argv) == 0
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["confusion_matrix"] == _hand_cm(ref, pred, 3).tolist()
    assert (tmp_path / "cm.png").read_bytes()[:4] == b"\x89PNG"
    assert "mIoU" in capsys.readouterr().out
    with pytest.raises(RasterError, match="cannot open"):
        evaluate(pred_path, tmp_path / "missing.tif", NAMES)
    assert cli_main(["evaluate", str(pred_path), str(tmp_path / "missing.tif"), "--classes", "dubai"]) == 1
    assert "cannot open" in capsys.readouterr().err


def test_python_gets_the_class_table_progress_and_report_the_command_line_uses(tmp_path):
    pred_path, ref_path, pred, ref = _pair(tmp_path)
    names, colours = class_table("building, land,road")
    assert names == NAMES and colours is None
    names, colours = class_table("dubai", colour_reference=True)
    assert names == [c.name for c in DUBAI_CLASSES] and colours == [c.rgb for c in DUBAI_CLASSES]
    assert class_table("a,b", reference_colours="#ff0000,#00ff00")[1] == [(255, 0, 0), (0, 255, 0)]
    with pytest.raises(InputError, match="give --classes"):
        class_table("")
    steps: list[tuple[int, int]] = []
    result = evaluate(pred_path, ref_path, NAMES, block=4, on_progress=lambda d, t: steps.append((d, t)))
    total = -(-pred.shape[0] // 4) * -(-pred.shape[1] // 4)
    assert steps == [(i, total) for i in range(1, total + 1)]
    write_report(result, tmp_path / "r.json")
    assert json.loads((tmp_path / "r.json").read_text())["confusion_matrix"] == _hand_cm(ref, pred, 3).tolist()
    assert not (tmp_path / "cm.png").exists()
