"""classify on a real Dask cluster: a scheduler and workers started as subprocesses on loopback, no mocks.

A raster classified block by block on the cluster must give the bytes ``classify`` gives in one process,
also when a worker is killed mid-run; a cancelled run leaves nothing behind; a failed run keeps its
finished blocks and a rerun resumes from them. The command line (``--workers``, ``--scheduler``) is run
as a subprocess on a folder of georeferenced tiles cut from the real Dutch orthophoto and on one big
raster, and must write what the plain run writes; bad cluster options give one clean error line.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from distributed import Client, get_task_stream
from rasterio.windows import Window

import aerialseg
from aerialseg.errors import AerialSegError, Cancelled
from aerialseg.raster import CLASS_TABLE_TAG, read_class_table
from aerialseg.runtime import MODELS_DIR
from aerialseg.vectorize import vectorize
from rasters import expected_classes
from shared_data import RASTERS, needs_shared_data

# rasterio's own window_transform still multiplies Affines with '*'
pytestmark = pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")
REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent  # the venv's bin: dask and aerialseg live beside its python
NL = RASTERS / "nl_aerial_rd_new_1210x718.tif"  # real RD New orthophoto, RGB + alpha, 0.19 m
DEFAULT_MODEL = MODELS_DIR / "dubai-landcover-unet-r18.onnx"  # package data
# 1210 x 718 px without resampling, 128 px tiles (32 px overlap), 200 px blocks: 7 x 4 = 28 blocks.
KW = {"tile_size": 128, "block_size": 200, "resample": False}
N_BLOCKS = 28
# The bundled model resamples the orthophoto to 2 m (117 x 69 px); 64 px tiles with a 32 px stride and
# 32 px blocks: 4 x 3 blocks.
DEFAULT_KW = {"tile_size": 64, "overlap": 32, "block_size": 32}


def _tool(name: str) -> str:
    path = BIN / name
    return str(path) if path.exists() else shutil.which(name) or name


def _worker_env() -> dict[str, str]:
    """Subprocess environment: ``import aerialseg`` finds the very package this process tests."""
    package_root = str(Path(aerialseg.__file__).resolve().parents[1])
    path = [package_root, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return dict(os.environ, PYTHONPATH=os.pathsep.join(path), OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")


def _listing(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()} if folder.exists() else set()


def _same_file(a: Path, b: Path) -> None:
    assert a.read_bytes() == b.read_bytes(), f"{a} and {b} differ"


def _same_pixels(a: Path, b: Path) -> None:
    with rasterio.open(a) as x, rasterio.open(b) as y:
        assert (x.crs, x.transform, x.shape, x.count) == (y.crs, y.transform, y.shape, y.count)
        np.testing.assert_array_equal(x.read(), y.read())


# ---------------------------------------------------------------- a real cluster on loopback


class Cluster:
    """``dask scheduler`` and ``dask worker`` subprocesses, each in its own process group (killable)."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.address = folder, ""
        self.procs: list[subprocess.Popen] = []
        self.workers: list[subprocess.Popen] = []

    def start(self, n_workers: int) -> None:
        sched_file = self.folder / "scheduler.json"
        scheduler = self._spawn("scheduler", "scheduler", "--host", "127.0.0.1", "--port", "0", "--scheduler-file",
                                str(sched_file), "--no-dashboard")
        deadline = time.monotonic() + 60
        while not self.address:
            with contextlib.suppress(OSError, ValueError, KeyError):  # not there yet, or half written
                self.address = json.loads(sched_file.read_text())["address"]
            if not self.address:
                if time.monotonic() > deadline or scheduler.poll() is not None:
                    raise RuntimeError(f"the Dask scheduler did not start: {self._log('scheduler')}")
                time.sleep(0.1)
        for _ in range(n_workers):
            self.add_worker()
        self.wait_for_workers(n_workers)

    def _spawn(self, name: str, *args: str) -> subprocess.Popen:
        with open(self.folder / f"{name}.log", "ab") as log:
            proc = subprocess.Popen([_tool("dask"), *args], cwd=REPO, env=_worker_env(), stdin=subprocess.DEVNULL,
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def _log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")[-2000:]

    def add_worker(self) -> subprocess.Popen:
        proc = self._spawn(f"worker{len(self.workers)}", "worker", self.address, "--nworkers", "1", "--nthreads", "1",
                           "--host", "127.0.0.1", "--no-dashboard", "--death-timeout", "60",
                           "--local-directory", str(self.folder))
        self.workers.append(proc)
        return proc

    def wait_for_workers(self, n: int, timeout: float = 120) -> None:
        """Until the scheduler has exactly ``n`` workers."""
        with Client(self.address, timeout=30) as client:
            deadline = time.monotonic() + timeout
            while len(client.scheduler_info(n_workers=-1)["workers"]) != n:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the cluster never had {n} workers: {self._log('scheduler')}")
                time.sleep(0.1)

    def kill(self, proc: subprocess.Popen) -> None:
        """SIGKILL a whole process group (a worker's nanny and the worker process it runs)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)

    def close(self) -> None:
        for proc in reversed(self.procs):  # workers first, then the scheduler
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill(proc)
            with contextlib.suppress(ProcessLookupError):  # anything the group still holds
                os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A scheduler and two single-threaded workers on 127.0.0.1; torn down with the module."""
    c = Cluster(tmp_path_factory.mktemp("dask"))
    try:
        c.start(2)
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def client(cluster):
    with Client(cluster.address, timeout=30) as c:
        yield c


def _wait_idle(client: Client, timeout: float = 60) -> None:
    """Until no task runs on any worker: the blocks of a stopped run may still be running there."""

    def busy(dask_worker) -> int:  # nested, so it is pickled by value: workers cannot import this module
        running = ("executing", "cancelled", "resumed", "long-running")
        return sum(ts.state in running for ts in dask_worker.state.tasks.values())

    deadline = time.monotonic() + timeout
    while any(client.processing().values()) or any(client.run(busy).values()):
        assert time.monotonic() < deadline, "the cluster never became idle"
        time.sleep(0.1)


@pytest.fixture(scope="module", autouse=True)
def shared_data_untouched():
    """Reading the shared orthophoto must never write next to it (no .aux.xml, no work folders)."""
    if not NL.exists():  # the tests that read it skip
        yield
        return
    before = _listing(RASTERS)
    size = NL.stat().st_size
    yield
    assert _listing(RASTERS) == before and NL.stat().st_size == size


# ---------------------------------------------------------------- one raster, block by block


@pytest.fixture(scope="module")
def reference(tmp_path_factory, conv_model) -> dict[str, Path]:
    """The orthophoto classified in this process (the 3x3-conv model: tiles see their neighbours)."""
    d = tmp_path_factory.mktemp("reference")
    aerialseg.classify(NL, d / "lc.tif", conv_model, confidence=d / "conf.tif", device="cpu", **KW)
    return {"lc": d / "lc.tif", "conf": d / "conf.tif", "dir": d}


@pytest.mark.slow
@needs_shared_data(NL)
def test_one_raster_on_the_cluster_is_byte_identical(client, reference, conv_model, tmp_path):
    progress: list[tuple[int, int]] = []
    with get_task_stream(client) as stream:
        out = aerialseg.classify(NL, tmp_path / "lc.tif", conv_model, confidence=tmp_path / "conf.tif",
                                 client=client, on_progress=lambda d, t: progress.append((d, t)), **KW)
    assert out == tmp_path / "lc.tif"
    for name in ("lc.tif", "conf.tif", "lc.qml", "conf.qml", "lc.tif.aux.xml"):
        _same_file(tmp_path / name, reference["dir"] / name)
    _same_pixels(tmp_path / "lc.tif", reference["lc"])
    _same_pixels(tmp_path / "conf.tif", reference["conf"])
    with rasterio.open(out) as ds:
        assert ds.tags()[CLASS_TABLE_TAG] and [c.name for c in read_class_table(ds)] == ["building", "water", "land"]
        assert set(np.unique(ds.read(1))) <= {0, 1, 2}
    assert progress[0] == (0, N_BLOCKS) and progress[-1] == (N_BLOCKS, N_BLOCKS)
    assert [d for d, _ in progress] == list(range(N_BLOCKS + 1))
    computed = [t for t in stream.data if "compute" in str(t["key"])]
    assert len(computed) == N_BLOCKS, "every block's tiles are computed exactly once"
    assert len({t["worker"] for t in computed}) == 2, "both workers did real work"
    assert _listing(tmp_path) == {"lc.tif", "conf.tif", "lc.qml", "conf.qml", "lc.tif.aux.xml"}  # no work folder


@pytest.mark.slow
@needs_shared_data(NL)
def test_the_bundled_model_on_the_cluster_is_byte_identical(client, tmp_path):
    """The real UNet on the orthophoto resampled to its 2 m ground resolution, in 12 blocks."""
    one = aerialseg.classify(NL, tmp_path / "one.tif", DEFAULT_MODEL, device="cpu", **DEFAULT_KW)
    progress: list[int] = []
    many = aerialseg.classify(NL, tmp_path / "many.tif", DEFAULT_MODEL, client=client,
                              on_progress=lambda d, t: progress.append(t), **DEFAULT_KW)
    assert progress[0] == 12
    _same_file(one, many)
    _same_pixels(one, many)
    with rasterio.open(many) as ds:
        assert [c.name for c in read_class_table(ds)] == ["building", "land", "road", "vegetation", "water"]
        assert len(np.unique(ds.read(1))) >= 2  # a real map, not one class everywhere


@pytest.mark.slow
@needs_shared_data(NL)
def test_cancel_leaves_nothing_behind(client, conv_model, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    done = [0]

    def progress(d: int, t: int) -> None:
        done[0] = d

    with pytest.raises(Cancelled):
        aerialseg.classify(NL, out / "lc.tif", conv_model, confidence=out / "conf.tif", client=client,
                           on_progress=progress, should_cancel=lambda: done[0] >= 1, **KW)
    assert done[0] < N_BLOCKS
    assert _listing(out) == set()
    _wait_idle(client)  # blocks still running when it was cancelled must not write anything afterwards
    assert _listing(out) == set()


@pytest.mark.slow
@needs_shared_data(NL)
def test_a_failed_run_resumes_where_it_stopped(client, reference, conv_model, tmp_path, caplog):
    out = tmp_path / "lc.tif"
    work = tmp_path / ".lc.tif.aerialseg-work"

    def fail_after_five(done: int, total: int) -> None:
        if done >= 5:
            raise RuntimeError("the network went down")

    with pytest.raises(AerialSegError, match="rerun the same command to resume"):
        aerialseg.classify(NL, out, conv_model, client=client, on_progress=fail_after_five, **KW)
    assert not out.exists() and work.is_dir()
    _wait_idle(client)
    kept = len(list(work.glob("piece_*.tif")))
    assert 5 <= kept < N_BLOCKS
    logger = logging.getLogger("aerialseg")
    logger.addHandler(caplog.handler)  # the CLI's reporter may have turned propagation off
    try:
        with caplog.at_level(logging.INFO, logger="aerialseg"):
            aerialseg.classify(NL, out, conv_model, client=client, **KW)
    finally:
        logger.removeHandler(caplog.handler)
    assert f"resuming: {kept} blocks already done" in caplog.text
    _same_file(out, reference["lc"])
    _same_pixels(out, reference["lc"])
    assert not work.exists()
    assert _listing(tmp_path) == {"lc.tif", "lc.qml", "lc.tif.aux.xml"}


@needs_shared_data(NL)
@pytest.mark.slow
def test_killing_a_worker_mid_run_changes_nothing(cluster, client, reference, conv_model, tmp_path):
    victim = cluster.workers[0]
    killed_at: list[int] = []

    def kill_on_first_block(done: int, total: int) -> None:
        if done >= 1 and not killed_at:
            cluster.kill(victim)
            killed_at.append(done)

    try:
        out = aerialseg.classify(NL, tmp_path / "lc.tif", conv_model, confidence=tmp_path / "conf.tif",
                                 client=client, on_progress=kill_on_first_block, **KW)
        assert killed_at and killed_at[0] < N_BLOCKS
        assert len(client.scheduler_info()["workers"]) == 1, "the killed worker is gone"
        _same_file(out, reference["lc"])
        _same_file(tmp_path / "conf.tif", reference["conf"])
        _same_pixels(out, reference["lc"])
        assert _listing(tmp_path) == {"lc.tif", "conf.tif", "lc.qml", "conf.qml", "lc.tif.aux.xml"}
    finally:  # give the module its second worker back
        cluster.workers.remove(victim)
        cluster.add_worker()
        cluster.wait_for_workers(2)


@needs_shared_data(NL, RASTERS / "rasterio_RGB.byte.tif")
@pytest.mark.slow
def test_two_jobs_on_one_scheduler_do_not_mix(cluster, reference, conv_model, tmp_path):
    """Two users (two clients) classify different rasters on one shared scheduler at the same time."""
    rgb = RASTERS / "rasterio_RGB.byte.tif"
    rgb_ref = aerialseg.classify(rgb, tmp_path / "rgb_ref.tif", conv_model, device="cpu", **KW)
    started, second_done = threading.Event(), threading.Event()

    def first_waits_for_second(done: int, total: int) -> None:
        if done == 1:  # the first job's graph is on the scheduler and running: let the second one start
            started.set()
            second_done.wait(timeout=120)

    with Client(cluster.address, timeout=30) as a, Client(cluster.address, timeout=30) as b, \
            ThreadPoolExecutor(2) as pool:
        first = pool.submit(aerialseg.classify, NL, tmp_path / "nl.tif", conv_model, client=a,
                            on_progress=first_waits_for_second, **KW)
        assert started.wait(timeout=120)
        try:
            second = aerialseg.classify(rgb, tmp_path / "rgb.tif", conv_model, client=b, **KW)
        finally:
            second_done.set()
        first.result(timeout=120)
    _same_pixels(tmp_path / "nl.tif", reference["lc"])
    _same_pixels(second, rgb_ref)


# ---------------------------------------------------------------- the command line


def _cli(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess:
    """The real ``aerialseg`` command of the venv, as a user runs it."""
    return subprocess.run([_tool("aerialseg"), *map(str, args)], capture_output=True, text=True, cwd=REPO,
                          env=_worker_env(), timeout=timeout)


def _run_all(jobs: dict[str, list]) -> dict[str, subprocess.CompletedProcess]:
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = {name: pool.submit(_cli, *args) for name, args in jobs.items()}
        return {name: f.result() for name, f in futures.items()}


def _ok(r: subprocess.CompletedProcess) -> None:
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Traceback" not in r.stderr


def _ran_on_a_cluster(r: subprocess.CompletedProcess, unit: str, total: int, says: str) -> None:
    """A ``--progress json`` run: it said it used Dask and counted ``total`` ``unit``s of cluster work."""
    _ok(r)
    lines = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    assert any(line["type"] == "log" and says in line["message"] for line in lines), r.stdout[-3000:]
    classify = [line for line in lines if line["type"] == "progress" and line["stage"] == "classify"]
    assert classify and {(p["unit"], p["total"]) for p in classify} == {(unit, total)}
    assert classify[-1]["done"] == total


def _features(gpkg: Path) -> dict[str, list[tuple]]:
    """Each layer's rows, sorted: (normalised WKB, class id, class name, area) for polygon layers; the
    ``layer_styles`` table without its time stamps."""
    layers = {}
    for name, geometry_type in pyogrio.list_layers(gpkg):
        df = pyogrio.read_dataframe(gpkg, layer=name)
        if geometry_type is None:
            layers[name] = sorted(tuple(map(str, row)) for row in df.drop(columns="update_time").itertuples(False))
            continue
        wkb = shapely.to_wkb(shapely.normalize(np.asarray(df.geometry.array)))
        layers[name] = sorted(zip(wkb, df["class_id"], df["class_name"], np.round(df["area_m2"], 6)))
    return layers


def _same_features(a: Path, b: Path) -> dict[str, list[tuple]]:
    fa, fb = _features(a), _features(b)
    assert fa.keys() == fb.keys()
    for layer in fa:
        assert len(fa[layer]) == len(fb[layer]), layer
        assert fa[layer] == fb[layer], f"layer {layer} differs"
    return fa


TILE_ROWS, TILE_COLS = (0, 359, 718), (0, 403, 806, 1210)  # 2 x 3 tiles of the orthophoto


@pytest.fixture(scope="module")
def tiles(tmp_path_factory) -> Path:
    """The orthophoto cut into 2 x 3 georeferenced GeoTIFF tiles (same profile, window transforms)."""
    folder = tmp_path_factory.mktemp("tiles_in") / "tiles"
    folder.mkdir()
    with rasterio.open(NL) as src:
        for r in range(2):
            for c in range(3):
                window = Window(TILE_COLS[c], TILE_ROWS[r], TILE_COLS[c + 1] - TILE_COLS[c],
                                TILE_ROWS[r + 1] - TILE_ROWS[r])
                profile = {**src.profile, "width": window.width, "height": window.height,
                           "transform": src.window_transform(window)}
                with rasterio.open(folder / f"tile_{r}_{c}.tif", "w", **profile) as dst:
                    dst.write(src.read(window=window))
                    dst.colorinterp = src.colorinterp
    return folder


@needs_shared_data(NL)
@pytest.mark.slow
def test_map_a_folder_of_tiles_on_a_cluster(cluster, tiles, colour_model, tmp_path):
    base = tmp_path / "runs"
    base.mkdir()
    model = ["-m", colour_model]
    runs = _run_all({"plain": ["map", tiles, base / "plain", *model, "--progress", "none"],
                     "workers": ["map", tiles, base / "workers", *model, "--progress", "json", "--workers", "2"],
                     "scheduler": ["map", tiles, base / "scheduler", *model, "--progress", "json",
                                   "--scheduler", cluster.address]})
    _ok(runs["plain"])
    _ran_on_a_cluster(runs["workers"], "file", 6, "local Dask cluster: 2 worker processes")
    _ran_on_a_cluster(runs["scheduler"], "file", 6, f"Dask scheduler {cluster.address}: 2 workers")
    plain = base / "plain"
    names = {f"tile_{r}_{c}_landcover{ext}" for r in range(2) for c in range(3)
             for ext in (".tif", ".qml", ".tif.aux.xml")}
    names |= {"tiles_landcover.vrt", "tiles_landcover.qml", "tiles_features.gpkg"}
    assert _listing(plain) == names  # nothing hidden left behind
    for run in ("workers", "scheduler"):
        other = base / run
        assert _listing(other) == names, run
        for name in sorted(names - {"tiles_features.gpkg"}):
            _same_file(plain / name, other / name)  # per-tile rasters, their styles and the VRT itself
        with rasterio.open(plain / "tiles_landcover.vrt") as x, rasterio.open(other / "tiles_landcover.vrt") as y:
            np.testing.assert_array_equal(x.read(1), y.read(1))
        _same_features(plain / "tiles_features.gpkg", other / "tiles_features.gpkg")

    vrt = plain / "tiles_landcover.vrt"
    with rasterio.open(NL) as src, rasterio.open(vrt) as ds:
        assert (ds.crs, ds.shape) == (src.crs, src.shape)
        assert ds.transform.almost_equals(src.transform)
        mosaic = ds.read(1)
        np.testing.assert_array_equal(mosaic, expected_classes(src.read([1, 2, 3])))  # a pointwise model: exact
        assert [c.name for c in read_class_table(ds)] == ["building", "water", "land"]
        assert ds.tags()["AERIALSEG_MODEL"] == "colour"
        assert ds.colormap(1)[0] == (60, 16, 152, 255) and ds.colormap(1)[1] == (226, 169, 41, 255)
        profile = ds.profile
        colours, tags = ds.colormap(1), ds.tags()
    names_xml = ET.parse(vrt).getroot().find("VRTRasterBand/CategoryNames")
    assert [e.text for e in names_xml] == ["building", "water", "land"]

    # Polygons are whole across the tiles' edges: the mosaic's GeoPackage equals that of one raster.
    single = tmp_path / "single.tif"
    profile.update(driver="GTiff", tiled=True, blockxsize=512, blockysize=512, compress="deflate")
    with rasterio.open(single, "w", **profile) as dst:
        dst.write(mosaic, 1)
        dst.write_colormap(1, colours)
        dst.update_tags(**tags)
    whole = vectorize(single, tmp_path / "single.gpkg")
    features = _same_features(plain / "tiles_features.gpkg", whole)
    seams_x = [profile["transform"].c + c * profile["transform"].a for c in TILE_COLS[1:-1]]
    seam_y = profile["transform"].f + TILE_ROWS[1] * profile["transform"].e
    across = 0
    for layer in ("building", "water"):
        for wkb, *_ in features[layer]:
            x0, y0, x1, y1 = shapely.from_wkb(wkb).bounds
            across += any(x0 < x < x1 for x in seams_x) or y0 < seam_y < y1
    assert across > 10, "some polygons must cross the tile seams for this check to mean anything"


@pytest.fixture(scope="module")
def big_raster(tmp_path_factory) -> Path:
    """2420 x 2154 px of real imagery (the orthophoto mirrored 2 x 3, so seams are continuous): 2 x 2 blocks."""
    with rasterio.open(NL) as src:
        a, profile, colorinterp = src.read(), src.profile, src.colorinterp
    row = np.concatenate([a, a[:, :, ::-1]], axis=2)
    data = np.concatenate([row, row[:, ::-1], row], axis=1)
    profile.update(width=data.shape[2], height=data.shape[1], tiled=True, blockxsize=256, blockysize=256)
    path = tmp_path_factory.mktemp("big") / "big.tif"
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
        dst.colorinterp = colorinterp
    return path


@needs_shared_data(NL)
@pytest.mark.slow
def test_map_one_big_raster_with_local_workers(big_raster, conv_model, tmp_path):
    runs = _run_all({"plain": ["map", big_raster, tmp_path / "plain", "-m", conv_model, "--progress", "none"],
                     "workers": ["map", big_raster, tmp_path / "workers", "-m", conv_model, "--progress", "json",
                                 "--workers", "2"]})
    _ok(runs["plain"])
    _ran_on_a_cluster(runs["workers"], "block", 4, "local Dask cluster: 2 worker processes")
    names = {"big_landcover.tif", "big_landcover.qml", "big_landcover.tif.aux.xml", "big_features.gpkg"}
    assert _listing(tmp_path / "plain") == names and _listing(tmp_path / "workers") == names
    for name in sorted(names - {"big_features.gpkg"}):
        _same_file(tmp_path / "plain" / name, tmp_path / "workers" / name)
    _same_pixels(tmp_path / "plain" / "big_landcover.tif", tmp_path / "workers" / "big_landcover.tif")
    features = _same_features(tmp_path / "plain" / "big_features.gpkg", tmp_path / "workers" / "big_features.gpkg")
    assert len(features["building"]) + len(features["water"]) > 100


# ---------------------------------------------------------------- bad cluster options


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory, colour_model) -> dict[str, tuple[subprocess.CompletedProcess, Path]]:
    """Each bad command line, run concurrently once, with an output path that does not exist yet."""
    d = tmp_path_factory.mktemp("bad")
    empty = d / "no_rasters"
    empty.mkdir()
    (empty / "readme.txt").write_text("no rasters here\n")
    small = d / "small.tif"
    corner = Window(0, 0, 160, 120)
    with rasterio.open(NL) as src:
        profile = {**src.profile, "width": 160, "height": 120, "transform": src.window_transform(corner)}
        with rasterio.open(small, "w", **profile) as dst:
            dst.write(src.read(window=corner))
    m = ["-m", colour_model, "--progress", "none"]
    nowhere = "tcp://127.0.0.1:1"  # nothing listens on port 1
    cases = {
        "map, scheduler unreachable": ["map", small, d / "out1", *m, "--scheduler", nowhere],
        "classify, scheduler unreachable": ["classify", small, d / "out2.tif", *m, "--scheduler", nowhere],
        "map, a folder without rasters": ["map", empty, d / "out3", *m, "--workers", "2"],
        "classify, a folder without rasters": ["classify", empty, d / "out4", *m, "--scheduler", nowhere],
        "map, negative workers": ["map", small, d / "out5", *m, "--workers", "-1"],
        "map, zero workers": ["map", small, d / "out6", *m, "--workers", "0"],
        "classify, zero workers": ["classify", small, d / "out7.tif", *m, "--workers", "0"],
    }
    runs = _run_all({case: args for case, args in cases.items()})
    return {case: (runs[case], Path(cases[case][2])) for case in cases}


def _assert_one_clean_error(r: subprocess.CompletedProcess, output: Path) -> str:
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("aerialseg: error: "), r.stderr
    assert "internal error" not in lines[0]
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert not output.exists(), f"{output} was left behind"
    assert not [p for p in output.parent.iterdir() if p.name.startswith(".")], "hidden files were left behind"
    return lines[0]


@needs_shared_data(NL)
@pytest.mark.slow  # the unreachable scheduler takes its 15 s connection timeout
@pytest.mark.parametrize("case,words", [
    ("map, scheduler unreachable", "cannot reach the Dask scheduler at tcp://127.0.0.1:1"),
    ("classify, scheduler unreachable", "cannot reach the Dask scheduler at tcp://127.0.0.1:1"),
    ("map, a folder without rasters", "holds no rasters"),
    ("classify, a folder without rasters", "holds no rasters"),
    ("map, negative workers", "--workers must be at least 1"),
])
def test_bad_cluster_options_give_one_clean_error(bad_runs, case, words):
    r, output = bad_runs[case]
    assert words in _assert_one_clean_error(r, output)


@needs_shared_data(NL)
@pytest.mark.slow
@pytest.mark.parametrize("case", ["map, zero workers", "classify, zero workers"])
def test_zero_workers_is_a_user_error(bad_runs, case):
    r, output = bad_runs[case]
    assert "--workers must be at least 1" in _assert_one_clean_error(r, output)


def test_inputs_names_and_mosaic_rules(tmp_path):
    """A file whose name holds glob characters is one raster; a glob's outputs take the folder's name;
    rasters without georeferencing cannot be mosaicked (one-line InputError)."""
    import rasterio

    from aerialseg.card import ClassInfo, ModelCard
    from aerialseg.errors import InputError
    from aerialseg.mosaic import expand_inputs, mosaic_name, write_vrt

    odd = tmp_path / "ortho[2023].tif"
    plain = {"driver": "GTiff", "width": 8, "height": 8, "count": 1, "dtype": "uint8"}
    for path in (odd, tmp_path / "b.tif"):
        with rasterio.open(path, "w", **plain) as ds:
            ds.write(np.zeros((1, 8, 8), np.uint8))
    assert expand_inputs(odd) is None
    assert expand_inputs(tmp_path / "*.tif") == sorted([odd, tmp_path / "b.tif"])
    assert mosaic_name(tmp_path / "*.tif") == tmp_path.name
    (tmp_path / "2023a").mkdir()
    assert mosaic_name(tmp_path / "2023*" / "*.tif") == tmp_path.name
    card = ModelCard(name="m", classes=(ClassInfo(0, "a", "#000000"),))
    with pytest.raises(InputError, match="not georeferenced"):
        write_vrt([odd, tmp_path / "b.tif"], tmp_path / "m.vrt", card)
