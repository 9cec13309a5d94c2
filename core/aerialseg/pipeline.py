"""``map``: classify, then vectorise the classes, all or nothing.

Every output is written into a hidden staging folder beside its final place and moved there only when
both stages succeeded (the polygons last): a failed or cancelled run leaves the old outputs as they were
and no new ones. One input raster, or a folder or glob of them (one class raster each plus a VRT mosaic).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from aerialseg.errors import InputError, OutputError

log = logging.getLogger("aerialseg")
ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class MapOutputs:
    """Where ``map`` writes: the class raster (a VRT mosaic for many inputs), the GeoPackage, and the class
    raster of each input of a folder run (beside the mosaic)."""

    raster: Path
    vector: Path
    rasters: tuple[Path, ...] = ()


def default_outputs(source: str | Path, folder: str | Path) -> MapOutputs:
    """``<name>_landcover.tif`` (``.vrt`` for a folder or glob) and ``<name>_features.gpkg`` in ``folder``."""
    from aerialseg.mosaic import expand_inputs, mosaic_name, output_paths

    folder = Path(folder)
    inputs = expand_inputs(source)
    if inputs is None:
        name = Path(source).stem
        return MapOutputs(folder / f"{name}_landcover.tif", folder / f"{name}_features.gpkg")
    name = mosaic_name(source)
    rasters, vrt = output_paths(inputs, folder, name)
    return MapOutputs(vrt, folder / f"{name}_features.gpkg", tuple(rasters))


def map_image(
    source: str | Path,
    output: str | Path | MapOutputs,
    model: str | Path | None = "auto",
    *,
    classify_options: Mapping[str, Any] | None = None,
    vectorize_options: Mapping[str, Any] | None = None,
    client: Any = None,
    overwrite: bool = False,
    combine: bool = True,
    on_classify_progress: ProgressCallback | None = None,
    on_vectorize_progress: ProgressCallback | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> MapOutputs:
    """Classify ``source`` and vectorise the result; both outputs are replaced together, or neither.

    Args:
        source: an input raster, or a folder or glob of rasters.
        output: an output folder (created if missing, removed again if the run fails) for the default names of
            :func:`default_outputs`, or the exact paths (one input raster only).
        model: as for :func:`aerialseg.classify`; "auto" picks the bundled model that fits the input.
        classify_options: keyword options of :func:`aerialseg.classify` (device, tile_size, ...).
        vectorize_options: keyword options of :func:`aerialseg.vectorize`; ``regularize`` None (the default)
            squares buildings when the model works at 0.5 m/px or finer.
        client: a Dask client: classify on that cluster.
        combine: when "auto" picks a model that knows only some of the default model's classes (the building
            model, for a fine orthophoto), take those classes from it and the others from the default
            land-cover model (one input raster, in this process); False: the chosen model alone.
        on_classify_progress, on_vectorize_progress: ``(done, total)`` of each stage (tiles, blocks with a
            client, files for many inputs; then blocks).
        should_cancel: polled during both stages; returning True stops the run, leaving no output.

    Returns:
        the outputs written.
    """
    from aerialseg.mosaic import expand_inputs

    inputs = expand_inputs(source)
    run = partial(_map, source, inputs, model=model, classify_options=dict(classify_options or {}),
                  vectorize_options=dict(vectorize_options or {}), client=client, overwrite=overwrite, combine=combine,
                  on_classify=on_classify_progress, on_vectorize=on_vectorize_progress, should_cancel=should_cancel)
    if isinstance(output, MapOutputs):
        if inputs is not None:
            raise InputError(f"{source} holds many rasters: map them into an output folder, not into two file names")
        return run(output)
    folder = Path(output)
    created = not folder.exists()
    try:
        return run(default_outputs(source, output_folder(folder)))
    except BaseException:
        if created and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()  # a failed run leaves no trace
        raise


def _map(source: str | Path, inputs: list[Path] | None, outputs: MapOutputs, *, model: str | Path | None,
         classify_options: dict[str, Any], vectorize_options: dict[str, Any], client: Any, overwrite: bool,
         combine: bool, on_classify: ProgressCallback | None, on_vectorize: ProgressCallback | None,
         should_cancel: Callable[[], bool] | None) -> MapOutputs:
    from aerialseg.choose import AUTO, resolve_auto
    from aerialseg.scratch import claim_outputs
    from aerialseg.vectorize import vectorize

    names = [c for c in vectorize_options.get("classes") or [] if isinstance(c, str)]
    auto = model is None or str(model) == AUTO
    model = resolve_auto(model, inputs[0] if inputs else source, names, classify_options.get("input_gsd"))
    pair = _combination(model, names, combine and auto, inputs, client, classify_options)
    targets = [*outputs.rasters, outputs.raster, outputs.vector]
    _check_outputs(source, pair.base if pair else model, outputs, vectorize_options, overwrite,
                   regularize_by=model)  # fail before the long part
    with claim_outputs(targets, overwrite), _staging(targets) as stage:
        if pair is not None:
            from aerialseg.combine import classify_combined
            from aerialseg.options import ClassifyOptions

            raster = classify_combined(source, stage[outputs.raster.parent] / outputs.raster.name, pair,
                                       ClassifyOptions.of(classify_options), on_classify, should_cancel)
        else:
            raster = _classify_staged(source, inputs, outputs, model, classify_options, client, stage, on_classify,
                                      should_cancel)
        vectorize(raster, stage[outputs.vector.parent] / outputs.vector.name, **vectorize_options,
                  on_progress=on_vectorize, should_cancel=should_cancel)
        with _uninterrupted():  # all the outputs move, or none
            for staged, final in _moves(stage):
                os.replace(staged, final)
    return outputs


def _combination(model: str | Path | None, names: list[str], wanted: bool, inputs: list[Path] | None, client: Any,
                 classify_options: dict[str, Any]) -> Any:
    """The two models to combine (see :mod:`aerialseg.combine`), or None; says which and why in the log."""
    if not wanted or not isinstance(model, str):
        return None
    from aerialseg.combine import combination_for

    pair = combination_for(model, names)
    if pair is None:
        return None
    if inputs is not None or client is not None or classify_options.get("output_grid", "input") != "input":
        log.info("map: %s alone (two models are combined only for one raster, in this process, on its grid)", model)
        return None
    log.info("map: %s (%s knows only %s; --single-model to use it alone)", pair.describe(), pair.fine,
             ", ".join(pair.take))
    return pair


def _classify_staged(source: str | Path, inputs: list[Path] | None, outputs: MapOutputs, model: str | Path | None,
                     options: dict[str, Any], client: Any, stage: dict[Path, Path],
                     on_progress: ProgressCallback | None, should_cancel: Callable[[], bool] | None) -> Path:
    """Classify into the staging folder of the class raster; returns the staged raster (or VRT)."""
    folder = outputs.raster.parent
    if inputs is None:
        from aerialseg.predict import classify

        return classify(source, stage[folder] / outputs.raster.name, model, **options, client=client,
                        confidence=None, work_in=folder, on_progress=on_progress, should_cancel=should_cancel)
    from aerialseg.mosaic import classify_many

    name = outputs.raster.stem.removesuffix("_landcover")
    _, vrt = classify_many(inputs, stage[folder], name, model, options, client=client, work_in=folder,
                           on_progress=on_progress, should_cancel=should_cancel)
    return vrt


def _check_outputs(source: str | Path, model: str | Path | None, outputs: MapOutputs,
                   vectorize_options: dict[str, Any], overwrite: bool, regularize_by: str | Path | None) -> None:
    """Refuse existing outputs (without ``overwrite``), the input as an output, and unknown classes (of
    ``model``), up front; choose ``regularize`` by ``regularize_by``'s resolution when it is None."""
    from aerialseg.raster import check_input, check_output, check_style_files
    from aerialseg.runtime import model_card

    rasters = [*outputs.rasters, outputs.raster]
    if not outputs.rasters:  # one input raster: a missing one is named before an existing output
        check_input(source)
    if Path(os.path.abspath(outputs.raster)) == Path(os.path.abspath(outputs.vector)):
        raise OutputError(f"the class raster and the polygons would both be {outputs.vector}; give two names")
    for target in (*rasters, outputs.vector):
        check_output(target, [source], overwrite)
    check_style_files(rasters, source, overwrite)
    card, fine = model_card(model), model_card(regularize_by)
    if vectorize_options.get("regularize") is None:  # buildings of fine imagery are many pixels: square them
        vectorize_options["regularize"] = fine.gsd_m is not None and fine.gsd_m <= 0.5
        if vectorize_options["regularize"]:
            log.info("regularising building outlines (the model works at %g m/px; --no-regularize to keep)",
                     fine.gsd_m)
    for cls in vectorize_options.get("classes") or []:
        if isinstance(cls, str):
            card.class_by_name(cls)  # a typo fails now, not after classifying


@contextlib.contextmanager
def _staging(outputs: Sequence[Path]) -> Iterator[dict[Path, Path]]:
    """A hidden staging folder in each output folder (output folder -> staging folder); deleted afterwards."""
    from aerialseg.scratch import remove_stale, scratch_prefix, write_error

    stage: dict[Path, Path] = {}
    try:
        for output in outputs:
            folder = output.parent
            if folder not in stage:
                remove_stale(folder)
                name = output.stem.removesuffix("_landcover").removesuffix("_features")
                try:
                    stage[folder] = Path(tempfile.mkdtemp(prefix=scratch_prefix(f"{name}_map"),
                                                          dir=folder.resolve()))
                except OSError as e:
                    raise write_error(e, folder) from None
        yield stage
    except OutputError as e:  # name the output folder, not the hidden one
        message = str(e)
        for folder, hidden in stage.items():
            message = message.replace(str(hidden), str(folder))
        raise OutputError(message) from None
    finally:
        for hidden in stage.values():
            shutil.rmtree(hidden, ignore_errors=True)


def _moves(stage: dict[Path, Path]) -> list[tuple[Path, Path]]:
    """(staged file, its final place) for every staged file; the GeoPackage last."""
    moves = [(path, folder / path.name) for folder, hidden in stage.items() for path in sorted(hidden.iterdir())]
    return sorted(moves, key=lambda move: move[0].suffix == ".gpkg")


def output_folder(path: str | Path) -> Path:
    """The output folder of a run that writes several files (created if missing)."""
    folder = Path(path)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"output {folder} is a file; this run writes into a folder: give a folder path")
    if not folder.parent.is_dir():
        raise OutputError(f"the parent folder of {folder} does not exist; create it first")
    try:
        folder.mkdir(exist_ok=True)
    except OSError as e:
        raise OutputError(f"cannot create the output folder {folder}: {e.strerror or e}; "
                          "choose a folder where you can write") from None
    return folder


@contextlib.contextmanager
def _uninterrupted() -> Iterator[None]:
    """Ignore SIGINT and SIGTERM in the block (main thread only): a signal must not stop the final moves
    half-way. The previous handlers come back afterwards; a signal that came meanwhile is dropped."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    for signum in saved:
        signal.signal(signum, signal.SIG_IGN)
    try:
        yield
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
