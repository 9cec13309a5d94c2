"""The ``aerialseg`` command line.

On a terminal it shows a progress bar (tiles/s, ETA); with ``--progress json`` it prints one JSON
object per line on stdout (``progress``, ``log``, ``result``, ``error``), which the QGIS plugin
reads. Errors a user can cause print one line on stderr and exit with status 1; no traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import math
import os
import signal
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from aerialseg._version import __version__
from aerialseg.card import MAX_TILE, MIN_TILE
from aerialseg.errors import AerialSegError, Cancelled, InputError, MissingExtra, OutputError

if TYPE_CHECKING:
    from tqdm import tqdm

log = logging.getLogger("aerialseg")
# Subcommands implemented in their own modules (imported only when used: they need torch).
_MOUNTED = {
    "train": ("aerialseg.train", "train a model from image + mask pairs"),
    "evaluate": ("aerialseg.evaluate", "compare a class raster with a reference (IoU, F1, accuracy)"),
    "export": ("aerialseg.export", "export a training checkpoint to ONNX with its model card"),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``aerialseg`` command; returns the exit status.

    From here on, Ctrl-C or SIGTERM (in the imports of a command too) ends the run with one line, status 130.
    The caller's signal handlers are restored on return (a script or test that calls ``main()`` must not be
    left ignoring SIGTERM, nor pass that on to every process it starts later).
    """
    global _interrupted
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        return _main(argv)
    finally:
        for signum, handler in saved.items():
            signal.signal(signum, handler)
        _interrupted = False


def _main(argv: Sequence[str] | None) -> int:
    command_line = argv is None
    argv = list(sys.argv[1:] if argv is None else argv)
    for signum in (signal.SIGTERM, signal.SIGINT):  # a killed run cleans up like a cancelled one
        signal.signal(signum, _raise_interrupt)
    try:
        args = build_parser(argv).parse_args(argv)
    except ImportError as e:  # a mounted command whose extra (torch: [train]) is not installed
        if _interrupted:
            return Reporter("none").fail(CANCELLED, 130)
        print(f"aerialseg: error: {MissingExtra(repr(argv[0]), 'train', e.name)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return Reporter("none").fail(CANCELLED, 130)
    if command_line and not getattr(args, "debug", False):
        _silence_native_stderr()
    warnings.filterwarnings("ignore", category=UserWarning, module="rasterio")  # we log our own, clearer ones
    reporter = Reporter(args.progress if hasattr(args, "progress") else "none", getattr(args, "verbose", False),
                        quiet=args.command != "train")  # train's log is its per-epoch report
    try:
        return int(args.func(args, reporter) or 0)
    except Cancelled as e:
        return reporter.fail(str(e), 130)
    except KeyboardInterrupt:
        return reporter.fail(CANCELLED, 130)
    except AerialSegError as e:
        return reporter.fail(str(e), 1)
    except BrokenPipeError:  # the reader of stdout went away (aerialseg models | head): not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes
        return 0
    except Exception as e:  # noqa: BLE001  anything else is a bug: say so in one line
        if _interrupted:  # e.g. an ImportError from an extension module interrupted while it loaded
            return reporter.fail(CANCELLED, 130)
        if getattr(args, "debug", False):
            raise
        return reporter.fail(f"internal error ({type(e).__name__}: {e}); rerun with --debug and report it", 3)
    finally:
        reporter.close()


CANCELLED = "cancelled; no output was written"
_interrupted = False  # set by the first SIGINT/SIGTERM


def _raise_interrupt(signum: int, frame: Any) -> None:
    global _interrupted
    _interrupted = True
    _ignore_signals()  # a second signal must not interrupt the clean-up the first one starts
    raise KeyboardInterrupt


def _silence_native_stderr() -> None:
    """Send what native libraries print straight to the process's stderr (libtiff's "_tiffWriteProc: No
    space left on device", ONNX Runtime's warnings) to the null device; Python's ``sys.stderr`` keeps the
    real stream, so our one-line errors, logs and bars still show. ``--debug`` keeps the native lines."""
    try:
        if sys.stderr is None or sys.stderr.fileno() != 2:
            return
        sys.stderr.flush()
        real = os.dup(2)
        stream = os.fdopen(real, "w", buffering=1, encoding=sys.stderr.encoding, errors=sys.stderr.errors)
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 2)
        os.close(null)
    except (OSError, ValueError, AttributeError):  # no real stderr (pythonw, a captured stream): leave it
        return
    sys.stderr = stream


def _ignore_signals() -> None:
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_IGN)


class Reporter:
    """Progress, logs and results for one run: a tqdm bar, JSON lines, or nothing."""

    def __init__(self, mode: str, verbose: bool = False, quiet: bool = False) -> None:
        """``quiet``: without ``verbose``, stderr gets warnings and errors only (JSON lines keep info)."""
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "none"
        self.mode, self._stage, self._started = mode, "", time.monotonic()
        self._bar: tqdm | None = None
        handler = _JsonLogHandler(self) if mode == "json" else _TqdmLogHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.handlers[:] = [handler]
        quiet = quiet and mode != "json"
        log.setLevel(logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO)
        log.propagate = False

    def progress(self, stage: str, unit: str) -> Callable[[int, int], None]:
        """A progress callback for a stage ("classify", "vectorize", ...) counting ``unit``s."""
        def update(done: int, total: int) -> None:
            if self.mode == "json":
                self._emit_progress(stage, unit, done, total)
            elif self.mode == "bar":
                self._update_bar(stage, unit, done, total)
        return update

    def _emit_progress(self, stage: str, unit: str, done: int, total: int) -> None:
        if stage != self._stage:
            self._stage, self._started = stage, time.monotonic()
        elapsed = max(time.monotonic() - self._started, 1e-6)
        rate = done / elapsed if elapsed > 0.5 else None  # too early for a meaningful rate
        eta = (total - done) / rate if rate else None
        self.emit({"type": "progress", "stage": stage, "unit": unit, "done": done, "total": total,
                   "percent": round(100 * done / max(total, 1), 1), "rate": None if rate is None else round(rate, 3),
                   "eta_s": None if eta is None else round(eta, 1)})

    def _update_bar(self, stage: str, unit: str, done: int, total: int) -> None:
        from tqdm import tqdm

        if self._bar is None or self._stage != stage:
            self._close_bar()
            self._stage = stage
            self._bar = tqdm(total=total, desc=stage, unit=unit, dynamic_ncols=True, file=sys.stderr)
        self._bar.update(done - self._bar.n)

    def emit(self, obj: dict[str, Any]) -> None:
        """Print one JSON line on stdout; a reader that went away (closed pipe) cancels the run."""
        try:
            print(json.dumps(obj), flush=True)
        except BrokenPipeError:
            _ignore_signals()
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no more write errors
            raise Cancelled("the process reading the progress went away; stopped, no output written") from None

    def result(self, **outputs: Any) -> None:
        """Report the outputs of a successful run (complete and in place: a reader gone by now cancels nothing)."""
        self._close_bar()
        if self.mode == "json":
            with contextlib.suppress(Cancelled):
                self.emit({"type": "result", **{k: str(v) if isinstance(v, Path) else v for k, v in outputs.items()}})

    def fail(self, message: str, status: int) -> int:
        """Report an error in one line and return the exit status."""
        self._close_bar()
        if self.mode == "json":
            with contextlib.suppress(Cancelled):
                self.emit({"type": "error", "message": message})
        with contextlib.suppress(BrokenPipeError):
            print(f"aerialseg: error: {message}", file=sys.stderr, flush=True)
        return status

    def _close_bar(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def close(self) -> None:
        self._close_bar()


class _TqdmLogHandler(logging.Handler):
    """Log lines on stderr that do not break a progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        from tqdm import tqdm

        prefix = "" if record.levelno < logging.WARNING else f"{record.levelname.lower()}: "
        tqdm.write(prefix + self.format(record), file=sys.stderr)


class _JsonLogHandler(logging.Handler):
    """Log records as JSON lines on stdout."""

    def __init__(self, reporter: Reporter) -> None:
        super().__init__()
        self.reporter = reporter

    def emit(self, record: logging.LogRecord) -> None:
        self.reporter.emit({"type": "log", "level": record.levelname, "message": self.format(record)})


# ---------------------------------------------------------------- commands


def cmd_classify(args: argparse.Namespace, rep: Reporter) -> int:
    from aerialseg.distributed import cluster_client
    from aerialseg.mosaic import classify_many, expand_inputs, mosaic_name
    from aerialseg.predict import classify

    inputs = expand_inputs(args.input)
    _choose_model(args, inputs)
    with cluster_client(args.workers, args.scheduler) as client:
        if inputs is not None:
            if args.confidence:
                raise InputError("--confidence works with one input raster, not a folder")
            folder = _output_folder(args.output)
            rasters, vrt = classify_many(inputs, folder, mosaic_name(args.input), args.model,
                                         _classify_options(args), client=client, overwrite=args.overwrite,
                                         on_progress=rep.progress("classify", "file"))
            rep.result(output=vrt, rasters=[str(r) for r in rasters])
            return 0
        out = classify(args.input, args.output, args.model, **_classify_options(args), client=client,
                       confidence=args.confidence, overwrite=args.overwrite,
                       on_progress=rep.progress("classify", "block" if client else "tile"))
    rep.result(output=out, confidence=args.confidence)
    return 0


def cmd_vectorize(args: argparse.Namespace, rep: Reporter) -> int:
    from aerialseg.vectorize import vectorize

    out = vectorize(args.input, args.output, **_vectorize_options(args), overwrite=args.overwrite,
                    on_progress=rep.progress("vectorize", "block"))
    rep.result(output=out)
    return 0


def cmd_map(args: argparse.Namespace, rep: Reporter) -> int:
    """Classify and vectorise into a hidden staging folder; move every output into place together, at the end."""
    from aerialseg.mosaic import expand_inputs, mosaic_name, output_paths
    from aerialseg.scratch import claim_outputs

    inputs = expand_inputs(args.input)
    created = not Path(args.output).exists()
    folder = _output_folder(args.output)
    if inputs is None:
        name = Path(args.input).stem
        rasters: list[Path] = []
        raster = folder / f"{name}_landcover.tif"
    else:
        name = mosaic_name(args.input)
        rasters, raster = output_paths(inputs, folder, name)
    gpkg = folder / f"{name}_features.gpkg"
    try:
        _choose_model(args, inputs)
        _check_map_outputs(args, [*rasters, raster], gpkg)  # fail before the long part, not after it
        with claim_outputs([*rasters, raster, gpkg], args.overwrite), _staging(folder, name) as stage:
            _map_into(args, rep, inputs, stage, name, folder)
            _ignore_signals()  # all the outputs move, or none
            for path in sorted(stage.iterdir(), key=lambda p: p.suffix == ".gpkg"):
                os.replace(path, folder / path.name)
    except BaseException:
        if created and not any(folder.iterdir()):
            folder.rmdir()  # a failed run leaves no trace
        raise
    rep.result(output_raster=raster, output_vector=gpkg, **({"rasters": [str(r) for r in rasters]} if rasters else {}))
    return 0


def _check_map_outputs(args: argparse.Namespace, rasters: list[Path], gpkg: Path) -> None:
    """Refuse existing outputs (without --overwrite), the input as an output, and unknown classes, up front."""
    from aerialseg.raster import check_output, check_style_files
    from aerialseg.runtime import model_card

    for target in (*rasters, gpkg):
        check_output(target, [args.input], args.overwrite)
    check_style_files(rasters, args.input, args.overwrite)
    card = model_card(args.model)
    if args.regularize is None:  # buildings of fine imagery are many pixels: square them
        args.regularize = card.gsd_m is not None and card.gsd_m <= 0.5
        if args.regularize:
            log.info("regularising building outlines (the model works at %g m/px; --no-regularize to keep)",
                     card.gsd_m)
    for cls in _vectorize_options(args).get("classes", []):
        if isinstance(cls, str):
            card.class_by_name(cls)  # a typo fails now, not after classifying


def _map_into(args: argparse.Namespace, rep: Reporter, inputs: list[Path] | None, stage: Path, name: str,
              folder: Path) -> None:
    """The work of ``map``: every output written into ``stage`` (a folder's resumable work stays in ``folder``)."""
    from aerialseg.distributed import cluster_client
    from aerialseg.vectorize import vectorize

    raster = stage / f"{name}_landcover.tif"
    with cluster_client(args.workers, args.scheduler) as client:
        if inputs is None:
            from aerialseg.predict import classify

            classify(args.input, raster, args.model, **_classify_options(args), client=client, confidence=None,
                     work_in=folder, on_progress=rep.progress("classify", "block" if client else "tile"))
        else:
            from aerialseg.mosaic import classify_many

            _, raster = classify_many(inputs, stage, name, args.model, _classify_options(args), client=client,
                                      work_in=folder, on_progress=rep.progress("classify", "file"))
    vectorize(raster, stage / f"{name}_features.gpkg", **_vectorize_options(args),
              on_progress=rep.progress("vectorize", "block"))


@contextlib.contextmanager
def _staging(folder: Path, name: str) -> Iterator[Path]:
    """A hidden folder in ``folder`` for a run's outputs until they are all complete; deleted afterwards."""
    import shutil
    import tempfile

    from aerialseg.scratch import remove_stale, scratch_prefix, write_error

    remove_stale(folder)
    try:
        stage = Path(tempfile.mkdtemp(prefix=scratch_prefix(f"{name}_map"), dir=folder.resolve()))
    except OSError as e:
        raise write_error(e, folder) from None
    try:
        yield stage
    except OutputError as e:  # name the output folder, not the hidden one
        raise OutputError(str(e).replace(str(stage), str(folder))) from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _output_folder(path: str) -> Path:
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


def cmd_models(args: argparse.Namespace, rep: Reporter) -> int:
    from aerialseg.runtime import MODELS_DIR, bundled_models, default_model_name

    models = bundled_models()
    if args.json:
        print(json.dumps([{"name": m.name, "path": str(m.path), "card": m.card.to_dict()} for m in models], indent=1))
        return 0
    if not models:
        print(f"no bundled models in {MODELS_DIR}")
        return 0
    default = default_model_name()
    print("--model auto (the default) picks the model whose resolution fits the input; an input without "
          f"georeferencing gets {default} unless --input-gsd gives its pixel size")
    for m in models:
        c = m.card
        gsd = f"{c.gsd_m:g} m/px" if c.gsd_m else "any resolution"
        print(f"{m.name}: {', '.join(c.class_names)}; {gsd}; tile {c.tile_size} px; {m.path}")
        if c.description:
            print(f"    {c.description}")
    return 0


def cmd_info(args: argparse.Namespace, rep: Reporter) -> int:
    from aerialseg.card import read_card
    from aerialseg.runtime import resolve_model

    card = read_card(resolve_model(args.model))
    if args.json:
        print(card.to_json())
        return 0
    rows = [("name", card.name), ("description", card.description), ("architecture", card.architecture),
            ("classes", ", ".join(f"{c.id} {c.name} {c.color}" for c in card.classes)),
            ("bands", ", ".join(map(str, card.bands))),
            ("normalisation", f"(value / {card.scale:g} - mean {list(card.mean)}) / std {list(card.std)}"),
            ("ground resolution", f"{card.gsd_m:g} m/px" if card.gsd_m else "any"),
            ("tile size / overlap", f"{card.tile_size} / {card.overlap} px"),
            ("training data", card.training_data), ("licence", card.licence),
            ("metrics", json.dumps(dict(card.metrics)) if card.metrics else "")]
    for key, value in rows:
        if value:
            print(f"{key:>20}: {value}")
    return 0


def cmd_check(args: argparse.Namespace, rep: Reporter) -> int:
    from aerialseg.checkup import environment_report

    if not args.verbose:
        log.setLevel(logging.WARNING)  # the report says which device runs; no "runtime: ..." line on stderr
    report = environment_report(args.device, train=args.train, cluster=args.cluster)
    if args.json:  # one line: the last line of stdout is the result, as in every other command
        print(json.dumps({"type": "result", **report}), flush=True)
    else:
        for key, value in report.items():
            if key not in ("ok", "problems"):
                print(f"{key:>22}: {', '.join(map(str, value)) if isinstance(value, list) else value}")
        for problem in report["problems"]:
            print(f"{'problem':>22}: {problem}")
        print(f"{'set-up':>22}: {'works' if report['ok'] else 'does NOT work'}")
    if report["ok"]:
        return 0
    problems = report["problems"]
    more = f" (and {len(problems) - 1} more problem{'s' * (len(problems) > 2)})" if len(problems) > 1 else ""
    return rep.fail(f"the set-up does not work: {problems[0]}{more}", 1)


def cmd_mounted(args: argparse.Namespace, rep: Reporter) -> int:
    return int(importlib.import_module(_MOUNTED[args.command][0]).run(args, rep) or 0)


def _choose_model(args: argparse.Namespace, inputs: list[Path] | None) -> None:
    """Replace ``--model auto`` by the bundled model that fits the (first) input's ground resolution."""
    from aerialseg.choose import resolve_auto

    names = [c for c in (getattr(args, "classes", None) or "").split(",") if c and not c.isdigit()]
    args.model = resolve_auto(args.model, inputs[0] if inputs else args.input, names, args.input_gsd)


def _classify_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"device": args.device, "tile_size": args.tile_size, "overlap": args.overlap,
            "batch_size": args.batch_size, "tta": args.tta, "resample": not args.no_resample,
            "value_range": args.value_range, "threads": args.threads, "precision": args.precision,
            "input_gsd": args.input_gsd, "output_grid": args.output_grid}


def _vectorize_options(args: argparse.Namespace) -> dict[str, Any]:
    options: dict[str, Any] = {"regularize": bool(args.regularize)}
    if args.classes:
        options["classes"] = [int(c) if c.isdigit() else c for c in args.classes.split(",")]
    if args.min_area is not None:
        options["min_area_m2"] = args.min_area
    if args.simplify is not None:
        options["simplify_m"] = args.simplify
    if args.input_gsd is not None:  # a raster without georeferencing: its pixel size (ignored otherwise)
        options["pixel_size_m"] = args.input_gsd
    return options


# ---------------------------------------------------------------- parser


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line naming the option, with status 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"aerialseg: error: {message}; see '{self.prog} --help'\n")


def int_range(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` to ``high`` (no upper bound if None)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low or (high is not None and value > high):
            limit = f"from {low} to {high}" if high is not None else f"{low} or more"
            raise argparse.ArgumentTypeError(f"expected a whole number {limit}, got {text!r}")
        return value
    return parse


def float_range(low: float, inclusive: bool = True) -> Callable[[str], float]:
    """An argparse type: a finite number at least ``low`` (above it if not ``inclusive``)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value < low or (not inclusive and value == low):
            raise argparse.ArgumentTypeError(f"expected a finite number {'>=' if inclusive else '>'} {low:g}, "
                                             f"got {text!r}")
        return value
    return parse


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The argument parser; mounted subcommands are only imported when selected."""
    parser = OneLineParser(
        prog="aerialseg", description="Land-cover mapping from aerial and satellite imagery.",
        epilog="Run 'aerialseg COMMAND --help' for the options of a command.")
    parser.add_argument("--version", action="version", version=f"aerialseg {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = _command(sub, "classify", cmd_classify, "classify an orthophoto into a land-cover class raster")
    p.add_argument("input", help="input raster (GeoTIFF, JPEG, PNG, VRT, any GDAL raster), or a folder or glob of them")
    p.add_argument("output", help="output class raster (.tif, cloud-optimised GeoTIFF); a folder for many inputs")
    _add_model_options(p)
    p.add_argument("--confidence", metavar="PATH", help="also write a per-pixel confidence raster (0-100 %%)")

    p = _command(sub, "vectorize", cmd_vectorize, "turn a class raster into polygons (GeoPackage)")
    p.add_argument("input", help="class raster written by 'aerialseg classify'")
    p.add_argument("output", help="output GeoPackage (.gpkg), one layer per class")
    _add_vector_options(p)
    p.add_argument("--input-gsd", type=float_range(0, inclusive=False), metavar="METRES",
                   help="ground size of a pixel of a class raster without georeferencing: areas in metres, not pixels")

    p = _command(sub, "map", cmd_map, "classify and vectorise in one go")
    p.add_argument("input", help="input raster, or a folder or glob of rasters (one class raster each + a VRT mosaic)")
    p.add_argument("output", help="output folder (created if missing): <name>_landcover.tif, <name>_features.gpkg")
    _add_model_options(p)
    _add_vector_options(p)

    p = _command(sub, "models", cmd_models, "list the bundled models", progress=False)
    p.add_argument("--json", action="store_true", help="print the cards as JSON")
    p = _command(sub, "info", cmd_info, "show a model card", progress=False)
    p.add_argument("model", help="a bundled model name or a model file")
    p.add_argument("--json", action="store_true", help="print the card as JSON")

    p = _command(sub, "check", cmd_check, "check the installation works: versions, GPU or CPU and why, models",
                 progress=False)
    p.add_argument("--json", action="store_true", help="print the report as one JSON line (a 'result' object)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="the device that must work: auto (CUDA if it works, else CPU), cpu, or cuda")
    p.add_argument("--train", action="store_true", help="also check the training stack (imports torch: slower)")
    p.add_argument("--cluster", action="store_true", help="also check the Dask cluster extra")

    for name, (module, help_text) in _MOUNTED.items():
        p = _command(sub, name, cmd_mounted, help_text)
        if argv and argv[0] == name:
            importlib.import_module(module).add_arguments(p)
    return parser


def _command(sub: Any, name: str, func: Callable, help_text: str, progress: bool = True) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help_text, description=help_text[0].upper() + help_text[1:] + ".")
    p.set_defaults(func=func)
    if progress:
        p.add_argument("--progress", choices=("auto", "bar", "json", "none"), default="auto",
                       help="progress display: a bar on a terminal (auto), JSON lines on stdout, or none")
        p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    p.add_argument("-v", "--verbose", action="store_true", help="more log output")
    p.add_argument("--debug", action="store_true", help="show tracebacks of internal errors")
    return p


def _add_model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", "-m", default="auto",
                   help="auto: the bundled or downloaded model whose ground resolution fits the input best (the "
                        "default model when the input has none); or a model name, an .onnx/.pt path, an https URL")
    p.add_argument("--input-gsd", type=float, metavar="METRES",
                   help="ground size of an input pixel, for images without georeferencing (drone JPGs, screenshots)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where the model runs: CUDA GPU if one works (auto), or force cpu/cuda")
    p.add_argument("--precision", choices=("auto", "fp32", "fp16", "int8"), default="auto",
                   help="int8: the model's quantised variant; fp16: float16 arithmetic (for a CUDA GPU); auto: fp16 on "
                        "a CUDA GPU, int8 on the CPU when the model card shows it at least 1.5x faster and as accurate")
    p.add_argument("--output-grid", choices=("input", "working"), default="input",
                   help="the class raster on the input's grid, or on the model's coarser working grid (same ground, "
                        "fewer pixels, faster; for inputs finer than the model)")
    p.add_argument("--tile-size", type=int_range(MIN_TILE, MAX_TILE),
                   help=f"model input tile in pixels, {MIN_TILE}-{MAX_TILE} (default: the model card's)")
    p.add_argument("--overlap", type=int_range(0, MAX_TILE // 2),
                   help="pixels shared by neighbouring tiles, at most half a tile (default: the model card's)")
    p.add_argument("--batch-size", type=int_range(1, 4096),
                   help="tiles per model call (default: 1 on the CPU, 8 on a GPU)")
    p.add_argument("--tta", choices=("none", "flip", "d4"), default="none",
                   help="test-time augmentation: flips (4x) or flips and rotations (8x); slower, smoother")
    p.add_argument("--no-resample", action="store_true",
                   help="use the input at its own resolution instead of the model's ground resolution")
    p.add_argument("--value-range", type=float_range(0, inclusive=False), metavar="MAX",
                   help="input value meaning full brightness, e.g. 255, 1 (reflectance) or 10000 (default: from "
                        "the data type and the data: uint8 as it is, float within 0..1 as reflectance, wider "
                        "data stretched)")
    p.add_argument("--threads", type=int, help="CPU threads for the model (default: all cores, shared by workers)")
    p.add_argument("--workers", type=int, help="run on a local Dask cluster of this many worker processes")
    p.add_argument("--scheduler", metavar="ADDRESS", help="run on the Dask cluster at this scheduler (tcp://host:8786)")


def _add_vector_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--classes", help="comma-separated class names or ids (default: building,road,water)")
    p.add_argument("--min-area", type=float_range(0),
                   help="drop polygons smaller than this many square metres (default 1; on rasters without "
                        "georeferencing and --input-gsd: pixels, default 16)")
    p.add_argument("--simplify", type=float_range(0), help="simplification tolerance in metres")
    p.add_argument("--regularize", action=argparse.BooleanOptionalAction, default=None,
                   help="square building outlines to right angles (map: on by default for models finer than 0.5 m)")


if __name__ == "__main__":
    sys.exit(main())
