"""``aerialseg export``: export a training checkpoint to ONNX with its model card.

The options and the run are ``aerialseg.export``'s, imported only when this command is chosen (torch).
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

from aerialseg.cli.options import add_command
from aerialseg.cli.report import Reporter

MODULE = "aerialseg.export"


def add_parser(sub: Any, selected: bool) -> None:
    """The subcommand; its options only when it is the one run (``selected``), as they import torch."""
    p = add_command(sub, "export", run, "export a training checkpoint to ONNX with its model card")
    if selected:
        importlib.import_module(MODULE).add_arguments(p)


def run(args: argparse.Namespace, rep: Reporter) -> int:
    return int(importlib.import_module(MODULE).run(args, rep) or 0)
