"""Blend tile maps into one whole-slide multiscale map, written incrementally to zarr.

A :class:`StitchedMap` lives in a zarr group (``heatmaps.zarr/saliency/<method>/<class>``
in a result folder) and holds:

* arrays ``0``, ``1``, ... : the map and its 2× mean-pooled pyramid (float32, NaN
  where no tile was explained yet), with OME-Zarr-style ``multiscales`` attrs whose
  scale/translation map every level onto level-0 slide pixels;
* ``_stitch/sum`` and ``_stitch/weight``: accumulators of the overlap-aware blend,
  ``_stitch/done``: which tiles of the grid are in (so runs resume and views cache).

Blending: each tile map is resampled to the tile's footprint in map pixels and
added with a separable trapezoid window that is 1 in the middle of the tile and
falls linearly towards (never to) 0 over the overlap with the neighbours; the map
is ``sum / weight``. Any positive window gives a constant map for constant tiles,
so there are no seams; the taper cross-fades overlapping tiles. Tiles are added
one row-band at a time (read-modify-write of a bounding box), and the pyramid is
updated only over the region that changed, so the whole map never sits in memory.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import zarr

from napari_xai.core.results import LIMITS_ATTR, attribution_limits, map_limits, multiscales_attr

__all__ = ["StitchedMap", "footprint", "taper_window"]

_STATE = "_stitch"


def taper_window(n: int, ramp: float, *, floor: float = 1e-3) -> npt.NDArray[np.float32]:
    """1-D blending weights: 1 inside, linear fall-off over ``ramp`` pixels at both ends.

    Parameters
    ----------
    n : int
        Length.
    ramp : float
        Width of the fall-off (the overlap between neighbouring tiles, in map
        pixels); below 1 the window is flat.
    floor : float
        Smallest weight, so border pixels covered by one tile only stay defined.
    """
    pos = np.arange(n, dtype=np.float32) + 0.5
    if ramp < 1:
        return np.ones(n, np.float32)
    w = np.minimum(pos, n - pos + 0.0) / np.float32(ramp)
    out: npt.NDArray[np.float32] = np.clip(w, floor, 1.0).astype(np.float32)
    return out


def footprint(start0: float, size0: float, downsample: float) -> tuple[int, int]:
    """Map-pixel range ``[a, b)`` covered by a level-0 interval ``[start0, start0 + size0)``.

    Both ends are rounded the same way, so tiles that touch in level-0 pixels touch
    in map pixels too (no gaps, whatever the downsample).
    """
    a = int(math.floor(start0 / downsample + 0.5))
    b = int(math.floor((start0 + size0) / downsample + 0.5))
    return a, max(b, a + 1)


def _area_weights(n_in: int, n_out: int) -> npt.NDArray[np.float32]:
    """(n_out, n_in) averaging matrix of adaptive average pooling (bins floor..ceil)."""
    w = np.zeros((n_out, n_in), np.float32)
    for i in range(n_out):
        a, b = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)
        w[i, a:b] = 1.0 / (b - a)
    return w


def _bilinear_weights(n_in: int, n_out: int) -> npt.NDArray[np.float32]:
    """(n_out, n_in) linear interpolation matrix, pixel centres aligned (half-pixel)."""
    src = np.maximum((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0)
    i0 = np.minimum(np.floor(src).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    frac = (src - i0).astype(np.float32)
    w = np.zeros((n_out, n_in), np.float32)
    rows = np.arange(n_out)
    np.add.at(w, (rows, i0), 1.0 - frac)
    np.add.at(w, (rows, i1), frac)
    return w


def _resize(maps: npt.NDArray[np.float32], size_rc: tuple[int, int]) -> npt.NDArray[np.float32]:
    """Resize (N, h, w) maps: area averaging when shrinking, bilinear when growing.

    The same weights as torch's ``adaptive_avg_pool2d`` and ``interpolate(mode="bilinear",
    align_corners=False)``, as two small matrices (separable), so stitching needs no torch.
    """
    if tuple(maps.shape[1:]) == tuple(size_rc):
        return maps
    h, w = int(maps.shape[1]), int(maps.shape[2])
    weights = _area_weights if size_rc[0] <= h and size_rc[1] <= w else _bilinear_weights
    wr, wc = weights(h, int(size_rc[0])), weights(w, int(size_rc[1]))
    m = np.asarray(maps, dtype=np.float32)
    result: npt.NDArray[np.float32] = (wr @ m @ wc.T).astype(np.float32, copy=False)
    return result


def _pool2(block: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """NaN-aware 2×2 mean pooling (odd edges padded with NaN)."""
    r, c = block.shape
    if r % 2 or c % 2:
        padded = np.full((r + r % 2, c + c % 2), np.nan, np.float32)
        padded[:r, :c] = block
        block = padded
    view = block.reshape(block.shape[0] // 2, 2, block.shape[1] // 2, 2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        out: npt.NDArray[np.float32] = np.nanmean(view, axis=(1, 3)).astype(np.float32)
    return out


def _group_boxes(boxes: list[tuple[int, int, int, int]], *, max_area: int) -> list[list[int]]:
    """Group tile footprints into few bounding boxes of at most ``max_area`` pixels.

    Tiles are taken in (row, col) order and added to the current group while its
    bounding box stays under ``max_area``: one read-modify-write per group.
    """
    order = sorted(range(len(boxes)), key=lambda i: (boxes[i][0], boxes[i][2]))
    groups: list[list[int]] = []
    cur: list[int] = []
    bb = (0, 0, 0, 0)
    for i in order:
        a, b, c, d = boxes[i]
        if cur:
            nb = (min(bb[0], a), max(bb[1], b), min(bb[2], c), max(bb[3], d))
            if (nb[1] - nb[0]) * (nb[3] - nb[2]) <= max_area:
                cur.append(i)
                bb = nb
                continue
            groups.append(cur)
        cur, bb = [i], (a, b, c, d)
    if cur:
        groups.append(cur)
    return groups


class StitchedMap:
    """A whole-slide map on disk, blended from tile maps added batch by batch.

    Use :meth:`open` to create or resume one.

    Attributes
    ----------
    group : zarr.Group
    shape_rc : tuple of int
        Shape of the finest level (map pixels).
    downsample : float
        Level-0 slide pixels per map pixel at the finest level.
    ramp : float
        Width of the blending taper in map pixels.
    done : ndarray of shape grid_shape, bool
        Tiles already added.
    """

    #: Largest region (map pixels) read and rewritten at once when adding tiles.
    max_band_area: int = 4096 * 1024

    def __init__(self, group: Any) -> None:
        self.group: Any = group
        meta: dict[str, Any] = dict(group.attrs["napari_xai_stitch"])  # type: ignore[arg-type]
        self.shape_rc: tuple[int, int] = (int(meta["shape_rc"][0]), int(meta["shape_rc"][1]))
        self.downsample = float(meta["downsample"])
        self.ramp = float(meta["ramp"])
        self.n_levels = int(meta["n_levels"])
        self.params: dict[str, Any] = dict(meta.get("params", {}))
        self._sum: Any = group[f"{_STATE}/sum"]
        self._weight: Any = group[f"{_STATE}/weight"]
        self._done_arr: Any = group[f"{_STATE}/done"]
        self.done: npt.NDArray[np.bool_] = np.asarray(self._done_arr[...]).astype(bool)
        self.max_value = float(meta.get("max_value", 0.0))
        self.levels: list[Any] = [group[str(k)] for k in range(self.n_levels)]

    # -- creation -------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        store: str | Path,
        key: str,
        *,
        shape0_rc: tuple[int, int],
        downsample: float,
        grid_shape: tuple[int, int],
        overlap0: float = 0.0,
        params: Mapping[str, Any] | None = None,
        name: str = "",
        attrs: Mapping[str, Any] | None = None,
        chunk_size: int = 512,
        min_size: int = 256,
        reset: bool = False,
    ) -> StitchedMap:
        """Open the map at ``store/key``, creating it (or starting over) when needed.

        An existing map is resumed when it was made with the same ``params``,
        geometry and grid; otherwise (or with ``reset=True``) it is replaced.

        Parameters
        ----------
        store : path
            Zarr store (e.g. ``<result>/heatmaps.zarr``).
        key : str
            Group inside it (``saliency/<method>/<class>``).
        shape0_rc : tuple of int
            Level-0 (rows, cols) of the slide.
        downsample : float
            Level-0 pixels per map pixel (finest level).
        grid_shape : tuple of int
            Shape of the tile grid (for the ``done`` mask).
        overlap0 : float
            Overlap between neighbouring tiles in level-0 pixels (sets the taper).
        params : mapping, optional
            What produced the map (model, method, target...): a resumed map must match.
        name : str
            Name in the ``multiscales`` attrs.
        attrs : mapping, optional
            Extra group attributes (``kind``, ``method``, ``class_name``).
        chunk_size, min_size : int
            Zarr chunk side; coarsest level fits in ``min_size`` pixels.
        reset : bool
            Start over even when a matching map exists.
        """
        root: Any = zarr.open_group(str(store), mode="a")
        meta = _stitch_meta(shape0_rc, downsample, grid_shape, overlap0, params)
        if key in root and not reset:
            old = dict(root[key].attrs.get("napari_xai_stitch", {}))
            if all(old.get(k) == v for k, v in meta.items()):  # same map: resume it
                return cls(root[key])
        if key in root:
            del root[key]
        group = root.require_group(key)
        shape_rc = (int(meta["shape_rc"][0]), int(meta["shape_rc"][1]))
        chunks = (min(chunk_size, shape_rc[0]), min(chunk_size, shape_rc[1]))
        _create_state(group.require_group(_STATE), shape_rc, chunks, meta["grid_shape"])
        datasets = _create_levels(
            group, _pyramid_shapes(shape_rc, min_size), float(downsample), chunk_size
        )
        meta["n_levels"] = len(datasets)
        meta["max_value"] = 0.0
        group.attrs.update(
            {
                **_plain(dict(attrs or {})),
                "napari_xai_stitch": meta,
                "multiscales": multiscales_attr(name, datasets),
            }
        )
        return cls(group)

    # -- geometry -------------------------------------------------------------------

    @property
    def scale_rc(self) -> tuple[float, float]:
        """Level-0 pixels per map pixel (finest level)."""
        return (self.downsample, self.downsample)

    @property
    def translate_rc(self) -> tuple[float, float]:
        """World (level-0) position of the centre of map pixel (0, 0)."""
        t = (self.downsample - 1) / 2
        return (t, t)

    @property
    def n_done(self) -> int:
        """Number of tiles added so far."""
        return int(self.done.sum())

    # -- writing --------------------------------------------------------------------

    def add_tiles(
        self,
        maps: npt.ArrayLike,
        rows0: npt.ArrayLike,
        cols0: npt.ArrayLike,
        *,
        size0: float,
        grid_index: tuple[npt.ArrayLike, npt.ArrayLike] | None = None,
    ) -> None:
        """Blend tile maps into the store and update the pyramid where they land.

        Parameters
        ----------
        maps : array of shape (N, h, w)
            One 2-D map per tile (any resolution; resampled to the footprint).
        rows0, cols0 : array of shape (N,)
            Level-0 top-left corner of each tile.
        size0 : float
            Level-0 extent of a tile.
        grid_index : (array, array), optional
            Grid (row, col) of each tile, marked done.
        """
        maps_arr = np.asarray(maps, dtype=np.float32)
        r0 = np.asarray(rows0, dtype=np.float64)
        c0 = np.asarray(cols0, dtype=np.float64)
        if maps_arr.ndim != 3 or len(maps_arr) != len(r0) or len(r0) != len(c0):
            raise ValueError(
                f"maps (N, h, w) and N positions expected, got {maps_arr.shape}, "
                f"{r0.shape}, {c0.shape}"
            )
        if len(maps_arr):
            boxes = [
                (*footprint(r, size0, self.downsample), *footprint(c, size0, self.downsample))
                for r, c in zip(r0, c0, strict=True)
            ]
            for members in _group_boxes(boxes, max_area=self.max_band_area):
                self._add_band(maps_arr, boxes, members)
        if grid_index is not None:
            gr = np.asarray(grid_index[0], dtype=np.int64)
            gc = np.asarray(grid_index[1], dtype=np.int64)
            self.done[gr, gc] = True
            self._done_arr[...] = self.done.astype(np.uint8)
        meta: dict[str, Any] = dict(self.group.attrs["napari_xai_stitch"])
        meta["max_value"] = self.max_value
        meta["n_done"] = self.n_done
        # kept with the map, so a viewer never reads it on the GUI thread for its contrast
        limits = attribution_limits(self.levels[-1][...])
        self.group.attrs.update({"napari_xai_stitch": meta, LIMITS_ATTR: list(limits)})

    def _add_band(
        self,
        maps: npt.NDArray[np.float32],
        boxes: list[tuple[int, int, int, int]],
        members: list[int],
    ) -> None:
        H, W = self.shape_rc
        br0 = max(0, min(boxes[i][0] for i in members))
        br1 = min(H, max(boxes[i][1] for i in members))
        bc0 = max(0, min(boxes[i][2] for i in members))
        bc1 = min(W, max(boxes[i][3] for i in members))
        if br1 <= br0 or bc1 <= bc0:
            return
        acc = np.asarray(self._sum[br0:br1, bc0:bc1], dtype=np.float32)
        wsum = np.asarray(self._weight[br0:br1, bc0:bc1], dtype=np.float32)
        for i in members:
            a, b, c, d = boxes[i]
            tile = _resize(maps[i : i + 1], (b - a, d - c))[0]
            weight = np.outer(taper_window(b - a, self.ramp), taper_window(d - c, self.ramp))
            # clip the footprint to the map (tiles past the slide edge)
            ra, rb = max(a, br0), min(b, br1)
            ca, cb = max(c, bc0), min(d, bc1)
            if rb <= ra or cb <= ca:
                continue
            tsl = (slice(ra - a, rb - a), slice(ca - c, cb - c))
            msl = (slice(ra - br0, rb - br0), slice(ca - bc0, cb - bc0))
            good = np.isfinite(tile[tsl])
            w = np.where(good, weight[tsl], 0.0)
            acc[msl] += np.where(good, tile[tsl], 0.0) * w
            wsum[msl] += w
            if good.any():
                self.max_value = max(self.max_value, float(np.nanmax(tile[tsl])))
        self._sum[br0:br1, bc0:bc1] = acc
        self._weight[br0:br1, bc0:bc1] = wsum
        with np.errstate(invalid="ignore", divide="ignore"):
            value = np.where(wsum > 0, acc / wsum, np.nan).astype(np.float32)
        self.levels[0][br0:br1, bc0:bc1] = value
        self._update_pyramid((br0, br1, bc0, bc1))

    def _update_pyramid(self, region: tuple[int, int, int, int]) -> None:
        r0, r1, c0, c1 = region
        for k in range(1, self.n_levels):
            parent, child = self.levels[k - 1], self.levels[k]
            r0, c0 = r0 // 2, c0 // 2
            r1, c1 = min(child.shape[0], (r1 + 1) // 2), min(child.shape[1], (c1 + 1) // 2)
            block = np.asarray(
                parent[
                    2 * r0 : min(parent.shape[0], 2 * r1), 2 * c0 : min(parent.shape[1], 2 * c1)
                ],
                dtype=np.float32,
            )
            child[r0:r1, c0:c1] = _pool2(block)[: r1 - r0, : c1 - c0]

    # -- reading --------------------------------------------------------------------

    def value_limits(self) -> tuple[float, float]:
        """Contrast limits as :meth:`add_tiles` stored them (one rule for every map).

        See :func:`napari_xai.core.results.attribution_limits`; a map written before
        the limits were stored has them computed from its coarsest level.
        """
        return map_limits(self.group.attrs, lambda: self.levels[-1][...])

    def to_dask(self) -> list[Any]:
        """Return the pyramid as lazy dask arrays, finest first.

        Every call gets fresh task names: dask names ``from_zarr`` arrays after the
        store's path, so arrays read before and after a write would share names and
        napari's chunk cache would keep serving the chunks read first. Call this again
        after the store changes (a live layer swaps its data for the new arrays).
        """
        import uuid

        import dask.array as da

        token = uuid.uuid4().hex
        return [
            da.from_zarr(level, name=f"napari-xai-map-{token}-{k}")
            for k, level in enumerate(self.levels)
        ]


def _stitch_meta(
    shape0_rc: tuple[int, int],
    downsample: float,
    grid_shape: tuple[int, int],
    overlap0: float,
    params: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """Return what makes a map the same map (a resume must match it): geometry, grid, params."""
    shape_rc = (
        max(1, math.ceil(shape0_rc[0] / downsample)),
        max(1, math.ceil(shape0_rc[1] / downsample)),
    )
    return {
        "shape_rc": list(shape_rc),
        "downsample": float(downsample),
        "grid_shape": [int(grid_shape[0]), int(grid_shape[1])],
        "ramp": float(overlap0) / float(downsample),
        "params": _plain(dict(params or {})),
    }


def _pyramid_shapes(shape_rc: tuple[int, int], min_size: int) -> list[tuple[int, int]]:
    """Shapes of the levels, finest first, halved until the map fits in ``min_size``."""
    shapes = [shape_rc]
    while max(shapes[-1]) > min_size and min(shapes[-1]) >= 2:
        r, c = shapes[-1]
        shapes.append(((r + 1) // 2, (c + 1) // 2))
    return shapes


def _create_state(
    state: Any, shape_rc: tuple[int, int], chunks: tuple[int, int], grid_shape: list[int]
) -> None:
    """Make the blend's accumulators (``sum``, ``weight``) and the grid's ``done`` mask."""
    for nm in ("sum", "weight"):
        state.create_array(nm, shape=shape_rc, chunks=chunks, dtype="float32", fill_value=0.0)
    state.create_array(
        "done",
        shape=tuple(int(g) for g in grid_shape),
        chunks=tuple(max(1, int(g)) for g in grid_shape),
        dtype="uint8",
        fill_value=0,
    )


def _create_levels(
    group: Any, shapes: list[tuple[int, int]], downsample: float, chunk_size: int
) -> list[dict[str, Any]]:
    """Make the (NaN) level arrays; return their ``multiscales`` datasets (onto level 0)."""
    datasets = []
    for k, shp in enumerate(shapes):
        group.create_array(
            str(k),
            shape=shp,
            chunks=(min(chunk_size, shp[0]), min(chunk_size, shp[1])),
            dtype="float32",
            fill_value=np.nan,
        )
        s = downsample * 2**k
        datasets.append(
            {
                "path": str(k),
                "coordinateTransformations": [
                    {"type": "scale", "scale": [s, s]},
                    {"type": "translation", "translation": [(s - 1) / 2, (s - 1) / 2]},
                ],
            }
        )
    return datasets


def _plain(value: Any) -> Any:
    """JSON-friendly copy (tuples → lists, numpy scalars → Python)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    return value
