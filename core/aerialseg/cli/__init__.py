"""The ``aerialseg`` command line: one module per command, like rasterio's ``rio``.

On a terminal it shows a progress bar (tiles/s, ETA); with ``--progress json`` it prints one JSON
object per line on stdout (``progress``, ``log``, then one ``result`` or ``error``: docs/json-stream.md),
which the QGIS plugin reads. Errors a user can cause print one line on stderr and exit with status 1;
no traceback.
"""

from __future__ import annotations

import argparse
import signal
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from aerialseg._version import __version__
from aerialseg.cli import check, classify, evaluate, export, info, models, train, vectorize
from aerialseg.cli import map as map_command
from aerialseg.cli.options import OneLineParser
from aerialseg.cli.report import CANCELLED, Reporter, ignore_signals, silence_native_stderr, stdout_gone
from aerialseg.errors import AerialSegError, Cancelled, MissingExtra

COMMANDS = (classify, vectorize, map_command, models, info, check, train, evaluate, export)
MOUNTED = (train, export)  # they import torch when chosen (a missing extra: one line at once)
_interrupted = False  # set by the first SIGINT/SIGTERM


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
    if command_line and not args.debug:
        silence_native_stderr()
    warnings.filterwarnings("ignore", category=UserWarning, module="rasterio")  # we log our own, clearer ones
    reporter = Reporter(args.progress, args.verbose, quiet=args.command != "train")  # train's log: its report
    try:
        return _run(args, reporter)
    finally:
        reporter.close()


def _run(args: argparse.Namespace, reporter: Reporter) -> int:
    """Run the chosen command; every failure becomes one line and an exit status."""
    try:
        return int(args.func(args, reporter) or 0)
    except Cancelled as e:
        return reporter.fail(str(e), 130)
    except KeyboardInterrupt:
        return reporter.fail(CANCELLED, 130)
    except AerialSegError as e:
        return reporter.fail(str(e), 1)
    except BrokenPipeError:  # the reader of stdout went away (aerialseg models | head): not an error of ours
        stdout_gone()
        return 0
    except Exception as e:  # noqa: BLE001  anything else is a bug: say so in one line
        if _interrupted:  # e.g. an ImportError from an extension module interrupted while it loaded
            return reporter.fail(CANCELLED, 130)
        if args.debug:
            raise
        return reporter.fail(f"internal error ({type(e).__name__}: {e}); rerun with --debug and report it", 3)


def _raise_interrupt(signum: int, frame: Any) -> None:
    global _interrupted
    _interrupted = True
    ignore_signals()  # a second signal must not interrupt the clean-up the first one starts
    raise KeyboardInterrupt


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The argument parser; a mounted command's module is imported only when ``argv`` chooses it."""
    parser = OneLineParser(
        prog="aerialseg", description="Land-cover mapping from aerial and satellite imagery.",
        epilog="Run 'aerialseg COMMAND --help' for the options of a command.")
    parser.add_argument("--version", action="version", version=f"aerialseg {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        if command in MOUNTED:
            command.add_parser(sub, selected=bool(argv) and argv[0] == command.MODULE.rsplit(".", 1)[1])
        else:
            command.add_parser(sub)
    return parser


if __name__ == "__main__":
    sys.exit(main())
