"""Test helpers: tiny real rasters (synthetic scenes written as GeoTIFFs) and what the colour model says for
them. Fixtures live in conftest.py; import these from here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin


def scene(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A 3-band uint8 scene of red 'buildings' and blue 'water' rectangles on grey-green 'land'."""
    rng = np.random.default_rng(seed)
    img = np.empty((3, height, width), np.uint8)
    img[0], img[1], img[2] = 90, 120, 80
    for _ in range(max(2, height * width // 4000)):
        y, x = rng.integers(0, height), rng.integers(0, width)
        h, w = rng.integers(4, max(5, height // 4)), rng.integers(4, max(5, width // 4))
        if rng.random() < 0.6:
            img[:, y : y + h, x : x + w] = np.array([230, 40, 30], np.uint8)[:, None, None]
        else:
            img[:, y : y + h, x : x + w] = np.array([20, 60, 220], np.uint8)[:, None, None]
    noise = rng.integers(-20, 21, size=img.shape)
    return np.clip(img.astype(int) + noise, 0, 255).astype(np.uint8)


def write_raster(path: Path, data: np.ndarray, crs: str | None = "EPSG:32633", transform=None, **profile) -> Path:
    """Write ``data`` (bands, rows, cols) as a GeoTIFF (or any driver given in profile)."""
    base = {"driver": "GTiff", "width": data.shape[2], "height": data.shape[1], "count": data.shape[0],
            "dtype": data.dtype.name}
    if crs is not None:
        base["crs"] = crs
        base["transform"] = transform or from_origin(500000, 4000000, 0.5, 0.5)
    base.update(profile)
    with rasterio.open(path, "w", **base) as ds:
        ds.write(data)
    return path


def expected_classes(img: np.ndarray) -> np.ndarray:
    """What the colour model must say for a scene: the same rule, computed directly in numpy."""
    x = img.astype(np.float32) / 255
    logits = np.stack([20 * x[0] - 10, 20 * x[2] - 10, np.zeros_like(x[0])])
    return logits.argmax(axis=0).astype(np.uint8)


def read_band(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)
