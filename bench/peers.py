"""AerialSeg against the alternatives on the same raster and model architecture: speed and peak memory.

Usage: .venv/bin/python bench/peers.py [--size 5000 | --raster IN.tif] [--device cpu|cuda] [--batch-size N]
                                       [--notebook-overlap PX] [--geoai-python PATH] [--workdir DIR]

Peers, each a separate process (wall s and peak RSS, ru_maxrss, measured from outside; "core s" is the
time the process itself took from a loaded model to a written class raster, imports and model loading
left out):
  aerialseg       aerialseg.classify with the bundled ONNX model (ONNX Runtime, blended overlap 64)
  aerialseg-torch aerialseg.classify with a PyTorch checkpoint of the same architecture (random weights)
  notebook        the usual notebook loop: the whole raster read into memory with rasterio, 512 px tiles
                  at the same stride as aerialseg (--notebook-overlap, default the card's 64 px; 0 for
                  plain non-overlapping tiles), torch.no_grad forward of the same random-weight network,
                  softmax summed into a full-size float32 array, argmax, one GeoTIFF write
  geoai           geoai-py's sliding-window inference (geoai.train.semantic_inference_on_geotiff, what
                  geoai.semantic_segmentation runs; called directly because semantic_segmentation builds
                  its UNet with smp defaults and cannot take encoder depth 4 / decoder 128,64,16,8), same
                  network and weights, window 512, same overlap; run with --geoai-python if it imports
The input is a tiled GeoTIFF (geoai writes with its input's driver, so not a VRT), made once in --workdir
from a VRT mosaic of the real orthophoto at the model's ground resolution (no peer resamples).

geoai-py needs its own venv (its dependencies clash with AerialSeg's), e.g.:
  /root/.pyenv/versions/3.11.7/bin/python -m venv /work/bench-venvs/geoai
  /work/bench-venvs/geoai/bin/pip install torch==2.14.1 torchvision==0.29.1 geoai-py
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve()
ARCH = {"name": "unet", "encoder": "resnet18", "encoder_depth": 4, "in_channels": 3, "classes": 5,
        "decoder_channels": [128, 64, 16, 8]}  # the default model's architecture
PEERS = ("aerialseg", "aerialseg-torch", "notebook", "geoai")


# ---- runners: executed in the child process (only the standard library imported at module level) ----


def run_aerialseg(a: argparse.Namespace) -> dict:
    from aerialseg.predict import classify
    from aerialseg.runtime import load_model

    net = load_model(a.model, a.device)
    tiles = [0]
    start = time.perf_counter()
    classify(a.raster, a.out, net, batch_size=a.batch_size, overwrite=True,
             on_progress=lambda done, total: tiles.__setitem__(0, done))
    return {"seconds": time.perf_counter() - start, "tiles": tiles[0]}


def run_notebook(a: argparse.Namespace) -> dict:
    import numpy as np
    import rasterio
    import torch

    from aerialseg.nets import build_model

    ckpt = torch.load(a.model, map_location="cpu", weights_only=True)
    net = build_model(ckpt["arch"])
    net.load_state_dict(ckpt["state_dict"])
    net.to(a.device).eval()
    card, ov = ckpt["card"], a.overlap
    t, stride = card["tile_size"], card["tile_size"] - ov
    mean = np.array(card["mean"], np.float32)[:, None, None]
    std = np.array(card["std"], np.float32)[:, None, None]
    start = time.perf_counter()
    with rasterio.open(a.raster) as src:
        image = src.read([1, 2, 3])  # the whole raster in memory
        profile = {"driver": "GTiff", "width": src.width, "height": src.height, "count": 1, "dtype": "uint8",
                   "crs": src.crs, "transform": src.transform, "tiled": True, "compress": "deflate"}
    h, w = image.shape[1:]
    origins = [(y, x) for y in range(0, max(h - ov, 1), stride) for x in range(0, max(w - ov, 1), stride)]
    probs = np.zeros((len(card["classes"]), h, w), np.float32) if ov else None
    classes = np.zeros((h, w), np.uint8)
    with torch.no_grad():
        for i in range(0, len(origins), a.batch_size):
            chunk = origins[i : i + a.batch_size]
            batch = np.zeros((len(chunk), 3, t, t), np.float32)
            for n, (y, x) in enumerate(chunk):
                part = image[:, y : y + t, x : x + t]
                batch[n, :, : part.shape[1], : part.shape[2]] = (part / 255.0 - mean) / std
            p = torch.softmax(net(torch.from_numpy(batch).to(a.device)), dim=1).cpu().numpy()
            for n, (y, x) in enumerate(chunk):
                ph, pw = min(t, h - y), min(t, w - x)
                if probs is not None:
                    probs[:, y : y + ph, x : x + pw] += p[n, :, :ph, :pw]
                else:
                    classes[y : y + ph, x : x + pw] = p[n, :, :ph, :pw].argmax(0)
    if probs is not None:
        classes = probs.argmax(0).astype(np.uint8)
    with rasterio.open(a.out, "w", **profile) as dst:
        dst.write(classes, 1)
    return {"seconds": time.perf_counter() - start, "tiles": len(origins)}


def run_geoai(a: argparse.Namespace) -> dict:
    import segmentation_models_pytorch as smp
    import torch
    from geoai.train import semantic_inference_on_geotiff

    ckpt = torch.load(a.model, map_location="cpu", weights_only=True)
    arch = ckpt["arch"]
    net = smp.Unet(encoder_name=arch["encoder"], encoder_weights=None, encoder_depth=arch["encoder_depth"],
                   decoder_channels=arch["decoder_channels"], in_channels=arch["in_channels"], classes=arch["classes"])
    for i in range(arch["encoder_depth"], 5):  # as aerialseg.train.build_model: drop the unused stages
        if hasattr(net.encoder, f"layer{i}"):
            delattr(net.encoder, f"layer{i}")
    net.load_state_dict(ckpt["state_dict"])
    tiles = [0]
    real_model = net.forward
    net.forward = lambda x: (tiles.__setitem__(0, tiles[0] + len(x)), real_model(x))[1]
    start = time.perf_counter()
    semantic_inference_on_geotiff(net, str(a.raster), str(a.out), window_size=ckpt["card"]["tile_size"],
                                  overlap=a.overlap, batch_size=a.batch_size, num_channels=arch["in_channels"],
                                  num_classes=arch["classes"], device=torch.device(a.device), quiet=True)
    return {"seconds": time.perf_counter() - start, "tiles": tiles[0]}


def child(argv: list[str]) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("peer", choices=PEERS)
    for name in ("raster", "out", "result"):
        p.add_argument(name, type=Path)
    p.add_argument("--model")
    p.add_argument("--device", default="cpu")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--overlap", type=int, default=64)
    a = p.parse_args(argv)
    runner = {"aerialseg-torch": run_aerialseg}.get(a.peer) or globals()[f"run_{a.peer}"]
    a.result.write_text(json.dumps(runner(a)))


# ---- the benchmark: prepares the inputs, runs each peer in its own process, prints the table ----


def prepare(a: argparse.Namespace) -> tuple[Path, Path, object]:
    """The input GeoTIFF and a random-weight checkpoint of the default architecture, made once."""
    import rasterio.shutil
    import torch

    from _common import cached_mosaic
    from aerialseg.nets import build_model
    from aerialseg.runtime import load_model

    card = load_model(a.model, "cpu").card
    raster = a.raster
    if raster is None:
        raster = a.workdir / f"mosaic_{a.size}_{card.gsd_m}m.tif"
        if not raster.exists():
            rasterio.shutil.copy(cached_mosaic(a.workdir, a.size, card.gsd_m), raster, driver="GTiff", TILED="YES",
                                 BLOCKXSIZE=512, BLOCKYSIZE=512, COMPRESS="DEFLATE", NUM_THREADS="ALL_CPUS")
    ckpt = a.workdir / "unet-r18-random.pt"
    if not ckpt.exists():
        torch.manual_seed(0)
        torch.save({"arch": ARCH, "card": card.to_dict(), "state_dict": build_model(ARCH).state_dict()}, ckpt)
    return raster, ckpt, card


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=5000, help="mosaic width and height in px (default 5000)")
    p.add_argument("--raster", type=Path, help="an existing GeoTIFF at the model's ground resolution instead")
    p.add_argument("--model", default=None, help="aerialseg's ONNX model (default: the default model)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--batch-size", type=int, help="for every peer (default: 1 on the CPU, 8 on a GPU)")
    p.add_argument("--notebook-overlap", type=int, help="the notebook's and geoai's overlap (default: the card's)")
    p.add_argument("--geoai-python", type=Path, default=Path("/work/bench-venvs/geoai/bin/python"))
    p.add_argument("--peers", nargs="+", choices=PEERS, default=list(PEERS))
    p.add_argument("--workdir", type=Path, default=Path("/tmp/aerialseg-bench"))
    a = p.parse_args()
    a.workdir.mkdir(parents=True, exist_ok=True)
    sys.path.insert(0, str(HERE.parent))
    from _common import megapixels, run
    from aerialseg.options import ClassifyOptions

    raster, ckpt, card = prepare(a)
    mp, batch = megapixels(raster), ClassifyOptions(batch_size=a.batch_size).batch_for(a.device)
    ov = card.overlap if a.notebook_overlap is None else a.notebook_overlap
    print(f"input {raster} ({mp:.1f} MP); network {card.architecture}; device {a.device}, batch {batch}")
    print(f"{'peer':<16} {'tiles':>6} {'core s':>7} {'wall s':>7} {'MP/s':>6} {'peak MiB':>9} "
          f"{'speed vs aerialseg':>18} {'RSS vs aerialseg':>16}", flush=True)
    ref: tuple[float, float] | None = None
    for peer in a.peers:
        python, model = sys.executable, ckpt
        if peer == "aerialseg":
            model = a.model or card.name
        if peer == "geoai":
            python = str(a.geoai_python)
            probe = subprocess.run([python, "-c", "import geoai.train"], capture_output=True, text=True) \
                if a.geoai_python.exists() else None
            if probe is None or probe.returncode:
                why = f"{python} not found" if probe is None else probe.stderr.strip().splitlines()[-1]
                print(f"{peer:<16} not installed ({why})")
                continue
        out, result = a.workdir / f"peer_{peer}.tif", a.workdir / f"peer_{peer}.json"
        cmd = [python, HERE, "--child", peer, raster, out, result, "--model", model, "--device", a.device,
               "--batch-size", batch, "--overlap", ov]
        wall, rss = run(cmd)
        r = json.loads(result.read_text())
        ref = ref or (r["seconds"], rss)
        print(f"{peer:<16} {r['tiles']:>6} {r['seconds']:>7.1f} {wall:>7.1f} {mp / r['seconds']:>6.2f} {rss:>9.0f} "
              f"{ref[0] / r['seconds']:>18.2f} {rss / ref[1]:>16.2f}", flush=True)
    print("speed vs aerialseg: core MP/s over the first peer's; RSS vs aerialseg: peak RSS over the first peer's")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2:])
    else:
        main()
