"""Tissue and artefact masks of a slide (scikit-image), one algorithm per module.

* :mod:`~napari_xai.core.masks.background`: glass or dark field, optical density, stain;
* :mod:`~napari_xai.core.masks.artefacts`: thumbnail ink, dye, dark-mark and label classes;
* :mod:`~napari_xai.core.masks.morphology`: the thumbnail masks' disk closing and opening, fast;
* :mod:`~napari_xai.core.masks.tissue`: the tissue mask;
* :mod:`~napari_xai.core.masks.passes`: reading tissue chunks finer than the thumbnail;
* :mod:`~napari_xai.core.masks.strokes`: thin ink strokes at stroke resolution;
* :mod:`~napari_xai.core.masks.focus`: out-of-focus tissue at focus resolution;
* :mod:`~napari_xai.core.masks.folds`: tissue folds on the thumbnail;
* :mod:`~napari_xai.core.masks.slide`: :class:`SlideMasks` of a slide and their assembly;
* :mod:`~napari_xai.core.masks.store`: masks in a result or QC folder, reused across stages.

Their napari Labels layers are built by :func:`napari_xai.core.layers.masks.mask_layers`.

The public names are importable from this package.
"""

from __future__ import annotations

from napari_xai.core.masks.artefacts import (
    ARTEFACT_LABELS,
    ARTEFACT_NAMES,
    QUALITY_LABELS,
    artefact_labels,
    artefact_mask,
    mark_mask,
)
from napari_xai.core.masks.background import (
    STAIN_VECTORS,
    Background,
    estimate_background,
    guess_stain,
    optical_density,
)
from napari_xai.core.masks.focus import FocusOptions, FocusStats, blur_mask, focus_labels
from napari_xai.core.masks.folds import FoldOptions, fold_mask
from napari_xai.core.masks.slide import (
    MASK_SIZE,
    SlideMasks,
    masks_from_thumbnail,
    merge_strokes,
    slide_masks,
)
from napari_xai.core.masks.store import (
    cached_slide_masks,
    masks_key,
    read_masks,
    write_masks,
)
from napari_xai.core.masks.strokes import (
    StrokeOptions,
    StrokeStats,
    fine_ink_labels,
    stroke_labels,
    tile_ink_labels,
)
from napari_xai.core.masks.tissue import tissue_mask

__all__ = [
    "ARTEFACT_LABELS",
    "ARTEFACT_NAMES",
    "MASK_SIZE",
    "QUALITY_LABELS",
    "STAIN_VECTORS",
    "Background",
    "FocusOptions",
    "FocusStats",
    "FoldOptions",
    "SlideMasks",
    "StrokeOptions",
    "StrokeStats",
    "artefact_labels",
    "artefact_mask",
    "blur_mask",
    "cached_slide_masks",
    "estimate_background",
    "fine_ink_labels",
    "focus_labels",
    "fold_mask",
    "guess_stain",
    "masks_from_thumbnail",
    "mark_mask",
    "masks_key",
    "merge_strokes",
    "optical_density",
    "read_masks",
    "slide_masks",
    "stroke_labels",
    "tile_ink_labels",
    "tissue_mask",
    "write_masks",
]
