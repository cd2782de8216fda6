"""Passes over a slide's tissue chunks, finer than its thumbnail (strokes, focus).

The stroke pass (:mod:`~napari_xai.core.masks.strokes`) and the focus pass
(:mod:`~napari_xai.core.masks.focus`) read the slide chunk by chunk where the
thumbnail pass found tissue, at the coarsest pyramid level not above their
resolution, binned to it. What they share is here: the level
(:func:`pass_level`), the chunks with tissue (:func:`tissue_chunks`), the
slide's reference background (:func:`slide_background`), and binning pixels
and putting a binned result back on the full grid (``_bin``, ``_unbin``, also
used by the fold pass).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

import numpy as np
import numpy.typing as npt

from napari_xai.core.masks.background import Background, BoolArray, estimate_background

if TYPE_CHECKING:
    from napari_xai.core.masks.slide import SlideMasks
    from napari_xai.core.wsi import Slide

__all__ = ["pass_level", "slide_background", "tissue_chunks"]

_T = TypeVar("_T", bound=np.generic)

#: Longest side of the thumbnail a pass estimates the slide's background from.
BACKGROUND_THUMBNAIL = 1024


def pass_level(slide: Slide, downsample: float) -> tuple[int, float, int]:
    """``(level, its downsample, binning)`` that reads ``slide`` at about ``downsample``.

    The coarsest level not above it (pyramid downsamples are rarely exact:
    4.002, 16.04..., so a little over is allowed), binned by the integer that
    brings it closest.
    """
    level = slide.best_level_for_downsample(downsample * 1.05)
    lvl_ds = float(slide.info.level_downsamples[level])
    return level, lvl_ds, max(1, int(round(downsample / lvl_ds)))


def slide_background(slide: Slide) -> Background:
    """Estimate the slide's glass or dark field from its thumbnail (the passes' reference)."""
    thumb, _ = slide.thumbnail(max_size=BACKGROUND_THUMBNAIL)
    return estimate_background(thumb)


def tissue_chunks(
    slide: Slide, masks: SlideMasks, *, unit0: float, chunk0: float
) -> tuple[int, BoolArray]:
    """Side of a pass's chunks (level-0 pixels) and which chunks touch ``masks.tissue``.

    A chunk is the largest multiple of ``unit0`` (a pass pixel or cell, level-0
    pixels) not above ``chunk0``, at least one unit; the grid of chunks starts
    at the slide's origin.
    """
    block0 = max(int(unit0), int(chunk0 // unit0) * int(unit0))
    shape0 = (int(slide.info.shape_rc[0]), int(slide.info.shape_rc[1]))
    return block0, _mask_blocks(masks.tissue, masks.downsample, block0, shape0)


def _mask_blocks(
    mask: BoolArray, mask_ds: float, block0: int, shape0: tuple[int, int]
) -> BoolArray:
    """Which ``block0``-sided level-0 blocks of a slide touch ``mask`` (at ``mask_ds``)."""
    nr, nc = -(-shape0[0] // block0), -(-shape0[1] // block0)
    rr, cc = np.nonzero(mask)
    out = np.zeros((nr, nc), bool)
    # mask pixel (i, j) covers level-0 [i ds, (i + 1) ds): its first and last blocks
    # (a block is larger than a mask pixel, so there is nothing in between)
    first_r = np.minimum((rr * mask_ds // block0).astype(int), nr - 1)
    last_r = np.minimum((((rr + 1) * mask_ds - 1) // block0).astype(int), nr - 1)
    first_c = np.minimum((cc * mask_ds // block0).astype(int), nc - 1)
    last_c = np.minimum((((cc + 1) * mask_ds - 1) // block0).astype(int), nc - 1)
    for bi in (first_r, last_r):
        for bj in (first_c, last_c):
            out[bi, bj] = True
    return out


def _bin(rgb: npt.NDArray[np.uint8], f: int) -> npt.NDArray[np.uint8]:
    """Mean over ``f`` x ``f`` blocks (edges that do not fill a block are dropped)."""
    if f <= 1:
        return rgb
    rows, cols = (rgb.shape[0] // f) * f, (rgb.shape[1] // f) * f
    acc = np.zeros((rows // f, cols // f, rgb.shape[2]), np.uint16)
    for i in range(f):
        for j in range(f):
            acc += rgb[i:rows:f, j:cols:f]
    return (acc // (f * f)).astype(np.uint8)


def _unbin(small: npt.NDArray[_T], f: int, shape: tuple[int, ...]) -> npt.NDArray[_T]:
    """``small`` (one value per ``f`` x ``f`` block) back on a ``shape[:2]`` grid.

    Each value is repeated over its block; edge rows and columns that did not
    fill a block (dropped by ``_bin``) take their neighbour's.
    """
    rows, cols = int(shape[0]), int(shape[1])
    big = np.repeat(np.repeat(small, f, axis=0), f, axis=1)[:rows, :cols]
    out: npt.NDArray[_T] = np.pad(
        big, ((0, rows - big.shape[0]), (0, cols - big.shape[1])), mode="edge"
    )
    return out
