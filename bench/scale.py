"""Time and peak memory of `aerialseg classify` and `vectorize` on large rasters, one process each.

Usage: .venv/bin/python bench/scale.py [--sizes 5000 20000] [--model NAME_OR_PATH] [--workdir DIR]

Each run is a separate `aerialseg` process; peak RSS is that process's ru_maxrss. Inputs are VRT
mosaics of the real Dutch orthophoto at the model's ground resolution (so the figures are the
pipeline's own, not resampling's).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from make_big_raster import DEFAULT_SOURCE, mosaic_vrt  # noqa: E402


def run(cmd: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one command run as a child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd)
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"failed ({status}): {' '.join(cmd)}")
    return time.perf_counter() - start, usage.ru_maxrss / 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000])
    p.add_argument("--model", default=None)
    p.add_argument("--workdir", type=Path, default=Path("/tmp/aerialseg-bench"))
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more classify options")
    a = p.parse_args()
    a.workdir.mkdir(parents=True, exist_ok=True)
    exe = str(Path(sys.executable).with_name("aerialseg"))
    sys.path.insert(0, str(HERE.parent / "core"))
    from aerialseg.runtime import load_model

    card = load_model(a.model, "cpu").card
    model_args = ["--model", a.model] if a.model else []
    print(f"model {card.name}: gsd {card.gsd_m} m, tile {card.tile_size}, overlap {card.overlap}")
    print(f"{'size':>7} {'stage':>9} {'MP':>7} {'seconds':>8} {'MP/s':>6} {'peak MiB':>9}")
    for size in a.sizes:
        vrt = a.workdir / f"mosaic_{size}.vrt"
        vrt.write_text(mosaic_vrt(DEFAULT_SOURCE, size, card.gsd_m))
        lc, gpkg = a.workdir / f"lc_{size}.tif", a.workdir / f"features_{size}.gpkg"
        mp = size * size / 1e6
        t, rss = run([exe, "classify", str(vrt), str(lc), *model_args, "--overwrite", "--progress", "none", *a.extra])
        print(f"{size:>7} {'classify':>9} {mp:>7.1f} {t:>8.1f} {mp / t:>6.2f} {rss:>9.0f}", flush=True)
        t, rss = run([exe, "vectorize", str(lc), str(gpkg), "--overwrite", "--progress", "none"])
        print(f"{size:>7} {'vectorize':>9} {mp:>7.1f} {t:>8.1f} {mp / t:>6.2f} {rss:>9.0f}", flush=True)


if __name__ == "__main__":
    main()
