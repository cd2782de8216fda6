"""Background (glass or dark field), optical density and stain of a slide image.

Optical density (brightfield)
-----------------------------
The glass (background light) is estimated from the image itself
(:func:`estimate_background`); ``OD = -log10(I / glass)`` per channel. In OD,
every stain absorbs green at least as much as red (haematoxylin, eosin, DAB).

Fluorescence
------------
A dark background (most of the image near black) is detected as fluorescence.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "STAIN_VECTORS",
    "Background",
    "estimate_background",
    "brown_fraction",
    "channel_max",
    "channel_min",
    "check_rgb",
    "guess_stain",
    "od_table",
    "optical_density",
    "rgb_and_background",
]

BoolArray = npt.NDArray[np.bool_]

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
    px = check_rgb(rgb).reshape(-1, 3)
    if px.shape[0] > 400_000:  # a sample is plenty for percentiles
        px = px[:: px.shape[0] // 400_000]
    value = channel_max(px)
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


def channel_max(px: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """``px.max(axis=-1)`` of an (..., 3) image, 5-8x faster.

    numpy reduces a short last axis slowly (80 ms for a 1.6 Mpx int16 image, against 10).
    """
    return np.asarray(np.maximum(np.maximum(px[..., 0], px[..., 1]), px[..., 2]))


def channel_min(px: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """``px.min(axis=-1)`` of an (..., 3) image, 5-8x faster."""
    return np.asarray(np.minimum(np.minimum(px[..., 0], px[..., 1]), px[..., 2]))


def _rgb3(v: npt.ArrayLike) -> tuple[float, float, float]:
    r, g, b = (float(x) for x in np.asarray(v).ravel()[:3])
    return (r, g, b)


def optical_density(
    rgb: npt.ArrayLike, *, background: Background | None = None
) -> npt.NDArray[np.float32]:
    """Per-channel optical density ``-log10(I / glass)`` (>= 0) of a brightfield image.

    Computed through a 256-entry lookup table per channel (no per-pixel log).
    """
    px, bg = rgb_and_background(rgb, background)
    lut = od_table(bg)
    od = np.empty(px.shape, np.float32)
    for c in range(3):
        od[..., c] = lut[c][px[..., c]]
    return od


def od_table(bg: Background) -> npt.NDArray[np.float32]:
    """Optical density of each uint8 value (rows: R, G, B) against the glass of ``bg``."""
    level = np.asarray(bg.level, np.float32) if bg.modality == "brightfield" else np.full(3, 242.0)
    values = np.maximum(np.arange(256, dtype=np.float32), 1.0)
    od = -np.log10(values[None, :] / np.maximum(level, 1.0)[:, None])
    return np.asarray(np.maximum(od, 0.0), dtype=np.float32)


def brown_fraction(od: npt.NDArray[np.float32]) -> float:
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
    brown = brown_fraction(od)
    pink = float(np.mean(od[:, 1] > 2.5 * od[:, 0]))
    if brown >= 0.1 and brown > pink:
        return "IHC"
    return "H&E"


def check_rgb(rgb: npt.ArrayLike) -> npt.NDArray[np.int16]:
    """``rgb`` as int16 RGB in [0, 255] (floats in [0, 1] are scaled; a fourth channel is dropped).

    Raises
    ------
    ValueError
        When ``rgb`` is not of shape (rows, cols, 3 or more).
    """
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[-1] < 3:
        raise ValueError(f"expected an RGB image of shape (rows, cols, 3), got {arr.shape}")
    if arr.dtype != np.uint8:
        if np.issubdtype(arr.dtype, np.floating) and arr.max(initial=0) <= 1.0:
            arr = arr * 255.0
        arr = np.clip(arr, 0, 255)
    return np.asarray(arr[..., :3], dtype=np.int16)


def rgb_and_background(
    rgb: npt.ArrayLike, background: Background | None = None
) -> tuple[npt.NDArray[np.int16], Background]:
    """``rgb`` as :func:`check_rgb` gives it, and its background.

    The detectors' common default: ``background`` when given (the slide's,
    from its thumbnail), else :func:`estimate_background` of ``rgb`` itself.
    """
    px = check_rgb(rgb)
    return px, estimate_background(px.astype(np.uint8)) if background is None else background
