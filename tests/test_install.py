"""Installing the engine for real (slow; needs a package index that pip can reach).

- The base install resolves, wheels only, for every Python the package declares and for Windows, macOS
  arm64 and x86_64, and Linux x86_64 and aarch64 (``pip install --dry-run --only-binary=:all:``).
- A wheel built from the repository, installed with pip into a new venv (dependencies from the index),
  runs from another folder: ``models``, ``check``, ``classify`` with the default model; ``train --help``
  names the [train] extra, which the base install does not have.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest
import rasterio

from aerialseg.raster import read_class_table

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: the same parser, from PyPI
    import tomli as tomllib

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
SAMPLE = ROOT / "data" / "sample" / "banepa_sample.tif"
# Each platform as the tags of a current machine of its kind, macOS 15 (pip does not widen --platform by itself).
# Newer rasterio wheels for macOS need macOS 14 (arm64) or 15 (x86_64).
MACOS = ("10_15", "11_0", "12_0", "13_0", "14_0", "15_0")
PLATFORMS = {
    "windows-x86_64": ["win_amd64"],
    "macos-arm64": [f"macosx_{v}_{a}" for v in MACOS[1:] for a in ("arm64", "universal2")],
    "macos-x86_64": [f"macosx_{v}_{a}" for v in MACOS for a in ("x86_64", "universal2")],
    "linux-x86_64": [f"manylinux_2_{v}_x86_64" for v in (17, 24, 27, 28)] + ["manylinux2014_x86_64"],
    "linux-aarch64": [f"manylinux_2_{v}_aarch64" for v in (17, 24, 27, 28)] + ["manylinux2014_aarch64"],
}
# Combinations not supported (README, "Install"), and why.
NOT_SUPPORTED = {("3.14", "macos-x86_64"): "onnxruntime has no Intel-Mac wheels for Python 3.14"}


def declared_pythons() -> list[str]:
    """The Python versions pyproject.toml declares in its classifiers (3.10, 3.11, ...)."""
    found = [m.group(1) for c in PYPROJECT["classifiers"]
             if (m := re.fullmatch(r"Programming Language :: Python :: (3\.\d+)", c))]
    assert found, "pyproject.toml declares no Python version classifiers"
    return found


def _clean_env() -> dict[str, str]:
    """This environment without what would point a venv's Python at the repository's sources or models."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "AERIALSEG_MODELS", "PYTHONHOME")}


def _pip(*args: str | Path, python: str | Path = sys.executable, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([str(python), "-m", "pip", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=_clean_env())


def _in_venv(venv: Path, program: str) -> Path:
    """A program of a venv (its python, aerialseg) on this platform."""
    windows = sys.platform == "win32"
    return venv / ("Scripts" if windows else "bin") / (program + (".exe" if windows else ""))


def _errors(r: subprocess.CompletedProcess) -> str:
    return "\n".join(line for line in r.stderr.splitlines() if "ERROR" in line or "rror:" in line)[-1500:]


# ---------------------------------------------------------------- the declared platforms resolve


@pytest.mark.slow
@pytest.mark.parametrize(("python", "platform"), [(py, plat) for py in declared_pythons() for plat in PLATFORMS
                                                  if (py, plat) not in NOT_SUPPORTED])
def test_the_base_install_resolves(python, platform, tmp_path):
    plats = [a for tag in PLATFORMS[platform] for a in ("--platform", tag)]
    r = _pip("install", "--dry-run", "--ignore-installed", "--only-binary=:all:", "--python-version", python,
             *plats, "--target", tmp_path / "t", *PYPROJECT["dependencies"], timeout=600)
    assert r.returncode == 0, (
        f"the base install does not resolve for Python {python} on {platform} (or no package index was "
        f"reachable: pip needs PyPI or a mirror):\n{_errors(r)}")
    would = r.stdout[r.stdout.index("Would install"):]
    assert re.search(r"\bonnxruntime-\d", would) and re.search(r"\brasterio-\d", would), would
    assert "torch-" not in would and "onnxruntime_gpu" not in would.replace("-", "_"), would


@pytest.mark.slow
@pytest.mark.parametrize("platform", ["windows-x86_64", "linux-x86_64"])
@pytest.mark.parametrize("python", declared_pythons())
def test_the_gpu_extra_resolves(python, platform, tmp_path):
    plats = [a for tag in PLATFORMS[platform] for a in ("--platform", tag)]
    gpu = [req.split(";")[0] for req in PYPROJECT["optional-dependencies"]["gpu"]]  # its marker admits both
    r = _pip("install", "--dry-run", "--ignore-installed", "--only-binary=:all:", "--python-version", python,
             *plats, "--target", tmp_path / "t", *gpu, timeout=600)
    assert r.returncode == 0, f"[gpu] does not resolve for Python {python} on {platform}:\n{_errors(r)}"
    would = r.stdout[r.stdout.index("Would install"):]
    assert "onnxruntime-gpu-" in would.replace("_", "-") and "nvidia-cudnn" in would.replace("_", "-"), would


# ---------------------------------------------------------------- a wheel in a new venv


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The engine's wheel, built from a copy of the repository's sources (the build writes beside them)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "core", src / "core", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    out = tmp_path_factory.mktemp("wheel")
    r = _pip("wheel", "--no-deps", "-w", out, src)
    assert r.returncode == 0, f"pip wheel failed:\n{_errors(r)}"
    (path,) = out.glob("aerialseg-*.whl")
    print(f"\nwheel: {path.name}, {path.stat().st_size / 1e6:.1f} MB")
    return path


@pytest.mark.slow
def test_the_wheel_carries_the_models(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
    assert "aerialseg/models/dubai-landcover-unet-r18.onnx" in names
    assert not [n for n in names if n.startswith(("tests/", "models/", "data/"))]


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A new venv with the wheel installed by pip (base install, dependencies from the index)."""
    root = tmp_path_factory.mktemp("venv") / "env"
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", root], check=True, timeout=300)
    python = _in_venv(root, "python")
    r = _pip("install", wheel, python=python)
    assert r.returncode == 0, f"pip install of the wheel failed (is a package index reachable?):\n{_errors(r)}"
    size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
    print(f"\nvenv + base install: {time.monotonic() - started:.0f} s, {size / 1e6:.0f} MB")
    return root


def _aerialseg(venv: Path, *args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    exe = _in_venv(venv, "aerialseg")
    return subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=600,
                          env=_clean_env())


@pytest.mark.slow
def test_the_installed_wheel_maps_from_another_folder(venv, tmp_path):
    assert _pip("show", "torch", python=_in_venv(venv, "python")).returncode != 0, "the base install has torch"
    r = _aerialseg(venv, "models", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    models = json.loads(r.stdout)
    assert [m["name"] for m in models] == ["aerial-buildings-unet-r18", "dubai-landcover-unet-r18"]
    assert all(str(venv) in m["path"] for m in models)
    r = _aerialseg(venv, "check", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.splitlines()[-1])["ok"] is True
    ortho = shutil.copy(SAMPLE, tmp_path / "ortho.tif")
    r = _aerialseg(venv, "classify", ortho, "lc.tif", "--progress", "none", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    with rasterio.open(tmp_path / "lc.tif") as lc, rasterio.open(ortho) as src:
        assert (lc.crs, lc.transform, lc.shape) == (src.crs, src.transform, src.shape)
        classes = read_class_table(lc)
        assert classes is not None and "building" in [c.name for c in classes]
        assert lc.read(1).max() < len(classes)  # every pixel classified (the sample has no nodata)


@pytest.mark.slow
def test_the_base_install_names_the_train_extra(venv, tmp_path):
    r = _aerialseg(venv, "train", "--help", cwd=tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        "aerialseg: error: 'train' needs torch (the [train] extra), which is not installed; "
        'install it with: pip install "aerialseg[train]"']


@pytest.mark.slow
def test_both_onnxruntime_builds_fail_the_check_until_swapped_as_the_readme_says(venv, tmp_path):
    python = _in_venv(venv, "python")
    assert _pip("install", "--no-deps", "onnxruntime-gpu", python=python).returncode == 0  # the naive [gpu] install
    r = _aerialseg(venv, "check", "--json", cwd=tmp_path)
    assert r.returncode == 1 and "both installed" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    for step in (["uninstall", "-y", "onnxruntime", "onnxruntime-gpu"], ["install", "--no-deps", "onnxruntime-gpu"]):
        assert _pip(*step, python=python).returncode == 0, step
    r = _aerialseg(venv, "check", "--json", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout.splitlines()[-1])
    assert [b.split()[0] for b in report["onnxruntime_builds"]] == ["onnxruntime-gpu"]
    assert "CUDAExecutionProvider" in report["onnxruntime_providers"]


# ---------------------------------------------------------------- the README's demo needs only the repository


def _copy_of_the_repository(dest: Path) -> Path:
    """The repository's tracked files as they are in the working tree (what a clone has, with local edits)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, (f.decode() for f in files)):
        if (ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, dest / name)
    return dest


@pytest.mark.slow
def test_the_demo_fails_early_without_a_usable_python(tmp_path):
    repo = _copy_of_the_repository(tmp_path / "repo")
    env = {**_clean_env(), "PYTHON": str(tmp_path / "no-python3")}
    r = subprocess.run(["bash", "setup.sh", "demo"], cwd=repo, capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and "Python 3.10 or newer with venv" in r.stderr
    assert not (repo / ".venv").exists() and not (repo / "out").exists()


@pytest.mark.slow
def test_the_demo_maps_the_bundled_sample_with_only_the_repository(tmp_path):
    repo = _copy_of_the_repository(tmp_path / "repo")
    started = time.monotonic()
    r = subprocess.run(["bash", "setup.sh", "demo"], cwd=repo, capture_output=True, text=True, env=_clean_env(),
                       timeout=1200)
    assert r.returncode == 0, r.stderr[-3000:]
    size = sum(f.stat().st_size for f in (repo / ".venv").rglob("*") if f.is_file())
    print(f"\nbash setup.sh demo: {time.monotonic() - started:.0f} s, .venv {size / 1e6:.0f} MB")
    out = repo / "out"
    assert {"banepa_sample_landcover.tif", "banepa_sample_features.gpkg"} <= {p.name for p in out.iterdir()}
    installed = _pip("list", "--format=json", python=_in_venv(repo / ".venv", "python"))
    names = {p["name"].lower() for p in json.loads(installed.stdout)}
    assert "onnxruntime" in names and not names & {"torch", "pytest", "mypy", "ruff", "onnxruntime-gpu"}, names
