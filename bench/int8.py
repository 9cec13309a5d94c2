"""int8 against float32, side by side in one run: model-only speed on the CPU and accuracy end to end.

For each bundled model with an ``.int8.onnx`` variant: tiles/s of both sessions on the same random tiles
(interleaved, so machine noise hits both alike), then the held-out accuracy of each through classify +
evaluate (bench/buildings_accuracy.py, bench/landcover_accuracy.py). ``--write-cards`` stores the figures
in the int8 variant's card, where ``--precision auto`` reads them.

    python bench/int8.py [--rounds 8] [--models NAME,...] [--write-cards]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import _common  # noqa: F401 - puts core/ on the path
from aerialseg.card import read_card, write_card
from aerialseg.runtime import INT8_SUFFIX, bundled_models

HERE = Path(__file__).resolve().parent
ACCURACY = {"background,building": "buildings_accuracy.py",
            "building,land,road,vegetation,water": "landcover_accuracy.py"}


def tiles_per_second(paths: list[Path], side: int, rounds: int) -> list[float]:
    import onnxruntime as ort

    sessions = [ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]) for p in paths]
    x = np.random.default_rng(0).normal(size=(1, 3, side, side)).astype(np.float32)
    spent = [0.0] * len(sessions)
    for s in sessions:
        s.run(None, {"image": x})
    for _ in range(rounds):
        for i, s in enumerate(sessions):
            t = time.perf_counter()
            s.run(None, {"image": x})
            spent[i] += time.perf_counter() - t
    return [rounds / t for t in spent]


def accuracy(model: Path, classes: str) -> tuple[float, float]:
    """Held-out mIoU through classify + evaluate, and the seconds that took."""
    t = time.perf_counter()
    out = subprocess.run([sys.executable, str(HERE / ACCURACY[classes]), "--model", str(model)],
                         capture_output=True, text=True, check=True).stdout
    return float(json.loads(out.strip().splitlines()[-1])["miou"]), time.perf_counter() - t


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--models", help="comma-separated bundled model names (default: all with an int8 variant)")
    p.add_argument("--write-cards", action="store_true")
    a = p.parse_args()
    for m in bundled_models():
        if a.models and m.name not in a.models.split(","):
            continue
        variant = m.path.with_name(f"{m.path.stem}{INT8_SUFFIX}.onnx")
        if not variant.is_file():
            continue
        fp32, int8 = tiles_per_second([m.path, variant], m.card.tile_size, a.rounds)
        classes = ",".join(m.card.class_names)
        (miou32, t32), (miou8, t8) = accuracy(m.path, classes), accuracy(variant, classes)
        figures = {"speedup_cpu": round(int8 / fp32, 2), "miou": round(miou8, 4), "miou_fp32": round(miou32, 4),
                   "end_to_end_speedup": round(t32 / t8, 2),
                   "tiles_per_s_fp32": round(fp32, 2), "tiles_per_s_int8": round(int8, 2),
                   "measured": f"bench/int8.py, {m.card.tile_size}px tiles, one CPU session each"}
        print(json.dumps({"model": m.name, **figures}))
        if a.write_cards:
            card = read_card(variant)
            write_card(variant, card.__class__.from_dict(
                {**card.to_dict(), "metrics": {**dict(card.metrics), "int8": figures}}, str(variant)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
