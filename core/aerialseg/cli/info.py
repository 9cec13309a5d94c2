"""``aerialseg info``: a model's card."""

from __future__ import annotations

import argparse
import json
from typing import Any

from aerialseg.cli.options import add_command
from aerialseg.cli.report import Reporter


def add_parser(sub: Any) -> None:
    p = add_command(sub, "info", run, "show a model card", writes=False)
    p.add_argument("model", help="a bundled model name or a model file")
    p.add_argument("--json", action="store_true", help="print the card as JSON")


def run(args: argparse.Namespace, rep: Reporter) -> int:
    from aerialseg.card import read_card
    from aerialseg.runtime import resolve_model

    path = resolve_model(args.model)
    card = read_card(path)
    if rep.mode == "json":
        rep.result(model=path, card=card.to_dict())
    elif args.json:
        print(card.to_json())
    else:
        rep.result(_rows(card))
    return 0


def _rows(card: Any) -> str:
    rows = [("name", card.name), ("description", card.description), ("architecture", card.architecture),
            ("classes", ", ".join(f"{c.id} {c.name} {c.color}" for c in card.classes)),
            ("bands", ", ".join(map(str, card.bands))),
            ("normalisation", f"(value / {card.scale:g} - mean {list(card.mean)}) / std {list(card.std)}"),
            ("ground resolution", f"{card.gsd_m:g} m/px" if card.gsd_m else "any"),
            ("tile size / overlap", f"{card.tile_size} / {card.overlap} px"),
            ("training data", card.training_data), ("licence", card.licence),
            ("metrics", json.dumps(dict(card.metrics)) if card.metrics else "")]
    return "\n".join(f"{key:>20}: {value}" for key, value in rows if value)
