"""Where layers sit on the slide: world = level-0 pixels, (row, col) order.

The slide layer shows level-0 pixel ``(r, c)`` centred at world ``(r, c)``.

* A map at grid (stride) resolution, whose pixel ``(i, j)`` stands for the tile
  with top-left ``origin + (i, j) * stride0`` and extent ``tile_size0``, gets
  ``scale = (stride0, stride0)`` and ``translate = origin + (tile_size0 - 1) / 2``
  (:func:`grid_to_world`): map pixel centres land on tile centres.
* A mask at downsample ``d`` (mask pixel ``(i, j)`` covers level-0 pixels
  ``[i*d, (i+1)*d)``) gets ``scale = (d, d)`` and ``translate = ((d-1)/2, (d-1)/2)``
  (:func:`mask_to_world`).
* GeoJSON/QuPath puts the origin at the top-left *corner* of the first pixel
  (pixel (0, 0) covers x, y in [0, 1)) and orders points (x, y); napari puts pixel
  centres on integers and orders (row, col). :func:`xy_to_rc` and :func:`rc_to_xy`
  are the only functions that cross between the two (swap and half-pixel shift).
  (tiffslide's ``read_region`` takes (x, y) too: :mod:`napari_xai.core.wsi` converts
  for it, once.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["LayerDataTuple", "grid_to_world", "mask_to_world", "rc_to_xy", "xy_to_rc"]

#: ``(data, kwargs, layer_type)``: what napari turns into a layer.
LayerDataTuple = tuple[Any, dict[str, Any], str]


def grid_to_world(
    stride0: float,
    tile_size0: float | None = None,
    *,
    origin_rc: Sequence[float] = (0.0, 0.0),
) -> tuple[tuple[float, float], tuple[float, float]]:
    """``scale`` and ``translate`` placing a grid-resolution map over the slide.

    Parameters
    ----------
    stride0 : float
        Level-0 pixels between neighbouring tiles (map pixel spacing).
    tile_size0 : float, optional
        Level-0 extent of a tile (``stride0`` when omitted, i.e. no overlap).
    origin_rc : sequence of float
        Level-0 top-left of tile ``(0, 0)``.

    Returns
    -------
    scale, translate : tuple of float
        Map pixel ``(i, j)`` is centred on the centre of tile ``(i, j)``:
        world ``origin + (i, j) * stride0 + (tile_size0 - 1) / 2``.
    """
    t = float(stride0 if tile_size0 is None else tile_size0)
    half = (t - 1.0) / 2.0
    return (float(stride0), float(stride0)), (
        float(origin_rc[0]) + half,
        float(origin_rc[1]) + half,
    )


def mask_to_world(downsample: float) -> tuple[tuple[float, float], tuple[float, float]]:
    """``scale`` and ``translate`` placing a mask at ``downsample`` over the slide."""
    d = float(downsample)
    return (d, d), ((d - 1.0) / 2.0, (d - 1.0) / 2.0)


def xy_to_rc(coords_xy: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """GeoJSON (x, y) pixel-corner coordinates to napari (row, col) pixel-centre ones.

    The one place where coordinates cross from QuPath's convention to napari's:
    ``row = y - 0.5``, ``col = x - 0.5``.

    Parameters
    ----------
    coords_xy : array-like of shape (N, 2)
        Level-0 pixel coordinates, ``x`` along columns, ``y`` along rows.

    Returns
    -------
    ndarray of shape (N, 2)
        (row, col) in napari world coordinates of the level-0 slide layer.
    """
    a = np.asarray(coords_xy, dtype=np.float64)
    return a[:, ::-1] - 0.5


def rc_to_xy(coords_rc: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Convert napari (row, col) to GeoJSON (x, y); the inverse of :func:`xy_to_rc`."""
    a = np.asarray(coords_rc, dtype=np.float64)
    return a[:, ::-1] + 0.5
