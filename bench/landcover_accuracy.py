"""Land-cover model accuracy end to end: classify + evaluate on Dubai tile 7 (never trained on).

Each tile-7 image is written as a GeoTIFF at 1.1 m/px in UTM 40N (its estimated ground resolution, see
models/TRAINING.md), classified by the real command line (resampled to the model's 2 m, mapped back) and
scored against its colour-coded mask; the 9 confusion matrices are summed.

    python bench/landcover_accuracy.py [--model dubai-landcover-unet-r18] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import rasterio
from PIL import Image
from rasterio.transform import from_origin

import _common  # noqa: F401 - puts core/ on the path
from aerialseg.metrics import scores
from make_big_raster import SHARED_DATA

GSD = 1.1


def as_geotiff(src: Path, dst: Path) -> Path:
    rgb = np.asarray(Image.open(src).convert("RGB")).transpose(2, 0, 1)
    profile = {"driver": "GTiff", "width": rgb.shape[2], "height": rgb.shape[1], "count": 3, "dtype": "uint8",
               "crs": "EPSG:32640", "transform": from_origin(500000, 2800000, GSD, GSD)}
    with rasterio.open(dst, "w", **profile) as out:
        out.write(rgb)
    return dst


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="dubai-landcover-unet-r18")
    p.add_argument("--precision", default="fp32", help="fp32 (the file as it is), int8 or auto")
    p.add_argument("--work", default="/tmp/aerialseg-bench-landcover")
    a = p.parse_args()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    tile = SHARED_DATA / "dubai" / "tile_7"
    cli = [sys.executable, "-m", "aerialseg.cli"]
    cm = None
    for img in sorted((tile / "images").glob("*.jpg")):
        photo = as_geotiff(img, work / f"{img.stem}.tif")
        mask = as_geotiff(tile / "masks" / f"{img.stem}.png", work / f"{img.stem}_mask.tif")
        pred, out = work / f"{img.stem}_pred.tif", work / f"{img.stem}.json"
        subprocess.run([*cli, "classify", photo, pred, "--model", a.model, "--precision", a.precision,
                    "--overwrite", "--progress", "none"],
                       check=True, stderr=subprocess.DEVNULL)
        subprocess.run([*cli, "evaluate", pred, mask, "--classes", "dubai", "--colour-reference", "--json", out,
                        "--overwrite", "--progress", "none"], check=True, stdout=subprocess.DEVNULL)
        m = np.asarray(json.loads(out.read_text())["confusion_matrix"], np.int64)
        cm = m if cm is None else cm + m
    s = scores(cm, ["building", "land", "road", "vegetation", "water"])
    print(json.dumps({"model": a.model, "pixel_accuracy": round(s["pixel_accuracy"], 4), "miou": round(s["miou"], 4),
                      "iou": {k: round(v["iou"], 4) for k, v in s["per_class"].items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
