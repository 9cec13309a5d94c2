"""Find the AerialSeg engine and run its command line out of process.

QGIS's own Python never imports the engine (nor numpy 2, torch, onnxruntime or a second GDAL): the
plugin starts ``aerialseg <command> ... --progress json`` in the engine's own Python environment,
the way QGIS's GDAL, GRASS and OTB providers run their tools, and turns the JSON lines the engine
prints (``progress``, ``log``, ``result``, ``error``) into ``QgsProcessingFeedback`` calls.
"""

import collections
import json
import os
import queue
import re
import shlex
import shutil
import subprocess
import threading
import time
from pathlib import Path

from qgis.core import QgsProcessingException, QgsSettings

ENV_VAR = "AERIALSEG_ENGINE"
SETTING_NAME = "AERIALSEG_ENGINE"
SETTING_KEY = "Processing/Configuration/" + SETTING_NAME
SCHEDULER_SETTING = "AERIALSEG_SCHEDULER"  # a Dask scheduler address: runs go to that cluster
REPO_ROOT = Path(__file__).resolve().parent.parent  # the repository, when the plugin is (linked) inside it
_BIN, _EXE = ("Scripts", "aerialseg.exe") if os.name == "nt" else ("bin", "aerialseg")
# QGIS's environment describes QGIS's Python and GDAL; the engine brings its own.
_FOREIGN_ENV = ("PYTHONHOME", "PYTHONPATH", "PYTHONSTARTUP", "PYTHONEXECUTABLE", "GDAL_DATA", "GDAL_DRIVER_PATH",
                "PROJ_LIB", "PROJ_DATA")
CANCELLED = "Cancelled: the AerialSeg engine was stopped before it finished and removed its partial outputs."
STOP_GRACE_S = 2.0  # after SIGTERM the engine removes its partial outputs; then it is killed

INSTALLER = "aerialseg:installengine"
INSTALL_HELP = (
    "Install it from QGIS: Processing Toolbox > AerialSeg > Set-up > 'Install or update the AerialSeg engine' "
    f"({INSTALLER}; also Plugins > AerialSeg > Install engine…, or 'qgis_process run {INSTALLER}'). It creates "
    "the engine's own Python environment; QGIS's Python is not changed."
)


def configured_engine() -> str:
    """The engine location from the provider setting ('' when not set)."""
    value = QgsSettings().value(SETTING_KEY, "")
    return str(value or "").strip()


def configured_scheduler() -> str:
    """The Dask scheduler address from the provider setting ('' when not set: run on this machine)."""
    value = QgsSettings().value("Processing/Configuration/" + SCHEDULER_SETTING, "")
    return str(value or "").strip()


def record_engine(location: Path) -> None:
    """Make ``location`` (an engine program or environment folder) the provider setting, saved in the profile."""
    QgsSettings().setValue(SETTING_KEY, str(location))
    try:  # keep the Processing options dialog in step when it is loaded
        from processing.core.ProcessingConfig import ProcessingConfig

        ProcessingConfig.setSettingValue(SETTING_NAME, str(location))
    except (ImportError, KeyError, AttributeError):
        pass


def find_engine() -> Path:
    """The ``aerialseg`` program: $AERIALSEG_ENGINE, the provider setting, this repository's .venv, the PATH.

    A location that is given explicitly (environment or setting) but is wrong is an error, never
    silently skipped. Each location may be the program itself or a folder holding bin/aerialseg or
    .venv/bin/aerialseg (Scripts\\aerialseg.exe on Windows).
    """
    setting = "the AerialSeg engine setting (Settings > Options > Processing > Providers)"
    for value, origin in ((os.environ.get(ENV_VAR, "").strip(), f"the environment variable {ENV_VAR}"),
                          (configured_engine(), setting)):
        if value:
            found = _program_in(Path(value).expanduser())
            if found is None:
                raise QgsProcessingException(f"AerialSeg engine not found: {origin} is '{value}', which is not the "
                                             f"aerialseg program nor a folder with {_BIN}/{_EXE}. {INSTALL_HELP}")
            return found
    found = _program_in(REPO_ROOT / ".venv" / _BIN / _EXE)
    on_path = shutil.which("aerialseg")
    if found is None and on_path:
        found = Path(on_path)
    if found is None:
        raise QgsProcessingException(f"AerialSeg engine not found (looked at ${ENV_VAR}, the provider setting, "
                                     f"{REPO_ROOT / '.venv' / _BIN / _EXE} and the PATH). {INSTALL_HELP}")
    return found


def _program_in(path: Path) -> "Path | None":
    for candidate in (path, path / _BIN / _EXE, path / ".venv" / _BIN / _EXE):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate.absolute()
    return None


def engine_environment() -> dict:
    """The environment for the engine: ours without QGIS's Python and GDAL settings."""
    env = {k: v for k, v in os.environ.items() if k not in _FOREIGN_ENV}
    env.update(PYTHONIOENCODING="utf-8", PYTHONUNBUFFERED="1")
    return env


def start(command: list, **kwargs) -> subprocess.Popen:
    """Start a command with the engine's environment (pipes for its output, no console window on Windows).

    If QGIS or qgis_process dies, the engine's next progress line hits the closed pipe and it stops, removing its
    partial outputs, as on a cancel. (No parent-death signal on top: a signal landing during that clean-up would
    interrupt it.)
    """
    options = dict(stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                   encoding="utf-8", errors="replace", env=engine_environment())
    if os.name == "nt":
        options["creationflags"] = getattr(subprocess, "CREATE_NO_WINDOW", 0)
    options.update(kwargs)
    return subprocess.Popen(command, **options)


def run_json(args: list, timeout: float = 60.0) -> object:
    """Run a quick engine command that prints JSON (``models --json``) and return the parsed output."""
    engine = find_engine()
    proc = start([str(engine), *map(str, args)])
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise QgsProcessingException(f"AerialSeg: '{engine} {' '.join(map(str, args))}' did not answer in "
                                     f"{timeout:g} s") from None
    if proc.returncode != 0:
        raise QgsProcessingException(_failure(engine, err, proc.returncode))
    return json.loads(out)


def run_engine(args: list, feedback, span: tuple = (0.0, 100.0), progress_pattern: str = "",
               stages: "dict | None" = None) -> dict:
    """Run ``aerialseg <args> --progress json``, reporting into ``feedback``; return the engine's result line.

    Progress maps onto ``span`` (percent of the algorithm's bar), or onto ``stages[stage]`` for the stages
    named there (``map``: classify, then vectorize); ``progress_pattern`` (a regex with two groups, done and
    total) also reads progress from log lines. Cancelling ``feedback`` terminates the engine (it removes its
    partial outputs), kills it if it has not stopped after two seconds, and raises QgsProcessingException;
    so does an engine error, with the engine's one-line message.
    """
    command = [str(find_engine()), *map(str, args), "--progress", "json"]
    feedback.pushCommandInfo(subprocess.list2cmdline(command) if os.name == "nt" else shlex.join(command))
    return _Run(command, feedback, span, progress_pattern, stages).wait()


class _Run:
    """One engine process: reader threads feed a queue that the calling thread drains."""

    def __init__(self, command: list, feedback, span: tuple, progress_pattern: str = "",
                 stages: "dict | None" = None) -> None:
        self.feedback, self.span, self.stages = feedback, span, stages or {}
        self.pattern = re.compile(progress_pattern) if progress_pattern else None
        self.result, self.error, self._text_step = {}, "", None
        self.stderr = collections.deque(maxlen=40)
        self.lines: queue.Queue[str | None] = queue.Queue()
        try:
            self.proc = start(command)
        except OSError as e:
            message = f"AerialSeg: cannot start the engine {command[0]}: {e}. {INSTALL_HELP}"
            raise QgsProcessingException(message) from None
        self._readers = [threading.Thread(target=self._pump, args=(self.proc.stdout, self.lines.put), daemon=True),
                         threading.Thread(target=self._pump, args=(self.proc.stderr, self.stderr.append), daemon=True)]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _pump(stream, put) -> None:
        for line in stream:
            put(line.rstrip("\r\n"))
        put(None)

    def wait(self) -> dict:
        while True:
            if self.feedback.isCanceled():
                self.stop()
                raise QgsProcessingException(CANCELLED)
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                continue
            if line is None:
                break
            self._handle(line)
        while self.proc.poll() is None:  # stdout closed; the process is exiting
            if self.feedback.isCanceled():
                self.stop()
                raise QgsProcessingException(CANCELLED)
            time.sleep(0.05)
        self._close()
        if self.proc.returncode != 0:
            raise QgsProcessingException(f"AerialSeg: {self.error}" if self.error else
                                         _failure(self.proc.args[0], self.stderr, self.proc.returncode))
        return self.result

    def stop(self) -> None:
        """Terminate the engine (it cleans up), kill it if it is still running after STOP_GRACE_S."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._close()
        self.feedback.pushWarning("AerialSeg engine stopped.")

    def _close(self) -> None:
        """Let the readers drain what the exited process left in its pipes, then close them."""
        for reader, stream in zip(self._readers, (self.proc.stdout, self.proc.stderr)):
            reader.join(timeout=2)
            if not reader.is_alive():
                stream.close()

    def _handle(self, line: str) -> None:
        try:
            msg = json.loads(line)
            kind = msg.get("type")
        except (ValueError, AttributeError):
            if line.strip():
                self.feedback.pushConsoleInfo(line)
            return
        if kind == "progress":
            self._progress(msg)
        elif kind == "log":
            message = str(msg.get("message", ""))
            self._log(str(msg.get("level", "INFO")).upper(), message)
            match = self.pattern.search(message) if self.pattern else None
            if match:
                done, total = int(match.group(1)), max(int(match.group(2)), 1)
                self._progress({"done": done, "total": total, "percent": 100.0 * done / total})
        elif kind == "result":
            self.result = {k: v for k, v in msg.items() if k != "type"}
        elif kind == "error":
            self.error = str(msg.get("message", ""))

    def _progress(self, msg: dict) -> None:
        start, end = self.stages.get(msg.get("stage"), self.span)
        percent = min(max(float(msg.get("percent") or 0.0), 0.0), 100.0)
        self.feedback.setProgress(start + (end - start) * percent / 100.0)
        step = (msg.get("stage"), int(percent // 10))  # a progress text per stage and per 10 %, with the ETA
        if step != self._text_step:
            self._text_step = step
            eta, stage, unit = msg.get("eta_s"), msg.get("stage") or "", msg.get("unit") or ""
            left = f", about {eta:.0f} s left" if isinstance(eta, (int, float)) and percent < 100 else ""
            self.feedback.setProgressText(f"{stage + ': ' if stage else ''}{percent:.0f} % ({msg.get('done')}/"
                                          f"{msg.get('total')}{' ' + unit + 's' if unit else ''}){left}")

    def _log(self, level: str, message: str) -> None:
        if level in ("ERROR", "CRITICAL"):
            self.feedback.reportError(message, False)
        elif level == "WARNING":
            self.feedback.pushWarning(message)
        elif level == "DEBUG":
            self.feedback.pushDebugInfo(message)
        else:
            self.feedback.pushInfo(message)


def _failure(program, stderr, status: int) -> str:
    """The message for an engine that failed without its own JSON error: its one-line error, or, when it
    crashed (a Python traceback: a broken environment), that it is broken and how to reinstall it."""
    lines = stderr.splitlines() if isinstance(stderr, str) else list(stderr)
    last = _last_error(lines) or f"the engine failed with exit status {status}"
    if any("Traceback (most recent call last)" in line for line in lines):
        return f"AerialSeg engine {program} is broken: {last}. Reinstall or update it: {INSTALL_HELP}"
    return f"AerialSeg: {last}"


def _last_error(lines) -> str:
    """The engine's one-line error from its stderr (``aerialseg: error: ...``), else the last line."""
    text = [ln.strip() for ln in (lines.splitlines() if isinstance(lines, str) else lines) if ln and ln.strip()]
    for ln in reversed(text):
        for prefix in ("aerialseg: error:", "error:"):
            if ln.startswith(prefix):
                return ln[len(prefix):].strip()
    return text[-1] if text else ""
