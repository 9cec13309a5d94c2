"""A fine orthophoto with a coarse model, side by side in one run (issue 14): how close classify gets to
the cost of decoding the input once plus running the model on its tiles.

A real tiled JPEG GeoTIFF of the Dutch 0.19 m orthophoto mosaicked to SIZE x SIZE px (made once), the
2 m default land-cover model in float32. Measured: decoding every block once; the model alone on as many
tiles as classify runs; ``aerialseg classify`` end to end (also with ``--output-grid working`` where the
engine has it). Prints one JSON line per size.

    python bench/fine_ortho.py [--sizes 10000,20000] [--overviews]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from _common import AERIALSEG, DEFAULT_WORKDIR, cached_mosaic

MODEL = "dubai-landcover-unet-r18"


def real_geotiff(size: int, overviews: bool) -> Path:
    """A tiled, JPEG-compressed GeoTIFF (what orthophoto providers ship), made once."""
    import rasterio
    import rasterio.shutil

    out = DEFAULT_WORKDIR / f"fine_{size}{'_ovr' if overviews else ''}.tif"
    if not out.exists():
        tmp = out.with_suffix(".partial.tif")
        rasterio.shutil.copy(cached_mosaic(DEFAULT_WORKDIR, size, None), tmp, driver="GTiff", TILED="YES",
                             COMPRESS="JPEG", PHOTOMETRIC="YCBCR", BLOCKXSIZE=512, BLOCKYSIZE=512,
                             NUM_THREADS="ALL_CPUS", BIGTIFF="IF_SAFER")
        if overviews:
            with rasterio.open(tmp, "r+") as ds:
                ds.build_overviews([2, 4, 8, 16, 32], rasterio.enums.Resampling.average)
        tmp.rename(out)
    return out


def decode_once(path: Path) -> float:
    import rasterio

    t = time.perf_counter()
    with rasterio.open(path) as ds:
        for _, window in ds.block_windows(1):
            ds.read(window=window)
    return time.perf_counter() - t


def model_only(path: Path) -> tuple[float, int]:
    import rasterio

    from aerialseg.inference import plan_grid
    from aerialseg.options import ClassifyOptions
    from aerialseg.runtime import load_model

    net = load_model(MODEL, "cpu", precision="fp32")
    with rasterio.open(path) as ds:
        _, tiles = plan_grid(ds, net.card, ClassifyOptions())
    n = tiles.n_tiles
    x = np.random.default_rng(0).normal(size=(1, 3, net.card.tile_size, net.card.tile_size)).astype(np.float32)
    net.predict(x)
    t = time.perf_counter()
    for _ in range(n):
        net.predict(x)
    return time.perf_counter() - t, n


def classify(path: Path, *extra: str) -> float:
    out = DEFAULT_WORKDIR / "fine_out.tif"
    t = time.perf_counter()
    subprocess.run([AERIALSEG, "classify", path, out, "--model", MODEL, "--precision", "fp32", "--overwrite",
                    "--progress", "none", *extra], check=True, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--sizes", default="10000")
    p.add_argument("--overviews", action="store_true")
    p.add_argument("--extra", default="", help="extra classify options to time too, e.g. '--output-grid working'")
    a = p.parse_args()
    for size in map(int, a.sizes.split(",")):
        path = real_geotiff(size, a.overviews)
        decode = decode_once(path)
        model, tiles = model_only(path)
        whole = classify(path)
        row = {"size": size, "overviews": a.overviews, "decode_s": round(decode, 2), "model_s": round(model, 2),
               "tiles": tiles, "classify_s": round(whole, 2), "ratio": round(whole / (decode + model), 2)}
        if a.extra:
            row["classify_extra_s"] = round(classify(path, *a.extra.split()), 2)
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
