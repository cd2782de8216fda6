"""Tissue and artefact masks from a slide thumbnail (scikit-image), and their layers.

Colour rules
------------
Both H&E stains absorb green light more than red or blue, so in any H&E pixel
red > green and blue > green. Inks, dyes, plastics and paper break that rule:

* green, blue and teal inks and tissue-marking dyes have green >= red;
* yellow, orange or brown things (ruler plastic, labels, glue) have blue < green;
* black ink, printed text and ruler ticks are dark and nearly grey, whereas the
  darkest haematoxylin is still clearly purple.

Optical density (brightfield)
-----------------------------
The glass (background light) is estimated from the image itself
(:func:`estimate_background`); ``OD = -log10(I / glass)`` per channel. Tissue is
where the largest channel OD exceeds an Otsu threshold kept within sensible
bounds, so that pale IHC counterstain, faint eosin and grey tissue count, and
glass does not, whatever the scanner's white balance. In OD, every stain
absorbs green at least as much as red (haematoxylin, eosin, DAB); blue, green and
teal inks absorb red most (``OD_R > 1.2 OD_G``), which the blue haematoxylin
counterstain of IHC does not (RGB rules such as ``green > red`` do). Red ink
absorbs green and blue but almost no red (``OD_B > 6 OD_R``), which eosin, DAB
and all but the odd red blood cell do not (isolated small objects are dropped).

Fluorescence
------------
A dark background (most of the image near black) is detected as fluorescence;
tissue is where stained objects (nuclei) are dense, from a smoothed foreground.
No colour rule applies to it, so no ink is looked for.

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
    "Background",
    "estimate_background",
    "guess_stain",
    "SlideMasks",
    "artefact_labels",
    "artefact_mask",
    "fine_ink_labels",
    "mask_layers",
    "merge_strokes",
    "slide_masks",
    "StrokeOptions",
    "StrokeStats",
    "stroke_labels",
    "tissue_mask",
]

BoolArray = npt.NDArray[np.bool_]

#: Values of :func:`artefact_labels` and their meaning.
ARTEFACT_LABELS: dict[int, str] = {
    1: "ink or dye (green, blue, teal)",
    2: "dark, grey (black ink, text, ruler ticks)",
    3: "other non-stain colour (yellow, brown: ruler, label)",
    4: "red ink",
}

#: Short names of the artefact classes (for reports and legends).
ARTEFACT_NAMES: dict[int, str] = {1: "ink", 2: "dark", 3: "other", 4: "red_ink"}

#: Optical-density unit vectors (R, G, B) of common brightfield stains.
STAIN_VECTORS: dict[str, tuple[float, float, float]] = {
    "haematoxylin": (0.65, 0.70, 0.29),
    "eosin": (0.07, 0.99, 0.11),
    "dab": (0.27, 0.57, 0.78),
}


@dataclass(frozen=True)
class Background:
    """What the empty part of a slide looks like.

    Attributes
    ----------
    modality : str
        ``"brightfield"`` (light glass) or ``"fluorescence"`` (dark background).
    level : tuple of float
        RGB of the glass (brightfield) or of the dark field (fluorescence).
    estimated : bool
        False when the image showed no usable background and a default was used.
    """

    modality: str
    level: tuple[float, float, float]
    estimated: bool = True


_DEFAULT_GLASS = (242.0, 242.0, 242.0)


def estimate_background(rgb: npt.ArrayLike) -> Background:
    """Estimate the background of a slide image and whether it is fluorescence.

    Parameters
    ----------
    rgb : array of shape (rows, cols, 3)
        uint8 RGB thumbnail or tile.

    Returns
    -------
    Background
        Fluorescence when most of the image is near black (a quarter of the
        pixels below 40 and the median below 80 in their brightest channel);
        otherwise brightfield, with the glass taken as the per-channel median of
        the brightest 2% of pixels when those are nearly grey and bright, else a
        default white (242).
    """
    px = _check_rgb(rgb).reshape(-1, 3)
    if px.shape[0] > 400_000:  # a sample is plenty for percentiles
        px = px[:: px.shape[0] // 400_000]
    value = px.max(axis=-1)
    if np.percentile(value, 25) < 40 and np.median(value) < 80:
        dark = px[value <= np.percentile(value, 5)]
        return Background("fluorescence", _rgb3(np.median(dark, axis=0)))
    brightness = px.mean(axis=-1)
    top = px[brightness >= np.percentile(brightness, 98)]
    level = np.median(top, axis=0).astype(float)
    chroma = float(level.max() - level.min())
    if level.min() < 190 or chroma > 15:
        return Background("brightfield", _DEFAULT_GLASS, estimated=False)
    return Background("brightfield", _rgb3(level))


def _rgb3(v: npt.ArrayLike) -> tuple[float, float, float]:
    r, g, b = (float(x) for x in np.asarray(v).ravel()[:3])
    return (r, g, b)


def optical_density(
    rgb: npt.ArrayLike, *, background: Background | None = None
) -> npt.NDArray[np.float32]:
    """Per-channel optical density ``-log10(I / glass)`` (>= 0) of a brightfield image.

    Computed through a 256-entry lookup table per channel (no per-pixel log).
    """
    px = _check_rgb(rgb)
    bg = estimate_background(px.astype(np.uint8)) if background is None else background
    lut = _od_table(bg)
    od = np.empty(px.shape, np.float32)
    for c in range(3):
        od[..., c] = lut[c][px[..., c]]
    return od


def _od_table(bg: Background) -> npt.NDArray[np.float32]:
    """Optical density of each uint8 value (rows: R, G, B) against the glass of ``bg``."""
    level = np.asarray(bg.level, np.float32) if bg.modality == "brightfield" else np.full(3, 242.0)
    values = np.maximum(np.arange(256, dtype=np.float32), 1.0)
    od = -np.log10(values[None, :] / np.maximum(level, 1.0)[:, None])
    return np.asarray(np.maximum(od, 0.0), dtype=np.float32)


def _brown_fraction(od: npt.NDArray[np.float32]) -> float:
    """Fraction of clearly stained pixels that are brown (DAB: ``OD_B > 1.1 OD_G > OD_R``)."""
    flat = od.reshape(-1, 3)
    if flat.shape[0] > 200_000:
        flat = flat[:: flat.shape[0] // 200_000]
    flat = flat[np.linalg.norm(flat, axis=-1) > 0.15]
    if flat.shape[0] < 20:
        return 0.0
    return float(np.mean((flat[:, 2] > 1.1 * flat[:, 1]) & (flat[:, 0] < flat[:, 1])))


def guess_stain(
    rgb: npt.ArrayLike, tissue: BoolArray, *, background: Background | None = None
) -> str:
    """Guess the stain of a slide from its tissue pixels.

    Returns
    -------
    str
        ``"fluorescence"``; ``"IHC"`` when at least 10% of the stained tissue
        pixels are brown (DAB: ``OD_B > 1.1 OD_G > OD_R``) and more than are pink
        (eosin: ``OD_G > 2.5 OD_R``); else ``"H&E"`` (any brightfield stain
        without a brown chromogen); ``"unknown"`` when there is too little tissue.
    """
    bg = estimate_background(rgb) if background is None else background
    if bg.modality == "fluorescence":
        return "fluorescence"
    od = optical_density(rgb, background=bg)[tissue]
    norm = np.linalg.norm(od, axis=-1)
    od = od[norm > 0.15]
    if od.shape[0] < 20:
        return "unknown"
    # DAB is brown: it absorbs blue more than green, and green more than red;
    # haematoxylin and eosin absorb green most.
    brown = _brown_fraction(od)
    pink = float(np.mean(od[:, 1] > 2.5 * od[:, 0]))
    if brown >= 0.1 and brown > pink:
        return "IHC"
    return "H&E"


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
    from skimage.morphology import closing, remove_small_holes, remove_small_objects

    px = _check_rgb(rgb)
    bg = estimate_background(px.astype(np.uint8)) if background is None else background
    if bg.modality == "fluorescence":
        return np.zeros(px.shape[:2], np.uint8)
    r, g, b = px[..., 0], px[..., 1], px[..., 2]
    od = optical_density(px, background=bg)
    od_r, od_g, od_b = od[..., 0], od[..., 1], od[..., 2]
    value = px.max(axis=-1)
    chroma = value - px.min(axis=-1)
    radius = _default_radius(px.shape) if close_radius is None else int(close_radius)
    size = max(4, px.shape[0] * px.shape[1] // 50000) if min_size is None else int(min_size)

    # inks and dyes: green above red (green, teal, most blue inks). Blue ink over
    # tissue, with red just above green, looks like (bluish) haematoxylin: missed.
    # In OD, blue, green and teal inks absorb red most; every stain (haematoxylin,
    # eosin, DAB) absorbs green at least as much as red.
    ink = (od_r > 1.2 * od_g) & (od_r > 0.25) & (chroma >= min_chroma)
    dab = _brown_fraction(od) >= 0.1
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
    od_max = od.max(axis=-1)
    # grey in OD too: not dark DAB, nor the darkest (purple: OD_G > OD_R) haematoxylin
    dark &= ((od_max - od.min(axis=-1)) < 0.35 * od_max) & (od_g - od_r < 0.12 * od_max)
    # pale yellow plastic and paper absorb mostly blue, far more than DAB (OD_B / OD_G ~ 1.4)
    other = (b < g - 15) & (r > g - 10) & (chroma >= min_chroma) & ~ink & ~dark & ~red
    if dab:  # light DAB is yellow-brown too: keep only what absorbs mostly blue
        other &= od_b > 2.2 * od_g

    out = np.zeros(px.shape[:2], np.uint8)
    fp = _disk(radius) if radius > 0 else None
    done = np.zeros(px.shape[:2], bool)
    # later ones win where they overlap
    for value_, raw in ((3, other), (4, red), (2, dark), (1, ink)):
        if not raw.any():
            continue
        m = closing(raw, fp) if fp is not None else raw
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


def tissue_mask(
    rgb: npt.ArrayLike,
    *,
    artefact: BoolArray | None = None,
    od_bounds: tuple[float, float] = (0.025, 0.035),
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
    from skimage.morphology import opening, remove_small_holes, remove_small_objects

    px = _check_rgb(rgb)
    bg = estimate_background(px.astype(np.uint8)) if background is None else background
    if artefact is None:
        artefact = artefact_mask(px.astype(np.uint8), background=bg)
    elif artefact.shape != px.shape[:2]:
        raise ValueError(f"artefact mask {artefact.shape} does not match the image {px.shape}")
    size = max(4, px.shape[0] * px.shape[1] // 20000) if min_size is None else int(min_size)
    holes = 4 * size if hole_size is None else int(hole_size)
    if bg.modality == "fluorescence":
        cand = _fluorescence_tissue(px, max(bg.level))
    else:
        odmax = np.where(
            artefact, 0.0, optical_density(px, background=bg).max(axis=-1)
        )  # ink does not bleed
        odmax = ndi.gaussian_filter(odmax, 2.0)
        lo, hi = od_bounds
        try:
            t = float(threshold_otsu(odmax[~artefact])) if (~artefact).any() else hi
        except ValueError:  # a single value
            t = hi
        t = min(max(t, lo), hi)
        cand = (odmax > t) & ~artefact
        cand = opening(cand, _disk(1))
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

    value = px.max(axis=-1).astype(np.float32)
    sigma = max(1.5, min(px.shape[:2]) / 150)
    smooth = np.log1p(ndi.gaussian_filter(value, sigma))
    floor = float(np.log1p(dark + 3.0))
    return np.asarray(smooth > floor)


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
    stain = guess_stain(thumb, tissue, background=bg)
    warnings: list[str] = []
    if not tissue.any():
        warnings.append("no tissue found")
    if bg.modality == "brightfield" and not bg.estimated:
        warnings.append("no bare glass seen: optical density relative to a default white")
    return SlideMasks(
        tissue, artefact, labels, float(downsample), bg.modality, stain, tuple(warnings)
    )


def slide_masks(slide: Slide, *, max_size: int = 2048, strokes: bool = False) -> SlideMasks:
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
        from the tissue.

    Returns
    -------
    SlideMasks
        Masks at the thumbnail's downsample.
    """
    thumb, downsample = slide.thumbnail(max_size=max_size)
    masks = masks_from_thumbnail(thumb, downsample)
    if not strokes or masks.modality == "fluorescence":
        return masks
    return merge_strokes(masks, stroke_labels(slide, masks, background=estimate_background(thumb)))


def merge_strokes(masks: SlideMasks, strokes: npt.NDArray[np.uint8]) -> SlideMasks:
    """Add stroke-pass labels to the thumbnail masks (thumbnail labels win where both)."""
    from dataclasses import replace

    labels = masks.artefact_labels.copy()
    new = (strokes > 0) & (labels == 0)
    labels[new] = strokes[new]
    return replace(masks, tissue=masks.tissue & ~new, artefact=labels > 0, artefact_labels=labels)


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
    from napari_xai.core.naming import ARTEFACT_COLOURS, ROLE_COLOURS, mask_layer_name

    scale, translate = mask_to_world(masks.downsample)
    common = {"scale": scale, "translate": translate, "blending": "translucent"}
    tissue = (
        masks.tissue.astype(np.uint8),
        {
            **common,
            "name": mask_layer_name(name_prefix, "tissue"),
            "opacity": 0.35,
            "colormap": {0: "transparent", 1: ROLE_COLOURS["tissue"], None: "transparent"},
            "metadata": {
                "kind": "tissue_mask",
                "display": "outline",
                "downsample": masks.downsample,
                "tissue_fraction": masks.tissue_fraction,
            },
        },
        "labels",
    )
    colormap: dict[int | None, Any] = {0: "transparent", None: "transparent"}
    colormap.update({int(k): ARTEFACT_COLOURS[k] for k in ARTEFACT_LABELS})
    artefacts = (
        masks.artefact_labels.astype(np.uint8),
        {
            **common,
            "name": mask_layer_name(name_prefix, "artefacts"),
            "opacity": 0.6,
            "colormap": colormap,
            "metadata": {
                "kind": "artefact_mask",
                "display": "outline",
                "downsample": masks.downsample,
                "labels": dict(ARTEFACT_LABELS),
            },
        },
        "labels",
    )
    return [tissue, artefacts]


def _ink_classes(
    px: npt.NDArray[np.int16], bg: Background, *, cell: int, min_od: float
) -> tuple[BoolArray, BoolArray, BoolArray]:
    """Blue/green, red and black ink candidates from the OD excess over the local stain.

    Semi-transparent ink over tissue adds its own optical density to the
    stain's, so the local stain (:func:`_local_median` over ``cell`` pixel
    cells) is subtracted in OD and the excess is classified: blue, green and
    teal ink absorb red most (``excess_R > 1.2 excess_G`` with a blue share
    unlike haematoxylin's, or ``excess_R > 1.6 excess_G``), red ink absorbs
    green and blue but hardly red (``excess_B, excess_G > 3 excess_R``; and
    unlike eosin, blue nearly as much as green: ``excess_B > 0.7 excess_G``), black
    ink absorbs all three alike. Nuclei (haematoxylin) and DAB excess absorb
    green at least as much as red, and are left alone.
    """
    lut = _od_table(bg)
    local = _local_median(optical_density(px, background=bg), cell=cell)
    ex_r, ex_g, ex_b = (np.maximum(lut[c][px[..., c]] - local[..., c], 0.0) for c in range(3))
    ex_max = np.maximum(np.maximum(ex_r, ex_g), ex_b)
    ex_min = np.minimum(np.minimum(ex_r, ex_g), ex_b)
    strong = ex_max > min_od
    # navy/blue ink lets blue through (haematoxylin, even a blue one, absorbs some blue);
    # green and teal ink absorb red far more than green
    # (haematoxylin's excess has OD_B / OD_R ~ 0.4-0.55: navy ink is below, green above)
    hue_ok = (ex_b < 0.4 * ex_r) | (ex_b > 0.55 * ex_r)
    blue = strong & (((ex_r > 1.2 * ex_g) & hue_ok) | (ex_r > 1.6 * ex_g))
    # red ink absorbs blue nearly as much as green (real pen: OD_B / OD_G 0.85-1.0);
    # eosin, pink or magenta, about half as much (0.4-0.6)
    red = strong & (ex_b > 3.0 * ex_r) & (ex_g > 3.0 * ex_r) & (ex_b > 0.7 * ex_g) & ~blue
    black = strong & (ex_min > 0.2) & (ex_max - ex_min < 0.3 * ex_max) & ~blue & ~red
    return blue, red, black


def fine_ink_labels(
    rgb: npt.ArrayLike,
    *,
    background: Background | None = None,
    window: int = 31,
    min_od: float = 0.12,
) -> npt.NDArray[np.uint8]:
    """Label thin ink strokes in a high-resolution RGB region (stroke several pixels wide).

    A pixel's colour alone is not enough (navy ink over eosin is purple): the
    excess optical density over the local stain is classified
    (:func:`_ink_classes`), then specks are dropped (a 2 x 2 opening, objects
    under 40 pixels).

    Parameters
    ----------
    rgb : array of shape (rows, cols, 3)
        uint8 RGB, at a resolution where strokes are a few pixels wide.
    background : Background, optional
        The slide's (from its thumbnail); default estimated from ``rgb``.
    window : int
        Side of the median window (pixels) that estimates the local stain.
    min_od : float
        Minimum excess OD (largest channel) to consider a pixel inked.

    Returns
    -------
    ndarray of shape (rows, cols), uint8
        0 = none, 1 = blue/green ink, 2 = black ink, 4 = red ink
        (:data:`ARTEFACT_LABELS`).
    """
    from scipy import ndimage as ndi

    px = _check_rgb(rgb)
    bg = estimate_background(px.astype(np.uint8)) if background is None else background
    out = np.zeros(px.shape[:2], np.uint8)
    if bg.modality == "fluorescence" or min(px.shape[:2]) < 3:
        return out
    blue, red, black = _ink_classes(px, bg, cell=max(4, window // 2), min_od=min_od)
    # a stroke is an elongated object several pixels wide: drop isolated specks
    for value, m in ((2, black), (4, red), (1, blue)):
        if not m.any():
            continue
        m = ndi.binary_opening(m, structure=np.ones((2, 2), bool))
        out[_drop_small(m, 40) & (out == 0)] = value
    return out


def _drop_small(mask: BoolArray, min_size: int) -> BoolArray:
    """``mask`` without its connected pieces (8-connected) under ``min_size`` pixels."""
    from scipy import ndimage as ndi

    lab, n = ndi.label(mask, structure=np.ones((3, 3), bool))
    if not n:
        return mask
    keep = np.bincount(lab.ravel()) >= min_size
    keep[0] = False
    return np.asarray(keep[lab])


def _local_median(od: npt.NDArray[np.float32], *, cell: int) -> npt.NDArray[np.float32]:
    """Local stain OD: per-channel median of ``cell`` x ``cell`` cells, 3 x 3 median of cells.

    A stroke a few pixels wide covers a minority of each cell and of its
    neighbours, so the median is the stain around it. Cheap: one median per cell.
    """
    from scipy import ndimage as ndi

    rows, cols = od.shape[:2]
    pr, pc = -rows % cell, -cols % cell
    padded = np.pad(od, ((0, pr), (0, pc), (0, 0)), mode="edge")
    grid = padded.reshape(padded.shape[0] // cell, cell, padded.shape[1] // cell, cell, 3)
    med = np.median(grid.transpose(0, 2, 4, 1, 3).reshape(*grid.shape[::2][:2], 3, -1), axis=-1)
    med = ndi.median_filter(med, size=(3, 3, 1), mode="nearest")
    return np.repeat(np.repeat(med, cell, axis=0), cell, axis=1)[:rows, :cols].astype(np.float32)


def _bin(rgb: npt.NDArray[np.uint8], f: int) -> npt.NDArray[np.uint8]:
    """Mean over ``f`` x ``f`` blocks (edges that do not fill a block are dropped)."""
    if f <= 1:
        return rgb
    rows, cols = (rgb.shape[0] // f) * f, (rgb.shape[1] // f) * f
    acc = np.zeros((rows // f, cols // f, rgb.shape[2]), np.uint16)
    for i in range(f):
        for j in range(f):
            acc += rgb[i:rows:f, j:cols:f]
    return (acc // (f * f)).astype(np.uint8)


@dataclass(frozen=True)
class StrokeOptions:
    """How :func:`stroke_labels` looks for thin strokes.

    Attributes
    ----------
    downsample : float
        Level-0 pixels per pixel of the stroke pass (2: a 6 px stroke at level
        0 is 3 px wide). The coarsest level not above it is read and binned to it.
    screen_downsample : float
        Level-0 pixels per pixel of the pre-screen: the coarsest level not
        above it is read over the tissue, and only chunks where it sees
        ink-coloured excess (a stroke is a fraction of a pixel wide there, but
        still shifts the colour) are read at stroke resolution. When the
        pyramid has no level coarser than the stroke level by 4 or more, every
        tissue chunk is read.
    chunk : int
        Side (level-0 pixels) of the chunks the stroke pass reads.
    screen_min_od : float
        Minimum excess OD for a pre-screen pixel to count.
    screen_min_size : int
        Minimum ink-coloured pixels (8-connected) of one pre-screen object.
    screen_grow : int
        Pre-screen objects are grown by this many pixels (a stroke seen near a
        chunk's edge may go on faintly in the next chunk).
    screen_above : float
        Pre-screen only when the tissue chunks hold more level-0 pixels than
        this (smaller slides are read whole at stroke resolution in seconds;
        the pre-screen misses faint navy and black strokes at 8 µm/px).
    workers : int
        Threads reading and classifying chunks.
    """

    downsample: float = 2.0
    screen_downsample: float = 16.0
    chunk: int = 2048
    screen_min_od: float = 0.06
    screen_min_size: int = 20
    screen_grow: int = 2
    screen_above: float = 2e8
    workers: int = 2


@dataclass(frozen=True)
class StrokeStats:
    """What :func:`stroke_labels` read (for benchmarks and reports).

    Attributes
    ----------
    tissue_chunks, read_chunks : int
        Chunks with tissue, and those read at stroke resolution.
    level, screen_level : int
        Levels read by the stroke pass and the pre-screen (-1: none).
    """

    tissue_chunks: int
    read_chunks: int
    level: int
    screen_level: int


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


def _screen_blocks(
    slide: Slide,
    level: int,
    tissue_blocks: BoolArray,
    block0: int,
    bg: Background,
    opts: StrokeOptions,
) -> BoolArray:
    """Pre-screen: which tissue blocks show ink-coloured excess at ``level``."""
    from concurrent.futures import ThreadPoolExecutor

    from scipy import ndimage as ndi

    ds = float(slide.info.level_downsamples[level])
    side = max(1, int(round(block0 / ds)))  # block side at the screen level
    group = max(1, 2048 // side)  # blocks per screen read (a side of ~2048 px)
    nr, nc = tissue_blocks.shape
    jobs = [
        (gi, gj)
        for gi in range(0, nr, group)
        for gj in range(0, nc, group)
        if tissue_blocks[gi : gi + group, gj : gj + group].any()
    ]

    def one(job: tuple[int, int]) -> tuple[int, int, BoolArray]:
        gi, gj = job
        pad = 8  # screen pixels of context for the local stain
        r0, c0 = gi * side - pad, gj * side - pad
        rgb = slide.read_region(
            (int(r0 * ds), int(c0 * ds)),
            (group * side + 2 * pad, group * side + 2 * pad),
            level=level,
        )
        px = _check_rgb(rgb)
        blue, red, black = _ink_classes(px, bg, cell=4, min_od=opts.screen_min_od)
        cand = _drop_small(blue | red | black, opts.screen_min_size)
        # a stroke seen near a block's edge may carry on into the next block
        cand = ndi.binary_dilation(cand, iterations=opts.screen_grow)[pad:-pad, pad:-pad]
        g = np.asarray(cand.reshape(group, side, group, side).any(axis=(1, 3)), dtype=bool)
        return gi, gj, g

    out = np.zeros_like(tissue_blocks)
    with ThreadPoolExecutor(max_workers=max(1, opts.workers)) as pool:
        for gi, gj, g in pool.map(one, jobs):
            h, w = min(group, nr - gi), min(group, nc - gj)
            out[gi : gi + h, gj : gj + w] = g[:h, :w]
    return out & tissue_blocks


def stroke_labels(
    slide: Slide,
    masks: SlideMasks,
    *,
    options: StrokeOptions | None = None,
    background: Background | None = None,
    stats: list[StrokeStats] | None = None,
) -> npt.NDArray[np.uint8]:
    """Thin ink strokes of a slide, found lazily at stroke resolution, on the masks' grid.

    Only chunks with tissue in ``masks`` are considered (ink on glass is in
    the thumbnail pass). A cheap pre-screen at a mid-resolution level
    (:class:`StrokeOptions`) keeps those where ink-coloured excess shows; each
    is read (region by region, never a whole level in memory) at the coarsest
    level not above the stroke downsample, binned to it, and labelled by
    :func:`fine_ink_labels`; a mask pixel takes the class found in any of the
    pixels it covers.

    Parameters
    ----------
    slide : napari_xai.core.wsi.Slide
    masks : SlideMasks
        The thumbnail pass (its grid and tissue).
    options : StrokeOptions, optional
    background : Background, optional
        Default: estimated from the slide's thumbnail.
    stats : list, optional
        A :class:`StrokeStats` is appended (what was read).

    Returns
    -------
    ndarray of the masks' shape, uint8 (:data:`ARTEFACT_LABELS` values)
    """
    from concurrent.futures import ThreadPoolExecutor

    opts = StrokeOptions() if options is None else options
    rows_m, cols_m = masks.tissue.shape
    out = np.zeros((rows_m, cols_m), np.uint8)
    if background is None:
        thumb, _ = slide.thumbnail(max_size=1024)
        background = estimate_background(thumb)
    if background.modality == "fluorescence" or masks.modality == "fluorescence":
        return out
    # pyramid downsamples are rarely exact (4.002, 16.04...): allow a little over
    level = slide.best_level_for_downsample(opts.downsample * 1.05)
    lvl_ds = float(slide.info.level_downsamples[level])
    binf = max(1, int(round(opts.downsample / lvl_ds)))
    ds = lvl_ds * binf  # level-0 pixels per stroke-pass pixel
    block0 = max(int(ds), int(opts.chunk // ds) * int(ds))
    shape0 = (int(slide.info.shape_rc[0]), int(slide.info.shape_rc[1]))
    blocks = _mask_blocks(masks.tissue, masks.downsample, block0, shape0)
    n_tissue = int(blocks.sum())
    screen = slide.best_level_for_downsample(opts.screen_downsample * 1.25)
    screen_ds = float(slide.info.level_downsamples[screen])
    big = n_tissue * float(block0) ** 2 > opts.screen_above
    if big and screen_ds >= 4 * ds and screen != level:
        blocks = _screen_blocks(slide, screen, blocks, block0, background, opts)
    else:
        screen = -1
    side = block0 // int(ds) * binf  # block side at the stroke level (level pixels)
    f = masks.downsample / ds  # stroke-pass pixels per mask pixel

    def one(ij: tuple[int, int]) -> tuple[int, int, npt.NDArray[np.uint8]]:
        i, j = ij
        rgb = slide.read_region((i * block0, j * block0), (side, side), level=level)
        return i, j, fine_ink_labels(_bin(rgb, binf), background=background)

    todo = [(int(i), int(j)) for i, j in zip(*np.nonzero(blocks), strict=True)]
    with ThreadPoolExecutor(max_workers=max(1, opts.workers)) as pool:
        for i, j, lab in pool.map(one, todo):
            rr, cc = np.nonzero(lab)
            if rr.size:
                mi = np.minimum(((rr + i * block0 / ds) / f).astype(int), rows_m - 1)
                mj = np.minimum(((cc + j * block0 / ds) / f).astype(int), cols_m - 1)
                np.maximum.at(out, (mi, mj), lab[rr, cc])
    if stats is not None:
        stats.append(StrokeStats(n_tissue, len(todo), level, screen))
    return out
