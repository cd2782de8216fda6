"""Audit one slide end to end: masks, tiles, attribution, shares, verdict.

:func:`iter_audit_slide` is a generator (yields :class:`AuditProgress` after each
batch, returns a :class:`SlideAudit`) so a widget can show progress and cancel;
:func:`audit_slide` runs it to the end. The tile grid, reader and attribution
are the scoring and explanation pipeline's (:mod:`napari_xai.core.inference`,
:mod:`napari_xai.core.attribution`), so the audited tiles are the scored ones.

Sampling: a slide can hold 100,000 tiles; the audit explains at most
``max_tiles`` of them: every tile that touches an artefact (up to half the
budget, evenly spread) and the rest spread evenly over the remaining tissue
tiles. The overall shares are over the audited tiles, and so are the area
shares they are compared with (enrichment), so the choice does not bias the
comparison; ``sampling`` in the result says what was done.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from napari_xai.core.audit.attention import (
    ARTEFACT,
    REGION_NAMES,
    TISSUE,
    AttentionAudit,
    AuditThresholds,
    audit_attention,
    crop_tile_regions,
    make_region_map,
)
from napari_xai.core.audit.counterfactual import CounterfactualResult
from napari_xai.core.audit.evidence import PairEvidence
from napari_xai.core.audit.verdict import Verdict, VerdictThresholds
from napari_xai.core.options import MASK_SIZE, AuditSpec, GridOptions, RunOptions
from napari_xai.core.progress import Counted, eager

if TYPE_CHECKING:
    import pandas as pd

    from napari_xai.core.tiling import TileGrid
    from napari_xai.core.wsi import Slide

__all__ = [
    "AuditProgress",
    "audit_saliency_store",
    "SlideAudit",
    "audit_slide",
    "iter_audit_slide",
    "select_audit_tiles",
]

#: Default width of the slide border band, as a fraction of the slide's shorter side.
BORDER_FRACTION = 0.02


@dataclass
class AuditProgress(Counted):
    """State after one batch of :func:`iter_audit_slide`."""

    n_done: int
    n_total: int
    elapsed_s: float
    stage: str = "explaining tiles"


@dataclass
class SlideAudit:
    """Result of auditing one slide.

    Attributes
    ----------
    attention : AttentionAudit
        Shares, flags, verdict and evidence.
    tiles : pandas.DataFrame
        One row per audited tile: ``row``, ``col``, ``height``, ``width`` (level 0),
        ``pred_class``, ``confidence``, ``share_<region>`` per region, ``off_tissue``,
        ``flagged``.
    slide_path : Path
    slide_shape_rc : tuple of int
    method : str
        Attribution method.
    model_name : str
    n_grid_tiles : int
        Tissue tiles of the full grid (the audited ones are a sample of these).
    sampling : str
        How the audited tiles were chosen.
    regions : ndarray of uint8, shape (rows, cols)
        Region map at ``regions_downsample`` (tissue, artefact, border, background).
    regions_downsample : float
    thumbnail : ndarray of uint8, shape (rows, cols, 3)
        Slide thumbnail at ``regions_downsample``.
    worst_images, worst_maps : ndarray
        Tiles (K, S, S, 3) and attribution maps (K, S, S) of ``attention.worst``.
    timings : dict
    report_path : Path or None
        ``report.html`` when the audit was run with ``out_dir``.
    """

    attention: AttentionAudit
    tiles: pd.DataFrame
    slide_path: Path
    slide_shape_rc: tuple[int, int]
    method: str
    model_name: str
    n_grid_tiles: int
    sampling: str
    regions: npt.NDArray[np.uint8]
    regions_downsample: float
    thumbnail: npt.NDArray[np.uint8]
    worst_images: npt.NDArray[np.uint8]
    worst_maps: npt.NDArray[np.float32]
    timings: dict[str, float] = field(default_factory=dict)
    report_path: Path | None = None
    pairs: list[PairEvidence] = field(default_factory=list)
    counterfactual: CounterfactualResult | None = None
    shortcut: Verdict | None = None

    @property
    def verdict(self) -> str:
        """``"pass"``, ``"warn"`` or ``"fail"`` (the shortcut verdict when it was made)."""
        return self.shortcut.verdict if self.shortcut is not None else self.attention.verdict

    @property
    def sentence(self) -> str:
        """The verdict's first sentence, in words a pathologist reads."""
        if self.shortcut is not None:
            return self.shortcut.sentence
        return f"{self.attention.verdict.upper()}: " + "; ".join(self.attention.evidence[:1])

    @property
    def method_label(self) -> str:
        """The attribution method with its sanity status, shown wherever its maps are.

        E.g. ``"grad_cam (sanity checks passed)"``.
        """
        from napari_xai.core.audit.sanity import method_label

        return method_label(self.method, self.shortcut.sanity if self.shortcut else None)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (the ``attention`` part of ``audit.json``)."""
        att = self.attention.to_dict()
        worst = []
        for rank, i in enumerate(self.attention.worst):
            row = self.tiles.iloc[i]
            worst.append(
                {
                    "rank": rank,
                    "index": int(i),
                    "row": int(row["row"]),
                    "col": int(row["col"]),
                    "height": int(row["height"]),
                    "width": int(row["width"]),
                    "pred_class": str(row["pred_class"]),
                    "off_tissue": float(row["off_tissue"]),
                    "flagged": bool(row["flagged"]),
                    **{f"share_{n}": float(row[f"share_{n}"]) for n in REGION_NAMES},
                }
            )
        att["worst_tiles"] = worst
        att["tiles"] = {
            "row": [int(x) for x in self.tiles["row"]],
            "col": [int(x) for x in self.tiles["col"]],
            "pred_class": [str(x) for x in self.tiles["pred_class"]],
        }
        shortcut: dict[str, Any] = {}
        if self.shortcut is not None:
            v = self.shortcut.to_dict()
            shortcut = {
                "verdict": v["verdict"],
                "shortcut_suspected": v["shortcut_suspected"],
                "sentence": v["sentence"],
                "shortcut": v,
                "class_artefact": [p.to_dict() for p in self.pairs],
                "counterfactual": (
                    self.counterfactual.to_dict() if self.counterfactual is not None else None
                ),
            }
        return {
            "slide": str(self.slide_path),
            "slide_shape_rc": [int(x) for x in self.slide_shape_rc],
            "model": self.model_name,
            "method": self.method,
            "method_label": self.method_label,
            "n_grid_tiles": int(self.n_grid_tiles),
            "n_audited_tiles": int(len(self.tiles)),
            "sampling": self.sampling,
            "regions_downsample": float(self.regions_downsample),
            "timings": {k: float(v) for k, v in self.timings.items()},
            **att,
            **shortcut,
            "attention_verdict": att["verdict"],
        }


def select_audit_tiles(
    grid: TileGrid, *, max_tiles: int | None
) -> tuple[npt.NDArray[np.int64], str]:
    """Choose which grid tiles to audit.

    Parameters
    ----------
    grid : TileGrid
        The slide's tissue tiles.
    max_tiles : int or None
        Budget; ``None`` audits every tile.

    Returns
    -------
    indices : ndarray of int64
        Sorted grid indices.
    sampling : str
        Description of the choice.
    """
    n = len(grid)
    if max_tiles is None or n <= max_tiles:
        return np.arange(n, dtype=np.int64), f"all {n} tissue tiles"
    budget = max(int(max_tiles), 1)
    art = grid.artefact_fraction
    touching = np.flatnonzero(np.asarray(art) > 0) if art is not None else np.zeros(0, np.int64)
    n_art = min(len(touching), budget // 2)
    if n_art:
        pick = np.unique(np.linspace(0, len(touching) - 1, n_art).astype(np.int64))
        chosen_art = touching[pick]
    else:
        chosen_art = np.zeros(0, np.int64)
    rest = np.setdiff1d(np.arange(n, dtype=np.int64), chosen_art)
    n_rest = min(len(rest), budget - len(chosen_art))
    pick = np.unique(np.linspace(0, len(rest) - 1, max(n_rest, 1)).astype(np.int64))
    chosen = np.union1d(chosen_art, rest[pick] if n_rest else np.zeros(0, np.int64))
    desc = (
        f"{len(chosen)} of {n} tissue tiles: {len(chosen_art)} of the {len(touching)} tiles "
        f"touching artefacts and {len(chosen) - len(chosen_art)} spread evenly over the rest"
    )
    return chosen.astype(np.int64), desc


def _model_name(model: Any) -> str:
    card = getattr(model, "card", None)
    name = getattr(card, "name", None) or type(getattr(model, "module", model)).__name__
    return str(name)


@dataclass
class _AuditPlan:
    """What an audit looks at: masks, region map, tile grid and the sampled tiles."""

    masks: Any
    thumbnail: npt.NDArray[np.uint8]
    regions: npt.NDArray[np.uint8]
    downsample: float
    grid: TileGrid
    indices: npt.NDArray[np.int64]
    sampling: str

    @property
    def tile_corners(self) -> npt.NDArray[Any]:
        """Level-0 (row, col) of the audited tiles, shape (n, 2)."""
        return np.stack([self.grid.rows[self.indices], self.grid.cols[self.indices]], axis=1)

    def crop(self, labels: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
        """Crop a label map (at the mask downsample) to every audited tile, at model size."""
        size = int(self.grid.tile_size)
        return crop_tile_regions(
            labels,
            self.tile_corners,
            regions_downsample=self.downsample,
            tile_shape0=(self.grid.tile_size0, self.grid.tile_size0),
            out_shape=(size, size),
        )


@dataclass
class _Explained:
    """Attribution maps and predictions of the audited tiles (in plan order)."""

    maps: npt.NDArray[np.float32]
    preds: npt.NDArray[np.int64]
    confidence: npt.NDArray[np.float32]
    probabilities: npt.NDArray[np.float32] | None
    images: npt.NDArray[np.uint8] | None


def _thumbnail_like(slide: Slide, shape_rc: tuple[int, ...]) -> npt.NDArray[np.uint8]:
    """Read the slide's thumbnail on the masks' grid (for the report's pictures)."""
    thumb, _ = slide.thumbnail(max_size=max(shape_rc))
    thumb = np.asarray(thumb)[..., :3]
    if thumb.shape[:2] != tuple(shape_rc[:2]):
        from skimage.transform import resize

        out = resize(thumb, shape_rc[:2], order=1, preserve_range=True, anti_aliasing=True)
        thumb = np.asarray(out).astype(np.uint8)
    return thumb


def _plan_audit(
    slide: Slide,
    card: Any,
    spec: AuditSpec,
    grid: GridOptions,
    masks: Any,
    out_dir: str | Path | None,
    *,
    mask_size: int,
) -> _AuditPlan:
    """Region map (border band included), grid and sample over the slide's ``masks``.

    The grid is the scoring grid (``grid``: overlap, min tissue, mpp) over the
    same tissue/artefact masks as scoring (stroke pass included). ``masks``
    None: those stored in ``out_dir`` for this slide, else computed.
    """
    from napari_xai.core.inference import grid_for_slide

    if masks is None:
        from napari_xai.core.masks import cached_slide_masks

        masks = cached_slide_masks(slide, out_dir, max_size=mask_size, any_size=True)
    thumb = _thumbnail_like(slide, masks.tissue.shape)
    ds = float(masks.downsample)
    shape_rc = slide.info.shape_rc
    bw0 = BORDER_FRACTION * min(shape_rc) if spec.border_width0 is None else spec.border_width0
    regions = make_region_map(
        masks.tissue, artefact=masks.artefact, border_width=int(np.ceil(bw0 / ds)) if bw0 else 0
    )
    tiles = grid_for_slide(slide, card, grid, masks=(masks.tissue, masks.artefact, ds))
    indices, sampling = select_audit_tiles(tiles, max_tiles=spec.max_tiles)
    return _AuditPlan(
        masks=masks,
        thumbnail=np.asarray(thumb[: regions.shape[0], : regions.shape[1]]),
        regions=regions,
        downsample=ds,
        grid=tiles,
        indices=indices,
        sampling=sampling,
    )


def _explain_tiles(
    slide: Slide, explainer: Any, plan: _AuditPlan, run: RunOptions, t0: float
) -> Generator[AuditProgress, None, _Explained]:
    """Read the audited tiles, explain and score them batch by batch (yields progress).

    The tile images are kept (for the counterfactual test, the sanity checks and
    the report) unless there are more than 4,096.
    """
    from napari_xai.core.audit.counterfactual import tile_probabilities
    from napari_xai.core.reader import TileReader

    size, n = int(plan.grid.tile_size), len(plan.indices)
    batch_size = run.explain_batch_size
    out = _Explained(
        maps=np.zeros((n, size, size), np.float32),
        preds=np.zeros(n, np.int64),
        confidence=np.zeros(n, np.float32),
        probabilities=None,
        images=np.zeros((n, size, size, 3), np.uint8) if n <= 4096 else None,
    )
    reader = TileReader(
        slide,
        plan.grid,
        batch_size=batch_size,
        num_workers=run.reader_threads(),
        indices=plan.indices,
    )
    done = 0
    all_probs: list[npt.NDArray[np.float32]] = []
    try:
        for batch in reader:
            tiles = np.asarray(batch.tiles)
            maps, _targets = explainer.explain(tiles)
            probs = tile_probabilities(explainer.prepared, tiles, batch_size=batch_size)
            k = len(tiles)
            out.maps[done : done + k] = maps
            out.preds[done : done + k] = probs.argmax(axis=1)
            out.confidence[done : done + k] = probs.max(axis=1)
            all_probs.append(probs)
            if out.images is not None:
                out.images[done : done + k] = tiles
            done += k
            yield AuditProgress(done, n, time.perf_counter() - t0)
    finally:
        reader.close()
    out.probabilities = np.concatenate(all_probs) if all_probs else None
    return out


def _tiles_table(
    plan: _AuditPlan, explained: _Explained, attention: AttentionAudit, pred_names: list[str]
) -> pd.DataFrame:
    """One row per audited tile: position, prediction, region shares, flag."""
    import pandas as pd

    n = len(plan.indices)
    corners = plan.tile_corners
    size0 = plan.grid.tile_size0
    return pd.DataFrame(
        {
            "row": corners[:, 0].astype(np.int64),
            "col": corners[:, 1].astype(np.int64),
            "height": np.full(n, size0, np.int64),
            "width": np.full(n, size0, np.int64),
            "grid_index": plan.indices,
            "pred_class": pred_names,
            "confidence": explained.confidence,
            **{
                f"share_{name}": attention.tile_shares[:, code].astype(np.float32)
                for code, name in enumerate(REGION_NAMES)
            },
            "off_tissue": attention.tile_off_tissue_share().astype(np.float32),
            "flagged": attention.flagged,
        }
    )


def _sanity_on_clean_tiles(
    loaded: Any, images: npt.NDArray[np.uint8], kinds: npt.NDArray[np.uint8], method: str
) -> dict[str, Any]:
    """Sanity-check the method on up to 8 audited tiles, plain tissue tiles first.

    A high-contrast mark lights up the maps of any edge-sensitive network,
    randomised or not, and would blur the question (do the maps depend on the
    model's weights?).
    """
    from napari_xai.core.audit.sanity import sanity_check

    n = len(images)
    clean = np.flatnonzero(~(kinds > 0).reshape(n, -1).any(axis=1))
    pool = clean if len(clean) >= min(n, 8) else np.arange(n)
    probe = pool[np.unique(np.linspace(0, len(pool) - 1, min(len(pool), 8)).astype(np.int64))]
    result = sanity_check(loaded, images[probe], method).to_dict()
    result["probe_tiles_with_artefacts"] = int((kinds[probe] > 0).any(axis=(1, 2)).sum())
    return result


def _shortcut_tests(
    loaded: Any,
    explainer: Any,
    plan: _AuditPlan,
    explained: _Explained,
    tile_regions: npt.NDArray[np.uint8],
    pred_names: list[str],
    spec: AuditSpec,
    run: RunOptions,
    t0: float,
    *,
    verdict_thresholds: VerdictThresholds | None,
) -> Generator[AuditProgress, None, tuple[list[PairEvidence], Any, Verdict, dict[str, float]]]:
    """Class x artefact evidence, the counterfactual test, the sanity checks, the verdict.

    Returns ``(pairs, counterfactual result or None, verdict, timings)``.
    """
    from napari_xai.core.audit.counterfactual import counterfactual_test
    from napari_xai.core.audit.evidence import class_artefact_evidence
    from napari_xai.core.audit.verdict import make_verdict

    n, images = len(plan.indices), explained.images
    # Per class x artefact kind (kinds from the mask's labels, only on artefact pixels).
    kinds = plan.crop(np.asarray(plan.masks.artefact_labels, np.uint8))
    kinds[tile_regions != ARTEFACT] = 0
    pairs = class_artefact_evidence(explained.maps, kinds, pred_names, images=images)
    t_cf = time.perf_counter()
    cf_result = None
    if spec.counterfactual and images is not None and (kinds > 0).any():
        yield AuditProgress(n, n, time.perf_counter() - t0, stage="counterfactual")
        cf_result = counterfactual_test(
            explainer.prepared,
            images,
            kinds,
            probabilities=explained.probabilities,
            tissue=tile_regions == TISSUE,
            batch_size=run.explain_batch_size,
        )
    t_cf = time.perf_counter() - t_cf
    t_sanity = time.perf_counter()
    sanity_d = None
    if spec.sanity and images is not None and n:
        yield AuditProgress(n, n, time.perf_counter() - t0, stage="sanity checks")
        sanity_d = _sanity_on_clean_tiles(loaded, images, kinds, spec.method)
    t_sanity = time.perf_counter() - t_sanity
    shortcut = make_verdict(
        pairs, cf_result, method=spec.method, sanity=sanity_d, thresholds=verdict_thresholds
    )
    return pairs, cf_result, shortcut, {"counterfactual_s": t_cf, "sanity_s": t_sanity}


def _attention(
    plan: _AuditPlan, explained: _Explained, loaded: Any, thresholds: AuditThresholds | None
) -> tuple[AttentionAudit, npt.NDArray[np.uint8], list[str]]:
    """Region shares and flags of the audited tiles; their region codes and predicted classes."""
    names = tuple(loaded.card.class_names)
    pred_names = [names[i] if i < len(names) else str(i) for i in explained.preds]
    tile_regions = plan.crop(plan.regions)
    attention = audit_attention(
        explained.maps, tile_regions, pred_class=pred_names, thresholds=thresholds,
        sign="positive",
    )  # fmt: skip
    return attention, tile_regions, pred_names


def iter_audit_slide(
    slide: Slide | str | Path,
    model: Any,
    *,
    spec: AuditSpec | None = None,
    grid: GridOptions | None = None,
    run: RunOptions | None = None,
    thresholds: AuditThresholds | None = None,
    verdict_thresholds: VerdictThresholds | None = None,
    mask_size: int = MASK_SIZE,
    out_dir: str | Path | None = None,
    masks: Any = None,
) -> Generator[AuditProgress, None, SlideAudit]:
    """Audit where a model looks on one slide (generator).

    Steps: masks, region map and tile sample (:func:`_plan_audit`); attribution
    and scores per batch (:func:`_explain_tiles`); region shares and flags
    (:func:`_attention`); class x artefact evidence, counterfactual test, sanity
    checks and the verdict (:func:`_shortcut_tests`); the report when
    ``out_dir`` is given.

    Parameters
    ----------
    slide : Slide, str or Path
        Open slide or slide file.
    model : LoadedModel, str or Path
        Loaded model (with card), a model file/folder, or ``"demo"``.
    spec : AuditSpec, optional
        What is audited and how: method, target, tile budget, border band,
        counterfactual test, sanity checks (see :class:`AuditSpec`).
    grid : GridOptions, optional
        The tile grid, as for scoring (``mpp``, ``overlap``, ``min_tissue``),
        over the audit's own tissue and artefact masks.
    run : RunOptions, optional
        ``device``, ``explain_batch_size`` (tiles per batch), ``num_workers``.
    thresholds : AuditThresholds, optional
        Flagging thresholds.
    verdict_thresholds : VerdictThresholds, optional
        Limits of the shortcut verdict.
    mask_size : int
        Longest side of the thumbnail the tissue/artefact masks are computed on
        when none are given or stored (default
        :data:`~napari_xai.core.options.MASK_SIZE`, scoring's and ``napari-xai qc``'s).
    out_dir : str or Path, optional
        When given, ``report.html`` and ``audit.json`` are written there.
    masks : SlideMasks, optional
        The slide's tissue and artefact masks (scoring's, stroke pass included);
        default: those stored in ``out_dir`` for this slide (a result folder),
        else computed (:func:`napari_xai.core.masks.cached_slide_masks`).

    Yields
    ------
    AuditProgress
        After the masks and after each batch; closing the generator cancels.

    Returns
    -------
    SlideAudit
    """
    from napari_xai.core.models.resolve import resolve_carded_model
    from napari_xai.core.wsi import opened_slide

    spec, grid, run = spec or AuditSpec(), grid or GridOptions(), run or RunOptions()
    with opened_slide(slide, mpp=grid.mpp) as slide:
        t0 = time.perf_counter()
        loaded = resolve_carded_model(
            model, device=run.torch_device, architecture=run.architecture,
            task="auditing a slide", needs="classes, tile size, mpp",
        )  # fmt: skip
        plan = _plan_audit(slide, loaded.card, spec, grid, masks, out_dir, mask_size=mask_size)
        n = len(plan.indices)
        t_masks = time.perf_counter() - t0
        yield AuditProgress(0, n, t_masks, stage="masks")
        explainer = _explainer(loaded, spec, run)
        explained = yield from _explain_tiles(slide, explainer, plan, run, t0)
        t_explain = time.perf_counter() - t0 - t_masks
        attention, tile_regions, pred_names = _attention(plan, explained, loaded, thresholds)
        pairs, cf_result, shortcut, t_tests = yield from _shortcut_tests(
            loaded, explainer, plan, explained, tile_regions, pred_names, spec, run, t0,
            verdict_thresholds=verdict_thresholds,
        )  # fmt: skip
        result = SlideAudit(
            **_audited(slide, plan, explained, attention, pred_names),
            method=spec.method,
            model_name=_model_name(loaded),
            timings={
                "masks_s": t_masks,
                "explain_s": t_explain,
                **t_tests,
                "total_s": time.perf_counter() - t0,
                "tiles_per_s": n / t_explain if t_explain > 0 else 0.0,
            },
            pairs=pairs,
            counterfactual=cf_result,
            shortcut=shortcut,
        )
        if out_dir is not None:
            from napari_xai.core.audit.report import write_report

            yield AuditProgress(n, n, time.perf_counter() - t0, stage="writing report")
            result.report_path = write_report(
                out_dir, slide_audit=result, title=f"Shortcut audit: {Path(slide.path).name}"
            )
        return result


def _explainer(loaded: Any, spec: AuditSpec, run: RunOptions) -> Any:
    """Make the audit's attribution method, batched as the run says."""
    from napari_xai.core.attribution import Explainer, ExplainOptions

    return Explainer(
        loaded,
        method=spec.method,
        target=spec.target,
        options=ExplainOptions(batch_size=run.explain_batch_size, **spec.method_options()),
    )


def _audited(
    slide: Slide,
    plan: _AuditPlan,
    explained: _Explained,
    attention: AttentionAudit,
    pred_names: list[str],
) -> dict[str, Any]:
    """Fields of a :class:`SlideAudit` that describe what was audited and where it looked."""
    worst = np.asarray(attention.worst, dtype=np.int64)
    if explained.images is not None:
        worst_images = explained.images[worst]
    else:  # very large audits: read the few worst tiles again
        from napari_xai.core.reader import read_tiles

        worst_images = read_tiles(slide, plan.grid, plan.indices[worst])
    shape_rc = tuple(int(s) for s in slide.info.shape_rc)
    return {
        "attention": attention,
        "tiles": _tiles_table(plan, explained, attention, pred_names),
        "slide_path": Path(slide.path),
        "slide_shape_rc": (shape_rc[0], shape_rc[1]),
        "n_grid_tiles": len(plan.grid),
        "sampling": plan.sampling,
        "regions": plan.regions,
        "regions_downsample": plan.downsample,
        "thumbnail": plan.thumbnail,
        "worst_images": worst_images,
        "worst_maps": explained.maps[worst],
    }


audit_slide = eager(iter_audit_slide, name="audit_slide")


def audit_saliency_store(
    store: str | Path,
    key: str,
    regions: npt.NDArray[np.uint8],
    *,
    regions_downsample: float,
    block_rows: int = 512,
) -> dict[str, dict[str, float]]:
    """Region shares of a stitched whole-slide saliency map in a result store.

    Complements the per-tile audit with the map the Explain step wrote
    (``heatmaps.zarr/saliency/<method>/<class>``, finest level, read in row blocks):
    every explained pixel of the slide counts, not a sample of tiles.

    Parameters
    ----------
    store : str or Path
        The zarr store (``<result>/<slide>/heatmaps.zarr``).
    key : str
        Group of the map (``saliency/<method>/<class>``).
    regions : ndarray of uint8, shape (rows, cols)
        Region map (:func:`~napari_xai.core.audit.attention.make_region_map`).
    regions_downsample : float
        Level-0 pixels per region-map pixel.
    block_rows : int
        Map rows read at a time.

    Returns
    -------
    dict
        ``{"shares": {region: share}, "area_shares": {...}, "enrichment": {...}}``.
    """
    import zarr

    from napari_xai.core.audit.attention import map_region_shares

    try:
        group: Any = zarr.open_group(str(store), mode="r")[key]
        meta: dict[str, Any] = dict(group.attrs["napari_xai_stitch"])
    except (KeyError, FileNotFoundError, ValueError) as exc:
        raise ValueError(f"{store}: no stitched saliency map at {key!r} ({exc})") from exc
    mass, pixels = map_region_shares(
        group["0"],
        regions,
        saliency_downsample=float(meta["downsample"]),
        regions_downsample=float(regions_downsample),
        block_rows=block_rows,
        sign="positive",
    )
    total, n_pix = float(mass.sum()), float(pixels.sum())
    shares = {
        n: (float(mass[i] / total) if total > 0 else 0.0) for i, n in enumerate(REGION_NAMES)
    }
    area = {
        n: (float(pixels[i] / n_pix) if n_pix > 0 else 0.0) for i, n in enumerate(REGION_NAMES)
    }
    enrich = {n: (shares[n] / area[n] if area[n] > 0 else float("nan")) for n in REGION_NAMES}
    return {"shares": shares, "area_shares": area, "enrichment": enrich}
