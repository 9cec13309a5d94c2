"""``aerialseg map``: classify and vectorise in one go (``aerialseg.pipeline.map_image``), all or nothing."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from aerialseg.cli.options import (
    add_command,
    add_model_options,
    add_vector_options,
    classify_options,
    vectorize_options,
)
from aerialseg.cli.report import Reporter
from aerialseg.errors import InputError
from aerialseg.pipeline import MapOutputs


def add_parser(sub: Any) -> None:
    p = add_command(sub, "map", run, "classify and vectorise in one go")
    p.add_argument("input", help="input raster, or a folder or glob of rasters (one class raster each + a VRT mosaic)")
    p.add_argument("output", nargs="?",
                   help="output folder (created if missing): <name>_landcover.tif, <name>_features.gpkg; "
                        "or leave it out and give --raster and --vector")
    p.add_argument("--raster", metavar="PATH", help="write the class raster here (with --vector, instead of OUTPUT)")
    p.add_argument("--vector", metavar="PATH", help="write the polygons here (with --raster, instead of OUTPUT)")
    p.add_argument("--single-model", action="store_true",
                   help="with --model auto: the chosen model alone, even when it knows only some classes (the "
                        "building model on a fine orthophoto); by default the others come from the land-cover model")
    add_model_options(p)
    add_vector_options(p)


def run(args: argparse.Namespace, rep: Reporter) -> int:
    from aerialseg.cluster import cluster_client
    from aerialseg.mosaic import expand_inputs
    from aerialseg.pipeline import map_image

    inputs = expand_inputs(args.input)
    with cluster_client(args.workers, args.scheduler) as client:
        done = map_image(args.input, _output(args), args.model, classify_options=classify_options(args),
                         vectorize_options=vectorize_options(args), client=client, overwrite=args.overwrite,
                         combine=not args.single_model,
                         on_classify_progress=rep.progress("classify", "file" if inputs else
                                                           "block" if client else "tile"),
                         on_vectorize_progress=rep.progress("vectorize", "block"))
    rep.result(output_raster=done.raster, output_vector=done.vector,
               **({"rasters": list(done.rasters)} if done.rasters else {}))
    return 0


def _output(args: argparse.Namespace) -> str | MapOutputs:
    """The output folder, or the two output paths of --raster and --vector."""
    given = (args.raster is not None, args.vector is not None)
    if args.output is not None and any(given):
        raise InputError("give an output folder or --raster and --vector, not both")
    if args.output is not None:
        return args.output
    if not all(given):
        raise InputError("give an output folder, or both --raster PATH and --vector PATH")
    return MapOutputs(Path(args.raster), Path(args.vector))
