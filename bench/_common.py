"""Helpers shared by the benchmark scripts: child processes with their peak RSS, cached inputs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "core"))
from make_big_raster import DEFAULT_SOURCE, mosaic_vrt  # noqa: E402

AERIALSEG = str(Path(sys.executable).with_name("aerialseg"))
DEFAULT_WORKDIR = Path("/tmp/aerialseg-bench")


def run(cmd: list[str], quiet: bool = False) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB, ``ru_maxrss`` of the child) of one command run as a child process."""
    start = time.perf_counter()
    proc = subprocess.Popen([str(c) for c in cmd], stdout=subprocess.DEVNULL if quiet else None)
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"failed ({status}): {' '.join(map(str, cmd))}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024


def cached_mosaic(workdir: Path, size: int, gsd: float | None) -> Path:
    """A size x size VRT mosaic of the real orthophoto at ``gsd`` m/px, made once in ``workdir``."""
    workdir.mkdir(parents=True, exist_ok=True)
    vrt = workdir / f"mosaic_{size}_{gsd or 'native'}m.vrt"
    if not vrt.exists():
        vrt.write_text(mosaic_vrt(DEFAULT_SOURCE, size, gsd))
    return vrt


def megapixels(raster: Path) -> float:
    import rasterio

    with rasterio.open(raster) as ds:
        return ds.width * ds.height / 1e6
