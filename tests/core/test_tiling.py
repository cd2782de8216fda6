"""Tile grid geometry, level choice, tissue fractions and the prefetching reader."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from napari_xai.core.layers import grid_to_world, mask_to_world
from napari_xai.core.options import GridOptions
from napari_xai.core.reader import TileReader, read_tiles
from napari_xai.core.tiling import (
    TileMasks,
    choose_read_level,
    mask_fraction,
    plan_tile_grid,
    tile_grid,
)

BOXES_DOWNSAMPLES = (1.0, 2.0, 4.016129032258064, 8.086312118570184)
#: Keep every tile of the grid, however little tissue it has.
ALL_TILES = GridOptions(min_tissue=0)


@pytest.mark.parametrize(
    ("shape_rc", "tile", "stride", "expected"),
    [
        ((301, 257), 64, 64, (5, 5)),
        ((256, 256), 64, 64, (4, 4)),
        ((257, 256), 64, 64, (5, 4)),
        ((301, 257), 64, 32, (9, 8)),
        ((300, 250), 60, 30, (9, 8)),
        ((10, 7), 64, 64, (1, 1)),
        ((1, 1), 3, 1, (1, 1)),
    ],
)
def test_grid_covers_odd_sizes(shape_rc, tile, stride, expected) -> None:
    grid = tile_grid(shape_rc, tile_size0=tile, stride0=stride)
    assert grid.grid_shape == expected
    assert len(grid) == expected[0] * expected[1]
    # Every level-0 pixel is inside some tile; the last tiles start inside the slide.
    assert grid.rows.max() < shape_rc[0] and grid.cols.max() < shape_rc[1]
    assert grid.rows.max() + tile >= shape_rc[0]
    assert grid.cols.max() + tile >= shape_rc[1]
    covered = np.zeros(shape_rc, bool)
    for r, c in zip(grid.rows, grid.cols, strict=True):
        covered[r : r + tile, c : c + tile] = True
    assert covered.all()
    np.testing.assert_array_equal(grid.rows, grid.grid_rows * stride)
    np.testing.assert_array_equal(grid.cols, grid.grid_cols * stride)
    last_r = (expected[0] - 1) * stride + tile
    last_c = (expected[1] - 1) * stride + tile
    assert grid.is_edge.any() == (last_r > shape_rc[0] or last_c > shape_rc[1])


def test_level_choice_with_odd_downsamples() -> None:
    # A nominal x4 model is served by the 4.016 level (within tolerance), no resize.
    assert choose_read_level(BOXES_DOWNSAMPLES, 4.0) == 2
    assert choose_read_level(BOXES_DOWNSAMPLES, 8.0) == 3  # 8.086 is within 2 %
    assert choose_read_level(BOXES_DOWNSAMPLES, 7.0) == 2  # never coarser than wanted
    assert choose_read_level(BOXES_DOWNSAMPLES, 3.9) == 1  # 4.016 is 3 % too coarse
    assert choose_read_level(BOXES_DOWNSAMPLES, 0.5) == 0  # finer than level 0: upsample
    assert choose_read_level((1.0,), 100.0) == 0


def test_plan_grid_boxes_geometry() -> None:
    # boxes.tiff: 300 x 250 (rows x cols) with downsamples 1, 2, 4.016, 8.086.
    shape = (250, 300)
    g = plan_tile_grid(
        shape, BOXES_DOWNSAMPLES, slide_mpp=0.25, model_mpp=1.0, tile_size=16, options=ALL_TILES
    )
    assert (g.level, g.tile_size0, g.read_size, g.tile_size) == (2, 64, 16, 16)
    assert not g.needs_resize
    g = plan_tile_grid(
        shape,
        BOXES_DOWNSAMPLES,
        slide_mpp=0.25,
        model_mpp=0.75,
        tile_size=20,
        options=GridOptions(overlap=0.5),
    )
    # 3x: read from level 1 (2x) 30 px and resize to 20.
    assert (g.level, g.tile_size0, g.stride0, g.read_size) == (1, 60, 30, 30)
    assert g.needs_resize
    assert g.grid_shape == (int(np.ceil((250 - 60) / 30)) + 1, int(np.ceil((300 - 60) / 30)) + 1)
    g = plan_tile_grid(shape, BOXES_DOWNSAMPLES, slide_mpp=0.5, model_mpp=0.25, tile_size=32)
    assert (g.level, g.tile_size0, g.read_size) == (0, 16, 16)


def test_plan_grid_needs_mpp() -> None:
    with pytest.raises(ValueError, match=r"slide\.svs: the slide has no resolution"):
        plan_tile_grid(
            (100, 100), (1.0,), slide_mpp=None, model_mpp=0.5, tile_size=32, path="slide.svs"
        )
    with pytest.raises(ValueError, match="overlap"):
        plan_tile_grid(
            (100, 100),
            (1.0,),
            slide_mpp=0.5,
            model_mpp=0.5,
            tile_size=32,
            options=GridOptions(overlap=1),
        )


def test_mask_fraction_and_filter() -> None:
    # Mask at downsample 4: a tissue block covering level-0 rows 0..63, cols 0..31.
    mask = np.zeros((32, 32), bool)
    mask[:16, :8] = True
    grid = tile_grid((128, 128), tile_size0=32)
    frac = mask_fraction(mask, grid.rows, grid.cols, tile_size0=32, downsample=4)
    expected = np.zeros((4, 4))
    expected[:2, 0] = 1.0
    np.testing.assert_allclose(frac.reshape(4, 4), expected)
    # A tile half-covered.
    half = mask_fraction(mask, [0], [16], tile_size0=32, downsample=4)
    np.testing.assert_allclose(half, [0.5])
    kept = tile_grid(
        (128, 128), tile_size0=32, masks=TileMasks(tissue=mask, downsample=4), min_tissue=0.5
    )
    assert len(kept) == 2
    np.testing.assert_array_equal(kept.grid_cols, [0, 0])
    # Parts of a tile beyond the mask (slide edge) count as background.
    edge = mask_fraction(np.ones((2, 2), bool), [0], [0], tile_size0=16, downsample=4)
    np.testing.assert_allclose(edge, [0.25])


def test_grid_to_world_puts_map_pixels_on_tile_centres() -> None:
    grid = tile_grid((500, 300), tile_size0=64, stride0=48)
    scale, translate = grid_to_world(grid.stride0, grid.tile_size0)
    world_r = translate[0] + scale[0] * grid.grid_rows
    world_c = translate[1] + scale[1] * grid.grid_cols
    # Tile covering level-0 pixels r..r+63 is centred at r + 31.5.
    np.testing.assert_allclose(world_r, grid.rows + 31.5)
    np.testing.assert_allclose(world_c, grid.cols + 31.5)
    scale, translate = mask_to_world(4)
    assert scale == (4.0, 4.0) and translate == (1.5, 1.5)


def test_grid_on_real_boxes_slide(shared_data) -> None:
    from napari_xai.core.wsi import open_slide

    path = shared_data / "slides" / "boxes.tiff"
    with open_slide(path, mpp=0.25) as slide:
        ds = slide.info.level_downsamples
        assert ds[2] == pytest.approx(4.016, abs=1e-3)
        grid = plan_tile_grid(
            slide.info.shape_rc, ds, slide_mpp=0.25, model_mpp=1.0, tile_size=16, options=ALL_TILES
        )
        assert grid.level == 2 and grid.read_size == 16
        tiles = read_tiles(slide, grid, [0, len(grid) - 1])
        assert tiles.shape == (2, 16, 16, 3) and tiles.dtype == np.uint8
        direct = slide.read_region((0, 0), (16, 16), level=2)
        np.testing.assert_array_equal(tiles[0], direct)
        # 3x: read 24 px at level 1 (2x), resized to 16; same footprint as 48 level-0 px.
        grid3 = plan_tile_grid(
            slide.info.shape_rc,
            ds,
            slide_mpp=0.25,
            model_mpp=0.75,
            tile_size=16,
            options=ALL_TILES,
        )
        assert (grid3.level, grid3.read_size, grid3.tile_size0) == (1, 24, 48)
        rows, cols = slide.info.shape_rc
        assert grid3.grid_shape == (
            int(np.ceil((rows - 48) / 48)) + 1,
            int(np.ceil((cols - 48) / 48)) + 1,
        )
        assert read_tiles(slide, grid3, [0]).shape == (1, 16, 16, 3)


class _CountingSource:
    """Fake slide: records reads, optionally slow."""

    def __init__(self, delay: float = 0.0) -> None:
        self.calls: list[tuple[int, int]] = []
        self.delay = delay
        self.lock = threading.Lock()

    def read_region(self, loc_rc, shape_rc, *, level=0):
        with self.lock:
            self.calls.append((int(loc_rc[0]), int(loc_rc[1])))
        if self.delay:
            time.sleep(self.delay)
        tile = np.zeros((*shape_rc, 3), np.uint8)
        tile[..., 0] = (loc_rc[0] // 8) % 256
        tile[..., 1] = (loc_rc[1] // 8) % 256
        return tile


def test_reader_reads_only_requested_tiles_in_order() -> None:
    grid = tile_grid((800, 800), tile_size0=8)
    source = _CountingSource()
    wanted = np.array([5, 3, 9000, 17, 42, 9999])
    reader = TileReader(source, grid, batch_size=4, prefetch=1, num_workers=2, indices=wanted)
    batches = list(reader)
    assert len(reader) == 2 and [len(b.indices) for b in batches] == [4, 2]
    got = np.concatenate([b.indices for b in batches])
    np.testing.assert_array_equal(got, wanted)
    assert sorted(source.calls) == sorted((int(grid.rows[i]), int(grid.cols[i])) for i in wanted)
    tiles = np.concatenate([b.tiles for b in batches])
    np.testing.assert_array_equal(tiles[:, 0, 0, 0], (grid.rows[wanted] // 8) % 256)


def test_reader_prefetch_is_bounded_and_stops_when_closed() -> None:
    grid = tile_grid((800, 800), tile_size0=8)  # 10,000 tiles
    source = _CountingSource(delay=0.001)
    reader = TileReader(source, grid, batch_size=8, prefetch=2, num_workers=2)
    it = iter(reader)
    first = next(it)
    assert len(first.indices) == 8
    time.sleep(0.3)  # give the workers time to run ahead as far as they may
    # At most the yielded batch + (prefetch + 1) in flight.
    assert len(source.calls) <= 8 * (2 + 2)
    it.close()
    n = len(source.calls)
    time.sleep(0.2)
    assert len(source.calls) <= n + 8 * 2  # batches already running may finish, no more
    assert len(source.calls) < len(grid)


def test_reader_resizes_to_model_size() -> None:
    grid = plan_tile_grid((256, 256), (1.0,), slide_mpp=0.5, model_mpp=1.0, tile_size=16)
    assert grid.read_size == 32 and grid.tile_size == 16
    (batch,) = list(TileReader(_CountingSource(), grid, batch_size=100))
    assert batch.tiles.shape == (len(grid), 16, 16, 3)


@pytest.mark.parametrize(
    ("name", "model_mpp", "tile"),
    [("boxes.tiff", 1.0, 16), ("boxes.tiff", 0.75, 20), ("CMU-1-Small-Region.svs", 1.0, 64)],
)
def test_strip_reads_equal_tile_reads(shared_data, name, model_mpp, tile) -> None:
    from napari_xai.core.reader import resize_tile
    from napari_xai.core.wsi import open_slide

    with open_slide(shared_data / "slides" / name, mpp=0.25 if "boxes" in name else None) as s:
        mpp = s.info.mpp
        grid = plan_tile_grid(
            s.info.shape_rc, s.info.level_downsamples, slide_mpp=mpp, model_mpp=model_mpp,
            tile_size=tile, options=GridOptions(min_tissue=0, overlap=0.25),
        )  # fmt: skip
        idx = np.arange(len(grid))[:200]
        fast = read_tiles(s, grid, idx)
        for k in idx:
            one = s.read_region(
                (int(grid.rows[k]), int(grid.cols[k])), (grid.read_size, grid.read_size),
                level=grid.level,
            )  # fmt: skip
            np.testing.assert_array_equal(fast[k], resize_tile(one, tile))


def test_neighbouring_tiles_are_read_as_one_strip() -> None:
    grid = tile_grid((64, 800), tile_size0=8)
    source = _CountingSource()
    tiles = read_tiles(source, grid, np.arange(20))
    assert len(source.calls) == 1 and tiles.shape == (20, 8, 8, 3)
    np.testing.assert_array_equal(tiles[:, 0, 0, 1], 0)  # fake source encodes strip origin
