"""Synthetic H&E-looking whole-slide images with known ground truth.

Two entry points:

* :func:`render_patch` renders one labelled patch (``"background"``, ``"normal"``,
  ``"tumour"``, ``"pen"``, ``"marker"``) for training and testing tile models.
* :func:`write_synthetic_slide` streams a pyramidal, JPEG-tiled, Aperio-SVS-style
  TIFF of any size (up to 100,000 x 80,000 px and beyond) with bounded memory,
  and returns its ground truth (:class:`SyntheticTruth`: tissue, tumour and
  artefact masks at a low resolution, saved beside the slide).

Both use the same texture code. Slide content is defined by smooth low-resolution
fields (tissue, tumour, stain variation) and by vector artefacts (pen strokes, a
marker 'R', a ruler, a text label) in level-0 pixels. :class:`SyntheticSlide`
renders any tile of any level on its own, deterministically from the seed and the
tile position, at that level's resolution (lower levels are not decoded from
level 0). Textures are periodic atlases (period 2048 level-0 px) sampled at the
absolute pixel position, so tiles join seamlessly.

Colours follow Beer-Lambert: tissue textures are built in optical density from
haematoxylin (nuclei, purple) and eosin (stroma, pink) stain vectors and stored
as transmittance; slides are composed in transmittance (glass x tissue x ink).
"""

from __future__ import annotations

import json
import math
import os
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "ARTEFACT_KINDS",
    "PATCH_KINDS",
    "SyntheticSlide",
    "SyntheticTruth",
    "render_patch",
    "write_synthetic_slide",
]

PATCH_KINDS: tuple[str, ...] = ("background", "normal", "tumour", "pen", "marker")
ARTEFACT_KINDS: tuple[str, ...] = ("pen", "marker", "ruler", "label")

FloatArray = npt.NDArray[np.float32]
UInt8Array = npt.NDArray[np.uint8]
BoolArray = npt.NDArray[np.bool_]


def _od(rgb: Sequence[float]) -> FloatArray:
    """Optical density of an RGB colour (0-255)."""
    return (-np.log(np.asarray(rgb, dtype=np.float64) / 255.0)).astype(np.float32)


# Optical density at unit concentration (Beer-Lambert, natural log).
_OD_EOSIN = _od((238, 118, 188))
_OD_HAEMATOXYLIN = _od((72, 42, 128))
_GLASS_T = np.array([245, 244, 242], np.float32) / 255.0
_INK_RGB: dict[str, tuple[int, int, int]] = {
    "green": (38, 128, 74),
    "blue": (36, 58, 150),
    "black": (28, 28, 32),
}
_OD_INK = {name: _od(rgb) for name, rgb in _INK_RGB.items()}
_OD_RULER_BAR = _od((226, 222, 196))
_OD_LABEL_PAPER = _od((250, 250, 246))

# Texture atlases repeat every _PERIOD level-0 pixels (divisible by every level
# downsample up to 256 and by the tile size), so that tiles line up seamlessly.
_PERIOD = 2048


# ---------------------------------------------------------------------------
# Noise and textures
# ---------------------------------------------------------------------------


def _fft_noise(
    shape: tuple[int, int],
    rng: np.random.Generator,
    *,
    sigma: float,
    anisotropy: float = 1.0,
    angle: float = 0.0,
) -> FloatArray:
    """Periodic, zero-mean, unit-std Gaussian-filtered noise of shape (rows, cols).

    ``sigma`` is the blur (pixels) across the main axis, ``sigma * anisotropy``
    along it, the main axis at ``angle`` (radians) from the row axis.
    """
    import scipy.fft

    white = rng.standard_normal(shape, dtype=np.float32)
    fr = scipy.fft.fftfreq(shape[0]).astype(np.float32)[:, None]
    fc = scipy.fft.rfftfreq(shape[1]).astype(np.float32)[None, :]
    ca, sa = np.float32(math.cos(angle)), np.float32(math.sin(angle))
    u = (fr * ca + fc * sa) * np.float32(sigma * anisotropy)
    v = (fc * ca - fr * sa) * np.float32(sigma)
    filt = np.exp(np.float32(-2.0 * math.pi**2) * (u * u + v * v))
    spec = scipy.fft.rfft2(white)
    spec *= filt
    out = scipy.fft.irfft2(spec, s=shape).astype(np.float32)
    out -= out.mean()
    std = float(out.std())
    if std > 0:
        out /= std
    return np.asarray(out, np.float32)


def _smooth_noise(shape: tuple[int, int], rng: np.random.Generator, *, sigma: float) -> FloatArray:
    """Like :func:`_fft_noise` (isotropic) but cheap for large ``sigma``.

    Drawn on a coarser periodic grid and interpolated (periodic, bilinear).
    """
    factor = 1
    while (
        sigma / (factor * 2) >= 4 and shape[0] % (factor * 2) == 0 and shape[1] % (factor * 2) == 0
    ):
        factor *= 2
    small = _fft_noise((shape[0] // factor, shape[1] // factor), rng, sigma=sigma / factor)
    if factor == 1:
        return small
    return _upsample_periodic(small, factor)


def _upsample_periodic(x: FloatArray, factor: int) -> FloatArray:
    """Bilinear upsampling of a periodic 2-D array by an integer factor."""
    out = x
    for axis in (0, 1):
        n = out.shape[axis]
        pos = (np.arange(n * factor) + 0.5) / factor - 0.5
        i0 = np.floor(pos).astype(np.int64)
        frac = (pos - i0).astype(np.float32)
        a = np.take(out, i0 % n, axis=axis)
        b = np.take(out, (i0 + 1) % n, axis=axis)
        shape = [1, 1]
        shape[axis] = -1
        out = a + (b - a) * frac.reshape(shape)
    return out.astype(np.float32)


def _fold_periodic(canvas: FloatArray, pad: int, op: Callable[..., Any]) -> FloatArray:
    """Fold the ``pad`` margins of a padded canvas back onto its periodic core."""
    n0 = canvas.shape[0] - 2 * pad
    out = canvas[pad : pad + n0].copy()
    op(out[n0 - pad :], canvas[:pad], out=out[n0 - pad :])
    op(out[:pad], canvas[pad + n0 :], out=out[:pad])
    n1 = out.shape[1] - 2 * pad
    core = out[:, pad : pad + n1].copy()
    op(core[:, n1 - pad :], out[:, :pad], out=core[:, n1 - pad :])
    op(core[:, :pad], out[:, pad + n1 :], out=core[:, :pad])
    return core


@dataclass(frozen=True)
class _Nuclei:
    """How one population of nuclei looks (see :func:`_nucleus_templates`).

    Attributes
    ----------
    radius_rc : tuple of float
        Semi-axes (rows, cols) in pixels before jitter.
    radius_jitter : float
        Log-normal spread of the size (and, times 0.6, of the eccentricity).
    irregularity : float
        Largest amplitude of the outline's wobble.
    darkness : tuple of float
        Range of the haematoxylin density.
    oriented : bool
        Aligned with the texture's angle (give ``angle``), else at random angles.
    angle_jitter : float
        Spread of the angle around the texture's, in radians (``oriented`` only).
    nucleoli : bool
        Add a dark central nucleolus.
    """

    radius_rc: tuple[float, float]
    radius_jitter: float
    irregularity: float
    darkness: tuple[float, float]
    oriented: bool = False
    angle_jitter: float = 0.0
    nucleoli: bool = False


#: Normal tissue: elongated stromal nuclei along the fibres, and small round lymphocytes.
_SPINDLE = _Nuclei(
    radius_rc=(2.6, 8.5), radius_jitter=0.18, irregularity=0.05, darkness=(0.75, 1.05),
    oriented=True, angle_jitter=0.3,
)  # fmt: skip
_LYMPHOCYTE = _Nuclei(
    radius_rc=(4.2, 4.2), radius_jitter=0.12, irregularity=0.05, darkness=(0.95, 1.25)
)
#: Tumour: large, irregular nuclei with nucleoli.
_TUMOUR = _Nuclei(
    radius_rc=(9.0, 10.5), radius_jitter=0.22, irregularity=0.14, darkness=(0.7, 1.25),
    nucleoli=True,
)  # fmt: skip


def _nucleus_templates(
    rng: np.random.Generator, n: int, nuclei: _Nuclei, *, angle: float = 0.0
) -> list[tuple[FloatArray, FloatArray]]:
    """Stamps of soft, irregular elliptical nuclei: (coverage, haematoxylin) pairs.

    ``angle`` is the texture's orientation, which ``nuclei.oriented`` follow.
    """
    chromatin = 0.5 + 0.5 * np.tanh(_fft_noise((96, 96), rng, sigma=1.2))
    out = []
    for _ in range(n):
        scale = math.exp(rng.normal(0.0, nuclei.radius_jitter))
        ecc = math.exp(rng.normal(0.0, nuclei.radius_jitter * 0.6))
        ry = nuclei.radius_rc[0] * scale * ecc
        rx = nuclei.radius_rc[1] * scale / ecc
        ang = (
            angle + rng.normal(0, nuclei.angle_jitter)
            if nuclei.oriented
            else rng.uniform(0.0, math.pi)
        )
        reach = int(math.ceil(max(ry, rx) * (1.0 + 2 * nuclei.irregularity) + 2))
        sub = float(rng.uniform(0, 1))
        d = np.arange(-reach, reach + 1) + 0.5 - sub
        dr = d[:, None]
        dc = d[None, :]
        ca, sa = math.cos(ang), math.sin(ang)
        a = dr * ca + dc * sa
        b = dc * ca - dr * sa
        rad = np.sqrt((a / ry) ** 2 + (b / rx) ** 2)
        if nuclei.irregularity > 0:
            theta = np.arctan2(b, a)
            ph = rng.uniform(0.0, 2 * math.pi, 3)
            am = rng.uniform(0.0, nuclei.irregularity, 3)
            wob = 1.0 + (
                am[0] * np.cos(2 * theta + ph[0])
                + am[1] * np.cos(3 * theta + ph[1])
                + am[2] * np.cos(5 * theta + ph[2])
            )
            rad = rad / wob
        edge = 1.5 / max(min(ry, rx), 1.0)
        alpha = np.clip((1.0 - rad) / edge + 0.5, 0.0, 1.0).astype(np.float32)
        k = alpha.shape[0]
        o = rng.integers(0, 96 - k) if k < 96 else 0
        chrom = chromatin[o : o + k, o : o + k]
        if chrom.shape != alpha.shape:
            chrom = np.resize(chrom, alpha.shape)
        dark = rng.uniform(nuclei.darkness[0], nuclei.darkness[1])
        val = alpha * dark * (0.7 + 0.3 * chrom)
        if nuclei.nucleoli:
            dist = np.hypot(a, b)
            val = val + 0.6 * dark * np.clip(2.2 - dist, 0.0, 1.0).astype(np.float32)
        out.append((alpha, val.astype(np.float32)))
    return out


def _paste_nuclei(
    h: FloatArray,
    e: FloatArray,
    rng: np.random.Generator,
    centres: npt.NDArray[np.float64],
    templates: list[tuple[FloatArray, FloatArray]],
) -> None:
    """Paste nucleus stamps at ``centres`` (periodic wrap) into haematoxylin/eosin maps."""
    if len(centres) == 0 or not templates:
        return
    rows, cols = h.shape
    pad = max(t[0].shape[0] for t in templates)
    pad = min(pad, rows, cols)
    hc = np.zeros((rows + 2 * pad, cols + 2 * pad), np.float32)
    ec = np.ones_like(hc)
    which = rng.integers(0, len(templates), len(centres))
    pos = np.floor(centres).astype(np.int64)
    pos[:, 0] %= rows
    pos[:, 1] %= cols
    for (r, c), k in zip(pos, which, strict=True):
        alpha, val = templates[k]
        m = alpha.shape[0]
        r0 = r + pad - m // 2
        c0 = c + pad - m // 2
        if r0 < 0 or c0 < 0 or r0 + m > hc.shape[0] or c0 + m > hc.shape[1]:
            continue
        hs = hc[r0 : r0 + m, c0 : c0 + m]
        np.maximum(hs, val, out=hs)
        es = ec[r0 : r0 + m, c0 : c0 + m]
        np.minimum(es, 1.0 - 0.75 * alpha, out=es)
    h_n = _fold_periodic(hc, pad, np.maximum)
    e_n = _fold_periodic(ec, pad, np.minimum)
    np.maximum(h, h_n, out=h)
    e *= e_n


def _jittered_grid(
    shape: tuple[int, int], rng: np.random.Generator, *, spacing: float, jitter: float
) -> npt.NDArray[np.float64]:
    """Points on a jittered square grid covering a periodic domain (rows, cols)."""
    rows, cols = shape
    nr = max(1, int(round(rows / spacing)))
    nc = max(1, int(round(cols / spacing)))
    gr, gc = np.meshgrid((np.arange(nr) + 0.5) * rows / nr, (np.arange(nc) + 0.5) * cols / nc)
    pts = np.stack([gr.ravel(), gc.ravel()], axis=1)
    pts += rng.normal(0.0, jitter * spacing, pts.shape)
    return pts


def _tissue_od(kind: str, shape: tuple[int, int], rng: np.random.Generator) -> FloatArray:
    """Optical density (3, rows, cols) of a periodic tissue texture, without glass.

    ``kind`` is ``"normal"`` (eosin-pink stroma with fibres and sparse small
    nuclei) or ``"tumour"`` (sheets of large, irregular, dark nuclei).
    """
    rows, cols = shape
    side = min(rows, cols)
    blotch = _smooth_noise(shape, rng, sigma=side / 10.0)
    theta = float(rng.uniform(0, math.pi))
    fib1 = _fft_noise(shape, rng, sigma=1.6, anisotropy=7.0, angle=theta)
    fib2 = _fft_noise(shape, rng, sigma=1.6, anisotropy=7.0, angle=theta + 0.6)
    mix = 0.5 + 0.5 * np.tanh(_smooth_noise(shape, rng, sigma=side / 16.0))
    ridges = np.exp(-((fib1 * mix + fib2 * (1 - mix)) ** 2) * 1.5)
    area = rows * cols
    n_templates = 48
    if kind == "normal":
        e = (0.62 * (0.45 + 0.75 * ridges) * (1.0 + 0.18 * blotch)).astype(np.float32)
        loose = _smooth_noise(shape, rng, sigma=9.0)
        e *= np.where(loose > 1.3, 0.35, 1.0).astype(np.float32)
        h = np.full(shape, 0.03, np.float32)
        for nuclei, n_stamps, px_per_nucleus in (
            (_SPINDLE, n_templates, 1500.0),
            (_LYMPHOCYTE, n_templates // 2, 4500.0),
        ):
            templates = _nucleus_templates(rng, n_stamps, nuclei, angle=theta)
            n = rng.poisson(area / px_per_nucleus)
            _paste_nuclei(h, e, rng, rng.uniform(0, 1, (n, 2)) * (rows, cols), templates)
    elif kind == "tumour":
        e = (0.34 * (0.75 + 0.3 * ridges) * (1.0 + 0.15 * blotch)).astype(np.float32)
        h = (0.10 + 0.04 * blotch).clip(0.02, None).astype(np.float32)
        pts = _jittered_grid(shape, rng, spacing=23.0, jitter=0.22)
        pts = pts[rng.uniform(0, 1, len(pts)) < 0.9]
        _paste_nuclei(h, e, rng, pts, _nucleus_templates(rng, n_templates, _TUMOUR))
    else:
        raise ValueError(f"unknown tissue kind {kind!r}: expected 'normal' or 'tumour'")
    od = h[None] * _OD_HAEMATOXYLIN[:, None, None] + e[None] * _OD_EOSIN[:, None, None]
    return od.astype(np.float32)


def _tissue_transmittance(
    kind: str, shape: tuple[int, int], rng: np.random.Generator
) -> FloatArray:
    """Transmittance (3, rows, cols) in [0, 1] of a periodic tissue texture."""
    return np.exp(-_tissue_od(kind, shape, rng)).astype(np.float32)


def _glass_factor(shape: tuple[int, int], rng: np.random.Generator) -> FloatArray:
    """Per-pixel brightness factor (rows, cols) of empty glass (slight noise, ~1)."""
    return (1.0 - 0.006 * _fft_noise(shape, rng, sigma=0.8)).astype(np.float32)


def _ink_grain(shape: tuple[int, int], rng: np.random.Generator) -> FloatArray:
    """Ink density modulation (rows, cols) in about [0.7, 1]."""
    return (0.85 + 0.15 * np.tanh(_smooth_noise(shape, rng, sigma=6.0))).astype(np.float32)


def _to_uint8(planar: FloatArray, white: float = 1.0) -> UInt8Array:
    """RGB uint8 (rows, cols, 3) from planar light (3, rows, cols) with ``white`` = 255."""
    if white != 255.0:
        planar *= np.float32(255.0 / white)
    np.clip(planar, 0.0, 255.0, out=planar)
    u8 = planar.astype(np.uint8)
    out = np.empty((*planar.shape[1:], 3), np.uint8)
    for ch in range(3):  # faster than a transposed copy
        out[..., ch] = u8[ch]
    return out


# ---------------------------------------------------------------------------
# Vector artefacts (level-0 pixel coordinates, continuous: pixel i spans [i, i+1))
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Stroke:
    """A thick polyline of ink in level-0 coordinates (rows, cols)."""

    points: npt.NDArray[np.float64]  # (N, 2)
    half_width: float
    od: FloatArray  # (3,) ink optical density at full coverage
    kind: str

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        lo = self.points.min(axis=0) - self.half_width
        hi = self.points.max(axis=0) + self.half_width
        return (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))


@dataclass(frozen=True)
class _Box:
    """An axis-aligned filled rectangle [r0, r1) x [c0, c1) in level-0 coordinates."""

    r0: float
    c0: float
    r1: float
    c1: float
    od: FloatArray
    kind: str
    opaque: bool = False  # replaces what is below (paper, plastic) rather than adding ink

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        return (self.r0, self.c0, self.r1, self.c1)


_Primitive = _Stroke | _Box


def _pixel_centres(origin: float, n: int, step: float) -> npt.NDArray[np.float64]:
    """Level-0 coordinates of the centres of ``n`` pixels of size ``step``."""
    return np.asarray(origin + (np.arange(n) + 0.5) * step, np.float64)


def _box_coverage(
    box: _Box, origin_rc: tuple[float, float], shape: tuple[int, int], step: float
) -> FloatArray:
    """Exact area coverage (rows, cols) of pixels of size ``step`` by a box."""
    r_lo = origin_rc[0] + np.arange(shape[0]) * step
    c_lo = origin_rc[1] + np.arange(shape[1]) * step
    cov_r = np.clip(np.minimum(r_lo + step, box.r1) - np.maximum(r_lo, box.r0), 0, step) / step
    cov_c = np.clip(np.minimum(c_lo + step, box.c1) - np.maximum(c_lo, box.c0), 0, step) / step
    return np.asarray(cov_r[:, None] * cov_c[None, :], np.float32)


def _stroke_coverage(
    stroke: _Stroke, origin_rc: tuple[float, float], shape: tuple[int, int], step: float
) -> FloatArray:
    """Approximate coverage (rows, cols) of pixels of size ``step`` by a thick polyline."""
    out = np.zeros(shape, np.float32)
    hw = stroke.half_width
    eff = max(hw, 0.5 * step)  # thin strokes: widen and fade to keep their mass
    gain = hw / eff
    pts = stroke.points
    r_end = origin_rc[0] + shape[0] * step
    c_end = origin_rc[1] + shape[1] * step
    for k in range(len(pts) - 1):
        p, q = pts[k], pts[k + 1]
        lo = np.minimum(p, q) - eff - step
        hi = np.maximum(p, q) + eff + step
        if hi[0] < origin_rc[0] or lo[0] > r_end or hi[1] < origin_rc[1] or lo[1] > c_end:
            continue
        i0 = max(0, int((lo[0] - origin_rc[0]) / step))
        i1 = min(shape[0], int(math.ceil((hi[0] - origin_rc[0]) / step)))
        j0 = max(0, int((lo[1] - origin_rc[1]) / step))
        j1 = min(shape[1], int(math.ceil((hi[1] - origin_rc[1]) / step)))
        if i0 >= i1 or j0 >= j1:
            continue
        rc = origin_rc[0] + (np.arange(i0, i1) + 0.5) * step
        cc = origin_rc[1] + (np.arange(j0, j1) + 0.5) * step
        d = q - p
        len2 = float(d @ d)
        pr = (rc - p[0])[:, None]
        pc = (cc - p[1])[None, :]
        if len2 > 0:
            t = np.clip((pr * d[0] + pc * d[1]) / len2, 0.0, 1.0)
        else:
            t = np.zeros((len(rc), len(cc)))
        dist = np.hypot(pr - t * d[0], pc - t * d[1])
        cov = np.clip((eff - dist) / step + 0.5, 0.0, 1.0).astype(np.float32) * gain
        np.maximum(out[i0:i1, j0:j1], cov, out=out[i0:i1, j0:j1])
    return out


def _coverage(
    prim: _Primitive, origin_rc: tuple[float, float], shape: tuple[int, int], step: float
) -> FloatArray:
    if isinstance(prim, _Box):
        return _box_coverage(prim, origin_rc, shape, step)
    return _stroke_coverage(prim, origin_rc, shape, step)


def _intersects(
    bbox: tuple[float, float, float, float],
    origin_rc: tuple[float, float],
    shape: tuple[int, int],
    step: float,
    margin: float = 0.0,
) -> bool:
    r_end = origin_rc[0] + shape[0] * step
    c_end = origin_rc[1] + shape[1] * step
    return not (
        bbox[2] + margin < origin_rc[0]
        or bbox[0] - margin > r_end
        or bbox[3] + margin < origin_rc[1]
        or bbox[1] - margin > c_end
    )


def _apply_primitives(
    planar: FloatArray,
    prims: Sequence[_Primitive],
    origin_rc: tuple[float, float],
    step: float,
    ink_grain: FloatArray | None = None,
    *,
    white: float = 1.0,
) -> None:
    """Composite artefacts over planar light (3, rows, cols) in place (``white``: glass-free)."""
    shape = planar.shape[1:]
    for prim in prims:
        if not _intersects(prim.bbox, origin_rc, shape, step, margin=step):
            continue
        cov = _coverage(prim, origin_rc, shape, step)
        if not cov.any():
            continue
        colour = np.exp(-prim.od).astype(np.float32)
        if isinstance(prim, _Box) and prim.opaque:
            keep = 1.0 - cov
            for ch in range(3):
                planar[ch] *= keep
                planar[ch] += cov * (colour[ch] * white)
        else:
            if ink_grain is not None:
                cov = cov * ink_grain
            for ch in range(3):
                planar[ch] *= 1.0 - cov * (1.0 - colour[ch])


# 5 x 7 bitmap font for the few characters a slide label needs.
_FONT: dict[str, tuple[str, ...]] = {
    "0": ("01110", "10001", "10011", "10101", "11001", "10001", "01110"),
    "1": ("00100", "01100", "00100", "00100", "00100", "00100", "01110"),
    "2": ("01110", "10001", "00001", "00010", "00100", "01000", "11111"),
    "3": ("11110", "00001", "00001", "01110", "00001", "00001", "11110"),
    "4": ("00010", "00110", "01010", "10010", "11111", "00010", "00010"),
    "5": ("11111", "10000", "11110", "00001", "00001", "10001", "01110"),
    "6": ("00110", "01000", "10000", "11110", "10001", "10001", "01110"),
    "7": ("11111", "00001", "00010", "00100", "01000", "01000", "01000"),
    "8": ("01110", "10001", "10001", "01110", "10001", "10001", "01110"),
    "9": ("01110", "10001", "10001", "01111", "00001", "00010", "01100"),
    "H": ("10001", "10001", "10001", "11111", "10001", "10001", "10001"),
    "E": ("11111", "10000", "10000", "11110", "10000", "10000", "11111"),
    "S": ("01111", "10000", "10000", "01110", "00001", "00001", "11110"),
    "X": ("10001", "10001", "01010", "00100", "01010", "10001", "10001"),
    "A": ("01110", "10001", "10001", "11111", "10001", "10001", "10001"),
    "I": ("01110", "00100", "00100", "00100", "00100", "00100", "01110"),
    "-": ("00000", "00000", "00000", "11111", "00000", "00000", "00000"),
    " ": ("00000",) * 7,
}


def _text_boxes(
    text: str, origin_rc: tuple[float, float], cell: float, od: FloatArray, kind: str
) -> list[_Box]:
    """Boxes for each 'on' cell of ``text`` in the bitmap font (rows merged per run)."""
    boxes: list[_Box] = []
    for k, ch in enumerate(text.upper()):
        glyph = _FONT.get(ch, _FONT[" "])
        c_base = origin_rc[1] + k * 6 * cell
        for i, row in enumerate(glyph):
            j = 0
            while j < 5:
                if row[j] == "1":
                    j1 = j
                    while j1 < 5 and row[j1] == "1":
                        j1 += 1
                    r0 = origin_rc[0] + i * cell
                    boxes.append(
                        _Box(r0, c_base + j * cell, r0 + cell, c_base + j1 * cell, od, kind)
                    )
                    j = j1
                else:
                    j += 1
    return boxes


def _glyph_r(
    centre_rc: tuple[float, float],
    height: float,
    half_width: float,
    od: FloatArray,
    rng: np.random.Generator,
    kind: str = "marker",
) -> list[_Stroke]:
    """Return a hand-drawn letter 'R' as three strokes (stem, bowl, leg)."""
    h = height
    w = 0.62 * height
    top = centre_rc[0] - h / 2
    left = centre_rc[1] - w / 2
    wob = h * 0.015

    def jitter(pts: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        return pts + rng.normal(0.0, wob, pts.shape)

    stem = np.stack([np.linspace(top + h, top, 12), np.full(12, left)], axis=1)
    t = np.linspace(-math.pi / 2, math.pi / 2, 24)
    bowl_r = 0.27 * h
    bowl = np.concatenate(
        [
            np.array([[top, left], [top, left + 0.45 * w]]),
            np.stack(
                [top + bowl_r + bowl_r * np.sin(t), left + 0.45 * w + 0.55 * w * np.cos(t)], axis=1
            ),
            np.array([[top + 2 * bowl_r, left]]),
        ]
    )
    leg = np.stack(
        [np.linspace(top + 2 * bowl_r, top + h, 10), np.linspace(left + 0.35 * w, left + w, 10)],
        axis=1,
    )
    return [_Stroke(jitter(p), half_width, od, kind) for p in (stem, bowl, leg)]


def _pen_loop(
    centre_rc: tuple[float, float],
    radii_rc: tuple[float, float],
    half_width: float,
    od: FloatArray,
    rng: np.random.Generator,
    *,
    arc: float = 1.85,
) -> _Stroke:
    """Return a wobbly, not quite closed pen loop around a region (as pathologists draw)."""
    n = 160
    start = rng.uniform(0, 2 * math.pi)
    t = start + np.linspace(0.0, arc * math.pi, n)
    wob = 1.0 + 0.06 * np.sin(3 * t + rng.uniform(0, 6)) + 0.03 * np.sin(7 * t + rng.uniform(0, 6))
    pts = np.stack(
        [
            centre_rc[0] + radii_rc[0] * wob * np.sin(t),
            centre_rc[1] + radii_rc[1] * wob * np.cos(t),
        ],
        axis=1,
    )
    return _Stroke(pts, half_width, od, "pen")


# ---------------------------------------------------------------------------
# Patches
# ---------------------------------------------------------------------------


def render_patch(kind: str, *, size: int = 224, rng: np.random.Generator) -> UInt8Array:
    """Render one labelled H&E-looking patch at 0.5 µm/px.

    Uses the same texture code as the synthetic slides.

    Parameters
    ----------
    kind : str
        ``"background"`` (empty glass), ``"normal"`` (stroma with sparse nuclei),
        ``"tumour"`` (dense, large, irregular, dark nuclei), ``"pen"`` (tissue or
        glass under a green, blue or black ink stroke) or ``"marker"`` (a hand-drawn
        'R' in ink, as placed on slides to mark orientation).
    size : int
        Side of the square patch in pixels.
    rng : numpy.random.Generator
        Source of randomness; the same generator state gives the same patch.

    Returns
    -------
    ndarray of shape (size, size, 3), uint8
        RGB patch.
    """
    if kind not in PATCH_KINDS:
        raise ValueError(f"unknown patch kind {kind!r}: expected one of {PATCH_KINDS}")
    shape = (size, size)
    trans = _glass_factor(shape, rng)[None] * _GLASS_T[:, None, None]
    stain = np.exp(rng.normal(0.0, 0.1, 3)).astype(np.float32)[:, None, None]  # stain, scanner
    base = kind
    if kind in ("pen", "marker"):
        base = str(rng.choice(["background", "normal", "tumour"], p=[0.4, 0.4, 0.2]))
    if base in ("normal", "tumour"):
        trans *= np.exp(-_tissue_od(base, shape, rng) * stain)
    if kind in ("pen", "marker"):
        ink = str(rng.choice(list(_INK_RGB)))
        density = float(rng.uniform(0.75, 1.3))
        grain = _ink_grain(shape, rng)
        prims: list[_Primitive]
        if kind == "pen":
            hw = float(rng.uniform(0.06, 0.2) * size)
            centre = (float(rng.uniform(-0.6, 1.6) * size), float(rng.uniform(-0.6, 1.6) * size))
            radius = float(rng.uniform(0.7, 1.6) * size)
            stroke = _pen_loop(centre, (radius, radius), hw, _OD_INK[ink] * density, rng, arc=2.0)
            if not _stroke_coverage(stroke, (0.0, 0.0), shape, 1.0).any():
                # make sure the stroke crosses the patch
                pts = rng.uniform(0, size, (2, 2))
                stroke = _Stroke(pts, hw, _OD_INK[ink] * density, "pen")
            prims = [stroke]
        else:
            height = float(rng.uniform(0.55, 0.85) * size)
            centre = (
                float(size / 2 + rng.normal(0, 0.06 * size)),
                float(size / 2 + rng.normal(0, 0.06 * size)),
            )
            hw = float(rng.uniform(0.03, 0.06) * size)
            prims = list(_glyph_r(centre, height, hw, _OD_INK[ink] * density, rng))
        _apply_primitives(trans, prims, (0.0, 0.0), 1.0, grain)
    return _to_uint8(trans)


# ---------------------------------------------------------------------------
# Slides
# ---------------------------------------------------------------------------


def _pow2_at_least(x: float) -> int:
    return int(2 ** max(0, math.ceil(math.log2(max(x, 1.0)))))


def _linear_weights(
    centres: npt.NDArray[np.float64], step: float, n: int
) -> tuple[npt.NDArray[np.int64], FloatArray]:
    """Return indices and fractions to interpolate cells of size ``step`` linearly."""
    f = np.clip(centres / step - 0.5, 0.0, max(n - 1.0, 0.0))
    i0 = np.minimum(np.floor(f).astype(np.int64), max(n - 2, 0))
    frac = (f - i0).astype(np.float32) if n > 1 else np.zeros(len(f), np.float32)
    return i0, frac


def _interp_fields(
    fields: FloatArray, rows: npt.NDArray[np.float64], cols: npt.NDArray[np.float64], step: float
) -> FloatArray:
    """Bilinear samples (m, len(rows), len(cols)) of fields (m, fr, fc) at level-0 positions."""
    m, fr, fc = fields.shape
    ri, rf = _linear_weights(rows, step, fr)
    ci, cf = _linear_weights(cols, step, fc)
    c_lo = int(ci.min())
    c_hi = min(fc, int(ci.max()) + 2)
    sub = fields[:, :, c_lo:c_hi]
    r1 = np.minimum(ri + 1, fr - 1)
    a = sub[:, ri] * (1.0 - rf)[None, :, None] + sub[:, r1] * rf[None, :, None]
    cj = ci - c_lo
    c1 = np.minimum(cj + 1, c_hi - c_lo - 1)
    out = a[:, :, cj] * (1.0 - cf) + a[:, :, c1] * cf
    return np.asarray(out, np.float32)


def _block_mean(x: FloatArray, factor: int) -> FloatArray:
    """Average over factor x factor blocks of the last two axes (light adds linearly)."""
    if factor == 1:
        return x
    p, q = x.shape[-2] // factor, x.shape[-1] // factor
    y = x.reshape(*x.shape[:-2], p, factor, q, factor).mean(axis=(-3, -1))
    return np.asarray(y, np.float32)


_TEXTURES = ("glass", "normal_a", "normal_b", "tumour", "ink")


def _to_blocks(x: FloatArray, block: int) -> FloatArray:
    """Cut a periodic (..., P, P) texture into contiguous blocks (nb, nb, ..., B, B)."""
    p = x.shape[-1]
    lead = x.shape[:-2]
    if p < block:
        rep = -(-block // p)
        x = np.tile(x, (*([1] * len(lead)), rep, rep))[..., :block, :block]
        p = block
    if p % block:
        raise ValueError(f"texture period {p} is not a multiple of the block size {block}")
    nb = p // block
    nd = len(lead)
    blocks = x.reshape(*lead, nb, block, nb, block)
    order = (nd, nd + 2, *range(nd), nd + 1, nd + 3)
    return np.ascontiguousarray(blocks.transpose(order))


def _take_blocks(blocks: FloatArray, r0: int, c0: int, h: int, w: int) -> FloatArray:
    """Crop (..., h, w) at (r0, c0) of a periodic texture stored as blocks (wrapping)."""
    nb, bs = blocks.shape[0], blocks.shape[-1]
    if r0 % bs == 0 and c0 % bs == 0 and h == w == bs:  # one block: no copy
        return np.asarray(blocks[(r0 // bs) % nb, (c0 // bs) % nb])
    br0, bc0 = r0 // bs, c0 // bs
    br1, bc1 = -(-(r0 + h) // bs), -(-(c0 + w) // bs)
    ri = np.arange(br0, br1) % nb
    ci = np.arange(bc0, bc1) % nb
    sub = blocks[ri[:, None], ci[None, :]]  # (nr, nc, ..., B, B)
    nd = blocks.ndim - 4
    lead = blocks.shape[2:-2]
    order = (*range(2, 2 + nd), 0, 2 + nd, 1, 3 + nd)
    full = sub.transpose(order).reshape(*lead, len(ri) * bs, len(ci) * bs)
    dr, dc = r0 - br0 * bs, c0 - bc0 * bs
    return np.asarray(full[..., dr : dr + h, dc : dc + w])


@dataclass(frozen=True)
class _Atlas:
    """Periodic textures at one level, as RGB light through the slide on a 0-255 scale.

    Stored as contiguous blocks (nb, nb, ..., B, B) so that a tile-aligned crop is
    a view (strided crops of a large array are several times slower to compute
    with). ``glass`` (3 channels) is bare glass; ``normal_a``, ``normal_b`` and
    ``tumour`` (3 channels) are glass under fully stained tissue; ``ink`` (one
    channel) modulates ink density.
    """

    glass: FloatArray
    normal_a: FloatArray
    normal_b: FloatArray
    tumour: FloatArray
    ink: FloatArray

    def take(self, name: str, r0: int, c0: int, h: int, w: int) -> FloatArray:
        """Crop (..., h, w) of texture ``name`` at level pixel (r0, c0), wrapping around."""
        return _take_blocks(getattr(self, name), r0, c0, h, w)


_ATLAS_LOCK = threading.Lock()


def _level0_textures(seed: int) -> Iterator[tuple[str, FloatArray]]:
    """Yield the level-0 textures one at a time (so that only one is held at once)."""
    rng = np.random.default_rng([seed, 1])
    shape = (_PERIOD, _PERIOD)
    glass = _glass_factor(shape, rng)[None] * (_GLASS_T * np.float32(255.0))[:, None, None]
    yield "glass", glass
    for name, kind in (("normal_a", "normal"), ("normal_b", "normal"), ("tumour", "tumour")):
        yield name, _tissue_transmittance(kind, shape, rng) * glass
    yield "ink", _ink_grain(shape, rng)


@lru_cache(maxsize=2)
def _atlas_pyramid_cached(
    seed: int, downsamples: tuple[int, ...], block: int
) -> dict[int, _Atlas]:
    parts: dict[int, dict[str, FloatArray]] = {ds: {} for ds in downsamples}
    for ds in downsamples:
        if _PERIOD % ds:
            raise ValueError(f"level downsample {ds} does not divide {_PERIOD}")
    for name, full in _level0_textures(seed):
        for ds in downsamples:
            parts[ds][name] = _to_blocks(_block_mean(full, ds), block)
        del full
    return {ds: _Atlas(**parts[ds]) for ds in downsamples}


def _atlas_pyramid(seed: int, downsamples: tuple[int, ...], block: int) -> dict[int, _Atlas]:
    """Texture atlases of every level, built once per (seed, levels, block size)."""
    with _ATLAS_LOCK:  # build once even when tiles are rendered from many threads
        return _atlas_pyramid_cached(seed, tuple(downsamples), int(block))


@dataclass
class SyntheticTruth:
    """Ground truth of a synthetic slide, as boolean masks at one downsample.

    Attributes
    ----------
    path : Path or None
        The slide file, when written.
    shape_rc : tuple of int
        Level-0 (rows, cols).
    mpp : float
        Micrometres per level-0 pixel.
    downsample : int
        Level-0 pixels per mask pixel: mask pixel (i, j) covers level-0 rows
        ``[i d, (i + 1) d)`` and cols ``[j d, (j + 1) d)``.
    tissue, tumour, artefact : ndarray of shape (rows, cols), bool
        Tissue (also where ink covers it), tumour (a subset of tissue) and the
        union of all artefacts.
    artefacts : dict of str to ndarray of shape (rows, cols), bool
        One mask per artefact kind drawn (``"pen"``, ``"marker"``, ``"ruler"``,
        ``"label"``).
    seed : int
        Seed the slide was generated from.
    """

    path: Path | None
    shape_rc: tuple[int, int]
    mpp: float
    downsample: int
    tissue: BoolArray
    tumour: BoolArray
    artefact: BoolArray
    artefacts: dict[str, BoolArray] = field(default_factory=dict)
    seed: int = 0

    @staticmethod
    def default_path(slide_path: str | Path) -> Path:
        """Path of the truth file beside a slide: ``<slide>.truth.npz``."""
        p = Path(slide_path)
        return p.with_name(p.name + ".truth.npz")

    def save(self, path: str | Path | None = None) -> Path:
        """Save masks and metadata to an ``.npz`` file (beside the slide by default).

        Parameters
        ----------
        path : str or Path, optional
            Where to write; default :meth:`default_path` of the slide.

        Returns
        -------
        Path
            The file written.
        """
        if path is None:
            if self.path is None:
                raise ValueError("SyntheticTruth.save: no path given and no slide path known")
            path = self.default_path(self.path)
        path = Path(path)
        meta = {
            "path": str(self.path) if self.path is not None else None,
            "shape_rc": list(self.shape_rc),
            "mpp": self.mpp,
            "downsample": self.downsample,
            "seed": self.seed,
            "mask_shape": list(self.tissue.shape),
            "artefact_kinds": list(self.artefacts),
        }
        arrays: dict[str, Any] = {
            f"artefact_{k}": np.packbits(v, axis=-1) for k, v in self.artefacts.items()
        }
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp.npz")
        np.savez_compressed(
            tmp,
            meta=np.array(json.dumps(meta)),
            tissue=np.packbits(self.tissue, axis=-1),
            tumour=np.packbits(self.tumour, axis=-1),
            artefact=np.packbits(self.artefact, axis=-1),
            **arrays,
        )
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> SyntheticTruth:
        """Load truth saved by :meth:`save`, given the ``.npz`` or the slide's path.

        Parameters
        ----------
        path : str or Path
            The ``.truth.npz`` file or the slide it belongs to.

        Returns
        -------
        SyntheticTruth
        """
        path = Path(path)
        if not path.name.endswith(".npz"):
            path = cls.default_path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no synthetic ground truth found")
        with np.load(path) as z:
            meta = json.loads(str(z["meta"]))
            ncols = int(meta["mask_shape"][1])

            def unpack(key: str) -> BoolArray:
                return np.unpackbits(z[key], axis=-1, count=ncols).astype(bool)

            return cls(
                path=Path(meta["path"]) if meta["path"] else None,
                shape_rc=(int(meta["shape_rc"][0]), int(meta["shape_rc"][1])),
                mpp=float(meta["mpp"]),
                downsample=int(meta["downsample"]),
                tissue=unpack("tissue"),
                tumour=unpack("tumour"),
                artefact=unpack("artefact"),
                artefacts={k: unpack(f"artefact_{k}") for k in meta["artefact_kinds"]},
                seed=int(meta["seed"]),
            )


_Rect = tuple[float, float, float, float]  # (r0, c0, r1, c1), level-0 px


def _label_layout(
    slide: SyntheticSlide, rng: np.random.Generator
) -> tuple[list[_Primitive], _Rect]:
    """Lay out the paper label (top left, the slide's id); return it and the glass it covers."""
    rows, cols = slide.shape_rc
    text = f"S-{slide.seed % 10000:04d} HE"
    cell = min(0.012 * min(rows, cols), 0.26 * cols / (len(text) * 6 + 3), 0.15 * rows / 11)
    r0, c0 = 0.04 * rows, 0.03 * cols
    r1, c1 = r0 + 11 * cell, c0 + (len(text) * 6 + 3) * cell
    prims: list[_Primitive] = [_Box(r0, c0, r1, c1, _OD_LABEL_PAPER, "label", opaque=True)]
    prims.extend(
        _text_boxes(text, (r0 + 2 * cell, c0 + 2 * cell), cell, _OD_INK["black"] * 1.2, "label")
    )
    return prims, (r0, c0, r1, c1)


def _ruler_layout(
    slide: SyntheticSlide, rng: np.random.Generator
) -> tuple[list[_Primitive], _Rect]:
    """Lay out the ruler (bottom left): bar, edges, 1 mm ticks (20 ticks if under 8 mm)."""
    rows, cols = slide.shape_rc
    bar_h = max(0.035 * min(rows, cols), 16.0)
    r0, c0 = rows - 0.05 * rows - bar_h, 0.08 * cols
    r1, c1 = r0 + bar_h, c0 + 0.55 * cols
    edge = max(bar_h * 0.06, 1.5)
    ink = _OD_INK["black"] * 1.3
    prims: list[_Primitive] = [
        _Box(r0, c0, r1, c1, _OD_RULER_BAR, "ruler", opaque=True),
        _Box(r0, c0, r0 + edge, c1, ink, "ruler"),
        _Box(r1 - edge, c0, r1, c1, ink, "ruler"),
    ]
    mm = 1000.0 / slide.mpp
    spacing = mm if (c1 - c0) / mm >= 8 else (c1 - c0) / 20.0
    tick_w = max(spacing * 0.08, 1.5)
    k = 1
    c = c0 + spacing
    while c < c1 - spacing / 2:
        length = 0.6 if k % 5 == 0 else 0.35
        prims.append(_Box(r0, c - tick_w / 2, r0 + length * bar_h, c + tick_w / 2, ink, "ruler"))
        c += spacing
        k += 1
    return prims, (r0, c0, r1, c1)


def _marker_layout(
    slide: SyntheticSlide, rng: np.random.Generator
) -> tuple[list[_Primitive], _Rect]:
    """Lay out the marker 'R' (top right, black or blue ink); return it and its glass."""
    rows, cols = slide.shape_rc
    size = min(rows, cols)
    height = 0.09 * size
    centre = (0.05 * rows + height / 2, cols - 0.06 * cols - 0.31 * height)
    ink = _OD_INK[str(rng.choice(["black", "blue"]))] * 1.1
    prims: list[_Primitive] = list(_glyph_r(centre, height, max(0.006 * size, 1.5), ink, rng))
    pad = height * 0.15
    box = (
        centre[0] - height / 2 - pad,
        centre[1] - 0.31 * height - pad,
        centre[0] + height / 2 + pad,
        centre[1] + 0.31 * height + pad,
    )
    return prims, box


_GLASS_ARTEFACTS: dict[
    str, Callable[[SyntheticSlide, np.random.Generator], tuple[list[_Primitive], _Rect]]
] = {"label": _label_layout, "ruler": _ruler_layout, "marker": _marker_layout}


def _tissue_field(
    shape_rc: tuple[int, int],
    centres: tuple[npt.NDArray[np.floating[Any]], npt.NDArray[np.floating[Any]]],
    reserved: Sequence[_Rect],
    rng: np.random.Generator,
) -> tuple[FloatArray, list[_Rect]]:
    """Draw one to three irregular tissue pieces (field > 0 inside), off the reserved glass.

    Returns the field on the cell ``centres`` (rows, cols) and each piece's
    (centre row, centre col, radius rows, radius cols).
    """
    rows, cols = shape_rc
    cr, cc = centres
    fshape = (len(cr), len(cc))
    n_pieces = int(rng.integers(1, 4))
    tissue = np.full(fshape, -1.0, np.float32)
    pieces: list[_Rect] = []
    region = (0.2 * rows, 0.12 * cols, 0.8 * rows, 0.88 * cols)
    for k in range(n_pieces):
        lo = region[1] + (region[3] - region[1]) * k / n_pieces
        hi = region[1] + (region[3] - region[1]) * (k + 1) / n_pieces
        rad_r = rng.uniform(0.2, 0.28) * rows
        rad_c = min(rng.uniform(0.35, 0.5) * (hi - lo), 0.3 * cols)
        cen_r = rng.uniform(0.45, 0.55) * rows
        cen_c = rng.uniform(lo + 0.45 * (hi - lo), hi - 0.45 * (hi - lo))
        ang = rng.uniform(-0.3, 0.3)
        dr = (cr - cen_r)[:, None]
        dc = (cc - cen_c)[None, :]
        a = (dr * math.cos(ang) + dc * math.sin(ang)) / rad_r
        b = (dc * math.cos(ang) - dr * math.sin(ang)) / rad_c
        tissue = np.maximum(tissue, (1.0 - np.sqrt(a**2 + b**2)).astype(np.float32))
        pieces.append((cen_r, cen_c, rad_r, rad_c))
    tissue += 0.22 * _fft_noise(fshape, rng, sigma=max(fshape) / 40.0)
    tissue += 0.08 * _fft_noise(fshape, rng, sigma=max(fshape) / 120.0)
    pad = 0.02 * min(rows, cols)
    for r0, c0, r1, c1 in reserved:
        rs = (cr >= r0 - pad) & (cr <= r1 + pad)
        cs = (cc >= c0 - pad) & (cc <= c1 + pad)
        tissue[np.ix_(rs, cs)] = -1.0
    tissue[:2] = tissue[-2:] = -1.0
    tissue[:, :2] = tissue[:, -2:] = -1.0
    return tissue, pieces


class SyntheticSlide:
    """Procedural definition of a synthetic H&E slide that renders any tile of any level.

    Parameters
    ----------
    shape_rc : tuple of int
        Level-0 (rows, cols), at least 64 x 64.
    seed : int
        Seed of the layout (tissue pieces, tumour, artefacts) and of the textures.
    tumour : bool
        Whether tumour-like regions are present.
    artefacts : sequence of str
        Which of ``"pen"``, ``"marker"``, ``"ruler"``, ``"label"`` to draw.
    tile_size : int
        Tile side in pixels (multiple of 16 that divides 2048).
    mpp : float
        Micrometres per level-0 pixel, written to the file (textures are drawn for
        about 0.5 µm/px whatever this says).

    Attributes
    ----------
    level_downsamples : tuple of int
        1, 4, 16, ... (Aperio-like), until the smallest level fits in 1024 px.
    level_shapes_rc : tuple of tuple of int
        (rows, cols) of each level (level-0 size floor-divided by the downsample).
    """

    def __init__(
        self,
        shape_rc: tuple[int, int] = (8192, 8192),
        *,
        seed: int = 0,
        tumour: bool = True,
        artefacts: Sequence[str] = ARTEFACT_KINDS,
        tile_size: int = 512,
        mpp: float = 0.5,
    ) -> None:
        rows, cols = (int(shape_rc[0]), int(shape_rc[1]))
        if rows < 64 or cols < 64:
            raise ValueError(f"synthetic slide too small: {shape_rc} (at least 64 x 64)")
        if tile_size % 16 or _PERIOD % tile_size:
            raise ValueError(f"tile_size {tile_size} must be a multiple of 16 dividing {_PERIOD}")
        unknown = set(artefacts) - set(ARTEFACT_KINDS)
        if unknown:
            raise ValueError(f"unknown artefact kinds {sorted(unknown)}: use {ARTEFACT_KINDS}")
        self.shape_rc = (rows, cols)
        self.seed = int(seed)
        self.tumour = bool(tumour)
        self.artefact_kinds = tuple(k for k in ARTEFACT_KINDS if k in artefacts)
        self.tile_size = int(tile_size)
        self.mpp = float(mpp)
        ds = [1]
        while max(rows, cols) / ds[-1] > 1024 and ds[-1] * 4 <= 256:
            ds.append(ds[-1] * 4)
        self.level_downsamples: tuple[int, ...] = tuple(ds)
        self.level_shapes_rc: tuple[tuple[int, int], ...] = tuple(
            (max(1, rows // d), max(1, cols // d)) for d in ds
        )
        self.primitives: list[_Primitive] = []
        self._build_layout()

    def __repr__(self) -> str:
        return (
            f"SyntheticSlide(shape_rc={self.shape_rc}, seed={self.seed}, tumour={self.tumour}, "
            f"artefacts={self.artefact_kinds}, tile_size={self.tile_size}, mpp={self.mpp})"
        )

    # -- layout -----------------------------------------------------------
    def _build_layout(self) -> None:
        rows, cols = self.shape_rc
        rng = np.random.default_rng([self.seed, 2])
        size = min(rows, cols)
        self.field_step = float(_pow2_at_least(max(rows, cols) / 512.0))
        step = self.field_step
        fshape = (int(math.ceil(rows / step)), int(math.ceil(cols / step)))
        cr = (np.arange(fshape[0]) + 0.5) * step
        cc = (np.arange(fshape[1]) + 0.5) * step
        reserved: list[_Rect] = []  # glass kept free of tissue

        for kind in ("label", "ruler", "marker"):  # in this order: the marker draws from rng
            if kind in self.artefact_kinds:
                prims, box = _GLASS_ARTEFACTS[kind](self, rng)
                self.primitives.extend(prims)
                reserved.append(box)
        tissue, pieces = _tissue_field(self.shape_rc, (cr, cc), reserved, rng)
        n_pieces = len(pieces)

        # Tumour: a blob inside one or two pieces; pathologists circle it with a pen.
        tum = np.full(fshape, -1.0, np.float32)
        pen_hw = max(0.004 * size, 1.5)
        if self.tumour:
            n_tum = int(rng.integers(1, min(2, n_pieces) + 1))
            for k in rng.permutation(n_pieces)[:n_tum]:
                cen_r, cen_c, rad_r, rad_c = pieces[int(k)]
                tr = rad_r * rng.uniform(0.3, 0.45)
                tc = rad_c * rng.uniform(0.3, 0.45)
                off = rng.uniform(-0.25, 0.25, 2)
                ctr = (cen_r + off[0] * rad_r, cen_c + off[1] * rad_c)
                dr = (cr - ctr[0])[:, None] / tr
                dc = (cc - ctr[1])[None, :] / tc
                tum = np.maximum(tum, (1.0 - np.sqrt(dr**2 + dc**2)).astype(np.float32))
                if "pen" in self.artefact_kinds:
                    colour = str(rng.choice(["green", "blue", "black"], p=[0.6, 0.3, 0.1]))
                    self.primitives.append(
                        _pen_loop(ctr, (tr * 1.45, tc * 1.45), pen_hw, _OD_INK[colour] * 1.2, rng)
                    )
            tum += 0.25 * _fft_noise(fshape, rng, sigma=max(fshape) / 60.0)
            tum = np.minimum(tum, tissue)
        if "pen" in self.artefact_kinds:
            if not self.tumour:
                cen_r, cen_c, rad_r, rad_c = pieces[0]
                self.primitives.append(
                    _pen_loop(
                        (cen_r, cen_c),
                        (rad_r * 0.5, rad_c * 0.5),
                        pen_hw,
                        _OD_INK["green"] * 1.2,
                        rng,
                    )
                )
            # a stray stroke on the glass below the last piece
            cen_r, cen_c, rad_r, rad_c = pieces[-1]
            p0 = np.array([cen_r + rad_r * 1.1, cen_c - rad_c * 0.5])
            p1 = np.array([cen_r + rad_r * 1.2, cen_c + rad_c * 0.4])
            t = np.linspace(0, 1, 12)[:, None]
            pts = p0 + (p1 - p0) * t + rng.normal(0, 0.006 * size, (12, 2))
            pts[:, 0] = np.clip(pts[:, 0], 0.02 * rows, 0.88 * rows)
            self.primitives.append(_Stroke(pts, pen_hw, _OD_INK["blue"] * 1.2, "pen"))

        stain = 1.0 + 0.12 * _fft_noise(fshape, rng, sigma=max(fshape) / 25.0)
        mix = 0.5 + 0.5 * np.tanh(1.5 * _fft_noise(fshape, rng, sigma=max(fshape) / 50.0))
        # fields stacked: tissue, tumour, stain, mix (field units; > 0 means inside)
        self._fields = np.stack([tissue, tum, stain, mix]).astype(np.float32)
        near = np.abs(tissue) < 0.1
        gy, gx = np.gradient(tissue)
        slope = float(np.median(np.hypot(gy, gx)[near])) if near.any() else 0.05
        self._slope = max(slope, 1e-4) / step  # field units per level-0 pixel

    # -- rendering ----------------------------------------------------------
    def _edge_width(self, step: float) -> float:
        return self._slope * max(step, 3.0)

    def _field_range(
        self, origin0: tuple[float, float], shape: tuple[int, int], step: float
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]] | None:
        """Min and max of each field over the cells a region interpolates from (or more)."""
        fs = self.field_step
        fr, fc = self._fields.shape[1:]
        r0 = max(0, int(origin0[0] / fs - 1.5))
        r1 = min(fr, int((origin0[0] + shape[0] * step) / fs + 2.5))
        c0 = max(0, int(origin0[1] / fs - 1.5))
        c1 = min(fc, int((origin0[1] + shape[1] * step) / fs + 2.5))
        if r0 >= r1 or c0 >= c1:
            return None
        cells = self._fields[:, r0:r1, c0:c1]
        return cells.min(axis=(1, 2)), cells.max(axis=(1, 2))

    def _has_tissue(
        self, origin0: tuple[float, float], shape: tuple[int, int], step: float
    ) -> bool:
        rng = self._field_range(origin0, shape, step)
        return rng is not None and bool(rng[1][0] > -self._edge_width(step) / 2)

    def is_background(self, level: int, tile_rc: tuple[int, int]) -> bool:
        """Whether a tile is bare glass (no tissue, no artefact), without rendering it.

        Parameters
        ----------
        level : int
            Pyramid level.
        tile_rc : tuple of int
            (row, col) of the tile in that level's tile grid.

        Returns
        -------
        bool
        """
        ds = self.level_downsamples[level]
        t = self.tile_size
        origin0 = (float(tile_rc[0] * t * ds), float(tile_rc[1] * t * ds))
        if self._has_tissue(origin0, (t, t), ds):
            return False
        return not any(
            _intersects(p.bbox, origin0, (t, t), ds, margin=2 * ds) for p in self.primitives
        )

    def render_region(
        self, origin_rc: tuple[int, int], shape_rc: tuple[int, int], *, level: int = 0
    ) -> UInt8Array:
        """Render a region of one level.

        Parameters
        ----------
        origin_rc : tuple of int
            Top-left (row, col) in pixels of that level.
        shape_rc : tuple of int
            (rows, cols) to render, in pixels of that level.
        level : int
            Pyramid level (index into ``level_downsamples``).

        Returns
        -------
        ndarray of shape (rows, cols, 3), uint8
            RGB pixels.
        """
        ds = self.level_downsamples[level]
        atlas = _atlas_pyramid(self.seed, self.level_downsamples, self.tile_size)[ds]
        h, w = int(shape_rc[0]), int(shape_rc[1])
        R, C = int(origin_rc[0]), int(origin_rc[1])
        origin0 = (float(R * ds), float(C * ds))

        def crop(name: str) -> FloatArray:
            return atlas.take(name, R, C, h, w)

        glass = crop("glass")
        ew = self._edge_width(ds)
        bounds = self._field_range(origin0, (h, w), ds)
        if bounds is not None and bounds[1][0] > -ew / 2:
            # bilinear samples stay within the cells' range: skip what is constant
            lo, hi = bounds
            inside = bool(lo[0] >= ew / 2)  # tissue everywhere
            no_tumour = bool(hi[1] <= -ew / 2)
            all_tumour = bool(lo[1] >= ew / 2)
            rows = _pixel_centres(origin0[0], h, ds)
            cols = _pixel_centres(origin0[1], w, ds)
            exact = not (inside and (no_tumour or all_tumour))
            f = _interp_fields(self._fields[:2], rows, cols, self.field_step) if exact else None
            # stain and texture mix vary slowly: sample them every 8 px
            k = 8
            coarse = _interp_fields(self._fields[2:], rows[::k], cols[::k], self.field_step)
            coarse = np.repeat(np.repeat(coarse, k, axis=1), k, axis=2)[:, :h, :w]
            mix = coarse[1]
            if all_tumour and inside:
                tex = np.array(crop("tumour"))
            elif mix.max() < 0.02:
                tex = np.array(crop("normal_a"))
            elif mix.min() > 0.98:
                tex = np.array(crop("normal_b"))
            else:
                na = crop("normal_a")
                nb = crop("normal_b")
                tex = nb - na
                tex *= mix
                tex += na
            if f is not None and not no_tumour:
                a_u = np.clip(f[1] / ew + 0.5, 0.0, 1.0)
                tu = crop("tumour")
                tex += (tu - tex) * a_u
            # light absorbed by tissue scales with its coverage and stain intensity
            if f is None or inside:
                weight = coarse[0]
            else:
                weight = np.clip(f[0] / ew + 0.5, 0.0, 1.0) * coarse[0]
            tex -= glass
            tex *= weight
            tex += glass
            trans = tex
        else:
            trans = np.array(glass, np.float32)
        prims = [p for p in self.primitives if _intersects(p.bbox, origin0, (h, w), ds, ds)]
        if prims:
            ink = crop("ink")
            _apply_primitives(trans, prims, origin0, float(ds), ink, white=255.0)
        return _to_uint8(trans, 255.0)

    def render_label(self, *, min_width: int = 256) -> UInt8Array | None:
        """Render the printed label (as scanners store it apart), or None without one.

        Parameters
        ----------
        min_width : int
            Render at the coarsest level where the label is at least this wide.

        Returns
        -------
        ndarray of shape (rows, cols, 3), uint8, or None
        """
        boxes = [p for p in self.primitives if isinstance(p, _Box) and p.kind == "label"]
        if not boxes:
            return None
        paper = boxes[0]
        level = 0
        for i, ds in enumerate(self.level_downsamples):
            if (paper.c1 - paper.c0) / ds >= min_width:
                level = i
        ds = self.level_downsamples[level]
        r0, c0 = int(paper.r0 // ds), int(paper.c0 // ds)
        r1, c1 = int(math.ceil(paper.r1 / ds)), int(math.ceil(paper.c1 / ds))
        return self.render_region((r0, c0), (r1 - r0, c1 - c0), level=level)

    def render_tile(self, level: int, tile_rc: tuple[int, int]) -> UInt8Array:
        """Render tile (row, col) of ``level`` as a full (tile, tile, 3) uint8 array.

        Tiles at the right and bottom edges extend past the level and are
        rendered whole (as written to the TIFF).
        """
        t = self.tile_size
        return self.render_region((tile_rc[0] * t, tile_rc[1] * t), (t, t), level=level)

    def truth(self, *, downsample: int | None = None) -> SyntheticTruth:
        """Ground-truth masks at ``downsample`` level-0 px per mask px.

        Parameters
        ----------
        downsample : int, optional
            Default: the smallest power of two giving masks of at most 2048 px.

        Returns
        -------
        SyntheticTruth
            With ``path`` None (set by :func:`write_synthetic_slide`).
        """
        rows, cols = self.shape_rc
        d = int(downsample or _pow2_at_least(max(rows, cols) / 2048.0))
        shape = (-(-rows // d), -(-cols // d))
        f = _interp_fields(
            self._fields[:2],
            _pixel_centres(0.0, shape[0], d),
            _pixel_centres(0.0, shape[1], d),
            self.field_step,
        )
        tissue = f[0] > 0
        tumour = (f[1] > 0) & tissue
        per_kind: dict[str, BoolArray] = {}
        for kind in self.artefact_kinds:
            cov = np.zeros(shape, np.float32)
            for p in self.primitives:
                if p.kind == kind:
                    np.maximum(cov, _coverage(p, (0.0, 0.0), shape, float(d)), out=cov)
            per_kind[kind] = cov >= 0.3
        artefact = np.zeros(shape, bool)
        for m in per_kind.values():
            artefact |= m
        return SyntheticTruth(
            path=None,
            shape_rc=self.shape_rc,
            mpp=self.mpp,
            downsample=d,
            tissue=tissue,
            tumour=tumour,
            artefact=artefact,
            artefacts=per_kind,
            seed=self.seed,
        )


# ---------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------

ProgressCallback = Callable[[int, int], Any]


def _aperio_description(
    slide: SyntheticSlide, level_shape_rc: tuple[int, int] | None, quality: int, stem: str
) -> str:
    """ImageDescription in Aperio's layout (tiffslide/OpenSlide read vendor, MPP, AppMag)."""
    rows, cols = slide.shape_rc
    t = slide.tile_size
    head = f"Aperio Image Library v12.0.15\r\n{cols}x{rows} [0,0 {cols}x{rows}] ({t}x{t})"
    if level_shape_rc is not None:
        head += f" -> {level_shape_rc[1]}x{level_shape_rc[0]}"
    mag = round(10.0 / slide.mpp)
    return (
        f"{head} JPEG/RGB Q={quality}|AppMag = {mag}|MPP = {slide.mpp:g}"
        f"|ScanScope ID = napari-xai synthetic|Filename = {stem}|Seed = {slide.seed}"
    )


def _encode_jpeg(tile: UInt8Array, quality: int) -> bytes:
    """JPEG bytes as tifffile writes them (YCbCr, 2x2 chroma subsampling)."""
    import imagecodecs

    return bytes(
        imagecodecs.jpeg8_encode(
            tile, level=quality, colorspace="RGB", outcolorspace="YCBCR", subsampling=(2, 2)
        )
    )


def _iter_encoded_tiles(
    slide: SyntheticSlide,
    level: int,
    quality: int,
    pool: ThreadPoolExecutor,
    workers: int,
    on_tile: Callable[[], None],
) -> Iterator[bytes]:
    """Yield encoded tiles of one level in row-major order, rendered in a thread pool.

    At most a few tiles per worker are in flight, so memory stays bounded.
    Bare-glass tiles repeat with the texture period: they are encoded once.
    """
    t = slide.tile_size
    rows, cols = slide.level_shapes_rc[level]
    n_r, n_c = -(-rows // t), -(-cols // t)
    period = max(1, _PERIOD // slide.level_downsamples[level] // t)
    cache: dict[tuple[int, int], bytes] = {}
    cache_lock = threading.Lock()

    def job(tr: int, tc: int) -> bytes:
        key = (tr % period, tc % period)
        background = slide.is_background(level, (tr, tc))
        if background:
            with cache_lock:
                hit = cache.get(key)
            if hit is not None:
                return hit
        data = _encode_jpeg(slide.render_tile(level, (tr, tc)), quality)
        if background:
            with cache_lock:
                cache[key] = data
        return data

    in_flight: deque[Future[bytes]] = deque()
    max_in_flight = 4 * max(1, workers)  # bounded look-ahead: bounded memory
    for tr in range(n_r):
        for tc in range(n_c):
            in_flight.append(pool.submit(job, tr, tc))
            if len(in_flight) >= max_in_flight:
                data = in_flight.popleft().result()
                on_tile()  # before yielding: the writer stops pulling after the last tile
                yield data
    while in_flight:
        data = in_flight.popleft().result()
        on_tile()
        yield data


def _tile_counter(slide: SyntheticSlide, progress: ProgressCallback | None) -> Callable[[], None]:
    """Return a callback counting written tiles over all levels, reporting to ``progress``."""
    t = slide.tile_size
    total = sum(-(-r // t) * -(-c // t) for r, c in slide.level_shapes_rc)
    done = 0

    def on_tile() -> None:
        nonlocal done
        done += 1
        if progress is not None:
            progress(done, total)

    return on_tile


def _thumbnail(slide: SyntheticSlide) -> UInt8Array:
    """Render the lowest level, subsampled to at most about 1024 px a side.

    Builds the texture atlases first (once, before the rendering threads need them).
    """
    _atlas_pyramid(slide.seed, slide.level_downsamples, slide.tile_size)
    last = len(slide.level_downsamples) - 1
    low = slide.render_region((0, 0), slide.level_shapes_rc[last], level=last)
    step = max(1, -(-max(low.shape[:2]) // 1024))
    return np.ascontiguousarray(low[::step, ::step])


@dataclass(frozen=True)
class _SvsWriter:
    """What the pages of one synthetic SVS file share: the slide, its encoding and threads."""

    tw: Any  # tifffile.TiffWriter
    slide: SyntheticSlide
    quality: int
    stem: str
    pool: ThreadPoolExecutor
    workers: int
    on_tile: Callable[[], None]

    def level(self, level: int) -> None:
        """Write one pyramid level (tiled JPEG, Aperio description and resolution)."""
        slide, quality = self.slide, self.quality
        shape = slide.level_shapes_rc[level]
        t = slide.tile_size
        res = 1e4 / (slide.mpp * slide.level_downsamples[level])
        self.tw.write(
            _iter_encoded_tiles(slide, level, quality, self.pool, self.workers, self.on_tile),
            shape=(*shape, 3),
            dtype=np.uint8,
            tile=(t, t),
            photometric="rgb",
            compression="jpeg",
            compressionargs={"level": quality},
            subsampling=(2, 2),
            description=_aperio_description(
                slide, None if level == 0 else shape, quality, self.stem
            ),
            metadata=None,
            resolution=(res, res),
            resolutionunit="CENTIMETER",
            subfiletype=0,
        )

    def thumbnail(self, thumb: UInt8Array) -> None:
        """Write the stripped thumbnail (Aperio's page 1, right after level 0)."""
        self.tw.write(
            thumb,
            photometric="rgb",
            compression="jpeg",
            compressionargs={"level": 90},
            description=_aperio_description(self.slide, thumb.shape[:2], self.quality, self.stem),
            metadata=None,
            subfiletype=0,
        )

    def associated(self, thumb: UInt8Array) -> None:
        """Write Aperio's associated images: the label (subfiletype 1), then the macro (9)."""
        label = self.slide.render_label()
        if label is not None:
            self.tw.write(
                label,
                photometric="rgb",
                compression="lzw",
                description=f"Aperio Image Library v12.0.15\r\nlabel {label.shape[1]}x"
                f"{label.shape[0]}",
                metadata=None,
                subfiletype=1,
            )
        self.tw.write(
            thumb,
            photometric="rgb",
            compression="jpeg",
            compressionargs={"level": 90},
            description=f"Aperio Image Library v12.0.15\r\nmacro {thumb.shape[1]}x"
            f"{thumb.shape[0]}",
            metadata=None,
            subfiletype=9,
        )


def _write_svs(
    tmp: Path,
    slide: SyntheticSlide,
    thumb: UInt8Array,
    *,
    quality: int,
    stem: str,
    workers: int,
    on_tile: Callable[[], None],
) -> None:
    """Write the pages in Aperio's order: level 0, thumbnail, lower levels, label, macro."""
    import tifffile

    with (
        tifffile.TiffWriter(tmp, bigtiff=True) as tw,
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="synthetic") as pool,
    ):
        pages = _SvsWriter(tw, slide, quality, stem, pool, workers, on_tile)
        for level in range(len(slide.level_downsamples)):
            pages.level(level)
            if level == 0:
                pages.thumbnail(thumb)
        pages.associated(thumb)


def write_synthetic_slide(
    path: str | Path,
    *,
    shape_rc: tuple[int, int] = (8192, 8192),
    mpp: float = 0.5,
    tile_size: int = 512,
    seed: int = 0,
    tumour: bool = True,
    artefacts: Sequence[str] = ARTEFACT_KINDS,
    quality: int = 80,
    workers: int | None = None,
    progress: ProgressCallback | None = None,
) -> SyntheticTruth:
    """Write a synthetic H&E slide as a pyramidal, JPEG-tiled, Aperio-SVS-style TIFF.

    Tiles are rendered and encoded in a few threads and streamed to the file,
    so memory stays bounded (a few hundred MB of texture atlases, whatever the
    size). Pages follow Aperio's layout: level 0, a thumbnail, then levels
    downsampled by 4, 16, ... (tiled, JPEG), with ``MPP`` and ``AppMag`` in the
    ImageDescription, so tiffslide and OpenSlide report vendor ``aperio`` and
    the mpp. The file appears atomically (written under a temporary name).
    The ground truth is saved beside it (``<path>.truth.npz``).

    Parameters
    ----------
    path : str or Path
        Output file, e.g. ``slide.svs``.
    shape_rc : tuple of int
        Level-0 (rows, cols); e.g. (80_000, 100_000) for a gigapixel slide.
    mpp : float
        Micrometres per level-0 pixel written to the file.
    tile_size : int
        Tile side (multiple of 16 dividing 2048).
    seed : int
        Seed: the same seed and parameters give the same pixels.
    tumour : bool
        Whether to draw tumour-like regions.
    artefacts : sequence of str
        Subset of ``("pen", "marker", "ruler", "label")``.
    quality : int
        JPEG quality (1-100).
    workers : int, optional
        Rendering threads (default: up to 4, by CPU count).
    progress : callable, optional
        Called as ``progress(done_tiles, total_tiles)`` after each tile.

    Returns
    -------
    SyntheticTruth
        Masks (tissue, tumour, artefacts) with ``path`` set to the slide.
    """
    path = Path(path)
    slide = SyntheticSlide(
        shape_rc, seed=seed, tumour=tumour, artefacts=artefacts, tile_size=tile_size, mpp=mpp
    )
    if workers is None:
        workers = max(1, min(4, os.cpu_count() or 1))
    on_tile = _tile_counter(slide, progress)
    thumb = _thumbnail(slide)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        _write_svs(
            tmp, slide, thumb, quality=quality, stem=path.stem, workers=workers, on_tile=on_tile
        )
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    truth = slide.truth()
    truth.path = path
    truth.save()
    return truth
