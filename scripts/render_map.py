"""Render a photo with its class raster and polygons over it to a PNG, to look at what a model did.

    python scripts/render_map.py PHOTO CLASSES.tif FEATURES.gpkg OUT.png [--title T] [--classes building,...]

Left: the photo; right: the photo with the classes (semi-transparent, the card's colours) and the outlines
of the polygons of the chosen classes.
"""

from __future__ import annotations

import argparse

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pyogrio  # noqa: E402
import rasterio  # noqa: E402
from matplotlib.colors import ListedColormap  # noqa: E402

from aerialseg.raster import read_class_table  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("photo")
    p.add_argument("classes")
    p.add_argument("features")
    p.add_argument("out")
    p.add_argument("--title", default="")
    p.add_argument("--outline", default="building", help="comma-separated classes whose polygons are drawn")
    a = p.parse_args()
    with rasterio.open(a.photo) as src:
        rgb = np.moveaxis(src.read((1, 2, 3)), 0, -1)
        bounds = src.bounds
    with rasterio.open(a.classes) as src:
        cls = src.read(1)
        table = read_class_table(src)
    colours = np.zeros((256, 4))
    for c in table:
        colours[c.id] = (*(v / 255 for v in c.rgb), 0.55)
    extent = (bounds.left, bounds.right, bounds.bottom, bounds.top)
    fig, axes = plt.subplots(1, 2, figsize=(14, 14 * rgb.shape[0] / rgb.shape[1] / 2 + 0.8), dpi=110)
    for ax in axes:
        ax.imshow(rgb, extent=extent)
        ax.set_axis_off()
    axes[1].imshow(cls, cmap=ListedColormap(colours), vmin=0, vmax=255, extent=extent, interpolation="nearest")
    wanted = set(a.outline.split(","))
    layers = [name for name, _ in pyogrio.list_layers(a.features) if name in wanted]
    for layer in layers:
        gdf = pyogrio.read_dataframe(a.features, layer=layer)
        gdf.boundary.plot(ax=axes[1], color="black", linewidth=0.8)
    for ax in axes:  # the polygons must not move the view (pixel coordinates of an ungeoreferenced photo too)
        ax.set_xlim(extent[0], extent[1])
        ax.set_ylim(extent[2], extent[3])
        ax.set_aspect("auto")  # pixels square as in the photo (geopandas sets a degree aspect for EPSG:4326)
    handles = [plt.Rectangle((0, 0), 1, 1, color=colours[c.id][:3]) for c in table]
    axes[1].legend(handles, [c.name for c in table], loc="lower right", fontsize=8)
    fig.suptitle(a.title, fontsize=11)
    fig.tight_layout()
    fig.savefig(a.out)


if __name__ == "__main__":
    main()
