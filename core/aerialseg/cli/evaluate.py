"""``aerialseg evaluate``: compare a class raster with a reference (IoU, F1, accuracy).

The run is :func:`aerialseg.evaluate.evaluate` (numpy, rasterio), imported only when this command runs.
"""

from __future__ import annotations

import argparse
import importlib.util
from typing import Any

from aerialseg.cli.options import add_command
from aerialseg.cli.report import Reporter
from aerialseg.errors import MissingExtra


def add_parser(sub: Any) -> None:
    p = add_command(sub, "evaluate", run, "compare a class raster with a reference (IoU, F1, accuracy)")
    p.add_argument("prediction", help="classified raster (class ids, 255 = no data)")
    p.add_argument("reference", help="reference raster: class ids, or colours with --colour-reference")
    p.add_argument("--classes", default="", help="dubai | landcoverai | potsdam | model.onnx | name,name,...")
    p.add_argument("--colour-reference", action="store_true", help="reference is colour-coded (class colours)")
    p.add_argument("--reference-colours", default="", help="#RRGGBB per class, if not the preset's")
    p.add_argument("--json", default="", help="write the scores and confusion matrix here")
    p.add_argument("--png", default="", help="write a confusion-matrix picture here")
    p.add_argument("--block", type=int, default=1024, help="block side in pixels")


def run(args: argparse.Namespace, rep: Reporter) -> int:
    """Evaluate; the scores are the result (text, or the ``result`` line)."""
    from aerialseg.evaluate import class_table, evaluate, write_report
    from aerialseg.metrics import format_scores

    if args.png and importlib.util.find_spec("matplotlib") is None:
        raise MissingExtra("--png (the confusion-matrix picture)", "train", "matplotlib")
    names, colours = class_table(args.classes, args.colour_reference, args.reference_colours)
    result = evaluate(args.prediction, args.reference, names, colours, args.block)
    write_report(result, args.json, args.png)
    rep.result(format_scores(result), **result)
    return 0
