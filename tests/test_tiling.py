"""Tile grid, output blocks and blending weights: coverage, ownership, spill and partition of unity."""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pytest

from aerialseg.tiling import Block, Tile, TileGrid, blend_weights

# (height, width) x (tile, overlap) x block target: small odd sizes, sizes equal to or just past a tile,
# rasters smaller than one tile, overlap 0 and overlap tile/2, blocks smaller than / equal to a stride.
SHAPES = [(1, 1), (7, 300), (64, 64), (65, 63), (100, 257), (129, 128), (300, 500), (513, 97)]
GEOMETRY = [(16, 0), (16, 8), (64, 16), (64, 32), (96, 32), (33, 16), (128, 0), (128, 64)]
BLOCKS = [1, 48, 100, 256, 2048]
CASES = [(h, w, t, o, b) for (h, w), (t, o), b in itertools.product(SHAPES, GEOMETRY, BLOCKS)]


def _all_tiles(grid: TileGrid) -> list[tuple[Block, Tile]]:
    return [(block, tile) for block in grid.blocks() for tile in grid.owned_tiles(block)]


@pytest.mark.parametrize("height,width,tile,overlap,block", CASES)
def test_grid_invariants(height, width, tile, overlap, block):
    grid = TileGrid.create(height, width, tile, overlap, block)
    stride = tile - overlap
    assert grid.stride == stride
    assert grid.block % stride == 0 and grid.block >= stride  # blocks are aligned to the stride

    # Blocks tile the raster exactly, without gaps or overlaps.
    blocks = list(grid.blocks())
    block_cover = np.zeros((height, width), np.int32)
    for b in blocks:
        assert b.height > 0 and b.width > 0
        assert (b.y0, b.x0) == (b.row * grid.block, b.col * grid.block)
        block_cover[b.y0 : b.y0 + b.height, b.x0 : b.x0 + b.width] += 1
    assert (block_cover == 1).all()

    pairs = _all_tiles(grid)
    # Ownership partitions the tile set: every (row, col) of the grid exactly once.
    counts = Counter((t.row, t.col) for _, t in pairs)
    assert set(counts) == {(i, j) for i in range(grid.tile_rows) for j in range(grid.tile_cols)}
    assert set(counts.values()) == {1}
    assert len(pairs) == grid.n_tiles

    cover = np.zeros((height, width), np.int32)
    for b, t in pairs:
        # The grid is global: a tile's position depends only on its index, never on the block.
        assert (t.y0, t.x0, t.size) == (t.row * stride, t.col * stride, tile)
        # Its origin lies inside the owning block ...
        assert b.y0 <= t.y0 < b.y0 + b.height and b.x0 <= t.x0 < b.x0 + b.width
        assert t.y0 < height and t.x0 < width
        # ... and inside the raster it spills at most `overlap` px past the block, right and below.
        assert min(t.y0 + t.size, height) - (b.y0 + b.height) <= overlap
        assert min(t.x0 + t.size, width) - (b.x0 + b.width) <= overlap
        cover[t.y0 : t.y0 + t.size, t.x0 : t.x0 + t.size] += 1
    assert (cover >= 1).all(), "some pixels are covered by no tile"


@pytest.mark.parametrize("height,width,tile,overlap", [(300, 500, 64, 16), (1000, 37, 96, 32), (40, 40, 64, 16)])
def test_tile_counts_are_minimal(height, width, tile, overlap):
    """One tile fewer in a direction would leave pixels uncovered."""
    grid = TileGrid.create(height, width, tile, overlap)
    for n, length in ((grid.tile_rows, height), (grid.tile_cols, width)):
        assert (n - 1) * grid.stride + tile >= length
        assert n == 1 or (n - 2) * grid.stride + tile < length


def test_ownership_does_not_depend_on_the_block_size():
    """Whatever the split into blocks, the same tiles exist at the same places."""
    ref = {t for _, t in _all_tiles(TileGrid.create(700, 450, 64, 16, 10_000))}
    for target in (1, 48, 96, 500, 2048):
        assert {t for _, t in _all_tiles(TileGrid.create(700, 450, 64, 16, target))} == ref


@pytest.mark.parametrize("tile,overlap", [(64, 33), (64, -1), (16, 9)])
def test_overlap_beyond_half_a_tile_is_refused(tile, overlap):
    with pytest.raises(ValueError, match="overlap"):
        TileGrid.create(100, 100, tile, overlap)


BLEND_CASES = [(16, 0), (16, 1), (16, 8), (17, 8), (64, 16), (96, 32), (128, 64), (512, 205)]


@pytest.mark.parametrize("tile,overlap", BLEND_CASES)
def test_blend_weights(tile, overlap):
    w = blend_weights(tile, overlap)
    assert w.shape == (tile, tile) and w.dtype == np.float32
    assert not w.flags.writeable  # shared through the cache: nobody may change it
    # Symmetric: transposition and both flips leave it unchanged.
    np.testing.assert_array_equal(w, w.T)
    np.testing.assert_array_equal(w, w[::-1, :])
    np.testing.assert_array_equal(w, w[:, ::-1])
    # Positive everywhere, never above 1.
    assert w.min() > 0 and w.max() <= 1
    # Exactly 1 away from the overlap strips.
    np.testing.assert_array_equal(w[overlap : tile - overlap, overlap : tile - overlap], 1.0)
    # Separable: the outer product of one 1-D ramp with itself.
    ramp = np.sqrt(np.diag(w).astype(np.float64))
    np.testing.assert_allclose(w, np.outer(ramp, ramp), atol=1e-6)
    # Neighbouring tiles (stride apart) sum to 1 across their shared strip.
    stride = tile - overlap
    np.testing.assert_allclose(ramp[stride:] + ramp[:overlap], 1.0, atol=1e-6)
    # In 2-D, four tiles meeting at a corner sum to 1 over the shared square.
    if overlap:
        corner = (w[stride:, stride:].astype(np.float64) + w[stride:, :overlap] + w[:overlap, stride:]
                  + w[:overlap, :overlap])
        np.testing.assert_allclose(corner, 1.0, atol=1e-5)


@pytest.mark.parametrize("tile,overlap", [(64, 16), (48, 24), (100, 30)])
def test_blended_weights_of_a_whole_grid_are_one_inside(tile, overlap):
    """Summing every tile's weights over a grid gives exactly 1 wherever a pixel has a tile on each side."""
    grid = TileGrid.create(400, 300, tile, overlap)
    w = blend_weights(tile, overlap).astype(np.float64)
    total = np.zeros((grid.tile_rows * grid.stride + tile, grid.tile_cols * grid.stride + tile))
    for _, t in _all_tiles(grid):
        total[t.y0 : t.y0 + tile, t.x0 : t.x0 + tile] += w
    inner = total[overlap : grid.height - overlap, overlap : grid.width - overlap]
    np.testing.assert_allclose(inner, 1.0, atol=1e-5)


def test_blend_weights_without_overlap_are_all_ones():
    np.testing.assert_array_equal(blend_weights(32, 0), np.ones((32, 32), np.float32))


@pytest.mark.parametrize(
    "height,width,tile,overlap", [(300, 500, 64, 16), (256, 256, 64, 32), (100, 70, 64, 8), (40, 40, 64, 16)]
)
def test_border_aware_weights_sum_to_one_over_the_whole_raster(height, width, tile, overlap):
    """Sides facing the raster's border keep full weight, so every pixel's weights sum to exactly 1."""
    from aerialseg.tiling import tile_borders

    grid = TileGrid.create(height, width, tile, overlap)
    total = np.zeros((height + tile, width + tile))
    for block in grid.blocks():
        for t in grid.owned_tiles(block):
            total[t.y0 : t.y0 + tile, t.x0 : t.x0 + tile] += blend_weights(tile, overlap, tile_borders(grid, t))
    np.testing.assert_allclose(total[:height, :width], 1.0, atol=1e-6)
