"""``aerialseg evaluate``: compare a class raster with a reference (IoU, F1, accuracy).

The options and the run are ``aerialseg.evaluate``'s, imported only when this command is chosen (torch).
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

from aerialseg.cli.options import add_command
from aerialseg.cli.report import Reporter

MODULE = "aerialseg.evaluate"


def add_parser(sub: Any, selected: bool) -> None:
    """The subcommand; its options only when it is the one run (``selected``), as they import torch."""
    p = add_command(sub, "evaluate", run, "compare a class raster with a reference (IoU, F1, accuracy)")
    if selected:
        importlib.import_module(MODULE).add_arguments(p)


def run(args: argparse.Namespace, rep: Reporter) -> int:
    return int(importlib.import_module(MODULE).run(args, rep) or 0)
