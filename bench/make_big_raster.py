"""Make a large, realistic test raster once: a VRT mosaic of a real orthophoto repeated (mirrored) N x N.

Usage: .venv/bin/python bench/make_big_raster.py SIZE OUT.vrt [--source ortho.tif] [--pixel METRES]

The VRT references the source file only (no pixel copies), so a 50,000 x 50,000 px raster costs
nothing on disk; reading it exercises real GDAL windowed I/O. The pixel size defaults to the source's.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from xml.sax.saxutils import escape

import rasterio

SHARED_DATA = Path(os.environ.get("AERIALSEG_SHARED_DATA") or Path(__file__).resolve().parents[2] / "shared/data")
DEFAULT_SOURCE = SHARED_DATA / "rasters/nl_aerial_rd_new_1210x718.tif"


def mosaic_vrt(source: Path, size: int, pixel: float | None) -> str:
    """VRT XML of a size x size mosaic of ``source`` (RGB bands, alpha dropped)."""
    with rasterio.open(source) as src:
        w, h, crs, t = src.width, src.height, src.crs.to_wkt(), src.transform
    px = pixel or t.a
    bands = []
    for b in (1, 2, 3):
        sources = []
        for y0 in range(0, size, h):
            for x0 in range(0, size, w):
                cw, ch = min(w, size - x0), min(h, size - y0)
                sources.append(
                    f'<SimpleSource><SourceFilename relativeToVRT="0">{escape(str(source))}</SourceFilename>'
                    f'<SourceBand>{b}</SourceBand><SrcRect xOff="0" yOff="0" xSize="{cw}" ySize="{ch}"/>'
                    f'<DstRect xOff="{x0}" yOff="{y0}" xSize="{cw}" ySize="{ch}"/></SimpleSource>'
                )
        ci = ("Red", "Green", "Blue")[b - 1]
        bands.append(f'<VRTRasterBand dataType="Byte" band="{b}"><ColorInterp>{ci}</ColorInterp>'
                     f'{"".join(sources)}</VRTRasterBand>')
    return (f'<VRTDataset rasterXSize="{size}" rasterYSize="{size}"><SRS>{escape(crs)}</SRS>'
            f'<GeoTransform>{t.c}, {px}, 0, {t.f}, 0, {-px}</GeoTransform>{"".join(bands)}</VRTDataset>')


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("size", type=int, help="width and height in pixels")
    p.add_argument("out", type=Path, help="output .vrt")
    p.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    p.add_argument("--pixel", type=float, help="pixel size in metres (default: the source's)")
    a = p.parse_args()
    a.out.write_text(mosaic_vrt(a.source.resolve(), a.size, a.pixel))
    print(a.out)


if __name__ == "__main__":
    main()
