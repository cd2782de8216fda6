"""Binary morphology with a disk footprint, as shifted slices of one padded array.

``skimage.morphology.closing(mask, disk(r))`` filters every pixel with the
whole ``(2r + 1)²`` footprint (0.15 s per pass on a 1.6 Mpx thumbnail for
``r = 4``). A disk is a stack of centred rows, row ``dy`` of half-width
``w(dy)``; so the dilation is the OR, over ``dy``, of the row shifted by ``dy``
of the image's running OR over ``2 w(dy) + 1`` columns (the erosion likewise
with AND), built once per width from the image padded by ``r`` (scipy's
``reflect`` border). That is ``4 r`` whole-array ``logical_or`` calls in
place of a footprint filter, and equals scikit-image's result pixel for pixel
(``tests/core/test_masks_morphology.py`` checks it; images not larger than the disk
take scikit-image's path).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["disk_closing", "disk_footprint", "disk_opening"]

BoolArray = npt.NDArray[np.bool_]


def disk_footprint(radius: int) -> BoolArray:
    """Return a boolean disk of ``radius`` pixels (the thumbnail masks' morphology footprint)."""
    from skimage.morphology import disk

    return np.asarray(disk(radius), dtype=bool)


def _disk_filter(mask: npt.ArrayLike, radius: int, *, grow: bool) -> BoolArray:
    """Dilation (``grow``) or erosion of a 2-D boolean mask by :func:`disk_footprint`."""
    img, r = np.asarray(mask, dtype=bool), int(radius)
    op = np.logical_or if grow else np.logical_and
    rows, cols = img.shape
    padded = np.pad(img, r, mode="symmetric")  # scipy's "reflect": the edge pixel repeated
    # running[w]: each pixel's OR (AND) over columns -w..w, central columns only
    running = [padded[:, r : r + cols]]
    for w in range(1, r + 1):
        left, right = padded[:, r - w : r - w + cols], padded[:, r + w : r + w + cols]
        running.append(op(op(running[-1], left), right))
    half_widths = disk_footprint(r).sum(axis=1) // 2  # of rows dy = -r..r
    out = running[half_widths[0]][0:rows].copy()
    for i, w in enumerate(half_widths[1:], start=1):
        op(out, running[w][i : i + rows], out=out)
    return np.asarray(out, dtype=bool)


def _fits(mask: npt.ArrayLike, radius: int) -> bool:
    """Whether the fast path applies: a 2-D image wider and taller than the disk."""
    shape = np.shape(mask)
    return len(shape) == 2 and min(shape) > 2 * int(radius)  # tiny images reflect otherwise


def disk_closing(mask: npt.ArrayLike, radius: int) -> BoolArray:
    """``skimage.morphology.closing(mask, disk(radius))`` of a boolean mask, fast."""
    if not _fits(mask, radius):
        from skimage.morphology import closing, disk

        return np.asarray(closing(np.asarray(mask, dtype=bool), disk(radius)), dtype=bool)
    return _disk_filter(_disk_filter(mask, radius, grow=True), radius, grow=False)


def disk_opening(mask: npt.ArrayLike, radius: int) -> BoolArray:
    """``skimage.morphology.opening(mask, disk(radius))`` of a boolean mask, fast."""
    if not _fits(mask, radius):
        from skimage.morphology import disk, opening

        return np.asarray(opening(np.asarray(mask, dtype=bool), disk(radius)), dtype=bool)
    return _disk_filter(_disk_filter(mask, radius, grow=False), radius, grow=True)
