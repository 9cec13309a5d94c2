"""Dataset readers and chip sampling on tiny, layout-faithful copies of each data set."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from aerialseg import datasets as ds
from aerialseg.errors import InputError
from trainkit import make_dubai, make_folder, make_landcoverai, make_potsdam


@pytest.fixture(scope="module")
def dubai(tmp_path_factory):
    return make_dubai(tmp_path_factory.mktemp("dubai"), tiles=(1, 2, 3))


def test_dubai_split_by_whole_tiles(dubai):
    train = ds.dubai_samples(dubai, [1, 2])
    val = ds.dubai_samples(dubai, [3])
    assert len(train) == 4 and len(val) == 2
    assert {s.image.parent.parent.name for s in train} == {"tile_1", "tile_2"}
    assert {s.image for s in train}.isdisjoint({s.image for s in val})
    assert all(s.mask.name == s.image.with_suffix(".png").name for s in train)


@pytest.mark.parametrize("tile", [1, 2])  # tile 2 has palette masks
def test_dubai_mask_colours_and_ignore(dubai, tile):
    sample = ds.dubai_samples(dubai, [tile])[0]
    with rasterio.open(sample.mask) as src:
        assert src.count == (1 if tile == 2 else 3)
    mask = ds.read_mask(sample.mask, sample.colours, 5)
    assert mask.dtype == np.uint8
    assert (mask[:3] == ds.IGNORE_INDEX).all()  # unlabeled grey
    assert mask[3, 0] == ds.IGNORE_INDEX  # pure black
    assert set(np.unique(mask[4:])) <= {0, 1, 2, 3, 4}
    assert len(np.unique(mask[4:])) == 5


def test_dubai_tile_scale_resamples_pairs(dubai):
    sample = ds.dubai_samples(dubai, [1], {1: 0.5})[0]
    image, mask = ds.load_pair(sample, 5)
    assert image.shape == (3, 36, 40) and mask.shape == (36, 40)


def test_dubai_missing_mask_is_input_error(tmp_path):
    root = make_dubai(tmp_path, tiles=(1,), parts=1)
    (root / "tile_1" / "masks" / "image_part_001.png").unlink()
    with pytest.raises(InputError, match="missing file"):
        ds.dubai_samples(root, [1])


def test_landcoverai_chips_are_windows_of_the_orthophotos(tmp_path):
    root = make_landcoverai(tmp_path, chip=32)
    train = ds.landcoverai_samples(root, "train", chip=32)
    assert len(train) == 6
    assert train[4].window == (32, 32, 32, 32)  # 3 full chips per row: chip 4 = row 1, column 1
    image, mask = ds.load_pair(train[4], 5)
    with rasterio.open(train[4].image) as src:
        expected = src.read()[:, 32:64, 32:64]
    assert np.array_equal(image, expected) and mask.shape == (32, 32)
    assert len(ds.landcoverai_samples(root, "val", chip=32)) == 2
    with pytest.raises(InputError):
        ds.landcoverai_samples(root, "nosuchsplit")


def test_potsdam_colour_labels(tmp_path):
    root = make_potsdam(tmp_path)
    samples = ds.potsdam_samples(root)
    assert [s.image.name for s in samples] == ["top_potsdam_2_10_RGB.tif", "top_potsdam_3_11_RGB.tif"]
    _, mask = ds.load_pair(samples[0], 6)
    assert set(np.unique(mask)) == set(range(6))
    assert [s.image.name for s in ds.potsdam_samples(root, ["3_11"])] == ["top_potsdam_3_11_RGB.tif"]


def test_folder_pairs_and_out_of_range_ids(tmp_path):
    root = make_folder(tmp_path)
    samples = ds.folder_samples(root / "images", root / "masks")
    _, mask = ds.load_pair(samples[0], 3)
    assert (mask[0] == ds.IGNORE_INDEX).all() and mask[1:].max() < 3
    (root / "masks" / "b.tif").rename(root / "masks" / "c.tif")
    with pytest.raises(InputError, match="no mask"):
        ds.folder_samples(root / "images", root / "masks")


@pytest.mark.parametrize("cache", [True, False])
def test_chips_are_reproducible_per_epoch(dubai, cache):
    samples = ds.dubai_samples(dubai, [1, 2])
    data = ds.ChipDataset(samples, 5, chip=32, length=4, mean=(0.5,) * 3, std=(0.25,) * 3, seed=3, cache=cache)
    x0, y0 = data[1]
    x1, y1 = data[1]
    assert x0.shape == (3, 32, 32) and y0.shape == (32, 32) and x0.dtype.is_floating_point
    assert np.array_equal(x0, x1) and np.array_equal(y0, y1)
    data.epoch = 1
    assert not np.array_equal(data[1][0], x0)
    assert set(np.unique(y0.numpy())) <= {0, 1, 2, 3, 4, 255}


def test_channel_stats_and_class_counts(dubai):
    samples = ds.dubai_samples(dubai, [1])
    mean, std = ds.channel_stats(samples)
    pixels = np.concatenate([ds.read_image(s.image).reshape(3, -1) for s in samples], axis=1) / 255.0
    assert np.allclose(mean, pixels.mean(1), atol=1e-4) and np.allclose(std, pixels.std(1), atol=1e-4)
    counts = ds.class_pixel_counts([np.array([[0, 1, 1], [255, 4, 9]], np.uint8)], 5)
    assert counts.tolist() == [1, 2, 0, 0, 1]
