"""What the command line shows: a progress bar, JSON lines on stdout, or nothing; logs; the result; errors.

Under ``--progress json`` stdout carries JSON lines only (``progress``, ``log``, then one ``result`` or one
``error``; docs/json-stream.md); otherwise results are text on stdout and logs and bars go to stderr.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aerialseg.errors import Cancelled

if TYPE_CHECKING:
    from tqdm import tqdm

log = logging.getLogger("aerialseg")
CANCELLED = "cancelled; no output was written"


def ignore_signals() -> None:
    """Ignore SIGINT and SIGTERM from here on (a clean-up or a final move must not be interrupted)."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_IGN)


def silence_native_stderr() -> None:
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


def stdout_gone() -> None:
    """The reader of stdout went away: send stdout to the null device (no second error when Python flushes)."""
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


class Reporter:
    """Progress, logs and results for one run: a tqdm bar, JSON lines, or nothing."""

    def __init__(self, mode: str, verbose: bool = False, quiet: bool = False) -> None:
        """``quiet``: without ``verbose``, stderr gets warnings and errors only (JSON lines keep info)."""
        if mode == "auto":
            mode = "bar" if sys.stderr.isatty() else "none"
        self.mode, self._stage, self._started = mode, "", time.monotonic()
        self._percent: float | None = None  # of the last progress line of the stage
        self._bar: tqdm | None = None
        self.finished = False  # a result line was written: the stream is complete
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
        percent = round(100 * done / max(total, 1), 1)
        if stage != self._stage:
            self._stage, self._started, self._percent = stage, time.monotonic(), None
        elif percent == self._percent and done < total:
            return  # at most one line per 0.1 %: a raster of 60,000 tiles gives 1,000 lines, not 60,000
        self._percent = percent
        elapsed = max(time.monotonic() - self._started, 1e-6)
        rate = done / elapsed if elapsed > 0.5 else None  # too early for a meaningful rate
        eta = (total - done) / rate if rate else None
        self.emit({"type": "progress", "stage": stage, "unit": unit, "done": done, "total": total,
                   "percent": percent, "rate": None if rate is None else round(rate, 3),
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
            ignore_signals()
            stdout_gone()  # no more write errors
            raise Cancelled("the process reading the progress went away; stopped, no output written") from None

    def result(self, text: str | None = None, /, **outputs: Any) -> None:
        """Report the outputs of a successful run: the ``result`` line under JSON, else ``text`` on stdout.

        Paths become strings. The outputs are complete and in place: a reader gone by now cancels nothing.
        """
        self._close_bar()
        self.finished = True
        if self.mode == "json":
            with contextlib.suppress(Cancelled):
                self.emit({"type": "result", **{k: _plain(v) for k, v in outputs.items()}})
        elif text is not None:
            print(text, flush=True)

    def fail(self, message: str, status: int) -> int:
        """Report an error in one line (and as the last JSON line, unless a result ended the stream)."""
        self._close_bar()
        if self.mode == "json" and not self.finished:
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


def _plain(value: Any) -> Any:
    """``value`` with paths as strings, in lists and dicts too (JSON has no paths)."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


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
