"""Training data: readers for image/mask pairs and random chip sampling.

Five layouts are understood, each turned into a list of :class:`Sample` (an image, its mask, the
mask's encoding and the factor the pair is resampled by):

* Dubai ("Semantic segmentation of aerial imagery", Humans in the Loop): ``tile_N/images/*.jpg`` +
  ``tile_N/masks/*.png`` (or ``Tile N/...``), colour-coded masks (some palette PNGs);
* generic folders: same-named rasters in an image folder and a mask folder (class ids, or colours of a
  ``name,r,g,b`` CSV);
* LandCover.ai: ``images/*.tif`` + ``masks/*.tif`` and ``train.txt``/``val.txt``/``test.txt``;
* ISPRS Potsdam: ``top_potsdam_X_Y_RGB.tif`` + ``top_potsdam_X_Y_label.tif`` (colour-coded);
* georeferenced rasters + a vector layer of labelled polygons (:class:`VectorLabels`), rasterised
  on the fly onto each image's grid, window by window.

Chips are cut on the fly from the full images (no pre-cut copies) by :class:`ChipDataset`, with
scale jitter, flips, 90 degree rotations, brightness/contrast/colour changes, blur and noise. Pixels with
:data:`IGNORE_INDEX` in a mask are excluded from losses and metrics; so are the image's nodata pixels.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import rasterio
import rasterio.features
import shapely
import torch
import torch.nn.functional as F
from rasterio.enums import MaskFlags, Resampling
from rasterio.errors import RasterioIOError

from aerialseg.card import ClassInfo
from aerialseg.errors import InputError, RasterError
from aerialseg.presets import (  # noqa: F401  (re-exported: training code and tests use them from here)
    DUBAI_CLASSES,
    IGNORE_INDEX,
    LANDCOVERAI_CLASSES,
    POTSDAM_CLASSES,
    RGB,
    colours_to_ids,
    read_class_colours,
)
from aerialseg.presets import palette_table as _palette

_IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".jp2", ".img", ".vrt")


@dataclass(frozen=True)
class VectorLabels:
    """A vector layer of labelled polygons used as the mask of georeferenced images.

    Attributes:
        path: Vector file (GeoPackage, Shapefile, GeoJSON, ... anything GDAL reads).
        field: Attribute holding each polygon's class: an id (0, 1, ...) or a class name (any case).
        class_names: Class names in id order.
        layer: Layer of a multi-layer file (None: the first).
        unlabelled: Value of pixels outside every polygon: IGNORE_INDEX (not learnt from) or a class id.
    """

    path: Path
    field: str
    class_names: tuple[str, ...]
    layer: str | None = None
    unlabelled: int = 255


@dataclass(frozen=True)
class Sample:
    """One training pair.

    Attributes:
        image: Path of the image raster.
        mask: Path of the mask raster (same grid as the image); the image itself when ``labels`` is set.
        colours: If set, the mask is colour-coded: class i has colour ``colours[i]``; any other colour
            is ignored. If None, the mask holds class ids (values >= number of classes are ignored).
        scale: Resampling factor applied to the pair (0.5 = half the pixels per side).
        window: Optional (row, col, height, width) part of the rasters that the sample is.
        labels: Labelled polygons rasterised onto the image grid instead of a mask raster.
        strict: With ``colours``: a colour not in ``colours`` is an InputError instead of ignored.
    """

    image: Path
    mask: Path
    colours: tuple[RGB, ...] | None = None
    scale: float = 1.0
    window: tuple[int, int, int, int] | None = None
    labels: VectorLabels | None = None
    strict: bool = False


def _colours(classes: Sequence[ClassInfo]) -> tuple[RGB, ...]:
    return tuple(c.rgb for c in classes)


def dubai_samples(root: str | Path, tiles: Sequence[int], tile_scales: dict[int, float] | None = None) -> list[Sample]:
    """Pairs of the Dubai dataset for whole ``tiles`` (split by tile, never by image).

    Args:
        root: Folder holding ``tile_1`` ... ``tile_7`` (or ``Tile 1`` ..., as the download unzips).
        tiles: Tile numbers to use.
        tile_scales: Optional resampling factor per tile (to bring tiles to one ground resolution).
    """
    samples = []
    for t in tiles:
        spaced = Path(root) / f"Tile {t}"  # as the download unzips
        folder = spaced if spaced.is_dir() else Path(root) / f"tile_{t}"
        images = sorted((folder / "images").glob("*.jpg"))
        if not images:
            raise InputError(f"no images in {folder / 'images'}; expected the Dubai layout tile_N/images/*.jpg")
        scale = (tile_scales or {}).get(int(t), 1.0)
        for img in images:
            samples.append(Sample(img, _existing(folder / "masks" / f"{img.stem}.png"), _colours(DUBAI_CLASSES), scale))
    return samples


def folder_samples(
    images_dir: str | Path, masks_dir: str | Path, scale: float = 1.0, classes: Sequence[ClassInfo] | None = None
) -> list[Sample]:
    """Pairs of same-named rasters (any suffix) in ``images_dir`` and ``masks_dir``.

    Masks hold class ids, or with ``classes`` (from a colour CSV) exactly their colours: any other colour
    is an InputError naming it and the mask.
    """
    masks = (
        {p.stem: p for p in Path(masks_dir).iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES}
        if Path(masks_dir).is_dir()
        else {}
    )
    images = sorted(p for p in Path(images_dir).glob("*") if p.suffix.lower() in _IMAGE_SUFFIXES)
    if not images or not masks:
        raise InputError(f"no rasters found in {images_dir} and/or {masks_dir}; expect same-named image and mask files")
    missing = [p.name for p in images if p.stem not in masks]
    if missing:
        raise InputError(f"{len(missing)} image(s) have no mask of the same name in {masks_dir}, e.g. {missing[0]}")
    colours = _colours(classes) if classes else None
    return [Sample(p, masks[p.stem], colours, scale, strict=colours is not None) for p in images]


def landcoverai_samples(root: str | Path, split: str, scale: float = 1.0, chip: int = 512) -> list[Sample]:
    """LandCover.ai pairs of one split (``train``, ``val`` or ``test``).

    The split files list chip names (``M-33-20-D-c-4-2_7``): chip k of an orthophoto is its k-th full
    ``chip`` x ``chip`` window in row-major order (how the dataset's ``split.py`` cut them). Chips are
    read as windows of the original orthophotos, so no cut copies are needed.
    """
    root = Path(root)
    listing = root / f"{split}.txt"
    if not listing.is_file():
        raise InputError(f"{listing} not found; LandCover.ai needs images/, masks/ and {split}.txt")
    samples, widths = [], {}
    for name in (n.strip() for n in listing.read_text().split()):
        m = re.match(r"(.+)_(\d+)$", name)
        if not m:
            raise InputError(f"{listing}: cannot read chip name {name!r}; expected <image>_<k>")
        stem, k = m.group(1), int(m.group(2))
        image, mask = _existing(root / "images" / f"{stem}.tif"), _existing(root / "masks" / f"{stem}.tif")
        if stem not in widths:
            widths[stem] = raster_shape(image)[1] // chip
        row, col = divmod(k, widths[stem])
        samples.append(Sample(image, mask, None, scale, (row * chip, col * chip, chip, chip)))
    return samples


def potsdam_samples(root: str | Path, tiles: Sequence[str] | None = None, scale: float = 1.0) -> list[Sample]:
    """ISPRS Potsdam pairs ``top_potsdam_X_Y_RGB.tif`` + ``top_potsdam_X_Y_label.tif``.

    Args:
        root: Folder searched recursively for both kinds of file.
        tiles: Tile ids such as ``"2_10"``; None for all.
        scale: Resampling factor (Potsdam is 5 cm; 0.1 gives 50 cm).
    """
    labels = {
        m.group(1): p
        for p in Path(root).rglob("top_potsdam_*_label.tif")
        if (m := re.match(r"top_potsdam_(\d+_\d+)_label", p.name))
    }
    samples = []
    for img in sorted(Path(root).rglob("top_potsdam_*_RGB.tif")):
        tile_id = re.match(r"top_potsdam_(\d+_\d+)_RGB", img.name).group(1)  # type: ignore[union-attr]
        if (tiles is None or tile_id in tiles) and tile_id in labels:
            samples.append(Sample(img, labels[tile_id], _colours(POTSDAM_CLASSES), scale))
    if not samples:
        raise InputError(f"no top_potsdam_X_Y_RGB.tif with a matching _label.tif under {root}")
    return samples


def image_paths(images: str | Path) -> list[Path]:
    """The rasters named by ``images``: one file, or every raster in a folder."""
    p = Path(images)
    if p.is_dir():
        found = sorted(q for q in p.iterdir() if q.suffix.lower() in _IMAGE_SUFFIXES)
        if not found:
            raise InputError(f"no rasters ({', '.join(_IMAGE_SUFFIXES)}) in the folder {p}")
        return found
    if not p.is_file():
        _open(p).close()  # a GDAL dataset name (/vsi..., a VRT string, ...) may still open
    return [p]


def vector_samples(images: str | Path, labels: VectorLabels, scale: float = 1.0) -> list[Sample]:
    """Georeferenced images (a raster or a folder) labelled by polygons; each must overlap the labels."""
    samples = []
    for img in image_paths(images):
        with _open(img) as src:
            if src.crs is None or src.transform.is_identity:
                raise InputError(f"{img} is not georeferenced: label polygons cannot be placed on it")
            bounds, crs = shapely.box(*src.bounds), src.crs.to_wkt()
        _, _, tree = _label_index(labels, crs)
        if not len(tree.query(bounds)):
            raise InputError(f"no label polygon of {labels.path} overlaps {img}")
        samples.append(Sample(img, img, None, scale, labels=labels))
    return samples


def hold_out_rows(samples: Sequence[Sample], fraction: float) -> tuple[list[Sample], list[Sample]]:
    """Split each sample into its top rows (training) and its bottom ``fraction`` of rows (validation).

    A spatial split: the validation part is never seen in training, only its neighbour.
    """
    if not 0 < fraction < 1:
        raise InputError(f"the validation share must be between 0 and 1, not {fraction}")
    train, val = [], []
    for s in samples:
        r0, c0, h, w = s.window or (0, 0, *raster_shape(s.image))
        cut = h - max(1, round(h * fraction))
        if cut < 32:
            raise InputError(f"{s.image} has {h} rows: too few to hold out {fraction:.0%} for validation")
        train.append(replace(s, window=(r0, c0, cut, w)))
        val.append(replace(s, window=(r0 + cut, c0, h - cut, w)))
    return train, val


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise InputError(f"missing file {path}; every image needs a mask of the same name")
    return path


Window = tuple[int, int, int, int]  # row offset, column offset, height, width (source pixels)


def _open(path: Path) -> rasterio.io.DatasetReader:
    try:
        return rasterio.open(path)
    except RasterioIOError as e:
        raise RasterError(f"cannot open {path}: {e}") from None


def raster_shape(path: Path) -> tuple[int, int]:
    """(height, width) of a raster, read from its header."""
    with _open(path) as src:
        return src.height, src.width


def read_image(
    path: Path, bands: Sequence[int] = (1, 2, 3), window: Window | None = None, out_shape: tuple[int, int] | None = None
) -> np.ndarray:
    """Read ``bands`` of a raster (or of a window, resampled bilinearly to ``out_shape``) as (C, H, W)."""
    try:
        with rasterio.open(path) as src:
            return src.read(
                list(bands), window=_rio_window(window), out_shape=out_shape, resampling=Resampling.bilinear
            )
    except (RasterioIOError, IndexError) as e:
        raise RasterError(f"cannot read bands {list(bands)} of {path}: {e}") from None


def read_mask(
    path: Path,
    colours: Sequence[RGB] | None,
    num_classes: int,
    window: Window | None = None,
    out_shape: tuple[int, int] | None = None,
    strict: bool = False,
) -> np.ndarray:
    """Read a mask (or a window, nearest-resampled) as (H, W) uint8 class ids; unknown values -> IGNORE_INDEX.

    Palette masks (one band with a colour table) are expanded to RGB before the colour lookup. ``strict``:
    a colour that is not one of ``colours`` is an InputError naming it and the file.
    """
    try:
        with rasterio.open(path) as src:
            data = src.read(window=_rio_window(window), out_shape=out_shape, resampling=Resampling.nearest)
            palette = _palette(src) if src.count == 1 and colours is not None else None
    except RasterioIOError as e:
        raise RasterError(f"cannot read mask {path}: {e}") from None
    if colours is None:
        ids = data[0].astype(np.int64)
        return np.where((ids >= 0) & (ids < num_classes), ids, IGNORE_INDEX).astype(np.uint8)
    if palette is not None:
        data = palette[data[0]].transpose(2, 0, 1)
    if data.shape[0] < 3:
        raise RasterError(f"mask {path} has {data.shape[0]} band(s) and no colour table; expected an RGB colour mask")
    ids = colours_to_ids(data[:3], colours)
    if strict and (ids == IGNORE_INDEX).any():
        _unknown_colour(path, data[:3], ids, window)
    return ids


def _unknown_colour(path: Path, rgb: np.ndarray, ids: np.ndarray, window: Window | None) -> None:
    """Raise the InputError for the first pixel of a colour mask whose colour is not a class's."""
    y, x = (int(v[0]) for v in np.nonzero(ids == IGNORE_INDEX))
    r, g, b = (int(v) for v in rgb[:, y, x])
    where = f" (near row {y + window[0]}, column {x + window[1]})" if window else f" (row {y}, column {x})"
    raise InputError(f"mask {path} has the colour #{r:02X}{g:02X}{b:02X} ({r},{g},{b}){where}, which is not in "
                     "--class-colours; add it to the CSV (a class of its own, e.g. unlabelled) or fix the mask")


def _rio_window(window: Window | None) -> rasterio.windows.Window | None:
    return None if window is None else rasterio.windows.Window(window[1], window[0], window[3], window[2])


def sample_shape(sample: Sample) -> tuple[int, int]:
    """(height, width) of a sample in source pixels (its window, or the whole raster)."""
    return (sample.window[2], sample.window[3]) if sample.window else raster_shape(sample.image)


def load_pair(
    sample: Sample, num_classes: int, window: Window | None = None, out_shape: tuple[int, int] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Image (C, H, W) and mask (H, W) uint8 of a sample (or of ``window`` inside it, relative to the sample).

    Without ``out_shape`` the pair is resampled by ``sample.scale``.
    """
    if window is not None and sample.window is not None:
        window = (window[0] + sample.window[0], window[1] + sample.window[1], window[2], window[3])
    window = window or sample.window
    h, w = (window[2], window[3]) if window else raster_shape(sample.image)
    if out_shape is None and sample.scale != 1.0:
        out_shape = (max(1, round(h * sample.scale)), max(1, round(w * sample.scale)))
    image = read_image(sample.image, window=window, out_shape=out_shape)
    return image, read_sample_mask(sample, num_classes, window, out_shape)


def read_sample_mask(
    sample: Sample, num_classes: int, window: Window | None = None, out_shape: tuple[int, int] | None = None
) -> np.ndarray:
    """Class ids (H, W) of a sample's window (default: the sample's own), with the image's nodata ignored."""
    window = window or sample.window
    if sample.labels is not None:
        mask = rasterize_labels(sample.labels, sample.image, window, out_shape)
    else:
        if raster_shape(sample.mask) != raster_shape(sample.image):
            raise InputError(f"{sample.image.name}: image and mask {sample.mask.name} have different sizes")
        mask = read_mask(sample.mask, sample.colours, num_classes, window, out_shape, sample.strict)
    valid = image_validity(sample.image, window, out_shape)
    if valid is not None:
        mask[~valid] = IGNORE_INDEX
    return mask


def image_validity(
    path: Path, window: Window | None = None, out_shape: tuple[int, int] | None = None
) -> np.ndarray | None:
    """Where the image has data (its nodata value, mask band or alpha), or None when it is valid everywhere."""
    if _valid_everywhere(path):
        return None
    with _open(path) as src:
        valid = src.dataset_mask(window=_rio_window(window), out_shape=out_shape, resampling=Resampling.nearest)
    return valid > 0


@functools.lru_cache(maxsize=256)
def _valid_everywhere(path: Path) -> bool:
    """Whether no band of the image has a nodata value, mask band or alpha (asked once per image, not per chip)."""
    with _open(path) as src:
        return all(MaskFlags.all_valid in flags for flags in src.mask_flag_enums)


@functools.lru_cache(maxsize=16)
def _label_index(labels: VectorLabels, crs: str) -> tuple[np.ndarray, np.ndarray, shapely.STRtree]:
    """Polygons (in ``crs``, largest first) with their class ids and a spatial index; read once per process."""
    import geopandas as gpd

    try:
        frame = gpd.read_file(labels.path, layer=labels.layer, engine="pyogrio")
    except Exception as e:  # pyogrio raises its own DataSourceError / DataLayerError
        raise InputError(f"cannot read the label polygons {labels.path}: {e}") from None
    if labels.field not in frame.columns:
        fields = ", ".join(str(c) for c in frame.columns if c != "geometry")
        raise InputError(f"{labels.path} has no field {labels.field!r}; its fields: {fields}")
    if frame.crs is None:
        raise InputError(f"{labels.path} has no coordinate reference system; set one (e.g. in QGIS) and retry")
    labelled = frame[labels.field].notna() & frame.geometry.notna() & ~frame.geometry.is_empty
    frame = frame[labelled].to_crs(crs)  # polygons without a class (NULL) label nothing
    ids = _class_ids(frame[labels.field], labels)
    geoms = frame.geometry.to_numpy()
    order = np.argsort(-shapely.area(geoms), kind="stable")  # small polygons are drawn over the big ones
    geoms, ids = geoms[order], ids[order]
    return geoms, ids, shapely.STRtree(geoms)


def _class_ids(values: Sequence, labels: VectorLabels) -> np.ndarray:
    """Class ids of a label field (ids or names, any case); unknown values are an InputError."""
    lookup = {n.lower(): i for i, n in enumerate(labels.class_names)}
    ids, unknown = [], set()
    for v in values:
        text = str(v).strip()
        cid = int(float(text)) if re.fullmatch(r"\d+(\.0*)?", text) else lookup.get(text.lower())
        if cid is None or not 0 <= cid < len(labels.class_names):
            unknown.add(text)
        ids.append(cid if cid is not None else 0)
    if unknown:
        raise InputError(
            f"field {labels.field!r} of {labels.path} has values that are not classes: "
            f"{', '.join(sorted(unknown)[:10])}; "
            f"use ids 0-{len(labels.class_names) - 1} or the names {', '.join(labels.class_names)}"
        )
    return np.asarray(ids, np.uint8)


def rasterize_labels(
    labels: VectorLabels, image: Path, window: Window | None = None, out_shape: tuple[int, int] | None = None
) -> np.ndarray:
    """The label polygons burnt onto the grid of ``image`` (or a window of it, at ``out_shape``)."""
    with _open(image) as src:
        win = _rio_window(window) or rasterio.windows.Window(0, 0, src.width, src.height)
        transform, bounds = src.window_transform(win), rasterio.windows.bounds(win, src.transform)
        crs = src.crs.to_wkt() if src.crs else ""
    h, w = int(win.height), int(win.width)
    out_h, out_w = out_shape or (h, w)
    transform = transform @ rasterio.Affine.scale(w / out_w, h / out_h)
    geoms, ids, tree = _label_index(labels, crs)
    hits = np.sort(tree.query(shapely.box(*bounds)))  # keep the largest-first drawing order
    if not len(hits):
        return np.full((out_h, out_w), labels.unlabelled, np.uint8)
    return rasterio.features.rasterize(
        zip(geoms[hits], ids[hits].tolist()),
        out_shape=(out_h, out_w),
        transform=transform,
        fill=labels.unlabelled,
        dtype="uint8",
    )


@dataclass(frozen=True)
class Augment:
    """Chip augmentation settings: scale jitter range, flips/rotations, brightness/contrast spread."""

    scale_jitter: tuple[float, float] = (0.75, 1.33)
    flips: bool = True
    brightness: float = 0.15
    contrast: float = 0.15
    colour: float = 0.0  # per-band shift (share of the range) and saturation change (+- 2x this share)
    blur: float = 0.0  # probability of a Gaussian blur (sigma 0.5-1.5 px) or sensor noise


class ChipDataset(torch.utils.data.Dataset):
    """Random square chips cut on the fly from whole images.

    Small data sets (Dubai) are decoded once and kept in memory; big ones (``cache=False``) are read
    window by window from the files. Item ``i`` of epoch ``e`` is drawn with a generator seeded by
    ``(seed, e, i)``, so a run is reproducible and resumes exactly, whatever the number of workers.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        num_classes: int,
        chip: int,
        length: int,
        mean: Sequence[float],
        std: Sequence[float],
        scale: float = 255.0,
        augment: Augment | None = Augment(),
        seed: int = 0,
        cache: bool = True,
    ) -> None:
        if not samples:
            raise InputError("no training samples")
        self.samples, self.num_classes, self.chip, self.length = list(samples), num_classes, chip, length
        self.seed, self.augment, self.epoch = seed, augment, 0
        self.pairs = [load_pair(s, num_classes) for s in samples] if cache else None
        self.mean = np.asarray(mean, np.float32)[:, None, None] * scale
        self.std = np.asarray(std, np.float32)[:, None, None] * scale
        shapes = [sample_shape(s) for s in samples]
        areas = np.array([h * w * s.scale**2 for (h, w), s in zip(shapes, samples)], np.float64)
        self.shapes, self.weights = shapes, areas / areas.sum()

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = np.random.default_rng((self.seed, self.epoch, index))
        k = int(rng.choice(len(self.samples), p=self.weights))
        jitter = rng.uniform(*self.augment.scale_jitter) if self.augment else 1.0
        image, mask = self._cached_chip(k, jitter, rng) if self.pairs else self._read_chip(k, jitter, rng)
        image = (image.astype(np.float32) - self.mean) / self.std
        if self.augment is not None:
            image, mask = _augment(image, mask, self.augment, rng)
        return torch.from_numpy(np.ascontiguousarray(image)), torch.from_numpy(np.ascontiguousarray(mask)).long()

    def _cached_chip(self, k: int, jitter: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        image, mask = self.pairs[k]  # type: ignore[index]
        h, w = mask.shape
        side = min(h, w, max(8, round(self.chip / jitter)))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        img, msk = image[:, y : y + side, x : x + side], mask[y : y + side, x : x + side]
        return _resize(img, msk, (self.chip, self.chip)) if side != self.chip else (img, msk)

    def _read_chip(self, k: int, jitter: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        sample, (h, w) = self.samples[k], self.shapes[k]
        side = min(h, w, max(8, round(self.chip / (jitter * sample.scale))))
        y, x = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        return load_pair(sample, self.num_classes, (y, x, side, side), (self.chip, self.chip))


def _resize(image: np.ndarray, mask: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Bilinear (antialiased) image and nearest mask resampling to ``size`` (H, W)."""
    img = F.interpolate(
        torch.from_numpy(np.ascontiguousarray(image, np.float32))[None],
        size=size,
        mode="bilinear",
        antialias=True,
        align_corners=False,
    )[0].numpy()
    msk = F.interpolate(torch.from_numpy(np.ascontiguousarray(mask))[None, None].float(), size=size, mode="nearest")
    return img, msk[0, 0].numpy().astype(np.uint8)


def _augment(
    image: np.ndarray, mask: np.ndarray, aug: Augment, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Random flip, 90 degree rotation, (normalised-space) brightness/contrast/colour change, blur or noise."""
    if aug.flips:
        k = int(rng.integers(0, 4))
        image, mask = np.rot90(image, k, axes=(1, 2)), np.rot90(mask, k)
        if rng.random() < 0.5:
            image, mask = image[:, :, ::-1], mask[:, ::-1]
    contrast = 1.0 + rng.uniform(-aug.contrast, aug.contrast)
    brightness = rng.uniform(-aug.brightness, aug.brightness) * 4.0  # ~4 std span the 0..255 range
    image = image * contrast + brightness
    if aug.colour > 0:
        grey = image.mean(axis=0, keepdims=True)
        saturation = 1.0 + rng.uniform(-2 * aug.colour, 2 * aug.colour)
        shift = rng.uniform(-aug.colour, aug.colour, size=(image.shape[0], 1, 1)) * 4.0
        image = grey + (image - grey) * saturation + shift
    if aug.blur > 0 and rng.random() < aug.blur:
        image = _blur(image, float(rng.uniform(0.5, 1.5))) if rng.random() < 0.7 else _noise(image, rng)
    return image.astype(np.float32, copy=False), mask


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of each band (reflected edges), as an out-of-focus or coarser camera would give."""
    r = max(1, round(2.5 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    kernel = torch.from_numpy((k / k.sum()).astype(np.float32))
    x = torch.from_numpy(np.ascontiguousarray(image, np.float32))[:, None]  # (bands, 1, H, W)
    x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), kernel.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), kernel.view(1, 1, -1, 1))
    return x[:, 0].numpy()


def _noise(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Gaussian sensor noise of up to ~8 grey levels (normalised units: ~0.15 std)."""
    return image + rng.normal(0.0, rng.uniform(0.03, 0.15), size=image.shape).astype(np.float32)


def channel_stats(samples: Sequence[Sample], scale: float = 255.0) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-band mean and std of the images (after dividing by ``scale``), rounded to 4 decimals."""
    total, sq, n = np.zeros(3), np.zeros(3), 0
    for s in samples:
        h, w = sample_shape(s)
        step = max(1, max(h, w) // 4096)  # big rasters are read decimated
        shape = (h // step, w // step) if step > 1 else None
        img = read_image(s.image, window=s.window, out_shape=shape).astype(np.float64).reshape(3, -1) / scale
        total, sq, n = total + img.sum(1), sq + (img**2).sum(1), n + img.shape[1]
    mean = total / n
    std = np.sqrt(np.maximum(sq / n - mean**2, 1e-12))
    return tuple(round(float(v), 4) for v in mean), tuple(round(float(v), 4) for v in std)


def class_pixel_counts(masks: Sequence[np.ndarray], num_classes: int) -> np.ndarray:
    """Number of labelled pixels of each class in ``masks`` (ignore pixels excluded)."""
    counts = np.zeros(num_classes, np.int64)
    for m in masks:
        counts += np.bincount(m[m < num_classes].ravel(), minlength=num_classes)[:num_classes]
    return counts
