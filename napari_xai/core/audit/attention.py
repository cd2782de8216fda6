"""Where the attribution mass lands: tissue, background, artefacts or the border.

Everything here works on plain arrays with known scales, so it does not depend
on any file format:

- a *region map* is a ``uint8`` array of shape (rows, cols) whose values are the
  region codes below, at some downsample ``d`` of level 0 (one region pixel covers
  ``d × d`` level-0 pixels, its top-left pixel at level-0 ``(i * d, j * d)``);
- an *attribution* (saliency) is a non-negative map of the same kind, per tile
  (``(N, H, W)``, one map per tile) or stitched over the slide.

Region codes are mutually exclusive. When masks overlap, the precedence is
artefact, then tissue, then border band, then background: pen ink on tissue
counts as artefact; tissue that touches the slide edge stays tissue; the border
band is the non-tissue frame of width ``border_width0`` along the slide edge
(scanner edge, label shadow, coverslip rim).

Mass is the sum of ``|attribution|`` over the pixels of a region; a *share* is
that mass divided by the total mass of the tile (or slide), so the shares of a
tile sum to 1 (or are all 0 when it has no mass at all). An *area share* is the
fraction of pixels of that region. *Enrichment* is share / area share: 1 means
the model looks at a region in proportion to its size; a shortcut shows up as a
small region (a marker glyph) with a large share, i.e. a large enrichment.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from napari_xai.core.options import Bounded, bounded, fraction

#: Region codes of a region map.
BACKGROUND: int = 0
TISSUE: int = 1
ARTEFACT: int = 2
BORDER: int = 3
#: Region names, indexed by region code.
REGION_NAMES: tuple[str, ...] = ("background", "tissue", "artefact", "border")
#: Regions that are not tissue ("off-tissue" attention).
OFF_TISSUE: tuple[int, ...] = (BACKGROUND, ARTEFACT, BORDER)


@dataclass(frozen=True)
class AuditThresholds(Bounded):
    """Thresholds of the attention audit (all shares are fractions in [0, 1]).

    Parameters
    ----------
    tile_off_tissue_share : float
        A tile is flagged when at least this share of its attribution mass lies on
        artefact, background or border pixels ...
    tile_enrichment : float
        ... and that share is at least this many times the fraction of the tile's
        area those pixels cover (so a half-empty tile whose attribution is spread
        evenly is not flagged: it looked everywhere, not at the background).
    slide_artefact_share : float
        The slide fails when the artefact share of all attribution mass reaches this
        and the artefact enrichment reaches ``slide_artefact_enrichment`` ...
    slide_artefact_enrichment : float
        ... (artefacts get this many times more attention than their area) ...
    slide_flagged_fraction : float
        ... or when at least this fraction of the audited tiles is flagged, or when
        the tiles of one predicted class (at least ``min_class_tiles`` of them)
        meet the artefact share and enrichment limits on their own (a shortcut is
        often class-specific).
    min_class_tiles : int
        Fewest tiles of a predicted class for its own shares to count.
    n_worst : int
        How many of the worst tiles are kept as evidence.
    """

    tile_off_tissue_share: float = fraction(0.5)
    tile_enrichment: float = bounded(2.0, low=0)
    slide_artefact_share: float = fraction(0.2)
    slide_artefact_enrichment: float = bounded(3.0, low=0)
    slide_flagged_fraction: float = fraction(0.1)
    min_class_tiles: int = 5
    n_worst: int = bounded(12, low=0)


@dataclass
class AttentionAudit:
    """Result of :func:`audit_attention`: where the attribution lands, pooled and judged.

    Only ``tiles``, ``thresholds`` and ``sign`` are given; the pooled shares, the
    flags and the verdict follow from them (computed once, on construction).

    Attributes
    ----------
    tiles : TileAttention
        Per-tile mass share, area share and mass per region code, and each tile's
        predicted class.
    thresholds : AuditThresholds
        The thresholds used.
    sign : str
        How attribution values became mass (see :func:`tile_region_shares`).
    overall : RegionShares
        Every tile pooled: ``shares`` (mass share per region name; sums to 1 when
        there is any mass), ``area`` (area share) and ``enrichment``
        (``shares / area``, ``nan`` where the region is absent).
    by_class : ClassShares
        Per predicted class: ``shares`` (``{class: {region: share}}``), ``n_tiles``
        and ``artefact_area``.
    flagged : ndarray of shape (N,) of bool
        Per-tile flag.
    worst : list of int
        Indices of the worst tiles (highest off-tissue share first, flagged first).
    verdict : str
        ``"pass"`` (no sign of a shortcut), ``"warn"`` (some tiles flagged, below the
        slide thresholds), ``"fail"`` (the model looks at artefacts/background) or
        ``"n/a"`` (no tiles to audit).
    evidence : list of str
        Human-readable reasons for the verdict, with the figures behind them.
    """

    tiles: TileAttention
    thresholds: AuditThresholds = field(default_factory=AuditThresholds)
    sign: str = "absolute"
    overall: RegionShares = field(init=False)
    by_class: ClassShares = field(init=False)
    flagged: npt.NDArray[np.bool_] = field(init=False)
    worst: list[int] = field(init=False)
    verdict: str = field(init=False)
    evidence: list[str] = field(init=False)

    def __post_init__(self) -> None:
        th = self.thresholds
        off_share, self.flagged = self.tiles.flag(th)
        self.overall = self.tiles.overall()
        self.by_class = self.tiles.by_class()
        # Worst tiles: flagged first, then by off-tissue share, then by artefact share.
        order = np.lexsort((-self.tiles.shares[:, ARTEFACT], -off_share, ~self.flagged))
        self.worst = [int(i) for i in order[: th.n_worst]]
        self.verdict, self.evidence = _slide_verdict(self.flagged, self.overall, self.by_class, th)

    @property
    def shares(self) -> dict[str, float]:
        """Overall mass share per region name (``overall.shares``)."""
        return self.overall.shares

    @property
    def area_shares(self) -> dict[str, float]:
        """Overall area share per region name (``overall.area``)."""
        return self.overall.area

    @property
    def enrichment(self) -> dict[str, float]:
        """``shares / area_shares`` per region (``overall.enrichment``)."""
        return self.overall.enrichment

    @property
    def shares_by_class(self) -> dict[str, dict[str, float]]:
        """``{predicted class: {region: share}}`` (``by_class.shares``)."""
        return self.by_class.shares

    @property
    def tile_shares(self) -> npt.NDArray[np.float64]:
        """Per-tile mass share per region code, shape (N, 4) (``tiles.shares``)."""
        return self.tiles.shares

    @property
    def n_tiles(self) -> int:
        """Number of audited tiles."""
        return int(self.flagged.shape[0])

    @property
    def flagged_fraction(self) -> float:
        """Fraction of audited tiles that are flagged."""
        return float(self.flagged.mean()) if self.n_tiles else 0.0

    def tile_off_tissue_share(self) -> npt.NDArray[np.float64]:
        """Per-tile share of attribution mass off tissue (artefact + background + border)."""
        return np.asarray(self.tile_shares[:, list(OFF_TISSUE)].sum(axis=1), dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (per-tile arrays as lists)."""
        return {
            "verdict": self.verdict,
            "evidence": list(self.evidence),
            "n_tiles": self.n_tiles,
            "n_flagged": int(self.flagged.sum()),
            "flagged_fraction": self.flagged_fraction,
            "shares": _clean(self.shares),
            "area_shares": _clean(self.area_shares),
            "enrichment": _clean(self.enrichment),
            "shares_by_class": {k: _clean(v) for k, v in self.shares_by_class.items()},
            "tiles_by_class": dict(self.by_class.n_tiles),
            "worst_tiles": [int(i) for i in self.worst],
            "tile_shares": {
                name: [round(float(x), 6) for x in self.tile_shares[:, code]]
                for code, name in enumerate(REGION_NAMES)
            },
            "flagged": [bool(x) for x in self.flagged],
            "thresholds": asdict(self.thresholds),
            "sign": self.sign,
        }


def _clean(d: dict[str, float]) -> dict[str, float | None]:
    """Replace NaN by None so the dict is valid JSON."""
    return {k: (None if not np.isfinite(v) else float(v)) for k, v in d.items()}


def make_region_map(
    tissue: npt.ArrayLike,
    *,
    artefact: npt.ArrayLike | None = None,
    border_width: int = 0,
) -> npt.NDArray[np.uint8]:
    """Combine tissue and artefact masks into one region map.

    Parameters
    ----------
    tissue : array-like of bool, shape (rows, cols)
        Tissue mask (at any downsample of level 0).
    artefact : array-like of bool, shape (rows, cols), optional
        Artefact mask (pen ink, marker glyphs, rulers, text) on the same grid.
    border_width : int
        Width of the border band in pixels *of this grid* (``border_width0 / d``);
        non-tissue pixels closer than this to the array edge are ``BORDER``.

    Returns
    -------
    ndarray of uint8, shape (rows, cols)
        Region codes (:data:`BACKGROUND`, :data:`TISSUE`, :data:`ARTEFACT`,
        :data:`BORDER`), with precedence artefact > tissue > border > background.
    """
    tissue_b = np.asarray(tissue, dtype=bool)
    if tissue_b.ndim != 2:
        raise ValueError(f"tissue mask must be 2-D (rows, cols), got shape {tissue_b.shape}")
    regions = np.full(tissue_b.shape, BACKGROUND, dtype=np.uint8)
    if border_width > 0:
        b = int(border_width)
        regions[:b, :] = BORDER
        regions[-b:, :] = BORDER
        regions[:, :b] = BORDER
        regions[:, -b:] = BORDER
    regions[tissue_b] = TISSUE
    if artefact is not None:
        artefact_b = np.asarray(artefact, dtype=bool)
        if artefact_b.shape != tissue_b.shape:
            raise ValueError(
                f"artefact mask shape {artefact_b.shape} differs from tissue mask shape "
                f"{tissue_b.shape}"
            )
        regions[artefact_b] = ARTEFACT
    return regions


def crop_tile_regions(
    regions: npt.NDArray[np.uint8],
    tiles_rc: npt.ArrayLike,
    *,
    regions_downsample: float,
    tile_shape0: tuple[int, int],
    out_shape: tuple[int, int],
) -> npt.NDArray[np.uint8]:
    """Sample a slide region map under each tile, at the resolution of the tile maps.

    Parameters
    ----------
    regions : ndarray of uint8, shape (rows, cols)
        Slide region map at downsample ``regions_downsample`` of level 0.
    tiles_rc : array-like of int, shape (N, 2)
        Level-0 top-left (row, col) of each tile.
    regions_downsample : float
        Level-0 pixels per region-map pixel.
    tile_shape0 : (int, int)
        Level-0 extent (rows, cols) of a tile.
    out_shape : (int, int)
        Shape (H, W) of the per-tile attribution maps.

    Returns
    -------
    ndarray of uint8, shape (N, H, W)
        Region code under the centre of every attribution pixel (nearest neighbour);
        outside the map counts as :data:`BORDER`.
    """
    tiles = np.asarray(tiles_rc, dtype=np.float64).reshape(-1, 2)
    h, w = out_shape
    # Level-0 centre of each output pixel, relative to the tile's top-left corner.
    off_r = (np.arange(h) + 0.5) * (tile_shape0[0] / h)
    off_c = (np.arange(w) + 0.5) * (tile_shape0[1] / w)
    rr = np.floor((tiles[:, 0, None] + off_r[None, :]) / regions_downsample).astype(np.int64)
    cc = np.floor((tiles[:, 1, None] + off_c[None, :]) / regions_downsample).astype(np.int64)
    inside_r = (rr >= 0) & (rr < regions.shape[0])
    inside_c = (cc >= 0) & (cc < regions.shape[1])
    rr = np.clip(rr, 0, regions.shape[0] - 1)
    cc = np.clip(cc, 0, regions.shape[1] - 1)
    out = regions[rr[:, :, None], cc[:, None, :]]
    outside = ~(inside_r[:, :, None] & inside_c[:, None, :])
    out[outside] = BORDER
    return np.ascontiguousarray(out, dtype=np.uint8)


def _to_mass(values: npt.ArrayLike, sign: str) -> npt.NDArray[np.float64]:
    """Turn attribution values into non-negative mass (NaN/inf count as 0)."""
    arr = np.asarray(values, dtype=np.float64)
    if sign == "absolute":
        arr = np.abs(arr)
    elif sign == "positive":
        arr = np.clip(arr, 0.0, None)
    else:
        raise ValueError(f"sign must be 'absolute' or 'positive', got {sign!r}")
    return np.nan_to_num(arr, nan=0.0, posinf=0.0, neginf=0.0)


def tile_region_shares(
    attributions: npt.ArrayLike,
    regions: npt.ArrayLike,
    *,
    sign: str = "absolute",
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Attribution mass per region, per tile.

    Parameters
    ----------
    attributions : array-like, shape (N, H, W)
        Per-tile attribution maps. NaN counts as 0.
    regions : array-like of uint8, shape (N, H, W) or (N, h, w)
        Region code per pixel. When its grid differs from the attributions' (e.g.
        the masks are coarser), it is resampled to (H, W) by nearest neighbour.
    sign : {"absolute", "positive"}
        Mass is ``|attribution|`` (default; right for unsigned maps such as
        Saliency or Grad-CAM) or its positive part (evidence *for* the target
        class, for signed maps such as Integrated Gradients).

    Returns
    -------
    shares : ndarray of shape (N, 4)
        Mass share per region code (rows sum to 1, or 0 for a tile without mass).
    area_shares : ndarray of shape (N, 4)
        Pixel fraction per region code.
    mass : ndarray of shape (N,)
        Total mass of each tile.
    """
    att = _to_mass(attributions, sign)
    if att.ndim != 3:
        raise ValueError(f"attributions must have shape (N, H, W), got {att.shape}")
    reg = np.asarray(regions)
    if reg.ndim != 3 or reg.shape[0] != att.shape[0]:
        raise ValueError(
            f"regions must have shape (N, H, W) with N={att.shape[0]}, got {reg.shape}"
        )
    if reg.shape[1:] != att.shape[1:]:
        reg = _resize_nearest(reg, att.shape[1:])
    n = att.shape[0]
    n_regions = len(REGION_NAMES)
    if reg.size and int(reg.max()) >= n_regions:
        raise ValueError(f"region codes must be < {n_regions}, got {int(reg.max())}")
    flat_reg = reg.reshape(n, int(np.prod(reg.shape[1:]))).astype(np.int64)
    flat_att = att.reshape(n, int(np.prod(att.shape[1:])))
    idx = flat_reg + np.arange(n)[:, None] * n_regions
    mass_by = np.bincount(idx.ravel(), weights=flat_att.ravel(), minlength=n * n_regions)
    mass_by = mass_by.reshape(n, n_regions)
    count_by = np.bincount(idx.ravel(), minlength=n * n_regions).reshape(n, n_regions)
    mass = mass_by.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = np.where(mass[:, None] > 0, mass_by / np.maximum(mass[:, None], 1e-300), 0.0)
    area = count_by / max(flat_reg.shape[1], 1)
    return shares, area.astype(np.float64), mass


def _resize_nearest(reg: npt.NDArray[Any], shape: Sequence[int]) -> npt.NDArray[Any]:
    """Nearest-neighbour resize of a stack (N, h, w) to (N, H, W) by pixel centres."""
    h, w = reg.shape[1:]
    rows = np.minimum(((np.arange(shape[0]) + 0.5) * h / shape[0]).astype(np.int64), h - 1)
    cols = np.minimum(((np.arange(shape[1]) + 0.5) * w / shape[1]).astype(np.int64), w - 1)
    return reg[:, rows[:, None], cols[None, :]]


def map_region_shares(
    saliency: Any,
    regions: npt.NDArray[np.uint8],
    *,
    saliency_downsample: float,
    regions_downsample: float,
    saliency_origin0: tuple[float, float] = (0.0, 0.0),
    block_rows: int = 512,
    sign: str = "absolute",
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Attribution mass per region for a stitched whole-slide saliency map.

    Parameters
    ----------
    saliency : array-like with ``shape`` and slicing, shape (rows, cols)
        Stitched saliency map (numpy, zarr or dask), at ``saliency_downsample``;
        its pixel ``(i, j)`` covers level-0 pixels from
        ``saliency_origin0 + (i, j) * saliency_downsample``. Read in row blocks, so
        it never needs to sit in memory whole.
    regions : ndarray of uint8, shape (rows, cols)
        Region map at ``regions_downsample`` (see :func:`make_region_map`).
    saliency_downsample, regions_downsample : float
        Level-0 pixels per pixel of each map.
    saliency_origin0 : (float, float)
        Level-0 (row, col) of the saliency map's top-left corner.
    block_rows : int
        Saliency rows read at a time.
    sign : {"absolute", "positive"}
        How values become mass (see :func:`tile_region_shares`).

    Returns
    -------
    mass_by_region : ndarray of shape (4,)
        Attribution mass per region code.
    pixels_by_region : ndarray of shape (4,)
        Computed (finite) saliency pixels per region code; NaN pixels (tiles not
        explained) count for nothing.
    """
    shape = tuple(int(s) for s in np.shape(saliency))
    if len(shape) != 2:
        raise ValueError(f"saliency map must be 2-D (rows, cols), got shape {shape}")
    n_regions = len(REGION_NAMES)
    mass = np.zeros(n_regions, dtype=np.float64)
    pixels = np.zeros(n_regions, dtype=np.float64)
    cols0 = saliency_origin0[1] + (np.arange(shape[1]) + 0.5) * saliency_downsample
    cc = np.floor(cols0 / regions_downsample).astype(np.int64)
    col_in = (cc >= 0) & (cc < regions.shape[1])
    cc = np.clip(cc, 0, regions.shape[1] - 1)
    for start in range(0, shape[0], block_rows):
        stop = min(start + block_rows, shape[0])
        raw = np.asarray(saliency[start:stop], dtype=np.float64)
        finite = np.isfinite(raw)  # NaN = not computed: neither mass nor area
        block = _to_mass(raw, sign)
        rows0 = saliency_origin0[0] + (np.arange(start, stop) + 0.5) * saliency_downsample
        rr = np.floor(rows0 / regions_downsample).astype(np.int64)
        row_in = (rr >= 0) & (rr < regions.shape[0])
        rr = np.clip(rr, 0, regions.shape[0] - 1)
        codes = regions[rr[:, None], cc[None, :]].astype(np.int64)
        codes[~(row_in[:, None] & col_in[None, :])] = BORDER
        mass += np.bincount(codes.ravel(), weights=block.ravel(), minlength=n_regions)
        pixels += np.bincount(codes.ravel(), weights=finite.ravel(), minlength=n_regions)
    return mass, pixels


def audit_attention(
    attributions: npt.ArrayLike,
    regions: npt.ArrayLike,
    *,
    pred_class: Sequence[str] | None = None,
    thresholds: AuditThresholds | None = None,
    sign: str = "absolute",
) -> AttentionAudit:
    """Audit where a model's attribution lands, tile by tile and overall.

    Parameters
    ----------
    attributions : array-like, shape (N, H, W)
        Per-tile attribution maps (one 2-D map per tile, e.g. from
        ``explain_tiles``); the mass is ``|attribution|``.
    regions : array-like of uint8, shape (N, H, W) or (N, h, w)
        Region code under each attribution pixel (see :func:`crop_tile_regions`).
    pred_class : sequence of str, length N, optional
        Predicted class of each tile, for the per-class shares.
    thresholds : AuditThresholds, optional
        Flagging thresholds (defaults documented on :class:`AuditThresholds`).
    sign : {"absolute", "positive"}
        How attribution values become mass (see :func:`tile_region_shares`).

    Returns
    -------
    AttentionAudit
        Overall, per-class and per-tile shares, flags, verdict and evidence.
    """
    th = thresholds if thresholds is not None else AuditThresholds()
    shares, area, mass = tile_region_shares(attributions, regions, sign=sign)
    n = shares.shape[0]
    if pred_class is not None and len(pred_class) != n:
        raise ValueError(f"pred_class has {len(pred_class)} entries for {n} tiles")
    labels = None if pred_class is None else tuple(str(c) for c in pred_class)
    return AttentionAudit(TileAttention(shares, area, mass, labels), thresholds=th, sign=sign)


@dataclass(frozen=True)
class RegionShares:
    """Share of all attribution mass, of the audited area, and their ratio, per region."""

    shares: dict[str, float]
    area: dict[str, float]
    enrichment: dict[str, float]


@dataclass(frozen=True)
class ClassShares:
    """Per predicted class: region shares of its mass, its tiles, its mean artefact area."""

    shares: dict[str, dict[str, float]]
    n_tiles: dict[str, int]
    artefact_area: dict[str, float]


@dataclass(frozen=True)
class TileAttention:
    """Attribution mass of the audited tiles (:func:`tile_region_shares`), pooled three ways.

    Attributes
    ----------
    shares, area : ndarray of shape (N, 4)
        Per-tile mass share and area share per region code.
    mass : ndarray of shape (N,)
        Per-tile attribution mass.
    pred_class : tuple of str or None
        Predicted class of each tile, for the per-class shares.
    """

    shares: npt.NDArray[np.float64]
    area: npt.NDArray[np.float64]
    mass: npt.NDArray[np.float64]
    pred_class: tuple[str, ...] | None = None

    def flag(self, th: AuditThresholds) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
        """Off-tissue share of each tile's mass, and the tiles that put it off tissue."""
        off = list(OFF_TISSUE)
        off_share = self.shares[:, off].sum(axis=1)
        off_area = self.area[:, off].sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            off_enrich = np.where(off_area > 0, off_share / np.maximum(off_area, 1e-12), np.inf)
        flagged = (
            (self.mass > 0)
            & (off_share >= th.tile_off_tissue_share)
            & (off_enrich >= th.tile_enrichment)
        )
        return off_share, flagged

    def overall(self) -> RegionShares:
        """Pool every tile: mass-weighted shares, mean area shares."""
        total = self.mass.sum()
        mass_by = (self.shares * self.mass[:, None]).sum(axis=0)
        overall = mass_by / total if total > 0 else np.zeros(len(REGION_NAMES))
        n = self.shares.shape[0]
        area_overall = self.area.mean(axis=0) if n else np.zeros(len(REGION_NAMES))
        return RegionShares(
            shares={name: float(overall[i]) for i, name in enumerate(REGION_NAMES)},
            area={name: float(area_overall[i]) for i, name in enumerate(REGION_NAMES)},
            enrichment={
                name: (
                    float(overall[i] / area_overall[i]) if area_overall[i] > 0 else float("nan")
                )
                for i, name in enumerate(REGION_NAMES)
            },
        )

    def by_class(self) -> ClassShares:
        """Pool the tiles of each predicted class (empty without ``pred_class``)."""
        out = ClassShares({}, {}, {})
        if self.pred_class is None:
            return out
        labels = np.asarray(self.pred_class)
        for name in sorted(set(labels.tolist())):
            sel = labels == name
            m = (self.shares[sel] * self.mass[sel, None]).sum(axis=0)
            t = m.sum()
            out.shares[name] = {
                region: (float(m[i] / t) if t > 0 else 0.0)
                for i, region in enumerate(REGION_NAMES)
            }
            out.n_tiles[name] = int(sel.sum())
            out.artefact_area[name] = float(self.area[sel, ARTEFACT].mean())
        return out


def _slide_verdict(
    flagged: npt.NDArray[np.bool_],
    overall: RegionShares,
    by_class: ClassShares,
    th: AuditThresholds,
) -> tuple[str, list[str]]:
    """Verdict of the attention audit and its evidence, in words (see :class:`AuditThresholds`)."""
    n = len(flagged)
    evidence: list[str] = []
    fraction = float(flagged.mean()) if n else 0.0
    share_d, area_d = overall.shares, overall.area
    art_share = share_d["artefact"]
    art_enrich = overall.enrichment["artefact"]
    fail = False
    if n == 0:
        evidence.append("no tiles to audit")
    if art_share >= th.slide_artefact_share and (
        not np.isfinite(art_enrich) or art_enrich >= th.slide_artefact_enrichment
    ):
        fail = True
        evidence.append(
            f"{art_share:.0%} of all attribution lies on artefacts that cover "
            f"{area_d['artefact']:.1%} of the audited area (enrichment {art_enrich:.1f}x; "
            f"limit {th.slide_artefact_share:.0%})"
        )
    if n and fraction >= th.slide_flagged_fraction:
        fail = True
        evidence.append(
            f"{int(flagged.sum())} of {n} tiles ({fraction:.0%}) put most attribution off "
            f"tissue (limit {th.slide_flagged_fraction:.0%})"
        )
    for cls, sh in by_class.shares.items():
        # A shortcut is often class-specific (the marker is on one class only).
        cls_area = by_class.artefact_area[cls]
        n_cls = by_class.n_tiles[cls]
        cls_enrich = sh["artefact"] / cls_area if cls_area > 0 else float("inf")
        if (
            sh["artefact"] >= th.slide_artefact_share
            and cls_enrich >= th.slide_artefact_enrichment
            and n_cls >= th.min_class_tiles
        ):
            fail = True
            evidence.append(
                f"tiles predicted '{cls}' ({n_cls}): {sh['artefact']:.0%} of their "
                f"attribution lies on artefacts covering {cls_area:.1%} of them (enrichment "
                f"{cls_enrich:.1f}x)"
            )
    if n == 0:
        return "n/a", evidence
    if fail:
        return "fail", evidence
    if flagged.any():
        evidence.append(
            f"{int(flagged.sum())} of {n} tiles flagged ({fraction:.1%}), below the "
            f"{th.slide_flagged_fraction:.0%} limit"
        )
        return "warn", evidence
    evidence.append(
        f"{share_d['tissue']:.0%} of attribution on tissue; artefacts "
        f"{art_share:.1%}, background {share_d['background']:.1%}, border "
        f"{share_d['border']:.1%}; no tile flagged"
    )
    return "pass", evidence
