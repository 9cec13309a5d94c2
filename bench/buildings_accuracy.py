"""Building model accuracy end to end: classify + evaluate on the held-out fair_banepa chips.

The validation chips (columns x = 386694-386695, never seen in training) are mosaicked into one GeoTIFF
(EPSG:4326, as published) with their masks; the real command line classifies the mosaic and scores it:

    python bench/buildings_accuracy.py [--model aerial-buildings-unet-r18] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import rasterio
from rasterio.merge import merge

import _common  # noqa: F401 - puts core/ on the path
from make_big_raster import SHARED_DATA

HELD_OUT = ("386694", "386695")


def mosaic(paths: list[Path], out: Path) -> Path:
    """Merge neighbouring chips into one GeoTIFF (their grids line up exactly)."""
    sources = [rasterio.open(p) for p in paths]
    try:
        data, transform = merge(sources)
        profile = {**sources[0].profile, "height": data.shape[1], "width": data.shape[2], "transform": transform,
                   "driver": "GTiff", "tiled": True, "compress": "deflate", "blockxsize": 256, "blockysize": 256}
        profile.pop("photometric", None)  # the chips are JPEG/YCbCr; the mosaic is lossless
    finally:
        for s in sources:
            s.close()
    with rasterio.open(out, "w", **profile) as dst:
        dst.write(data)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="aerial-buildings-unet-r18")
    p.add_argument("--precision", default="fp32", help="fp32 (the file as it is), int8 or auto")
    p.add_argument("--work", default="/tmp/aerialseg-bench-buildings")
    a = p.parse_args()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    root = SHARED_DATA / "fair_banepa"
    names = sorted(f.name for f in (root / "images").glob("OAM-*.tif") if f.name.split("-")[1] in HELD_OUT)
    image = mosaic([root / "images" / n for n in names], work / "val_image.tif")
    mask = mosaic([root / "masks" / n for n in names], work / "val_mask.tif")
    cli = [sys.executable, "-m", "aerialseg.cli"]
    pred, scores = work / "val_pred.tif", work / "scores.json"
    subprocess.run([*cli, "classify", image, pred, "--model", a.model, "--precision", a.precision,
                    "--overwrite", "--progress", "none"],
                   check=True)
    subprocess.run([*cli, "evaluate", pred, mask, "--classes", "background,building", "--json", scores,
                    "--overwrite", "--progress", "none"], check=True, stdout=subprocess.DEVNULL)
    s = json.loads(scores.read_text())
    print(json.dumps({"model": a.model, "chips": len(names), "pixel_accuracy": s["pixel_accuracy"],
                      "building_iou": s["per_class"]["building"]["iou"], "miou": s["miou"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
