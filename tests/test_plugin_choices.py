"""The QGIS Train dialog offers exactly the engine's choices (read from the sources: no torch, no QGIS)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _constants(path: Path) -> dict[str, tuple]:
    """Module-level tuples of string constants assigned in ``path``."""
    found = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Tuple):
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                continue
            found.update({t.id: value for t in node.targets if isinstance(t, ast.Name)})
    return found


def test_train_dialog_offers_every_engine_architecture_optimizer_and_scheduler():
    plugin = _constants(ROOT / "aerialseg_qgis" / "train.py")
    assert plugin["ARCHITECTURES"] == _constants(ROOT / "core" / "aerialseg" / "nets.py")["ARCHITECTURES"]
    engine = _constants(ROOT / "core" / "aerialseg" / "trainconfig.py")
    assert plugin["OPTIMIZERS"] == engine["OPTIMIZERS"] and plugin["SCHEDULERS"] == engine["SCHEDULERS"]
    assert len(plugin["ARCHITECTURES"]) >= 12
