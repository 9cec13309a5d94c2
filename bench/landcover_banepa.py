"""The land-cover model out of its domain: the Banepa drone photo at 0.13 m, scored against OSM buildings.

The land-cover model learned Dubai satellite tiles at 2 m; users run it on their own orthophotos. All 48
fair_banepa chips (0.13 m, Nepal) are mosaicked into one GeoTIFF with their OpenStreetMap building masks,
each model classifies it through the real command line (downsampled 15x to its 2 m, mapped back), and this
reports, at the mask's resolution, the building IoU / precision / recall against OSM and how the model
labels the ground that OSM says is not a building (shares of land, road, vegetation, water). The labels
hold buildings only, so this measures one class and the plausibility of the rest, not a land-cover score.

    python bench/landcover_banepa.py [--models dubai-landcover-unet-r18,other.onnx] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import rasterio

import _common  # noqa: F401 - puts core/ on the path
from aerialseg.metrics import confusion_matrix
from buildings_accuracy import mosaic
from make_big_raster import SHARED_DATA

CLASSES = ("building", "land", "road", "vegetation", "water")  # the Dubai land-cover models' class ids


def score(pred: Path, mask: Path) -> dict:
    """Building IoU/precision/recall and the class shares of the non-building ground (Dubai class ids)."""
    with rasterio.open(pred) as p, rasterio.open(mask) as m:
        # rows: OSM (0 not a building, 1 building); columns: the model's class; its no-data pixels left out
        cm = confusion_matrix(m.read(1), p.read(1), len(CLASSES))[:2]
    b = CLASSES.index("building")
    tp, found, truth = int(cm[1, b]), int(cm[:, b].sum()), int(cm[1].sum())
    return {"building_iou": round(tp / max(found + truth - tp, 1), 4),
            "building_precision": round(tp / max(found, 1), 4),
            "building_recall": round(tp / max(truth, 1), 4),
            "ground_shares": dict(zip(CLASSES, (round(float(v), 3) for v in cm[0] / max(cm[0].sum(), 1))))}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--models", default="dubai-landcover-unet-r18", help="comma-separated names or .onnx paths")
    p.add_argument("--work", default="/tmp/aerialseg-bench-landcover-banepa")
    a = p.parse_args()
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    root = SHARED_DATA / "fair_banepa"
    names = sorted(f.name for f in (root / "images").glob("OAM-*.tif"))
    image = mosaic([root / "images" / n for n in names], work / "image.tif")
    mask = mosaic([root / "masks" / n for n in names], work / "mask.tif")
    cli = [sys.executable, "-m", "aerialseg.cli"]
    for i, model in enumerate(a.models.split(",")):
        pred = work / f"pred_{i}.tif"
        subprocess.run([*cli, "classify", image, pred, "--model", model, "--precision", "fp32", "--overwrite",
                        "--progress", "none"], check=True)
        print(json.dumps({"model": model, "chips": len(names), **score(pred, mask)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
