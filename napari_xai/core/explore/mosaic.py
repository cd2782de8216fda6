"""Mosaic map: representative tile thumbnails laid out on the 2-D embedding.

As in Slideflow's mosaic maps, the embedding's bounding box is cut into a grid
of square cells; every occupied cell shows one tile, the one whose point lies
nearest the cell's centre. :func:`mosaic_layout` computes the grid (pure);
:func:`render_mosaic` pastes thumbnails into one RGB image (pure);
:func:`mosaic_map` does both, reading the representative tiles from their
slides (:func:`~napari_xai.core.explore.cohort.tile_thumbnails`).

The image is oriented like the scatter: cell ``(0, 0)`` is the top-left, the
lowest ``x`` and the highest ``y``; rows go down in ``y``, columns right in ``x``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["MosaicLayout", "MosaicMap", "mosaic_layout", "mosaic_map", "render_mosaic"]

#: Grey of an empty cell.
EMPTY = 240


@dataclass(frozen=True)
class MosaicLayout:
    """A grid over the embedding and the tile shown in each cell.

    Attributes
    ----------
    cells : ndarray of shape (n_rows, n_cols), int64
        Positional row (in the tiles table) of the tile shown in each cell;
        -1 where no tile falls.
    cell_of : ndarray of shape (N,), int64
        Flat cell index (``i * n_cols + j``) of every tile; -1 for tiles left out.
    origin : (float, float)
        ``x`` of the left edge and ``y`` of the top edge of the grid.
    side : float
        Side of a cell in embedding units.
    """

    cells: npt.NDArray[np.int64]
    cell_of: npt.NDArray[np.int64]
    origin: tuple[float, float]
    side: float

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_rows, n_cols)`` of the grid."""
        return int(self.cells.shape[0]), int(self.cells.shape[1])

    def centre(self, i: int, j: int) -> tuple[float, float]:
        """``(x, y)`` of the centre of cell ``(i, j)``."""
        return (self.origin[0] + (j + 0.5) * self.side, self.origin[1] - (i + 0.5) * self.side)

    def rows_in(self, i: int, j: int) -> npt.NDArray[np.int64]:
        """Positional rows of every tile falling in cell ``(i, j)`` (empty off the grid)."""
        n_rows, n_cols = self.shape
        if not (0 <= i < n_rows and 0 <= j < n_cols):
            return np.zeros(0, np.int64)
        return np.flatnonzero(self.cell_of == i * n_cols + j).astype(np.int64)


@dataclass(frozen=True)
class MosaicMap:
    """A mosaic map: the layout and its RGB image (``size`` pixels per cell)."""

    layout: MosaicLayout
    image: npt.NDArray[np.uint8]
    size: int

    def cell_at_pixel(self, y: float, x: float) -> tuple[int, int] | None:
        """Return the cell under image pixel ``(y, x)``; None off the image."""
        i, j = int(y // self.size), int(x // self.size)
        n_rows, n_cols = self.layout.shape
        return (i, j) if 0 <= i < n_rows and 0 <= j < n_cols and y >= 0 and x >= 0 else None


def mosaic_layout(
    xy: npt.ArrayLike, *, grid: int = 16, rows: npt.ArrayLike | None = None
) -> MosaicLayout:
    """Grid the embedding and pick, per occupied cell, the tile nearest its centre.

    Parameters
    ----------
    xy : array_like of shape (N, 2)
        The embedding (``x``, ``y`` of every tile).
    grid : int
        Cells along the longer side of the points' bounding box (cells are
        square in embedding units, so the shorter side gets fewer).
    rows : array_like of int, optional
        Only these tiles (e.g. the filtered ones); the grid spans them.

    Raises
    ------
    ValueError
        When ``grid`` is below 1 or ``xy`` is not ``(N, 2)``.
    """
    if grid < 1:
        raise ValueError(f"a mosaic grid needs at least 1 cell per side, not {grid}")
    p = np.asarray(xy, np.float64)
    if p.ndim != 2 or p.shape[1] != 2:
        raise ValueError(f"the embedding must be (N, 2), not {p.shape}")
    idx = np.arange(len(p)) if rows is None else np.asarray(rows, np.int64)
    idx = idx[np.isfinite(p[idx]).all(axis=1)]
    cell_of = np.full(len(p), -1, np.int64)
    if not len(idx):
        return MosaicLayout(np.full((1, 1), -1, np.int64), cell_of, (0.0, 0.0), 1.0)
    pts = p[idx]
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    side = float(max(hi - lo)) / grid or 1.0
    n_cols = max(1, min(grid, math.ceil((hi[0] - lo[0]) / side - 1e-9)))
    n_rows = max(1, min(grid, math.ceil((hi[1] - lo[1]) / side - 1e-9)))
    j = np.clip(((pts[:, 0] - lo[0]) // side).astype(np.int64), 0, n_cols - 1)
    i = np.clip(((hi[1] - pts[:, 1]) // side).astype(np.int64), 0, n_rows - 1)
    flat = i * n_cols + j
    cell_of[idx] = flat
    cx = lo[0] + (j + 0.5) * side
    cy = hi[1] - (i + 0.5) * side
    dist = (pts[:, 0] - cx) ** 2 + (pts[:, 1] - cy) ** 2
    order = np.lexsort((idx, dist, flat))  # by cell, then nearest, then lowest row
    first = order[np.r_[True, flat[order][1:] != flat[order][:-1]]]
    cells = np.full(n_rows * n_cols, -1, np.int64)
    cells[flat[first]] = idx[first]
    return MosaicLayout(cells.reshape(n_rows, n_cols), cell_of, (float(lo[0]), float(hi[1])), side)


def render_mosaic(
    layout: MosaicLayout, thumbnails: Sequence[npt.NDArray[np.uint8]], *, size: int
) -> npt.NDArray[np.uint8]:
    """Paste thumbnails into the grid: ``(n_rows * size, n_cols * size, 3)`` uint8.

    Parameters
    ----------
    layout : MosaicLayout
        The grid.
    thumbnails : sequence of (size, size, 3) uint8
        One per occupied cell, in the order of ``layout.cells[layout.cells >= 0]``
        (row-major).
    size : int
        Pixels per cell side.
    """
    from napari_xai.core.reader import resize_tile

    n_rows, n_cols = layout.shape
    occupied = np.argwhere(layout.cells >= 0)
    if len(thumbnails) != len(occupied):
        raise ValueError(f"{len(occupied)} occupied cells but {len(thumbnails)} thumbnails")
    image = np.full((n_rows * size, n_cols * size, 3), EMPTY, np.uint8)
    for (i, j), thumb in zip(occupied, thumbnails, strict=True):
        tile = resize_tile(np.asarray(thumb, np.uint8)[..., :3], size)
        image[i * size : (i + 1) * size, j * size : (j + 1) * size] = tile
    return image


def mosaic_map(
    tiles: pd.DataFrame, *, grid: int = 16, size: int = 48, rows: npt.ArrayLike | None = None
) -> MosaicMap:
    """Build the mosaic map of explored cohort tiles, thumbnails read from their slides.

    Parameters
    ----------
    tiles : pandas.DataFrame
        Explored tiles (``x``, ``y`` and the columns
        :func:`~napari_xai.core.explore.cohort.tile_thumbnails` reads).
    grid : int
        Cells along the longer side.
    size : int
        Pixels per cell side.
    rows : array_like of int, optional
        Only these tiles (e.g. the filtered ones).

    Raises
    ------
    FileNotFoundError
        When a representative tile's slide has moved.
    """
    from napari_xai.core.explore.cohort import tile_thumbnails

    layout = mosaic_layout(tiles[["x", "y"]].to_numpy(np.float64), grid=grid, rows=rows)
    shown = layout.cells[layout.cells >= 0]
    thumbs = tile_thumbnails(tiles.iloc[shown], size=size) if len(shown) else []
    return MosaicMap(layout, render_mosaic(layout, thumbs, size=size), size)
