"""Tissue mask of a slide thumbnail, brightfield or fluorescence.

Brightfield tissue is where the largest channel optical density exceeds an Otsu
threshold kept within sensible bounds, so that pale IHC counterstain, faint
eosin and grey tissue count, and glass does not, whatever the scanner's white
balance; with hysteresis, paler tissue (half that OD) joined to it counts too.
Fluorescence tissue is where stained objects (nuclei) are dense, from a
smoothed foreground.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from napari_xai.core.masks.artefacts import artefact_mask
from napari_xai.core.masks.background import (
    Background,
    BoolArray,
    channel_max,
    optical_density,
    rgb_and_background,
)
from napari_xai.core.masks.morphology import disk_opening

__all__ = ["tissue_mask"]


def tissue_mask(
    rgb: npt.ArrayLike,
    *,
    artefact: BoolArray | None = None,
    od_bounds: tuple[float, float] = (0.025, 0.035),
    low_ratio: float = 0.5,
    min_size: int | None = None,
    hole_size: int | None = None,
    background: Background | None = None,
) -> BoolArray:
    """Boolean tissue mask of an RGB image (thumbnail) of a slide, of any modality.

    Parameters
    ----------
    rgb : array of shape (rows, cols, 3)
        uint8 RGB (floats in [0, 1] are accepted).
    artefact : ndarray of shape (rows, cols), bool, optional
        Pixels never counted as tissue; default :func:`artefact_mask` of ``rgb``.
        Pass an all-False array to keep tissue under ink.
    od_bounds : tuple of float
        Brightfield: the Otsu threshold on the (smoothed) largest channel optical
        density is clipped to these bounds, so that an image of only glass or
        only tissue is still classified sensibly; the upper bound keeps pale
        stroma (OD ~0.035 on the IHC sample) beside dark DAB mostly tissue.
    low_ratio : float
        Hysteresis: regions above ``low_ratio`` times that threshold are tissue
        where they connect to pixels above it (and are at least 5 pixels across),
        so that pale stroma between stained glands counts, and glass noise, the
        soft rim of dense tissue and the soft edges of artefacts do not.
    min_size : int, optional
        Tissue pieces smaller than this (pixels) are dropped; default
        ``rows * cols / 20000`` (at least 4).
    hole_size : int, optional
        Holes smaller than this (pixels) are filled; default ``4 * min_size``.
    background : Background, optional
        Default :func:`estimate_background` of ``rgb``.

    Returns
    -------
    ndarray of shape (rows, cols), bool
    """
    from scipy import ndimage as ndi
    from skimage.filters import threshold_otsu
    from skimage.morphology import remove_small_holes, remove_small_objects

    px, bg = rgb_and_background(rgb, background)
    if artefact is None:
        artefact = artefact_mask(px.astype(np.uint8), background=bg)
    elif artefact.shape != px.shape[:2]:
        raise ValueError(f"artefact mask {artefact.shape} does not match the image {px.shape}")
    size = max(4, px.shape[0] * px.shape[1] // 20000) if min_size is None else int(min_size)
    holes = 4 * size if hole_size is None else int(hole_size)
    if bg.modality == "fluorescence":
        cand = _fluorescence_tissue(px, max(bg.level))
    else:
        od = np.where(artefact, 0.0, channel_max(optical_density(px, background=bg)))
        odmax = ndi.gaussian_filter(od, 2.0)  # ink does not bleed
        lo, hi = od_bounds
        try:
            t = float(threshold_otsu(odmax[~artefact])) if (~artefact).any() else hi
        except ValueError:  # a single value
            t = hi
        t = min(max(t, lo), hi)
        # hysteresis: pale tissue (IHC stroma, faint eosin) above ``low_ratio`` of the
        # threshold counts where it touches clearly stained tissue; glass does not
        # reach it, and the soft edge of a ruler, label or pen stroke is no tissue
        strong = (odmax > t) & ~artefact
        near_artefact = ndi.binary_dilation(artefact, iterations=2)
        weak = (odmax > low_ratio * t) & ~near_artefact
        lab, n = ndi.label(weak)
        keep = np.zeros(n + 1, bool)
        keep[np.unique(lab[strong])] = True
        keep[0] = False
        # pale regions (5 pixels across or more), not a rim of soft edge round dense tissue
        pale = disk_opening(keep[lab] & ~strong, 2)
        cand = disk_opening(strong | pale, 1)
    cand = remove_small_objects(cand, max_size=size - 1)
    cand = remove_small_holes(cand, max_size=holes)
    return np.asarray(cand & ~artefact)


def _fluorescence_tissue(px: npt.NDArray[np.int16], dark: float) -> BoolArray:
    """Tissue of a dark-field image: stained objects and tissue autofluorescence.

    The brightest channel is smoothed (sigma ``min(rows, cols) / 150``, at least
    1.5 pixels); tissue is brighter than the dark field ``dark`` by more than 3
    grey levels (autofluorescence); holes are filled later.
    """
    from scipy import ndimage as ndi

    value = channel_max(px).astype(np.float32)
    sigma = max(1.5, min(px.shape[:2]) / 150)
    smooth = np.log1p(ndi.gaussian_filter(value, sigma))
    floor = float(np.log1p(dark + 3.0))
    return np.asarray(smooth > floor)
