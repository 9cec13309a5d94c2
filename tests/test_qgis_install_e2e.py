"""A new QGIS user: a fresh profile with only the plugin ZIP, no engine, no repository on any path.

Real qgis_process, real venv, real pip (PyPI; pip's cache makes a second test run quicker): install the
engine with aerialseg:installengine, run it again (nothing to do), then map a GeoTIFF with the default
model. Also: the message without an engine, cancelling an install, the menu entry, the first-run hint and
the model list that appears once an engine exists (in QGIS's own Python, with QGIS's window interface
stubbed: there is no QGIS window on a server).
"""

from __future__ import annotations

import http.server
import json
import sqlite3
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest

from rasters import scene, write_raster
from test_qgis_plugin import ENGINE, QGIS_PROCESS, QGIS_PYTHON, _qgis_env, qgis_python

pytestmark = [pytest.mark.qgis, pytest.mark.slow]  # runs qgis_process

REPO = Path(__file__).resolve().parents[1]
INSTALLER = "aerialseg:installengine"


@pytest.fixture(scope="module")
def zip_path(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("zip") / "aerialseg_qgis.zip"
    subprocess.run([sys.executable, str(REPO / "scripts" / "package_plugin.py"), "--output", str(out)], check=True,
                   capture_output=True)
    return out


def fresh_profile(root: Path, zip_path: Path) -> dict[str, str]:
    """A QGIS profile holding only the unpacked plugin ZIP; no engine anywhere (PATH of the system only)."""
    if not QGIS_PROCESS or not Path(QGIS_PYTHON).is_file():
        pytest.fail("QGIS is not installed (no qgis_process / QGIS Python): run `bash setup.sh test`")
    plugins = root / "cfg" / "profiles" / "default" / "python" / "plugins"
    plugins.mkdir(parents=True)
    zipfile.ZipFile(zip_path).extractall(plugins)
    (plugins.parents[1] / "QGIS").mkdir()
    (plugins.parents[1] / "QGIS" / "QGIS3.ini").write_text("[PythonPlugins]\naerialseg_qgis=true\n")
    return _qgis_env(root / "cfg", PATH="/usr/bin:/bin")


def run(env: dict[str, str], cwd: Path, algorithm: str, *params: str, timeout: float = 1800, json_out: bool = True):
    """qgis_process run (with --json: the answer on stdout; without: the log on stdout, as a user sees it)."""
    return subprocess.run([QGIS_PROCESS, *(["--json"] if json_out else []), "run", algorithm, "--", *params],
                          env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def ok(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout)


def du(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink()) / 1e6


def test_without_an_engine_map_says_to_run_the_installer(tmp_path, zip_path):
    env = fresh_profile(tmp_path, zip_path)
    tif = write_raster(tmp_path / "ortho.tif", scene(64, 64))
    proc = run(env, tmp_path, "aerialseg:map", f"INPUT={tif}", f"OUTPUT_RASTER={tmp_path / 'lc.tif'}",
               f"OUTPUT_VECTOR={tmp_path / 'f.gpkg'}")
    assert proc.returncode != 0
    message = proc.stderr.strip().splitlines()[-1]
    assert message.startswith("AerialSeg engine not found") and INSTALLER in message
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not (tmp_path / "lc.tif").exists() and not (tmp_path / "f.gpkg").exists()


def test_a_broken_engine_is_one_message_naming_the_installer(tmp_path, zip_path):
    """An engine whose environment lost a package: Python crashes with a traceback before the engine starts."""
    env = fresh_profile(tmp_path, zip_path)
    broken = tmp_path / "env" / "bin" / "aerialseg"
    broken.parent.mkdir(parents=True)
    broken.write_text(f"#!{sys.executable}\nimport aerialseg_lost_dependency\n")
    broken.chmod(0o755)
    env["AERIALSEG_ENGINE"] = str(tmp_path / "env")
    tif = write_raster(tmp_path / "ortho.tif", scene(64, 64))
    for algorithm, params in (("aerialseg:map", [f"INPUT={tif}", f"OUTPUT_RASTER={tmp_path / 'lc.tif'}",
                                                 f"OUTPUT_VECTOR={tmp_path / 'f.gpkg'}"]), ("aerialseg:check", [])):
        proc = run(env, tmp_path, algorithm, *params)
        message = proc.stderr.strip().splitlines()[-1]
        assert proc.returncode != 0 and f"{broken} is broken" in message, message
        assert "No module named 'aerialseg_lost_dependency'" in message and INSTALLER in message
        assert "Traceback" not in proc.stdout + proc.stderr
    assert not (tmp_path / "lc.tif").exists()


def test_check_algorithm_reads_both_check_formats(tmp_path, zip_path):
    """aerialseg:check trusts the engine's check: JSON lines ending in a result (ok true/false) or the older report."""
    env = fresh_profile(tmp_path, zip_path)
    stub = tmp_path / "env" / "bin" / "aerialseg"
    stub.parent.mkdir(parents=True)
    env["AERIALSEG_ENGINE"] = str(stub)

    def engine_prints(lines: list[dict], status: int) -> None:
        stub.write_text(f"#!{sys.executable}\nimport json, sys\nfor line in {lines!r}:\n    print(json.dumps(line))\n"
                        f"sys.exit({status})\n")
        stub.chmod(0o755)

    engine_prints([{"type": "result", "ok": False, "message": "no model can be loaded"}], 1)
    proc = run(env, tmp_path, "aerialseg:check")
    message = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode != 0 and message.startswith("AerialSeg set-up is incomplete: no model can be loaded. ")
    assert INSTALLER in message and "Traceback" not in proc.stdout + proc.stderr
    engine_prints([{"type": "log", "level": "INFO", "message": "checking"},
                   {"type": "result", "ok": True, "aerialseg": "0.9.1", "device": "cpu", "models": ["m1"]}], 0)
    answer = ok(run(env, tmp_path, "aerialseg:check"))
    results, log = answer["results"], "\n".join(answer["log"]["info"])
    assert results["OK"] is True and results["ENGINE_VERSION"] == "0.9.1" and "bundled models: m1" in log


@pytest.mark.slow
def test_fresh_profile_installs_the_engine_then_maps_with_the_default_model(tmp_path, zip_path):
    env = fresh_profile(tmp_path, zip_path)
    engine = tmp_path / "engine"
    start = time.monotonic()
    first = ok(run(env, tmp_path, INSTALLER, f"FOLDER={engine}"))
    first_s = time.monotonic() - start
    assert first["results"]["INSTALLED"] is True
    assert first["results"]["ENGINE"] == str(engine / "bin" / "aerialseg")
    log = "\n".join(first["log"]["info"])
    assert "-m venv" in log and "Successfully installed" in log and "aerialseg-" in log  # pip's output, streamed
    ini = (tmp_path / "cfg" / "profiles" / "default" / "QGIS" / "QGIS3.ini").read_text()
    assert f"AERIALSEG_ENGINE={engine}" in ini  # the provider setting, saved in the profile

    start = time.monotonic()
    second = ok(run(env, tmp_path, INSTALLER, f"FOLDER={engine}"))
    second_s = time.monotonic() - start
    assert second["results"]["INSTALLED"] is False
    assert "up to date" in "\n".join(second["log"]["info"]) and "Successfully" not in "\n".join(second["log"]["info"])
    print(f"engine install: first {first_s:.1f} s, second {second_s:.1f} s, venv {du(engine):.0f} MB")

    tif = write_raster(tmp_path / "ortho.tif", scene(300, 400, seed=2))
    out = tmp_path / "out"
    answer = ok(run(env, tmp_path, "aerialseg:map", f"INPUT={tif}", f"OUTPUT_RASTER={out / 'lc.tif'}",
                    f"OUTPUT_VECTOR={out / 'features.gpkg'}"))
    assert answer["results"]["OUTPUT_RASTER"] == str(out / "lc.tif")
    assert (out / "lc.tif").is_file() and "paletteEntry" in (out / "lc.qml").read_text()
    with sqlite3.connect(out / "features.gpkg") as db:
        assert db.execute("SELECT count(*) FROM layer_styles").fetchone()[0] >= 1


def engine_stub_wheel(folder: Path, version: str, check_lines: list[dict], status: int) -> Path:
    """A dependency-free aerialseg wheel whose ``aerialseg check --json`` prints ``check_lines`` (JSON lines, the
    format of the packaging branch) and exits with ``status``."""
    src = folder / f"src-{version}"
    (src / "aerialseg").mkdir(parents=True)
    body = "".join(f"    print(json.dumps({line!r}))\n" for line in check_lines)
    (src / "aerialseg" / "__init__.py").write_text(f"import json, sys\n\ndef main():\n{body}    sys.exit({status})\n")
    (src / "pyproject.toml").write_text(f'[project]\nname = "aerialseg"\nversion = "{version}"\n'
                                        '[project.scripts]\naerialseg = "aerialseg:main"\n')
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(folder), str(src)], check=True,
                   capture_output=True)
    return folder / f"aerialseg-{version}-py3-none-any.whl"


def test_the_engine_check_decides_and_a_failed_check_is_retried(tmp_path, zip_path):
    env = fresh_profile(tmp_path, zip_path)
    ini = tmp_path / "cfg" / "profiles" / "default" / "QGIS" / "QGIS3.ini"
    engine = tmp_path / "engine"
    failing = engine_stub_wheel(tmp_path, "0.9.0", [
        {"type": "log", "level": "INFO", "message": "models: none"},
        {"type": "result", "ok": False, "message": "the default model dubai-landcover-unet-r18 is missing"}], 1)
    for attempt in (1, 2):  # a failed check is not 'up to date': the second run installs again
        proc = run(env, tmp_path, INSTALLER, f"FOLDER={engine}", f"WHEEL={failing}", "FLAVOUR=1", json_out=False)
        message = proc.stderr.strip().splitlines()[-1]
        assert proc.returncode != 0, attempt
        assert message == (f"AerialSeg engine installed in {engine} but its check fails: the default model "
                           "dubai-landcover-unet-r18 is missing")
        assert "Successfully installed aerialseg-0.9.0" in proc.stdout
        assert "AERIALSEG_ENGINE" not in ini.read_text()
    working = engine_stub_wheel(tmp_path, "0.9.1", [{"type": "result", "ok": True, "aerialseg": "0.9.1",
                                                     "device": "cpu"}], 0)
    answer = ok(run(env, tmp_path, INSTALLER, f"FOLDER={engine}", f"WHEEL={working}", "FLAVOUR=1"))
    assert answer["results"]["INSTALLED"] is True and answer["results"]["REPORT"] == "aerialseg 0.9.1, device cpu"
    assert f"AERIALSEG_ENGINE={engine}" in ini.read_text()
    again = ok(run(env, tmp_path, INSTALLER, f"FOLDER={engine}", f"WHEEL={working}", "FLAVOUR=1"))
    assert again["results"]["INSTALLED"] is False


def test_a_failed_install_leaves_nothing_and_says_why(tmp_path, zip_path):
    """A wheel whose dependency does not exist: pip fails; the new folder is removed, the setting untouched."""
    env = fresh_profile(tmp_path, zip_path)
    (tmp_path / "src" / "aerialseg").mkdir(parents=True)
    (tmp_path / "src" / "aerialseg" / "__init__.py").write_text("")
    (tmp_path / "src" / "pyproject.toml").write_text(
        '[project]\nname = "aerialseg"\nversion = "9.9.9"\ndependencies = ["aerialseg-no-such-dependency-xyz"]\n')
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path),
                    str(tmp_path / "src")], check=True, capture_output=True)
    engine = tmp_path / "engine"
    proc = run(env, tmp_path, INSTALLER, f"FOLDER={engine}", f"WHEEL={tmp_path / 'aerialseg-9.9.9-py3-none-any.whl'}",
               "FLAVOUR=1")
    message = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode != 0 and message.startswith("AerialSeg engine installation failed:"), message
    assert "'pip install aerialseg-9.9.9-py3-none-any.whl' failed" in message and "WARNING" not in message
    assert "No matching distribution found for aerialseg-no-such-dependency-xyz" in message
    assert "run this algorithm again" in message
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not engine.exists()
    assert "AERIALSEG_ENGINE" not in (tmp_path / "cfg" / "profiles" / "default" / "QGIS" / "QGIS3.ini").read_text()


def test_pip_goes_through_the_http_proxy_set_in_qgis(tmp_path, zip_path):
    """Settings > Options > Network > proxy: pip asks PyPI through it (this proxy refuses, so the install fails)."""
    seen: list[str] = []

    class Refuse(http.server.BaseHTTPRequestHandler):
        def do_CONNECT(self):  # noqa: N802  (http.server's name)
            seen.append(self.requestline)
            self.send_error(403, "refused by the test proxy")

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Refuse)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = fresh_profile(tmp_path, zip_path)
    ini = tmp_path / "cfg" / "profiles" / "default" / "QGIS" / "QGIS3.ini"
    ini.write_text(ini.read_text() + "\n[proxy]\nproxyEnabled=true\nproxyType=HttpProxy\nproxyHost=127.0.0.1\n"
                   f"proxyPort={server.server_address[1]}\n")
    env.update(PIP_RETRIES="0", PIP_DEFAULT_TIMEOUT="10")
    try:
        proc = run(env, tmp_path, INSTALLER, f"FOLDER={tmp_path / 'engine'}", "FLAVOUR=1")
    finally:
        server.shutdown()
    assert proc.returncode != 0 and not (tmp_path / "engine").exists()
    assert any(line.startswith("CONNECT pypi.org:443") for line in seen), seen


def test_cancel_stops_pip_and_removes_a_first_install(tmp_path, zip_path):
    env = fresh_profile(tmp_path, zip_path)
    engine = tmp_path / "engine"
    script = r"""
seen = []
class CancelWhenPipTalks(QgsProcessingFeedback):
    def pushConsoleInfo(self, text):  # the first line pip prints
        seen.append(text)
        self.cancel()
feedback = CancelWhenPipTalks()
try:
    processing.run("aerialseg:installengine", {"FOLDER": sys.argv[1], "FLAVOUR": 1}, feedback=feedback)
    error = None
except QgsProcessingException as e:
    error = str(e)
print(json.dumps({"error": error, "seen": seen[:3]}))
"""
    result = qgis_python(env, script, str(engine))
    assert result["error"].startswith("Cancelled") and "removed" in result["error"], result
    assert not engine.exists()


def test_menu_entry_first_run_hint_and_model_list(tmp_path, zip_path):
    """Plugins > AerialSeg > Install engine… opens the installer; the hint shows only without an engine; the
    Model list of the dialogs fills once an engine is set, within the same QGIS session."""
    env = fresh_profile(tmp_path, zip_path)
    script = r"""
from unittest import mock
from qgis.gui import QgisInterface, QgsMessageBar
from qgis.PyQt.QtWidgets import QMainWindow, QPushButton, QApplication
import qgis.utils
from aerialseg_qgis import engine, widgets
window, bar = QMainWindow(), QgsMessageBar()
iface = mock.Mock(spec=QgisInterface)
iface.mainWindow.return_value, iface.messageBar.return_value = window, bar
qgis.utils.iface = iface
import processing.tools.general
processing.tools.general.iface = iface
before = widgets.bundled_models()
plugin.unload()  # the prelude's headless instance; QGIS runs one
gui = aerialseg_qgis.classFactory(iface)
gui.initGui()
menu, action = iface.addPluginToMenu.call_args[0]
hint = [b.text() for item in bar.items() for b in item.findChildren(QPushButton)]
bar.items()[0].findChildren(QPushButton)[0].click()
opened = [w.windowTitle() for w in QApplication.topLevelWidgets() if w.isVisible()]
engine.record_engine(sys.argv[1])
after = [name for name, *_ in widgets.bundled_models()]
gui.unload()
again = aerialseg_qgis.classFactory(iface)
again.initGui()
print(json.dumps({"menu": menu, "action": action.text(), "hint": hint, "bar_after_click": len(bar.items()),
                  "opened": opened, "before": before, "after": after, "hint_with_engine": len(bar.items())}))
"""
    result = qgis_python(env, script, str(ENGINE))
    assert result["menu"] == "&AerialSeg" and result["action"] == "Install engine…"
    assert result["hint"] == ["Install engine…"] and result["bar_after_click"] == 0
    assert any("Install or update the AerialSeg engine" in title for title in result["opened"])
    assert result["before"] == [] and "dubai-landcover-unet-r18" in result["after"]
    assert result["hint_with_engine"] == 0
