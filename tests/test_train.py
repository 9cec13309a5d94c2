"""Real (tiny) training: the loss goes down, files are written, interrupted runs resume exactly."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

import aerialseg
from aerialseg import datasets as ds
from aerialseg.card import ModelCard
from aerialseg.cli.train import add_arguments, config_from_args
from aerialseg.errors import InputError
from aerialseg.losses import build_loss
from aerialseg.nets import build_model
from aerialseg.runtime import TorchModel
from aerialseg.train import TrainConfig, train
from aerialseg.training_io import validation_blocks
from trainkit import make_dubai, make_folder, one_thread  # noqa: F401 (one_thread: autouse fixture)

pytestmark = pytest.mark.slow  # every test trains

TINY = {
    "encoder": "resnet18",
    "encoder_depth": 3,
    "decoder_channels": (16, 8, 8),
    "chip": 64,
    "batch_size": 4,
    "chips_per_epoch": 8,
    "lr": 3e-3,
    "threads": 1,
    "progress": False,
    "gsd_m": 2.0,
}


@pytest.fixture(scope="module")
def dubai(tmp_path_factory):
    return make_dubai(tmp_path_factory.mktemp("dubai"), tiles=(1, 2, 3), parts=2, size=(96, 96))


def test_build_model_returns_logits_and_drops_unused_stages():
    arch = {
        "name": "unet",
        "encoder": "resnet18",
        "encoder_depth": 3,
        "in_channels": 3,
        "classes": 5,
        "decoder_channels": [16, 8, 8],
    }
    net = build_model(arch).eval()
    assert not hasattr(net.encoder, "layer3") and not hasattr(net.encoder, "layer4")
    out = net(torch.randn(2, 3, 64, 96))
    assert out.shape == (2, 5, 64, 96) and not torch.allclose(out.sum(1), torch.ones(1))
    deeplab = build_model({"name": "deeplabv3plus", "encoder": "resnet18", "encoder_depth": 5, "classes": 3})
    assert deeplab.eval()(torch.randn(1, 3, 64, 64)).shape == (1, 3, 64, 64)
    with pytest.raises(InputError):
        build_model({"name": "fcn", "encoder": "resnet18", "classes": 3})


def test_a_few_real_steps_lower_the_loss(dubai):
    torch.manual_seed(0)
    samples = ds.dubai_samples(dubai, [1, 2])
    data = ds.ChipDataset(samples, 5, chip=64, length=4, mean=(0.5,) * 3, std=(0.25,) * 3, seed=0)
    x = torch.stack([data[i][0] for i in range(4)])
    y = torch.stack([data[i][1] for i in range(4)])
    net = build_model(
        {"name": "unet", "encoder": "resnet18", "encoder_depth": 3, "classes": 5, "decoder_channels": [16, 8, 8]}
    )
    loss_fn, opt = build_loss("ce+dice", [1.0] * 5), torch.optim.AdamW(net.parameters(), lr=3e-3)
    losses = []
    for _ in range(8):
        loss = loss_fn(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.7 * losses[0]


def test_validation_scores_are_the_scores_classify_gets(tmp_path):
    """Validation runs classify's tile plan, blending and class decision: a checkpoint's validation scores are
    what ``aerialseg export`` + ``classify`` + ``evaluate`` give on the validation image."""
    root = make_folder(tmp_path / "data", names=("a", "b"), size=160)
    val = make_folder(tmp_path / "val", names=("c",), size=200)  # 4 x 4 tiles of 64 px with 16 px overlap
    config = TrainConfig(out_dir=str(tmp_path / "run"), dataset="folder", images=str(root / "images"),
                         masks=str(root / "masks"), val_images=str(val / "images"), val_masks=str(val / "masks"),
                         class_names=("a", "b", "c"), epochs=2, **{**TINY, "gsd_m": 0.25, "tile_size": 64,
                                                                     "overlap": 16})
    history = train(config)["history"]
    checkpoint, image, mask = tmp_path / "run" / "last.pt", val / "images" / "c.tif", val / "masks" / "c.tif"
    validation = _validation_classes(checkpoint, ds.folder_samples(val / "images", val / "masks")[0])
    torch_map = read_band(aerialseg.classify(image, tmp_path / "torch.tif", checkpoint, device="cpu"))
    np.testing.assert_array_equal(validation, torch_map)  # the same torch model through classify: exactly equal

    onnx, lc, scores = tmp_path / "m.onnx", tmp_path / "lc.tif", tmp_path / "scores.json"
    for args in (["export", checkpoint, onnx], ["classify", image, lc, "-m", onnx, "--device", "cpu"],
                 ["evaluate", lc, mask, "--classes", "a,b,c", "--json", scores]):
        r = subprocess.run([sys.executable, "-m", "aerialseg.cli", *map(str, args)], capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, r.stderr
    classified = read_band(lc)
    assert classified.shape == validation.shape and (classified == validation).mean() >= 0.999
    reported = np.array(history[-1]["confusion_matrix"])
    evaluated = np.array(json.loads(scores.read_text())["confusion_matrix"])
    assert reported.sum() == evaluated.sum() == (read_band(mask) != 255).sum()
    assert np.abs(reported - evaluated).sum() <= 0.001 * reported.sum()  # ONNX vs torch float noise at ties only


def _validation_classes(checkpoint: Path, sample: ds.Sample) -> np.ndarray:
    """The class ids validation predicts for a sample with a checkpoint's network, put together from its blocks."""
    whole = np.zeros(ds.raster_shape(sample.image), np.uint8)
    for block, classes, _ in validation_blocks(TorchModel(checkpoint, "cpu"), sample):
        whole[block.y0 : block.y0 + block.height, block.x0 : block.x0 + block.width] = classes
    return whole


def read_band(path: Path) -> np.ndarray:
    with rasterio.open(path) as raster:
        return raster.read(1)


def test_train_writes_checkpoints_history_and_curves(dubai, tmp_path):
    config = TrainConfig(
        out_dir=str(tmp_path / "run"),
        data_root=str(dubai),
        train_split=("1", "2"),
        val_split=("3",),
        epochs=2,
        name="tiny",
        licence="CC0-1.0",
        **TINY,
    )
    result = train(config)
    run = tmp_path / "run"
    for name in ("last.pt", "best.pt", "history.csv", "history.json", "curves.png", "config.json"):
        assert (run / name).is_file(), name
    history = json.loads((run / "history.json").read_text())
    assert [h["epoch"] for h in history] == [1, 2] and 0 <= history[-1]["miou"] <= 1
    ckpt = torch.load(run / "best.pt", weights_only=True)
    assert {"arch", "card", "state_dict", "optimizer", "scheduler", "epoch"} <= set(ckpt)
    card = ModelCard.from_dict(ckpt["card"])
    assert card.class_names == ["building", "land", "road", "vegetation", "water"] and card.gsd_m == 2.0
    assert card.metrics["validation"]["miou"] == pytest.approx(result["best"]["miou"], abs=1e-4)
    assert card.metrics["epoch"] == card.metrics["best_epoch"] == result["best_epoch"]
    last = ModelCard.from_dict(torch.load(run / "last.pt", weights_only=True)["card"])  # its own epoch's scores
    assert last.metrics["epoch"] == 2 and last.metrics["best_epoch"] == result["best_epoch"]
    assert last.metrics["validation"]["miou"] == pytest.approx(history[-1]["miou"], abs=1e-4)
    assert len((run / "history.csv").read_text().splitlines()) == 3


def test_resume_after_interruption_gives_the_same_run(dubai, tmp_path):
    common = dict(data_root=str(dubai), train_split=("1",), val_split=("2",), epochs=3, **TINY)
    train(TrainConfig(out_dir=str(tmp_path / "full"), **common))
    interrupted = TrainConfig(out_dir=str(tmp_path / "cut"), max_minutes=0.0, **common)  # stops after 1 epoch
    train(interrupted)
    assert len(json.loads((tmp_path / "cut" / "history.json").read_text())) == 1
    steps: list[tuple[int, int]] = []
    train(TrainConfig(out_dir=str(tmp_path / "cut"), max_minutes=0.0, **common), lambda d, t: steps.append((d, t)))
    train(TrainConfig(out_dir=str(tmp_path / "cut"), **common), lambda d, t: steps.append((d, t)))
    assert steps == [(2, 3), (3, 3)]  # epochs done of all the run's epochs, counted on from where it resumed
    full = torch.load(tmp_path / "full" / "last.pt", weights_only=True)
    cut = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)
    assert [h["epoch"] for h in cut["history"]] == [1, 2, 3]
    assert [h["train_loss"] for h in cut["history"]] == pytest.approx([h["train_loss"] for h in full["history"]])
    for key, value in full["state_dict"].items():
        assert torch.allclose(value.float(), cut["state_dict"][key].float(), atol=1e-5), key
    with pytest.raises(InputError, match="other settings"):
        train(TrainConfig(out_dir=str(tmp_path / "cut"), **{**common, "lr": 1e-2}))


def test_folder_dataset_and_command_line_options(tmp_path):
    root = make_folder(tmp_path / "data", names=("a", "b", "c"))
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        [
            "--out",
            str(tmp_path / "run"),
            "--dataset",
            "folder",
            "--images",
            str(root / "images"),
            "--masks",
            str(root / "masks"),
            "--val-images",
            str(root / "images"),
            "--val-masks",
            str(root / "masks"),
            "--class-names",
            "a,b,c",
            "--encoder-depth",
            "3",
            "--decoder-channels",
            "16,8,8",
            "--chip",
            "32",
            "--batch-size",
            "4",
            "--chips-per-epoch",
            "4",
            "--epochs",
            "1",
            "--tile-scales",
            "7=0.5",
            "--no-progress",
        ]
    )
    config = config_from_args(args)
    assert config.class_names == ("a", "b", "c") and config.tile_scales == (("7", 0.5),)
    result = train(config)
    assert result["best"]["per_class"].keys() == {"a", "b", "c"}
    assert np.isfinite(result["history"][0]["train_loss"])


def test_training_from_labelled_polygons_with_a_held_out_strip(tmp_path, capsys):
    """`aerialseg train --dataset vector`: an orthophoto + polygons in another CRS, ids and names mixed."""
    import geopandas as gpd
    from shapely.geometry import box

    from aerialseg.cli import main as cli_main
    from trainkit import class_map, paint, write_tif

    ids = class_map(96, 96, 3, seed=11)
    image = write_tif(tmp_path / "ortho.tif", paint(ids, 11), crs="EPSG:32633", res=2.0)
    cells = [(r, c) for r in range(0, 96, 8) for c in range(0, 96, 8)]  # one polygon per 8 px block of the map
    frame = gpd.GeoDataFrame(
        {"kind": [["red", "1", "Grey"][ids[r, c]] for r, c in cells]},
        geometry=[box(500000 + 2 * c, 600000 - 2 * (r + 8), 500000 + 2 * (c + 8), 600000 - 2 * r) for r, c in cells],
        crs="EPSG:32633",
    ).to_crs("EPSG:3857")
    frame.to_file(tmp_path / "labels.geojson", engine="pyogrio")
    run = tmp_path / "run"
    argv = ["train", "--out", str(run), "--dataset", "vector", "--images", str(image),
            "--labels", str(tmp_path / "labels.geojson"), "--label-field", "kind", "--class-names", "red,sand,grey",
            "--val-fraction", "0.25", "--encoder-depth", "3", "--decoder-channels", "16,8,8", "--chip", "32",
            "--batch-size", "4", "--chips-per-epoch", "8", "--threads", "1", "--epochs", "2", "--no-progress"]
    assert cli_main([*argv[:-1], "--progress", "json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    progress = [(x["done"], x["total"]) for x in lines if x["type"] == "progress"]
    assert progress == [(1, 2), (2, 2)] and lines[-1]["type"] == "result"
    assert lines[-1]["best_checkpoint"] == str(run / "best.pt") and lines[-1]["scores"]["per_class"].keys() == {
        "red", "sand", "grey"}
    saved = torch.load(run / "last.pt", weights_only=True)
    assert [c["name"] for c in saved["card"]["classes"]] == ["red", "sand", "grey"]
    cm = np.array(saved["history"][-1]["confusion_matrix"])
    assert cm.sum() == 24 * 96  # validation: the bottom quarter of the rows, every pixel labelled
    # a run saved before a newer option existed still resumes (the option's default is assumed)
    for key in ("label_layer", "unlabelled"):  # both at their defaults in this run
        saved["config"].pop(key)
    torch.save(saved, run / "last.pt")
    assert cli_main([*argv[:-2], "3", "--no-progress"]) == 1  # other settings: refused
    assert cli_main(argv) == 0  # same settings: resumes (already finished)


@pytest.mark.parametrize("scheduler", ["exponential", "plateau"])
def test_sgd_with_an_epoch_schedule_resumes_exactly(dubai, tmp_path, scheduler):
    common = dict(TINY, data_root=str(dubai), train_split=("1",), val_split=("2",), epochs=3, optimizer="sgd",
                  scheduler=scheduler, lr=0.01, lr_decay=0.5, lr_patience=0)
    full = train(TrainConfig(out_dir=str(tmp_path / "full"), **common))
    for _ in range(3):  # one epoch per call, resumed from last.pt
        train(TrainConfig(out_dir=str(tmp_path / "cut"), max_minutes=0.0, **common))
    cut = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)
    assert [h["lr"] for h in cut["history"]] == [h["lr"] for h in full["history"]]
    if scheduler == "exponential":
        assert [h["lr"] for h in full["history"]] == pytest.approx([0.01, 0.005, 0.0025])
    assert len(cut["optimizer"]["param_groups"]) == 3
    last = torch.load(tmp_path / "full" / "last.pt", weights_only=True)
    assert cut["scheduler"] == last["scheduler"]
    for key, value in last["state_dict"].items():
        assert torch.allclose(value.float(), cut["state_dict"][key].float(), atol=1e-5), key


def test_colour_masks_train_with_the_csv_classes_and_a_stray_colour_is_one_error(tmp_path, capsys):
    from PIL import Image

    from aerialseg.cli import main as cli_main
    from trainkit import class_map, paint, write_tif

    colours = np.array([[0, 0, 0], [128, 64, 128], [0, 102, 0]], np.uint8)
    (tmp_path / "masks").mkdir()
    for i in range(4):
        ids = class_map(48, 48, 3, seed=i)
        write_tif(tmp_path / "images" / f"{i}.tif", paint(ids, i))
        Image.fromarray(colours[ids]).save(tmp_path / "masks" / f"{i}.png")
    (tmp_path / "classes.csv").write_text("name, r, g, b\nunlabeled, 0, 0, 0\npaved-area, 128, 64, 128\n"
                                          "grass, 0, 102, 0\n")
    argv = ["train", "--out", str(tmp_path / "run"), "--dataset", "folder", "--images", str(tmp_path / "images"),
            "--masks", str(tmp_path / "masks"), "--class-colours", str(tmp_path / "classes.csv"), "--split",
            "stratified", "--val-fraction", "0.25", "--encoder-depth", "3", "--decoder-channels", "16,8,8",
            "--chip", "32", "--batch-size", "2", "--chips-per-epoch", "2", "--epochs", "1", "--threads", "1",
            "--no-progress"]
    assert cli_main(argv) == 0
    saved = torch.load(tmp_path / "run" / "last.pt", weights_only=True)
    assert [(c["name"], c["color"]) for c in saved["card"]["classes"]] == [
        ("unlabeled", "#000000"), ("paved-area", "#804080"), ("grass", "#006600")]
    assert np.array(saved["history"][0]["confusion_matrix"]).sum() == 48 * 48  # one whole image validates
    capsys.readouterr()
    bad = colours[class_map(48, 48, 3, seed=2)]
    bad[10, 20] = (1, 2, 3)
    Image.fromarray(bad).save(tmp_path / "masks" / "2.png")
    assert cli_main([*argv[:2], str(tmp_path / "run2"), *argv[3:]]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "has the colour #010203 (1,2,3)" in err[0] and "2.png" in err[0], err
    assert not (tmp_path / "run2").exists()
