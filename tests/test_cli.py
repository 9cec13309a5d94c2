"""The ``aerialseg`` command line, run for real as a subprocess: commands, JSON progress, and user errors.

Every bad input must give a non-zero exit status (1: a user error, not 3: an internal one), exactly one
line ``aerialseg: error: ...`` on stderr, no traceback, no output file, no hidden temporary files, and
an input that is byte-identical to what it was before.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import pyogrio
import pytest
import rasterio

from aerialseg.card import CARD_KEY
from rasters import expected_classes, read_band, scene, write_raster
from shared_data import RASTERS, needs_shared_data
from tinymodels import colour_card

pytestmark = pytest.mark.slow  # every test runs the command line as a subprocess

ROOT = Path(__file__).resolve().parent.parent

NL_RGBA = RASTERS / "nl_aerial_rd_new_1210x718.tif"
SCENE = scene(300, 500, seed=7)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def inputs(tmp_path_factory, colour_model) -> dict[str, Path]:
    """Every input the CLI tests use, good and bad, made once; their hashes are checked after each run."""
    d = tmp_path_factory.mktemp("cli_inputs")
    models = d / "models"
    models.mkdir()
    colour = models / "colour.onnx"
    colour.write_bytes(colour_model.read_bytes())
    paths = {
        "rgb": write_raster(d / "rgb.tif", SCENE),
        "one_band": write_raster(d / "one_band.tif", SCENE[:1]),
        "all_nodata": write_raster(d / "all_nodata.tif", np.zeros((3, 120, 160), np.uint8), nodata=0),
        "colour": colour,
    }
    text = d / "readme.tif"
    text.write_text("this is a text file with a .tif name\n")
    paths["text"] = text
    whole = write_raster(d / "whole.tif", scene(600, 600, seed=2), tiled=True, blockxsize=256, blockysize=256)
    data = whole.read_bytes()
    corrupt = d / "corrupt.tif"
    corrupt.write_bytes(data[: len(data) // 2])  # a download cut in half: header fine, tiles missing
    paths["corrupt"] = corrupt
    model = onnx.load(str(colour))
    for p in model.metadata_props:
        if p.key == CARD_KEY:
            p.value = '{"name": "broken", "classes": [}'
    paths["bad_card"] = d / "bad_card.onnx"
    onnx.save(model, str(paths["bad_card"]))
    paths["not_onnx"] = d / "not_onnx.onnx"
    paths["not_onnx"].write_text("<html>404 not found</html>\n")
    paths["empty_onnx"] = d / "empty.onnx"
    paths["empty_onnx"].write_bytes(b"")
    return paths


@pytest.fixture
def hashes(inputs):
    """Checks after the test that no input file changed and no sidecar appeared next to the inputs."""
    before = {k: _md5(p) for k, p in inputs.items()}
    listing = {p.name for p in inputs["rgb"].parent.iterdir()}
    yield
    assert {k: _md5(p) for k, p in inputs.items()} == before, "an input file was modified"
    assert {p.name for p in inputs["rgb"].parent.iterdir()} == listing, "files appeared next to the inputs"


def _cli(*args: str | Path, models: Path | None = None, cwd: Path | None = None,
         code: str | None = None) -> subprocess.CompletedProcess:
    """Run the real ``aerialseg`` command line (``python -m aerialseg.cli``, or ``python -c code``)."""
    env = dict(os.environ)
    if models is not None:
        env["AERIALSEG_MODELS"] = str(models)
    entry = ["-c", code] if code else ["-m", "aerialseg.cli"]
    return subprocess.run([sys.executable, *entry, *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=300)


def _run_all(jobs: dict[str, tuple[list, dict]]) -> dict[str, subprocess.CompletedProcess]:
    """Run independent CLI invocations concurrently (they are mostly interpreter start-up and imports)."""
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        futures = {name: pool.submit(_cli, *args, **kw) for name, (args, kw) in jobs.items()}
        return {name: f.result() for name, f in futures.items()}


def _json_lines(stdout: str) -> list[dict]:
    lines = [line for line in stdout.splitlines() if line.strip()]
    return [json.loads(line) for line in lines]  # every line must be JSON


def _listing(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


def _assert_user_error(r: subprocess.CompletedProcess, json_mode: bool = True) -> str:
    """One clean error line, status 1; returns the message."""
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    errors = [line for line in r.stderr.splitlines() if line.startswith("aerialseg: error:")]
    assert len(errors) == 1, r.stderr
    assert r.stderr.splitlines()[-1] == errors[0]
    if json_mode:  # logs go to stdout: the error is the only line on stderr
        assert r.stderr.strip() == errors[0]
        last = _json_lines(r.stdout)[-1]
        assert last == {"type": "error", "message": errors[0].removeprefix("aerialseg: error: ")}
    assert "internal error" not in errors[0], errors[0]
    assert r.returncode == 1, (r.returncode, r.stderr)
    return errors[0]


# ---------------------------------------------------------------- help and version

COMMANDS = ["classify", "vectorize", "map", "models", "info", "train", "evaluate"]
# torch is an optional extra ("train"); this runs the real CLI in an interpreter where it cannot be imported.
NO_TORCH = "import sys; sys.modules['torch'] = None; from aerialseg.cli import main; sys.exit(main())"


@pytest.fixture(scope="session")
def help_runs() -> dict[str, subprocess.CompletedProcess]:
    jobs = {c: ([c, "--help"], {}) for c in COMMANDS}
    jobs.update({"--help": (["--help"], {}), "--version": (["--version"], {})})
    jobs.update({f"{c} without torch": ([c, "--help"], {"code": NO_TORCH}) for c in ("train", "evaluate")})
    return _run_all(jobs)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_of_every_command(command, help_runs):
    r = help_runs[command]
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"usage: aerialseg {command}")
    assert "Traceback" not in r.stderr


def test_top_level_help_and_version(help_runs):
    r = help_runs["--help"]
    assert r.returncode == 0
    for command in COMMANDS:
        assert command in r.stdout
    r = help_runs["--version"]
    plugin_version = re.search(r"^version=(\S+)$", (ROOT / "metadata.txt").read_text(), re.M).group(1)
    assert r.returncode == 0 and r.stdout.strip() == f"aerialseg {plugin_version}"  # engine and plugin in step


@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_mounted_commands_without_torch_fail_in_one_line(command, help_runs):
    r = help_runs[f"{command} without torch"]
    assert "Traceback" not in r.stderr
    if r.returncode != 0:  # a one-line error saying what to install is as good as the help
        assert r.stderr.strip().startswith("aerialseg: error:") and len(r.stderr.strip().splitlines()) == 1
        assert "torch" in r.stderr


# ---------------------------------------------------------------- successful runs


def test_classify_with_json_progress(inputs, hashes, tmp_path):
    out = tmp_path / "lc.tif"
    r = _cli("classify", inputs["rgb"], out, "--model", "colour", "--progress", "json", models=inputs["colour"].parent)
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""  # in JSON mode everything goes to stdout
    lines = _json_lines(r.stdout)
    assert {line["type"] for line in lines} <= {"progress", "log", "result"}
    progress = [line for line in lines if line["type"] == "progress"]
    assert len(progress) >= 2
    tiles = progress[0]["total"]
    assert tiles == 6 * 11  # 300 x 500 px in 64 px tiles with a 48 px stride
    for p in progress:
        assert p["stage"] == "classify" and p["unit"] == "tile" and p["total"] == tiles
        assert 0 < p["done"] <= tiles and p["percent"] == round(100 * p["done"] / tiles, 1)
        assert p["eta_s"] is None or p["eta_s"] >= 0
    assert [p["done"] for p in progress] == sorted(p["done"] for p in progress)
    assert progress[-1]["done"] == tiles and progress[-1]["percent"] == 100.0
    assert any(line["type"] == "log" and "runtime:" in line["message"] for line in lines)
    assert lines[-1] == {"type": "result", "output": str(out), "confidence": None}
    np.testing.assert_array_equal(read_band(out), expected_classes(SCENE))
    assert _listing(tmp_path) == {"lc.tif", "lc.qml", "lc.tif.aux.xml"}


@needs_shared_data(NL_RGBA)
def test_classify_a_real_rgba_orthophoto_with_confidence(tmp_path, inputs):
    """The real RD New orthophoto (RGB + alpha), default progress mode, model given as a path."""
    before = _md5(NL_RGBA)
    out, conf = tmp_path / "lc.tif", tmp_path / "conf.tif"
    r = _cli("classify", NL_RGBA, out, "-m", inputs["colour"], "--confidence", conf, "--device", "cpu", "-v")
    assert r.returncode == 0, r.stderr
    assert r.stdout == "" and "Traceback" not in r.stderr and "classified" in r.stderr
    with rasterio.open(NL_RGBA) as src, rasterio.open(out) as dst:
        assert (dst.crs, dst.transform, dst.shape) == (src.crs, src.transform, src.shape)
        np.testing.assert_array_equal(dst.read(1), expected_classes(src.read([1, 2, 3])))
    c = read_band(conf)
    assert c.max() <= 100 and c.min() > 0
    assert _md5(NL_RGBA) == before
    assert _listing(tmp_path) == {"lc.tif", "lc.qml", "lc.tif.aux.xml", "conf.tif", "conf.qml"}


def test_overwrite_replaces_an_existing_output(inputs, hashes, tmp_path):
    out = tmp_path / "lc.tif"
    out.write_bytes(b"yesterday's result")
    r = _cli("classify", inputs["rgb"], out, "-m", inputs["colour"], "--overwrite", "--progress", "none")
    assert r.returncode == 0, r.stderr
    np.testing.assert_array_equal(read_band(out), expected_classes(SCENE))
    assert not [n for n in _listing(tmp_path) if n.startswith(".")]


def test_vectorize_with_json_progress(inputs, hashes, tmp_path):
    import aerialseg

    raster = aerialseg.classify(inputs["rgb"], tmp_path / "lc.tif", inputs["colour"], device="cpu")
    raster_md5 = _md5(raster)
    gpkg = tmp_path / "features.gpkg"
    r = _cli("vectorize", raster, gpkg, "--classes", "building,water", "--progress", "json")
    assert r.returncode == 0, r.stderr
    lines = _json_lines(r.stdout)
    progress = [line for line in lines if line["type"] == "progress"]
    assert progress and progress[-1]["stage"] == "vectorize" and progress[-1]["percent"] == 100.0
    assert lines[-1] == {"type": "result", "output": str(gpkg)}
    layers = {name for name, _ in pyogrio.list_layers(gpkg)}
    assert {"building", "water"} <= layers
    buildings = pyogrio.read_dataframe(gpkg, layer="building")
    assert len(buildings) > 0 and set(buildings["class_name"]) == {"building"}
    assert (buildings["area_m2"] >= 1.0).all()
    assert _md5(raster) == raster_md5
    assert not [n for n in _listing(tmp_path) if n.startswith(".")]


def test_map_classifies_and_vectorises(inputs, hashes, tmp_path):
    folder = tmp_path / "result"
    r = _cli("map", inputs["rgb"], folder, "-m", inputs["colour"], "--progress", "json")
    assert r.returncode == 0, r.stderr
    lines = _json_lines(r.stdout)
    stages = [line["stage"] for line in lines if line["type"] == "progress"]
    assert stages[0] == "classify" and stages[-1] == "vectorize"
    raster, gpkg = folder / "rgb_landcover.tif", folder / "rgb_features.gpkg"
    assert lines[-1] == {"type": "result", "output_raster": str(raster), "output_vector": str(gpkg)}
    np.testing.assert_array_equal(read_band(raster), expected_classes(SCENE))
    assert {"building", "water"} <= {name for name, _ in pyogrio.list_layers(gpkg)}
    assert _listing(folder) == {"rgb_landcover.tif", "rgb_landcover.qml", "rgb_landcover.tif.aux.xml",
                                "rgb_features.gpkg"}


def test_models_lists_the_models_folder(inputs):
    r = _cli("models", models=inputs["colour"].parent)
    assert r.returncode == 0, r.stderr
    line = next(line for line in r.stdout.splitlines() if line.startswith("colour"))
    assert "building, water, land" in line and "any resolution" in line and "tile 64 px" in line
    assert str(inputs["colour"]) in line
    r = _cli("models", "--json", models=inputs["colour"].parent)
    assert r.returncode == 0, r.stderr
    entry = next(m for m in json.loads(r.stdout) if m["name"] == "colour")
    assert entry["path"] == str(inputs["colour"])
    assert entry["card"] == json.loads(colour_card().to_json())


def test_info_by_name_and_by_path(inputs):
    r = _cli("info", "colour", "--json", models=inputs["colour"].parent)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == json.loads(colour_card().to_json())
    r = _cli("info", inputs["colour"])
    assert r.returncode == 0, r.stderr
    rows = dict(line.strip().split(": ", 1) for line in r.stdout.splitlines())
    assert rows["name"] == "colour"
    assert rows["classes"] == "0 building #3C1098, 1 water #E2A929, 2 land #8429F6"
    assert rows["tile size / overlap"] == "64 / 16 px" and rows["ground resolution"] == "any"
    assert rows["licence"] == "CC0-1.0"


# ---------------------------------------------------------------- user errors

# case -> (command line, words the message must contain). Placeholders: the names of `inputs`, {dir} (their
# folder), {out} (the case's own empty output folder) and {class_raster} (a class raster written by classify).
BAD = {
    "missing input": (["classify", "{dir}/nope.tif", "{out}/lc.tif", "-m", "{colour}"], "input raster not found"),
    "not a raster": (["classify", "{text}", "{out}/lc.tif", "-m", "{colour}"], "is not a raster GDAL can read"),
    "corrupt tiff": (["classify", "{corrupt}", "{out}/lc.tif", "-m", "{colour}"], "the file may be corrupt"),
    "wrong band count": (["classify", "{one_band}", "{out}/lc.tif", "-m", "{colour}"],
                         "has 1 image band(s) but model 'colour' needs bands 1, 2, 3"),
    "all nodata": (["classify", "{all_nodata}", "{out}/lc.tif", "-m", "{colour}"], "no valid pixels"),
    "unknown model": (["classify", "{rgb}", "{out}/lc.tif", "-m", "no_such_model"], "unknown model 'no_such_model'"),
    "missing model file": (["classify", "{rgb}", "{out}/lc.tif", "-m", "{dir}/gone.onnx"], "model file not found"),
    "invalid model card": (["classify", "{rgb}", "{out}/lc.tif", "-m", "{bad_card}"], "invalid model card"),
    "not an onnx file": (["classify", "{rgb}", "{out}/lc.tif", "-m", "{not_onnx}"], "is not a readable ONNX model"),
    "output folder missing": (["classify", "{rgb}", "{out}/missing/lc.tif", "-m", "{colour}"], "does not exist"),
    # Root may write into a mode-0555 folder; /proc/self is not writable even for root.
    "output folder not writable": (["classify", "{rgb}", "/proc/self/lc.tif", "-m", "{colour}"], "is not writable"),
    "output is the input": (["classify", "{rgb}", "{rgb}", "-m", "{colour}", "--overwrite"], "is the input file"),
    "output is the input, spelt differently": (["classify", "{rgb}", "{dir}/models/../rgb.tif", "-m", "{colour}",
                                                "--overwrite"], "is the input file"),
    "existing output": (["classify", "{rgb}", "{out}/old.tif", "-m", "{colour}"], "already exists; pass --overwrite"),
    "tile size": (["classify", "{rgb}", "{out}/lc.tif", "-m", "{colour}", "--tile-size", "40"],
                  "tile size must be a multiple of 16"),
    "overlap": (["classify", "{rgb}", "{out}/lc.tif", "-m", "{colour}", "--overlap", "40"],
                "overlap must be between 0 and half the tile size (32)"),
    "vectorize missing input": (["vectorize", "{dir}/nope.tif", "{out}/f.gpkg"], "input raster not found"),
    "vectorize an orthophoto": (["vectorize", "{rgb}", "{out}/f.gpkg"], "is not a class raster"),
    "vectorize unknown class": (["vectorize", "{class_raster}", "{out}/f.gpkg", "--classes", "forest"],
                                "unknown class 'forest'"),
    "map unknown model": (["map", "{rgb}", "{out}", "-m", "no_such_model"], "unknown model 'no_such_model'"),
    "map into a folder and --raster": (["map", "{rgb}", "{out}/res", "--raster", "{out}/a.tif", "-m", "{colour}"],
                                       "not both"),
    "map --raster without --vector": (["map", "{rgb}", "--raster", "{out}/a.tif", "-m", "{colour}"],
                                      "both --raster PATH and --vector PATH"),
    "existing map outputs": (["map", "{rgb}", "{out}", "-m", "{colour}"], "already exists; pass --overwrite"),
    # Both wrong: the missing input is what the user hears first.
    "missing input and existing output": (["classify", "{dir}/nope.tif", "{out}/old.tif", "-m", "{colour}"],
                                          "input raster not found"),
    "map missing input and existing outputs": (["map", "{dir}/nope.tif", "{out}", "-m", "{colour}"],
                                               "input raster not found"),
}
# Commands without --progress, and classify in its default progress mode (logs on stderr before the error).
PLAIN_BAD = {
    "info unknown model": (["info", "no_such_model"], "unknown model 'no_such_model'"),
    "info invalid card": (["info", "{bad_card}"], "invalid model card"),
    "info not onnx": (["info", "{not_onnx}"], "is not a readable ONNX model"),
    "models with an invalid card": (["models"], "invalid model card"),
    "classify default mode": (["classify", "{one_band}", "{out}/lc.tif", "-m", "{colour}"], "has 1 image band(s)"),
}
# What each case's output folder holds before the run, and so must hold after it.
PRESET = {"existing output": {"old.tif": b"yesterday's result"},
          "existing map outputs": {"rgb_features.gpkg": b"yesterday's polygons"},
          "missing input and existing output": {"old.tif": b"yesterday's result"},
          "map missing input and existing outputs": {"nope_landcover.tif": b"yesterday's result"}}
# Cases that once crashed or left traces (see the tests below); run in the same pool.
EDGE_CASES = {
    "empty model file": ["classify", "{rgb}", "{out}/lc.tif", "-m", "{empty_onnx}"],
    "map into the input file": ["map", "{rgb}", "{rgb}", "-m", "{colour}"],
    "map missing input": ["map", "{dir}/nope.tif", "{out}/result", "-m", "{colour}"],
}


@pytest.fixture(scope="session")
def bad_runs(inputs, tmp_path_factory):
    """Every bad command line, run concurrently once; each gets its own empty output folder."""
    import aerialseg

    base = tmp_path_factory.mktemp("bad_runs")
    class_raster = aerialseg.classify(inputs["rgb"], base / "class_raster.tif", inputs["colour"], device="cpu")
    before = {k: _md5(p) for k, p in inputs.items()}
    listing = _listing(inputs["rgb"].parent)
    jobs, folders = {}, {}
    broken_models = base / "broken_models"
    broken_models.mkdir()
    (broken_models / "broken.onnx").write_bytes(inputs["bad_card"].read_bytes())
    cases = {**{c: a for c, (a, _) in BAD.items()}, **EDGE_CASES, **{c: a for c, (a, _) in PLAIN_BAD.items()}}
    for i, (case, args) in enumerate(cases.items()):
        out = base / f"case{i}"
        out.mkdir()
        for name, data in PRESET.get(case, {}).items():
            (out / name).write_bytes(data)
        names = {k: str(v) for k, v in inputs.items()}
        names.update(dir=str(inputs["rgb"].parent), out=str(out), class_raster=str(class_raster))
        argv = [a.format(**names) for a in args]
        if case not in PLAIN_BAD:
            argv += ["--progress", "json"]
        models = broken_models if case == "models with an invalid card" else inputs["colour"].parent
        jobs[case] = (argv, {"models": models})
        folders[case] = out
    runs = _run_all(jobs)
    unchanged = {k: _md5(p) for k, p in inputs.items()} == before and _listing(inputs["rgb"].parent) == listing
    return {case: (runs[case], folders[case], unchanged) for case in runs}


def _check_no_output(case: str, folder: Path) -> None:
    preset = PRESET.get(case, {})
    assert _listing(folder) == set(preset), f"left behind: {_listing(folder) - set(preset)}"
    for name, data in preset.items():
        assert (folder / name).read_bytes() == data, f"{name} was changed"


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_gives_one_clean_error_and_no_output(case, bad_runs):
    r, folder, inputs_unchanged = bad_runs[case]
    message = _assert_user_error(r)
    assert BAD[case][1] in message
    _check_no_output(case, folder)
    assert inputs_unchanged, "an input file was modified or a file appeared next to the inputs"


@pytest.mark.parametrize("case", list(PLAIN_BAD))
def test_bad_input_without_json_progress_gives_one_clean_error(case, bad_runs):
    r, folder, inputs_unchanged = bad_runs[case]
    assert r.stdout == ""
    assert PLAIN_BAD[case][1] in _assert_user_error(r, json_mode=False)
    _check_no_output(case, folder)
    assert inputs_unchanged


def test_an_empty_model_file_is_a_user_error(bad_runs):
    r, folder, inputs_unchanged = bad_runs["empty model file"]
    assert inputs_unchanged
    _check_no_output("empty model file", folder)
    _assert_user_error(r)


def test_map_into_the_input_file_is_a_user_error(bad_runs):
    r, folder, inputs_unchanged = bad_runs["map into the input file"]
    assert inputs_unchanged
    _assert_user_error(r)


def test_failed_map_creates_no_output_folder(bad_runs):
    r, folder, inputs_unchanged = bad_runs["map missing input"]
    assert inputs_unchanged
    assert "input raster not found" in _assert_user_error(r)
    _check_no_output("map missing input", folder)


def test_check_reports_the_device_and_why(tmp_path, colour_model):
    shutil.copy(colour_model, tmp_path / "colour.onnx")
    r = _cli("check", "--json", models=tmp_path)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["device"] in ("cpu", "cuda") and report["device_reason"]
    assert "CPUExecutionProvider" in report["onnxruntime_providers"]
    assert "colour" in report["models"]


def test_main_in_process_restores_the_callers_signal_handlers(tmp_path):
    """map ignores SIGINT/SIGTERM while it moves its outputs; a caller of main() must get its handlers back
    (else every process it starts later inherits 'ignore SIGTERM': a killed qgis_process would not die)."""
    import signal

    from aerialseg.cli import main

    before = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    src = write_raster(tmp_path / "rgb.tif", SCENE)
    assert main(["map", str(src), str(tmp_path / "out"), "--progress", "none", "--model", "dubai-landcover-unet-r18",
                 "--no-resample"]) == 0
    assert {s: signal.getsignal(s) for s in before} == before


def test_json_progress_is_at_most_one_line_per_tenth_of_a_percent(capsys):
    from aerialseg.cli.report import Reporter

    update = Reporter("json").progress("classify", "tile")
    for done in range(1, 20_001):
        update(done, 20_000)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    percents = [line["percent"] for line in lines]
    assert lines[-1]["done"] == 20_000 and percents[-1] == 100.0  # the last unit always has its line
    assert len(set(percents)) == 1001 and len(lines) <= 1002  # 0.0, 0.1, ... 100.0: each step once (+ the last)
    assert percents == sorted(percents)
