"""Class tables of known data sets and colour-mask decoding (numpy only: no torch, no GDAL).

Shared by training (``datasets``) and by ``evaluate``, which must run on the base install.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from aerialseg.card import ClassInfo
from aerialseg.errors import InputError
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


def read_class_colours(path: str | Path) -> tuple[ClassInfo, ...]:
    """Classes of a ``name,r,g,b`` CSV (e.g. the Semantic Drone Dataset's ``class_dict.csv``), in its row order.

    The header names the columns (any order, any case, spaces around values tolerated); every colour must
    be distinct and each channel 0-255. One-line InputErrors otherwise.
    """
    path = Path(path)
    try:
        rows = [[c.strip() for c in row] for row in csv.reader(path.read_text(encoding="utf-8-sig").splitlines())]
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"--class-colours: cannot read {path}: {getattr(e, 'strerror', None) or e}") from None
    rows = [r for r in rows if any(r)]
    header = [h.lower() for h in rows[0]] if rows else []
    if not {"name", "r", "g", "b"} <= set(header):
        raise InputError(f"--class-colours: {path} must start with the header name,r,g,b (got {','.join(header)})")
    cols = [header.index(k) for k in ("name", "r", "g", "b")]
    classes: list[ClassInfo] = []
    seen: dict[RGB, str] = {}
    for line, row in enumerate(rows[1:], start=2):
        try:
            name, *rgb = (row[i] for i in cols)
            r, g, b = (int(v) for v in rgb)
        except (IndexError, ValueError):
            raise InputError(f"--class-colours: line {line} of {path} is not name,r,g,b: {','.join(row)}") from None
        if not all(0 <= v <= 255 for v in (r, g, b)):
            raise InputError(f"--class-colours: line {line} of {path}: channels must be 0-255, not {r},{g},{b}")
        if (r, g, b) in seen:
            raise InputError(f"--class-colours: {path} gives {r},{g},{b} to both {seen[(r, g, b)]} and {name}")
        seen[(r, g, b)] = name
        classes.append(ClassInfo(len(classes), name, f"#{r:02X}{g:02X}{b:02X}"))
    if len(classes) < 2:
        raise InputError(f"--class-colours: {path} lists {len(classes)} class(es); at least two are needed")
    return tuple(classes)
