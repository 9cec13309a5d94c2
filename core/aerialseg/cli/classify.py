"""``aerialseg classify``: an orthophoto (or a folder or glob of them) -> a land-cover class raster."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from aerialseg.cli.options import add_command, add_model_options, classify_options
from aerialseg.cli.report import Reporter
from aerialseg.errors import InputError


def add_parser(sub: Any) -> None:
    p = add_command(sub, "classify", run, "classify an orthophoto into a land-cover class raster")
    p.add_argument("input", help="input raster (GeoTIFF, JPEG, PNG, VRT, any GDAL raster), or a folder or glob of them")
    p.add_argument("output", help="output class raster (.tif, cloud-optimised GeoTIFF); a folder for many inputs")
    add_model_options(p)
    p.add_argument("--confidence", metavar="PATH", help="also write a per-pixel confidence raster (0-100 %%)")


def run(args: argparse.Namespace, rep: Reporter) -> int:
    from aerialseg.cluster import cluster_client
    from aerialseg.mosaic import expand_inputs
    from aerialseg.predict import classify

    inputs = expand_inputs(args.input)
    choose_model(args, inputs)
    with cluster_client(args.workers, args.scheduler) as client:
        if inputs is not None:
            return _classify_many(args, rep, inputs, client)
        out = classify(args.input, args.output, args.model, **classify_options(args), client=client,
                       confidence=args.confidence, overwrite=args.overwrite,
                       on_progress=rep.progress("classify", "block" if client else "tile"))
    rep.result(output=out, confidence=args.confidence)
    return 0


def _classify_many(args: argparse.Namespace, rep: Reporter, inputs: list[Path], client: Any) -> int:
    from aerialseg.mosaic import classify_many, mosaic_name
    from aerialseg.pipeline import output_folder

    if args.confidence:
        raise InputError("--confidence works with one input raster, not a folder")
    rasters, vrt = classify_many(inputs, output_folder(args.output), mosaic_name(args.input), args.model,
                                 classify_options(args), client=client, overwrite=args.overwrite,
                                 on_progress=rep.progress("classify", "file"))
    rep.result(output=vrt, rasters=rasters)
    return 0


def choose_model(args: argparse.Namespace, inputs: list[Path] | None) -> None:
    """Replace ``--model auto`` by the bundled model that fits the (first) input's ground resolution."""
    from aerialseg.choose import resolve_auto

    names = [c for c in (getattr(args, "classes", None) or "").split(",") if c and not c.isdigit()]
    args.model = resolve_auto(args.model, inputs[0] if inputs else args.input, names, args.input_gsd)
