"""Land-cover model accuracy end to end: classify + evaluate on Dubai tiles (by default tile 7).

Each image of a tile is written as a GeoTIFF in UTM 40N at the tile's estimated ground resolution (tile 7:
1.1 m/px, tiles 1-6: 2 m/px, see models/TRAINING.md), classified by the real command line (resampled to the
model's 2 m, mapped back) and scored against its colour-coded mask; the confusion matrices are summed.
Tile 7 was held out while the recipe was chosen; the shipped model has seen every tile, so on it these
figures measure the fit, not accuracy on an unseen scene.

    python bench/landcover_accuracy.py [--model dubai-landcover-unet-r18] [--tiles 7] [--work DIR]
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

GSD = {"7": 1.1}  # metres per pixel of each tile (by eye); the others about 2.0


def as_geotiff(src: Path, dst: Path, gsd: float) -> Path:
    rgb = np.asarray(Image.open(src).convert("RGB")).transpose(2, 0, 1)
    profile = {"driver": "GTiff", "width": rgb.shape[2], "height": rgb.shape[1], "count": 3, "dtype": "uint8",
               "crs": "EPSG:32640", "transform": from_origin(500000, 2800000, gsd, gsd)}
    with rasterio.open(dst, "w", **profile) as out:
        out.write(rgb)
    return dst


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--model", default="dubai-landcover-unet-r18")
    p.add_argument("--precision", default="fp32", help="fp32 (the file as it is), int8 or auto")
    p.add_argument("--tiles", default="7", help="comma-separated tile numbers, e.g. 1,2,3,4,5,6")
    p.add_argument("--work", default="/tmp/aerialseg-bench-landcover")
    a = p.parse_args()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    cli = [sys.executable, "-m", "aerialseg.cli"]
    cm = None
    images = [(n, img) for n in a.tiles.split(",")
              for img in sorted((SHARED_DATA / "dubai" / f"tile_{n}" / "images").glob("*.jpg"))]
    for n, img in images:
        gsd, stem = GSD.get(n, 2.0), f"t{n}_{img.stem}"
        photo = as_geotiff(img, work / f"{stem}.tif", gsd)
        mask = as_geotiff(img.parent.parent / "masks" / f"{img.stem}.png", work / f"{stem}_mask.tif", gsd)
        pred, out = work / f"{stem}_pred.tif", work / f"{stem}.json"
        subprocess.run([*cli, "classify", photo, pred, "--model", a.model, "--precision", a.precision,
                    "--overwrite", "--progress", "none"],
                       check=True, stderr=subprocess.DEVNULL)
        subprocess.run([*cli, "evaluate", pred, mask, "--classes", "dubai", "--colour-reference", "--json", out,
                        "--overwrite", "--progress", "none"], check=True, stdout=subprocess.DEVNULL)
        m = np.asarray(json.loads(out.read_text())["confusion_matrix"], np.int64)
        cm = m if cm is None else cm + m
    s = scores(cm, ["building", "land", "road", "vegetation", "water"])
    print(json.dumps({"model": a.model, "tiles": a.tiles, "pixel_accuracy": round(s["pixel_accuracy"], 4),
                      "miou": round(s["miou"], 4), "iou": {k: round(v["iou"], 4) for k, v in s["per_class"].items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
