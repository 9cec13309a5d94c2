"""Install the AerialSeg engine into a private virtual environment: plan, run pip, verify. No QGIS imports.

The engine's wheel travels inside the plugin (``engine_wheel/aerialseg-*.whl``); its dependencies come from
PyPI. The environment is made with the ``-m venv`` of a Python >= 3.10 found next to QGIS's own (on Windows
``sys.executable`` is qgis.exe, on macOS the QGIS app), so nothing is ever installed into QGIS's Python.
Everything here is plain Python so it can be tested without QGIS; ``installengine.py`` is the algorithm.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from urllib.parse import quote

WHEEL_DIR = Path(__file__).resolve().parent / "engine_wheel"
MARKER = "aerialseg-install.json"  # in the environment: what was installed, for the idempotent second run
MIN_PYTHON = (3, 10)
STOP_GRACE_S = 2.0
_PROBE = "import sys, venv, ensurepip; print('%d.%d' % sys.version_info[:2])"
_PIP = ("-m", "pip", "--disable-pip-version-check", "--no-input")


class InstallError(Exception):
    """An installation step failed; the message says what and how to fix it."""


class Cancelled(Exception):
    """The user cancelled; the pip process tree has been stopped."""


@dataclass(frozen=True)
class Plan:
    """What to install where: the wheel, the flavour (GPU or CPU), the training extras."""

    target: Path
    wheel: Path
    gpu: bool
    train: bool

    def marker(self) -> dict:
        return {"wheel": self.wheel.name, "sha256": sha256(self.wheel), "gpu": self.gpu, "train": self.train}


# ---------------------------------------------------------------- where things are


def bin_dir(env: Path, windows: bool = os.name == "nt") -> Path:
    return env / ("Scripts" if windows else "bin")


def env_python(env: Path, windows: bool = os.name == "nt") -> Path:
    return bin_dir(env, windows) / ("python.exe" if windows else "python")


def env_program(env: Path, windows: bool = os.name == "nt") -> Path:
    return bin_dir(env, windows) / ("aerialseg.exe" if windows else "aerialseg")


def shipped_wheel(folder: Path = WHEEL_DIR) -> Path | None:
    """The newest engine wheel shipped with the plugin, or None."""
    wheels = sorted(folder.glob("aerialseg-*.whl"), key=lambda p: _version_key(p.name))
    return wheels[-1] if wheels else None


def _version_key(name: str) -> tuple:
    version = name.split("-")[1] if name.count("-") >= 2 else ""
    return tuple(int(n) if n.isdigit() else -1 for n in re.split(r"[.+]", version))


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def python_candidates(platform: str, executable: str, prefix: str, base_prefix: str,
                      base_executable: str = "", on_path: Iterable[str] = ()) -> list[Path]:
    """Where a Python interpreter for ``-m venv`` may be, best first, for QGIS on ``platform`` (sys.platform).

    Windows (OSGeo4W, standalone): sys.executable is qgis-bin.exe; python.exe lies in sys.prefix or
    sys.base_prefix (…/apps/Python3xx). macOS: QGIS.app/Contents/MacOS/bin/python3. Linux: the system's.
    Last, ``on_path``: Pythons found on the PATH (for a QGIS whose own Python is older than 3.10).
    """
    names = ("python.exe", "python3.exe") if platform == "win32" else ("python3", "python")
    found = [Path(p) for p in (base_executable, executable) if p and Path(p).name.lower().startswith("python")]
    folders = [Path(p) for p in (prefix, base_prefix) if p]
    exe_dir = Path(executable).parent if executable else None
    if exe_dir is not None:
        folders.append(exe_dir)
    subs = ("", "bin") if platform == "win32" else ("bin", "")  # Windows: <prefix>/python.exe; else <prefix>/bin
    for folder in folders:
        found += [folder / sub / name for sub in subs for name in names]
    if platform == "win32":
        for folder in folders:  # OSGeo4W root: apps/Python312/python.exe
            for root in (folder, folder.parent, folder.parent.parent):
                found += sorted((root / "apps").glob("Python3*/python.exe"), reverse=True)
    elif platform == "darwin" and exe_dir is not None:
        found.append(exe_dir / "bin" / "python3")  # QGIS.app/Contents/MacOS/bin/python3
    else:
        found.append(Path("/usr/bin/python3"))
    found += [Path(p) for p in on_path if p]
    unique: list[Path] = []
    for path in found:
        if path not in unique:
            unique.append(path)
    return unique


def find_python(candidates: Iterable[Path], env: dict | None = None) -> Path:
    """The first candidate that runs, is >= 3.10 and has venv + ensurepip (to make an environment with pip)."""
    tried = []
    for path in candidates:
        if not path.is_file():
            continue
        try:
            out = subprocess.run([str(path), "-c", _PROBE], capture_output=True, text=True, timeout=60, env=env,
                                 **_no_window()).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            continue
        version = tuple(int(n) for n in out.split(".")) if re.fullmatch(r"\d+\.\d+", out) else ()
        if version >= MIN_PYTHON:
            return path
        tried.append(f"{path} ({'Python ' + out if out else 'no venv/ensurepip module'})")
    hint = " On Debian/Ubuntu: sudo apt install python3-venv." if sys.platform.startswith("linux") else ""
    raise InstallError("no Python >= 3.10 with the venv module found next to QGIS"
                       f"{' (tried: ' + ', '.join(tried) + ')' if tried else ''}.{hint} Or choose an existing "
                       "engine folder, or install Python 3.10+ and set the AerialSeg engine setting.")


def gpu_available(run: Callable = subprocess.run) -> tuple[bool, str]:
    """Whether nvidia-smi finds an NVIDIA GPU with a working driver, and why (for the log)."""
    try:
        proc = run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"], capture_output=True,
                   text=True, timeout=30, **_no_window())
    except (OSError, subprocess.SubprocessError):
        return False, "no NVIDIA driver (nvidia-smi not found)"
    lines = [ln.strip() for ln in (proc.stdout or "").splitlines() if ln.strip()]
    if proc.returncode != 0 or not lines:
        return False, f"nvidia-smi finds no working GPU (status {proc.returncode})"
    return True, f"NVIDIA GPU: {lines[0]}"


def proxy_env(enabled: bool, kind: str, host: str, port: str, user: str = "", password: str = "") -> dict:
    """HTTP(S)_PROXY for pip from QGIS's proxy settings (Settings > Options > Network), when an HTTP proxy is set.

    QGIS's 'DefaultProxy' means the system's, which pip finds by itself; SOCKS proxies are not passed on.
    """
    if not enabled or not host.strip() or kind not in ("HttpProxy", "HttpCachingProxy"):
        return {}
    login = f"{quote(user, safe='')}:{quote(password, safe='')}@" if user else ""
    url = f"http://{login}{host.strip()}{':' + str(port).strip() if str(port).strip() else ''}"
    return {"HTTP_PROXY": url, "HTTPS_PROXY": url, "http_proxy": url, "https_proxy": url}


# ---------------------------------------------------------------- what to run


def target_problem(target: Path) -> str:
    """Why ``target`` cannot take the engine ('' when it can): it must be new, empty or an environment."""
    if target.exists() and not target.is_dir():
        return f"the engine folder {target} is a file; choose a folder"
    if target.is_dir() and any(target.iterdir()) and not (target / "pyvenv.cfg").is_file():
        return f"the engine folder {target} is not empty and not a Python environment; choose a new or empty folder"
    return ""


def up_to_date(plan: Plan, windows: bool = os.name == "nt") -> bool:
    """True when the environment already holds this wheel, flavour and (at least) these extras."""
    try:
        done = json.loads((plan.target / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    want = plan.marker()
    return (env_program(plan.target, windows).is_file() and done.get("sha256") == want["sha256"]
            and done.get("gpu") == plan.gpu and (done.get("train") or not plan.train))


def install_commands(plan: Plan, base_python: Path, fresh: bool, windows: bool = os.name == "nt") -> list[list[str]]:
    """The command lines that install ``plan`` (pure: no side effects), in order.

    Fresh: ``python -m venv``; then the wheel with its dependencies (and ``[train]``). An update also
    force-reinstalls the wheel alone (pip keeps a same-version engine otherwise). GPU: onnxruntime is
    replaced by onnxruntime-gpu (same import name; reinstalled after the removal, which deletes shared files).
    """
    py = str(env_python(plan.target, windows))
    wheel = str(plan.wheel) + ("[train]" if plan.train else "")
    commands = [[str(base_python), "-m", "venv", str(plan.target)]] if fresh else []
    commands.append([py, *_PIP, "install", "--progress-bar", "off", "--upgrade", wheel])
    if not fresh:
        commands.append([py, *_PIP, "install", "--progress-bar", "off", "--force-reinstall", "--no-deps",
                         str(plan.wheel)])
    if plan.gpu:
        commands += [[py, *_PIP, "uninstall", "-y", "onnxruntime"],
                     [py, *_PIP, "install", "--progress-bar", "off", "--force-reinstall", "--no-deps",
                      "onnxruntime-gpu"],
                     [py, *_PIP, "install", "--progress-bar", "off", "onnxruntime-gpu"]]
    return commands


def write_marker(plan: Plan) -> None:
    (plan.target / MARKER).write_text(json.dumps({**plan.marker(), "plan": {k: str(v) for k, v in
                                                                            asdict(plan).items()}}, indent=1))


def clear_marker(target: Path) -> None:
    (target / MARKER).unlink(missing_ok=True)


# ---------------------------------------------------------------- running


def run_command(command: list[str], on_line: Callable[[str], None], cancelled: Callable[[], bool],
                env: dict | None = None) -> None:
    """Run ``command``, passing each output line (stdout and stderr) to ``on_line``.

    Polls ``cancelled`` ten times a second; on cancel the whole process tree is stopped and Cancelled is
    raised. A non-zero exit raises InstallError with the last lines of output.
    """
    options: dict = dict(stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         encoding="utf-8", errors="replace", env=env)
    if os.name == "nt":
        options["creationflags"] = (getattr(subprocess, "CREATE_NO_WINDOW", 0)
                                    | getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0))
    else:
        options["start_new_session"] = True  # its own process group: pip and its build children stop together
    try:
        proc = subprocess.Popen(command, **options)
    except OSError as e:
        raise InstallError(f"cannot start {command[0]}: {e}") from None
    tail: list[str] = []
    reader = threading.Thread(target=_pump, args=(proc, on_line, tail), daemon=True)
    reader.start()
    while reader.is_alive():
        if cancelled():
            kill_tree(proc)
            reader.join(timeout=5)
            raise Cancelled()
        reader.join(timeout=0.1)
    proc.stdout.close()  # type: ignore[union-attr]
    if proc.wait() != 0:
        errors = [line for line in tail if line.startswith("ERROR:")] or tail  # pip's own error lines first
        raise InstallError(f"'{describe(command)}' failed (status {proc.returncode}): " + " | ".join(errors[-3:]))


def describe(command: list[str]) -> str:
    """A short form of a command line for messages: 'pip install aerialseg-0.3.0-py3-none-any.whl'."""
    words = command[command.index("-m") + 1:] if "-m" in command else command
    verbs = [w for w in words[1:] if w in ("install", "uninstall")]
    return " ".join([words[0], *verbs[:1], Path(words[-1]).name])


def _pump(proc: subprocess.Popen, on_line: Callable[[str], None], tail: list[str]) -> None:
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        if line:
            tail.append(line)
            del tail[:-20]
            on_line(line)


def kill_tree(proc: subprocess.Popen) -> None:
    """Stop a process and all its children (pip, its build backends)."""
    if proc.poll() is not None:
        return
    if os.name == "nt":
        subprocess.run(["taskkill", "/F", "/T", "/PID", str(proc.pid)], capture_output=True, **_no_window())
    else:
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


def _no_window() -> dict:
    return {"creationflags": getattr(subprocess, "CREATE_NO_WINDOW", 0)} if os.name == "nt" else {}


# ---------------------------------------------------------------- verifying


def parse_check(stdout: str, stderr: str, returncode: int) -> tuple[bool, str]:
    """Read ``aerialseg check --json``: (works, message). Accepts JSON lines ending in a ``result`` object
    (``"ok": true|false``) and the older single JSON report; the exit status must be 0 as well."""
    result: dict = {}
    errors: list[str] = []
    for line in stdout.splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if isinstance(msg, dict) and msg.get("type") == "result":
            result = msg
        elif isinstance(msg, dict) and msg.get("type") == "error":
            errors.append(str(msg.get("message", "")))
    if not result:
        try:
            report = json.loads(stdout)
            result = {"ok": returncode == 0, **report} if isinstance(report, dict) else {}
        except ValueError:
            result = {}
    ok = returncode == 0 and bool(result.get("ok", False))
    if ok:
        return True, f"aerialseg {result.get('aerialseg', '')}, device {result.get('device', '?')}".strip()
    problems = "; ".join(map(str, result.get("problems") or []))
    message = str(result.get("message") or result.get("error") or problems or (errors[-1] if errors else "")
                  or _last_error(stderr) or f"aerialseg check failed with exit status {returncode}")
    return False, message


def check_report(stdout: str) -> dict:
    """Everything ``aerialseg check --json`` reported, as one dict: the older single JSON object, or the JSON lines'
    objects merged in order (the ``result`` line last)."""
    try:
        whole = json.loads(stdout)
        return whole if isinstance(whole, dict) else {}
    except ValueError:
        pass
    report: dict = {}
    for line in stdout.splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if isinstance(msg, dict):
            report.update(msg)
    return report


def _last_error(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for ln in reversed(lines):
        if ln.startswith("aerialseg: error:"):
            return ln[len("aerialseg: error:"):].strip()
    return lines[-1] if lines else ""
