"""The engine as a package: models as package data, extras that match the imports, an honest ``check``,
a fast start-up. Every test runs the real command line in a subprocess.

A missing extra is an interpreter in which its modules cannot be imported (``sys.modules[name] = None``,
exactly what Python does for a module that is absent); tests/test_install.py checks the same in a real
venv with only the base install.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import aerialseg
from aerialseg.runtime import MODELS_DIR
from rasters import write_raster

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = Path(aerialseg.__file__).resolve().parent
HEAVY = ("rasterio", "onnxruntime", "torch", "geopandas", "osgeo", "numpy", "onnx", "pyogrio", "tqdm")
EXTRAS = {"train": ("torch", "torchvision", "segmentation_models_pytorch", "matplotlib"),
          "cluster": ("dask", "distributed")}


def _run(*args: str | Path, absent: tuple[str, ...] = (), pythonpath: Path | None = None,
         models: Path | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """``aerialseg ARGS`` in a fresh interpreter in which the modules ``absent`` cannot be imported."""
    code = (f"import sys\nfor m in {absent!r}: sys.modules[m] = None\n"
            "from aerialseg.cli import main\nsys.exit(main())")
    env = dict(os.environ)
    env.pop("AERIALSEG_MODELS", None)
    if models is not None:
        env["AERIALSEG_MODELS"] = str(models)
    if pythonpath is not None:
        env["PYTHONPATH"] = str(pythonpath)
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          env=env, cwd=cwd or ROOT, timeout=300)


def _one_error_line(r: subprocess.CompletedProcess) -> str:
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr + r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aerialseg: error: "), r.stderr
    return lines[0]


# ---------------------------------------------------------------- models are package data


def test_the_bundled_models_live_in_the_package():
    assert MODELS_DIR == PACKAGE / "models"
    assert sorted(p.name for p in MODELS_DIR.glob("*.onnx")) == [
        "aerial-buildings-unet-r18.int8.onnx", "aerial-buildings-unet-r18.onnx",
        "dubai-landcover-unet-r18.int8.onnx", "dubai-landcover-unet-r18.onnx",
    ]
    assert not list((ROOT / "models").glob("*.onnx")), "models/ keeps only the training reports"


@pytest.mark.slow
def test_models_and_check_work_from_any_folder(tmp_path):
    r = _run("models", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    models = json.loads(r.stdout)
    assert [m["name"] for m in models] == ["aerial-buildings-unet-r18", "dubai-landcover-unet-r18"]
    assert all(Path(m["path"]).parent == MODELS_DIR for m in models)


@pytest.fixture(scope="module")
def bare_package(tmp_path_factory) -> Path:
    """A copy of the engine package without its models: the install the bug report describes."""
    root = tmp_path_factory.mktemp("bare")
    shutil.copytree(PACKAGE, root / "aerialseg", ignore=shutil.ignore_patterns("models", "__pycache__"))
    return root


# ---------------------------------------------------------------- check tells the truth


def _check_json(r: subprocess.CompletedProcess) -> dict:
    last = json.loads(r.stdout.strip().splitlines()[-1])
    assert last["type"] == "result" and isinstance(last["ok"], bool)
    return last


@pytest.mark.slow
def test_check_passes_on_a_working_install(tmp_path):
    r = _run("check", "--json", "--device", "cpu", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    report = _check_json(r)
    assert report["ok"] is True and report["problems"] == []
    assert report["default_model"] == "dubai-landcover-unet-r18" and report["device"] == "cpu"
    assert r.stderr == ""


@pytest.mark.slow
def test_check_fails_without_any_model(bare_package, tmp_path):
    r = _run("check", "--json", pythonpath=bare_package, cwd=tmp_path)
    assert "no usable default model" in _one_error_line(r)
    report = _check_json(r)
    assert report["ok"] is False and report["models"] == []
    r = _run("check", pythonpath=bare_package, cwd=tmp_path)  # the table says it too
    assert "does NOT work" in r.stdout
    _one_error_line(r)


@pytest.mark.slow
def test_check_fails_when_the_default_model_is_missing(bare_package, tmp_path, colour_model):
    models = bare_package / "aerialseg" / "models"
    models.mkdir()
    try:
        shutil.copy(colour_model, models / "colour.onnx")
        (models / "DEFAULT").write_text("gone\n")
        r = _run("check", "--json", pythonpath=bare_package, cwd=tmp_path)
        assert "unknown model 'gone'" in _one_error_line(r)
        assert _check_json(r)["models"] == ["colour"]
    finally:
        shutil.rmtree(models)


@pytest.mark.slow
def test_check_fails_when_a_model_cannot_be_loaded(tmp_path, colour_model):
    broken = tmp_path / "models"
    broken.mkdir()
    (broken / "half.onnx").write_bytes(colour_model.read_bytes()[:200])  # a download cut short
    r = _run("check", "--json", models=broken, cwd=tmp_path)
    _one_error_line(r)
    assert _check_json(r)["ok"] is False


@pytest.mark.slow
def test_check_fails_when_the_device_asked_for_does_not_work(tmp_path):
    r = _run("check", "--json", "--device", "cuda", cwd=tmp_path)
    report = _check_json(r)
    if report["ok"]:  # a machine with a working CUDA GPU
        assert r.returncode == 0 and report["device"] == "cuda"
    else:
        assert "does not run on device 'cuda'" in _one_error_line(r)


@pytest.mark.slow
def test_check_does_not_import_torch_unless_training_is_checked(tmp_path):
    r = _run("check", "--json", absent=EXTRAS["train"], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert _check_json(r)["ok"] is True
    r = _run("check", "--json", "--train", absent=EXTRAS["train"], cwd=tmp_path)
    assert 'pip install "aerialseg[train]"' in _one_error_line(r)
    assert any("torch cannot be imported" in p for p in _check_json(r)["problems"])


@pytest.mark.slow
def test_check_of_the_cluster_extra(tmp_path):
    r = _run("check", "--json", "--cluster", absent=EXTRAS["cluster"], cwd=tmp_path)
    assert 'pip install "aerialseg[cluster]"' in _one_error_line(r)


# ---------------------------------------------------------------- missing extras: one line, which extra


@pytest.mark.slow
@pytest.mark.parametrize("argv", [["train", "--help"], ["export", "--help"], ["train", "--dataset", "dubai"]])
def test_training_commands_without_the_train_extra(argv):
    r = _run(*argv, absent=EXTRAS["train"])
    line = _one_error_line(r)
    assert f"'{argv[0]}' needs torch" in line and line.endswith('pip install "aerialseg[train]"')


@pytest.mark.slow
def test_a_checkpoint_without_the_train_extra(tmp_path, rgb_tif):
    ckpt = tmp_path / "best.pt"
    ckpt.write_bytes(b"not read: torch is missing")
    r = _run("classify", rgb_tif, tmp_path / "lc.tif", "--model", ckpt, "--progress", "none",
             absent=EXTRAS["train"])
    line = _one_error_line(r)
    assert "best.pt needs torch" in line and 'pip install "aerialseg[train]"' in line
    assert sorted(p.name for p in tmp_path.iterdir()) == ["best.pt", "rgb.tif"]


@pytest.mark.slow
@pytest.mark.parametrize("option", [["--workers", "2"], ["--scheduler", "tcp://127.0.0.1:1"]])
def test_cluster_options_without_the_cluster_extra(tmp_path, rgb_tif, colour_model, option):
    r = _run("classify", rgb_tif, tmp_path / "lc.tif", "-m", colour_model, *option, "--progress", "none",
             absent=EXTRAS["cluster"])
    line = _one_error_line(r)
    assert "needs distributed" in line and line.endswith('pip install "aerialseg[cluster]"')
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rgb.tif"]


@pytest.mark.slow
def test_evaluate_runs_on_the_base_install(tmp_path):
    import numpy as np

    ids = np.zeros((1, 40, 60), np.uint8)
    ids[0, :, 30:] = 1
    pred, ref = write_raster(tmp_path / "pred.tif", ids), write_raster(tmp_path / "ref.tif", ids)
    r = _run("evaluate", pred, ref, "--classes", "a,b", "--json", tmp_path / "s.json", absent=EXTRAS["train"])
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "s.json").read_text())["pixel_accuracy"] == 1.0
    r = _run("evaluate", pred, ref, "--classes", "a,b", "--png", tmp_path / "cm.png", absent=EXTRAS["train"])
    assert "--png" in _one_error_line(r) and 'pip install "aerialseg[train]"' in r.stderr
    assert not (tmp_path / "cm.png").exists()


# ---------------------------------------------------------------- start-up


@pytest.mark.slow
@pytest.mark.parametrize("entry", ["aerialseg", "aerialseg.cli"])
@pytest.mark.parametrize("argv", [["--version"], ["--help"], ["classify", "--help"], ["map", "--help"],
                                  ["check", "--help"], ["evaluate", "--help"]])
def test_version_and_help_import_nothing_heavy(argv, entry):
    """Only the command line's modules: the library behind a command is imported when the command runs."""
    r = subprocess.run([sys.executable, "-X", "importtime", "-m", entry, *argv], capture_output=True,
                       text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr
    imported = {line.split("|")[-1].strip().split(".")[0] for line in r.stderr.splitlines()
                if line.startswith("import time:")}
    assert "aerialseg" in imported
    assert not imported & set(HEAVY), sorted(imported & set(HEAVY))

