"""Make data/sample/banepa_sample.tif, the demo orthophoto shipped in the repository.

A 2 x 3 block of neighbouring chips of the HOT fAIr Banepa sample (OpenAerialMap drone imagery, CC BY 4.0),
from the columns x=386694..386695 that training holds out, mosaicked into one tiled JPEG/YCbCr GeoTIFF
(EPSG:4326, as the chips). Run from the repository root:

    .venv/bin/python scripts/make_sample.py [--data ../shared/data/fair_banepa/images]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import rasterio
from rasterio.enums import Resampling
from rasterio.merge import merge

COLUMNS = (386694, 386695)  # held out of training (validation columns)
ROWS = (220241, 220242, 220243)
OUT = Path("data/sample/banepa_sample.tif")


def chips(folder: Path) -> list[Path]:
    """The chips of the block, each with its .aux.xml georeferencing beside it."""
    paths = [folder / f"OAM-{x}-{y}-19.tif" for y in ROWS for x in COLUMNS]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise SystemExit(f"make_sample: chips not found: {', '.join(missing)}")
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/fair_banepa/images"))
    args = parser.parse_args()
    sources = [rasterio.open(p) for p in chips(args.data)]
    res = min(s.res[0] for s in sources), min(s.res[1] for s in sources)
    mosaic, transform = merge(sources, res=res, resampling=Resampling.bilinear)
    profile = {"driver": "GTiff", "width": mosaic.shape[2], "height": mosaic.shape[1], "count": 3,
               "dtype": "uint8", "crs": sources[0].crs, "transform": transform, "tiled": True,
               "blockxsize": 256, "blockysize": 256, "compress": "JPEG", "photometric": "YCBCR",
               "jpeg_quality": 88}
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(OUT, "w", **profile) as dst:
        dst.write(mosaic)
        dst.update_tags(SOURCE="HOT fAIr sample data (hotosm/fAIr-models), OpenAerialMap drone orthophoto of Banepa",
                        LICENCE="Imagery (c) OpenAerialMap contributors (CC BY 4.0)")
    print(f"{OUT}: {mosaic.shape[2]} x {mosaic.shape[1]} px, {OUT.stat().st_size / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
