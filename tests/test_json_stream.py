"""The JSON stream of every command (docs/json-stream.md), run for real as ``python -m aerialseg`` subprocesses.

Each command's stream is JSON lines only and ends with exactly one ``result`` line whose keys are the ones
docs/json-stream.md lists for that command.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from aerialseg.cli import build_parser
from rasters import scene, write_raster

pytestmark = pytest.mark.slow  # every test runs the command line as a subprocess

DOC = Path(__file__).resolve().parents[1] / "docs" / "json-stream.md"


def documented_results() -> dict[str, tuple[set[str], set[str], bool]]:
    """command -> (keys always there, keys sometimes there, whether other keys may come) from the doc's table."""
    table = DOC.read_text().split("## The result line of each command")[1]
    found = {}
    for line in table.splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) > 4 and re.fullmatch(r"`\w+`", cells[1]):
            keys = [set(re.findall(r"`(\w+)`", cell)) for cell in cells[2:4]]
            found[cells[1].strip("`")] = (keys[0], keys[1], "any other" in cells[3])
    return found


def stream(*args: str | Path, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """Run ``python -m aerialseg <args> --progress json``; every stdout line must be JSON."""
    r = subprocess.run([sys.executable, "-m", "aerialseg", *map(str, args), "--progress", "json"],
                       capture_output=True, text=True, timeout=600, env={**os.environ, **(env or {})})
    assert "Traceback" not in r.stderr, r.stderr
    return r, [json.loads(line) for line in r.stdout.splitlines() if line.strip()]


def check_result(command: str, lines: list[dict]) -> dict:
    """The stream ends with its only result line, which has the documented keys; returns it."""
    assert [x["type"] for x in lines].count("result") == 1 and lines[-1]["type"] == "result", lines[-3:]
    assert {x["type"] for x in lines} <= {"progress", "log", "result"}
    always, sometimes, open_ended = documented_results()[command]
    keys = set(lines[-1]) - {"type"}
    assert always <= keys, f"{command}: missing {always - keys}"
    assert open_ended or keys <= always | sometimes, f"{command}: undocumented {keys - always - sometimes}"
    return lines[-1]


def test_the_doc_lists_every_command():
    commands = next(a for a in build_parser()._actions if a.dest == "command").choices
    assert sorted(documented_results()) == sorted(commands)


@pytest.fixture(scope="module")
def mapped(tmp_path_factory, colour_model) -> dict[str, Path]:
    """A class raster written by classify, kept for evaluate."""
    d = tmp_path_factory.mktemp("stream")
    src = write_raster(d / "rgb.tif", scene(120, 160, seed=4))
    r, lines = stream("classify", src, d / "lc.tif", "-m", colour_model)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    result = check_result("classify", lines)
    assert result == {"type": "result", "output": str(d / "lc.tif"), "confidence": None}
    return {"input": src, "classes": d / "lc.tif", "folder": d}


def test_vectorize_and_map(mapped, colour_model, tmp_path):
    r, lines = stream("vectorize", mapped["classes"], tmp_path / "f.gpkg")
    assert r.returncode == 0 and check_result("vectorize", lines)["output"] == str(tmp_path / "f.gpkg")
    r, lines = stream("map", mapped["input"], tmp_path / "out", "-m", colour_model)
    result = check_result("map", lines)
    assert r.returncode == 0 and Path(result["output_raster"]).is_file() and Path(result["output_vector"]).is_file()
    raster, vector = tmp_path / "r" / "lc.tif", tmp_path / "v.gpkg"
    raster.parent.mkdir()
    r, lines = stream("map", mapped["input"], "--raster", raster, "--vector", vector, "-m", colour_model)
    assert r.returncode == 0 and check_result("map", lines) == {"type": "result", "output_raster": str(raster),
                                                                "output_vector": str(vector)}
    assert raster.read_bytes() == Path(result["output_raster"]).read_bytes()


def test_models_info_and_check(colour_model):
    env = {"AERIALSEG_MODELS": str(colour_model.parent)}
    r, lines = stream("models", env=env)
    assert r.returncode == 0 and r.stderr == ""
    models = check_result("models", lines)["models"]
    assert {"name": "colour", "path": str(colour_model)} == {k: v for k, v in models[0].items() if k != "card"}
    r, lines = stream("info", colour_model, env=env)
    result = check_result("info", lines)
    assert r.returncode == 0 and result["card"]["name"] == "colour" and result["model"] == str(colour_model)
    r, lines = stream("check", "--device", "cpu", env=env)
    result = check_result("check", lines)
    assert r.returncode == (0 if result["ok"] else 1) and "colour" in result["models"]


def test_a_failed_command_ends_with_an_error_instead(tmp_path):
    r, lines = stream("info", tmp_path / "missing.onnx")
    assert r.returncode == 1 and lines[-1]["type"] == "error"
    assert "result" not in {x["type"] for x in lines}


def test_train_export_and_evaluate(mapped, tmp_path):
    """A tiny real training run, its export and an evaluation: each result carries what a caller needs."""
    from trainkit import class_map, paint, write_tif

    ids = class_map(96, 96, 3, seed=3)
    write_tif(tmp_path / "data" / "images" / "a.tif", paint(ids, 3), crs="EPSG:32633", res=1.0)
    write_tif(tmp_path / "data" / "masks" / "a.tif", ids[None].astype(np.uint8), crs="EPSG:32633", res=1.0)
    run = tmp_path / "run"
    r, lines = stream("train", "--out", run, "--dataset", "folder", "--images", tmp_path / "data" / "images",
                      "--masks", tmp_path / "data" / "masks", "--class-names", "a,b,c", "--val-fraction", "0.25",
                      "--encoder-depth", "3", "--decoder-channels", "16,8,8", "--chip", "32", "--batch-size", "4",
                      "--chips-per-epoch", "8", "--threads", "1", "--epochs", "1", "--no-progress")
    assert r.returncode == 0, r.stderr
    trained = check_result("train", lines)
    assert trained["run"] == str(run) and trained["last_checkpoint"] == str(run / "last.pt")
    assert trained["best_checkpoint"] in (None, str(run / "best.pt")) and trained["best_epoch"] in (None, 1)
    assert trained["scores"] is None or trained["scores"]["per_class"].keys() == {"a", "b", "c"}
    r, lines = stream("export", trained["best_checkpoint"] or trained["last_checkpoint"], tmp_path / "m.onnx")
    exported = check_result("export", lines)
    assert r.returncode == 0 and exported["output"] == str(tmp_path / "m.onnx")
    assert exported["size_bytes"] == (tmp_path / "m.onnx").stat().st_size
    assert [c["name"] for c in exported["card"]["classes"]] == ["a", "b", "c"]
    r, lines = stream("evaluate", mapped["classes"], mapped["classes"], "--classes", "building,water,land")
    scores = check_result("evaluate", lines)
    assert r.returncode == 0 and r.stderr == "" and scores["pixel_accuracy"] == 1.0
    assert scores["pixels"] == 120 * 160 and scores["reference"] == str(mapped["classes"])
