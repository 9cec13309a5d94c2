"""Tiny, layout-faithful copies of the training data sets, written with real file formats.

Images are painted from a random class map (each class its own colour plus noise), so a network
can learn them in a few steps; masks use each data set's real encoding.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from PIL import Image

from aerialseg.datasets import DUBAI_CLASSES, POTSDAM_CLASSES

CLASS_PAINT = np.array(
    [[200, 40, 40], [200, 180, 120], [90, 90, 90], [40, 160, 40], [30, 60, 200], [240, 240, 0], [10, 10, 10]], np.int32
)
GREY, BLACK = (155, 155, 155), (0, 0, 0)


def class_map(h: int, w: int, k: int, seed: int) -> np.ndarray:
    """A blocky random class map (8 px blocks) of shape (h, w)."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, k, size=(h // 8 + 1, w // 8 + 1))
    return np.kron(blocks, np.ones((8, 8), np.int64))[:h, :w]


def paint(ids: np.ndarray, seed: int) -> np.ndarray:
    """(3, H, W) uint8 image whose colours follow the class map."""
    rng = np.random.default_rng(seed + 1000)
    img = CLASS_PAINT[ids].transpose(2, 0, 1) + rng.integers(-15, 16, size=(3, *ids.shape))
    return np.clip(img, 0, 255).astype(np.uint8)


def make_dubai(
    root: Path, tiles: tuple[int, ...] = (1, 2, 3), parts: int = 2, size: tuple[int, int] = (72, 80)
) -> Path:
    """``tile_N/images/image_part_00M.jpg`` + ``masks/image_part_00M.png``; tiles 2 and 4 get palette masks.

    Each mask has a grey (unlabeled) strip in its first 3 rows and a black pixel at (3, 0).
    """
    colours = np.array([c.rgb for c in DUBAI_CLASSES] + [GREY, BLACK], np.uint8)
    for t in tiles:
        for p in range(1, parts + 1):
            ids = class_map(*size, 5, seed=10 * t + p)
            ids[:3] = 5
            ids[3, 0] = 6
            (root / f"tile_{t}" / "images").mkdir(parents=True, exist_ok=True)
            (root / f"tile_{t}" / "masks").mkdir(parents=True, exist_ok=True)
            Image.fromarray(paint(ids, t * 10 + p).transpose(1, 2, 0)).save(
                root / f"tile_{t}" / "images" / f"image_part_00{p}.jpg", quality=95
            )
            mask = Image.fromarray(colours[ids])
            if t in (2, 4):
                mask = mask.quantize(palette=_palette_image(colours), dither=Image.Dither.NONE)
            mask.save(root / f"tile_{t}" / "masks" / f"image_part_00{p}.png")
    return root


def _palette_image(colours: np.ndarray) -> Image.Image:
    pal = Image.new("P", (1, 1))
    flat = list(colours.ravel()) + [0] * (768 - colours.size)
    pal.putpalette([int(v) for v in flat])
    return pal


def write_tif(path: Path, data: np.ndarray, crs: str = "EPSG:2180", res: float = 0.25) -> Path:
    """A tiled GeoTIFF of ``data`` (bands, rows, cols)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        width=data.shape[2],
        height=data.shape[1],
        count=data.shape[0],
        dtype=data.dtype.name,
        crs=crs,
        transform=Affine(res, 0.0, 500000.0, 0.0, -res, 600000.0),
    ) as dst:
        dst.write(data)
    return path


def make_landcoverai(root: Path, chip: int = 32) -> Path:
    """``images/M-33-*.tif`` (RGB) + ``masks/M-33-*.tif`` (ids 0-4) and chip lists (chip k = k-th full chip)."""
    names = ("M-33-20-D-c-4-2", "N-34-97-D-c-2-4")
    for i, name in enumerate(names):
        ids = class_map(2 * chip + 5, 3 * chip + 7, 5, seed=i)  # ragged edge: partial chips are not listed
        write_tif(root / "images" / f"{name}.tif", paint(ids, i))
        write_tif(root / "masks" / f"{name}.tif", ids[None].astype(np.uint8))
    (root / "train.txt").write_text("\n".join(f"{names[0]}_{k}" for k in range(6)) + "\n")
    (root / "val.txt").write_text(f"{names[1]}_4\n{names[1]}_5\n")
    (root / "test.txt").write_text(f"{names[1]}_0\n")
    return root


def make_potsdam(root: Path, ids: tuple[str, ...] = ("2_10", "3_11"), size: int = 64) -> Path:
    """``2_Ortho_RGB/top_potsdam_X_Y_RGB.tif`` + ``5_Labels_all/top_potsdam_X_Y_label.tif`` (colour-coded)."""
    colours = np.array([c.rgb for c in POTSDAM_CLASSES], np.uint8)
    for i, tid in enumerate(ids):
        cls = class_map(size, size, 6, seed=50 + i)
        write_tif(root / "2_Ortho_RGB" / f"top_potsdam_{tid}_RGB.tif", paint(cls, 50 + i), crs="EPSG:32633", res=0.05)
        write_tif(
            root / "5_Labels_all" / f"top_potsdam_{tid}_label.tif",
            colours[cls].transpose(2, 0, 1),
            crs="EPSG:32633",
            res=0.05,
        )
    return root


def make_folder(root: Path, names: tuple[str, ...] = ("a", "b"), k: int = 3, size: int = 48) -> Path:
    """``images/<name>.tif`` + ``masks/<name>.tif`` (class ids, 255 = ignore in the first row)."""
    for i, name in enumerate(names):
        ids = class_map(size, size, k, seed=70 + i).astype(np.uint8)
        write_tif(root / "images" / f"{name}.tif", paint(ids, 70 + i), crs="EPSG:32633")
        ids[0] = 255
        write_tif(root / "masks" / f"{name}.tif", ids[None], crs="EPSG:32633")
    return root


@pytest.fixture(autouse=True)
def one_thread():
    """One intra-op thread: tiny tensors gain nothing from more, and tests may share the cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
