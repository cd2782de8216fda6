"""What the mask detectors share: the slide passes' runner, binning, dropping specks.

The stroke pass (:func:`~napari_xai.core.masks.strokes.stroke_labels`) and the
focus pass (:func:`~napari_xai.core.masks.focus.focus_labels`) read the slide
chunk by chunk where the thumbnail pass found tissue, at the coarsest pyramid
level not above their resolution, binned to it. Both start with
:func:`start_pass`: the slide's reference background, the level and its
binning (a :class:`SlidePass`, none for fluorescence), then the chunks with
tissue (:meth:`SlidePass.chunks`), each read binned (:meth:`SlidePass.read`)
on a few threads (:meth:`SlidePass.map`, :func:`thread_map`). The image detectors bin pixels
(:func:`bin_pixels`), put a binned result back on the full grid
(:func:`unbin`) and drop specks (:func:`drop_small`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import numpy as np
import numpy.typing as npt

from napari_xai.core.masks.background import Background, BoolArray, estimate_background

if TYPE_CHECKING:
    from napari_xai.core.masks.slide import SlideMasks
    from napari_xai.core.wsi import Slide

__all__ = [
    "SlidePass",
    "bin_pixels",
    "drop_small",
    "slide_background",
    "start_pass",
    "thread_map",
    "unbin",
]

_T = TypeVar("_T", bound=np.generic)
_In = TypeVar("_In")
_Out = TypeVar("_Out")

#: Longest side of the thumbnail a pass estimates the slide's background from.
BACKGROUND_THUMBNAIL = 1024


@dataclass(frozen=True)
class SlidePass:
    """A pass over a slide's tissue, chunk by chunk, finer than its thumbnail masks.

    Made by :func:`start_pass`.

    Attributes
    ----------
    slide : napari_xai.core.wsi.Slide
    masks : SlideMasks
        The thumbnail pass: its grid (where the pass puts what it finds) and
        tissue (which chunks are read).
    background : Background
        The slide's glass (a brightfield slide: fluorescence gets no pass).
    level : int
        Pyramid level read: the coarsest not above the pass's downsample.
    level_downsample : float
        Level-0 pixels per pixel of that level.
    binning : int
        Level pixels per pass pixel, each side.
    """

    slide: Slide
    masks: SlideMasks
    background: Background
    level: int
    level_downsample: float
    binning: int

    @property
    def downsample(self) -> float:
        """Level-0 pixels per pass pixel."""
        return self.level_downsample * self.binning

    def chunks(self, *, unit0: float, chunk0: float) -> tuple[int, BoolArray]:
        """Side of the pass's chunks (level-0 pixels) and which chunks touch the masks' tissue.

        A chunk is the largest multiple of ``unit0`` (a pass pixel or cell,
        level-0 pixels) not above ``chunk0``, at least one unit; the grid of
        chunks starts at the slide's origin.
        """
        block0 = max(int(unit0), int(chunk0 // unit0) * int(unit0))
        shape0 = (int(self.slide.info.shape_rc[0]), int(self.slide.info.shape_rc[1]))
        return block0, _mask_blocks(self.masks.tissue, self.masks.downsample, block0, shape0)

    def read(self, loc0: tuple[int, int], side0: int) -> npt.NDArray[np.uint8]:
        """Read the ``side0``-sided square of level-0 pixels at ``loc0`` (row, col), binned.

        Read at :attr:`level` (a whole number of bins: ``side0`` rounded to pass
        pixels) and binned by :attr:`binning`.
        """
        n = int(round(side0 / self.downsample)) * self.binning
        return bin_pixels(self.slide.read_region(loc0, (n, n), level=self.level), self.binning)

    def map(
        self, fn: Callable[[tuple[int, int]], _Out], blocks: BoolArray, *, workers: int
    ) -> Iterator[_Out]:
        """``fn((row, col))`` of every chunk ``blocks`` marks, row by row (:func:`thread_map`)."""
        todo = [(int(i), int(j)) for i, j in zip(*np.nonzero(blocks), strict=True)]
        return thread_map(fn, todo, workers=workers)


def start_pass(
    slide: Slide,
    masks: SlideMasks,
    *,
    downsample: float,
    background: Background | None = None,
) -> SlidePass | None:
    """Set up a pass over ``slide`` at about ``downsample``; None where it has nothing to find.

    Parameters
    ----------
    slide : napari_xai.core.wsi.Slide
    masks : SlideMasks
        The thumbnail pass (its grid and tissue).
    downsample : float
        Level-0 pixels per pass pixel. The coarsest level not above it is read
        (pyramid downsamples are rarely exact: 4.002, 16.04..., so a little over
        is allowed), binned by the integer that brings it closest.
    background : Background, optional
        Default: :func:`slide_background`.

    Returns
    -------
    SlidePass or None
        None for a fluorescence slide (by its masks or its background): the
        passes' colour and density rules are brightfield ones.
    """
    if masks.modality == "fluorescence":
        return None
    bg = slide_background(slide) if background is None else background
    if bg.modality == "fluorescence":
        return None
    level = slide.best_level_for_downsample(downsample * 1.05)
    lvl_ds = float(slide.info.level_downsamples[level])
    return SlidePass(slide, masks, bg, level, lvl_ds, max(1, int(round(downsample / lvl_ds))))


def slide_background(slide: Slide) -> Background:
    """Estimate the slide's glass or dark field from its thumbnail (the passes' reference)."""
    thumb, _ = slide.thumbnail(max_size=BACKGROUND_THUMBNAIL)
    return estimate_background(thumb)


def thread_map(fn: Callable[[_In], _Out], items: Iterable[_In], *, workers: int) -> Iterator[_Out]:
    """``fn`` of each item on ``workers`` threads (at least one), in order, as they are consumed.

    A pass's chunks are read and scored this way: pyramid reads release the GIL.
    """
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        yield from pool.map(fn, items)


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


def bin_pixels(rgb: npt.NDArray[np.uint8], f: int) -> npt.NDArray[np.uint8]:
    """Mean over ``f`` x ``f`` blocks (edges that do not fill a block are dropped)."""
    if f <= 1:
        return rgb
    rows, cols = (rgb.shape[0] // f) * f, (rgb.shape[1] // f) * f
    acc = np.zeros((rows // f, cols // f, rgb.shape[2]), np.uint16)
    for i in range(f):
        for j in range(f):
            acc += rgb[i:rows:f, j:cols:f]
    return (acc // (f * f)).astype(np.uint8)


def unbin(small: npt.NDArray[_T], f: int, shape: tuple[int, ...]) -> npt.NDArray[_T]:
    """``small`` (one value per ``f`` x ``f`` block) back on a ``shape[:2]`` grid.

    Each value is repeated over its block; edge rows and columns that did not
    fill a block (dropped by :func:`bin_pixels`) take their neighbour's.
    """
    rows, cols = int(shape[0]), int(shape[1])
    big = np.repeat(np.repeat(small, f, axis=0), f, axis=1)[:rows, :cols]
    out: npt.NDArray[_T] = np.pad(
        big, ((0, rows - big.shape[0]), (0, cols - big.shape[1])), mode="edge"
    )
    return out


def drop_small(mask: BoolArray, min_size: int) -> BoolArray:
    """``mask`` without its connected pieces (8-connected) under ``min_size`` pixels."""
    from scipy import ndimage as ndi

    lab, n = ndi.label(mask, structure=np.ones((3, 3), bool))
    if not n:
        return mask
    keep = np.bincount(lab.ravel()) >= min_size
    keep[0] = False
    return np.asarray(keep[lab])
