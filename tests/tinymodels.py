"""Tiny real ONNX models built with onnx.helper, for tests (no training, no torch needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from aerialseg.card import ClassInfo, ModelCard, write_card

COLOUR_CLASSES = (
    ClassInfo(0, "building", "#3C1098"),
    ClassInfo(1, "water", "#E2A929"),
    ClassInfo(2, "land", "#8429F6"),
)


def colour_card(**overrides) -> ModelCard:
    """Card of the colour model: red -> building, blue -> water, else land; inputs scaled to 0..1."""
    fields = dict(name="colour", classes=COLOUR_CLASSES, bands=(1, 2, 3), scale=255.0, mean=(0.0, 0.0, 0.0),
                  std=(1.0, 1.0, 1.0), gsd_m=None, tile_size=64, overlap=16, licence="CC0-1.0")
    fields.update(overrides)
    return ModelCard(**fields)


def write_colour_model(path: Path, card: ModelCard | None = None, kernel: int = 1) -> Path:
    """A pointwise (kernel 1) or 3x3 conv + softmax model classifying pixels by colour.

    With kernel 1 the model is exactly translation-equivariant: its class raster cannot depend on
    the tiling. With kernel 3 it sees neighbours (zero padding at tile edges), like a real CNN.
    """
    card = card or colour_card()
    n_in, n_out = len(card.bands), len(card.classes)
    w = np.zeros((n_out, n_in, kernel, kernel), np.float32)
    c = kernel // 2
    w[0, 0, c, c], w[1, min(2, n_in - 1), c, c] = 20.0, 20.0
    if kernel > 1:  # a little neighbourhood smoothing
        w[:2, :, :, :] += 0.5 * w[:2, :, c : c + 1, c : c + 1] / (kernel * kernel)
    b = np.array([-10.0, -10.0] + [0.0] * (n_out - 2), np.float32)
    nodes = [
        helper.make_node("Conv", ["image", "w", "b"], ["logits"], pads=[c] * 4),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "colour",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", n_in, "h", "w"])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", n_out, "h", "w"])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    write_card(path, card)
    return path
