"""Vectorisation: megapixels/s, peak RSS and feature counts of `aerialseg vectorize` vs gdal_polygonize.py.

Usage: .venv/bin/python bench/vectorize_vs_gdal.py [--size 5000 | --raster CLASSES.tif] [--model M]
                                                   [--gdal-polygonize /usr/bin/gdal_polygonize.py]

The class raster is --raster, or made once in --workdir by `aerialseg classify` of a VRT mosaic of the
real orthophoto at the model's ground resolution. Each run is a separate process (peak RSS is its
ru_maxrss), each writing a GeoPackage of every class, 4-connected, nodata masked:
  aerialseg       `aerialseg vectorize --classes <all>` with its defaults (seam merging, 1 m2 minimum
                  area, one-pixel simplification, one layer per class, styles);
  aerialseg raw   the same with --simplify 0 --min-area 0 (every pixel corner kept, like GDAL's output);
  gdal            `gdal_polygonize.py -f GPKG` (GDALPolygonize on the whole raster, one layer).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pyogrio

from _common import AERIALSEG, DEFAULT_WORKDIR, cached_mosaic, megapixels, run
from aerialseg.raster import open_raster, read_class_table
from aerialseg.runtime import load_model


def feature_count(gpkg: Path) -> int:
    return sum(pyogrio.read_info(gpkg, layer=name)["features"] for name, _ in pyogrio.list_layers(gpkg))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=5000, help="mosaic width and height in px (default 5000)")
    p.add_argument("--raster", type=Path, help="an existing class raster (skips classify)")
    p.add_argument("--model", default=None, help="model for the class raster (default: the default model)")
    p.add_argument("--gdal-polygonize", default="/usr/bin/gdal_polygonize.py")
    p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    a = p.parse_args()
    a.workdir.mkdir(parents=True, exist_ok=True)
    lc = a.raster
    if lc is None:
        card = load_model(a.model, "cpu").card
        lc = a.workdir / f"classes_{a.size}_{card.name}.tif"
        if not lc.exists():
            mosaic = cached_mosaic(a.workdir, a.size, card.gsd_m)
            print(f"making the class raster {lc} (aerialseg classify {mosaic})", flush=True)
            model = ["--model", a.model] if a.model else []
            run([AERIALSEG, "classify", mosaic, lc, *model, "--progress", "none"])
    with open_raster(lc) as ds:
        table = read_class_table(ds)
    classes = ",".join(c.name for c in table) if table else ",".join(str(i) for i in range(255))
    mp = megapixels(lc)
    print(f"class raster {lc}: {mp:.1f} MP; classes {classes}")

    stem = a.workdir / f"vectors_{lc.stem}"
    outs = {name: Path(f"{stem}_{name.replace(' ', '_')}.gpkg") for name in ("aerialseg", "aerialseg raw", "gdal")}
    common = ["--classes", classes, "--overwrite", "--progress", "none"]
    runs = {
        "aerialseg": [AERIALSEG, "vectorize", lc, outs["aerialseg"], *common],
        "aerialseg raw": [AERIALSEG, "vectorize", lc, outs["aerialseg raw"], *common,
                          "--simplify", "0", "--min-area", "0"],
        "gdal": [a.gdal_polygonize, "-q", lc, "-of", "GPKG", outs["gdal"], "classes", "class_id"],
    }
    print(f"{'tool':<14} {'seconds':>8} {'MP/s':>7} {'peak MiB':>9} {'features':>9} {'s vs gdal':>9} "
          f"{'MiB vs gdal':>11}")
    results = {}
    for name, cmd in runs.items():
        outs[name].unlink(missing_ok=True)  # gdal_polygonize.py appends to an existing file
        results[name] = (*run(cmd), feature_count(outs[name]))
    gt, grss, _ = results["gdal"]
    for name, (t, rss, n) in results.items():
        print(f"{name:<14} {t:>8.1f} {mp / t:>7.2f} {rss:>9.0f} {n:>9} {t / gt:>9.2f} {rss / grss:>11.2f}")


if __name__ == "__main__":
    main()
