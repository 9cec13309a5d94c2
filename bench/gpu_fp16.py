"""float16 against float32 on a CUDA GPU, side by side: tiles/s of each bundled model (batch 8, 512 px) and
how many pixels get the same class. Needs onnxruntime-gpu and onnxconverter-common (the [gpu] extra).

    python bench/gpu_fp16.py
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path

import numpy as np

MODELS = Path(__file__).resolve().parents[1] / "core" / "aerialseg" / "models"


def main() -> int:
    import onnx
    import onnxruntime as ort

    print(ort.__version__, ort.get_available_providers(), flush=True)
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        print("no CUDA provider in this onnxruntime: install onnxruntime-gpu (the [gpu] extra)")
        return 1
    from onnxconverter_common import float16

    warnings.simplefilter("ignore")
    x = np.random.default_rng(0).normal(size=(8, 3, 512, 512)).astype(np.float32)
    for name in ("aerial-buildings-unet-r18", "dubai-landcover-unet-r18"):
        model = onnx.load(str(MODELS / f"{name}.onnx"))
        graphs = {"fp32": model, "fp16": float16.convert_float_to_float16(model, keep_io_types=True)}
        speed, outs = {}, {}
        for tag, graph in graphs.items():
            session = ort.InferenceSession(graph.SerializeToString(), providers=["CUDAExecutionProvider"])
            for _ in range(3):
                session.run(None, {"image": x})
            t = time.perf_counter()
            for _ in range(20):
                outs[tag] = session.run(None, {"image": x})[0]
            speed[tag] = 20 * len(x) / (time.perf_counter() - t)
        agree = float((outs["fp32"].argmax(1) == outs["fp16"].argmax(1)).mean())
        print(f"{name}: fp32 {speed['fp32']:.1f} tiles/s, fp16 {speed['fp16']:.1f} tiles/s "
              f"({speed['fp16'] / speed['fp32']:.2f}x), same class {agree:.5f}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
