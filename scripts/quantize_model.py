"""A static int8 (QDQ) variant of an ONNX model, calibrated on training images (issue 14).

    python scripts/quantize_model.py MODEL_FP32.onnx OUT_INT8.onnx IMAGE [IMAGE ...] [--scale 1.0] [--tiles 48]
        [--card SHIPPED.onnx]

Calibration: ``--tiles`` random tiles of the card's tile size from the images (read at ``--scale``, i.e.
at the model's ground resolution), normalised with the card. Settings follow ONNX Runtime's advice for
x86 CPUs without VNNI: uint8 activations, int8 per-channel weights with reduced range. The card is copied.
The input must hold float32 initializers (export without --fp16-weights).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import rasterio
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quant_pre_process,
    quantize_static,
)

from aerialseg.card import read_card, write_card


class Tiles(CalibrationDataReader):
    """Random normalised tiles from the calibration images."""

    def __init__(self, images: list[str], card, scale: float, count: int, seed: int = 0) -> None:
        rng, side = np.random.default_rng(seed), card.tile_size
        mean = np.asarray(card.mean, np.float32)[:, None, None]
        std = np.asarray(card.std, np.float32)[:, None, None]
        self.batches = []
        arrays = []
        for path in images:
            with rasterio.open(path) as ds:
                h, w = max(side, round(ds.height * scale)), max(side, round(ds.width * scale))
                arrays.append(ds.read(list(card.bands), out_shape=(len(card.bands), h, w)).astype(np.float32))
        for i in range(count):
            a = arrays[i % len(arrays)]
            y, x = rng.integers(0, a.shape[1] - side + 1), rng.integers(0, a.shape[2] - side + 1)
            tile = (a[:, y : y + side, x : x + side] / card.scale - mean) / std
            self.batches.append({"image": tile[None].astype(np.float32)})
        self.it = iter(self.batches)

    def get_next(self):
        return next(self.it, None)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("model")
    p.add_argument("output")
    p.add_argument("images", nargs="+")
    p.add_argument("--scale", type=float, default=1.0, help="read the images at this scale (model resolution)")
    p.add_argument("--tiles", type=int, default=48)
    p.add_argument("--card", help="copy the card of this model (default: the input's)")
    a = p.parse_args()
    card = read_card(a.card or a.model)
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(a.model, str(pre), skip_symbolic_shape=True)
        quantize_static(str(pre), a.output, Tiles(a.images, card, a.scale, a.tiles), quant_format=QuantFormat.QDQ,
                        per_channel=True, reduce_range=True, activation_type=QuantType.QUInt8,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax)
    write_card(a.output, card)  # the same model in another precision: the same name
    print(f"wrote {a.output} ({Path(a.output).stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
