"""Out-of-focus tissue: fine detail against coarse detail, relative to the slide's own tissue.

A thumbnail cannot see blur (a 1/16 thumbnail of a sharp and of a blurred
region look alike), so focus is measured at a resolution where nuclei edges are
a few pixels wide: :attr:`FocusOptions.downsample` 2 (about 1 µm/px at
0.5 µm/px level 0), read lazily over the pyramid, tissue chunks only.

The measure (HistoQC's blur module thresholds a smoothed Laplacian; this one is
its contrast-free variant): for a grey image ``g``, the fine band
``|g - G1(g)|`` (detail under ~2 px) against the coarse band
``|G1(g) - G4(g)|`` (Gaussian blurs of sigma 1 and 4 px), summed over a cell
of :attr:`FocusOptions.cell0` level-0 pixels. Sharp tissue of any stain and
density keeps a share of its contrast in the fine band; a blurred region loses
the fine band first, pale or dark alike. Cells are compared with the median of
the slide's own tissue cells (stains, scanners and JPEG quality move the
absolute figure): a cell under :attr:`FocusOptions.relative` of it is out of
focus. A slide blurred all over has nothing sharp to compare with and is not
flagged (a known limit). Images with fewer than :attr:`FocusOptions.min_cells`
tissue cells (a small tile) are not assessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from napari_xai.core.masks.artefacts import BLUR_LABEL
from napari_xai.core.masks.background import (
    Background,
    BoolArray,
    channel_max,
    check_rgb,
    optical_density,
    rgb_and_background,
)
from napari_xai.core.masks.passes import bin_pixels, start_pass, unbin

if TYPE_CHECKING:
    from napari_xai.core.masks.slide import SlideMasks
    from napari_xai.core.wsi import Slide

__all__ = ["BLUR_LABEL", "FocusOptions", "FocusStats", "blur_mask", "focus_labels"]


@dataclass(frozen=True)
class FocusOptions:
    """How :func:`focus_labels` and :func:`blur_mask` look for out-of-focus tissue.

    Attributes
    ----------
    downsample : float
        Level-0 pixels per pixel of the focus pass (the coarsest level not above
        it is read and binned to it; at most 4, where focus still shows).
    cell0 : int
        Side (level-0 pixels) of the cells that are scored (128: 64 µm at
        0.5 µm/px).
    relative : float
        A cell whose sharpness is under this share of the median of the slide's
        tissue cells is out of focus (real sharp tissue: 0.57 or more of the
        median on the real H&E and IHC images; a Gaussian blur of sigma 3 level-0
        px: 0.30-0.50).
    min_tissue : float
        Share of a cell's pixels that must be tissue for it to be scored.
    min_cells : int
        Fewer tissue cells than this: not assessed (nothing to compare with).
    chunk : int
        Side (level-0 pixels) of the chunks the slide pass reads.
    sample_above : float
        On slides whose tissue chunks hold more level-0 pixels than this, each
        chunk is judged from a window of ``sample`` level-0 pixels near its centre
        (out-of-focus regions span millimetres): the whole chunk takes the median
        of that window's cells. Smaller slides are read whole.
    sample : int
        Side (level-0 pixels) of that window (256: 2 x 2 cells, one pyramid tile).
    workers : int
        Threads reading and scoring chunks.
    """

    downsample: float = 2.0
    cell0: int = 128
    relative: float = 0.5
    min_tissue: float = 0.5
    min_cells: int = 8
    chunk: int = 2048
    sample_above: float = 2e8
    sample: int = 256
    workers: int = 2


@dataclass(frozen=True)
class FocusStats:
    """What :func:`focus_labels` read and found (for benchmarks and reports).

    Attributes
    ----------
    tissue_chunks : int
        Chunks with tissue (each read, whole or a window of it).
    sampled : bool
        Whether chunks were judged from a window.
    level : int
        Level read.
    cells : int
        Tissue cells scored.
    reference : float
        Median sharpness of the tissue cells (nan: not assessed).
    """

    tissue_chunks: int
    sampled: bool
    level: int
    cells: int
    reference: float


def _cell_scores(
    rgb: npt.ArrayLike, bg: Background, cell: int, min_tissue: float
) -> tuple[npt.NDArray[np.float64], BoolArray]:
    """Sharpness of each ``cell`` x ``cell`` block of ``rgb``, and which blocks are tissue."""
    from scipy import ndimage as ndi

    px = check_rgb(rgb)
    rows, cols = (px.shape[0] // cell) * cell, (px.shape[1] // cell) * cell
    if rows == 0 or cols == 0:
        return np.zeros((0, 0)), np.zeros((0, 0), bool)
    od = optical_density(px, background=bg)
    grey = od.sum(axis=-1)  # contrast of every stain, glass ~0
    g1 = ndi.gaussian_filter(grey, 1.0)
    fine = np.abs(grey - g1)
    coarse = np.abs(g1 - ndi.gaussian_filter(grey, 4.0))
    tissue = channel_max(od) > 0.05

    def per_cell(a: npt.NDArray[np.generic]) -> npt.NDArray[np.float64]:
        v = a[:rows, :cols].reshape(rows // cell, cell, cols // cell, cell)
        return np.asarray(v.mean(axis=(1, 3)), np.float64)

    score = per_cell(fine) / np.maximum(per_cell(coarse), 1e-6)
    return score, per_cell(tissue) >= min_tissue


def _reference(scores: npt.NDArray[np.float64], opts: FocusOptions) -> float:
    """Median sharpness of the image's tissue ``scores``; NaN under ``opts.min_cells`` cells."""
    return float(np.median(scores)) if scores.size >= opts.min_cells else float("nan")


def blur_mask(
    rgb: npt.ArrayLike,
    *,
    downsample: float = 1.0,
    background: Background | None = None,
    options: FocusOptions | None = None,
) -> BoolArray:
    """Out-of-focus tissue of an image held in memory (a tile, a small slide at full resolution).

    Parameters
    ----------
    rgb : array of shape (rows, cols, 3)
        uint8 RGB.
    downsample : float
        Level-0 pixels per pixel of ``rgb`` (a thumbnail coarser than
        :attr:`FocusOptions.downsample` x 2 cannot show focus: nothing is flagged).
    background : Background, optional
        Default estimated from ``rgb``.
    options : FocusOptions, optional

    Returns
    -------
    ndarray of shape (rows, cols), bool
        Cells judged out of focus (edge rows and columns that do not fill a cell
        take their neighbour's), restricted to pixels that absorb light.
    """
    opts = FocusOptions() if options is None else options
    px16, bg = rgb_and_background(rgb, background)
    px = px16.astype(np.uint8)
    out = np.zeros(px.shape[:2], bool)
    if bg.modality == "fluorescence" or downsample > 2 * opts.downsample:
        return out
    f = max(1, int(round(opts.downsample / downsample)))
    work = bin_pixels(px, f)
    cell = max(4, int(round(opts.cell0 / (downsample * f))))
    score, tissue = _cell_scores(work, bg, cell, opts.min_tissue)
    ref = _reference(score[tissue], opts)
    if not np.isfinite(ref):
        return out
    bad = tissue & (score < opts.relative * ref)
    if not bad.any():
        return out
    big = unbin(bad, cell * f, px.shape)
    od = optical_density(px, background=bg)
    return np.asarray(big & (channel_max(od) > 0.05))


def focus_labels(
    slide: Slide,
    masks: SlideMasks,
    *,
    options: FocusOptions | None = None,
    background: Background | None = None,
    stats: list[FocusStats] | None = None,
) -> npt.NDArray[np.uint8]:
    """Out-of-focus tissue of a slide, found lazily at focus resolution, on the masks' grid.

    Every chunk with tissue in ``masks`` is read (region by region, never a
    whole level in memory) at the coarsest level not above the focus
    downsample, binned to it and scored cell by cell; on big slides
    (:attr:`FocusOptions.sample_above`) only a window at each chunk's centre is
    read and the chunk takes its cells' median. Cells under
    :attr:`FocusOptions.relative` of the median tissue cell are out of focus;
    their tissue pixels on the masks' grid get :data:`BLUR_LABEL`.

    Parameters
    ----------
    slide : napari_xai.core.wsi.Slide
    masks : SlideMasks
        The thumbnail pass (its grid and tissue).
    options : FocusOptions, optional
    background : Background, optional
        Default: estimated from the slide's thumbnail.
    stats : list, optional
        A :class:`FocusStats` is appended.

    Returns
    -------
    ndarray of the masks' shape, uint8 (0 or :data:`BLUR_LABEL`)
    """
    opts = FocusOptions() if options is None else options
    rows_m, cols_m = masks.tissue.shape
    out = np.zeros((rows_m, cols_m), np.uint8)
    run = start_pass(slide, masks, downsample=opts.downsample, background=background)
    if run is None:
        return out
    ds = run.downsample  # level-0 pixels per focus-pass pixel
    cell = max(4, int(round(opts.cell0 / ds)))  # focus-pass pixels per cell
    cell0 = cell * ds
    block0, blocks = run.chunks(unit0=cell0, chunk0=opts.chunk)
    n_chunks = int(blocks.sum())
    sampled = n_chunks * float(block0) ** 2 > opts.sample_above
    win0 = min(block0, max(int(cell0), int(opts.sample // cell0) * int(cell0)))
    side0 = win0 if sampled else block0
    # near the chunk's centre, on a multiple of the window (pyramid tiles are
    # usually 256 or 512 px: one tile is decoded, not four)
    margin0 = (block0 // 2 // side0) * side0 if sampled else 0

    def one(ij: tuple[int, int]) -> tuple[int, int, npt.NDArray[np.float64], BoolArray]:
        i, j = ij
        rgb = run.read((i * block0 + margin0, j * block0 + margin0), side0)
        score, tissue = _cell_scores(rgb, run.background, cell, opts.min_tissue)
        return i, j, score, tissue

    results = list(run.map(one, blocks, workers=opts.workers))
    scores = [s[t] for _, _, s, t in results if t.any()]
    all_scores = np.concatenate(scores) if scores else np.zeros(0)
    ref = _reference(all_scores, opts)
    if stats is not None:
        stats.append(FocusStats(n_chunks, sampled, run.level, int(all_scores.size), ref))
    if not np.isfinite(ref):
        return out
    limit = opts.relative * ref
    f = masks.downsample  # level-0 pixels per mask pixel
    for i, j, score, tissue in results:
        if sampled:
            if not tissue.any() or np.median(score[tissue]) >= limit:
                continue
            boxes = [(i * block0, j * block0, block0)]
        else:
            bad = tissue & (score < limit)
            boxes = [
                (i * block0 + int(a * cell0), j * block0 + int(b * cell0), int(cell0))
                for a, b in zip(*np.nonzero(bad), strict=True)
            ]
        for r0, c0, n0 in boxes:
            # mask pixels whose centre lies in the box
            mr0, mr1 = int(np.ceil(r0 / f - 0.5)), int(np.ceil((r0 + n0) / f - 0.5))
            mc0, mc1 = int(np.ceil(c0 / f - 0.5)), int(np.ceil((c0 + n0) / f - 0.5))
            mr0, mc0 = max(0, mr0), max(0, mc0)
            mr1, mc1 = min(rows_m, max(mr1, mr0 + 1)), min(cols_m, max(mc1, mc0 + 1))
            if mr0 < rows_m and mc0 < cols_m:
                out[mr0:mr1, mc0:mc1] = BLUR_LABEL
    out[~masks.tissue] = 0
    return out
