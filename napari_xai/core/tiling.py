"""Tile grids over whole slides, in level-0 pixels, at a model's resolution.

A model sees tiles of ``tile_size`` pixels at ``mpp`` µm/px. On a slide scanned at
``slide_mpp`` one such tile covers ``tile_size * mpp / slide_mpp`` level-0 pixels
(``tile_size0``). Tiles are read from the pyramid level nearest at or above the
model's resolution (``level``, ``read_size`` pixels at that level) and resized to
``tile_size`` when the level does not match exactly.

The grid steps by ``stride0`` level-0 pixels (``stride0 < tile_size0`` when tiles
overlap) and covers the whole slide: the last row/column of tiles may run past the
slide's edge (read as white padding). Tiles are kept where a tissue mask covers at
least ``min_tissue`` of them.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from napari_xai.core.options import GridOptions

__all__ = [
    "TileCells",
    "TileGrid",
    "TileMasks",
    "choose_read_level",
    "mask_fraction",
    "model_downsample",
    "plan_tile_grid",
    "tile_grid",
]

# A pyramid level whose downsample exceeds the wanted one by at most this factor still
# counts as "at the model's resolution" (files store e.g. 4.016 for a nominal 4).
LEVEL_TOLERANCE = 0.02


@dataclass(frozen=True)
class TileCells:
    """The kept cells of a stride grid, with their tissue and artefact fractions.

    Attributes
    ----------
    grid_rows, grid_cols : ndarray of shape (N,), int64
        Index of each kept tile in the full stride grid.
    tissue : ndarray of shape (N,), float32
        Fraction of each tile covered by tissue (1 where no mask was given).
    artefact : ndarray of shape (N,), float32 or None
        Fraction of each tile covered by an artefact mask, when one was given.
    """

    grid_rows: npt.NDArray[np.int64]
    grid_cols: npt.NDArray[np.int64]
    tissue: npt.NDArray[np.float32]
    artefact: npt.NDArray[np.float32] | None = None

    def __len__(self) -> int:
        return int(self.grid_rows.shape[0])

    def take(self, index: npt.ArrayLike) -> TileCells:
        """Select the cells at ``index`` (positions, or a boolean mask)."""
        idx = np.asarray(index)
        art = None if self.artefact is None else self.artefact[idx]
        return TileCells(self.grid_rows[idx], self.grid_cols[idx], self.tissue[idx], art)

    @classmethod
    def concat(cls, bands: Sequence[TileCells]) -> TileCells:
        """Join the bands of a grid, in order (a grid has at least one band)."""
        arts = [b.artefact for b in bands if b.artefact is not None]
        return cls(
            np.concatenate([b.grid_rows for b in bands]),
            np.concatenate([b.grid_cols for b in bands]),
            np.concatenate([b.tissue for b in bands]),
            np.concatenate(arts) if arts else None,
        )


@dataclass(frozen=True)
class TileGrid:
    """Tiles to score over one slide (level-0 pixel coordinates).

    Attributes
    ----------
    cells : TileCells
        The kept tiles: their grid row/col in the full stride grid of shape
        ``grid_shape`` and their tissue and artefact fractions (also read as
        ``grid_rows``, ``grid_cols``, ``tissue_fraction``, ``artefact_fraction``).
    shape_rc : tuple of int
        Level-0 (rows, cols) of the slide.
    tile_size0 : int
        Level-0 extent (rows and cols) of one tile.
    stride0 : int
        Level-0 step between neighbouring tiles.
    grid_shape : tuple of int
        (rows, cols) of the full stride grid, kept or not.
    level : int
        Pyramid level tiles are read from.
    read_size : int
        Tile extent in pixels at ``level`` (default ``tile_size0``: read at level 0).
    tile_size : int
        Tile extent the model expects (pixels; default ``read_size``); ``read_size``
        is resized to it.
    level_downsample : float
        Downsample of ``level`` against level 0.
    rows, cols : ndarray of shape (N,), int64
        Level-0 top-left corner of each kept tile (``grid_rows * stride0``...).
    """

    cells: TileCells = field(repr=False)
    shape_rc: tuple[int, int]
    tile_size0: int
    stride0: int
    grid_shape: tuple[int, int]
    level: int = 0
    read_size: int = 0
    tile_size: int = 0
    level_downsample: float = 1.0

    def __post_init__(self) -> None:
        # 0 (the default) reads tiles at level 0 at their level-0 size, unresized.
        if not self.read_size:
            object.__setattr__(self, "read_size", int(self.tile_size0))
        if not self.tile_size:
            object.__setattr__(self, "tile_size", int(self.read_size))

    def __len__(self) -> int:
        return len(self.cells)

    @property
    def grid_rows(self) -> npt.NDArray[np.int64]:
        """Row of each kept tile in the full stride grid (``cells.grid_rows``)."""
        return self.cells.grid_rows

    @property
    def grid_cols(self) -> npt.NDArray[np.int64]:
        """Column of each kept tile in the full stride grid (``cells.grid_cols``)."""
        return self.cells.grid_cols

    @property
    def tissue_fraction(self) -> npt.NDArray[np.float32]:
        """Fraction of each tile covered by tissue (``cells.tissue``)."""
        return self.cells.tissue

    @property
    def artefact_fraction(self) -> npt.NDArray[np.float32] | None:
        """Fraction of each tile covered by an artefact mask, or None (``cells.artefact``)."""
        return self.cells.artefact

    @functools.cached_property
    def rows(self) -> npt.NDArray[np.int64]:
        """Level-0 top row of each kept tile."""
        return self.cells.grid_rows * self.stride0

    @functools.cached_property
    def cols(self) -> npt.NDArray[np.int64]:
        """Level-0 left column of each kept tile."""
        return self.cells.grid_cols * self.stride0

    @property
    def needs_resize(self) -> bool:
        """Whether tiles read at ``level`` must be resized to ``tile_size``."""
        return self.read_size != self.tile_size

    @property
    def is_edge(self) -> npt.NDArray[np.bool_]:
        """Whether each tile runs past the slide's bottom or right edge."""
        return (self.rows + self.tile_size0 > self.shape_rc[0]) | (
            self.cols + self.tile_size0 > self.shape_rc[1]
        )

    def subset(self, index: npt.ArrayLike) -> TileGrid:
        """Return the grid restricted to the tiles selected by ``index``."""
        return dataclasses.replace(self, cells=self.cells.take(index))

    def attrs(self) -> dict[str, Any]:
        """Geometry as plain values (for ``DataFrame.attrs`` and manifests)."""
        return {
            "tile_size0": int(self.tile_size0),
            "stride0": int(self.stride0),
            "grid_shape": [int(self.grid_shape[0]), int(self.grid_shape[1])],
            "shape_rc": [int(self.shape_rc[0]), int(self.shape_rc[1])],
            "level": int(self.level),
            "read_size": int(self.read_size),
            "tile_size": int(self.tile_size),
        }


def _n_steps(extent: int, tile: int, stride: int) -> int:
    """Count tiles along one axis so that the last one reaches the edge."""
    if extent <= tile:
        return 1
    return int(math.ceil((extent - tile) / stride)) + 1


def mask_fraction(
    mask: npt.ArrayLike,
    rows: npt.ArrayLike,
    cols: npt.ArrayLike,
    *,
    tile_size0: float,
    downsample: float,
) -> npt.NDArray[np.float32]:
    """Fraction of each level-0 tile covered by a low-resolution boolean mask.

    Parameters
    ----------
    mask : ndarray of shape (rows, cols), bool
        Mask at ``downsample`` (mask pixel ``(i, j)`` covers level-0 pixels
        ``[i*d, (i+1)*d)``).
    rows, cols : array-like of shape (N,)
        Level-0 top-left corners of the tiles.
    tile_size0 : float
        Level-0 extent of a tile.
    downsample : float
        Level-0 pixels per mask pixel.

    Returns
    -------
    ndarray of shape (N,), float32
        Covered fraction in [0, 1]; parts of a tile outside the mask count as uncovered.
    """
    return _window_fraction(
        _summed_area(mask), rows, cols, tile_size0=tile_size0, downsample=downsample
    )


def _summed_area(mask: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Summed-area table of a boolean mask, with a zero row/col in front."""
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 2:
        raise ValueError(f"mask must be 2-D (rows, cols), got shape {m.shape}")
    sat = np.zeros((m.shape[0] + 1, m.shape[1] + 1), dtype=np.int64)
    np.cumsum(np.cumsum(m, axis=0, dtype=np.int64), axis=1, out=sat[1:, 1:])
    return sat


def _window_fraction(
    sat: npt.NDArray[np.int64],
    rows: npt.ArrayLike,
    cols: npt.ArrayLike,
    *,
    tile_size0: float,
    downsample: float,
) -> npt.NDArray[np.float32]:
    """Covered fraction of each tile from a summed-area table (window sums in O(1))."""
    m_shape = (sat.shape[0] - 1, sat.shape[1] - 1)
    r = np.asarray(rows, dtype=np.float64)
    c = np.asarray(cols, dtype=np.float64)
    if r.size == 0:
        return np.zeros(0, np.float32)
    r0 = np.floor(r / downsample + 1e-9).astype(np.int64)
    c0 = np.floor(c / downsample + 1e-9).astype(np.int64)
    r1 = np.maximum(r0 + 1, np.round((r + tile_size0) / downsample).astype(np.int64))
    c1 = np.maximum(c0 + 1, np.round((c + tile_size0) / downsample).astype(np.int64))
    area = (r1 - r0) * (c1 - c0)
    r0c, r1c = np.clip(r0, 0, m_shape[0]), np.clip(r1, 0, m_shape[0])
    c0c, c1c = np.clip(c0, 0, m_shape[1]), np.clip(c1, 0, m_shape[1])
    inside = sat[r1c, c1c] - sat[r0c, c1c] - sat[r1c, c0c] + sat[r0c, c0c]
    frac: npt.NDArray[np.float32] = (inside / np.maximum(area, 1)).astype(np.float32)
    return frac


#: Grid cells planned at a time (bounds the temporary arrays of a huge grid).
_BAND_CELLS = 1 << 18


@dataclass(frozen=True)
class TileMasks:
    """Low-resolution masks a tile grid is laid over.

    Attributes
    ----------
    tissue : ndarray of shape (rows, cols), bool, or None
        Tissue mask; tiles are kept where it covers enough of them (every tile is
        kept without one).
    artefact : ndarray of shape (rows, cols), bool, or None
        Artefact mask (pen, marker...) on the same grid; its fraction per tile is
        recorded, it does not filter.
    downsample : float
        Level-0 pixels per mask pixel (mask pixel ``(i, j)`` covers level-0 pixels
        ``[i*d, (i+1)*d)``).
    """

    tissue: npt.ArrayLike | None = None
    artefact: npt.ArrayLike | None = None
    downsample: float = 1.0


@dataclass(frozen=True)
class _Planner:
    """Keeps the cells of a stride grid that the masks allow, a band of rows at a time.

    The masks' summed-area tables are built once; each band then costs O(cells).
    """

    tile_size0: int
    stride0: int
    downsample: float
    min_tissue: float
    tissue_sat: npt.NDArray[np.int64] | None
    artefact_sat: npt.NDArray[np.int64] | None

    @classmethod
    def over(
        cls, masks: TileMasks, *, tile_size0: int, stride0: int, min_tissue: float
    ) -> _Planner:
        """Planner for tiles of ``tile_size0`` every ``stride0`` level-0 pixels over ``masks``."""
        return cls(
            tile_size0,
            stride0,
            float(masks.downsample),
            float(min_tissue),
            None if masks.tissue is None else _summed_area(masks.tissue),
            None if masks.artefact is None else _summed_area(masks.artefact),
        )

    def fraction(
        self, sat: npt.NDArray[np.int64], gr: npt.NDArray[np.int64], gc: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32]:
        """Covered fraction of the tiles at grid cells ``(gr, gc)``."""
        rows, cols = gr * self.stride0, gc * self.stride0
        return _window_fraction(
            sat, rows, cols, tile_size0=self.tile_size0, downsample=self.downsample
        )

    def band(self, g_rows: npt.NDArray[np.int64], n_cols: int) -> TileCells:
        """Keep the cells of grid rows ``g_rows`` (every column of each) the masks allow."""
        gr = np.repeat(g_rows, n_cols)
        gc = np.tile(np.arange(n_cols, dtype=np.int64), len(g_rows))
        if self.tissue_sat is None:
            tissue = np.ones(gr.shape, np.float32)
        else:
            tissue = self.fraction(self.tissue_sat, gr, gc)
            keep = tissue >= self.min_tissue if self.min_tissue > 0 else tissue > 0
            gr, gc, tissue = gr[keep], gc[keep], tissue[keep]
        art = None if self.artefact_sat is None else self.fraction(self.artefact_sat, gr, gc)
        return TileCells(gr, gc, tissue, art)

    def plan(self, grid_shape: tuple[int, int]) -> TileCells:
        """Plan the whole grid in bands of rows, so that only kept cells are ever listed."""
        band = max(1, _BAND_CELLS // max(1, grid_shape[1]))
        return TileCells.concat(
            [
                self.band(
                    np.arange(g0, min(grid_shape[0], g0 + band), dtype=np.int64), grid_shape[1]
                )
                for g0 in range(0, grid_shape[0], band)
            ]
        )


def _checked_geometry(
    shape_rc: Sequence[int], tile_size0: int, stride0: int | None, min_tissue: float
) -> tuple[tuple[int, int], int, int]:
    """Validate a grid's level-0 slide shape, tile size and stride (``tile_size0`` by default)."""
    shape = (int(shape_rc[0]), int(shape_rc[1]))
    if shape[0] < 1 or shape[1] < 1:
        raise ValueError(f"slide shape must be positive, got {tuple(shape_rc)}")
    tile_size0 = int(tile_size0)
    if tile_size0 < 1:
        raise ValueError(f"tile_size0 must be at least 1 pixel, got {tile_size0}")
    stride0 = tile_size0 if stride0 is None else int(stride0)
    if stride0 < 1:
        raise ValueError(f"stride0 must be at least 1 pixel, got {stride0}")
    if not 0.0 <= min_tissue <= 1.0:
        raise ValueError(f"min_tissue must be in [0, 1], got {min_tissue}")
    return shape, tile_size0, stride0


def tile_grid(
    shape_rc: Sequence[int],
    *,
    tile_size0: int,
    stride0: int | None = None,
    masks: TileMasks | None = None,
    min_tissue: float = 0.0,
) -> TileGrid:
    """Lay a regular grid of square tiles over a slide, in level-0 pixels.

    Tiles are read at level 0 at ``tile_size0`` pixels (:func:`plan_tile_grid`
    chooses the level a model's tiles are read from).

    Parameters
    ----------
    shape_rc : sequence of int
        Level-0 (rows, cols) of the slide.
    tile_size0 : int
        Level-0 extent of one tile.
    stride0 : int, optional
        Level-0 step between tiles; ``tile_size0`` (no overlap) by default.
    masks : TileMasks, optional
        Tissue and artefact masks; every tile is kept when there is no tissue mask.
    min_tissue : float
        Keep tiles whose tissue fraction is at least this (and above zero when a
        tissue mask is given and ``min_tissue`` is 0).

    Returns
    -------
    TileGrid
        Kept tiles in row-major order.
    """
    shape, tile_size0, stride0 = _checked_geometry(shape_rc, tile_size0, stride0, min_tissue)
    grid_shape = (_n_steps(shape[0], tile_size0, stride0), _n_steps(shape[1], tile_size0, stride0))
    # Planned in bands of grid rows and only kept tiles stay: a huge declared slide
    # never gets a full list of (mostly glass) tile positions.
    planner = _Planner.over(
        masks or TileMasks(), tile_size0=tile_size0, stride0=stride0, min_tissue=min_tissue
    )
    cells = planner.plan(grid_shape)
    return TileGrid(
        cells, shape_rc=shape, tile_size0=tile_size0, stride0=stride0, grid_shape=grid_shape
    )


def model_downsample(
    model_mpp: float, slide_mpp: float | None, *, path: object = "slide"
) -> float:
    """Level-0 pixels per model pixel (``model_mpp / slide_mpp``).

    Raises
    ------
    ValueError
        When the slide's resolution is unknown (and nobody stated it) or not positive.
    """
    if slide_mpp is None:
        raise ValueError(
            f"{path}: the slide has no resolution (µm/px) in its metadata; state it "
            "(mpp=..., --mpp, or the widget's 'slide mpp' box) to score it with a model "
            f"trained at {model_mpp:g} µm/px"
        )
    if not slide_mpp > 0 or not model_mpp > 0:
        raise ValueError(
            f"{path}: resolutions must be positive (slide {slide_mpp}, model {model_mpp})"
        )
    return float(model_mpp) / float(slide_mpp)


def choose_read_level(
    level_downsamples: Sequence[float], downsample: float, *, tolerance: float = LEVEL_TOLERANCE
) -> int:
    """Pyramid level nearest at or above the wanted resolution.

    Parameters
    ----------
    level_downsamples : sequence of float
        Downsample of each level versus level 0 (increasing; odd values such as
        4.016 are fine).
    downsample : float
        Wanted level-0 pixels per model pixel.
    tolerance : float
        A level whose downsample exceeds ``downsample`` by at most this relative
        amount still counts (4.016 serves a wanted 4).

    Returns
    -------
    int
        The coarsest level that is not coarser than wanted (0 if all are).
    """
    best = 0
    for i, ds in enumerate(level_downsamples):
        if ds <= downsample * (1.0 + tolerance) and ds >= level_downsamples[best]:
            best = i
    return best


def plan_tile_grid(
    shape_rc: Sequence[int],
    level_downsamples: Sequence[float],
    *,
    slide_mpp: float | None,
    model_mpp: float,
    tile_size: int,
    options: GridOptions | None = None,
    masks: TileMasks | None = None,
    path: object = "slide",
) -> TileGrid:
    """Tile grid for a model of ``tile_size`` px at ``model_mpp`` over a slide.

    Parameters
    ----------
    shape_rc : sequence of int
        Level-0 (rows, cols) of the slide.
    level_downsamples : sequence of float
        Downsample of each pyramid level.
    slide_mpp : float or None
        Level-0 µm/px of the slide (``None``: unknown, which is an error).
    model_mpp : float
        µm/px the model was trained at.
    tile_size : int
        Model input size in pixels.
    options : GridOptions, optional
        ``overlap`` (fraction of a tile shared with its neighbour) and ``min_tissue``
        (see :func:`tile_grid`); the other fields are the caller's (``mpp`` is
        ``slide_mpp`` here).
    masks : TileMasks, optional
        Tissue and artefact masks (see :func:`tile_grid`).
    path : object
        Named in error messages.

    Returns
    -------
    TileGrid
        Kept tiles, with the level to read and the size to read there.
    """
    options = options or GridOptions()
    if tile_size < 1:
        raise ValueError(f"tile_size must be positive, got {tile_size}")
    ds = model_downsample(model_mpp, slide_mpp, path=path)
    tile_size0 = max(1, int(round(tile_size * ds)))
    stride0 = max(1, int(round(tile_size0 * (1.0 - float(options.overlap)))))
    level = choose_read_level(level_downsamples, ds)
    exact = tile_size0 / float(level_downsamples[level])
    # Within the level tolerance the level *is* the model's resolution: read tile_size
    # pixels there and skip the resize (its level-0 extent differs by under 2 %).
    read_size = tile_size if abs(exact - tile_size) <= tile_size * LEVEL_TOLERANCE else None
    if read_size is None:
        read_size = max(1, int(round(exact)))
    grid = tile_grid(
        shape_rc,
        tile_size0=tile_size0,
        stride0=stride0,
        masks=masks,
        min_tissue=float(options.min_tissue),
    )
    return dataclasses.replace(
        grid,
        level=level,
        read_size=read_size,
        tile_size=int(tile_size),
        level_downsample=float(level_downsamples[level]),
    )
