"""The masks of a slide: tissue and artefact classes at thumbnail resolution.

Masks are computed at thumbnail resolution; a mask at downsample ``d`` (its pixel
``(i, j)`` covers level-0 rows ``[i d, (i + 1) d)`` and cols ``[j d, (j + 1) d)``)
is shown over the slide with ``scale = (d, d)`` and ``translate = ((d - 1) / 2,) * 2``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from napari_xai.core.masks.artefacts import artefact_labels, mark_mask
from napari_xai.core.masks.background import BoolArray, estimate_background, guess_stain
from napari_xai.core.masks.focus import BLUR_LABEL, FocusOptions, blur_mask, focus_labels
from napari_xai.core.masks.folds import FOLD_LABEL, fold_mask
from napari_xai.core.masks.strokes import StrokeOptions, stroke_labels
from napari_xai.core.masks.tissue import tissue_mask
from napari_xai.core.options import MASK_SIZE

if TYPE_CHECKING:
    from napari_xai.core.wsi import Slide

__all__ = ["MASK_SIZE", "SlideMasks", "masks_from_thumbnail", "merge_strokes", "slide_masks"]


@dataclass(frozen=True)
class SlideMasks:
    """Tissue and artefact masks of a slide at thumbnail resolution.

    Attributes
    ----------
    tissue : ndarray of shape (rows, cols), bool
    artefact : ndarray of shape (rows, cols), bool
        Marks on the slide (ink, dyes, dark marks, labels): the labels other
        than the tissue-quality ones (:func:`mark_mask`). Tiles are flagged and
        the audit looks for shortcuts on these.
    artefact_labels : ndarray of shape (rows, cols), uint8
        Kinds of artefact (:data:`ARTEFACT_LABELS`), out-of-focus tissue and
        folds (:data:`QUALITY_LABELS`, still tissue) included.
    downsample : float
        Level-0 pixels per mask pixel.
    modality : str
        ``"brightfield"`` or ``"fluorescence"`` (:func:`estimate_background`).
    stain : str
        ``"H&E"``, ``"IHC"``, ``"fluorescence"`` or ``"unknown"`` (:func:`guess_stain`).
    warnings : tuple of str
        What a user should know about these masks (no tissue found, ...).
    """

    tissue: BoolArray
    artefact: BoolArray
    artefact_labels: npt.NDArray[np.uint8]
    downsample: float
    modality: str = "brightfield"
    stain: str = "unknown"
    warnings: tuple[str, ...] = ()

    @property
    def tissue_fraction(self) -> float:
        """Fraction of the slide's area covered by tissue."""
        return float(self.tissue.mean())


def masks_from_thumbnail(thumb: npt.ArrayLike, downsample: float) -> SlideMasks:
    """Compute :class:`SlideMasks` from a thumbnail taken at ``downsample``.

    Tissue folds (:func:`~napari_xai.core.masks.folds.fold_mask`) are found on
    the thumbnail; out-of-focus tissue (:func:`~napari_xai.core.masks.focus.blur_mask`)
    only where the thumbnail is fine enough to show focus (downsample at most
    twice :attr:`FocusOptions.downsample`: tiles, small slides). Both are
    labelled where no mark is, and stay tissue.

    Parameters
    ----------
    thumb : array of shape (rows, cols, 3)
        uint8 RGB thumbnail.
    downsample : float
        Level-0 pixels per thumbnail pixel.

    Returns
    -------
    SlideMasks
    """
    bg = estimate_background(thumb)
    labels = artefact_labels(thumb, background=bg)
    artefact = labels > 0
    tissue = tissue_mask(thumb, artefact=artefact, background=bg)
    if bg.modality == "brightfield" and tissue.any():
        ds = float(downsample)
        labels[fold_mask(thumb, tissue, downsample=ds, background=bg) & ~artefact] = FOLD_LABEL
        if ds <= 2 * FocusOptions().downsample:
            blur = blur_mask(thumb, downsample=ds, background=bg) & tissue & (labels == 0)
            labels[blur] = BLUR_LABEL
    stain = guess_stain(thumb, tissue, background=bg)
    warnings: list[str] = []
    if not tissue.any():
        warnings.append("no tissue found")
    if bg.modality == "brightfield" and not bg.estimated:
        warnings.append("no bare glass seen: optical density relative to a default white")
    return SlideMasks(
        tissue, artefact, labels, float(downsample), bg.modality, stain, tuple(warnings)
    )


def slide_masks(
    slide: Slide,
    *,
    max_size: int = MASK_SIZE,
    strokes: bool = False,
    thumbnail: tuple[npt.NDArray[np.uint8], float] | None = None,
) -> SlideMasks:
    """Tissue and artefact masks of an open slide, from its thumbnail.

    Parameters
    ----------
    slide : napari_xai.core.wsi.Slide
        The open slide.
    max_size : int
        Longest side of the thumbnail the masks are computed on.
    strokes : bool
        Also look for thin ink strokes over tissue at stroke resolution
        (:func:`stroke_labels`, lazily over the pyramid) and add them to the
        artefact labels (where the thumbnail pass found none) and remove them
        from the tissue. Not when the thumbnail itself is at stroke resolution
        (its downsample at most :attr:`StrokeOptions.downsample`): the
        thumbnail pass has seen every pixel the stroke pass would. With it,
        out-of-focus tissue is looked for at focus resolution
        (:func:`~napari_xai.core.masks.focus.focus_labels`, lazily, tissue chunks
        only) where the thumbnail is too coarse to show it.
    thumbnail : (ndarray, float), optional
        ``slide.thumbnail(max_size=max_size)`` when the caller has already
        read it (QC writes it out): not read again.

    Returns
    -------
    SlideMasks
        Masks at the thumbnail's downsample.
    """
    thumb, downsample = slide.thumbnail(max_size=max_size) if thumbnail is None else thumbnail
    masks = masks_from_thumbnail(thumb, downsample)
    if not strokes or masks.modality == "fluorescence":
        return masks
    bg = estimate_background(thumb)
    if masks.downsample > 2 * FocusOptions().downsample:  # the thumbnail cannot show focus
        blur = focus_labels(slide, masks, background=bg) > 0
        labels = masks.artefact_labels.copy()
        labels[blur & (labels == 0)] = BLUR_LABEL
        masks = replace(masks, artefact_labels=labels)
    if masks.downsample <= StrokeOptions().downsample * 1.05:  # pyramid downsamples are inexact
        return masks
    return merge_strokes(masks, stroke_labels(slide, masks, background=bg))


def merge_strokes(masks: SlideMasks, strokes: npt.NDArray[np.uint8]) -> SlideMasks:
    """Add stroke-pass labels to the thumbnail masks.

    Thumbnail marks win where both found one; a stroke over out-of-focus or
    folded tissue is a mark (it replaces that label and leaves the tissue).
    """
    labels = masks.artefact_labels.copy()
    new = (strokes > 0) & ~mark_mask(labels)
    labels[new] = strokes[new]
    return replace(
        masks, tissue=masks.tissue & ~new, artefact=mark_mask(labels), artefact_labels=labels
    )
