"""Threaded, prefetching tile reader: batches of uint8 RGB tiles from a slide.

Worker threads read and decode whole batches (``Slide.read_region`` is
thread-safe and the JPEG/LZW decoders release the GIL) and resize them to the
model's tile size, while the caller's thread runs the model on the previous
batch. At most ``prefetch`` batches are in flight besides the one the caller
holds, so memory stays bounded by ``(prefetch + 1) * batch_size`` tiles
whatever the slide's size.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from napari_xai.core.tiling import TileGrid

__all__ = ["RegionSource", "TileBatch", "TileReader", "read_tiles", "resize_tile"]


class RegionSource(Protocol):
    """Anything with the :class:`napari_xai.core.wsi.Slide` ``read_region`` signature."""

    def read_region(
        self, loc_rc: tuple[int, int], shape_rc: tuple[int, int], *, level: int = 0
    ) -> npt.NDArray[np.uint8]:
        """Read ``shape_rc`` pixels at ``level`` from level-0 ``loc_rc`` as RGB uint8."""
        ...


@dataclass(frozen=True)
class TileBatch:
    """One batch of tiles as read from the slide.

    Attributes
    ----------
    indices : ndarray of shape (B,), int64
        Positions of these tiles in the :class:`TileGrid`.
    tiles : ndarray of shape (B, tile_size, tile_size, 3), uint8
        RGB tiles at the model's size (pinned torch tensor when ``pin_memory``).
    """

    indices: npt.NDArray[np.int64]
    tiles: Any


def resize_tile(tile: npt.NDArray[np.uint8], size: int) -> npt.NDArray[np.uint8]:
    """Resize an RGB uint8 tile to ``size``×``size`` (bilinear, antialiased).

    Uses PIL like torchvision's ``Resize`` on PIL images (WSInfer's transform), so
    the same tile gives the same pixels as WSInfer.
    """
    if tile.shape[0] == size and tile.shape[1] == size:
        return tile
    from PIL import Image

    img = Image.fromarray(np.ascontiguousarray(tile))
    return np.asarray(img.resize((size, size), Image.Resampling.BILINEAR))


#: Longest strip (pixels at the read level) read in one call for a run of tiles.
MAX_STRIP = 8192


def _runs(
    rows: npt.NDArray[np.int64], cols: npt.NDArray[np.int64], tile0: int, max_tiles: int
) -> list[tuple[int, int]]:
    """Split positions into runs of horizontally touching tiles on one grid row."""
    runs, start = [], 0
    for k in range(1, len(rows) + 1):
        if (
            k == len(rows)
            or rows[k] != rows[start]
            or not 0 < cols[k] - cols[k - 1] <= tile0
            or k - start >= max_tiles
        ):
            runs.append((start, k))
            start = k
    return runs


def read_tiles(
    source: RegionSource, grid: TileGrid, indices: Sequence[int] | npt.NDArray[np.int64]
) -> npt.NDArray[np.uint8]:
    """Read the tiles ``indices`` of ``grid`` as ``(B, tile_size, tile_size, 3)`` uint8.

    Neighbouring tiles on one grid row are read as one strip and cut apart, so
    each file tile under them is decoded once per strip rather than once per
    tile (the pixels are the same as reading tile by tile).
    """
    idx = np.asarray(indices, dtype=np.int64)
    size, rs, level = int(grid.tile_size), int(grid.read_size), int(grid.level)
    ds = float(grid.level_downsample)
    out = np.empty((idx.shape[0], size, size, 3), dtype=np.uint8)
    rows, cols = grid.rows[idx], grid.cols[idx]
    max_run = max(1, MAX_STRIP // max(rs, 1))
    for a, b in _runs(rows, cols, int(grid.tile_size0), max_run):
        # Same level-pixel origin rule as Slide.read_region: floor(level-0 / ds).
        starts = np.floor(cols[a:b] / ds + 1e-9).astype(np.int64) - int(
            np.floor(cols[a] / ds + 1e-9)
        )
        width = int(starts[-1]) + rs
        strip = source.read_region((int(rows[a]), int(cols[a])), (rs, width), level=level)
        for k, s in enumerate(starts):
            out[a + k] = resize_tile(strip[:, s : s + rs], size)
    return out


class TileReader:
    """Iterate over a grid's tiles in batches, reading ahead in worker threads.

    Parameters
    ----------
    source : Slide
        Where tiles are read from (``read_region`` must be thread-safe).
    grid : TileGrid
        Tiles to read.
    batch_size : int
        Tiles per batch.
    prefetch : int
        Batches read ahead of the one being consumed.
    num_workers : int
        Reader threads.
    pin_memory : bool
        Return pinned CPU torch tensors (for fast non-blocking copies to CUDA).
    indices : sequence of int, optional
        Subset / order of the grid's tiles to read (all, in order, by default).

    Notes
    -----
    Iterate once. Stopping early (``break``, ``close()``, generator closed)
    cancels the batches not yet started.
    """

    def __init__(
        self,
        source: RegionSource,
        grid: TileGrid,
        *,
        batch_size: int = 32,
        prefetch: int = 2,
        num_workers: int = 2,
        pin_memory: bool = False,
        indices: Sequence[int] | npt.NDArray[np.int64] | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        if prefetch < 0:
            raise ValueError(f"prefetch must be at least 0, got {prefetch}")
        self.source = source
        self.grid = grid
        self.batch_size = int(batch_size)
        self.prefetch = int(prefetch)
        self.num_workers = max(1, int(num_workers))
        self.pin_memory = pin_memory
        order = np.arange(len(grid), dtype=np.int64) if indices is None else indices
        self.indices = np.asarray(order, dtype=np.int64)
        self._closed = threading.Event()

    def __len__(self) -> int:
        """Return the number of batches."""
        return -(-int(self.indices.shape[0]) // self.batch_size)

    @property
    def n_tiles(self) -> int:
        """Number of tiles to read."""
        return int(self.indices.shape[0])

    def _read(self, idx: npt.NDArray[np.int64]) -> TileBatch:
        if self._closed.is_set():
            raise RuntimeError("tile reader closed")
        tiles: Any = read_tiles(self.source, self.grid, idx)
        if self.pin_memory:
            import torch

            tiles = torch.from_numpy(tiles).pin_memory()
        return TileBatch(indices=idx, tiles=tiles)

    def close(self) -> None:
        """Stop reading (batches already being read finish and are dropped)."""
        self._closed.set()

    def __iter__(self) -> Iterator[TileBatch]:
        """Yield :class:`TileBatch` objects in order."""
        bs = self.batch_size
        chunks = (self.indices[i : i + bs] for i in range(0, self.n_tiles, bs))
        pending: collections.deque[Future[TileBatch]] = collections.deque()
        executor = ThreadPoolExecutor(self.num_workers, thread_name_prefix="napari-xai-tiles")
        try:
            for chunk in chunks:
                pending.append(executor.submit(self._read, chunk))
                if len(pending) > self.prefetch:
                    break
            while pending:
                batch = pending.popleft().result()
                nxt = next(chunks, None)
                if nxt is not None:
                    pending.append(executor.submit(self._read, nxt))
                yield batch
        finally:
            self.close()
            for fut in pending:
                fut.cancel()
            executor.shutdown(wait=False, cancel_futures=True)
