"""Mosaic map: a grid over the embedding, the tile nearest each cell's centre shown in it."""

from __future__ import annotations

import numpy as np
import pytest


def test_hand_checked_layout() -> None:
    from napari_xai.core.explore.mosaic import mosaic_layout

    # bounding box x 0..4, y 0..2 with grid 2: cells of side 2, one row of two cells
    # (top edge y=2); centres (1, 1) and (3, 1)
    xy = np.array(
        [
            [0.0, 0.0],  # 0: left cell, distance² 2 to its centre
            [0.5, 1.0],  # 1: left cell, distance² 0.25: shown
            [4.0, 2.0],  # 2: right cell, distance² 2
            [3.5, 0.5],  # 3: right cell, distance² 0.5: shown
            [1.5, 1.0],  # 4: left cell, distance² 0.25 too: a tie goes to the lower row (1)
        ]
    )
    lay = mosaic_layout(xy, grid=2)
    assert lay.shape == (1, 2) and lay.side == 2.0 and lay.origin == (0.0, 2.0)
    np.testing.assert_array_equal(lay.cells, [[1, 3]])
    np.testing.assert_array_equal(lay.cell_of, [0, 0, 1, 1, 0])
    np.testing.assert_array_equal(lay.rows_in(0, 0), [0, 1, 4])
    np.testing.assert_array_equal(lay.rows_in(0, 1), [2, 3])
    assert lay.centre(0, 1) == (3.0, 1.0)
    assert len(lay.rows_in(1, 0)) == 0 and len(lay.rows_in(0, 2)) == 0
    # only some rows: the grid spans them, the rest are left out
    part = mosaic_layout(xy, grid=2, rows=[2, 3])
    np.testing.assert_array_equal(part.cell_of[[0, 1, 4]], [-1, -1, -1])
    assert set(part.cells[part.cells >= 0]) <= {2, 3}


def test_each_cell_shows_the_tile_nearest_its_centre() -> None:
    from napari_xai.core.explore.mosaic import mosaic_layout

    rng = np.random.default_rng(3)
    xy = np.concatenate([rng.normal(0, 1, (400, 2)), rng.normal(6, 0.5, (200, 2)) * [1, 0.4]])
    lay = mosaic_layout(xy, grid=8)
    n_rows, n_cols = lay.shape
    assert n_cols == 8 and 1 <= n_rows <= 8
    assert (lay.cell_of >= 0).all()
    for i in range(n_rows):
        for j in range(n_cols):
            members = lay.rows_in(i, j)
            # every member lies inside its cell's square
            x0, y1 = lay.origin[0] + j * lay.side, lay.origin[1] - i * lay.side
            inside = (xy[members, 0] >= x0 - 1e-9) & (xy[members, 0] <= x0 + lay.side + 1e-9)
            inside &= (xy[members, 1] <= y1 + 1e-9) & (xy[members, 1] >= y1 - lay.side - 1e-9)
            assert inside.all()
            if not len(members):
                assert lay.cells[i, j] == -1
                continue
            cx, cy = lay.centre(i, j)
            d = np.hypot(xy[members, 0] - cx, xy[members, 1] - cy)
            assert lay.cells[i, j] == members[np.argmin(d)]
    assert (lay.cells >= 0).sum() == len(np.unique(lay.cell_of))


def test_render_pastes_each_thumbnail_into_its_cell() -> None:
    from napari_xai.core.explore.mosaic import EMPTY, MosaicMap, mosaic_layout, render_mosaic

    xy = np.array([[0.0, 0.0], [3.0, 3.0], [0.2, 2.9]])  # grid 2: cells (1,0), (0,1), (0,0)
    lay = mosaic_layout(xy, grid=2)
    np.testing.assert_array_equal(lay.cells, [[2, 1], [0, -1]])
    colours = {0: (255, 0, 0), 1: (0, 255, 0), 2: (0, 0, 255)}
    shown = lay.cells[lay.cells >= 0]
    thumbs = [np.full((10, 10, 3), colours[int(r)], np.uint8) for r in shown]
    image = render_mosaic(lay, thumbs, size=4)  # thumbnails are resized to the cell
    assert image.shape == (8, 8, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(image[0:4, 0:4], np.broadcast_to(colours[2], (4, 4, 3)))
    np.testing.assert_array_equal(image[0:4, 4:8], np.broadcast_to(colours[1], (4, 4, 3)))
    np.testing.assert_array_equal(image[4:8, 0:4], np.broadcast_to(colours[0], (4, 4, 3)))
    assert (image[4:8, 4:8] == EMPTY).all()
    m = MosaicMap(lay, image, 4)
    assert m.cell_at_pixel(5.0, 1.0) == (1, 0) and m.cell_at_pixel(8.0, 1.0) is None
    with pytest.raises(ValueError, match="3 occupied cells but 2 thumbnails"):
        render_mosaic(lay, thumbs[:2], size=4)
    with pytest.raises(ValueError, match="at least 1 cell"):
        mosaic_layout(xy, grid=0)
    with pytest.raises(ValueError, match=r"must be \(N, 2\)"):
        mosaic_layout(np.zeros((3, 3)))
