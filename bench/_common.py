"""Helpers shared by the benchmark scripts: child processes with their peak RSS, cached inputs."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "core"))
from make_big_raster import DEFAULT_SOURCE, mosaic_vrt  # noqa: E402

AERIALSEG = str(Path(sys.executable).with_name("aerialseg"))
DEFAULT_WORKDIR = Path("/tmp/aerialseg-bench")


# A child's ru_maxrss starts at its parent's peak RSS at the fork (Linux keeps the forked copy's high-water
# mark across exec), so commands are started by this small launcher (~10 MiB) rather than by the benchmark
# itself, which holds a model or arrays; the launcher reports its child's ru_maxrss in KiB.
_LAUNCH = (
    "import os, sys; pid = os.posix_spawnp(sys.argv[2], sys.argv[2:], os.environ); _, st, ru = os.wait4(pid, 0); "
    "open(sys.argv[1], 'w').write(str(ru.ru_maxrss)); sys.exit(os.waitstatus_to_exitcode(st))"
)


def run(cmd: list, quiet: bool = False, check: bool = True) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB, ``ru_maxrss``) of one command run as a child process."""
    cmd = [str(c) for c in cmd]
    with tempfile.NamedTemporaryFile("r") as f:
        start = time.perf_counter()
        status = subprocess.call([sys.executable, "-I", "-S", "-c", _LAUNCH, f.name, *cmd],
                                 stdout=subprocess.DEVNULL if quiet else None)
        seconds = time.perf_counter() - start
        kib = f.read()
    if status != 0 and check:
        raise SystemExit(f"failed ({status}): {' '.join(cmd)}")
    return seconds, int(kib or 0) / 1024


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
