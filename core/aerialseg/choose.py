"""``--model auto``: the bundled or downloaded model that fits an input's ground resolution best.

Among the models that have every class asked for, the one whose card resolution is closest to the
input's on a log scale (0.2 m is as far from 0.1 m as from 0.4 m). An input without georeferencing and
without ``input_gsd`` gets the default model. The choice and its reason are logged.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path

from aerialseg.errors import InputError
from aerialseg.runtime import BundledModel, bundled_models, default_model_name

log = logging.getLogger("aerialseg")
AUTO = "auto"


def input_resolution(path: str | Path) -> float | None:
    """Mean ground metres per pixel of a raster, or None without georeferencing (or if it cannot be read)."""
    from aerialseg.raster import ground_pixel_size, open_raster

    try:
        with open_raster(path) as ds:
            size = ground_pixel_size(ds)
    except Exception:  # noqa: BLE001 - the real run reports an unreadable input with its own message
        return None
    return None if size is None else math.sqrt(size[0] * size[1])


def choose_model(input_gsd: float | None, classes: Sequence[str] = ()) -> tuple[str, str]:
    """(model name, reason) for an input at ``input_gsd`` m/px (None: unknown) needing ``classes``."""
    wanted = {c.lower() for c in classes if isinstance(c, str)}
    models = [m for m in bundled_models() if wanted <= {n.lower() for n in m.card.class_names}]
    if not models:
        raise InputError(f"no bundled or downloaded model has the classes {', '.join(sorted(wanted))}; "
                         "pass --model, or other --classes")
    default = default_model_name()
    fallback = next((m for m in models if m.name == default), models[0])
    if input_gsd is None:
        return fallback.name, "the input's ground resolution is unknown (give --input-gsd to choose by it)"
    sized = [m for m in models if m.card.gsd_m]
    if not sized:
        return fallback.name, "no model states its ground resolution"
    best = min(sized, key=lambda m: (_distance(m, input_gsd), m.name != default))
    return best.name, f"it works at {best.card.gsd_m:g} m/px, the closest to the input's {input_gsd:.3g} m/px"


def _distance(model: BundledModel, gsd: float) -> float:
    return abs(math.log(gsd / float(model.card.gsd_m or gsd)))


def resolve_auto(spec: str | Path | None, input: str | Path, classes: Sequence[str] = (),
                 input_gsd: float | None = None) -> str | Path | None:
    """``spec`` unchanged unless it is None or "auto": then the chosen bundled model's name (logged)."""
    if spec is not None and str(spec) != AUTO:
        return spec
    gsd = input_gsd if input_gsd is not None else input_resolution(input)
    name, why = choose_model(gsd, classes)
    log.info("model: %s (chosen automatically: %s)", name, why)
    return name
