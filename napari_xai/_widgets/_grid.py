"""The tile-grid boxes of the Score, Explain and Batch widgets, and the grid they give.

One spelling of each box (label, range, step, tooltip; the starting values
are :class:`~napari_xai.core.options.GridOptions`' defaults) and one reading of
them back (:func:`grid_options`; a slide mpp of 0 means "from the file").
"""

from __future__ import annotations

from typing import Any

from magicgui.widgets import FloatSpinBox

from napari_xai.core.options import DEFAULT_MIN_TISSUE, GridOptions

__all__ = ["box_mpp", "grid_options", "min_tissue_box", "mpp_box", "overlap_box"]


def overlap_box() -> FloatSpinBox:
    """Make the "overlap" box: tile overlap as a fraction of the tile."""
    return FloatSpinBox(label="overlap", value=0.0, min=0.0, max=0.9, step=0.05)


def min_tissue_box() -> FloatSpinBox:
    """Make the "min tissue" box: the tissue fraction a tile needs to be scored."""
    return FloatSpinBox(
        label="min tissue", value=DEFAULT_MIN_TISSUE, min=0.0, max=1.0, step=0.05,
        tooltip="Keep tiles whose tissue fraction is at least this",
    )  # fmt: skip


def mpp_box() -> FloatSpinBox:
    """Make the "slide mpp" box: level-0 µm/px, 0 for the file's own."""
    return FloatSpinBox(
        label="slide mpp", value=0.0, min=0.0, max=50.0, step=0.01,
        tooltip="Level-0 µm/px; 0 = from the file (needed when the file does not say)",
    )  # fmt: skip


def box_mpp(box: Any) -> float | None:
    """Return the µm/px an :func:`mpp_box` asks for: None (the file's) when it shows 0."""
    return float(box.value) or None


def grid_options(*, overlap: Any, mpp: Any, min_tissue: Any = None) -> GridOptions:
    """Return the :class:`~napari_xai.core.options.GridOptions` the boxes ask for.

    Parameters
    ----------
    overlap, mpp : FloatSpinBox
        An :func:`overlap_box` and an :func:`mpp_box`.
    min_tissue : FloatSpinBox, optional
        A :func:`min_tissue_box`; without it, the default threshold.

    Raises
    ------
    ValueError
        When a value is out of range (as GridOptions says).
    """
    return GridOptions(
        overlap=float(overlap.value),
        mpp=box_mpp(mpp),
        min_tissue=DEFAULT_MIN_TISSUE if min_tissue is None else float(min_tissue.value),
    )
