"""Two models, one map: land cover from one model, some classes (buildings) from a finer one.

On a 0.2 m orthophoto ``--model auto`` picks the building model (it works at 0.13 m), which knows only
buildings; the land-cover model (2 m) knows roads, water and vegetation too but sees a house as a few
pixels. ``map`` then takes each class from the model that is better at it: the fine model's classes
where it finds them, elsewhere the land-cover model's best class among the others (its probabilities
for the fine model's classes set aside, so a coarse "building" blob is not left where the fine model
sees none).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
from rasterio.windows import Window

from aerialseg.card import NODATA_CLASS, ModelCard
from aerialseg.errors import InputError
from aerialseg.options import ClassifyOptions
from aerialseg.raster import ClassRasterWriter, open_raster
from aerialseg.runtime import Model, default_model_name, load_model, model_card
from aerialseg.scratch import scratch_prefix

log = logging.getLogger("aerialseg")
ProgressCallback = Callable[[int, int], None]
_STEPS = 1000  # progress units of a combined run: the first model 0-500, the second 500-1000


@dataclasses.dataclass(frozen=True)
class Combination:
    """Land cover from ``base``; the classes ``take`` from ``fine`` (model names)."""

    base: str
    fine: str
    take: tuple[str, ...]

    def describe(self) -> str:
        base, fine = model_card(self.base), model_card(self.fine)
        rest = [n for n in base.class_names if n.lower() not in {t.lower() for t in self.take}]
        return (f"{', '.join(self.take)} from {self.fine} ({_gsd(fine)}), {', '.join(rest)} from {self.base} "
                f"({_gsd(base)})")


def _gsd(card: ModelCard) -> str:
    return f"{card.gsd_m:g} m/px" if card.gsd_m else "resolution not stated"


def combination_for(chosen: str, wanted: Sequence[str] = ()) -> Combination | None:
    """The combination worth running when ``--model auto`` chose ``chosen``, or None.

    Worth it when the chosen model is not the default (land-cover) model, shares some of its classes
    (building) and lacks others (road, water, ...), and the user did not ask only for the shared ones.
    """
    default = default_model_name()
    if chosen == default:
        return None
    base, fine = model_card(default), model_card(chosen)
    base_names = {n.lower() for n in base.class_names}
    take = tuple(n for n in fine.class_names if n.lower() in base_names)
    rest = base_names - {t.lower() for t in take}
    asked = {w.lower() for w in wanted}
    if not take or not rest or (asked and asked <= {t.lower() for t in take}):
        return None
    return Combination(default, chosen, take)


class WithoutClasses:
    """A model whose probabilities for some classes are set aside: the others, renormalised to sum to 1."""

    def __init__(self, net: Model, names: Sequence[str]) -> None:
        self.net, self.card, self.device = net, net.card, net.device
        self.drop = [net.card.class_by_name(n).id for n in names]

    def predict(self, batch: np.ndarray) -> np.ndarray:
        probs = self.net.predict(batch)
        # The tiny floor keeps a pixel the set-aside classes took entirely (the others rounded to 0) a valid pixel.
        probs += np.float32(1e-6)
        probs[:, self.drop] = 0
        probs /= probs.sum(axis=1, keepdims=True)
        return probs


def classify_combined(input: str | Path, output: str | Path, combination: Combination, options: ClassifyOptions,
                      on_progress: ProgressCallback | None = None,
                      should_cancel: Callable[[], bool] | None = None) -> Path:
    """Classify ``input`` with both models of ``combination`` and write one class raster (the base model's
    classes and colours) to ``output``, all or nothing; in this process (no cluster)."""
    from aerialseg.predict import classify_with

    if options.output_grid != "input":
        raise InputError("combining two models needs the input's grid (--output-grid input)")
    report = on_progress or (lambda done, total: None)
    out = Path(output)
    base = WithoutClasses(load_model(combination.base, options.device, options.threads, options.precision),
                          combination.take)
    with tempfile.TemporaryDirectory(prefix=scratch_prefix(out.stem), dir=out.parent) as tmp:
        coarse, fine = Path(tmp) / "base.tif", Path(tmp) / "fine.tif"
        with _coarse_on_purpose():
            classify_with(options, input, coarse, base, on_progress=_share(report, 0), should_cancel=should_cancel)
        classify_with(options, input, fine, combination.fine, on_progress=_share(report, 1),
                      should_cancel=should_cancel)
        overlay(coarse, fine, out, base.card, combination.take, model_card(combination.fine))
    report(_STEPS, _STEPS)
    return out


@contextlib.contextmanager
def _coarse_on_purpose() -> Iterator[None]:
    """The land-cover model runs at its coarser resolution on purpose here: its warning that the input is
    downsampled (fine detail lost, use a finer model) would mislead, so it is logged as information."""

    def demote(record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and "downsampled" in record.getMessage():
            record.levelno, record.levelname = logging.INFO, "INFO"
            return log.isEnabledFor(logging.INFO)  # dropped where only warnings are shown
        return True

    log.addFilter(demote)
    try:
        yield
    finally:
        log.removeFilter(demote)


def _share(report: ProgressCallback, half: int) -> ProgressCallback:
    return lambda done, total: report(half * _STEPS // 2 + done * (_STEPS // 2) // max(total, 1), _STEPS)


def overlay(base: Path, fine: Path, output: Path, card: ModelCard, take: Sequence[str], fine_card: ModelCard,
            rows: int = 512) -> None:
    """Write ``base``'s classes with ``fine``'s classes ``take`` laid over them (both rasters on one grid)."""
    ids = {fine_card.class_by_name(n).id: card.class_by_name(n).id for n in take}
    named = dataclasses.replace(card, name=f"{card.name} + {fine_card.name}")
    with open_raster(base) as b, open_raster(fine) as f, contextlib.ExitStack() as stack:
        if (b.width, b.height, b.transform) != (f.width, f.height, f.transform):
            raise InputError(f"{base} and {fine} are not on one grid")
        writer = stack.enter_context(ClassRasterWriter(output, b, named))
        for y in range(0, b.height, rows):
            window = Window(0, y, b.width, min(rows, b.height - y))
            classes, top = b.read(1, window=window), f.read(1, window=window)
            for fine_id, base_id in ids.items():
                classes[(top == fine_id) & (classes != NODATA_CLASS)] = base_id
            writer.write(window, classes)
        writer.commit()
