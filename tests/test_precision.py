"""``--precision``: a model's int8 variant (a real static QDQ quantisation), chosen by its card's figures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

from aerialseg.card import read_card, write_card
from aerialseg.errors import ModelError
from aerialseg.runtime import bundled_models, gpu_present, load_model
from tinymodels import write_colour_model


class _Random(CalibrationDataReader):
    def __init__(self) -> None:
        rng = np.random.default_rng(0)
        self.it = iter([{"image": rng.random((1, 3, 32, 32), dtype=np.float32)} for _ in range(4)])

    def get_next(self):
        return next(self.it, None)


def _model_with_variant(folder: Path, figures: dict | None) -> Path:
    model = write_colour_model(folder / "colour.onnx")
    variant = folder / "colour.int8.onnx"
    quantize_static(str(model), str(variant), _Random(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
    card = read_card(model)
    metrics = {"int8": figures} if figures else {}
    write_card(variant, card.__class__.from_dict({**card.to_dict(), "metrics": metrics}, str(variant)))
    return model


@pytest.mark.parametrize(("figures", "chosen"), [
    ({"speedup_cpu": 1.7, "miou": 0.80, "miou_fp32": 0.805}, "colour.int8.onnx"),
    ({"speedup_cpu": 1.2, "miou": 0.80, "miou_fp32": 0.80}, "colour.onnx"),  # not fast enough
    ({"speedup_cpu": 2.0, "miou": 0.70, "miou_fp32": 0.80}, "colour.onnx"),  # not accurate enough
    (None, "colour.onnx"),  # no figures: never chosen automatically
])
def test_auto_precision_follows_the_card(tmp_path, figures, chosen):
    model = _model_with_variant(tmp_path, figures)
    assert load_model(model, "cpu", 1, "auto").path.name == chosen
    assert load_model(model, "cpu", 1, "fp32").path.name == "colour.onnx"
    assert load_model(model, "cpu", 1, "int8").path.name == "colour.int8.onnx"


def test_int8_runs_and_agrees_with_float32(tmp_path):
    model = _model_with_variant(tmp_path, None)
    x = np.random.default_rng(1).random((2, 3, 40, 48), dtype=np.float32)
    p32 = load_model(model, "cpu", 1, "fp32").predict(x)
    p8 = load_model(model, "cpu", 1, "int8").predict(x)
    assert p8.shape == p32.shape and np.isfinite(p8).all()
    assert (p8.argmax(1) == p32.argmax(1)).mean() > 0.95


def test_int8_without_a_variant_is_one_clear_error(tmp_path, colour_model):
    with pytest.raises(ModelError, match="no int8 variant"):
        load_model(colour_model, "cpu", 1, "int8")
    assert load_model(colour_model, "cpu", 1, "auto").path == colour_model


def test_variants_are_not_listed_as_models():
    names = [m.name for m in bundled_models()]
    assert names and not any(n.endswith(".int8") for n in names)


def test_fp16_converts_the_graph_and_agrees_with_float32(colour_model, conv_model):
    """--precision fp16: float16 weights and arithmetic, float32 in and out (run here on the CPU)."""
    x = np.random.default_rng(2).random((2, 3, 48, 40), dtype=np.float32)
    for model in (colour_model, conv_model):
        fp16 = load_model(model, "cpu", 1, "fp16")
        assert fp16.precision == "fp16"
        p16, p32 = fp16.predict(x), load_model(model, "cpu", 1, "fp32").predict(x)
        assert p16.dtype == np.float32 and np.abs(p16 - p32).max() < 5e-3
        assert (p16.argmax(1) == p32.argmax(1)).mean() > 0.99
    assert load_model(colour_model, "cpu", 1, "auto").precision == "fp32"  # the CPU never gets fp16 by itself


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_present(), reason="needs an NVIDIA GPU (none on this machine)")
def test_auto_precision_on_a_gpu_is_fp16(conv_model, rgb_tif, tmp_path):
    from aerialseg.predict import classify

    net = load_model(conv_model, "cuda", None, "auto")
    assert net.device == "cuda" and net.precision == "fp16"
    a = classify(rgb_tif, tmp_path / "gpu.tif", net)
    b = classify(rgb_tif, tmp_path / "cpu.tif", conv_model, device="cpu", precision="fp32")
    import rasterio

    with rasterio.open(a) as ga, rasterio.open(b) as gb:
        assert (ga.read(1) == gb.read(1)).mean() > 0.999
