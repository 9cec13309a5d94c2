"""``aerialseg train``: train a model from image + mask pairs.

The options and the run are ``aerialseg.train``'s, imported only when this command is chosen (torch).
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

from aerialseg.cli.options import add_command
from aerialseg.cli.report import Reporter

MODULE = "aerialseg.train"


def add_parser(sub: Any, selected: bool) -> None:
    """The subcommand; its options only when it is the one run (``selected``), as they import torch."""
    p = add_command(sub, "train", run, "train a model from image + mask pairs")
    if selected:
        importlib.import_module(MODULE).add_arguments(p)


def run(args: argparse.Namespace, rep: Reporter) -> int:
    return int(importlib.import_module(MODULE).run(args, rep) or 0)
