"""Class tables of known data sets and colour-mask decoding (numpy only: no torch, no GDAL).

Shared by training (``datasets``) and by ``evaluate``, which must run on the base install.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from aerialseg.card import ClassInfo
from aerialseg.metrics import IGNORE_INDEX

RGB = tuple[int, int, int]

DUBAI_CLASSES = (
    ClassInfo(0, "building", "#3C1098"),
    ClassInfo(1, "land", "#8429F6"),
    ClassInfo(2, "road", "#6EC1E4"),
    ClassInfo(3, "vegetation", "#FEDD3A"),
    ClassInfo(4, "water", "#E2A929"),
)
LANDCOVERAI_CLASSES = (
    ClassInfo(0, "background", "#FFFFFF"),
    ClassInfo(1, "building", "#E6194B"),
    ClassInfo(2, "woodland", "#3CB44B"),
    ClassInfo(3, "water", "#4363D8"),
    ClassInfo(4, "road", "#808080"),
)
POTSDAM_CLASSES = (
    ClassInfo(0, "impervious", "#FFFFFF"),
    ClassInfo(1, "building", "#0000FF"),
    ClassInfo(2, "low_vegetation", "#00FFFF"),
    ClassInfo(3, "tree", "#00FF00"),
    ClassInfo(4, "car", "#FFFF00"),
    ClassInfo(5, "clutter", "#FF0000"),
)


def palette_table(src: Any) -> np.ndarray | None:
    """The colour table of band 1 of an open rasterio dataset as a (256, 3) uint8 array, or None."""
    try:
        cmap = src.colormap(1)
    except ValueError:
        return None
    table = np.zeros((256, 3), np.uint8)
    for k, v in cmap.items():
        table[k] = v[:3]
    return table


def colours_to_ids(rgb: np.ndarray, colours: Sequence[RGB]) -> np.ndarray:
    """Map a (3, H, W) colour mask to class ids; colours not in ``colours`` become IGNORE_INDEX."""
    key = (rgb[0].astype(np.int32) << 16) | (rgb[1].astype(np.int32) << 8) | rgb[2].astype(np.int32)
    out = np.full(key.shape, IGNORE_INDEX, np.uint8)
    for i, (r, g, b) in enumerate(colours):
        out[key == ((r << 16) | (g << 8) | b)] = i
    return out
