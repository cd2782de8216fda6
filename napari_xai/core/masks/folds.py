"""Tissue folds: two layers of tissue, markedly darker than the slide's own tissue of that colour.

Where a section folds over itself, light passes two layers: the optical
densities add (transmittances multiply), so a fold is about twice as dark as
the tissue around it, in the same mixture of stains. A plain "darker than the
median" rule calls dense tissue a fold (epidermis against dermis, tumour
against stroma, DAB-rich glands against the counterstain), so each pixel is
compared with the slide's tissue **of the same colour**: the OD magnitude
(sum over R, G, B) against the median magnitude of tissue pixels of its OD
chromaticity (share of R and of G in the OD; a fold of two layers keeps a
mixture of the layers' colours, which the slide's tissue has too). The log2
ratio is averaged over a neighbourhood of :attr:`FoldOptions.sigma0` level-0
pixels (folds are hundreds of µm wide; nuclei are not), and tissue where it
exceeds :attr:`FoldOptions.threshold`, in pieces of at least
:attr:`FoldOptions.min_area0` level-0 pixels, is a fold. GrandQC finds folds
with a trained network; this is a cheap colour-and-density rule on the
thumbnail, with lower recall (see docs/qc.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from napari_xai.core.masks.artefacts import FOLD_LABEL
from napari_xai.core.masks.background import (
    Background,
    BoolArray,
    optical_density,
    rgb_and_background,
)
from napari_xai.core.masks.passes import bin_pixels, drop_small, unbin
from napari_xai.core.options import Bounded, bounded

__all__ = ["FOLD_LABEL", "FoldOptions", "fold_mask"]


@dataclass(frozen=True)
class FoldOptions(Bounded):
    """How :func:`fold_mask` looks for tissue folds.

    Attributes
    ----------
    sigma0 : float
        Gaussian sigma (level-0 pixels) of the neighbourhood the log ratio is
        averaged over (at least one mask pixel).
    threshold : float
        Minimum neighbourhood mean of ``log2(OD / median OD of that colour)``
        (0.65: 1.57 times the slide's tissue of that colour; two layers of
        tissue: about 2 before the colour's own median includes the fold).
    bins : int
        Bins per chromaticity axis.
    min_bin : int
        Colours with fewer tissue pixels than this take the median of all tissue.
    min_area0 : float
        Folds smaller than this (level-0 pixels) are dropped.
    min_tissue0 : float
        Images with less tissue than this (level-0 pixels) are not assessed
        (a small tile has no tissue of its own to compare with).
    exclude : float
        Pixels whose first-round mean log ratio exceeds this are left out of the
        colours' medians in the second round.
    """

    sigma0: float = bounded(24.0, low=0)
    threshold: float = 0.65
    bins: int = bounded(12, low=1)
    min_bin: int = bounded(50, low=0)
    min_area0: float = bounded(100.0 * 100.0, low=0)
    min_tissue0: float = bounded(100_000.0, low=0)
    exclude: float = 0.5


def fold_mask(
    rgb: npt.ArrayLike,
    tissue: npt.ArrayLike,
    *,
    downsample: float = 1.0,
    background: Background | None = None,
    options: FoldOptions | None = None,
) -> BoolArray:
    """Tissue folds in an RGB image of a slide (thumbnail or tile).

    Parameters
    ----------
    rgb : array of shape (rows, cols, 3)
        uint8 RGB.
    tissue : array of shape (rows, cols), bool
        The tissue mask (:func:`~napari_xai.core.masks.tissue_mask`).
    downsample : float
        Level-0 pixels per pixel of ``rgb``.
    background : Background, optional
        Default estimated from ``rgb``. Fluorescence images get no folds.
    options : FoldOptions, optional

    Returns
    -------
    ndarray of shape (rows, cols), bool
    """
    opts = FoldOptions() if options is None else options
    px, bg = rgb_and_background(rgb, background)
    t = np.asarray(tissue, bool)
    if t.shape != px.shape[:2]:
        raise ValueError(f"tissue mask shape {t.shape} differs from the image's {px.shape[:2]}")
    out = np.zeros(t.shape, bool)
    d2 = float(downsample) ** 2
    if bg.modality == "fluorescence" or t.sum() * d2 < opts.min_tissue0:
        return out
    sigma = max(1.0, opts.sigma0 / float(downsample))
    f = max(1, int(sigma // 4))  # the neighbourhood is wide: work binned (4 px per sigma)
    if f > 1:
        small = fold_mask(
            bin_pixels(px.astype(np.uint8), f),
            bin_pixels(t[..., None].astype(np.uint8) * 255, f)[..., 0] >= 128,
            downsample=float(downsample) * f,
            background=bg,
            options=opts,
        )
        return np.asarray(unbin(small, f, t.shape) & t)
    od = optical_density(px, background=bg)
    mag = od.sum(axis=-1) + 1e-3
    nb = int(opts.bins)
    share_r = np.clip(od[..., 0] / mag, 0.0, 0.999)
    share_g = np.clip(od[..., 1] / mag, 0.0, 0.999)
    colour = (share_r * nb).astype(np.int64) * nb + (share_g * nb).astype(np.int64)
    ok = t & (mag > 0.05)
    if not ok.any():
        return out
    # the colours' medians include the fold's own pixels (two layers keep the
    # tissue's colours): a second round leaves out what the first found
    ref = ok
    for _ in range(2):
        mean = _mean_log_ratio(mag, colour, ok, ref, nb=nb, min_bin=opts.min_bin, sigma=sigma)
        ref = ok & ~(mean > opts.exclude)
    fold = t & (mean > opts.threshold)
    if not fold.any():
        return out
    return drop_small(fold, max(1, int(np.ceil(opts.min_area0 / d2))))


def _mean_log_ratio(
    mag: npt.NDArray[np.float32],
    colour: npt.NDArray[np.int64],
    ok: BoolArray,
    ref: BoolArray,
    *,
    nb: int,
    min_bin: int,
    sigma: float,
) -> npt.NDArray[np.float32]:
    """Neighbourhood mean of ``log2(mag / median mag of the pixel's colour among ref)``."""
    from scipy import ndimage as ndi

    if not ref.any():
        ref = ok
    counts = np.bincount(colour[ref], minlength=nb * nb)
    median = np.full(nb * nb, float(np.median(mag[ref])))
    order = np.argsort(colour[ref], kind="stable")
    sorted_mag = mag[ref][order]
    starts = np.concatenate([[0], np.cumsum(counts)])
    for k in np.flatnonzero(counts >= min_bin):
        median[k] = float(np.median(sorted_mag[starts[k] : starts[k + 1]]))
    ratio = np.where(ok, np.log2(mag / np.maximum(median[colour], 1e-3)), 0.0)
    weight = ndi.gaussian_filter(ok.astype(np.float32), sigma)
    mean = ndi.gaussian_filter(ratio.astype(np.float32), sigma) / np.maximum(weight, 1e-3)
    return np.asarray(mean, np.float32)
