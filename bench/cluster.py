"""Scaling on Dask: one process vs 1 and 2 worker processes, and the scheduler's overhead per block.

Usage: .venv/bin/python bench/cluster.py [--size 10000] [--model NAME_OR_PATH] [--workdir DIR]

All runs classify the same input (a VRT mosaic of the real Dutch orthophoto at the model's ground
resolution) in this process, one after the other: in-process (`classify`), then on local clusters of
1 and 2 worker processes (`classify(..., client=...)`), each started beforehand so that cluster
start-up is not counted. ONNX Runtime threads: all cores in-process and for 1 worker, half each for 2.
The overhead per block is measured apart with a tiny ONNX model and small blocks, where the model
costs next to nothing: (cluster seconds - in-process seconds) / blocks.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
from make_big_raster import DEFAULT_SOURCE, mosaic_vrt  # noqa: E402


def timed(fn, *args, **kwargs) -> float:
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:12]


def scaling(vrt: Path, model: str | None, work: Path, block: int) -> None:
    from distributed import Client, LocalCluster

    import aerialseg
    from aerialseg.card import read_card
    from aerialseg.runtime import resolve_model
    from aerialseg.tiling import TileGrid

    path = str(resolve_model(model))
    card = read_card(Path(path))
    with aerialseg.raster.open_raster(vrt) as ds:
        mp = ds.width * ds.height / 1e6
        grid = TileGrid.create(ds.height, ds.width, card.tile_size, card.overlap, block)
    print(f"input {vrt.name}: {mp:.0f} MP, {grid.n_tiles} tiles, {grid.block_rows * grid.block_cols} blocks")
    rows = []
    seconds = timed(aerialseg.classify, vrt, work / "single.tif", path, overwrite=True, block_size=block)
    rows.append(("in-process", seconds, digest(work / "single.tif")))
    for n in (1, 2):
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
                Client(cluster) as client:
            out = work / f"cluster{n}.tif"
            seconds = timed(aerialseg.classify, vrt, out, path, client=client, overwrite=True, block_size=block)
            rows.append((f"{n} worker(s)", seconds, digest(out)))
    base = rows[0][1]
    print(f"{'run':>13} {'seconds':>8} {'MP/s':>6} {'vs in-process':>14} {'output sha256':>14}")
    for name, seconds, sha in rows:
        print(f"{name:>13} {seconds:>8.1f} {mp / seconds:>6.2f} {base / seconds:>14.2f} {sha:>14}")
    print(f"2 workers / 1 worker: {rows[1][1] / rows[2][1]:.2f}x")


def overhead(work: Path, size: int = 2048, block: int = 128) -> None:
    from distributed import Client, LocalCluster

    import aerialseg
    from tinymodels import write_colour_model

    model = write_colour_model(work / "tiny.onnx")
    vrt = work / "overhead.vrt"
    vrt.write_text(mosaic_vrt(DEFAULT_SOURCE, size, 2.0))
    opts = {"tile_size": 64, "overlap": 8, "block_size": block, "resample": False, "overwrite": True}
    single = timed(aerialseg.classify, vrt, work / "o_single.tif", model, **opts)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, \
            Client(cluster) as client:
        cluster_s = timed(aerialseg.classify, vrt, work / "o_cluster.tif", model, client=client, **opts)
    blocks = (-(-size // 112)) ** 2  # block_size 128 rounds to 2 strides of 56 px = 112 px
    print(f"overhead: {size}² px tiny model, {blocks} blocks: in-process {single:.1f} s, 1 worker {cluster_s:.1f} s "
          f"-> {1000 * (cluster_s - single) / blocks:.1f} ms per block")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=10000)
    p.add_argument("--model", default=None)
    p.add_argument("--block-size", type=int, default=2048)
    p.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "aerialseg-bench")
    p.add_argument("--skip-scaling", action="store_true")
    a = p.parse_args()
    a.workdir.mkdir(parents=True, exist_ok=True)
    print(f"{os.cpu_count()} cores")
    if not a.skip_scaling:
        vrt = a.workdir / f"mosaic_{a.size}.vrt"
        vrt.write_text(mosaic_vrt(DEFAULT_SOURCE, a.size, 2.0))
        scaling(vrt, a.model, a.workdir, a.block_size)
    overhead(a.workdir)


if __name__ == "__main__":
    main()
