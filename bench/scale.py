"""Time and peak memory of `aerialseg classify` and `vectorize` on large rasters, one process each.

Usage: .venv/bin/python bench/scale.py [--sizes 5000 20000 50000] [--model NAME_OR_PATH | --tiny-model]
                                       [--workdir DIR]

Each run is a separate `aerialseg` process, started by a small launcher so that its peak RSS (ru_maxrss)
is its own and not this script's. Inputs are VRT mosaics of the real Dutch orthophoto at the model's
ground resolution (so the figures are the pipeline's own, not resampling's). Each peak RSS is also given
as a ratio to the 5,000² run's (or the smallest size's), the goal being flat memory.

--tiny-model runs a tiny ONNX model (a 9 x 9 mean filter and a 1 x 1 convolution classifying by
brightness into patches) with the default model's card (tile, overlap, ground resolution, 5 classes), so
that the pipeline's own memory can be measured at 50,000² in reasonable time.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np

from _common import AERIALSEG, DEFAULT_WORKDIR, cached_mosaic, run
from aerialseg.runtime import load_model

TINY_THRESHOLDS = (-0.64, -0.42, -0.09, 0.47)  # brightness quintiles of the orthophoto, normalised


def write_tiny_model(path: Path, card) -> Path:
    """A tiny ONNX model (mean filter, 1 x 1 conv, softmax) with ``card``'s geometry and classes."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from aerialseg.card import write_card

    n_in, n_out, slope = len(card.bands), len(card.classes), 8.0
    # class k's logit is slope * k * brightness + bias_k: class k wins between thresholds k-1 and k
    edges = np.resize(np.asarray(TINY_THRESHOLDS), n_out - 1)
    bias = -slope * np.concatenate([[0.0], np.cumsum(edges)])
    w = np.repeat(slope * np.arange(n_out, dtype=np.float32)[:, None] / n_in, n_in, axis=1)[:, :, None, None]
    nodes = [
        helper.make_node("AveragePool", ["image"], ["mean"], kernel_shape=[9, 9], pads=[4] * 4, count_include_pad=0),
        helper.make_node("Conv", ["mean", "w", "b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", n_in, "h", "w"])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", n_out, "h", "w"])],
        [numpy_helper.from_array(w.astype(np.float32), "w"), numpy_helper.from_array(bias.astype(np.float32), "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    write_card(path, dataclasses.replace(card, name=f"tiny-{card.name}", output="probabilities", metrics={},
                                         architecture="9x9 mean filter + 1x1 conv (benchmark stand-in)"))
    return path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[5000, 20000])
    p.add_argument("--model", default=None)
    p.add_argument("--tiny-model", action="store_true", help="a tiny model with --model's card geometry")
    p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    p.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more classify options")
    a = p.parse_args()
    a.workdir.mkdir(parents=True, exist_ok=True)
    card = load_model(a.model, "cpu").card
    model = a.model
    if a.tiny_model:
        model = str(write_tiny_model(a.workdir / "tiny-model.onnx", card))
    model_args = ["--model", model] if model else []
    print(f"model {model or card.name}: gsd {card.gsd_m} m, tile {card.tile_size}, overlap {card.overlap}")
    print(f"{'size':>7} {'stage':>9} {'MP':>7} {'seconds':>8} {'MP/s':>6} {'peak MiB':>9} {'x ref':>6}")
    ref_size = 5000 if 5000 in a.sizes else min(a.sizes)
    ref: dict[str, float] = {}
    for size in sorted(a.sizes, key=lambda s: s != ref_size):  # the reference size first
        vrt = cached_mosaic(a.workdir, size, card.gsd_m)
        lc, gpkg = a.workdir / f"lc_{size}.tif", a.workdir / f"features_{size}.gpkg"
        mp = size * size / 1e6
        for stage, cmd in (
            ("classify", [AERIALSEG, "classify", vrt, lc, *model_args, "--overwrite", "--progress", "none", *a.extra]),
            ("vectorize", [AERIALSEG, "vectorize", lc, gpkg, "--overwrite", "--progress", "none"]),
        ):
            t, rss = run(cmd)
            ref.setdefault(stage, rss)
            print(f"{size:>7} {stage:>9} {mp:>7.1f} {t:>8.1f} {mp / t:>6.2f} {rss:>9.0f} {rss / ref[stage]:>6.2f}",
                  flush=True)
    print(f"x ref: peak RSS / the {ref_size}² run's (goal: the 50,000² classify within 1.5 GB and 1.10x)")


if __name__ == "__main__":
    main()
