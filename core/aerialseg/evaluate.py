"""Accuracy of a classified raster against a reference raster, streamed block by block.

The reference holds class ids, or colours (an RGB or palette raster) looked up in a class table.
Prediction pixels equal to the nodata class (255) and reference pixels outside the classes (or equal
to 255) are ignored. Only one block of each raster is in memory at a time.

Command line (:mod:`aerialseg.cli.evaluate`): ``aerialseg evaluate PREDICTION REFERENCE --classes dubai --json
out.json``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.errors import RasterioIOError
from rasterio.windows import Window

from aerialseg import presets
from aerialseg.card import NODATA_CLASS
from aerialseg.errors import InputError, OutputError, RasterError
from aerialseg.metrics import confusion_matrix, scores
from aerialseg.presets import RGB

PRESETS = {
    "dubai": presets.DUBAI_CLASSES, "landcoverai": presets.LANDCOVERAI_CLASSES, "potsdam": presets.POTSDAM_CLASSES,
}


def _open(path: str | Path) -> rasterio.io.DatasetReader:
    try:
        return rasterio.open(path)
    except RasterioIOError as e:
        raise RasterError(f"cannot open {path}: {e}") from None


def _check_grids(pred: rasterio.io.DatasetReader, ref: rasterio.io.DatasetReader) -> None:
    """Raise InputError unless both rasters cover the same pixels."""
    if (pred.height, pred.width) != (ref.height, ref.width):
        raise InputError(
            f"prediction is {pred.width}x{pred.height} px but the reference is {ref.width}x{ref.height}; "
            "evaluate on the same grid (classify the reference's image, or resample one onto the other)"
        )
    if pred.crs and ref.crs and pred.crs != ref.crs:
        raise InputError(f"prediction CRS {pred.crs} differs from the reference CRS {ref.crs}; reproject one first")
    if pred.crs and ref.crs and not pred.transform.almost_equals(ref.transform):
        raise InputError(
            "prediction and reference have the same size but different geotransforms (they do not "
            "overlap pixel for pixel); resample one onto the other's grid"
        )


def _check_reference_bands(ref: rasterio.io.DatasetReader, colours: Sequence[presets.RGB] | None) -> None:
    """A reference of class ids has one band; several bands is a photo or colours (--colour-reference)."""
    if colours is None and ref.count > 1:
        raise InputError(f"reference {ref.name} has {ref.count} bands (a photo, or colours?); give a one-band "
                         "raster of class ids, or pass --colour-reference for a colour-coded reference")


def _windows(height: int, width: int, block: int) -> Iterator[Window]:
    for row in range(0, height, block):
        for col in range(0, width, block):
            yield Window(col, row, min(block, width - col), min(block, height - row))


def _reference_ids(
    ref: rasterio.io.DatasetReader, window: Window, colours: Sequence[RGB] | None, palette: np.ndarray | None, k: int
) -> np.ndarray:
    if colours is None:
        ids = ref.read(1, window=window).astype(np.int64)
        return np.where((ids >= 0) & (ids < k), ids, NODATA_CLASS)
    data = ref.read(window=window)
    if palette is not None:
        data = palette[data[0]].transpose(2, 0, 1)
    if data.shape[0] < 3:
        raise InputError(f"{ref.name} has one band and no colour table; use class ids, not --reference-colours")
    return presets.colours_to_ids(data[:3], colours).astype(np.int64)


def evaluate(
    prediction: str | Path,
    reference: str | Path,
    class_names: Sequence[str],
    reference_colours: Sequence[RGB] | None = None,
    block: int = 1024,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Per-class IoU/F1, mIoU, pixel accuracy and confusion matrix of ``prediction`` vs ``reference``.

    Args:
        prediction: Single-band raster of class ids (255 = no data, ignored).
        reference: Raster of class ids, or of colours if ``reference_colours`` is given.
        class_names: Names of classes 0..K-1.
        reference_colours: RGB colour of each class in a colour-coded reference.
        block: Side of the square blocks read at a time.
        on_progress: Called with (blocks done, blocks in total).

    Raises:
        InputError: the rasters are not on the same grid, or the class table does not fit.
        RasterError: a raster cannot be read.
    """
    k = len(class_names)
    if block < 1:
        raise InputError(f"--block must be a positive number of pixels, got {block}")
    if reference_colours is not None and len(reference_colours) != k:
        raise InputError(f"{len(reference_colours)} reference colours for {k} classes; give one colour per class")
    cm = np.zeros((k, k), np.int64)
    with _open(prediction) as pred, _open(reference) as ref:
        _check_grids(pred, ref)
        _check_reference_bands(ref, reference_colours)
        palette = presets.palette_table(ref) if reference_colours is not None and ref.count == 1 else None
        windows = list(_windows(pred.height, pred.width, block))
        for i, window in enumerate(windows):
            try:
                p = pred.read(1, window=window).astype(np.int64)
                r = _reference_ids(ref, window, reference_colours, palette, k)
            except RasterioIOError as e:
                raise RasterError(f"cannot read block {window} of the inputs: {e}") from None
            cm += confusion_matrix(r, np.where(p == NODATA_CLASS, -1, p), k)
            if on_progress is not None:
                on_progress(i + 1, len(windows))
    if cm.sum() == 0:
        raise InputError(f"no pixel to score: {reference} holds no class id 0..{k - 1} where {prediction} has a "
                         "class; give a reference of class ids (or --colour-reference for colours) and the "
                         "classes of the model (--classes)")
    result = scores(cm, class_names)
    result.update(prediction=str(prediction), reference=str(reference))
    return result


def plot_confusion(result: dict[str, Any], path: str | Path) -> None:
    """A PNG of the row-normalised confusion matrix (reference rows, predicted columns) with counts."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cm = np.asarray(result["confusion_matrix"], np.float64)
    names = list(result["per_class"])
    norm = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(1.2 * len(names) + 2, 1.2 * len(names) + 1.5))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(
                j,
                i,
                f"{norm[i, j]:.2f}\n{int(cm[i, j])}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if norm[i, j] > 0.5 else "black",
            )
    ax.set_xticks(range(len(names)), names, rotation=45, ha="right")
    ax.set_yticks(range(len(names)), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("reference")
    ax.set_title(f"accuracy {result['pixel_accuracy'] or 0:.3f}  mIoU {result['miou'] or 0:.3f}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def class_table(
    classes: str, colour_reference: bool = False, reference_colours: str = ""
) -> tuple[list[str], list[RGB] | None]:
    """Class names and (for colour-coded references) colours.

    Args:
        classes: A preset (dubai, landcoverai, potsdam), a model ``.onnx`` or comma-separated names.
        colour_reference: The reference holds the preset's or model's class colours.
        reference_colours: ``#RRGGBB,...``, one per class, for a reference of other colours.
    """
    if classes in PRESETS:
        table = PRESETS[classes]
    elif classes and Path(classes).suffix == ".onnx":
        from aerialseg.card import read_card

        table = read_card(classes).classes
    elif classes:
        names = [n.strip() for n in classes.split(",") if n.strip()]
        return names, _parse_colours(reference_colours, len(names))
    else:
        raise InputError("give --classes: dubai, landcoverai, potsdam, a model .onnx or comma-separated names")
    colours = [c.rgb for c in table] if colour_reference else _parse_colours(reference_colours, len(table))
    return [c.name for c in table], colours


def _parse_colours(text: str, k: int) -> list[RGB] | None:
    if not text:
        return None
    try:
        hexes = [c.strip().lstrip("#") for c in text.split(",")]
        return [(int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)) for h in hexes]
    except ValueError:
        raise InputError(f"cannot read colours {text!r}; expected #RRGGBB,#RRGGBB,... ({k} of them)") from None


def write_report(result: dict[str, Any], json_path: str | Path = "", png_path: str | Path = "") -> None:
    """Write the scores of :func:`evaluate` as JSON and/or the confusion-matrix picture (PNG) where a path is given."""
    try:
        if json_path:
            Path(json_path).write_text(json.dumps(result, indent=1))
        if png_path:
            plot_confusion(result, png_path)
    except OSError as e:
        raise OutputError(f"cannot write the evaluation report: {e}") from None
