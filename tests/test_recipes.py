"""Every recipe of recipes/ end to end on a tiny copy of its data set, in the data set's real layout and mask
encoding: ``aerialseg train --config recipes/X.toml`` (shrunk by command-line overrides), ``aerialseg export``,
then ``aerialseg classify`` with the exported model, each a real process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from PIL import Image

from aerialseg.card import read_card
from aerialseg.trainconfig import read_recipe
from trainkit import class_map, make_dubai, make_landcoverai, make_potsdam, paint

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes"
# A few real rows of the Semantic Drone Dataset's class_dict.csv, spaces as in the original.
DRONE_CSV = "name, r, g, b\nunlabeled, 0, 0, 0\npaved-area, 128, 64, 128\ndirt, 130, 76, 0\ngrass, 0, 102, 0\n"
SMALL = ["--epochs", "1", "--chip", "32", "--batch-size", "2", "--chips-per-epoch", "2", "--threads", "1",
         "--encoder-depth", "3", "--no-progress"]
UNET_SMALL = ["--decoder-channels", "16,8,8"]


def _cli(*args: str | Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "core"), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "aerialseg.cli", *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=600)


def _semantic_drone(root: Path) -> tuple[list, Path]:
    """training_set/images/*.jpg, gt/semantic/label_images/*.png (RGB colours) and gt/semantic/class_dict.csv."""
    gt = root / "training_set" / "gt" / "semantic"
    (root / "training_set" / "images").mkdir(parents=True)
    (gt / "label_images").mkdir(parents=True)
    (gt / "class_dict.csv").write_text(DRONE_CSV)
    colours = np.array([[0, 0, 0], [128, 64, 128], [130, 76, 0], [0, 102, 0]], np.uint8)
    for i in range(5):
        ids = class_map(64, 96, 4, seed=i)
        Image.fromarray(paint(ids, i).transpose(1, 2, 0)).save(root / "training_set" / "images" / f"{i:03d}.jpg")
        Image.fromarray(colours[ids]).save(gt / "label_images" / f"{i:03d}.png")
    args = ["--images", root / "training_set" / "images", "--masks", gt / "label_images",
            "--class-colours", gt / "class_dict.csv", *UNET_SMALL]
    return args, root / "training_set" / "images" / "000.jpg"


def _dubai(root: Path) -> tuple[list, Path]:
    """The download's own folder names: "Tile N/images/*.jpg" + "Tile N/masks/*.png"."""
    make_dubai(root, tiles=(1, 7), parts=1, size=(64, 64))
    for t in (1, 7):
        (root / f"tile_{t}").rename(root / f"Tile {t}")
    return ["--data", root, "--train-split", "1", *UNET_SMALL], root / "Tile 1" / "images" / "image_part_001.jpg"


def _potsdam(root: Path) -> tuple[list, Path]:
    """Every tile the recipe names, as top_potsdam_X_Y_RGB.tif + colour-coded _label.tif."""
    recipe = read_recipe(RECIPES / "potsdam.toml")
    make_potsdam(root, ids=(*recipe["train_split"], *recipe["val_split"]), size=64)
    return ["--data", root, *UNET_SMALL], root / "2_Ortho_RGB" / "top_potsdam_2_10_RGB.tif"


def _landcoverai(root: Path) -> tuple[list, Path]:
    """images/*.tif + masks/*.tif of whole orthophotos and the chip lists (512 px chips), read at 1/8."""
    make_landcoverai(root, chip=512)
    return ["--data", root, "--scale", "0.125"], next((root / "images").glob("N-34*.tif"))


def _drone12(root: Path) -> tuple[list, Path]:
    """images/*.jpg + masks/*.png: palette PNGs whose indices are the class ids 0-11."""
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir(parents=True)
    for i in range(5):
        ids = class_map(64, 96, 12, seed=20 + i)
        Image.fromarray(paint(ids % 7, 20 + i).transpose(1, 2, 0)).save(root / "images" / f"frame{i}.jpg")
        mask = Image.fromarray(ids.astype(np.uint8), mode="P")
        mask.putpalette([v for k in range(256) for v in (k * 7 % 256, k * 13 % 256, k * 29 % 256)])
        mask.save(root / "masks" / f"frame{i}.png")
    return ["--images", root / "images", "--masks", root / "masks"], root / "images" / "frame0.jpg"


LAYOUTS = {"semantic-drone": _semantic_drone, "dubai": _dubai, "potsdam": _potsdam, "landcoverai": _landcoverai,
           "drone12": _drone12}


def test_every_recipe_is_tested():
    assert {p.stem for p in RECIPES.glob("*.toml")} == set(LAYOUTS)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_recipe_trains_exports_and_classifies(name, tmp_path):
    recipe = read_recipe(RECIPES / f"{name}.toml")  # also checks every key and value of the recipe
    data, image = LAYOUTS[name](tmp_path / "data")
    run, model, classes = tmp_path / "run", tmp_path / f"{name}.onnx", tmp_path / "classes.tif"
    trained = _cli("train", "--config", RECIPES / f"{name}.toml", "--out", run, *data, *SMALL)
    assert trained.returncode == 0, trained.stderr[-3000:]
    exported = _cli("export", run / "best.pt", model)
    assert exported.returncode == 0, exported.stderr[-3000:]
    card = read_card(model)
    assert card.architecture.startswith(f"{recipe['arch']} {recipe['encoder']} depth 3")
    classified = _cli("classify", image, classes, "--model", model, "--device", "cpu")
    assert classified.returncode == 0, classified.stderr[-3000:]
    with rasterio.open(classes) as src, rasterio.open(image) as img:
        assert (src.height, src.width) == (img.height, img.width)
        assert src.read(1).max() < len(card.classes)
        colormap = src.colormap(1)
    for c in card.classes:  # the class raster is styled with the card's (the data set's) colours
        assert colormap[c.id][:3] == c.rgb
    if name == "semantic-drone":
        assert [(c.name, c.color) for c in card.classes] == [
            ("unlabeled", "#000000"), ("paved-area", "#804080"), ("dirt", "#824C00"), ("grass", "#006600")]
