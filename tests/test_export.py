"""ONNX export of a real (tiny, trained) checkpoint: card inside, softmax included, ORT == PyTorch."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from aerialseg.card import read_card
from aerialseg.errors import ModelError
from aerialseg.export import export_onnx
from aerialseg.nets import build_model
from aerialseg.train import TrainConfig, train
from trainkit import make_dubai, one_thread  # noqa: F401 (one_thread: autouse fixture)

pytestmark = pytest.mark.slow  # every test trains a checkpoint


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    root = tmp_path_factory.mktemp("export")
    data = make_dubai(root / "dubai", tiles=(1, 2), parts=1, size=(64, 64))
    config = TrainConfig(
        out_dir=str(root / "run"),
        data_root=str(data),
        train_split=("1",),
        val_split=("2",),
        encoder_depth=3,
        decoder_channels=(16, 8, 8),
        chip=64,
        batch_size=4,
        chips_per_epoch=4,
        epochs=1,
        progress=False,
        threads=1,
        gsd_m=2.0,
        name="tiny",
        licence="CC0-1.0",
        training_data="tiny Dubai copy",
    )
    train(config)
    return root / "run" / "best.pt"


def test_export_writes_probabilities_model_with_card(checkpoint, tmp_path):
    out = tmp_path / "models" / "tiny.onnx"
    card = export_onnx(checkpoint, out, card_updates={"description": "test model"})
    assert out.is_file() and not list(out.parent.glob(".*partial"))
    read = read_card(out)
    assert read == card and read.output == "probabilities" and read.description == "test model"
    assert read.licence == "CC0-1.0" and read.training_data == "tiny Dubai copy" and read.gsd_m == 2.0
    assert "miou" in read.metrics["validation"]
    model = onnx.load(str(out))
    assert model.opset_import[0].version == 17
    assert [i.name for i in model.graph.input] == ["image"] and [o.name for o in model.graph.output] == [
        "probabilities"
    ]
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["model_type"] == '"Segmentor"' and meta["tile_size"] == "512"


def test_onnx_runtime_matches_pytorch_at_other_sizes(checkpoint, tmp_path):
    out = tmp_path / "tiny.onnx"
    export_onnx(checkpoint, out)
    ckpt = torch.load(checkpoint, weights_only=True)
    net = build_model(ckpt["arch"])
    net.load_state_dict(ckpt["state_dict"])
    x = np.random.default_rng(1).standard_normal((3, 3, 96, 160)).astype(np.float32)
    with torch.no_grad():
        expected = torch.softmax(net.eval()(torch.from_numpy(x)), 1).numpy()
    got = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    assert got.shape == (3, 5, 96, 160)
    assert np.allclose(got.sum(1), 1.0, atol=1e-5)
    assert np.abs(got - expected).max() < 1e-4


def test_failed_parity_check_leaves_no_file(checkpoint, tmp_path):
    out = tmp_path / "bad.onnx"
    with pytest.raises(ModelError, match="disagree"):
        export_onnx(checkpoint, out, atol=-1.0)  # no difference can be below a negative tolerance
    assert not out.exists() and not list(tmp_path.iterdir())


def test_not_a_checkpoint_is_model_error(tmp_path):
    bad = tmp_path / "x.pt"
    torch.save({"state_dict": {}}, bad)
    with pytest.raises(ModelError, match="not an AerialSeg training checkpoint"):
        export_onnx(bad, tmp_path / "x.onnx")
    (tmp_path / "y.pt").write_text("nope")
    with pytest.raises(ModelError):
        export_onnx(tmp_path / "y.pt", tmp_path / "y.onnx")


def test_checkpoint_and_its_onnx_export_classify_alike(checkpoint, tmp_path):
    """A PyTorch checkpoint runs through `classify` too, and agrees with its ONNX export."""
    import rasterio
    from rasterio.transform import from_origin

    import aerialseg

    onnx_path = tmp_path / "tiny.onnx"
    export_onnx(checkpoint, onnx_path)
    img = np.random.default_rng(3).integers(0, 256, size=(3, 96, 80), dtype=np.uint8)
    src = tmp_path / "in.tif"
    with rasterio.open(src, "w", driver="GTiff", width=80, height=96, count=3, dtype="uint8", crs="EPSG:32640",
                       transform=from_origin(300000, 2800000, 2.0, 2.0)) as ds:
        ds.write(img)
    model = aerialseg.load_model(checkpoint, device="cpu")
    assert type(model).__name__ == "TorchModel" and model.card.name == "tiny"
    by_torch = aerialseg.classify(src, tmp_path / "torch.tif", model, tile_size=64, overlap=16)
    by_onnx = aerialseg.classify(src, tmp_path / "onnx.tif", onnx_path, tile_size=64, overlap=16)
    with rasterio.open(by_torch) as a, rasterio.open(by_onnx) as b:
        assert (a.read(1) == b.read(1)).mean() > 0.999


def test_a_checkpoint_maps_a_folder_and_its_card_is_read_without_a_session(checkpoint, tmp_path):
    """model_card() reads a PyTorch checkpoint's card; 'map' on a folder runs the checkpoint itself."""
    import rasterio

    from aerialseg.cli import main
    from aerialseg.runtime import model_card

    assert list(model_card(checkpoint).class_names) == ["building", "land", "road", "vegetation", "water"]
    tiles = tmp_path / "tiles"
    tiles.mkdir()
    profile = {"driver": "GTiff", "width": 48, "height": 40, "count": 3, "dtype": "uint8", "crs": "EPSG:32633"}
    for i in range(2):  # two neighbouring tiles
        transform = rasterio.transform.from_origin(500000 + 48 * i, 4000000, 1.0, 1.0)
        with rasterio.open(tiles / f"t{i}.tif", "w", transform=transform, **profile) as ds:
            ds.write(np.random.default_rng(i).integers(0, 255, (3, 40, 48), dtype=np.uint8))
    assert main(["map", str(tiles), str(tmp_path / "out"), "--model", str(checkpoint), "--no-resample",
                 "--classes", "building,water", "--progress", "none"]) == 0
    with rasterio.open(tmp_path / "out" / "tiles_landcover.vrt") as vrt:
        assert (vrt.width, vrt.height) == (96, 40) and vrt.tags()["AERIALSEG_MODEL"]
    assert sorted(p.name for p in (tmp_path / "out").glob("*.tif")) == ["t0_landcover.tif", "t1_landcover.tif"]


def test_fp16_weights_halve_the_file_and_keep_the_classes(checkpoint, tmp_path):
    """--fp16-weights stores float16 initializers (cast back once): half the bytes, float32 compute."""
    import onnx
    import onnxruntime as ort

    full, half = tmp_path / "full.onnx", tmp_path / "half.onnx"
    export_onnx(checkpoint, full)
    export_onnx(checkpoint, half, fp16_weights=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    types = {i.data_type for i in onnx.load(str(half)).graph.initializer if len(i.dims) > 1}
    assert types == {onnx.TensorProto.FLOAT16}
    x = np.random.default_rng(5).standard_normal((2, 3, 64, 64)).astype(np.float32)
    run = lambda p: ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
    a, b = run(full), run(half)
    assert b.dtype == np.float32 and np.abs(a - b).max() < 2e-3
    assert (a.argmax(1) == b.argmax(1)).mean() > 0.99
