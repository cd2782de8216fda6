"""Tissue and artefact masks from a slide thumbnail (scikit-image), and their layers.

Colour rules
------------
Both H&E stains absorb green light more than red or blue, so in any H&E pixel
red > green and blue > green. Inks, dyes, plastics and paper break that rule:

* green, blue and teal inks and tissue-marking dyes have green >= red;
* yellow, orange or brown things (ruler plastic, labels, glue) have blue < green;
* black ink, printed text and ruler ticks are dark and nearly grey, whereas the
  darkest haematoxylin is still clearly purple.

Tissue is what is clearly coloured (HSV saturation above an Otsu threshold kept
within sensible bounds), minus artefacts, cleaned with a little morphology.

Masks are computed at thumbnail resolution; a mask at downsample ``d`` (its pixel
``(i, j)`` covers level-0 rows ``[i d, (i + 1) d)`` and cols ``[j d, (j + 1) d)``)
is shown over the slide with ``scale = (d, d)`` and ``translate = ((d - 1) / 2,) * 2``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from napari_xai.core.wsi import Slide

__all__ = [
    "ARTEFACT_LABELS",
    "SlideMasks",
    "artefact_labels",
    "artefact_mask",
    "mask_layers",
    "slide_masks",
    "tissue_mask",
]

BoolArray = npt.NDArray[np.bool_]

#: Values of :func:`artefact_labels` and their meaning.
ARTEFACT_LABELS: dict[int, str] = {
    1: "ink or dye (green, blue, teal)",
    2: "dark, grey (black ink, text, ruler ticks)",
    3: "other non-stain colour (yellow, brown: ruler, label)",
}


def _check_rgb(rgb: npt.ArrayLike) -> npt.NDArray[np.int16]:
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[-1] < 3:
        raise ValueError(f"expected an RGB image of shape (rows, cols, 3), got {arr.shape}")
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating) and arr.max(initial=0) <= 1.0:
            arr = arr * 255.0
        arr = np.clip(arr, 0, 255)
    return np.asarray(arr[..., :3], dtype=np.int16)


def _default_radius(shape: tuple[int, ...]) -> int:
    return max(1, int(round(min(shape[:2]) / 300)))


def _disk(radius: int) -> npt.NDArray[np.bool_]:
    from skimage.morphology import disk

    return np.asarray(disk(radius), dtype=bool)


def artefact_labels(
    rgb: npt.ArrayLike,
    *,
    min_chroma: int = 24,
    close_radius: int | None = None,
    min_size: int | None = None,
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

    Returns
    -------
    ndarray of shape (rows, cols), uint8
        0 = none, then the keys of :data:`ARTEFACT_LABELS`.
    """
    from skimage.morphology import closing, remove_small_holes, remove_small_objects

    px = _check_rgb(rgb)
    r, g, b = px[..., 0], px[..., 1], px[..., 2]
    value = px.max(axis=-1)
    chroma = value - px.min(axis=-1)
    radius = _default_radius(px.shape) if close_radius is None else int(close_radius)
    size = max(4, px.shape[0] * px.shape[1] // 50000) if min_size is None else int(min_size)

    # inks and dyes: green above red (green, teal, most blue inks). Blue ink over
    # tissue, with red just above green, looks like (bluish) haematoxylin: missed.
    ink = (g > r + 8) & (chroma >= min_chroma)
    # dark and nearly grey; the darkest haematoxylin stays clearly purple
    dark = ((value < 110) & (10 * chroma < 4 * value)) | ((value < 35) & (10 * chroma < 6 * value))
    other = (b < g - 15) & (r > g - 10) & (chroma >= min_chroma) & ~ink & ~dark

    out = np.zeros(px.shape[:2], np.uint8)
    fp = _disk(radius) if radius > 0 else None
    done = np.zeros(px.shape[:2], bool)
    for value_, raw in ((3, other), (2, dark), (1, ink)):  # later ones win where they overlap
        if not raw.any():
            continue
        m = closing(raw, fp) if fp is not None else raw
        m = remove_small_holes(m, max_size=max(4, 4 * radius * radius))
        m = remove_small_objects(m, max_size=size - 1)
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


def tissue_mask(
    rgb: npt.ArrayLike,
    *,
    artefact: BoolArray | None = None,
    saturation_bounds: tuple[float, float] = (0.06, 0.15),
    min_size: int | None = None,
    hole_size: int | None = None,
) -> BoolArray:
    """Boolean tissue mask of an RGB image (thumbnail) of a slide.

    Parameters
    ----------
    rgb : array of shape (rows, cols, 3)
        uint8 RGB (floats in [0, 1] are accepted).
    artefact : ndarray of shape (rows, cols), bool, optional
        Pixels never counted as tissue; default :func:`artefact_mask` of ``rgb``.
        Pass an all-False array to keep tissue under ink.
    saturation_bounds : tuple of float
        The Otsu threshold on HSV saturation is clipped to these bounds, so that
        an image of only glass or only tissue is still classified sensibly.
    min_size : int, optional
        Tissue pieces smaller than this (pixels) are dropped; default
        ``rows * cols / 20000`` (at least 4).
    hole_size : int, optional
        Holes smaller than this (pixels) are filled; default as ``min_size``.

    Returns
    -------
    ndarray of shape (rows, cols), bool
    """
    from skimage.filters import threshold_otsu
    from skimage.morphology import opening, remove_small_holes, remove_small_objects

    px = _check_rgb(rgb)
    value = px.max(axis=-1).astype(np.float32)
    chroma = value - px.min(axis=-1)
    sat = np.where(value > 0, chroma / np.maximum(value, 1.0), 0.0).astype(np.float32)
    if artefact is None:
        artefact = artefact_mask(px.astype(np.uint8))
    elif artefact.shape != px.shape[:2]:
        raise ValueError(f"artefact mask {artefact.shape} does not match the image {px.shape}")
    lo, hi = saturation_bounds
    try:
        t = float(threshold_otsu(sat[~artefact])) if (~artefact).any() else hi
    except ValueError:  # a single value
        t = hi
    t = min(max(t, lo), hi)
    cand = (sat > t) & ~artefact
    size = max(4, px.shape[0] * px.shape[1] // 20000) if min_size is None else int(min_size)
    holes = size if hole_size is None else int(hole_size)
    cand = opening(cand, _disk(1))
    cand = remove_small_objects(cand, max_size=size - 1)
    cand = remove_small_holes(cand, max_size=holes)
    return np.asarray(cand & ~artefact)


@dataclass(frozen=True)
class SlideMasks:
    """Tissue and artefact masks of a slide at thumbnail resolution.

    Attributes
    ----------
    tissue : ndarray of shape (rows, cols), bool
    artefact : ndarray of shape (rows, cols), bool
    artefact_labels : ndarray of shape (rows, cols), uint8
        Kinds of artefact (:data:`ARTEFACT_LABELS`).
    downsample : float
        Level-0 pixels per mask pixel.
    """

    tissue: BoolArray
    artefact: BoolArray
    artefact_labels: npt.NDArray[np.uint8]
    downsample: float

    @property
    def tissue_fraction(self) -> float:
        """Fraction of the slide's area covered by tissue."""
        return float(self.tissue.mean())


def masks_from_thumbnail(thumb: npt.ArrayLike, downsample: float) -> SlideMasks:
    """Compute :class:`SlideMasks` from a thumbnail taken at ``downsample``.

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
    labels = artefact_labels(thumb)
    artefact = labels > 0
    tissue = tissue_mask(thumb, artefact=artefact)
    return SlideMasks(tissue, artefact, labels, float(downsample))


def slide_masks(slide: Slide, *, max_size: int = 2048) -> SlideMasks:
    """Tissue and artefact masks of an open slide, from its thumbnail.

    Parameters
    ----------
    slide : napari_xai.core.wsi.Slide
        The open slide.
    max_size : int
        Longest side of the thumbnail the masks are computed on.

    Returns
    -------
    SlideMasks
        Masks at the thumbnail's downsample.
    """
    thumb, downsample = slide.thumbnail(max_size=max_size)
    return masks_from_thumbnail(thumb, downsample)


def mask_layers(
    masks: SlideMasks, *, name_prefix: str = "slide"
) -> list[tuple[Any, dict[str, Any], str]]:
    """Labels LayerData tuples for the masks, aligned with the slide layer.

    Parameters
    ----------
    masks : SlideMasks
        From :func:`slide_masks`.
    name_prefix : str
        Usually the slide's name; layers are named ``"<prefix> tissue"`` and
        ``"<prefix> artefacts"`` (deterministic: re-runs replace them).

    Returns
    -------
    list of (data, kwargs, "labels")
    """
    from napari_xai.core.layers import mask_to_world

    scale, translate = mask_to_world(masks.downsample)
    common = {"scale": scale, "translate": translate, "blending": "translucent"}
    tissue = (
        masks.tissue.astype(np.uint8),
        {
            **common,
            "name": f"{name_prefix} tissue",
            "opacity": 0.35,
            "colormap": {0: "transparent", 1: "lime", None: "transparent"},
            "metadata": {
                "kind": "tissue_mask",
                "downsample": masks.downsample,
                "tissue_fraction": masks.tissue_fraction,
            },
        },
        "labels",
    )
    artefacts = (
        masks.artefact_labels.astype(np.uint8),
        {
            **common,
            "name": f"{name_prefix} artefacts",
            "opacity": 0.6,
            "colormap": {
                0: "transparent",
                1: "cyan",
                2: "red",
                3: "orange",
                None: "transparent",
            },
            "metadata": {
                "kind": "artefact_mask",
                "downsample": masks.downsample,
                "labels": dict(ARTEFACT_LABELS),
            },
        },
        "labels",
    )
    return [tissue, artefacts]
