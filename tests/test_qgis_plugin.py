"""The QGIS plugin end to end: real QGIS (qgis_process and QGIS's own Python), the packaged plugin, the real engine.

The plugin zip built by scripts/package_plugin.py is installed into a throw-away QGIS profile
(QGIS_CUSTOM_CONFIG_PATH) and enabled there; every algorithm runs through ``qgis_process`` (as a
subprocess) on real orthophotos from ../shared/data and on tiny generated rasters, with the tiny ONNX
models of tinymodels.py. Styling, ``processing.run`` and cancellation are checked in QGIS's own Python.
These tests fail (never skip) when QGIS is missing: ``bash setup.sh test`` installs it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from rasterio.windows import Window

from aerialseg import datasets as ds
from rasters import expected_classes, read_band, scene, write_raster
from shared_data import RASTERS, needs_shared_data
from tinymodels import colour_card, write_colour_model

pytestmark = [pytest.mark.qgis, pytest.mark.slow]  # runs qgis_process

REPO = Path(__file__).resolve().parents[1]
ENGINE = REPO / ".venv" / "bin" / "aerialseg"
QGIS_PROCESS = shutil.which("qgis_process.bin") or shutil.which("qgis_process")  # Debian's wrapper script is broken
QGIS_PYTHON = "/usr/bin/python3"  # the interpreter QGIS's Python bindings are built for
ORTHO = RASTERS / "nl_aerial_rd_new_1210x718.tif"
ALGORITHMS = ("check", "classify", "evaluate", "installengine", "map", "train", "vectorize")
TINY_TRAIN = ["CHIP=64", "BATCH_SIZE=4", "CHIPS_PER_EPOCH=8", "EPOCHS=1", "DEVICE=1",
              "EXTRA=--encoder-depth 3 --decoder-channels 16,8,8 --threads 2"]


# ---------------------------------------------------------------- a throw-away QGIS profile with the plugin


def _qgis_env(config: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("QGIS_", "AERIALSEG_ENGINE"))}
    env.update(QT_QPA_PLATFORM="offscreen", QGIS_CUSTOM_CONFIG_PATH=str(config), XDG_RUNTIME_DIR=str(config / "run"))
    (config / "run").mkdir(mode=0o700, parents=True, exist_ok=True)
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def plugin_zip(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("zip") / "aerialseg_qgis.zip"
    subprocess.run([sys.executable, str(REPO / "scripts" / "package_plugin.py"), "--output", str(out)], check=True,
                   capture_output=True)
    return out


@pytest.fixture(scope="session")
def profile(tmp_path_factory, plugin_zip) -> dict[str, str]:
    """Environment of a fresh QGIS profile with the zipped plugin installed and enabled (as Install from ZIP does)."""
    if not QGIS_PROCESS or not Path(QGIS_PYTHON).is_file():
        pytest.fail("QGIS is not installed (no qgis_process / QGIS Python): run `bash setup.sh test`, which "
                    "installs it")
    if not ENGINE.is_file():
        pytest.fail(f"the engine is not installed at {ENGINE}: run `bash setup.sh`")
    config = tmp_path_factory.mktemp("qgis")
    plugins = config / "profiles" / "default" / "python" / "plugins"
    plugins.mkdir(parents=True)
    zipfile.ZipFile(plugin_zip).extractall(plugins)
    (config / "profiles" / "default" / "QGIS").mkdir()
    (config / "profiles" / "default" / "QGIS" / "QGIS3.ini").write_text("[PythonPlugins]\naerialseg_qgis=true\n")
    return _qgis_env(config, AERIALSEG_ENGINE=str(ENGINE))


def qgis_process(env: dict[str, str], *args: str, json_out: bool = True, timeout: float = 300,
                 check: bool = True) -> subprocess.CompletedProcess:
    command = [QGIS_PROCESS, *(["--json"] if json_out else []), *args]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-3000:]}")
    return proc


def run_alg(env: dict[str, str], algorithm: str, **params) -> dict:
    """Run an algorithm through ``qgis_process --json run`` and return the parsed answer."""
    proc = qgis_process(env, "run", f"aerialseg:{algorithm}", "--", *(f"{k}={v}" for k, v in params.items()))
    return json.loads(proc.stdout)


def run_fails(env: dict[str, str], algorithm: str, *params: str) -> str:
    """Run an algorithm that must fail; return its error message (qgis_process's last stderr line)."""
    proc = qgis_process(env, "run", f"aerialseg:{algorithm}", "--", *params, json_out=False, check=False)
    assert proc.returncode != 0, proc.stdout[-2000:]
    return proc.stderr.strip().splitlines()[-1]


def qgis_python(env: dict[str, str], script: str, *args: str, timeout: float = 300, gui: bool = False) -> dict:
    """Run a script in QGIS's own Python with QGIS, Processing and the installed plugin loaded; return its JSON.

    ``gui``: a QGIS application with widgets (offscreen), for the Processing dialog's widgets.
    """
    plugins = Path(env["QGIS_CUSTOM_CONFIG_PATH"]) / "profiles" / "default" / "python" / "plugins"
    prelude = (
        "import json, sys\n"
        "from qgis.core import *\n"
        f"app = QgsApplication([], {gui})\napp.initQgis()\n"
        "sys.path.append('/usr/share/qgis/python/plugins')\n"
        "import processing\nfrom processing.core.Processing import Processing\nProcessing.initialize()\n"
        f"sys.path.insert(0, {str(plugins)!r})\n"
        "import aerialseg_qgis\nplugin = aerialseg_qgis.classFactory(None)\nplugin.initProcessing()\n"
    )
    # QGIS's standalone-script teardown (Qt objects, the project's layers and providers destroyed in an order the
    # Python interpreter chooses) sometimes segfaults after the script's work is done, as in QGIS issues about
    # "segfault at exit"; the script's result is printed and flushed before it, so leave without that teardown.
    postlude = "\nsys.stdout.flush()\nimport os\nos._exit(0)\n"
    proc = subprocess.run([QGIS_PYTHON, "-c", prelude + script + postlude, *args], env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- inputs


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("qgis_data")


@pytest.fixture(scope="module")
def scene_tif(data) -> Path:
    """300 x 500 px RGB scene in UTM 33N at 0.5 m (red buildings, blue water on land)."""
    return write_raster(data / "scene.tif", scene(300, 500, seed=3))


@pytest.fixture(scope="module")
def classes_tif(profile, data, scene_tif, colour_model) -> Path:
    """The scene classified by the plugin."""
    out = data / "scene_classes.tif"
    run_alg(profile, "classify", INPUT=scene_tif, MODEL=colour_model, OUTPUT=out)
    return out


# ---------------------------------------------------------------- packaging and installation


def test_zip_follows_the_plugin_repository_rules(plugin_zip):
    with zipfile.ZipFile(plugin_zip) as zf:
        names = zf.namelist()
        meta = zf.read("aerialseg_qgis/metadata.txt").decode()
    assert {n.split("/")[0] for n in names} == {"aerialseg_qgis"}
    assert {"aerialseg_qgis/__init__.py", "aerialseg_qgis/metadata.txt", "aerialseg_qgis/LICENSE",
            "aerialseg_qgis/icons/aerialseg.svg"} <= set(names)
    assert {f"aerialseg_qgis/{a}.py" for a in ALGORITHMS} <= set(names)
    assert not [n for n in names if n.endswith((".pyc", ".pyo", ".so")) or "__pycache__" in n or "/." in n]
    assert meta == (REPO / "metadata.txt").read_text()  # the root file is the single source
    for field in ("name", "qgisMinimumVersion", "description", "about", "version", "author", "email", "repository"):
        assert f"\n{field}=" in meta
    assert "hasProcessingProvider=yes" in meta
    assert plugin_zip.stat().st_size < 25 * 1024 * 1024


def test_list_and_help_show_every_algorithm_with_help(profile):
    providers = json.loads(qgis_process(profile, "list").stdout)["providers"]
    assert set(providers["aerialseg"]["algorithms"]) == {f"aerialseg:{a}" for a in ALGORITHMS}
    assert providers["aerialseg"]["supported_output_raster_extensions"] == ["tif"]
    for name in ALGORITHMS:
        info = json.loads(qgis_process(profile, "help", f"aerialseg:{name}").stdout)
        assert info["algorithm_details"]["short_description"] and info["algorithm_details"]["group"]
        for param in info["parameters"].values():
            assert param["help"], f"{name}: {param['name']} has no help text"
    params = json.loads(qgis_process(profile, "help", "aerialseg:map").stdout)["parameters"]
    assert {"INPUT", "MODEL", "DEVICE", "EXTENT", "OUTPUT_RASTER", "OUTPUT_VECTOR", "CLASSES", "MIN_AREA",
            "SIMPLIFY", "REGULARIZE"} <= set(params)
    assert all(params[p]["is_advanced"] for p in ("TILE_SIZE", "OVERLAP", "TTA", "RESAMPLE"))


def test_install_script_links_the_plugin_and_it_finds_the_repository_engine(tmp_path):
    """`bash setup.sh qgis` (scripts/install_qgis_plugin.sh): linked into a profile, enabled, engine auto-detected."""
    env = _qgis_env(tmp_path / "cfg", PATH="/usr/bin:/bin")  # no AERIALSEG_ENGINE, no venv on the PATH
    subprocess.run(["bash", str(REPO / "scripts" / "install_qgis_plugin.sh")], env=env, check=True, capture_output=True)
    plugin = tmp_path / "cfg" / "profiles" / "default" / "python" / "plugins" / "aerialseg_qgis"
    assert (plugin / "engine.py").resolve() == REPO / "aerialseg_qgis" / "engine.py"
    assert "aerialseg_qgis=true" in (plugin.parents[2] / "QGIS" / "QGIS3.ini").read_text()
    answer = run_alg(env, "check")
    assert answer["results"]["OK"] and answer["results"]["ENGINE"] == str(ENGINE)


# ---------------------------------------------------------------- engine discovery and the set-up check


def test_check_reports_engine_versions_and_runtime(profile):
    answer = run_alg(profile, "check")
    results, log = answer["results"], "\n".join(answer["log"]["info"])
    assert results["OK"] is True and results["ENGINE"] == str(ENGINE) and results["ENGINE_VERSION"]
    assert results["DEVICE"] in ("GPU", "CPU")
    assert "REPORT" not in results  # the report is the log, printed once (the dialog prints results raw)
    for text in ("QGIS 3.", "onnxruntime", "rasterio", "inference: ", "training: ", "bundled models: "):
        assert text in log
    if results["DEVICE"] == "CPU":
        assert "no NVIDIA GPU found" in log or "CUDA" in log  # says why


def test_engine_location_from_the_provider_setting(profile, tmp_path):
    config = Path(profile["QGIS_CUSTOM_CONFIG_PATH"])
    other = tmp_path / "cfg"
    shutil.copytree(config / "profiles", other / "profiles")
    ini = other / "profiles" / "default" / "QGIS" / "QGIS3.ini"
    ini.write_text(ini.read_text() + f"\n[Processing]\nConfiguration\\AERIALSEG_ENGINE={REPO / '.venv'}\n")
    env = _qgis_env(other, PATH="/usr/bin:/bin")
    assert run_alg(env, "check")["results"]["ENGINE"] == str(ENGINE)  # a venv folder is accepted too


def test_missing_engine_says_how_to_install(profile, scene_tif, tmp_path):
    env = {**profile, "PATH": "/usr/bin:/bin"}
    del env["AERIALSEG_ENGINE"]
    message = run_fails(env, "classify", f"INPUT={scene_tif}", f"OUTPUT={tmp_path / 'x.tif'}")
    assert "AerialSeg engine not found" in message and "aerialseg:installengine" in message
    assert "AERIALSEG_ENGINE" in message
    env["AERIALSEG_ENGINE"] = str(tmp_path / "nowhere")
    message = run_fails(env, "check")
    assert f"AERIALSEG_ENGINE is '{tmp_path / 'nowhere'}'" in message
    assert not (tmp_path / "x.tif").exists()


# ---------------------------------------------------------------- classify, vectorize, map


@needs_shared_data(ORTHO)
def test_classify_a_real_orthophoto_with_confidence(profile, colour_model, tmp_path):
    out, conf = tmp_path / "out" / "lc.tif", tmp_path / "out" / "conf.tif"
    answer = run_alg(profile, "classify", INPUT=ORTHO, MODEL=colour_model, OUTPUT=out, OUTPUT_CONFIDENCE=conf)
    assert answer["results"] == {"OUTPUT": str(out), "OUTPUT_CONFIDENCE": str(conf)}
    with rasterio.open(ORTHO) as src, rasterio.open(out) as dst, rasterio.open(conf) as c:
        assert (dst.crs, dst.transform, dst.shape) == (src.crs, src.transform, src.shape)
        classes = dst.read(1)
        assert set(np.unique(classes)) <= {0, 1, 2, 255} and len(set(np.unique(classes)) - {255}) >= 2
        assert c.shape == src.shape and c.read(1)[classes != 255].max() <= 100
    assert out.with_suffix(".qml").read_text().count("paletteEntry") == 3
    assert conf.with_suffix(".qml").is_file()
    log = "\n".join(answer["log"]["info"])
    assert "runtime: ONNX Runtime" in log and "aerialseg classify" in log  # the engine's log and command line


@needs_shared_data(ORTHO)
def test_classify_on_a_dask_cluster_through_the_scheduler_parameter(profile, colour_model, tmp_path):
    """SCHEDULER sends the work to a real Dask scheduler (TCP on loopback); the output is the same bytes."""
    from distributed import LocalCluster

    here, there = tmp_path / "here.tif", tmp_path / "there.tif"
    run_alg(profile, "classify", INPUT=ORTHO, MODEL=colour_model, OUTPUT=here, RESAMPLE="false", TILE_SIZE=256)
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, protocol="tcp", host="127.0.0.1",
                      dashboard_address=None) as cluster:
        answer = run_alg(profile, "classify", INPUT=ORTHO, MODEL=colour_model, OUTPUT=there, RESAMPLE="false",
                         TILE_SIZE=256, SCHEDULER=cluster.scheduler_address)
    assert "on the cluster" in "\n".join(answer["log"]["info"])
    assert there.read_bytes() == here.read_bytes()


def test_classify_tiny_scene_matches_the_model_exactly(classes_tif, scene_tif):
    with rasterio.open(scene_tif) as src:
        np.testing.assert_array_equal(read_band(classes_tif), expected_classes(src.read()))


def test_processing_extent_is_honoured_on_the_input_grid(profile, colour_model, scene_tif, classes_tif, tmp_path):
    out = tmp_path / "part.tif"
    # x 500010.2..500100 (columns 20..200), y 3999900..3999960.3 (rows 79..200) in UTM; given in UTM
    run_alg(profile, "classify", INPUT=scene_tif, MODEL=colour_model, OUTPUT=out,
            EXTENT="500010.2,500100,3999900,3999960.3 [EPSG:32633]")
    with rasterio.open(out) as part:
        assert part.transform == from_origin(500010.0, 3999960.5, 0.5, 0.5) and part.shape == (121, 180)
        np.testing.assert_array_equal(part.read(1), read_band(classes_tif)[79:200, 20:200])


def test_processing_extent_outside_the_input_is_refused(profile, colour_model, scene_tif, tmp_path):
    message = run_fails(profile, "classify", f"INPUT={scene_tif}", f"MODEL={colour_model}",
                        f"OUTPUT={tmp_path / 'x.tif'}", "EXTENT=0,10,0,10 [EPSG:32633]")
    assert "does not overlap" in message and not (tmp_path / "x.tif").exists()


def test_vectorize_writes_styled_class_layers(profile, classes_tif, tmp_path):
    out = tmp_path / "polys.gpkg"
    answer = run_alg(profile, "vectorize", INPUT=classes_tif, OUTPUT=out, MIN_AREA=2, SIMPLIFY=0, REGULARIZE=1)
    assert answer["results"]["OUTPUT"] == str(out)
    assert "Layers: building, water" in "\n".join(answer["log"]["info"])
    with sqlite3.connect(out) as db:
        styled = {r[0] for r in db.execute("SELECT f_table_name FROM layer_styles WHERE useAsDefault")}
        assert styled == {"building", "water"}
        for layer in styled:
            n, smallest = db.execute(f'SELECT count(*), min(area_m2) FROM "{layer}"').fetchone()
            assert n > 0 and smallest >= 2


@needs_shared_data(ORTHO)
def test_map_a_real_orthophoto_in_one_step(profile, colour_model, tmp_path):
    raster, gpkg = tmp_path / "lc.tif", tmp_path / "features.gpkg"
    proc = qgis_process(profile, "run", "aerialseg:map", "--", f"INPUT={ORTHO}", f"MODEL={colour_model}",
                        f"OUTPUT_RASTER={raster}", f"OUTPUT_VECTOR={gpkg}", "CLASSES=building,water", json_out=False)
    assert "...10" in proc.stdout and "...100 - done." in proc.stdout  # the progress bar of qgis_process
    assert "classify: 50 % (" in proc.stdout and "polygons written" in proc.stdout  # progress text, the engine's log
    with rasterio.open(ORTHO) as src, rasterio.open(raster) as dst:
        assert (dst.crs, dst.transform, dst.shape) == (src.crs, src.transform, src.shape)
    assert raster.with_suffix(".qml").is_file()
    with sqlite3.connect(gpkg) as db:
        assert {r[0] for r in db.execute("SELECT table_name FROM gpkg_contents WHERE data_type='features'")} == \
            {"building", "water"}


def test_map_failing_while_vectorising_keeps_both_old_outputs(profile, colour_model, scene_tif, tmp_path):
    raster, gpkg = tmp_path / "lc.tif", tmp_path / "features.gpkg"
    old = {raster.name: b"old raster", gpkg.name: b"old polygons"}
    for name, data in old.items():
        (tmp_path / name).write_bytes(data)
    message = run_fails(profile, "map", f"INPUT={scene_tif}", f"MODEL={colour_model}", f"OUTPUT_RASTER={raster}",
                        f"OUTPUT_VECTOR={gpkg}", "CLASSES=no-such-class")  # vectorize refuses it, after classify
    assert "no-such-class" in message
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == old  # nothing new, nothing hidden left


def test_processing_run_gives_the_same_results_and_outputs_open_styled(profile, colour_model, scene_tif, classes_tif,
                                                                       tmp_path):
    script = r"""
params = {"INPUT": sys.argv[1], "MODEL": sys.argv[2], "OUTPUT_RASTER": sys.argv[3], "OUTPUT_VECTOR": sys.argv[4]}
plain = processing.run("aerialseg:map", dict(params))
loaded = processing.runAndLoadResults("aerialseg:map", {**params, "OUTPUT_RASTER": "TEMPORARY_OUTPUT",
                                                        "OUTPUT_VECTOR": "TEMPORARY_OUTPUT"})
layers = []
for layer in QgsProject.instance().mapLayers().values():
    if isinstance(layer, QgsRasterLayer):
        style = {str(int(c.value)): [c.label, c.color.name()] for c in layer.renderer().classes()}
    else:
        style = [layer.renderer().symbol().color().name(), layer.featureCount()]
    layers.append([layer.source(), layer.renderer().type(), style])
foreign = [m for m in ("aerialseg", "torch", "onnxruntime", "rasterio", "pyogrio", "shapely") if m in sys.modules]
names = [layer.name() for layer in QgsProject.instance().mapLayers().values()]
print(json.dumps({"plain": plain, "loaded": loaded, "foreign": foreign, "layers": dict(zip(names, layers))}))
"""
    raster, gpkg = tmp_path / "lc.tif", tmp_path / "f.gpkg"
    out = qgis_python(profile, script, str(scene_tif), str(colour_model), str(raster), str(gpkg))
    assert out["plain"] == {"OUTPUT_RASTER": str(raster), "OUTPUT_VECTOR": str(gpkg)}
    assert out["foreign"] == []  # QGIS's Python never imported the engine or the ML stack
    np.testing.assert_array_equal(read_band(raster), read_band(classes_tif))  # same as qgis_process gave
    layers = out["layers"]
    assert set(layers) == {"scene land cover", "scene building", "scene water"}  # every class layer, named after
    assert layers["scene land cover"][:2] == [out["loaded"]["OUTPUT_RASTER"], "paletted"]  # the input
    assert layers["scene land cover"][2] == {"0": ["building", "#3c1098"], "1": ["water", "#e2a929"],
                                               "2": ["land", "#8429f6"]}
    for name, colour in (("building", "#3c1098"), ("water", "#e2a929")):  # each in its class colour
        source, renderer, (symbol_colour, count) = layers[f"scene {name}"]
        assert source == out["loaded"]["OUTPUT_VECTOR"] + f"|layername={name}"
        assert (renderer, symbol_colour) == ("singleSymbol", colour) and count > 0


def test_non_file_layers_are_exported_or_refused(profile, data, scene_tif, tmp_path):
    grey_model = write_colour_model(data / "grey.onnx", colour_card(name="grey", bands=(1,), mean=(0.0,), std=(1.0,)))
    virtual = (f"virtualraster://?crs=EPSG:32633&extent=500000,3999850,500250,4000000&width=500&height=300"
               f"&formula=%22s@1%22&s:uri={scene_tif}&s:provider=gdal")
    answer = run_alg(profile, "classify", INPUT=virtual, MODEL=grey_model, OUTPUT=tmp_path / "v.tif")
    assert "Exporting the 'virtualraster' layer" in "\n".join(answer["log"]["info"])
    with rasterio.open(tmp_path / "v.tif") as out:
        assert out.shape == (300, 500) and out.transform == from_origin(500000, 4000000, 0.5, 0.5)
    xyz = "wms://type=xyz&url=http://127.0.0.1:9/%7Bz%7D/%7Bx%7D/%7By%7D.png&zmax=19&zmin=0"
    message = run_fails(profile, "classify", f"INPUT={xyz}", f"OUTPUT={tmp_path / 'w.tif'}")
    assert "AerialSeg cannot read" in message and "'wms' layer" in message and "GeoTIFF" in message


# ---------------------------------------------------------------- errors


@pytest.fixture(scope="module")
def corrupt_tif(data) -> Path:
    path = data / "corrupt.tif"
    path.write_bytes(b"II*\x00" + os.urandom(2000))
    return path


@pytest.mark.parametrize("case", ["no model file", "unknown model", "png output", "shapefile output",
                                  "not a class raster", "unknown class", "corrupt input", "too few bands",
                                  "output is input", "bad report"])
def test_bad_input_gives_a_readable_error_and_no_output(case, profile, colour_model, scene_tif, classes_tif,
                                                        corrupt_tif, data, tmp_path):
    out = tmp_path / "out.tif"
    grey = write_raster(data / "grey.tif", scene(40, 60)[:1])
    algorithm, params, expected = {
        "no model file": ("classify", [f"INPUT={scene_tif}", f"MODEL={tmp_path / 'none.onnx'}", f"OUTPUT={out}"],
                          "Model file not found"),
        "unknown model": ("classify", [f"INPUT={scene_tif}", "MODEL=no-such-model", f"OUTPUT={out}"],
                          "AerialSeg: unknown model 'no-such-model'"),
        "png output": ("classify", [f"INPUT={scene_tif}", f"MODEL={colour_model}", f"OUTPUT={tmp_path / 'out.png'}"],
                       "ending in .tif"),
        "shapefile output": ("vectorize", [f"INPUT={classes_tif}", f"OUTPUT={tmp_path / 'out.shp'}"],
                             "ending in .gpkg"),
        "not a class raster": ("vectorize", [f"INPUT={scene_tif}", f"OUTPUT={tmp_path / 'out.gpkg'}"],
                               "is not a class raster"),
        "unknown class": ("vectorize", [f"INPUT={classes_tif}", "CLASSES=building,roads",
                                        f"OUTPUT={tmp_path / 'o.gpkg'}"],
                          "AerialSeg: unknown class 'roads'; available classes: building, water, land"),
        "corrupt input": ("classify", [f"INPUT={corrupt_tif}", f"MODEL={colour_model}", f"OUTPUT={out}"],
                          "Could not load source layer for INPUT"),
        "too few bands": ("classify", [f"INPUT={grey}", f"MODEL={colour_model}", f"OUTPUT={out}"],
                          "has 1 image band(s) but model 'colour' needs"),
        "output is input": ("classify", [f"INPUT={scene_tif}", f"MODEL={colour_model}", f"OUTPUT={scene_tif}"],
                            "AerialSeg: "),
        "bad report": ("evaluate", [f"INPUT={classes_tif}", f"REFERENCE={classes_tif}", f"OUTPUT={tmp_path / 'r.txt'}"],
                       "ending in .html or .json"),
    }[case]
    before = scene_tif.read_bytes()
    message = run_fails(profile, algorithm, *params)
    assert expected in message and "Traceback" not in message
    assert scene_tif.read_bytes() == before
    assert not [p for p in tmp_path.iterdir()], "a failed run left files behind"


# ---------------------------------------------------------------- cancellation


@pytest.fixture(scope="module")
def big_tif(data) -> Path:
    """4000 x 4000 px: with 16 px tiles, no overlap and batches of one, the tiny model needs many seconds (2000 px
    could finish before a busy machine's qgis_process had relayed the first progress line)."""
    img = np.zeros((3, 4000, 4000), np.uint8)
    img[0, :, :2000] = 230
    img[2, 2000:, :] = 230
    return write_raster(data / "big.tif", img)


SLOW = {"TILE_SIZE": 16, "OVERLAP": 0, "BATCH_SIZE": 1}


def _engine_processes(marker: str) -> list[str]:
    out = subprocess.run(["pgrep", "-af", marker], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "aerialseg" in line and "pgrep" not in line]


def test_cancel_stops_the_engine_and_leaves_no_output(profile, colour_model, big_tif, tmp_path):
    """Cancel in the feedback (the dialog's Cancel button) while the engine runs: it stops, nothing is left."""
    script = r"""
import time
feedback = QgsProcessingFeedback()
state = {}
def cancel_once_running(progress):
    if progress > 5 and "at" not in state:
        state["at"], state["progress"] = time.monotonic(), progress
        feedback.cancel()
feedback.progressChanged.connect(cancel_once_running)
params = {"INPUT": sys.argv[1], "MODEL": sys.argv[2], "OUTPUT": sys.argv[3], "TILE_SIZE": 16, "OVERLAP": 0,
          "BATCH_SIZE": 1}
try:
    processing.run("aerialseg:classify", params, feedback=feedback)
    error = None
except QgsProcessingException as e:
    error = str(e)
print(json.dumps({"error": error, "progress": state.get("progress"),
                  "stopped_after_s": time.monotonic() - state["at"]}))
"""
    out = tmp_path / "cancelled" / "lc.tif"
    result = qgis_python(profile, script, str(big_tif), str(colour_model), str(out))
    print(f"engine stopped {result['stopped_after_s']:.2f} s after Cancel")  # measured, not asserted (see bench/)
    assert result["error"].startswith("Cancelled") and result["progress"] < 100
    assert not _engine_processes(str(out))
    assert not out.exists() and not list(out.parent.iterdir()), "the engine left partial output"


def test_killing_qgis_process_stops_the_engine_which_cleans_up(profile, colour_model, big_tif, tmp_path):
    out = tmp_path / "killed" / "lc.tif"
    command = [QGIS_PROCESS, "run", "aerialseg:classify", "--", f"INPUT={big_tif}", f"MODEL={colour_model}",
               f"OUTPUT={out}", *(f"{k}={v}" for k, v in SLOW.items())]
    proc = subprocess.Popen(command, env=profile, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    seen = ""
    while "classify: " not in seen:  # the engine is classifying
        line = proc.stdout.readline()
        assert line, f"qgis_process ended early: {seen[-2000:]}"
        seen += line
    assert _engine_processes(str(out)) and list(out.parent.iterdir())  # running, writing its hidden temporary files
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    deadline = time.monotonic() + 30
    while (_engine_processes(str(out)) or list(out.parent.iterdir())) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _engine_processes(str(out)), "the engine outlived qgis_process"
    assert not list(out.parent.iterdir()), "partial output left behind"


# ---------------------------------------------------------------- evaluate


def test_evaluate_scores_against_a_reference(profile, classes_tif, data, tmp_path):
    pred = read_band(classes_tif)
    ref = pred.copy()
    ref[:50, :] = 2  # a band of 'land' in the reference
    with rasterio.open(classes_tif) as src:
        reference = write_raster(data / "reference.tif", ref[None], crs=src.crs.to_string(), transform=src.transform)
    html_answer = run_alg(profile, "evaluate", INPUT=classes_tif, REFERENCE=reference, OUTPUT=tmp_path / "r.html")
    json_answer = run_alg(profile, "evaluate", INPUT=classes_tif, REFERENCE=reference, OUTPUT=tmp_path / "r.json",
                          CLASSES="building,water,land")
    accuracy = float((pred == ref).mean())
    for answer in (html_answer, json_answer):
        assert answer["results"]["ACCURACY"] == pytest.approx(accuracy)
    scores = json.loads((tmp_path / "r.json").read_text())
    assert scores["confusion_matrix"][2][0] == int(((ref == 2) & (pred == 0)).sum())
    assert list(scores["per_class"]) == ["building", "water", "land"]
    page = (tmp_path / "r.html").read_text()
    assert "Confusion matrix" in page and "<th>building</th>" in page and f"{accuracy:.4f}" in page


# ---------------------------------------------------------------- train


@pytest.fixture(scope="module")
def training_pair(data) -> tuple[Path, Path]:
    """A 160 x 160 px image painted from a blocky 3-class map, and the map as a class-id mask."""
    sys.path.insert(0, str(Path(__file__).parent))
    from trainkit import class_map, paint

    ids = class_map(160, 160, 3, seed=5)
    image = write_raster(data / "train_image.tif", paint(ids, 5), crs="EPSG:32633",
                         transform=from_origin(500000, 4000000, 2.0, 2.0))
    mask = write_raster(data / "train_mask.tif", ids.astype(np.uint8)[None], crs="EPSG:32633",
                        transform=from_origin(500000, 4000000, 2.0, 2.0))
    return image, mask


def _model_card(model: Path) -> dict:
    return json.loads(subprocess.run([str(ENGINE), "info", str(model), "--json"], capture_output=True, text=True,
                                     check=True).stdout)


@pytest.mark.slow
def test_train_from_a_mask_writes_an_onnx_model_with_its_card(profile, training_pair, tmp_path):
    image, mask = training_pair
    model, run = tmp_path / "m.onnx", tmp_path / "run"
    proc = qgis_process(profile, "run", "aerialseg:train", "--", f"INPUT={image}", f"MASK={mask}",
                        "CLASS_NAMES=red,sand,grey", "MODEL_NAME=tiny", f"OUTPUT={model}", f"OUTPUT_FOLDER={run}",
                        *TINY_TRAIN, json_out=False)
    assert "epoch 1/1" in proc.stdout and "100" in proc.stdout
    card = _model_card(model)
    assert card["name"] == "tiny" and [c["name"] for c in card["classes"]] == ["red", "sand", "grey"]
    assert card["gsd_m"] == 2.0
    assert (run / "run" / "best.pt").is_file() and (run / "data" / "masks" / "area.vrt").is_file()
    config = json.loads((run / "run" / "config.json").read_text())
    assert config["dataset"] == "folder" and config["val_fraction"] == 0.2  # the bottom 20 % held out
    answer = run_alg(profile, "classify", INPUT=image, MODEL=model, OUTPUT=tmp_path / "lc.tif")  # the model runs
    assert set(np.unique(read_band(Path(answer["results"]["OUTPUT"])))) <= {0, 1, 2}


@pytest.mark.slow
def test_train_from_labelled_polygons(profile, training_pair, tmp_path):
    import geopandas as gpd
    from shapely.geometry import box

    image, _ = training_pair
    labels = gpd.GeoDataFrame({"kind": ["roof", "pond", "roof"]},
                              geometry=[box(500020, 3999700, 500100, 3999780), box(500150, 3999850, 500250, 3999950),
                                        box(500200, 3999720, 500300, 3999760)], crs="EPSG:32633").to_crs("EPSG:4326")
    labels.to_file(tmp_path / "labels.gpkg")
    model = tmp_path / "m.onnx"
    run_alg(profile, "train", INPUT=image, LABELS=tmp_path / "labels.gpkg", LABEL_FIELD="kind",
            CLASS_NAMES="ground,roof,pond", OUTPUT=model, OUTPUT_FOLDER=tmp_path / "run",
            **dict(p.split("=", 1) for p in TINY_TRAIN))
    config = json.loads((tmp_path / "run" / "run" / "config.json").read_text())
    assert config["dataset"] == "vector" and config["label_field"] == "kind" and config["unlabelled"] == "ground"
    # the engine's rasterisation of the polygons the plugin handed over, on the image grid
    labels = ds.VectorLabels(Path(config["labels"]), "kind", ("ground", "roof", "pond"), config["label_layer"] or None,
                             unlabelled=0)
    ids = ds.rasterize_labels(labels, image)
    assert ids.shape == (160, 160) and set(np.unique(ids)) == {0, 1, 2}
    assert ids[130, 30] == 1 and ids[50, 100] == 2 and ids[0, 0] == 0
    assert [c["name"] for c in _model_card(model)["classes"]] == ["ground", "roof", "pond"]
    message = run_fails(profile, "train", f"INPUT={image}", f"LABELS={tmp_path / 'labels.gpkg'}", "LABEL_FIELD=kind",
                        "CLASS_NAMES=ground,roof", f"OUTPUT={tmp_path / 'x.onnx'}", *TINY_TRAIN)
    assert "values that are not classes: pond" in message


def test_automatic_model_and_input_pixel_size_for_an_image_without_georeferencing(profile, data, tmp_path):
    """MODEL empty chooses by resolution; INPUT_GSD gives an ungeoreferenced image its pixel size."""
    from PIL import Image

    from rasters import scene

    png = tmp_path / "drone.png"
    Image.fromarray(scene(200, 240, seed=3).transpose(1, 2, 0)).save(png)
    out = tmp_path / "lc.tif"
    answer = run_alg(profile, "classify", INPUT=png, INPUT_GSD=1.0, OUTPUT=out)
    log = "\n".join(answer["log"]["info"])
    assert "model: dubai-landcover-unet-r18 (chosen automatically" in log and "--input-gsd 1.0" in log
    assert "resampling: input 1.000 x 1.000 m/px -> model 2.000 m/px" in log
    with rasterio.open(out) as dst:
        assert dst.shape == (200, 240)
    polygons = tmp_path / "v.gpkg"  # vectorise takes it too: areas in square metres
    run_alg(profile, "vectorize", INPUT=out, INPUT_GSD=1.0, CLASSES="building,road,water,land", OUTPUT=polygons)
    with sqlite3.connect(polygons) as db:
        assert "area_m2" in {r[1] for r in db.execute('PRAGMA table_info("land")')}
    features = tmp_path / "f.gpkg"  # map passes INPUT_GSD on to vectorise: areas in square metres
    run_alg(profile, "map", INPUT=png, INPUT_GSD=1.0, OUTPUT_RASTER=tmp_path / "m.tif", OUTPUT_VECTOR=features)
    with sqlite3.connect(features) as db:
        tables = [r[0] for r in db.execute("SELECT table_name FROM gpkg_geometry_columns")]
        assert tables and all("area_m2" in {r[1] for r in db.execute(f'PRAGMA table_info("{t}")')} for t in tables)


# ---------------------------------------------------------------- the QGIS window: results, model list


LOAD_LIKE_THE_DIALOG = r"""
from qgis.PyQt.QtCore import QSize
project = QgsProject.instance()
project.setCrs(QgsCoordinateReferenceSystem("EPSG:4326"))  # a new project's CRS in the QGIS window
messages, added = [], []
QgsApplication.messageLog().messageReceived.connect(lambda text, tag, level: messages.append(text))
crs_name = lambda layer: layer.crs().authid() or layer.crs().description()
project.layerWasAdded.connect(lambda layer: added.append([layer.name(), crs_name(layer)]))
runs = json.loads(sys.argv[1])
for params in runs:  # runAndLoadResults loads outputs with handleAlgorithmResults, as the dialog does
    processing.runAndLoadResults("aerialseg:map", params)
tree = []
for node in project.layerTreeRoot().findLayers():
    layer = node.layer()
    style = layer.renderer().type()
    opacity = layer.renderer().opacity() if isinstance(layer, QgsRasterLayer) else layer.opacity()
    tree.append([layer.name(), layer.crs().isValid(), style, round(opacity, 2), node.isExpanded()])
settings = QgsMapSettings()  # draw everything in the project CRS, as the map canvas does
settings.setLayers([node.layer() for node in project.layerTreeRoot().findLayers()])
settings.setDestinationCrs(project.crs())
settings.setExtent(QgsRectangle(-10, -300, 600, 10))
settings.setOutputSize(QSize(200, 200))
job = QgsMapRendererSequentialJob(settings)
job.start()
job.waitForFinished()
app.processEvents()
print(json.dumps({"tree": tree, "messages": messages, "errors": [e.message for e in job.errors()], "added": added}))
"""


def test_map_results_load_in_order_named_after_the_input_without_crs_errors(profile, colour_model, scene_tif,
                                                                            tmp_path):
    """aerialseg:map through processing, results loaded as the Processing dialog loads them: polygons above the class
    raster whatever the paths' order, layers named after the input, no CRS made up for an image without
    georeferencing (no transform errors drawing it in an EPSG:4326 project), the same styles every time."""
    from PIL import Image

    png = tmp_path / "drone.png"
    Image.fromarray(scene(150, 200, seed=3).transpose(1, 2, 0)).save(png)
    runs = [  # QGIS loads outputs in the order of their paths: the raster first in one run, last in the other
        {"INPUT": str(scene_tif), "MODEL": str(colour_model), "OUTPUT_RASTER": str(tmp_path / "a_lc.tif"),
         "OUTPUT_VECTOR": str(tmp_path / "z_f.gpkg")},
        {"INPUT": str(png), "MODEL": str(colour_model), "OUTPUT_RASTER": str(tmp_path / "z_lc.tif"),
         "OUTPUT_VECTOR": str(tmp_path / "a_f.gpkg")},
    ]
    out = qgis_python(profile, LOAD_LIKE_THE_DIALOG, json.dumps(runs))
    assert [m for m in out["messages"] if "transform" in m.lower()] == [] and out["errors"] == []
    crs_when_added = dict(out["added"])  # the window reports transform errors as soon as a layer is added
    assert crs_when_added["drone building"] == crs_when_added["drone land cover"] == ""
    assert crs_when_added["scene building"] == "EPSG:32633"
    assert out["tree"] == [  # top to bottom: the latest run on top, each run's polygons above its raster
        ["drone building", False, "singleSymbol", 1.0, False],
        ["drone water", False, "singleSymbol", 1.0, False],
        ["drone land cover", False, "paletted", 0.6, True],
        ["scene building", True, "singleSymbol", 1.0, False],
        ["scene water", True, "singleSymbol", 1.0, False],
        ["scene land cover", True, "paletted", 0.6, True],
    ]
    with sqlite3.connect(tmp_path / "a_f.gpkg") as db:
        assert {r[0] for r in db.execute("SELECT srs_id FROM gpkg_geometry_columns")} == {-1}
        assert db.execute('SELECT min(area_px) FROM "building"').fetchone()[0] >= 16  # MIN_AREA empty: 16 px


def test_model_list_names_each_model_once_with_purpose_and_resolution(profile):
    """The Model field: 'Automatic' first, then each bundled model once, labelled; filled without blocking."""
    script = r"""
from qgis.PyQt.QtWidgets import QWidget
from aerialseg_qgis import widgets
param = QgsApplication.processingRegistry().algorithmById("aerialseg:map").parameterDefinition("MODEL")
first = widgets.ModelWidgetWrapper(param, QWidget())
at_once = first._combo.count()  # the engine lists the models in the background
first._pending.result(timeout=120)
while first._combo.count() == at_once:
    app.processEvents()
items = [[first._combo.itemText(i), first._combo.itemData(i)] for i in range(first._combo.count())]
first.setValue("aerial-buildings-unet-r18")
second = widgets.ModelWidgetWrapper(param, QWidget())  # the list is cached per engine: filled at once
plain = widgets.model_label("roofs", {"classes": [{"name": "roof"}, {"name": "pond"}]})  # a card saying little
print(json.dumps({"at_once": at_once, "items": items, "picked": first.value(), "second": second._combo.count(),
                  "automatic": second.value(), "plain": plain}))
"""
    out = qgis_python(profile, script, gui=True)
    assert out["at_once"] == 1 and out["second"] == len(out["items"])
    assert out["items"][0] == ["Automatic (by ground resolution)", ""] and out["automatic"] == ""
    names = [data for _, data in out["items"][1:]]
    assert len(names) == len(set(names)) and {"aerial-buildings-unet-r18", "dubai-landcover-unet-r18"} <= set(names)
    labels = dict((data, text) for text, data in out["items"])
    assert labels["aerial-buildings-unet-r18"] == "aerial-buildings-unet-r18 — buildings, drone/aerial ~0.13 m"
    assert labels["dubai-landcover-unet-r18"] == "dubai-landcover-unet-r18 — land cover, satellite ~2 m"
    assert out["picked"] == "aerial-buildings-unet-r18"
    assert out["plain"] == "roofs — roof, pond, any resolution"


# ---------------------------------------------------------------- regularising buildings (issue 18)


def test_regularize_choices_give_the_engine_options(profile, scene_tif, classes_tif):
    """0 automatic passes nothing (the engine decides), 1 --regularize, 2 --no-regularize; a script's old true/false
    (from when it was a checkbox: processing.run with REGULARIZE=True, qgis_process REGULARIZE=true) means yes/no."""
    script = r"""
context, found = QgsProcessingContext(), {}
values = {"0": 0, "1": 1, "2": 2, "'2'": "2", "True": True, "False": False, "'true'": "true", "'FALSE'": "FALSE",
          "3": 3, "'maybe'": "maybe"}
outputs = {"OUTPUT_RASTER": "TEMPORARY_OUTPUT", "OUTPUT_VECTOR": "TEMPORARY_OUTPUT", "OUTPUT": "TEMPORARY_OUTPUT"}
for name, given in (("map", {"INPUT": sys.argv[1], **outputs}), ("vectorize", {"INPUT": sys.argv[2], **outputs})):
    alg = QgsApplication.processingRegistry().createAlgorithmById("aerialseg:" + name)
    param = alg.parameterDefinition("REGULARIZE")
    found[name] = {"options": param.options(), "default": param.defaultValue(),
                   "checked": {k: alg.checkParameterValues({**given, "REGULARIZE": v}, context)
                               for k, v in values.items()},
                   "args": {k: alg.vector_args({"CLASSES": "building", "REGULARIZE": v}, context)
                            for k, v in list(values.items())[:-2]},
                   "omitted": alg.vector_args({"CLASSES": "building"}, context)}
print(json.dumps(found))
"""
    out = qgis_python(profile, script, str(scene_tif), str(classes_tif))
    classes = ["--classes", "building"]
    yes, no = [*classes, "--regularize"], [*classes, "--no-regularize"]
    for name, automatic in (("map", "when the model works at 0.5 m/px or finer"), ("vectorize", "no")):
        found = out[name]
        assert found["options"][1:] == ["Yes", "No"] and automatic in found["options"][0]
        assert found["default"] == 0 and found["omitted"] == classes
        assert found["args"] == {"0": classes, "1": yes, "2": no, "'2'": no, "True": yes, "False": no,
                                 "'true'": yes, "'FALSE'": no}
        accepted = {k: ok for k, (ok, _) in found["checked"].items()}
        assert accepted == {**{k: True for k in found["args"]}, "3": False, "'maybe'": False}, found["checked"]


@pytest.fixture(scope="module")
def fine_crop(data) -> Path:
    """A 400 x 400 px crop of the bundled 0.13 m drone sample (a town: many roofs), EPSG:4326."""
    out = data / "banepa_crop.tif"
    with rasterio.open(REPO / "data" / "sample" / "banepa_sample.tif") as src:
        window = Window(200, 300, 400, 400)
        with rasterio.open(out, "w", **src.profile | {"width": 400, "height": 400,
                                                      "transform": src.window_transform(window)}) as dst:
            dst.write(src.read(window=window))
    return out


def _right_corner_share(gpkg: Path) -> tuple[int, float]:
    """Buildings in ``gpkg`` and the share of their outline corners within 3° of a right angle (in metres)."""
    import geopandas as gpd

    buildings = gpd.read_file(gpkg, layer="building")
    buildings = buildings.to_crs(buildings.estimate_utm_crs())
    right = []
    for polygon in buildings.geometry.explode(index_parts=False):
        ring = np.asarray(polygon.exterior.coords)[:-1]
        edges = np.roll(ring, -1, axis=0) - ring
        before = np.roll(edges, 1, axis=0)
        cross = before[:, 0] * edges[:, 1] - before[:, 1] * edges[:, 0]
        turn = np.degrees(np.arctan2(cross, (before * edges).sum(axis=1)))
        right += list(np.abs(np.abs(turn) - 90) < 3)
    return len(buildings), float(np.mean(right))


def test_map_squares_buildings_of_the_fine_building_model_by_default(profile, fine_crop, tmp_path):
    """Map on a 0.13 m orthophoto with the automatic model (the building model): Automatic squares the building
    outlines, as the engine does by default; No keeps them as traced; true (a script from the checkbox) is Yes."""
    shares, logs = {}, {}
    for choice in ("0", "2", "true"):
        gpkg = tmp_path / f"choice{choice}.gpkg"
        proc = qgis_process(profile, "run", "aerialseg:map", "--", f"INPUT={fine_crop}", "CLASSES=building",
                            f"REGULARIZE={choice}", f"OUTPUT_RASTER={tmp_path / f'choice{choice}.tif'}",
                            f"OUTPUT_VECTOR={gpkg}", json_out=False, timeout=600)
        shares[choice], logs[choice] = _right_corner_share(gpkg), proc.stdout
    (count, squared), (traced_count, traced) = shares["0"], shares["2"]
    assert "regularising building outlines" in logs["0"] and "regularising" not in logs["2"]
    assert count >= 3 and traced_count >= 3  # a town: several roofs
    assert squared > 0.7 and traced < 0.2, shares  # some odd shapes stay as traced: _square gives up on them
    assert shares["true"] == shares["0"]
