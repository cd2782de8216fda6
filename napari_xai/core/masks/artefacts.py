"""Artefact classes (inks, dyes, dark marks, rulers, labels) of a slide thumbnail.

Colour rules
------------
Both H&E stains absorb green light more than red or blue, so in any H&E pixel
red > green and blue > green. Inks, dyes, plastics and paper break that rule:

* green, blue and teal inks and tissue-marking dyes have green >= red;
* yellow, orange or brown things (ruler plastic, labels, glue) have blue < green;
* black ink, printed text and ruler ticks are dark and nearly grey, whereas the
  darkest haematoxylin is still clearly purple.

In optical density (:mod:`napari_xai.core.masks.background`), every stain
absorbs green at least as much as red (haematoxylin, eosin, DAB); blue, green and
teal inks absorb red most (``OD_R > 1.2 OD_G``), which the blue haematoxylin
counterstain of IHC does not (RGB rules such as ``green > red`` do). Red ink
absorbs green and blue but almost no red (``OD_B > 6 OD_R``), which eosin, DAB
and all but the odd red blood cell do not (isolated small objects are dropped).

Fluorescence images get no artefact labels (no colour rule applies to them).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from napari_xai.core.masks.background import (
    Background,
    BoolArray,
    brown_fraction,
    channel_max,
    channel_min,
    optical_density,
    rgb_and_background,
)
from napari_xai.core.masks.morphology import disk_closing

__all__ = [
    "ARTEFACT_LABELS",
    "BLUR_LABEL",
    "FOLD_LABEL",
    "ARTEFACT_NAMES",
    "QUALITY_LABELS",
    "artefact_labels",
    "artefact_mask",
    "mark_mask",
]

#: Label of out-of-focus tissue (:mod:`~napari_xai.core.masks.focus`).
BLUR_LABEL = 5
#: Label of tissue folds (:mod:`~napari_xai.core.masks.folds`).
FOLD_LABEL = 6

#: Values of :func:`artefact_labels` and their meaning.
ARTEFACT_LABELS: dict[int, str] = {
    1: "ink or dye (green, blue, teal)",
    2: "dark, grey (black ink, text, ruler ticks)",
    3: "other non-stain colour (yellow, brown: ruler, label)",
    4: "red ink",
    BLUR_LABEL: "out of focus (blurred tissue)",
    FOLD_LABEL: "tissue fold (two layers)",
}

#: Short names of the artefact classes (for reports and legends).
ARTEFACT_NAMES: dict[int, str] = {
    1: "ink",
    2: "dark",
    3: "other",
    4: "red_ink",
    BLUR_LABEL: "blur",
    FOLD_LABEL: "fold",
}

#: Labels that are the quality of the tissue itself, not marks on the slide
#: (:mod:`~napari_xai.core.masks.focus`, :mod:`~napari_xai.core.masks.folds`): their
#: pixels stay tissue and are left out of :func:`mark_mask`, the artefact mask that
#: tiles, the audit's region map and its shortcut candidates use.
QUALITY_LABELS: frozenset[int] = frozenset({BLUR_LABEL, FOLD_LABEL})


def mark_mask(labels: npt.ArrayLike) -> BoolArray:
    """Select the marks on the slide (ink, dyes, dark marks, labels): not 0, not quality labels."""
    lab = np.asarray(labels)
    return np.asarray((lab > 0) & ~np.isin(lab, sorted(QUALITY_LABELS)))


def _default_radius(shape: tuple[int, ...]) -> int:
    return max(1, int(round(min(shape[:2]) / 300)))


def artefact_labels(
    rgb: npt.ArrayLike,
    *,
    min_chroma: int = 24,
    close_radius: int | None = None,
    min_size: int | None = None,
    background: Background | None = None,
) -> npt.NDArray[np.uint8]:
    """Label non-stain objects in an RGB image (thumbnail) of a slide.

    Parameters
    ----------
    rgb : array of shape (rows, cols, 3)
        uint8 RGB (floats in [0, 1] are accepted).
    min_chroma : int
        Minimum ``max(RGB) - min(RGB)`` for a pixel to count as coloured ink.
    close_radius : int, optional
        Radius (pixels) of the closing that joins strokes, letters and ticks
        into objects; default ``min(rows, cols) / 300`` (at least 1).
    min_size : int, optional
        Objects smaller than this (pixels) are dropped; default
        ``rows * cols / 50000`` (at least 4).
    background : Background, optional
        Default :func:`estimate_background` of ``rgb``. Fluorescence images get
        no artefact labels (colour rules do not apply to them).

    Returns
    -------
    ndarray of shape (rows, cols), uint8
        0 = none, then the keys of :data:`ARTEFACT_LABELS`.
    """
    from skimage.morphology import remove_small_holes, remove_small_objects

    px, bg = rgb_and_background(rgb, background)
    if bg.modality == "fluorescence":
        return np.zeros(px.shape[:2], np.uint8)
    r, g, b = px[..., 0], px[..., 1], px[..., 2]
    od = optical_density(px, background=bg)
    od_r, od_g, od_b = od[..., 0], od[..., 1], od[..., 2]
    value = channel_max(px)
    chroma = value - channel_min(px)
    radius = _default_radius(px.shape) if close_radius is None else int(close_radius)
    size = max(4, px.shape[0] * px.shape[1] // 50000) if min_size is None else int(min_size)

    # inks and dyes: green above red (green, teal, most blue inks). Blue ink over
    # tissue, with red just above green, looks like (bluish) haematoxylin: missed.
    # In OD, blue, green and teal inks absorb red most; every stain (haematoxylin,
    # eosin, DAB) absorbs green at least as much as red.
    ink = (od_r > 1.2 * od_g) & (od_r > 0.25) & (chroma >= min_chroma)
    dab = brown_fraction(od) >= 0.1
    if not dab:
        # no blue IHC counterstain: green above red in RGB also flags pale ink on glass
        ink |= (g > r + 8) & (chroma >= min_chroma)
    # red ink absorbs green and blue, almost no red (eosin lets blue through)
    # (and, like any ink, some red: nothing transmits more light than the glass)
    # and blue nearly as much as green (real pen OD_B / OD_G 0.85-1.0), where eosin
    # absorbs about half as much blue as green: red ink over tissue (more OD_R) is kept
    red = ((od_b > 6.0 * od_r) | ((od_b > 0.75 * od_g) & (od_g > 3.0 * od_r))) & (od_r > 0.015)
    red &= (od_b > 0.35) & (od_g > 0.35)
    red &= chroma >= 2 * min_chroma
    # dark and nearly grey; the darkest haematoxylin stays clearly purple
    dark = ((value < 110) & (10 * chroma < 4 * value)) | ((value < 35) & (10 * chroma < 6 * value))
    od_max = channel_max(od)
    # grey in OD too: not dark DAB, nor the darkest (purple: OD_G > OD_R) haematoxylin
    dark &= ((od_max - channel_min(od)) < 0.35 * od_max) & (od_g - od_r < 0.12 * od_max)
    # pale yellow plastic and paper absorb mostly blue, far more than DAB (OD_B / OD_G ~ 1.4)
    other = (b < g - 15) & (r > g - 10) & (chroma >= min_chroma) & ~ink & ~dark & ~red
    if dab:  # light DAB is yellow-brown too: keep only what absorbs mostly blue
        other &= od_b > 2.2 * od_g

    out = np.zeros(px.shape[:2], np.uint8)
    done = np.zeros(px.shape[:2], bool)
    # later ones win where they overlap
    for value_, raw in ((3, other), (4, red), (2, dark), (1, ink)):
        if not raw.any():
            continue
        m = disk_closing(raw, radius) if radius > 0 else raw
        m = remove_small_holes(m, max_size=max(4, 4 * radius * radius))
        # red ink: red blood cells are small isolated objects; a stroke is not
        m = remove_small_objects(
            m, max_size=(4 * size if value_ == 4 or (dab and value_ == 3) else size) - 1
        )
        if value_ == 2:
            m = _fill_text_lines(m, exclude=done)
        out[m] = value_
        done |= m
    return out


def _fill_text_lines(mask: BoolArray, *, exclude: BoolArray, max_glyphs: int = 2000) -> BoolArray:
    """Grow lines of text (rows of several dark glyphs) to their label's rectangle.

    Printed labels are dark text on white paper that looks like glass; the paper
    around a line of text is taken as part of the label. Glyphs side by side
    (overlapping rows, gaps under a glyph's height) are chained into lines; a
    line of at least three glyphs, at least twice as wide as high, that does not
    touch ``exclude`` (e.g. a ruler's bar around its ticks) is filled with a
    margin.
    """
    from skimage.measure import label, regionprops

    glyphs = label(mask)
    props = regionprops(glyphs)
    if not 3 <= len(props) <= max_glyphs:
        return mask
    boxes = np.array([p.bbox for p in props], float)  # r0, c0, r1, c1
    heights = boxes[:, 2] - boxes[:, 0]
    parent = list(range(len(props)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    order = np.argsort(boxes[:, 1])
    for n, i in enumerate(order):
        for j in order[n + 1 :]:
            gap = boxes[j, 1] - boxes[i, 3]
            h = max(heights[i], heights[j])
            if gap > 1.2 * h:
                break  # sorted by left edge: later glyphs are further right
            overlap = min(boxes[i, 2], boxes[j, 2]) - max(boxes[i, 0], boxes[j, 0])
            if overlap > 0.5 * min(heights[i], heights[j]) and 0.5 < heights[i] / heights[j] < 2:
                parent[find(int(i))] = find(int(j))
    groups: dict[int, list[int]] = {}
    for i in range(len(props)):
        groups.setdefault(find(i), []).append(i)
    out = mask.copy()
    for members in groups.values():
        if len(members) < 3:
            continue
        r0, c0 = boxes[members, 0].min(), boxes[members, 1].min()
        r1, c1 = boxes[members, 2].max(), boxes[members, 3].max()
        h, w = r1 - r0, c1 - c0
        if h < 3 or w < 2 * h:
            continue
        m = 0.3 * h
        rs = slice(int(max(0, r0 - m)), int(r1 + m))
        cs = slice(int(max(0, c0 - m)), int(c1 + m))
        if exclude[rs, cs].any():
            continue
        out[rs, cs] = True
    return out


def artefact_mask(rgb: npt.ArrayLike, **kwargs: Any) -> BoolArray:
    """Boolean mask of artefacts (ink, dyes, dark marks, rulers, labels) in an RGB image.

    Parameters
    ----------
    rgb : array of shape (rows, cols, 3)
        uint8 RGB thumbnail of a slide.
    **kwargs
        Passed to :func:`artefact_labels`.

    Returns
    -------
    ndarray of shape (rows, cols), bool
    """
    return np.asarray(artefact_labels(rgb, **kwargs) > 0)
