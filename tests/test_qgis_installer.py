"""The engine installer of the QGIS plugin: its plain-Python core (aerialseg_qgis/installer.py) and the plugin ZIP.

The core is tested with real processes (a Python that is too old, an nvidia-smi that fails, a pip-like
process tree that is cancelled); the end-to-end run through qgis_process is in test_qgis_install_e2e.py.
"""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from aerialseg_qgis import installer as ins  # noqa: E402  plain Python: no QGIS needed


def _script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def wheel(tmp_path) -> Path:
    path = tmp_path / "aerialseg-0.3.0-py3-none-any.whl"
    path.write_bytes(b"wheel 1")
    return path


# ---------------------------------------------------------------- command lines


def test_fresh_cpu_install_makes_a_venv_then_installs_the_wheel(tmp_path, wheel):
    plan = ins.Plan(tmp_path / "env", wheel, gpu=False, train=False)
    commands = ins.install_commands(plan, Path("/usr/bin/python3"), fresh=True, windows=False)
    py = str(tmp_path / "env" / "bin" / "python")
    assert commands[0] == ["/usr/bin/python3", "-m", "venv", str(tmp_path / "env")]
    assert commands[1][:3] == [py, "-m", "pip"] and commands[1][-1] == str(wheel)
    assert "install" in commands[1] and "--upgrade" in commands[1]
    assert len(commands) == 2 and not any("onnxruntime" in " ".join(c) for c in commands)


def test_training_extras_and_windows_paths(tmp_path, wheel):
    plan = ins.Plan(tmp_path / "env", wheel, gpu=False, train=True)
    commands = ins.install_commands(plan, Path("C:/OSGeo4W/apps/Python312/python.exe"), fresh=True, windows=True)
    assert commands[1][0] == str(tmp_path / "env" / "Scripts" / "python.exe")
    assert commands[1][-1] == f"{wheel}[train]"


def test_gpu_flavour_swaps_onnxruntime_for_onnxruntime_gpu(tmp_path, wheel):
    plan = ins.Plan(tmp_path / "env", wheel, gpu=True, train=False)
    lines = [" ".join(c[1:]) for c in ins.install_commands(plan, Path("python3"), fresh=True, windows=False)]
    uninstall = next(i for i, c in enumerate(lines) if "uninstall -y onnxruntime" in c)
    assert uninstall > next(i for i, c in enumerate(lines) if c.endswith(str(wheel)))  # after the engine's deps
    assert lines[uninstall + 1].endswith("--force-reinstall --no-deps onnxruntime-gpu")  # the removal broke it
    assert lines[-1].endswith("install --progress-bar off onnxruntime-gpu")  # and its dependencies


def test_an_update_reinstalls_the_engine_without_a_new_venv(tmp_path, wheel):
    plan = ins.Plan(tmp_path / "env", wheel, gpu=False, train=False)
    commands = ins.install_commands(plan, Path("python3"), fresh=False, windows=False)
    assert not any("venv" in c for c in commands)
    assert commands[-1][-3:] == ["--force-reinstall", "--no-deps", str(wheel)]


def test_describe_names_the_step():
    assert ins.describe(["/e/bin/python", "-m", "pip", "--no-input", "install", "--upgrade", "/x/a-1.whl"]) == \
        "pip install a-1.whl"
    assert ins.describe(["/usr/bin/python3", "-m", "venv", "/tmp/env"]) == "venv env"


# ---------------------------------------------------------------- finding a Python for the venv


def test_windows_candidates_find_osgeo4w_python_not_qgis_exe(tmp_path):
    root = tmp_path / "OSGeo4W"
    python = root / "apps" / "Python312" / "python.exe"
    python.parent.mkdir(parents=True)
    python.touch()
    found = ins.python_candidates("win32", str(root / "bin" / "qgis-bin.exe"), str(root / "apps" / "Python312"),
                                  str(root / "apps" / "Python312"))
    assert found[0] == python
    assert not [p for p in found if p.name.startswith("qgis")]
    standalone = ins.python_candidates("win32", "C:/QGIS/bin/qgis-bin.exe", "C:/QGIS/apps/Python39",
                                       "C:/QGIS/apps/Python39", "C:/QGIS/apps/Python39/python.exe")
    assert standalone[0] == Path("C:/QGIS/apps/Python39/python.exe")
    with_path = ins.python_candidates("win32", "C:/QGIS/bin/qgis-bin.exe", "C:/QGIS/apps/Python39",
                                      "C:/QGIS/apps/Python39", on_path=["C:/Python312/python.exe", ""])
    assert with_path[-1] == Path("C:/Python312/python.exe")  # QGIS's own 3.9 is too old: a python.org one


def test_macos_and_linux_candidates():
    app = "/Applications/QGIS.app/Contents"
    mac = ins.python_candidates("darwin", f"{app}/MacOS/QGIS", f"{app}/Frameworks/Python.framework/Versions/3.9",
                                f"{app}/Frameworks/Python.framework/Versions/3.9")
    assert Path(f"{app}/MacOS/bin/python3") in mac
    assert Path(f"{app}/Frameworks/Python.framework/Versions/3.9/bin/python3") in mac
    linux = ins.python_candidates("linux", "/usr/bin/qgis_process.bin", "/usr", "/usr")
    assert linux[0] == Path("/usr/bin/python3") and Path("/usr/bin/qgis_process.bin") not in linux


def test_find_python_skips_missing_and_too_old_interpreters(tmp_path):
    old = _script(tmp_path / "python3.9", "echo 3.9")
    assert ins.find_python([tmp_path / "missing", old, Path(sys.executable)]) == Path(sys.executable)
    with pytest.raises(ins.InstallError, match=r"no Python >= 3.10 .*python3.9 \(Python 3.9\)"):
        ins.find_python([tmp_path / "missing", old])


# ---------------------------------------------------------------- GPU detection with nvidia-smi


@pytest.mark.parametrize(("body", "gpu", "why"), [  # the first line: what an H100 machine's nvidia-smi prints
    ("echo 'NVIDIA H100 80GB HBM3, 580.159.04'", True, "NVIDIA GPU: NVIDIA H100"),
    ("echo 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver' >&2; exit 9", False,
     "no working GPU (status 9)"),
    (None, False, "nvidia-smi not found"),
])
def test_gpu_flavour_only_with_a_working_driver(tmp_path, monkeypatch, body, gpu, why):
    if body is not None:
        _script(tmp_path / "nvidia-smi", body)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin" if body else str(tmp_path))
    found, reason = ins.gpu_available()
    assert found is gpu and why in reason


def test_qgis_http_proxy_is_passed_to_pip():
    env = ins.proxy_env(True, "HttpProxy", "proxy.corp.example", "3128", "ann", "p@ss:w")
    assert env["HTTPS_PROXY"] == env["HTTP_PROXY"] == "http://ann:p%40ss%3Aw@proxy.corp.example:3128"
    assert ins.proxy_env(True, "HttpCachingProxy", "10.0.0.1", "")["https_proxy"] == "http://10.0.0.1"
    assert ins.proxy_env(False, "HttpProxy", "proxy", "3128") == {}
    assert ins.proxy_env(True, "DefaultProxy", "proxy", "3128") == {}  # the system's: pip finds it itself
    assert ins.proxy_env(True, "Socks5Proxy", "proxy", "1080") == {}


# ---------------------------------------------------------------- target folder and the idempotent second run


def test_target_must_be_new_empty_or_an_environment(tmp_path):
    assert ins.target_problem(tmp_path / "new") == ""
    (tmp_path / "empty").mkdir()
    assert ins.target_problem(tmp_path / "empty") == ""
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "thesis.docx").write_text("mine")
    assert "not empty and not a Python environment" in ins.target_problem(tmp_path / "docs")
    (tmp_path / "docs" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    assert ins.target_problem(tmp_path / "docs") == ""
    (tmp_path / "file").write_text("x")
    assert "is a file" in ins.target_problem(tmp_path / "file")


def test_up_to_date_only_for_the_same_wheel_flavour_and_extras(tmp_path, wheel):
    env = tmp_path / "env"
    plan = ins.Plan(env, wheel, gpu=False, train=True)
    assert not ins.up_to_date(plan, windows=False)  # nothing there
    (env / "bin").mkdir(parents=True)
    (env / "bin" / "aerialseg").touch()
    ins.write_marker(plan)
    assert ins.up_to_date(plan, windows=False)
    assert ins.up_to_date(ins.Plan(env, wheel, gpu=False, train=False), windows=False)  # training stays: fine
    assert not ins.up_to_date(ins.Plan(env, wheel, gpu=True, train=True), windows=False)
    wheel.write_bytes(b"wheel 2, rebuilt")
    assert not ins.up_to_date(plan, windows=False)
    ins.clear_marker(env)
    assert not (env / ins.MARKER).exists()


# ---------------------------------------------------------------- reading aerialseg check --json


def test_check_result_line_decides():
    ok_lines = '{"type": "log", "message": "x"}\n{"type": "result", "ok": true, "aerialseg": "0.4.0", "device": "cpu"}'
    assert ins.parse_check(ok_lines, "", 0) == (True, "aerialseg 0.4.0, device cpu")
    bad = '{"type": "result", "ok": false, "message": "the default model dubai is missing"}'
    assert ins.parse_check(bad, "", 1) == (False, "the default model dubai is missing")
    error_line = '{"type": "error", "message": "no model can be loaded"}\n{"type": "result", "ok": false}'
    assert ins.parse_check(error_line, "", 1) == (False, "no model can be loaded")
    assert ins.parse_check('{"type": "result", "ok": true}', "", 3)[0] is False  # the exit status counts too


def test_check_older_single_report_and_crashes():
    report = json.dumps({"aerialseg": "0.3.0", "device": "cpu", "models": []}, indent=1)
    assert ins.parse_check(report, "", 0) == (True, "aerialseg 0.3.0, device cpu")
    assert ins.parse_check(report, "", 1)[0] is False
    crash = "Traceback (most recent call last):\n...\nModuleNotFoundError: No module named 'rasterio'"
    assert ins.parse_check("", crash, 1) == (False, "ModuleNotFoundError: No module named 'rasterio'")
    assert ins.parse_check("", "aerialseg: error: onnxruntime is not installed\n", 1) == \
        (False, "onnxruntime is not installed")


def test_check_report_merges_json_lines_or_takes_the_single_report():
    lines = '{"type": "log", "message": "x", "python": "3.12"}\n{"type": "result", "ok": true, "device": "cuda"}'
    assert ins.check_report(lines) == {"type": "result", "message": "x", "python": "3.12", "ok": True,
                                       "device": "cuda"}
    assert ins.check_report(json.dumps({"device": "cpu"}, indent=1)) == {"device": "cpu"}
    assert ins.check_report("not json") == {}


# ---------------------------------------------------------------- running pip: streaming, failure, cancel


def test_run_command_streams_lines_and_reports_failure():
    lines: list[str] = []
    ins.run_command([sys.executable, "-c", "import sys; print('Collecting a'); print('oops', file=sys.stderr)"],
                    lines.append, lambda: False)
    assert lines == ["Collecting a", "oops"]
    with pytest.raises(ins.InstallError, match=r"failed \(status 3\): ERROR: No matching distribution"):
        ins.run_command([sys.executable, "-c", "print('ERROR: No matching distribution'); raise SystemExit(3)"],
                        lines.append, lambda: False)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[1].split()[0] == "Z")


@pytest.mark.skipif(os.name == "nt", reason="process groups: POSIX")
def test_cancel_kills_the_whole_process_tree():
    """Like pip with a build backend: a parent and a child; cancelling stops both, quickly."""
    code = ("import subprocess, sys, time; c = subprocess.Popen([sys.executable, '-c', 'import time; "
            "time.sleep(60)']); print('child', c.pid, flush=True); time.sleep(60)")
    pids: list[int] = []
    cancel = threading.Event()

    def on_line(line: str) -> None:
        pids.append(int(line.split()[1]))
        cancel.set()

    start = time.monotonic()
    with pytest.raises(ins.Cancelled):
        ins.run_command([sys.executable, "-c", code], on_line, cancel.is_set)
    assert time.monotonic() - start < 20
    deadline = time.monotonic() + 5
    while _alive(pids[0]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pids[0]), "pip's child process outlived the cancel"


# ---------------------------------------------------------------- the plugin ZIP


@pytest.fixture(scope="module")
def plugin_zip(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("zip") / "aerialseg_qgis.zip"
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "package_plugin.py"), "--output", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.mark.slow
def test_plugin_zip_ships_the_engine_wheel_within_the_repository_rules(plugin_zip):
    assert plugin_zip.stat().st_size <= 25 * 1024 * 1024
    with zipfile.ZipFile(plugin_zip) as zf:
        names = zf.namelist()
        wheels = [n for n in names if n.startswith("aerialseg_qgis/engine_wheel/")]
        assert len(wheels) == 1 and wheels[0].endswith("-py3-none-any.whl")
        with zf.open(wheels[0]) as raw, zipfile.ZipFile(raw) as wheel:
            inside = wheel.namelist()
        meta_text = zf.read("aerialseg_qgis/metadata.txt").decode()
    binaries = (".so", ".pyd", ".dll", ".dylib", ".exe", ".pyc", ".o", ".a")
    assert not [n for n in names + inside if n.lower().endswith(binaries)]
    assert "aerialseg/cli/__init__.py" in inside and "aerialseg_qgis/installer.py" in names
    assert "aerialseg_qgis/installengine.py" in names
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(meta_text)
    meta = parser["general"]
    for key in ("name", "qgisMinimumVersion", "description", "about", "version", "author", "email", "repository",
                "tracker", "homepage"):
        assert meta.get(key, "").strip(), key
    assert "@" in meta["email"] and meta["hasProcessingProvider"] == "yes"
    assert all(meta[k].startswith("https://") for k in ("repository", "tracker", "homepage"))
    assert "FILL-IN" in meta_text.split("[general]")[1].split("email=")[0]  # placeholders are marked for maintainers
    assert "Install or update the AerialSeg engine" in meta["about"]


@pytest.mark.slow
def test_packaging_refuses_a_compiled_wheel(tmp_path):
    bad = tmp_path / "aerialseg-0.3.0-cp311-cp311-linux_x86_64.whl"
    with zipfile.ZipFile(bad, "w") as zf:
        zf.writestr("aerialseg/_fast.so", b"\x7fELF")
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "package_plugin.py"), "--output",
                           str(tmp_path / "p.zip"), "--wheel", str(bad)], capture_output=True, text=True)
    assert proc.returncode != 0 and "pure-Python" in proc.stderr and not (tmp_path / "p.zip").exists()


@pytest.mark.slow
def test_engine_wheel_is_built_from_a_clean_copy(tmp_path, monkeypatch):
    """setuptools reuses build/lib: a module deleted from core/ but left there must not ship in the wheel."""
    sys.path.insert(0, str(REPO / "scripts"))
    import package_plugin

    repo = tmp_path / "repo"
    shutil.copytree(REPO / "core", repo / "core", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(REPO / name, repo / name)
    (repo / "build" / "lib" / "aerialseg").mkdir(parents=True)
    (repo / "build" / "lib" / "aerialseg" / "deleted_module.py").write_text("STALE = True\n")
    monkeypatch.setattr(package_plugin, "ROOT", repo)
    (tmp_path / "out").mkdir()
    wheel = package_plugin.engine_wheel(tmp_path / "out")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    assert "aerialseg/cli/__init__.py" in names and "aerialseg/deleted_module.py" not in names
