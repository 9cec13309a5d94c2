"""Outputs under hostile conditions (issue 16), through the real ``aerialseg`` command line.

Wrong output formats, cancels while ``map`` vectorises, bad folders of inputs, two runs racing for one
output, leftovers of killed runs, a read-only parent folder, a full disk and an early Ctrl-C. Each case
must end in exactly one ``aerialseg: error:`` line (or a clean success), with old outputs intact and
nothing half-written.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyogrio
import pytest
from rasterio.transform import from_origin

from aerialseg.scratch import HOST
from rasters import scene, write_raster

pytestmark = pytest.mark.slow
TILE = ["--tile-size", "512", "--overlap", "0"]  # the pointwise colour model: big tiles, quick runs


def _cli(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aerialseg.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=300, env={**os.environ, **(env or {})})


def _start(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "aerialseg.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, **(env or {})})


def _one_error(r: subprocess.CompletedProcess | tuple[int, str], status: int = 1) -> str:
    """The single error line of a failed run (``--progress json``: stderr holds nothing else)."""
    code, stderr = (r.returncode, r.stderr) if isinstance(r, subprocess.CompletedProcess) else r
    assert "Traceback" not in stderr and "internal error" not in stderr, stderr
    assert code == status, (code, stderr)
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aerialseg: error: "), stderr
    return lines[0]


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _listing(folder: Path) -> set[str]:
    return {p.name for p in folder.iterdir()}


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    return write_raster(tmp_path_factory.mktemp("photo") / "rgb.tif", scene(300, 500))


@pytest.fixture(scope="module")
def class_raster(tmp_path_factory, photo, colour_model) -> Path:
    out = tmp_path_factory.mktemp("classes") / "lc.tif"
    assert _cli("classify", photo, out, "-m", colour_model).returncode == 0
    return out


# ---------------------------------------------------------------- 1. formats


@pytest.mark.parametrize("name", ["lc.png", "lc.jpg", "lc.gpkg", "lc.vrt"])
def test_classify_refuses_a_raster_name_of_another_format(name, photo, colour_model, tmp_path):
    r = _cli("classify", photo, tmp_path / name, "-m", colour_model, "--progress", "json")
    assert ".tif or .tiff" in _one_error(r)
    assert _listing(tmp_path) == set()


def test_classify_refuses_a_confidence_raster_of_another_format(photo, colour_model, tmp_path):
    r = _cli("classify", photo, tmp_path / "lc.tif", "--confidence", tmp_path / "c.png", "-m", colour_model,
             "--progress", "json")
    assert "c.png" in _one_error(r)
    assert _listing(tmp_path) == set()


@pytest.mark.parametrize("name,driver,files", [
    ("f.shp", "ESRI Shapefile", {"f.shp", "f.shx", "f.dbf", "f.prj", "f.cpg"}),
    ("f.geojson", "GeoJSON", {"f.geojson"}),
    ("f.fgb", "FlatGeobuf", {"f.fgb"}),
])
def test_vectorize_writes_the_format_its_extension_names(name, driver, files, class_raster, tmp_path):
    reference = tmp_path / "ref" / "f.gpkg"
    reference.parent.mkdir()
    assert _cli("vectorize", class_raster, reference).returncode == 0
    out = tmp_path / name
    r = _cli("vectorize", class_raster, out, "--progress", "json")
    assert r.returncode == 0, r.stderr
    assert _listing(tmp_path) == files | {"ref"}
    info = pyogrio.read_info(out)
    assert info["driver"] == driver and info["crs"] == "EPSG:32633"
    assert list(info["fields"]) == ["class_id", "class_name", "area_m2"]  # Shapefile names fit 10 characters
    got = pyogrio.read_dataframe(out)
    for layer in ("building", "water"):
        want = pyogrio.read_dataframe(reference, layer=layer)
        mine = got[got.class_name == layer]
        assert len(mine) == len(want) > 0 and set(mine.class_id) == set(want.class_id)
        np.testing.assert_allclose(sorted(mine.area_m2), sorted(want.area_m2))


def test_vectorize_to_one_layer_formats_without_georeferencing_is_quiet(tmp_path):
    classes = np.full((1, 30, 40), 5, np.uint8)
    classes[0, 2:6, 10:20] = 7
    src = write_raster(tmp_path / "plain.tif", classes, crs=None)
    r = _cli("vectorize", src, tmp_path / "f.fgb", "--classes", "7", "--min-area", "0", "--progress", "json")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert pyogrio.read_info(tmp_path / "f.fgb")["driver"] == "FlatGeobuf"
    got = pyogrio.read_dataframe(tmp_path / "f.fgb")
    assert list(got.class_name) == ["class_7"] and list(got.area_px) == [40.0]  # no georeferencing: pixels


@pytest.mark.parametrize("name", ["f.tif", "f.csv", "f"])
def test_vectorize_refuses_other_formats(name, class_raster, tmp_path):
    r = _cli("vectorize", class_raster, tmp_path / name, "--progress", "json")
    assert ".gpkg, .shp, .geojson or .fgb" in _one_error(r)
    assert _listing(tmp_path) == set()


# ---------------------------------------------------------------- 2. map replaces both outputs or neither


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_map_cancelled_while_vectorising_keeps_both_old_outputs(signum, colour_model, tmp_path):
    src = write_raster(tmp_path / "big.tif", scene(2600, 2600, seed=3))  # 2 x 2 vectorize blocks
    out = tmp_path / "out"
    out.mkdir()
    old = {"big_landcover.tif": b"old raster", "big_features.gpkg": b"old polygons"}
    for name, data in old.items():
        (out / name).write_bytes(data)
    p = _start("map", src, out, "-m", colour_model, *TILE, "--overwrite", "--progress", "json")
    assert p.stdout is not None
    for line in p.stdout:  # cancel as soon as vectorising has begun
        event = json.loads(line)
        if event["type"] == "progress" and event["stage"] == "vectorize":
            p.send_signal(signum)
            break
    p.stdout.read()
    assert p.wait(timeout=120) == 130
    assert p.stderr is not None
    assert "cancelled" in _one_error((p.returncode, p.stderr.read()), 130)
    assert {name: (out / name).read_bytes() for name in _listing(out)} == old


# ---------------------------------------------------------------- 3. folders of inputs


def _folder(tmp_path: Path, odd: str) -> Path:
    folder = tmp_path / "tiles"
    folder.mkdir()
    t = from_origin(500000, 4000000, 0.5, 0.5)
    write_raster(folder / "a.tif", scene(60, 80), transform=t)
    if odd == "south-up":
        write_raster(folder / "b.tif", scene(60, 80, 1), transform=from_origin(500040, 3999970, 0.5, -0.5))
    elif odd == "2 bands":
        write_raster(folder / "b.tif", scene(60, 80, 1)[:2], transform=t)
    else:
        write_raster(folder / "b.tif", scene(60, 80, 1), crs="EPSG:32634", transform=t)
    write_raster(folder / "c.tif", scene(60, 80, 2), transform=from_origin(500040, 4000000, 0.5, 0.5))
    return folder


@pytest.mark.parametrize("odd,words", [("south-up", "north-up"), ("2 bands", "2 image band"),
                                       ("two CRSs", "EPSG:32634")])
@pytest.mark.parametrize("command", ["map", "classify"])
def test_a_bad_input_in_a_folder_is_refused_before_any_work(command, odd, words, colour_model, tmp_path):
    folder = _folder(tmp_path, odd)
    out = tmp_path / "out"
    out.mkdir()
    r = _cli(command, folder, out, "-m", colour_model, "--progress", "json")
    message = _one_error(r)
    assert "b.tif" in message and words in message
    assert not [e for e in map(json.loads, r.stdout.splitlines()) if e["type"] == "progress"]  # nothing started
    assert _listing(out) == set()  # no work folder either
    (folder / "b.tif").unlink()
    again = _cli(command, folder, out, "-m", colour_model)
    assert again.returncode == 0, again.stderr
    assert "tiles_landcover.vrt" in _listing(out) and not [n for n in _listing(out) if n.startswith(".")]


def test_a_folder_run_that_fails_with_nothing_done_leaves_no_work_folder(colour_model, tmp_path):
    folder = tmp_path / "tiles"
    folder.mkdir()
    write_raster(folder / "a.tif", np.zeros((3, 40, 40), np.uint8), nodata=0)  # passes the checks, fails to classify
    write_raster(folder / "b.tif", scene(40, 40), transform=from_origin(500020, 4000000, 0.5, 0.5))
    out = tmp_path / "out"
    out.mkdir()
    r = _cli("map", folder, out, "-m", colour_model, "--progress", "json")
    assert "a.tif has no valid pixels" in _one_error(r)
    assert _listing(out) == set()


# ---------------------------------------------------------------- 4. two runs, one output


def test_two_runs_racing_for_one_output_one_wins_the_other_refuses(photo, colour_model, tmp_path):
    out = tmp_path / "lc.tif"
    runs = [_start("classify", photo, out, "-m", colour_model, "--progress", "json") for _ in range(2)]
    results = [(p.wait(timeout=300), p.communicate()[1]) for p in runs]
    assert sorted(code for code, _ in results) == [0, 1], results
    message = _one_error(next(r for r in results if r[0] == 1))
    assert "already exists" in message or "another aerialseg run is writing" in message
    assert _listing(tmp_path) == {"lc.tif", "lc.qml", "lc.tif.aux.xml"}  # the lock is gone too


def test_an_output_locked_by_a_live_run_is_refused_and_a_dead_runs_lock_is_taken(photo, class_raster, tmp_path):
    lock = tmp_path / ".f.gpkg.aerialseg-lock"
    lock.write_text(f"{HOST} {os.getpid()}\n")  # this test process: alive
    r = _cli("vectorize", class_raster, tmp_path / "f.gpkg", "--progress", "json")
    assert "another aerialseg run is writing" in _one_error(r) and str(lock) in r.stderr
    assert _listing(tmp_path) == {lock.name}
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock.write_text(f"{HOST} {dead.pid}\n")
    r = _cli("vectorize", class_raster, tmp_path / "f.gpkg")
    assert r.returncode == 0, r.stderr
    assert _listing(tmp_path) == {"f.gpkg"}


# ---------------------------------------------------------------- 5. leftovers of a killed run


def test_leftovers_of_a_killed_run_are_cleaned_by_the_next(colour_model, tmp_path):
    src = write_raster(tmp_path / "big.tif", scene(1500, 1500, seed=4))
    out, scratch = tmp_path / "out", tmp_path / "tmp"
    out.mkdir()
    scratch.mkdir()
    env = {"TMPDIR": str(scratch)}
    foreign = [out / f".lc.tif.aerialseg-{'0' * 8}-1-abc", out / f".lc.tif.aerialseg-{HOST}-{os.getpid()}-abc",
               out / ".lc.tif.notours", scratch / "aerialseg-margins-x"]  # another machine's, a live one, not ours
    for path in foreign:
        path.mkdir()
    p = _start("classify", src, out / "lc.tif", "-m", colour_model, env=env)
    deadline = time.monotonic() + 120
    while not (_ours(out, p.pid) and _ours(scratch, p.pid)) and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.01)
    p.kill()
    p.wait()
    p.communicate()
    assert _ours(out, p.pid) and _ours(scratch, p.pid), "the run ended before its scratch folders appeared"
    r = _cli("classify", src, out / "lc.tif", "-m", colour_model, *TILE, env=env)  # its lock is stale too
    assert r.returncode == 0, r.stderr
    assert not _ours(out, p.pid) and not _ours(scratch, p.pid)
    assert all(path.exists() for path in foreign)
    assert _listing(out) == {"lc.tif", "lc.qml", "lc.tif.aux.xml"} | {p.name for p in foreign[:3]}


def test_map_on_a_cluster_killed_resumes_from_the_output_folder(colour_model, tmp_path):
    """SIGKILL leaves map's locks, staging folder and resumable work; the rerun takes over all three."""
    src = write_raster(tmp_path / "big.tif", scene(4200, 2100, seed=9))  # 6 blocks
    out = tmp_path / "out"
    out.mkdir()
    argv = ["map", src, out, "-m", colour_model, "--workers", "1", "--progress", "json"]
    p = subprocess.Popen([sys.executable, "-m", "aerialseg.cli", *map(str, argv)], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)  # its own group: the workers die too
    work = out / ".big_landcover.tif.aerialseg-work"
    deadline = time.monotonic() + 240
    while not _pieces(work) and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.2)
    os.killpg(p.pid, signal.SIGKILL)
    p.wait()
    assert _pieces(work), "the run ended before it finished a block"
    assert {".big_landcover.tif.aerialseg-lock", ".big_features.gpkg.aerialseg-lock"} <= _listing(out)
    r = _cli(*argv)
    assert r.returncode == 0, r.stderr
    logs = [e["message"] for e in map(json.loads, r.stdout.splitlines()) if e["type"] == "log"]
    assert any(m.startswith("resuming:") for m in logs), logs
    assert _listing(out) == {"big_landcover.tif", "big_landcover.qml", "big_landcover.tif.aux.xml",
                             "big_features.gpkg"}


def _pieces(work: Path) -> list[Path]:
    return [p for p in work.glob("piece_*.tif") if ".tmp." not in p.name]  # finished blocks


def _ours(folder: Path, pid: int) -> list[Path]:
    return [p for p in folder.iterdir() if f"-{HOST}-{pid}-" in p.name]


# ---------------------------------------------------------------- 6. read-only parent, full disk


@contextlib.contextmanager
def _tmpfs(folder: Path, options: str) -> Iterator[Path]:
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"mounting a tmpfs is not permitted here: {r.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_map_into_a_new_folder_under_a_read_only_folder(photo, colour_model, tmp_path):
    with _tmpfs(tmp_path / "ro", "ro,size=1m") as ro:
        r = _cli("map", photo, ro / "new", "-m", colour_model, "--progress", "json")
        message = _one_error(r)
        assert f"cannot create the output folder {ro / 'new'}" in message and "Read-only" in message
        assert _listing(ro) == set()


@pytest.mark.parametrize("command", ["classify", "map"])
def test_a_full_disk_is_said_in_one_line_and_leaves_nothing(command, colour_model, tmp_path):
    src = write_raster(tmp_path / "big.tif", scene(1500, 1500, seed=5))
    with _tmpfs(tmp_path / "full", "size=1m") as full:
        target = full / ("lc.tif" if command == "classify" else "out")
        r = _cli(command, src, target, "-m", colour_model, *TILE, "--progress", "json")
        message = _one_error(r)
        assert "the disk is full" in message and str(full) in message
        assert _listing(full) == set()


@pytest.mark.parametrize("name", ["f.gpkg", "f.shp", "f.fgb"])
def test_vectorize_onto_a_full_disk_is_said_in_one_line_and_leaves_nothing(name, class_raster, tmp_path):
    with _tmpfs(tmp_path / "full", "size=96k") as full:
        r = _cli("vectorize", class_raster, full / name, "--progress", "json")
        assert f"the disk is full: no space left in {full}" in _one_error(r)
        assert _listing(full) == set()


# ---------------------------------------------------------------- 7. Ctrl-C at once


@pytest.mark.parametrize("delay", [0.3, 0.6])
@pytest.mark.parametrize("command", ["classify", "evaluate"])
def test_ctrl_c_in_the_first_moments_gives_one_line(command, delay, class_raster, colour_model, tmp_path):
    """Status 130 and one line, whether the signal lands in imports (torch, for evaluate) or in the work."""
    if command == "classify":
        src = write_raster(tmp_path / "big.tif", scene(1200, 1200, seed=6))
        argv = ["classify", src, tmp_path / "lc.tif", "-m", colour_model]
    else:  # big enough to be still running when the signal comes (evaluate imports no torch any more)
        classes = np.random.default_rng(0).integers(0, 3, (1, 5000, 5000), dtype=np.uint8)
        big = write_raster(tmp_path / "big.tif", classes)
        argv = ["evaluate", big, big, "--classes", colour_model]
    p = _start(*argv, "--progress", "json")
    time.sleep(delay)
    p.send_signal(signal.SIGINT)
    _, stderr = p.communicate(timeout=120)
    assert "cancelled" in _one_error((p.returncode, stderr), 130)
    assert _listing(tmp_path) <= {"big.tif"}
