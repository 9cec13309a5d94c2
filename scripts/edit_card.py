"""Edit the card inside an ONNX model: what a release adds after `aerialseg export`.

    python scripts/edit_card.py MODEL.onnx [--colours NAME=#RRGGBB,...] [--description TEXT]
        [--metrics FIGURES.json]

``--colours`` sets class display colours by class name (the bundled land-cover model uses cartographic
colours: water blue, vegetation green, buildings brick red, roads grey, land beige; training writes the
data set's own mask colours). ``--metrics`` replaces the card's metrics with the JSON
object in the file (for a model shipped from the last epoch of a run on all data: which figures are
held-out and which only measure the fit). The card is validated before it is written.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from aerialseg.card import ClassInfo, read_card, write_card


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("--colours", help="class colours by name: building=#B03A2E,water=#2E78C7,...")
    p.add_argument("--description")
    p.add_argument("--metrics", help="a JSON file whose object replaces the card's metrics")
    a = p.parse_args()
    card = read_card(a.model)
    changes: dict = {}
    if a.colours:
        colours = dict(item.split("=", 1) for item in a.colours.split(","))
        unknown = set(colours) - set(card.class_names)
        if unknown:
            raise SystemExit(f"edit_card: no class {', '.join(sorted(unknown))} in {card.class_names}")
        changes["classes"] = tuple(ClassInfo(c.id, c.name, colours.get(c.name, c.color)) for c in card.classes)
    if a.description:
        changes["description"] = a.description
    if a.metrics:
        changes["metrics"] = json.loads(Path(a.metrics).read_text())
    write_card(a.model, dataclasses.replace(card, **changes))
    print(read_card(a.model).to_json())


if __name__ == "__main__":
    main()
