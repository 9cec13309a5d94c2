"""Start-up: ``aerialseg --version`` and ``classify`` of a 512 x 512 px raster end to end (median of N runs).

    python bench/startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _common import AERIALSEG


def seconds(cmd: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--runs", type=int, default=5)
    a = p.parse_args()
    import rasterio
    from rasterio.transform import from_origin

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "small.tif"
        data = np.random.default_rng(0).integers(0, 256, (3, 512, 512), dtype=np.uint8)
        with rasterio.open(src, "w", driver="GTiff", width=512, height=512, count=3, dtype="uint8",
                           crs="EPSG:32633", transform=from_origin(500000, 4000000, 2.0, 2.0)) as ds:
            ds.write(data)
        row = {
            "version_s": round(seconds([AERIALSEG, "--version"], a.runs), 3),
            "help_s": round(seconds([AERIALSEG, "--help"], a.runs), 3),
            "classify_512_s": round(seconds([AERIALSEG, "classify", str(src), str(Path(tmp) / "lc.tif"),
                                             "--overwrite", "--progress", "none"], a.runs), 3),
        }
    print(json.dumps(row))
    return 0


if __name__ == "__main__":
    sys.exit(main())
