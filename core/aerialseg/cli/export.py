"""``aerialseg export``: export a training checkpoint to ONNX with its model card.

The run is :func:`aerialseg.export.export_onnx`, imported when this command is chosen: without torch (the
[train] extra) it fails then, in one line, even for ``--help``.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import Any

from aerialseg.cli.options import add_command
from aerialseg.cli.report import Reporter

MODULE = "aerialseg.export"
CARD_OPTIONS = ("licence", "training_data", "description")  # card fields an option may override


def add_parser(sub: Any, selected: bool) -> None:
    """The subcommand; when it is the one run (``selected``), its module is imported (torch)."""
    p = add_command(sub, "export", run, "export a training checkpoint to ONNX with its model card")
    p.add_argument("checkpoint", help="best.pt or last.pt of a training run")
    p.add_argument("output", help="the .onnx file to write")
    p.add_argument("--name", default=None, help="model name in the card")
    p.add_argument("--licence", default=None)
    p.add_argument("--training-data", default=None)
    p.add_argument("--description", default=None)
    p.add_argument(
        "--fp16-weights", action="store_true", help="store the weights as float16: half the file, same speed"
    )
    if selected:
        importlib.import_module(MODULE)


def run(args: argparse.Namespace, rep: Reporter) -> int:
    """Export; the output and its card are the result."""
    from aerialseg.export import export_onnx

    updates = {k: getattr(args, k) for k in CARD_OPTIONS if getattr(args, k) is not None}
    card = export_onnx(args.checkpoint, args.output, name=args.name, card_updates=updates,
                       fp16_weights=args.fp16_weights)
    size = Path(args.output).stat().st_size
    text = (f"wrote {args.output} ({size / 1e6:.1f} MB): {card.name}, classes {', '.join(card.class_names)}, "
            f"metrics {dict(card.metrics).get('validation', {})}")
    rep.result(text, output=args.output, size_bytes=size, card=card.to_dict())
    return 0
