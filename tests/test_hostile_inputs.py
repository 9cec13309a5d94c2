"""Hostile and unusual input values against the real command line (issue 16, the input part).

Each case runs ``python -m aerialseg.cli`` as a subprocess on generated files and checks the promise of
the README: one ``aerialseg: error:`` line on stderr naming what to fix (status 1, 2 for usage errors), no
traceback, nothing written, the input unchanged; or, for unusual but valid inputs, a correct map.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import pytest
from rasterio.transform import from_origin

from aerialseg.card import CARD_KEY
from conftest import scene, write_raster
from tinymodels import colour_card, write_colour_model

pytestmark = pytest.mark.slow

SCENE = scene(120, 160, seed=3)


def cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aerialseg.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=300, cwd=cwd, env=dict(os.environ))


def run_all(jobs: dict[str, list]) -> dict[str, subprocess.CompletedProcess]:
    """Independent command lines, run two at a time (they are mostly interpreter start-up)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(cli, *argv) for name, argv in jobs.items()}
        return {name: f.result() for name, f in futures.items()}


def assert_one_error_line(r: subprocess.CompletedProcess, *words: str, status: int = 1) -> str:
    """Exactly one ``aerialseg: error:`` line on stderr (nothing else), the status, and the words in it."""
    assert r.returncode == status, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aerialseg: error:"), r.stderr
    assert "internal error" not in lines[0]
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def with_card(source: Path, path: Path, **changes) -> Path:
    """A copy of an ONNX model whose stored card JSON has ``changes`` (no validation on the way)."""
    model = onnx.load(str(source))
    for p in model.metadata_props:
        if p.key == CARD_KEY:
            card = json.loads(p.value)
            card.update(changes)
            p.value = json.dumps(card)  # json writes NaN and Infinity as such
    onnx.save(model, str(path))
    return path


def write_at(path: Path, data: np.ndarray, metres: float) -> Path:
    """A GeoTIFF in UTM 33N with pixels of ``metres``."""
    return write_raster(path, data, transform=from_origin(500000, 4000000, metres, metres))


# ---------------------------------------------------------------- 9. what stderr holds


def test_stderr_holds_only_warnings_and_the_error_unless_verbose(tmp_path, colour_model):
    rgb = write_raster(tmp_path / "rgb.tif", SCENE)
    one_band = write_raster(tmp_path / "one.tif", SCENE[:1])
    model = write_colour_model(tmp_path / "m.onnx", colour_card(name="half-metre", gsd_m=0.25))
    runs = run_all({
        "quiet": ["classify", rgb, tmp_path / "a.tif", "-m", model],
        "verbose": ["classify", rgb, tmp_path / "b.tif", "-m", model, "-v"],
        "error": ["classify", one_band, tmp_path / "c.tif", "-m", model],
    })
    assert runs["quiet"].returncode == 0 and runs["quiet"].stderr == ""
    assert "runtime:" in runs["verbose"].stderr and "resampling:" in runs["verbose"].stderr
    assert_one_error_line(runs["error"], "one.tif", "1 image band(s)")
