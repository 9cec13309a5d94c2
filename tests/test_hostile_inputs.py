"""Hostile and unusual input values against the real command line (issue 16, the input part).

Each case runs ``python -m aerialseg.cli`` as a subprocess on generated files and checks the promise of
the README: one ``aerialseg: error:`` line on stderr naming what to fix (status 1, 2 for usage errors), no
traceback, nothing written, the input unchanged; or, for unusual but valid inputs, a correct map.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import zipfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import onnx
import pytest
import rasterio
from onnx import numpy_helper
from rasterio.transform import from_origin

from aerialseg.card import CARD_KEY
from rasters import expected_classes, read_band, scene, write_raster
from tinymodels import colour_card, write_colour_model

pytestmark = pytest.mark.slow

SCENE = scene(120, 160, seed=3)


def cli(*args: str | Path, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aerialseg.cli", *map(str, args)], capture_output=True,
                          text=True, timeout=300, cwd=cwd, env=dict(os.environ))


def run_all(jobs: dict[str, list]) -> dict[str, subprocess.CompletedProcess]:
    """Independent command lines, run two at a time (they are mostly interpreter start-up)."""
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(cli, *argv) for name, argv in jobs.items()}
        return {name: f.result() for name, f in futures.items()}


def assert_one_error_line(r: subprocess.CompletedProcess, *words: str, status: int = 1) -> str:
    """Exactly one ``aerialseg: error:`` line on stderr (nothing else), the status, and the words in it."""
    assert r.returncode == status, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aerialseg: error:"), r.stderr
    assert "internal error" not in lines[0]
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def with_card(source: Path, path: Path, **changes) -> Path:
    """A copy of an ONNX model whose stored card JSON has ``changes`` (no validation on the way)."""
    model = onnx.load(str(source))
    for p in model.metadata_props:
        if p.key == CARD_KEY:
            card = json.loads(p.value)
            card.update(changes)
            p.value = json.dumps(card)  # json writes NaN and Infinity as such
    onnx.save(model, str(path))
    return path


def write_at(path: Path, data: np.ndarray, metres: float) -> Path:
    """A GeoTIFF in UTM 33N with pixels of ``metres``."""
    return write_raster(path, data, transform=from_origin(500000, 4000000, metres, metres))


# ---------------------------------------------------------------- 1. non-finite input values


def test_non_finite_input_values_are_nodata_and_the_rest_of_the_map_is_unchanged(tmp_path, colour_model):
    photo = SCENE.astype(np.float32)
    hostile = photo.copy()
    bad = np.zeros(SCENE.shape[1:], bool)
    bad[10:15, 20:25] = True  # 25 +inf pixels
    hostile[0][bad] = np.inf
    bad[50, 60:70] = True
    hostile[1, 50, 60:70] = -np.inf
    bad[100:103, 5:8] = True
    hostile[2, 100:103, 5:8] = np.nan
    clean_tif, hostile_tif = write_raster(tmp_path / "clean.tif", photo), write_raster(tmp_path / "inf.tif", hostile)
    before = md5(hostile_tif)
    runs = run_all({"clean": ["classify", clean_tif, tmp_path / "clean_lc.tif", "-m", colour_model],
                    "hostile": ["classify", hostile_tif, tmp_path / "inf_lc.tif", "-m", colour_model]})
    for r in runs.values():
        assert r.returncode == 0, r.stderr
        assert r.stderr == ""  # no numpy warning, no info line without -v
    clean, result = read_band(tmp_path / "clean_lc.tif"), read_band(tmp_path / "inf_lc.tif")
    np.testing.assert_array_equal(clean, expected_classes(SCENE))
    assert (result[bad] == 255).all()
    np.testing.assert_array_equal(result[~bad], clean[~bad])
    assert md5(hostile_tif) == before


# ---------------------------------------------------------------- 2. model cards and model output


BAD_CARDS = {
    "mean": dict(mean=[float("nan"), 0.0, 0.0]),
    "std": dict(std=[1.0, float("inf"), 1.0]),
    "std ": dict(std=[1.0, 0.0, 1.0]),
    "scale": dict(scale=float("nan")),
    "tile_size": dict(tile_size=0),
    "tile_size ": dict(tile_size=1),
    "tile_size  ": dict(tile_size=100000),
    "overlap": dict(overlap=40),  # more than half of the 64 px tile
}


def test_invalid_model_cards_are_refused_naming_the_model_and_the_field(tmp_path, colour_model):
    rgb = write_raster(tmp_path / "rgb.tif", SCENE)
    models = {field: with_card(colour_model, tmp_path / f"bad{i}.onnx", **change)
              for i, (field, change) in enumerate(BAD_CARDS.items())}
    deepness = tmp_path / "bad_deepness.onnx"
    model = onnx.load(str(colour_model))
    del model.metadata_props[:]
    for key, value in {"class_names": {"0": "a", "1": "b", "2": "c"}, "tile_size": 100000}.items():
        model.metadata_props.add(key=key, value=json.dumps(value))
    onnx.save(model, str(deepness))
    models["tile_size   "] = deepness
    runs = run_all({field: ["classify", rgb, tmp_path / f"lc{i}.tif", "-m", model]
                    for i, (field, model) in enumerate(models.items())})
    for field, r in runs.items():
        assert_one_error_line(r, str(models[field]), field.strip())
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("bad")) == ["rgb.tif"]


def test_a_model_returning_nan_fails_naming_the_model_and_writes_no_map(tmp_path, colour_model):
    model = onnx.load(str(colour_model))
    for init in model.graph.initializer:
        if init.name == "w":
            init.CopyFrom(numpy_helper.from_array(np.full_like(numpy_helper.to_array(init), np.nan), "w"))
    onnx.save(model, str(tmp_path / "nan.onnx"))
    rgb = write_raster(tmp_path / "rgb.tif", SCENE)
    r = cli("classify", rgb, tmp_path / "lc.tif", "-m", tmp_path / "nan.onnx")
    assert_one_error_line(r, "model 'colour'", "NaN")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nan.onnx", "rgb.tif"]


def test_a_checkpoint_with_nan_weights_fails_naming_the_model_and_writes_no_map(tmp_path):
    import torch

    from aerialseg.nets import build_model, save_checkpoint

    arch = {"name": "unet", "encoder": "resnet18", "encoder_depth": 3, "in_channels": 3, "classes": 3,
            "decoder_channels": [16, 8, 8]}
    net = build_model(arch)
    with torch.no_grad():
        for param in net.parameters():
            param.fill_(float("nan"))
    card = colour_card(name="nan-net", tile_size=64, overlap=16, output="logits").to_dict()
    save_checkpoint(tmp_path / "nan.pt", {"arch": arch, "card": card, "state_dict": net.state_dict()})
    rgb = write_raster(tmp_path / "rgb.tif", SCENE)
    r = cli("classify", rgb, tmp_path / "lc.tif", "-m", tmp_path / "nan.pt", "--device", "cpu")
    assert_one_error_line(r, "model 'nan-net'", "NaN")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nan.pt", "rgb.tif"]


# ---------------------------------------------------------------- 3. value range


def test_float_reflectance_is_read_as_0_to_1_and_value_range_sets_the_range(tmp_path, colour_model):
    values = SCENE.astype(np.float32) / 255
    values[:, 0, :8] = 1.2  # a few specular highlights above 1
    reflectance = write_raster(tmp_path / "refl.tif", values)
    uint8 = write_raster(tmp_path / "rgb.tif", SCENE)
    huge = write_raster(tmp_path / "huge.tif", SCENE.astype(np.float32) * 1e30)
    runs = run_all({
        "auto": ["classify", reflectance, tmp_path / "auto.tif", "-m", colour_model, "-v"],
        "as 0..255": ["classify", reflectance, tmp_path / "dark.tif", "-m", colour_model, "--value-range", "255"],
        "uint8": ["classify", uint8, tmp_path / "u8.tif", "-m", colour_model],
        "huge": ["classify", huge, tmp_path / "huge_lc.tif", "-m", colour_model],
        "zero": ["classify", uint8, tmp_path / "z.tif", "-m", colour_model, "--value-range", "0"],
        "nan": ["classify", uint8, tmp_path / "n.tif", "-m", colour_model, "--value-range", "nan"],
    })
    assert runs["auto"].returncode == 0, runs["auto"].stderr
    assert "reflectance 0..1" in runs["auto"].stderr
    expected = expected_classes(SCENE)
    assert (read_band(tmp_path / "auto.tif") == expected).mean() > 0.999  # float rounding at class borders only
    assert runs["as 0..255"].returncode == 0
    assert (read_band(tmp_path / "dark.tif") == 2).all()  # what 0..1 read as 0..255 gives: all "land"
    np.testing.assert_array_equal(read_band(tmp_path / "u8.tif"), expected)  # uint8: as it always was
    assert_one_error_line(runs["huge"], "huge.tif", "--value-range")
    for case in ("zero", "nan"):
        assert_one_error_line(runs[case], "--value-range", status=2)
    assert not any((tmp_path / f).exists() for f in ("huge_lc.tif", "z.tif", "n.tif"))


# ---------------------------------------------------------------- 4. train


@pytest.fixture
def folder_data(tmp_path) -> Path:
    from trainkit import make_folder

    return make_folder(tmp_path / "data")


def _train_args(data: Path, masks: Path | None = None) -> list:
    return ["train", "--dataset", "folder", "--images", data / "images", "--masks", masks or data / "masks",
            "--class-names", "a,b,c", "--epochs", "1", "--chips-per-epoch", "4", "--batch-size", "2",
            "--chip", "32", "--no-progress", "--device", "cpu", "--threads", "1"]


TRAIN_OPTIONS = {"--epochs": "0", "--batch-size": "0", "--chip": "-32", "--chips-per-epoch": "0",
                 "--max-minutes": "-1", "--val-fraction": "1.5", "--val-fraction ": "0"}


def test_train_refuses_bad_counts_a_file_as_out_and_masks_without_classes(tmp_path, folder_data):
    unusable = tmp_path / "unusable_masks"
    unusable.mkdir()
    for mask in (folder_data / "masks").iterdir():
        with rasterio.open(mask) as src:
            profile, data = src.profile, src.read()
        with rasterio.open(unusable / mask.name, "w", **profile) as dst:
            dst.write(np.full_like(data, 7))  # class 7 of 3 classes: nothing usable
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder")
    jobs = {option: [*_train_args(folder_data), option.strip(), value, "--out", tmp_path / f"run{i}"]
            for i, (option, value) in enumerate(TRAIN_OPTIONS.items())}
    jobs["file as out"] = [*_train_args(folder_data), "--out", a_file]
    jobs["no usable pixel"] = [*_train_args(folder_data, unusable), "--out", tmp_path / "new" / "run"]
    runs = run_all(jobs)
    for option in TRAIN_OPTIONS:
        assert_one_error_line(runs[option], option.strip())
    assert_one_error_line(runs["file as out"], "--out", str(a_file))
    assert a_file.read_text() == "not a folder"
    assert_one_error_line(runs["no usable pixel"], str(unusable), "no pixel of the classes")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "notes.txt", "unusable_masks"]  # no run folder


def test_train_never_reports_a_best_checkpoint_that_does_not_exist(tmp_path, folder_data):
    val_masks = tmp_path / "val_masks"
    val_masks.mkdir()
    for mask in (folder_data / "masks").iterdir():
        with rasterio.open(mask) as src:
            profile, data = src.profile, src.read()
        with rasterio.open(val_masks / mask.name, "w", **profile) as dst:
            dst.write(np.full_like(data, 255))  # nothing labelled to validate on
    run = tmp_path / "run"
    r = cli(*_train_args(folder_data), "--val-images", folder_data / "images", "--val-masks", val_masks,
            "--out", run)
    assert r.returncode == 0, r.stderr
    assert not (run / "best.pt").exists() and (run / "last.pt").exists()
    assert "best.pt" not in r.stdout and "no best checkpoint" in r.stdout


# ---------------------------------------------------------------- 5. evaluate


def test_evaluate_refuses_a_photo_or_a_reference_without_class_ids_and_a_bad_block(tmp_path):
    ids = np.random.default_rng(0).integers(0, 3, (1, 60, 80)).astype(np.uint8)
    prediction = write_raster(tmp_path / "pred.tif", ids)
    photo = write_raster(tmp_path / "photo.tif", scene(60, 80))
    not_ids = write_raster(tmp_path / "not_ids.tif", np.full((1, 60, 80), 100, np.uint8))
    good = write_raster(tmp_path / "ref.tif", ids)
    runs = run_all({
        "photo": ["evaluate", prediction, photo, "--classes", "a,b,c"],
        "not ids": ["evaluate", prediction, not_ids, "--classes", "a,b,c"],
        "block 0": ["evaluate", prediction, good, "--classes", "a,b,c", "--block", "0"],
        "block -5": ["evaluate", prediction, good, "--classes", "a,b,c", "--block", "-5"],
        "good": ["evaluate", prediction, good, "--classes", "a,b,c"],
    })
    assert_one_error_line(runs["photo"], "photo.tif", "3 bands", "--colour-reference")
    assert_one_error_line(runs["not ids"], "not_ids.tif", "class id")
    for case in ("block 0", "block -5"):
        assert_one_error_line(runs[case], "--block")
    assert runs["good"].returncode == 0, runs["good"].stderr


# ---------------------------------------------------------------- 6. ground resolution extremes


def test_much_coarser_inputs_are_refused_and_much_finer_ones_are_reported(tmp_path):
    model = write_colour_model(tmp_path / "two_metre.onnx", colour_card(name="two-metre", gsd_m=2.0))
    coarse = write_at(tmp_path / "landsat.tif", SCENE, 30.0)
    fine = write_at(tmp_path / "drone.tif", scene(300, 500), 0.02)
    runs = run_all({
        "coarse": ["classify", coarse, tmp_path / "c.tif", "-m", model],
        "coarse as it is": ["classify", coarse, tmp_path / "c2.tif", "-m", model, "--no-resample"],
        "fine": ["classify", fine, tmp_path / "f.tif", "-m", model, "-v"],
    })
    assert_one_error_line(runs["coarse"], "landsat.tif", "30 m/px", "2 m/px", "--no-resample", "another model")
    assert not (tmp_path / "c.tif").exists()
    assert runs["coarse as it is"].returncode == 0, runs["coarse as it is"].stderr
    assert runs["fine"].returncode == 0, runs["fine"].stderr
    assert "downsampled 100x" in runs["fine"].stderr
    assert read_band(tmp_path / "f.tif").shape == (300, 500)


# ---------------------------------------------------------------- 7. option ranges and usage errors


def test_absurd_options_give_one_usage_line_naming_the_option(tmp_path, colour_model):
    rgb = write_raster(tmp_path / "rgb.tif", SCENE)
    cases = {
        "--tile-size": ["classify", rgb, tmp_path / "a.tif", "--tile-size", "1000000"],
        "--overlap": ["classify", rgb, tmp_path / "b.tif", "--overlap", "100000"],
        "--overlap ": ["map", rgb, tmp_path / "m", "--overlap", "-1"],
        "--batch-size": ["classify", rgb, tmp_path / "c.tif", "--batch-size", "0"],
        "--min-area": ["vectorize", rgb, tmp_path / "e.gpkg", "--min-area", "nan"],
        "--simplify": ["vectorize", rgb, tmp_path / "f.gpkg", "--simplify", "nan"],
        "--simplify ": ["map", rgb, tmp_path / "m2", "--simplify", "-2"],
        "output": ["classify", rgb],
    }
    runs = run_all(cases)
    for option, r in runs.items():
        assert_one_error_line(r, option.strip(), status=2)
    scheduler = cli("classify", rgb, tmp_path / "g.tif", "-m", colour_model, "--scheduler", "not-a-url")
    assert_one_error_line(scheduler, "--scheduler not-a-url", "tcp://host:8786")  # checked by Dask: status 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rgb.tif"]


# ---------------------------------------------------------------- 8. tiny rasters and unusual paths


def test_tiny_rasters_vsizip_paths_missing_vrt_sources_and_link_loops(tmp_path, colour_model):
    two_metre = write_colour_model(tmp_path / "two_metre.onnx", colour_card(name="two-metre", gsd_m=2.0))
    jobs: dict[str, list] = {}
    for n in (1, 2, 3):
        for metres, model in ((0.5, two_metre), (0.2, two_metre), (1.0, colour_model)):
            tif = write_at(tmp_path / f"t{n}_{metres}.tif", scene(n, n, seed=n), metres)
            jobs[f"{n}x{n} at {metres} m"] = ["classify", tif, tmp_path / f"lc_{tif.name}", "-m", model]
    with zipfile.ZipFile(tmp_path / "photos.zip", "w") as z:
        z.write(write_raster(tmp_path / "zipped.tif", SCENE), "f.tif")
    jobs["vsizip"] = ["classify", f"/vsizip//{tmp_path}/photos.zip/f.tif".replace("///", "//"), tmp_path / "z.tif",
                      "-m", colour_model]
    source = write_raster(tmp_path / "source.tif", SCENE)
    (tmp_path / "mosaic.vrt").write_text(_vrt(source))
    source.unlink()
    jobs["vrt"] = ["classify", tmp_path / "mosaic.vrt", tmp_path / "v.tif", "-m", colour_model]
    (tmp_path / "loop_a.tif").symlink_to(tmp_path / "loop_b.tif")
    (tmp_path / "loop_b.tif").symlink_to(tmp_path / "loop_a.tif")
    jobs["loop"] = ["classify", tmp_path / "loop_a.tif", tmp_path / "l.tif", "-m", colour_model]
    runs = run_all(jobs)
    for n in (1, 2, 3):
        for metres in (0.5, 0.2, 1.0):
            r = runs[f"{n}x{n} at {metres} m"]
            assert r.returncode == 0, (n, metres, r.stderr)
            out = read_band(tmp_path / f"lc_t{n}_{metres}.tif")
            assert out.shape == (n, n) and (out != 255).all()
    assert runs["vsizip"].returncode == 0, runs["vsizip"].stderr
    np.testing.assert_array_equal(read_band(tmp_path / "z.tif"), expected_classes(SCENE))
    assert_one_error_line(runs["vrt"], "mosaic.vrt", "source.tif", "does not exist")
    assert_one_error_line(runs["loop"], "loop_a.tif", "link")
    assert not any((tmp_path / f).exists() for f in ("v.tif", "l.tif"))


def _vrt(source: Path) -> str:
    """A VRT of the three bands of ``source`` (written by hand, as any tool would)."""
    with rasterio.open(source) as ds:
        t, w, h = ds.transform, ds.width, ds.height
    bands = "".join(
        f'<VRTRasterBand dataType="Byte" band="{b}"><SimpleSource><SourceFilename relativeToVRT="0">{source}'
        f"</SourceFilename><SourceBand>{b}</SourceBand></SimpleSource></VRTRasterBand>" for b in (1, 2, 3))
    return (f'<VRTDataset rasterXSize="{w}" rasterYSize="{h}"><SRS>EPSG:32633</SRS>'
            f"<GeoTransform>{t.c}, {t.a}, 0, {t.f}, 0, {t.e}</GeoTransform>{bands}</VRTDataset>")


# ---------------------------------------------------------------- 9. what stderr holds


def test_stderr_holds_only_warnings_and_the_error_unless_verbose(tmp_path, colour_model):
    rgb = write_raster(tmp_path / "rgb.tif", SCENE)
    one_band = write_raster(tmp_path / "one.tif", SCENE[:1])
    model = write_colour_model(tmp_path / "m.onnx", colour_card(name="half-metre", gsd_m=0.25))
    runs = run_all({
        "quiet": ["classify", rgb, tmp_path / "a.tif", "-m", model],
        "verbose": ["classify", rgb, tmp_path / "b.tif", "-m", model, "-v"],
        "error": ["classify", one_band, tmp_path / "c.tif", "-m", model],
    })
    assert runs["quiet"].returncode == 0 and runs["quiet"].stderr == ""
    assert "runtime:" in runs["verbose"].stderr and "resampling:" in runs["verbose"].stderr
    assert_one_error_line(runs["error"], "one.tif", "1 image band(s)")
