"""Validation splits of whole images, stratified on the classes each image contains.

``--split stratified`` suits data sets of independent images (separate drone photos, say): each image
goes wholly to training or to validation, and every class appears on both sides in about the wanted
shares. It does not suit crops of one bigger scene (the Dubai tile parts, LandCover.ai's chips):
neighbouring crops share buildings, fields and light across their edges, so a split by image puts the
same objects on both sides and validation scores come out inflated. Those need a spatial split: whole
tiles or files (``--val-images``, the data sets' own splits) or the default ``--split rows``
(:func:`aerialseg.datasets.hold_out_rows`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from aerialseg import datasets as ds
from aerialseg.errors import InputError

_MAX_SIDE = 4096  # bigger masks are read decimated (nearest) to find their classes


def classes_present(sample: ds.Sample, num_classes: int) -> np.ndarray:
    """(num_classes,) bool: which classes the sample's mask holds."""
    h, w = ds.sample_shape(sample)
    step = max(1, -(-max(h, w) // _MAX_SIDE))
    mask = ds.read_sample_mask(sample, num_classes, out_shape=(h // step, w // step) if step > 1 else None)
    return np.bincount(mask[mask < num_classes].ravel(), minlength=num_classes)[:num_classes] > 0


def stratified_split(
    samples: Sequence[ds.Sample], num_classes: int, fraction: float, seed: int
) -> tuple[list[ds.Sample], list[ds.Sample]]:
    """Training and validation images, ``fraction`` of the images held out, balanced on the classes present.

    Iterative stratification (Sechidis et al., 2011, simplified): classes are visited from the rarest (held by
    the fewest images) up; the not yet assigned images holding one go to validation, in a seeded random
    order, until that class has its share there. Images without any labelled class fill the overall share.
    The same samples, fraction and seed always give the same split.
    """
    n = len(samples)
    if n < 2:
        raise InputError(f"--split stratified needs at least two images, got {n}; use --split rows")
    present = np.stack([classes_present(s, num_classes) for s in samples])
    order = np.random.default_rng(seed).permutation(n)
    to_val: dict[int, bool] = {}
    for c in sorted(range(num_classes), key=lambda c: (present[:, c].sum(), c)):
        holders = [int(i) for i in order if present[i, c]]
        need = round(fraction * len(holders)) - sum(to_val.get(i, False) for i in holders)
        for i in (i for i in holders if i not in to_val):
            to_val[i] = need > 0
            need -= to_val[i]
    rest = [int(i) for i in order if int(i) not in to_val]
    need = round(fraction * n) - sum(to_val.values())
    for i in rest:
        to_val[i] = need > 0
        need -= to_val[i]
    val = [s for i, s in enumerate(samples) if to_val[i]]
    train = [s for i, s in enumerate(samples) if not to_val[i]]
    if not val or not train:
        raise InputError(f"--split stratified: {n} images give no {'validation' if not val else 'training'} image "
                         f"at --val-fraction {fraction}; add images or change --val-fraction")
    return train, val
