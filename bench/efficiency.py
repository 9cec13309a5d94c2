"""Pipeline efficiency: end-to-end classify megapixels/s over the model-only forward megapixels/s, side by side.

Usage: .venv/bin/python bench/efficiency.py [--size 5000] [--model M] [--device auto|cpu|cuda]
                                            [--batch-size N] [--repeat 1] [--workdir DIR]

Both run in this one process on one ONNX Runtime session, made by aerialseg.runtime.OnnxModel (so
exactly as classify makes it; process start-up and model loading are counted in neither):
  model-only  the same batches the pipeline runs (its batch size, split per block like the pipeline; as
              many tiles as the TileGrid of the working grid has, overlap included) of random float32
              tiles, straight into session.run: no reading, resampling, blending or writing;
  classify    aerialseg.classify on the same raster with the loaded model (reading in its background
              thread, blending, arg-max, writing the COG).
Both MP/s divide the raster's megapixels by the seconds, so efficiency = model-only s / classify s.
The overlap's own cost: classify again with --overlap 0 (tile count ratio and time ratio).
The input is a VRT mosaic of the real orthophoto at the model's ground resolution, made once in --workdir.
The best (shortest) of --repeat runs counts; the session is warmed up with one batch first.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from _common import DEFAULT_WORKDIR, cached_mosaic
from aerialseg.inference import tile_geometry
from aerialseg.options import ClassifyOptions
from aerialseg.predict import classify
from aerialseg.raster import open_raster, working_grid
from aerialseg.runtime import OnnxModel, resolve_model
from aerialseg.tiling import TileGrid


def batch_sizes(tiles: TileGrid, batch: int) -> list[int]:
    """The model calls the pipeline makes: full batches within each block, then the block's remainder."""
    sizes: list[int] = []
    for block in tiles.blocks():
        n = len(tiles.owned_tiles(block))
        sizes += [batch] * (n // batch) + ([n % batch] if n % batch else [])
    return sizes


def forward_seconds(net: OnnxModel, sizes: list[int], tile: int) -> float:
    """Seconds of session.run over batches of random tiles of the given sizes (no I/O)."""
    rng = np.random.default_rng(0)
    channels = len(net.card.bands)
    pool = {b: rng.standard_normal((b, channels, tile, tile), dtype=np.float32) for b in set(sizes)}
    net.session.run(None, {net.input_name: pool[sizes[0]]})  # warm-up
    start = time.perf_counter()
    for b in sizes:
        net.session.run(None, {net.input_name: pool[b]})
    return time.perf_counter() - start


def classify_seconds(raster: Path, out: Path, net: OnnxModel, batch: int, overlap: int | None) -> float:
    start = time.perf_counter()
    classify(raster, out, net, batch_size=batch, overlap=overlap, overwrite=True)
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=5000, help="mosaic width and height in px (default 5000)")
    p.add_argument("--model", default=None, help="bundled name or .onnx path (default: the default model)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--batch-size", type=int, help="default: classify's (1 on the CPU, 8 on a GPU)")
    p.add_argument("--repeat", type=int, default=1, help="runs of each; the best counts")
    p.add_argument("--no-overlap-run", action="store_true", help="skip the --overlap 0 classify run")
    p.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    a = p.parse_args()

    import onnxruntime as ort

    net = OnnxModel(resolve_model(a.model), a.device)
    card = net.card
    batch = ClassifyOptions(batch_size=a.batch_size).batch_for(net.device)
    raster = cached_mosaic(a.workdir, a.size, card.gsd_m)
    out = a.workdir / f"efficiency_{a.size}.tif"
    tile, ov = tile_geometry(card.tile_size, card.overlap, None, None)
    with open_raster(raster) as ds:
        grid, mp = working_grid(ds, card), ds.width * ds.height / 1e6
    tiles = TileGrid.create(grid.height, grid.width, tile, ov)
    tiles0 = TileGrid.create(grid.height, grid.width, tile, 0)
    sizes = batch_sizes(tiles, batch)
    threads = net.session.get_session_options().intra_op_num_threads
    print(f"model {card.name} on {net.device.upper()} (ONNX Runtime {ort.__version__}, {threads} threads), "
          f"batch {batch}, tile {tile}, overlap {ov}")
    print(f"input {raster}: {a.size} x {a.size} px ({mp:.1f} MP), working grid {grid.width} x {grid.height}, "
          f"{tiles.n_tiles} tiles in {len(sizes)} model calls ({tiles0.n_tiles} tiles at overlap 0)")
    print(f"{'run':>3} {'model-only s':>12} {'classify s':>10} {'overlap-0 s':>11}", flush=True)
    fwd, pipe, pipe0 = [], [], []
    for i in range(a.repeat):
        fwd.append(forward_seconds(net, sizes, tile))
        pipe.append(classify_seconds(raster, out, net, batch, None))
        if not a.no_overlap_run:
            pipe0.append(classify_seconds(raster, out, net, batch, 0))
        last0 = f"{pipe0[-1]:>11.1f}" if pipe0 else f"{'-':>11}"
        print(f"{i + 1:>3} {fwd[-1]:>12.1f} {pipe[-1]:>10.1f} {last0}", flush=True)
    f, c = min(fwd), min(pipe)
    tile_mp = tiles.n_tiles * tile * tile / 1e6
    print(f"model-only: {f:.1f} s, {mp / f:.2f} MP/s of raster ({tile_mp / f:.2f} MP/s of tile pixels)")
    print(f"classify:   {c:.1f} s, {mp / c:.2f} MP/s of raster")
    print(f"efficiency (classify MP/s / model-only MP/s): {f / c:.3f}  (goal >= 0.9)")
    if pipe0:
        c0 = min(pipe0)
        print(f"overlap cost ({ov} px vs 0): tiles {tiles.n_tiles}/{tiles0.n_tiles} = "
              f"{tiles.n_tiles / tiles0.n_tiles:.3f}x, classify time {c:.1f}/{c0:.1f} s = {c / c0:.3f}x")


if __name__ == "__main__":
    main()
