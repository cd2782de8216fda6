"""Synthetic H&E-looking whole-slide images with known ground truth.

Two entry points:

* :func:`render_patch` renders one labelled patch (``"background"``, ``"normal"``,
  ``"tumour"``, ``"pen"``, ``"marker"``) for training and testing tile models.
* :func:`write_synthetic_slide` streams a pyramidal, JPEG-tiled, Aperio-SVS-style
  TIFF of any size (up to 100,000 x 80,000 px and beyond) with bounded memory,
  and returns its ground truth (:class:`SyntheticTruth`: tissue, tumour and
  artefact masks at a low resolution).

Both use the same texture code. Slide content is defined by smooth low-resolution
fields (tissue, tumour, stain variation) and by vector artefacts (pen strokes, a
marker 'R', a ruler, a text label) in level-0 pixels; every tile of every level is
rendered on its own, deterministically from ``(seed, level, tile position)``, at
that level's resolution (lower levels are not decoded from level 0).

Colours are composed in optical density (Beer-Lambert): ``rgb = 255 exp(-od)``,
with haematoxylin (nuclei, purple) and eosin (stroma, pink) stain vectors.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "ARTEFACT_KINDS",
    "PATCH_KINDS",
    "render_patch",
]

PATCH_KINDS: tuple[str, ...] = ("background", "normal", "tumour", "pen", "marker")
ARTEFACT_KINDS: tuple[str, ...] = ("pen", "marker", "ruler", "label")

FloatArray = npt.NDArray[np.float32]
UInt8Array = npt.NDArray[np.uint8]


def _od(rgb: Sequence[float]) -> FloatArray:
    """Optical density of an RGB colour (0-255)."""
    return (-np.log(np.asarray(rgb, dtype=np.float64) / 255.0)).astype(np.float32)


# Optical density at unit concentration (Beer-Lambert, natural log).
_OD_EOSIN = _od((238, 118, 188))
_OD_HAEMATOXYLIN = _od((72, 42, 128))
_OD_GLASS = _od((245, 244, 242))
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
    rows, cols = shape
    white = rng.standard_normal(shape)
    fr = np.fft.fftfreq(rows)[:, None]
    fc = np.fft.rfftfreq(cols)[None, :]
    ca, sa = math.cos(angle), math.sin(angle)
    u = fr * ca + fc * sa
    v = -fr * sa + fc * ca
    filt = np.exp(-2.0 * math.pi**2 * ((u * sigma * anisotropy) ** 2 + (v * sigma) ** 2))
    out = np.fft.irfft2(np.fft.rfft2(white) * filt, s=shape)
    out -= out.mean()
    std = out.std()
    if std > 0:
        out /= std
    return out.astype(np.float32)


def _draw_nuclei(
    h: FloatArray,
    e: FloatArray,
    rng: np.random.Generator,
    centres: npt.NDArray[np.float64],
    *,
    radius_rc: tuple[float, float],
    radius_jitter: float,
    irregularity: float,
    darkness: tuple[float, float],
    angles: npt.NDArray[np.float64] | None,
    chromatin: FloatArray,
    nucleoli: bool = False,
) -> None:
    """Draw soft, possibly irregular elliptical nuclei in place (periodic wrap)."""
    rows, cols = h.shape
    n = len(centres)
    if n == 0:
        return
    scale = np.exp(rng.normal(0.0, radius_jitter, n))
    ecc = np.exp(rng.normal(0.0, radius_jitter * 0.6, n))
    if angles is None:
        angles = rng.uniform(0.0, math.pi, n)
    dark = rng.uniform(darkness[0], darkness[1], n)
    phases = rng.uniform(0.0, 2 * math.pi, (n, 3))
    amps = rng.uniform(0.0, irregularity, (n, 3))
    for i in range(n):
        ry = radius_rc[0] * scale[i] * ecc[i]
        rx = radius_rc[1] * scale[i] / ecc[i]
        reach = int(math.ceil(max(ry, rx) * (1.0 + 2 * irregularity) + 2))
        r0 = int(math.floor(centres[i, 0]))
        c0 = int(math.floor(centres[i, 1]))
        rr = np.arange(r0 - reach, r0 + reach + 1)
        cc = np.arange(c0 - reach, c0 + reach + 1)
        dr = (rr + 0.5 - centres[i, 0])[:, None]
        dc = (cc + 0.5 - centres[i, 1])[None, :]
        ca, sa = math.cos(angles[i]), math.sin(angles[i])
        a = dr * ca + dc * sa
        b = -dr * sa + dc * ca
        theta = np.arctan2(b, a)
        rad = np.sqrt((a / ry) ** 2 + (b / rx) ** 2)
        if irregularity > 0:
            wob = 1.0 + (
                amps[i, 0] * np.cos(2 * theta + phases[i, 0])
                + amps[i, 1] * np.cos(3 * theta + phases[i, 1])
                + amps[i, 2] * np.cos(5 * theta + phases[i, 2])
            )
            rad = rad / wob
        edge = 1.5 / max(min(ry, rx), 1.0)
        alpha = np.clip((1.0 - rad) / edge + 0.5, 0.0, 1.0).astype(np.float32)
        ir = np.mod(rr, rows)
        ic = np.mod(cc, cols)
        sub = np.ix_(ir, ic)
        chrom = chromatin[sub]
        val = alpha * dark[i] * (0.7 + 0.3 * chrom)
        if nucleoli:
            dist = np.sqrt(a**2 + b**2)
            val = val + 0.6 * dark[i] * np.clip(2.2 - dist, 0.0, 1.0).astype(np.float32)
        h[sub] = np.maximum(h[sub], val)
        e[sub] = e[sub] * (1.0 - 0.75 * alpha)


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


def _tissue_od(
    kind: str, shape: tuple[int, int], rng: np.random.Generator
) -> npt.NDArray[np.float32]:
    """Optical density (rows, cols, 3) of a periodic tissue texture without glass.

    ``kind`` is ``"normal"`` (eosin-pink stroma with fibres and sparse small
    nuclei) or ``"tumour"`` (sheets of large, irregular, dark nuclei).
    """
    rows, cols = shape
    chromatin = 0.5 + 0.5 * np.tanh(_fft_noise(shape, rng, sigma=1.2))
    blotch = _fft_noise(shape, rng, sigma=min(rows, cols) / 10.0)
    theta = rng.uniform(0, math.pi)
    fib1 = _fft_noise(shape, rng, sigma=1.6, anisotropy=7.0, angle=theta)
    fib2 = _fft_noise(shape, rng, sigma=1.6, anisotropy=7.0, angle=theta + 0.6)
    mix = 0.5 + 0.5 * np.tanh(_fft_noise(shape, rng, sigma=min(rows, cols) / 16.0))
    ridges = np.exp(-(((fib1 * mix) + fib2 * (1 - mix)) ** 2) * 1.5)
    area = rows * cols
    if kind == "normal":
        e = (0.62 * (0.45 + 0.75 * ridges) * (1.0 + 0.18 * blotch)).astype(np.float32)
        loose = _fft_noise(shape, rng, sigma=9.0)
        e *= np.where(loose > 1.3, 0.35, 1.0).astype(np.float32)
        h = np.full(shape, 0.03, np.float32)
        n_spindle = rng.poisson(area / 1500.0)
        pts = rng.uniform(0, 1, (n_spindle, 2)) * (rows, cols)
        _draw_nuclei(
            h,
            e,
            rng,
            pts,
            radius_rc=(2.6, 8.5),
            radius_jitter=0.18,
            irregularity=0.05,
            darkness=(0.75, 1.05),
            angles=np.full(n_spindle, theta + rng.normal(0, 0.25)),
            chromatin=chromatin,
        )
        n_round = rng.poisson(area / 4500.0)
        pts = rng.uniform(0, 1, (n_round, 2)) * (rows, cols)
        _draw_nuclei(
            h,
            e,
            rng,
            pts,
            radius_rc=(4.2, 4.2),
            radius_jitter=0.12,
            irregularity=0.05,
            darkness=(0.95, 1.25),
            angles=None,
            chromatin=chromatin,
        )
    elif kind == "tumour":
        e = (0.34 * (0.75 + 0.3 * ridges) * (1.0 + 0.15 * blotch)).astype(np.float32)
        h = (0.10 + 0.04 * blotch).clip(0.02, None).astype(np.float32)
        pts = _jittered_grid(shape, rng, spacing=23.0, jitter=0.22)
        keep = rng.uniform(0, 1, len(pts)) < 0.9
        _draw_nuclei(
            h,
            e,
            rng,
            pts[keep],
            radius_rc=(9.0, 10.5),
            radius_jitter=0.22,
            irregularity=0.14,
            darkness=(0.7, 1.25),
            angles=None,
            chromatin=chromatin,
            nucleoli=True,
        )
    else:
        raise ValueError(f"unknown tissue kind {kind!r}: expected 'normal' or 'tumour'")
    od = h[..., None] * _OD_HAEMATOXYLIN + e[..., None] * _OD_EOSIN
    return od.astype(np.float32)


def _glass_od(shape: tuple[int, int], rng: np.random.Generator) -> FloatArray:
    """Optical density (rows, cols, 3) of empty glass: near white with slight noise."""
    noise = _fft_noise(shape, rng, sigma=0.8) * 0.006
    od = _OD_GLASS[None, None, :] + noise[..., None]
    return np.clip(od, 0.0, None).astype(np.float32)


def _od_to_rgb(od: FloatArray) -> UInt8Array:
    """RGB uint8 from optical density (Beer-Lambert)."""
    rgb = np.exp(-od)
    rgb *= 255.0
    rgb += 0.5
    np.clip(rgb, 0.0, 255.0, out=rgb)
    return rgb.astype(np.uint8)


def _rgb_to_od(rgb: npt.NDArray[Any]) -> FloatArray:
    """Optical density from RGB values in 0-255 (floats allowed)."""
    return (-np.log(np.clip(np.asarray(rgb, np.float64), 1.0, 255.0) / 255.0)).astype(np.float32)


# ---------------------------------------------------------------------------
# Vector artefacts (level-0 pixel coordinates, continuous: pixel i spans [i, i+1))
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Stroke:
    """A thick polyline (ink) in level-0 coordinates (rows, cols)."""

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
    return origin + (np.arange(n) + 0.5) * step


def _box_coverage(
    box: _Box, origin_rc: tuple[float, float], shape: tuple[int, int], step: float
) -> FloatArray:
    """Exact area coverage of pixels (rows, cols) of size ``step`` by a box."""
    r_lo = origin_rc[0] + np.arange(shape[0]) * step
    c_lo = origin_rc[1] + np.arange(shape[1]) * step
    cov_r = np.clip(np.minimum(r_lo + step, box.r1) - np.maximum(r_lo, box.r0), 0, step) / step
    cov_c = np.clip(np.minimum(c_lo + step, box.c1) - np.maximum(c_lo, box.c0), 0, step) / step
    return (cov_r[:, None] * cov_c[None, :]).astype(np.float32)


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
    od: FloatArray,
    prims: Sequence[_Primitive],
    origin_rc: tuple[float, float],
    step: float,
    ink_texture: FloatArray | None = None,
) -> None:
    """Composite artefacts over an optical-density image (rows, cols, 3) in place."""
    shape = od.shape[:2]
    for prim in prims:
        if not _intersects(prim.bbox, origin_rc, shape, step, margin=step):
            continue
        cov = _coverage(prim, origin_rc, shape, step)
        if not cov.any():
            continue
        if isinstance(prim, _Box) and prim.opaque:
            od *= (1.0 - cov)[..., None]
            od += cov[..., None] * prim.od
        else:
            if ink_texture is not None:
                cov = cov * ink_texture
            od += cov[..., None] * prim.od


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
    """A hand-drawn letter 'R' as three strokes (stem, bowl, leg)."""
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
    """A wobbly, not quite closed pen loop around a region (as pathologists draw)."""
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
    glass = _glass_od(shape, rng)
    stain = np.exp(rng.normal(0.0, 0.1, 3)).astype(np.float32)  # stain/scanner variation
    if kind == "background":
        od = glass
    elif kind in ("normal", "tumour"):
        od = glass + _tissue_od(kind, shape, rng) * stain
    else:
        base = rng.choice(["background", "normal", "tumour"], p=[0.4, 0.4, 0.2])
        od = glass if base == "background" else glass + _tissue_od(str(base), shape, rng) * stain
        ink = str(rng.choice(list(_INK_RGB)))
        density = float(rng.uniform(0.75, 1.3))
        ink_tex = (0.85 + 0.15 * np.tanh(_fft_noise(shape, rng, sigma=3.0))).astype(np.float32)
        prims: list[_Primitive]
        if kind == "pen":
            hw = float(rng.uniform(0.06, 0.2) * size)
            centre = (
                float(rng.uniform(-0.6, 1.6) * size),
                float(rng.uniform(-0.6, 1.6) * size),
            )
            radius = float(rng.uniform(0.7, 1.6) * size)
            prims = [_pen_loop(centre, (radius, radius), hw, _OD_INK[ink] * density, rng, arc=2.0)]
            # make sure the stroke crosses the patch
            if not _stroke_coverage(prims[0], (0.0, 0.0), shape, 1.0).any():  # type: ignore[arg-type]
                p0 = rng.uniform(0, size, 2)
                p1 = rng.uniform(0, size, 2)
                prims = [_Stroke(np.stack([p0, p1]), hw, _OD_INK[ink] * density, "pen")]
        else:
            height = float(rng.uniform(0.55, 0.85) * size)
            centre = (
                float(size / 2 + rng.normal(0, 0.06 * size)),
                float(size / 2 + rng.normal(0, 0.06 * size)),
            )
            hw = float(rng.uniform(0.03, 0.06) * size)
            prims = list(_glyph_r(centre, height, hw, _OD_INK[ink] * density, rng))
        _apply_primitives(od, prims, (0.0, 0.0), 1.0, ink_tex)
    return _od_to_rgb(od)
