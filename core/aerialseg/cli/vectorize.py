"""``aerialseg vectorize``: a class raster -> polygons per class in a GeoPackage."""

from __future__ import annotations

import argparse
from typing import Any

from aerialseg.cli.options import add_command, add_vector_options, float_range, vectorize_options
from aerialseg.cli.report import Reporter


def add_parser(sub: Any) -> None:
    p = add_command(sub, "vectorize", run, "turn a class raster into polygons (GeoPackage)")
    p.add_argument("input", help="class raster written by 'aerialseg classify'")
    p.add_argument("output", help="output GeoPackage (.gpkg), one layer per class")
    add_vector_options(p)
    p.add_argument("--input-gsd", type=float_range(0, inclusive=False), metavar="METRES",
                   help="ground size of a pixel of a class raster without georeferencing: areas in metres, not pixels")


def run(args: argparse.Namespace, rep: Reporter) -> int:
    from aerialseg.vectorize import vectorize

    options = vectorize_options(args)
    options["regularize"] = bool(options["regularize"])
    out = vectorize(args.input, args.output, **options, overwrite=args.overwrite,
                    on_progress=rep.progress("vectorize", "block"))
    rep.result(output=out)
    return 0
