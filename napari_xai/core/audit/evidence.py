"""Per-class × per-artefact attention evidence, with bootstrap confidence intervals.

A shortcut is usually one class and one kind of mark ("tumour" because of the
yellow marker), so a slide-wide average dilutes it. :func:`class_artefact_evidence`
measures, for every predicted class and every artefact kind, over the tiles of
that class that contain that kind: the share of the positive attribution mass on
the artefact, the share of the area it covers, and their ratio (enrichment), each
with a percentile bootstrap interval over tiles (ratio of sums, so big and small
marks weigh by their pixels). The worst pair is the headline.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "ARTEFACT_KIND_NAMES",
    "PairEvidence",
    "class_artefact_evidence",
    "colour_name",
    "ink_colour",
    "worst_pair",
]

#: Plain words for the artefact kinds of :func:`napari_xai.core.masks.artefact_labels`.
ARTEFACT_KIND_NAMES: dict[int, str] = {
    1: "ink",
    2: "dark mark (black ink, text, ruler)",
    3: "yellow or brown mark (marker, ruler, label)",
}


@dataclass(frozen=True)
class PairEvidence:
    """Attention figures of one predicted class on one artefact kind.

    Attributes
    ----------
    pred_class : str
        Predicted class.
    kind : int
        Artefact kind (key of :data:`ARTEFACT_KIND_NAMES`).
    name : str
        The artefact in words, with its colour (e.g. ``"yellow mark"``).
    n_tiles : int
        Tiles of ``pred_class`` that contain this kind.
    share, share_ci : float, (float, float)
        Share of those tiles' attribution on the artefact, and its 95 % bootstrap CI.
    area, area_ci : float, (float, float)
        Share of those tiles' area the artefact covers.
    enrichment, enrichment_ci : float, (float, float)
        ``share / area``.
    """

    pred_class: str
    kind: int
    name: str
    n_tiles: int
    share: float
    share_ci: tuple[float, float]
    area: float
    area_ci: tuple[float, float]
    enrichment: float
    enrichment_ci: tuple[float, float]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        d = asdict(self)

        def num(x: float) -> float | None:
            return float(x) if np.isfinite(x) else None

        for k in ("share", "area", "enrichment"):
            d[k] = num(d[k])
        for k in ("share_ci", "area_ci", "enrichment_ci"):
            d[k] = [num(x) for x in d[k]]
        return d


def colour_name(rgb: npt.ArrayLike) -> str:
    """Name the colour of a mean RGB value in plain words (green, blue, yellow, black...).

    Parameters
    ----------
    rgb : array-like of 3 numbers in [0, 255]

    Returns
    -------
    str
    """
    r, g, b = (float(x) / 255.0 for x in np.asarray(rgb, dtype=np.float64).reshape(3))
    mx, mn = max(r, g, b), min(r, g, b)
    if mx < 0.25:
        return "black"
    if mx - mn < 0.12:
        return "grey" if mx < 0.8 else "white"
    d = mx - mn
    if mx == r:
        hue = ((g - b) / d) % 6.0
    elif mx == g:
        hue = (b - r) / d + 2.0
    else:
        hue = (r - g) / d + 4.0
    hue *= 60.0
    if hue < 20 or hue >= 330:
        return "red" if mx > 0.45 else "brown"
    if hue < 45:
        return "orange" if mx > 0.6 else "brown"
    if hue < 70:
        return "yellow"
    # Pathologists' pens are green, blue, black or red: blue-green ("teal") inks
    # are called green up to 180 degrees, blue beyond.
    if hue < 180:
        return "green"
    if hue < 260:
        return "blue"
    return "purple"


def ink_colour(under: npt.ArrayLike, beside: npt.ArrayLike) -> str:
    """Name the colour of a mark from the pixels under it and the pixels beside it.

    Semi-transparent ink multiplies the light the tissue lets through, so in
    optical density it adds: the mark's own transmittance is
    ``10 ** -(OD_under - OD_beside)`` per channel (medians; the glass colour
    cancels). The mean RGB under the mark mixes in the tissue: a dark green pen
    over pink tissue reads grey.

    Parameters
    ----------
    under, beside : array-like of shape (n, 3), uint8 RGB
        Pixels under the mark and pixels of the same images off it. With no
        pixels beside, the mark is named from the median under it.

    Returns
    -------
    str
        A word of :func:`colour_name`.
    """
    inside = np.asarray(under, np.float64).reshape(-1, 3)
    outside = np.asarray(beside, np.float64).reshape(-1, 3)
    if not len(outside):
        return colour_name(np.median(inside, axis=0))
    delta = np.median(np.log10((outside + 1.0) / 256.0), axis=0) - np.median(
        np.log10((inside + 1.0) / 256.0), axis=0
    )
    return colour_name(255.0 * 10.0 ** -np.clip(delta, 0.0, None))


def _ratio_ci(
    num: npt.NDArray[np.float64],
    den: npt.NDArray[np.float64],
    boot: npt.NDArray[np.int64],
) -> tuple[float, float]:
    n = num[boot].sum(axis=1)
    d = den[boot].sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(d > 0, n / np.maximum(d, 1e-300), np.nan)
    r = r[np.isfinite(r)]
    if r.size == 0:
        return (float("nan"), float("nan"))
    lo, hi = np.percentile(r, [2.5, 97.5])
    return (float(lo), float(hi))


def class_artefact_evidence(
    attributions: npt.ArrayLike,
    kinds: npt.ArrayLike,
    pred_class: list[str] | tuple[str, ...],
    *,
    images: npt.ArrayLike | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> list[PairEvidence]:
    """Share of attribution on each artefact kind, per predicted class, with bootstrap CIs.

    Parameters
    ----------
    attributions : array-like, shape (N, H, W)
        Per-tile attribution maps; the positive part is the mass (evidence for the
        explained class).
    kinds : array-like of uint8, shape (N, H, W)
        Artefact kind under each pixel (0: none; see :data:`ARTEFACT_KIND_NAMES`).
    pred_class : sequence of str, length N
        Predicted class of each tile.
    images : array-like of uint8, shape (N, H, W, 3), optional
        The tiles: when given, each artefact is named by its colour.
    n_boot : int
        Bootstrap resamples over tiles.
    seed : int
        Bootstrap seed.

    Returns
    -------
    list of PairEvidence
        One per (class, kind) with at least one tile, in class then kind order.
    """
    maps = np.clip(np.nan_to_num(np.asarray(attributions, np.float64)), 0.0, None)
    kind_arr = np.asarray(kinds)
    if maps.shape != kind_arr.shape:
        raise ValueError(f"attributions {maps.shape} and kinds {kind_arr.shape} differ in shape")
    labels = np.asarray([str(c) for c in pred_class])
    if labels.shape[0] != maps.shape[0]:
        raise ValueError(f"pred_class has {labels.shape[0]} entries for {maps.shape[0]} tiles")
    n_pix = float(np.prod(maps.shape[1:])) if maps.ndim == 3 else 1.0
    total = maps.reshape(len(maps), -1).sum(axis=1)
    rng = np.random.default_rng(seed)
    out: list[PairEvidence] = []
    present = sorted(int(k) for k in np.unique(kind_arr) if k != 0)
    for k in present:
        on = kind_arr == k
        art_mass = (maps * on).reshape(len(maps), -1).sum(axis=1)
        art_pix = on.reshape(len(maps), -1).sum(axis=1).astype(np.float64)
        name = ARTEFACT_KIND_NAMES.get(k, f"artefact kind {k}")
        for cls in sorted(set(labels.tolist())):
            sel = np.flatnonzero((labels == cls) & (art_pix > 0))
            if sel.size == 0:
                continue
            colour = None
            if images is not None:
                imgs = np.asarray(images)[sel]
                under = imgs[on[sel]]
                if len(under):
                    colour = ink_colour(under, imgs[~on[sel]])
            m, t = art_mass[sel], total[sel]
            a, p = art_pix[sel], np.full(sel.size, n_pix)
            share = float(m.sum() / t.sum()) if t.sum() > 0 else 0.0
            area = float(a.sum() / p.sum())
            enrich = share / area if area > 0 else float("nan")
            boot = rng.integers(0, sel.size, (n_boot, sel.size))
            share_ci = _ratio_ci(m, t, boot)
            area_ci = _ratio_ci(a, p, boot)
            # Enrichment per resample: (sum m / sum t) / (sum a / sum p).
            sm, st = m[boot].sum(1), t[boot].sum(1)
            sa, sp = a[boot].sum(1), p[boot].sum(1)
            with np.errstate(divide="ignore", invalid="ignore"):
                e = (sm / np.maximum(st, 1e-300)) / (sa / sp)
            e = e[np.isfinite(e) & (st > 0)]
            e_ci = (
                (float(np.percentile(e, 2.5)), float(np.percentile(e, 97.5)))
                if e.size
                else (float("nan"), float("nan"))
            )
            label = name if colour is None or k == 2 else _coloured(k, colour)
            out.append(
                PairEvidence(
                    pred_class=cls,
                    kind=k,
                    name=label,
                    n_tiles=int(sel.size),
                    share=share,
                    share_ci=share_ci,
                    area=area,
                    area_ci=area_ci,
                    enrichment=float(enrich),
                    enrichment_ci=e_ci,
                )
            )
    return out


def _coloured(kind: int, colour: str) -> str:
    if kind == 1:
        return f"{colour} ink"
    return f"{colour} mark"


def worst_pair(pairs: list[PairEvidence], *, min_tiles: int = 1) -> PairEvidence | None:
    """Pick the pair most suggestive of a shortcut (lower CI bound of enrichment x share).

    Parameters
    ----------
    pairs : list of PairEvidence
    min_tiles : int
        Pairs over fewer tiles are ignored.

    Returns
    -------
    PairEvidence or None
    """
    ok = [p for p in pairs if p.n_tiles >= min_tiles and np.isfinite(p.enrichment_ci[0])]
    if not ok:
        return None
    return max(ok, key=lambda p: (p.enrichment_ci[0] * min(p.share, 1.0), p.share))
