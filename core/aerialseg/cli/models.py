"""``aerialseg models``: the bundled (and downloaded) models."""

from __future__ import annotations

import argparse
import json
from typing import Any

from aerialseg.cli.options import add_command
from aerialseg.cli.report import Reporter


def add_parser(sub: Any) -> None:
    p = add_command(sub, "models", run, "list the bundled models", writes=False)
    p.add_argument("--json", action="store_true", help="print the cards as JSON")


def run(args: argparse.Namespace, rep: Reporter) -> int:
    from aerialseg.runtime import MODELS_DIR, bundled_models, default_model_name

    models = bundled_models()
    entries = [{"name": m.name, "path": str(m.path), "card": m.card.to_dict()} for m in models]
    if rep.mode == "json":
        rep.result(models=entries, default=default_model_name(), folder=MODELS_DIR)
    elif args.json:
        print(json.dumps(entries, indent=1))
    else:
        rep.result(_listing(models, default_model_name()) if models else f"no bundled models in {MODELS_DIR}")
    return 0


def _listing(models: list[Any], default: str) -> str:
    lines = ["--model auto (the default) picks the model whose resolution fits the input; an input without "
             f"georeferencing gets {default} unless --input-gsd gives its pixel size"]
    for m in models:
        c = m.card
        gsd = f"{c.gsd_m:g} m/px" if c.gsd_m else "any resolution"
        lines.append(f"{m.name}: {', '.join(c.class_names)}; {gsd}; tile {c.tile_size} px; {m.path}")
        if c.description:
            lines.append(f"    {c.description}")
    return "\n".join(lines)
