"""Dataset readers and chip sampling on tiny, layout-faithful copies of each data set."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from aerialseg import datasets as ds
from aerialseg.errors import InputError
from trainkit import make_dubai, make_folder, make_landcoverai, make_potsdam, write_tif


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


# --- labelled polygons over georeferenced images ---------------------------------------------------

ORIGIN_X, ORIGIN_Y, RES = 500000.0, 600000.0, 2.0  # write_tif's grid: EPSG:32633, 2 m pixels


def _px_box(r0: int, c0: int, r1: int, c1: int):
    """The ground box covering pixel rows r0..r1-1 and columns c0..c1-1 of the write_tif grid."""
    from shapely.geometry import box

    return box(ORIGIN_X + c0 * RES, ORIGIN_Y - r1 * RES, ORIGIN_X + c1 * RES, ORIGIN_Y - r0 * RES)


@pytest.fixture
def labelled(tmp_path):
    """A 64 x 64 px image and polygons in another CRS (WGS 84): a big 'vegetation' field drawn first,
    a 'Building' inside it, a road given by its id, and an area left unlabelled."""
    import geopandas as gpd

    image = write_tif(tmp_path / "ortho.tif", np.full((3, 64, 64), 120, np.uint8), crs="EPSG:32633", res=RES)
    frame = gpd.GeoDataFrame(
        {"cls": ["vegetation", "Building", "1", None]},  # a polygon without a class labels nothing
        geometry=[_px_box(0, 0, 40, 40), _px_box(10, 10, 20, 24), _px_box(44, 0, 50, 64), _px_box(56, 0, 64, 64)],
        crs="EPSG:32633",
    ).to_crs("EPSG:4326")
    labels = tmp_path / "labels.gpkg"
    frame.to_file(labels, layer="areas", engine="pyogrio")
    expected = np.full((64, 64), ds.IGNORE_INDEX, np.uint8)
    expected[0:40, 0:40] = 2
    expected[10:20, 10:24] = 0
    expected[44:50, :] = 1
    return image, labels, expected


def test_polygons_are_rasterised_on_the_image_grid(labelled):
    image, labels, expected = labelled
    vl = ds.VectorLabels(labels, "cls", ("building", "road", "vegetation"), layer="areas")
    (sample,) = ds.vector_samples(image, vl)
    img, mask = ds.load_pair(sample, 3)
    assert img.shape == (3, 64, 64) and np.array_equal(mask, expected)  # small polygons drawn over big ones
    # a window, resampled to half its size, is the same burn on the coarser grid
    window = ds.rasterize_labels(vl, image, window=(8, 4, 40, 32), out_shape=(20, 16))
    assert np.array_equal(window, expected[8:48:2, 4:36:2])
    # pixels outside every polygon may be a class instead of ignored
    with_background = ds.VectorLabels(labels, "cls", ("building", "road", "vegetation"), "areas", unlabelled=1)
    background = ds.rasterize_labels(with_background, image)
    assert np.array_equal(background, np.where(expected == ds.IGNORE_INDEX, 1, expected))


def test_bad_label_polygons_are_clear_errors(labelled, tmp_path):
    image, labels, _ = labelled
    with pytest.raises(InputError, match="not classes: Building, vegetation"):
        ds.vector_samples(image, ds.VectorLabels(labels, "cls", ("tree", "road")))
    with pytest.raises(InputError, match="no field 'class'.*cls"):
        ds.vector_samples(image, ds.VectorLabels(labels, "class", ("a", "b")))
    with pytest.raises(InputError, match="cannot read the label polygons"):
        ds.vector_samples(image, ds.VectorLabels(tmp_path / "missing.gpkg", "cls", ("a", "b")))
    far = write_tif(tmp_path / "far.tif", np.zeros((3, 8, 8), np.uint8), crs="EPSG:32634", res=RES)
    with pytest.raises(InputError, match="no label polygon"):
        ds.vector_samples(far, ds.VectorLabels(labels, "cls", ("building", "road", "vegetation")))
    plain = tmp_path / "plain.png"
    from PIL import Image

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(plain)
    with pytest.raises(InputError, match="not georeferenced"):
        ds.vector_samples(plain, ds.VectorLabels(labels, "cls", ("building", "road", "vegetation")))


def test_hold_out_rows_splits_each_image_spatially(labelled):
    image, labels, expected = labelled
    vl = ds.VectorLabels(labels, "cls", ("building", "road", "vegetation"))
    train, val = ds.hold_out_rows(ds.vector_samples(image, vl), 0.25)
    assert train[0].window == (0, 0, 48, 64) and val[0].window == (48, 0, 16, 64)
    assert np.array_equal(ds.load_pair(val[0], 3)[1], expected[48:])
    assert np.array_equal(ds.read_sample_mask(train[0], 3), expected[:48])
    with pytest.raises(InputError, match="between 0 and 1"):
        ds.hold_out_rows(train, 1.5)


def test_image_nodata_pixels_are_ignored(tmp_path):
    root = make_folder(tmp_path)
    path = root / "images" / "a.tif"
    with rasterio.open(path, "r+") as dst:
        data = dst.read()
        data[:, 40:, :] = 0
        dst.write(data)
        dst.nodata = 0
    (a, b) = ds.folder_samples(root / "images", root / "masks")
    _, mask = ds.load_pair(a, 3)
    assert (mask[40:] == ds.IGNORE_INDEX).all() and (mask[1:40] < 3).all()
    assert ds.image_validity(b.image) is None  # no nodata: nothing read, nothing ignored


DRONE_CSV = "\ufeffname, r, g, b\nunlabeled, 0, 0, 0\npaved-area, 128, 64, 128\n\ngrass, 0, 102, 0\n"


def _colour_folder(root, csv_text=DRONE_CSV, stray=None):
    """images/*.tif + masks/*.png of RGB colours (the Semantic Drone layout), and the class CSV."""
    from PIL import Image

    from trainkit import class_map, paint

    colours = np.array([[0, 0, 0], [128, 64, 128], [0, 102, 0]], np.uint8)
    (root / "masks").mkdir(parents=True)
    for i in range(2):
        ids = class_map(40, 48, 3, seed=i)
        write_tif(root / "images" / f"{i}.tif", paint(ids, i))
        rgb = colours[ids]
        if stray is not None and i == 1:
            rgb[5, 7] = stray
        Image.fromarray(rgb).save(root / "masks" / f"{i}.png")
    (root / "class_dict.csv").write_text(csv_text, encoding="utf-8")
    return root


def test_class_colours_csv_gives_names_colours_and_ids(tmp_path):
    from trainkit import class_map

    root = _colour_folder(tmp_path)
    classes = ds.read_class_colours(root / "class_dict.csv")
    assert [(c.id, c.name, c.color) for c in classes] == [
        (0, "unlabeled", "#000000"), (1, "paved-area", "#804080"), (2, "grass", "#006600")]
    samples = ds.folder_samples(root / "images", root / "masks", classes=classes)
    _, mask = ds.load_pair(samples[1], 3)
    assert np.array_equal(mask, class_map(40, 48, 3, seed=1))


def test_a_colour_missing_from_the_csv_is_an_error_naming_it_and_the_mask(tmp_path):
    root = _colour_folder(tmp_path, stray=(255, 0, 12))
    samples = ds.folder_samples(root / "images", root / "masks", classes=ds.read_class_colours(root / "class_dict.csv"))
    ds.load_pair(samples[0], 3)
    with pytest.raises(InputError, match=r"mask .*1\.png has the colour #FF000C \(255,0,12\) \(row 5, column 7\)"):
        ds.load_pair(samples[1], 3)


@pytest.mark.parametrize(("text", "message"), [
    ("name,red,green,blue\na,1,2,3\n", "must start with the header name,r,g,b"),
    ("name,r,g,b\na,1,2\nb,3,4,5\n", "line 2 of .* is not name,r,g,b"),
    ("name,r,g,b\na,1,2,300\nb,3,4,5\n", "channels must be 0-255"),
    ("name,r,g,b\na,1,2,3\nb,1,2,3\n", "gives 1,2,3 to both a and b"),
    ("name,r,g,b\na,1,2,3\n", "at least two"),
])
def test_bad_class_colour_csvs_are_one_line_errors(tmp_path, text, message):
    (tmp_path / "c.csv").write_text(text)
    with pytest.raises(InputError, match=message):
        ds.read_class_colours(tmp_path / "c.csv")


def test_stratified_split_is_seeded_and_balances_the_classes(tmp_path):
    from aerialseg.splits import stratified_split

    samples = []
    for i in range(10):  # every image has class 0; images 0-4 also class 1, images 5-9 class 2
        ids = np.zeros((32, 32), np.uint8)
        ids[8:16, 8:16] = 1 if i < 5 else 2
        write_tif(tmp_path / "masks" / f"{i}.tif", ids[None])
        write_tif(tmp_path / "images" / f"{i}.tif", np.zeros((3, 32, 32), np.uint8))
        samples.append(ds.Sample(tmp_path / "images" / f"{i}.tif", tmp_path / "masks" / f"{i}.tif"))
    for seed in range(6):
        train, val = stratified_split(samples, 3, 0.2, seed)
        assert (train, val) == stratified_split(samples, 3, 0.2, seed)  # deterministic
        assert sorted(s.image.name for s in train + val) == sorted(s.image.name for s in samples)
        assert sorted(int(s.image.stem) < 5 for s in val) == [False, True]  # one image of each kind
        assert all(s.window is None for s in val)  # whole images
    assert len({tuple(s.image.name for s in stratified_split(samples, 3, 0.2, seed)[1]) for seed in range(6)}) > 1
    with pytest.raises(InputError, match="needs at least two images"):
        stratified_split(samples[:1], 3, 0.2, 0)
