"""One pipeline from a slide to its result folder: :func:`run_slide`.

``run_slide(slide, model, out, SlideOptions(grid=..., explain=..., audit=...))`` is
the one writer of result folders (``out/<slide stem>/``, see DESIGN.md). It is
a generator that yields :class:`PipelineProgress` and returns the folder. Its
stages add to what the folder already holds:

* **score**: tiles table, class-probability maps, predicted regions, slide
  summary. Reused when the folder was scored with the same
  :class:`~napari_xai.core.options.GridOptions`, model and slide file; when the
  grid or the model changed, the saliency and audit computed on the old tiles
  are dropped and a progress message says which.
* **explain** (an :class:`~napari_xai.core.options.ExplainSpec`): a stitched
  saliency map, added beside the maps already there. It is computed in a
  resumable cache next to the folder (``.<stem>.saliency-cache.zarr``), so a
  killed run picks up where it stopped, then copied into the result.
* **audit** (an :class:`~napari_xai.core.options.AuditSpec`): ``audit.json``
  and ``report.html``.

Every run writes a fresh temporary folder and renames it into place
(:class:`napari_xai.core.results.ResultWriter`), so a kill leaves either the
old result or the new one, and a temporary folder the next run removes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Generator, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_xai.core import naming
from napari_xai.core.atomic import kill_point
from napari_xai.core.models.resolve import resolve_model
from napari_xai.core.options import (
    AuditSpec,
    ExplainSpec,
    FeatureSpec,
    GridOptions,
    SlideOptions,
    SummaryOptions,
    result_params,
)
from napari_xai.core.progress import Counted, drive, relay
from napari_xai.core.results import (
    AUDIT_NAME,
    TILES_NAME,
    ResultProblem,
    ResultWriter,
    check_result,
    clean_stale_temporaries,
    hash_params,
    package_versions,
    read_json_object,
    read_manifest,
    slide_identity,
)

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "PipelineProgress",
    "drive",
    "folder_grid",
    "iter_stage",
    "model_fingerprint",
    "predicted_regions",
    "result_folder",
    "run_slide",
    "saliency_in_folder",
    "scratch_store",
    "summarize_tiles",
    "up_to_date",
    "warm_masks",
    "write_preview",
]

REPORT_NAME = "report.html"
PREVIEW_NAME = "preview.png"
_CACHE_MARK = ".saliency-cache.zarr"
_SCRATCH_MARK = ".views.zarr"


# --------------------------------------------------------------------------- slide scores


def summarize_tiles(
    tiles: pd.DataFrame,
    *,
    class_names: Sequence[str],
    summary: SummaryOptions | None = None,
    mpp: float | None = None,
) -> dict[str, Any]:
    """Slide-level scores from a tiles table.

    Parameters
    ----------
    tiles : pandas.DataFrame
        The tiles table (``prob_<class>``, ``pred_class``, ``tissue_fraction``...).
    class_names : sequence of str
        The model's classes.
    summary : SummaryOptions, optional
        ``positive_class`` (the class that scores the slide; default:
        :func:`napari_xai.core.naming.positive_class`) and ``top_k`` (tiles in
        the top-k mean). Default :class:`SummaryOptions`.
    mpp : float, optional
        Slide µm/px, for the area in mm².

    Returns
    -------
    dict
        ``positive_class``, ``n_tiles``, ``mean_prob`` (mean probability of the
        positive class over tiles), ``topk_mean`` (mean of its ``top_k`` highest
        probabilities), ``tumour_area_fraction`` (tissue-weighted fraction of
        tiles predicted positive), ``tumour_area_mm2`` (None without mpp),
        ``score`` (= ``topk_mean``) and ``class_counts``.
    """
    summary = SummaryOptions() if summary is None else summary
    pos = naming.positive_class(class_names, summary.positive_class)
    n = int(len(tiles))
    out: dict[str, Any] = {"positive_class": pos, "n_tiles": n}
    col = f"prob_{pos}"
    if n == 0 or col not in tiles.columns:
        out.update(
            mean_prob=float("nan"),
            topk_mean=float("nan"),
            tumour_area_fraction=float("nan"),
            tumour_area_mm2=None,
            score=float("nan"),
            class_counts={},
        )
        return out
    prob = tiles[col].to_numpy(dtype=np.float64)
    k = max(1, min(int(summary.top_k), n))
    topk = np.sort(prob)[-k:]
    is_pos = (
        (tiles["pred_class"].astype(str) == pos).to_numpy()
        if "pred_class" in tiles
        else (prob >= 0.5)
    )
    weight = (
        tiles["tissue_fraction"].to_numpy(dtype=np.float64)
        if "tissue_fraction" in tiles
        else np.ones(n)
    )
    total = float(weight.sum())
    frac = float((weight * is_pos).sum() / total) if total > 0 else float("nan")
    area_mm2 = None
    if mpp:
        stride = tiles.attrs.get("stride0")
        if stride:
            cell = float(stride) ** 2 * np.ones(n)
        else:
            cell = (tiles["height"] * tiles["width"]).to_numpy(dtype=np.float64)
        area_mm2 = float((cell * weight * is_pos).sum() * float(mpp) ** 2 / 1e6)
    counts = tiles["pred_class"].astype(str).value_counts() if "pred_class" in tiles else {}
    out.update(
        mean_prob=float(prob.mean()),
        topk_mean=float(topk.mean()),
        tumour_area_fraction=frac,
        tumour_area_mm2=area_mm2,
        score=float(topk.mean()),
        class_counts={str(k_): int(v) for k_, v in dict(counts).items()},
    )
    if "ood_score" in tiles:
        # Median: one slide-level figure that a few odd tiles do not move.
        out["ood_score"] = float(np.nanmedian(tiles["ood_score"].to_numpy(np.float64)))
    return out


def predicted_regions(
    tiles: pd.DataFrame,
    *,
    class_names: Sequence[str],
    min_confidence: float = 0.0,
    shape_rc: Sequence[int] | None = None,
) -> dict[str, Any]:
    """Predicted regions as a QuPath-style GeoJSON FeatureCollection.

    Tiles predicted as each non-background class are merged into (multi)polygons
    (x/y in level-0 pixels), one feature per class. With ``shape_rc`` (the
    slide's level-0 rows, cols) they are clipped to the slide: edge tiles of an
    overlapping grid reach past it.
    """
    from shapely.geometry import box, mapping
    from shapely.ops import unary_union

    features: list[dict[str, Any]] = []
    if len(tiles) == 0 or "pred_class" not in tiles:
        return {"type": "FeatureCollection", "features": features}
    stride = tiles.attrs.get("stride0")
    for i, name in enumerate(class_names):
        if naming.is_background(name):
            continue
        sel = tiles[(tiles["pred_class"].astype(str) == str(name))]
        if "confidence" in sel and min_confidence > 0:
            sel = sel[sel["confidence"] >= min_confidence]
        if len(sel) == 0:
            continue
        rows = sel["row"].to_numpy(dtype=np.float64)
        cols = sel["col"].to_numpy(dtype=np.float64)
        if stride:
            # Stride cells centred in the tiles: overlapping tiles do not swell regions.
            h = w = float(stride)
            rows = rows + (sel["height"].to_numpy() - h) / 2
            cols = cols + (sel["width"].to_numpy() - w) / 2
            boxes = [box(c, r, c + w, r + h) for r, c in zip(rows, cols, strict=True)]
        else:
            boxes = [
                box(c, r, c + w_, r + h_)
                for r, c, h_, w_ in zip(rows, cols, sel["height"], sel["width"], strict=True)
            ]
        geom = unary_union(boxes)
        if shape_rc is not None:
            geom = geom.intersection(box(0.0, 0.0, float(shape_rc[1]), float(shape_rc[0])))
            if geom.is_empty:
                continue
        features.append(
            {
                "type": "Feature",
                "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"napari-xai/{name}")),
                "geometry": mapping(geom),
                "properties": {
                    "objectType": "annotation",
                    "name": f"predicted {name}",
                    "classification": {
                        "name": str(name),
                        "color": list(naming.rgb255(naming.class_colour(str(name), i))),
                    },
                    "isLocked": False,
                    "source": "napari-xai prediction",
                    "n_tiles": int(len(sel)),
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}


# --------------------------------------------------------------------------- models


def model_fingerprint(loaded: Any) -> str:
    """One hash for a loaded model: its weight file bytes and its card."""
    card = loaded.card
    card_hash = getattr(card, "sha256", None) or hash_params(card.to_dict())
    return hash_params({"weights": loaded.sha256, "card": card_hash})


def _model_info(loaded: Any) -> dict[str, Any]:
    card = loaded.card
    return {
        "path": None if loaded.path is None else str(loaded.path),
        "name": getattr(card, "name", "model"),
        "sha256": model_fingerprint(loaded),
        "weights_sha256": loaded.sha256,
        "card_sha256": getattr(card, "sha256", None),
        "card": card.to_dict(),
        "is_scripted": bool(getattr(loaded, "is_scripted", False)),
    }


def _masks(slide: Any, card: Any, grid: GridOptions, folder: Path | None) -> tuple[Any, Any]:
    """Get the slide's masks (stroke pass included) and key; (None, None): no tissue step.

    Reused from ``folder`` (an earlier result) when made there from the same
    slide file, thumbnail size and mask code
    (:func:`napari_xai.core.masks.cached_slide_masks`).
    """
    if not grid.tissue:
        return None, None
    from napari_xai.core.masks import cached_slide_masks, masks_key
    from napari_xai.core.options import MASK_SIZE

    # the size napari-xai qc uses too (one default): qc.json and these masks agree
    size = MASK_SIZE
    masks = cached_slide_masks(slide, folder, max_size=size, strokes=True)
    return masks, masks_key(slide, max_size=size, strokes=True)


def warm_masks(path: str | Path) -> None:
    """Make the masks :func:`run_slide` will use for ``path``, and keep them in this process.

    For a viewer: called in a worker once a slide is picked, so a run started
    later (or meanwhile: it waits) does not make them again
    (:func:`napari_xai.core.masks.cached_slide_masks` keeps the last few).
    """
    from napari_xai.core.wsi import open_slide

    with open_slide(path) as slide:
        _masks(slide, None, GridOptions(), None)  # no folder: made, or kept from earlier


def _write_masks(writer: ResultWriter, masks: Any, key: Any) -> None:
    """Put the masks (and the key they were made under) into the result being written."""
    from napari_xai.core.masks import write_masks

    for name in write_masks(masks, writer.path, key=key):
        writer.add_file(name.split(".")[0], name)


def _tile_grid(slide: Any, loaded: Any, grid: GridOptions, masks: Any) -> Any:
    """Plan the scoring grid over ``masks`` (None: scoring detects tissue, or keeps all)."""
    if masks is None:
        return None
    from napari_xai.core.inference import grid_for_slide

    ds = float(masks.downsample)
    return grid_for_slide(slide, loaded.card, grid, masks=(masks.tissue, masks.artefact, ds))


def slide_fit(slide: Any, card: Any, *, masks: Any = None) -> dict[str, Any]:
    """Slide modality and stain (thumbnail masks) against the model card's, with warnings.

    Parameters
    ----------
    slide : napari_xai.core.wsi.Slide
    card : napari_xai.core.models.card.ModelCard
    masks : SlideMasks, optional
        The slide's masks; default from a 512-pixel thumbnail.

    Returns
    -------
    dict
        ``slide_modality``, ``slide_stain``, ``slide_tissue_fraction``,
        ``model_stain`` (``"unknown"`` when the card does not say) and
        ``warnings`` (:meth:`~napari_xai.core.models.card.ModelCard.fit_warnings`).
    """
    from napari_xai.core.masks import masks_from_thumbnail

    if masks is None:
        thumb, ds = slide.thumbnail(max_size=512)
        masks = masks_from_thumbnail(thumb, ds)
    warnings = card.fit_warnings(
        slide=Path(slide.path).name, modality=masks.modality, stain=masks.stain
    )
    return {
        "slide_modality": masks.modality,
        "slide_stain": masks.stain,
        "slide_tissue_fraction": round(masks.tissue_fraction, 6),
        "model_stain": card.stain or "unknown",
        "warnings": list(warnings),
    }


def _slide_info_dict(slide: Any) -> dict[str, Any]:
    info = slide.info
    return {
        "vendor": info.vendor,
        "shape_rc": list(info.shape_rc),
        "level_shapes_rc": [list(s) for s in info.level_shapes_rc],
        "level_downsamples": list(info.level_downsamples),
        "mpp": info.mpp,
        "magnification": info.magnification,
    }


def _iter_prob_maps(scored: Any) -> Iterable[tuple[str, Any, Any, Any]]:
    """(class, map, scale_rc, translate_rc) for every class-probability map of a score result."""
    from napari_xai.core.layers.coords import grid_to_world

    grid = scored.grid
    scale, translate = grid_to_world(grid.stride0, grid.tile_size0)
    maps = np.asarray(scored.probabilities)
    return [(str(name), maps[k], scale, translate) for k, name in enumerate(scored.class_names)]


def write_preview(result: Any, slide: Any, path: Path, *, class_name: str | None = None) -> Path:
    """Blend one class's heatmap over the slide thumbnail and save a PNG."""
    from PIL import Image

    from napari_xai.core.naming import class_colour

    names = list(result.class_names)
    name = class_name or naming.positive_class(names)
    k = names.index(name)
    thumb, ds = slide.thumbnail(max_size=1024)
    prob = np.nan_to_num(result.probabilities[k], nan=0.0)
    # Map every thumbnail pixel to the grid cell whose stride box holds it.
    rows = (np.arange(thumb.shape[0]) + 0.5) * ds
    cols = (np.arange(thumb.shape[1]) + 0.5) * ds
    g = result.grid
    half = (g.tile_size0 - g.stride0) / 2.0
    gi = np.clip(((rows - half) // g.stride0).astype(int), 0, prob.shape[0] - 1)
    gj = np.clip(((cols - half) // g.stride0).astype(int), 0, prob.shape[1] - 1)
    alpha = (prob[gi][:, gj] * 0.6)[..., None]
    colour = np.asarray(class_colour(name, k)) * 255.0
    out = thumb.astype(np.float32) * (1 - alpha) + colour * alpha
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(out.clip(0, 255).astype(np.uint8)).save(path)
    return path


# --------------------------------------------------------------------------- the pipeline


@dataclass(frozen=True)
class PipelineProgress(Counted):
    """One step of :func:`run_slide`.

    Attributes
    ----------
    stage : str
        ``"score"``, ``"explain"``, ``"audit"``, ``"reuse"``, ``"invalidate"``,
        ``"warning"`` (the slide does not fit the model: its stain), ``"wait"``
        (another run of this process is writing the same folder) or ``"write"``.
    n_done, n_total : int
        Work done and to do in this stage (tiles).
    tiles_per_s : float
        Current rate of the stage (0 when unknown).
    message : str
        What happened, in words (e.g. what a re-score invalidated).
    value : object
        On a stage's last step: its result (``ScoreResult``, ``ExplainResult``,
        ``SlideAudit``); else None.
    detail : object
        On every batch step, the stage's own progress, for live display without
        reading the folder back (it is written only at the end):

        * ``"score"``: :class:`~napari_xai.core.inference.ScoreProgress`:
          ``maps`` (the live ``(C, grid_rows, grid_cols)`` class-probability
          maps, NaN where not scored yet; one array filled in place),
          ``class_names``, ``grid`` (the tile grid: placement
          ``grid_to_world(grid.stride0, grid.tile_size0)``) and ``batch``
          (``indices`` into the grid and ``probabilities`` of this batch's tiles).
        * ``"explain"``: :class:`~napari_xai.core.attribution.whole_slide.ExplainProgress`
          (``store`` and ``key`` of the stitched map filling up, this batch's
          ``indices``, ``layer_name``).
        * ``"audit"``: :class:`~napari_xai.core.audit.slide.AuditProgress`.

        None on the other steps.
    """

    stage: str
    n_done: int = 0
    n_total: int = 0
    tiles_per_s: float = 0.0
    message: str = ""
    value: Any = None
    detail: Any = None


def result_folder(out: str | os.PathLike[str], slide: Any) -> Path:
    """Return the result folder of a slide: ``out/<slide stem>`` (``a.ome.tiff`` → ``a``)."""
    return Path(out) / naming.slide_stem(getattr(slide, "path", slide))


def folder_grid(folder: str | os.PathLike[str]) -> GridOptions | None:
    """Return the tile grid a result folder was scored with (None: no scored folder there).

    Read from ``stages.score.params`` of its ``manifest.json``; the folder is not
    checked further (:func:`up_to_date` does that).
    """
    try:
        manifest = read_manifest(folder)
    except (OSError, ValueError):
        return None
    params = manifest.get("stages", {}).get("score", {}).get("params")
    return GridOptions.from_dict(params) if isinstance(params, dict) else None


def _cache_store(folder: Path) -> Path:
    return folder.parent / f".{folder.name}{_CACHE_MARK}"


def scratch_store(out: str | os.PathLike[str], slide: Any) -> Path:
    """Return the zarr store beside a slide's result folder for maps that are not part of it.

    The Explain widget's quick looks (the saliency of the tiles in view, one
    channel's activations) are kept there, resumable: written into the result
    folder behind its manifest, they would make the folder's files disagree with
    their checksums, and the next run would re-score and drop its saliency and
    audit. Whole-slide saliency belongs in the folder (:func:`run_slide`).
    """
    folder = result_folder(out, slide)
    return folder.parent / f".{folder.name}{_SCRATCH_MARK}"


def _drop_heatmap(writer: ResultWriter, key: str) -> None:
    """Remove one map from the copy being written (before it is written again)."""
    shutil.rmtree(writer.path / "heatmaps.zarr" / key, ignore_errors=True)
    writer.remove_heatmap(key)


def _summarize(
    tiles: pd.DataFrame, loaded: Any, slide: Any, options: SummaryOptions
) -> dict[str, Any]:
    """Slide scores of a tiles table with the model's classes and the slide's pixel size."""
    return summarize_tiles(
        tiles,
        class_names=list(loaded.card.class_names),
        summary=options,
        mpp=slide.info.mpp,
    )


def _score(
    job: _Job,
) -> Generator[PipelineProgress, None, tuple[dict[str, Any], dict[str, Any], float]]:
    """Score stage: tiles, maps, regions (features, preview); return (summary, extra, write_s)."""
    from napari_xai.core.inference import score_tiles

    slide, loaded, writer, grid = job.slide, job.loaded, job.writer, job.grid
    run, features = job.options.run, job.options.features
    capture = None
    if features is not None:
        from napari_xai.core.explore.features import FeatureCapture

        capture = FeatureCapture(loaded, layer=features.layer, mc_samples=features.mc_samples)

    gen = score_tiles(
        slide,
        loaded,
        grid=grid,
        run=run,
        forward=capture,
        tile_grid=_tile_grid(slide, loaded, grid, job.masks),
    )
    scored = yield from relay(
        gen, lambda s: PipelineProgress("score", s.n_done, s.n_total, s.tiles_per_s, detail=s)
    )
    t_write = time.perf_counter()
    class_names = list(loaded.card.class_names)
    tiles = scored.tiles
    feature_info: dict[str, Any] = {}
    if capture is not None:
        from napari_xai.core.explore.features import FEATURES_NAME, add_features

        tiles, feature_info = add_features(capture, tiles, loaded, writer.path)
        writer.add_file("features", FEATURES_NAME)
    summary = _summarize(tiles, loaded, slide, job.options.summary)
    writer.write_tiles(tiles)
    kill_point("score wrote tiles")
    for name, data, scale, translate in _iter_prob_maps(scored):
        writer.write_heatmap(
            "probabilities", name, data, scale_rc=tuple(scale), translate_rc=tuple(translate)
        )
        kill_point(f"score wrote map {name}")
    writer.write_annotations(
        predicted_regions(tiles, class_names=class_names, shape_rc=scored.grid.shape_rc)
    )
    if run.preview and len(tiles):
        write_preview(scored, slide, writer.path / PREVIEW_NAME)
        writer.add_file("preview", PREVIEW_NAME)
    write_s = round(time.perf_counter() - t_write, 3)
    extra: dict[str, Any] = {"grid": scored.grid.attrs(), "scoring": dict(scored.timings)}
    if feature_info:
        extra["features"] = feature_info
    n = len(tiles)
    yield PipelineProgress(
        "score",
        n,
        n,
        scored.timings.get("tiles_per_s", 0.0),
        message=f"{n:,} tiles scored",
        value=scored,
    )
    return summary, extra, write_s


def _explain(job: _Job, spec: ExplainSpec) -> Generator[PipelineProgress, None, dict[str, Any]]:
    """Explain stage: stitch into the resumable cache, copy into the result."""
    from napari_xai.core.attribution.whole_slide import (
        iter_explain_slide,
        iter_explain_view,
        write_to_result,
    )

    slide, loaded, run = job.slide, job.loaded, job.options.run
    # the explained tiles are the scored ones: the same grid, without the max_tiles sample
    tiles = dataclasses.replace(job.grid, max_tiles=None)
    store = _cache_store(job.folder)
    if spec.view_rc is not None:
        gen = iter_explain_view(
            slide, loaded, spec.view_rc, store=store, spec=spec, grid=tiles, run=run,
            max_tiles=1_000_000,
        )  # fmt: skip
    else:
        tile_grid = _tile_grid(slide, loaded, tiles, job.masks)  # over the scoring's masks
        gen = iter_explain_slide(
            slide, loaded, store=store, spec=spec, grid=tiles, run=run, tile_grid=tile_grid
        )
    result = yield from relay(
        gen, lambda s: PipelineProgress("explain", s.n_done, s.n_total, s.tiles_per_s, detail=s)
    )
    _drop_heatmap(job.writer, result.key)
    write_to_result(job.writer, result)
    yield PipelineProgress(
        "explain", result.n_done, result.n_tiles, message=f"saliency {result.key}", value=result
    )
    return {
        "spec": spec.to_dict(),
        "sha256": spec.hash(),
        "key": result.key,
        "method": result.method,
        "class_name": result.class_name,
        "n_tiles": result.n_tiles,
        "n_done": result.n_done,
        "limits": list(result.limits),
    }


def _audit(job: _Job, spec: AuditSpec) -> Generator[PipelineProgress, None, dict[str, Any]]:
    """Audit stage: ``audit.json`` and ``report.html`` (on the scoring's ``masks``)."""
    from napari_xai.core.audit.report import write_report
    from napari_xai.core.audit.slide import iter_audit_slide

    slide, writer = job.slide, job.writer
    gen = iter_audit_slide(
        slide, job.loaded, spec=spec, grid=job.grid, run=job.options.run, masks=job.masks
    )
    res = yield from relay(
        gen, lambda s: PipelineProgress("audit", s.n_done, s.n_total, message=s.stage, detail=s)
    )
    name = Path(getattr(slide, "path", "slide")).name
    audit_json = writer.path / AUDIT_NAME  # the kept folder's, when its score was kept
    evaluation = read_json_object(audit_json).get("evaluation")  # of the scored tiles: kept
    write_report(writer.path, slide_audit=res, title=f"Shortcut audit: {name}")
    if evaluation is not None:
        doc = {**read_json_object(audit_json), "evaluation": evaluation}
        audit_json.write_text(json.dumps(doc, indent=2))
    writer.add_file("audit", AUDIT_NAME)
    writer.add_file("report", REPORT_NAME)
    yield PipelineProgress("audit", 1, 1, message=f"audit {res.verdict}", value=res)
    return {
        "spec": spec.to_dict(),
        "sha256": spec.hash(),
        "verdict": str(res.verdict),
        "sentence": str(res.sentence),
        "method": str(res.method_label),
    }


def _previous(
    folder: Path,
    grid: GridOptions,
    model_hash: str,
    slide_path: Path,
    features: FeatureSpec | None,
) -> tuple[dict[str, Any], bool]:
    """Read the folder's manifest (``{}`` if unreadable); tell whether its score is reusable.

    The score is reused when the folder is complete and intact for the same model
    and slide file, and its score stage was computed with the same grid.
    """
    try:
        old = read_manifest(folder)
    except (OSError, ValueError):
        return {}, False
    params = old.get("params", {})
    if not isinstance(params, dict):
        return old, False
    stages = old.get("stages", {})
    same_grid = stages.get("score", {}).get("sha256") == grid.hash()
    # features are captured while scoring: asking for them (or others) re-scores
    same_features = features is None or stages.get("features", {}).get("sha256") == features.hash()
    usable = check_result(folder, params, model_hash, slide_path=slide_path) is None
    return old, bool(same_grid and same_features and usable)


def _done_before(stages: dict[str, Any], kind: str, spec: ExplainSpec | AuditSpec) -> str | None:
    """Key of a stage already computed, complete, with the same spec (None: compute it)."""
    if kind == "audit":
        return "audit" if stages.get("audit", {}).get("sha256") == spec.hash() else None
    for key, done in stages.get("explain", {}).items():
        if done.get("sha256") == spec.hash() and done.get("n_done", -1) >= done.get("n_tiles", 0):
            return str(key)
    return None


def iter_stage(
    slide: Any, model: Any, out: str | os.PathLike[str], options: SlideOptions, *, stage: str
) -> Generator[Any, None, tuple[Path, Any]]:
    """:func:`run_slide` seen from one of its stages (a widget's Explain or Audit run).

    A scored folder's grid is used (the stage is of the scored tiles: nothing is
    scored again); ``options.grid`` scores a slide that has no folder yet.

    Parameters
    ----------
    slide, model, out, options
        As for :func:`run_slide`.
    stage : str
        ``"explain"`` or ``"audit"``.

    Yields
    ------
    object
        The stage's own progress (its ``detail``: ``ExplainProgress``,
        ``AuditProgress``) and the pipeline's other steps (:class:`PipelineProgress`:
        scoring first, reuse, write).

    Returns
    -------
    (Path, object or None)
        The result folder and the stage's result (None when the folder's was kept).
    """
    grid = folder_grid(result_folder(out, slide))
    if grid is not None:
        options = dataclasses.replace(options, grid=grid)
    values: list[Any] = []

    def convert(step: PipelineProgress) -> Any:
        if step.stage != stage:
            return step
        if step.value is not None:
            values.append(step.value)
        return step if step.detail is None else step.detail

    folder = yield from relay(run_slide(slide, model, out, options), convert)
    return folder, (values[-1] if values else None)


def saliency_in_folder(folder: str | os.PathLike[str], spec: ExplainSpec) -> Any:
    """Return the folder's complete saliency map made with ``spec`` (what :func:`run_slide` keeps).

    Parameters
    ----------
    folder : path-like
        A result folder.
    spec : ExplainSpec
        The map asked for (its hash is looked up in the manifest's ``stages.explain``).

    Returns
    -------
    ExplainResult or None
        Its ``store`` is the folder's ``heatmaps.zarr`` (``n_computed`` 0); None when
        the folder holds no complete map with that spec.
    """
    from napari_xai.core.attribution.whole_slide import ExplainResult
    from napari_xai.core.results import HEATMAPS_NAME, list_heatmaps

    try:
        stages = read_manifest(folder).get("stages", {})
    except (OSError, ValueError):
        return None
    key = _done_before(stages, "explain", spec)
    store = Path(folder) / HEATMAPS_NAME
    info = next((h for h in list_heatmaps(store) if h.key == key), None) if key else None
    if key is None or info is None:
        return None
    done = stages["explain"][key]
    lo, hi = done.get("limits", (0.0, 1.0))
    return ExplainResult(
        store=store, key=key, method=str(done["method"]), class_name=str(done["class_name"]),
        slide_name=Path(folder).name, n_computed=0, n_cached=int(done["n_done"]),
        n_done=int(done["n_done"]), n_tiles=int(done["n_tiles"]), limits=(float(lo), float(hi)),
        scale_rc=info.scales[0], translate_rc=info.translates[0],
    )  # fmt: skip


def up_to_date(
    folder: str | os.PathLike[str],
    *,
    model_hash: str,
    slide_path: str | os.PathLike[str],
    options: SlideOptions,
    verify: bool = False,
) -> ResultProblem | None:
    """Tell why :func:`run_slide` would change a result folder (None: it would keep it all).

    Parameters
    ----------
    folder : path-like
        The result folder.
    model_hash : str
        :func:`model_fingerprint` of the model.
    slide_path : path-like
        The slide the folder should describe.
    options : SlideOptions
        The options of the run (see :func:`run_slide`; ``grid`` None: the defaults).
    verify : bool
        Also hash every listed file against the manifest.

    Returns
    -------
    ResultProblem or None
        The first reason found (``"stale"`` when a stage asked for is missing).
    """
    grid, features = options.grid or GridOptions(), options.features
    params = result_params(grid, options.summary)
    problem = check_result(folder, params, model_hash, slide_path=slide_path, verify=verify)
    if problem is not None:
        return problem
    stages = read_manifest(folder).get("stages", {})
    if stages.get("score", {}).get("sha256") != grid.hash():
        return ResultProblem("stale", f"{folder}: scored with another tile grid")
    if features is not None and stages.get("features", {}).get("sha256") != features.hash():
        return ResultProblem("stale", f"{folder}: scored without these features")
    for kind, spec in (("explain", options.explain), ("audit", options.audit)):
        if spec is not None and _done_before(stages, kind, spec) is None:
            return ResultProblem("stale", f"{folder}: no {kind} stage with these options")
    return None


def run_slide(
    slide: Any,
    model: Any,
    out: str | os.PathLike[str],
    options: SlideOptions | None = None,
    *,
    name: str | None = None,
) -> Generator[PipelineProgress, None, Path]:
    """Score a slide (or reuse its score), optionally explain and audit it, into one folder.

    Parameters
    ----------
    slide : str, Path or Slide
        Slide file, or an open :class:`napari_xai.core.wsi.Slide`.
    model : LoadedModel, str or Path
        Loaded model, model file/folder or ``"demo"``.
    out : path-like
        Output folder; the result goes to ``out/<slide stem>/``.
    options : SlideOptions, optional
        The bundle of the run (:class:`~napari_xai.core.options.SlideOptions`):

        * ``grid``: which tiles are scored. None: the grid ``out/<slide>/`` was
          scored with when it holds a result (:func:`folder_grid`; so explaining
          or auditing a scored folder re-scores nothing), else the
          :class:`GridOptions` defaults. A grid other than the folder's
          re-scores it and says what that invalidates.
        * ``run``: device, batch sizes, threads.
        * ``explain``: add a whole-slide saliency map (kept as it is when the
          folder already holds a complete map with the same spec).
        * ``audit``: add a shortcut audit (kept when already done with the same spec).
        * ``summary``: how the tiles become the slide score (recomputed from the
          kept tiles when only these change).
        * ``features``: keep per-tile features (``features.zarr``) and add
          ``ood_score`` to the tiles; a folder scored without them (or with
          another spec) is re-scored.
    name : str, optional
        Result folder name instead of the slide's stem (a cohort's ``slide_id``).

    Yields
    ------
    PipelineProgress
        After every batch of every stage; closing the generator cancels (the old
        result stays; a partial saliency map stays in the cache for a resume).

    Returns
    -------
    Path
        The result folder.

    Raises
    ------
    ValueError, OSError
        Bad slide, model or options (the message names the file).
    """
    import contextlib

    from napari_xai.core.wsi import opened_slide

    options = options or SlideOptions()
    folder = (Path(out) / name if name else result_folder(out, slide)).absolute()
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        # first: another run's temporary is not a killed run's leftover, nor its folder old
        yield from _hold_folder(folder, stack)
        grid = options.grid or folder_grid(folder) or GridOptions()
        clean_stale_temporaries(folder.parent, name=folder.name)
        # the slide first: a lying or broken file is refused before the model loads
        slide = stack.enter_context(opened_slide(slide, mpp=grid.mpp))
        run = options.run
        loaded = resolve_model(model, device=run.torch_device, architecture=run.architecture)
        masks, masks_key = _masks(slide, loaded.card, grid, folder)
        fit = slide_fit(slide, loaded.card, masks=masks)
        for warning in fit["warnings"]:
            yield PipelineProgress("warning", message=warning)
        writer = stack.enter_context(ResultWriter(folder))
        job = _Job(slide, loaded, writer, folder, grid, options, masks)
        book = yield from _score_stage(job, masks_key, t0)
        book.summary["fit_warnings"] = "; ".join(fit["warnings"])  # a cohort table shows them
        if options.explain is not None:
            yield from _explain_stage(job, book, options.explain)
        if options.audit is not None:
            yield from _audit_stage(job, book, options.audit)
        book.timings["total_s"] = round(time.perf_counter() - t0, 3)
        yield PipelineProgress("write", message=f"writing {folder}")
        writer.commit(_manifest(job, book, fit))
        if options.explain is not None and options.explain.view_rc is None:
            shutil.rmtree(_cache_store(folder), ignore_errors=True)  # still holding the folder
    return folder


#: One lock per result folder of this process: two runs on a folder (a Score and an
#: Explain click) take turns, and the second one reads what the first one wrote.
_FOLDER_LOCKS: dict[Path, threading.Lock] = {}
_FOLDER_LOCKS_GUARD = threading.Lock()


def _hold_folder(folder: Path, stack: Any) -> Generator[PipelineProgress, None, None]:
    """Take ``folder``'s lock until ``stack`` closes, yielding "wait" while another run has it.

    Without it, the second run would remove the first one's temporary folder as a
    killed run's leftover, or both would start from the same old folder and the
    later commit would silently drop what the earlier one added (saliency, audit).
    """
    with _FOLDER_LOCKS_GUARD:
        lock = _FOLDER_LOCKS.setdefault(folder, threading.Lock())
    while not lock.acquire(timeout=0.2):  # a step per wait: the caller can cancel
        yield PipelineProgress("wait", message=f"{folder}: waiting for another run on it")
    stack.callback(lock.release)


@dataclass(frozen=True)
class _Job:
    """What every stage of one :func:`run_slide` call works on."""

    slide: Any
    loaded: Any
    writer: ResultWriter
    folder: Path
    grid: GridOptions
    options: SlideOptions
    masks: Any


@dataclass
class _Book:
    """What the stages of one :func:`run_slide` call record for the manifest."""

    stages: dict[str, Any]
    timings: dict[str, Any]
    summary: dict[str, Any] = dataclasses.field(default_factory=dict)
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)


def _score_stage(job: _Job, masks_key: Any, t0: float) -> Generator[PipelineProgress, None, _Book]:
    """Keep the folder's score when it is reusable, else score (saying what that drops)."""
    folder, writer, summary = job.folder, job.writer, job.options.summary
    model_hash = model_fingerprint(job.loaded)
    old, reuse = _previous(
        folder, job.grid, model_hash, Path(job.slide.path), job.options.features
    )
    kept = old if reuse else {}
    book = _Book(stages=dict(kept.get("stages", {})), timings=dict(kept.get("timings", {})))
    book.timings["open_s"] = round(time.perf_counter() - t0, 3)
    if reuse:
        writer.adopt(folder, old)
    if job.masks is not None:
        _write_masks(writer, job.masks, masks_key)
    if reuse:
        book.summary = dict(old.get("summary", {}))
        if old.get("params", {}).get("summary") != summary.to_dict():
            import pandas as pd  # noqa: TID253 - only when summarising again

            tiles = pd.read_parquet(writer.path / TILES_NAME)  # pandas restores DataFrame.attrs
            book.summary.update(_summarize(tiles, job.loaded, job.slide, summary))
        book.extra = {k: old[k] for k in ("grid", "scoring", "features") if k in old}
        yield PipelineProgress(
            "reuse", message=f"{folder}: scored with the same grid, model and slide; kept"
        )
        return book
    lost = [
        *old.get("stages", {}).get("explain", {}),
        *(["audit"] if "audit" in old.get("stages", {}) else []),
    ]
    if lost:
        yield PipelineProgress(
            "invalidate",
            message=(
                f"{folder}: re-scoring with other parameters, model or slide "
                f"invalidates {', '.join(lost)}"
            ),
        )
    t = time.perf_counter()
    book.summary, book.extra, write_s = yield from _score(job)
    book.timings["score_s"] = round(time.perf_counter() - t - write_s, 3)
    book.timings["write_s"] = write_s
    book.stages["score"] = {"params": job.grid.to_dict(), "sha256": job.grid.hash()}
    features = job.options.features
    if features is not None:
        book.stages["features"] = {"spec": features.to_dict(), "sha256": features.hash()}
    return book


def _explain_stage(
    job: _Job, book: _Book, spec: ExplainSpec
) -> Generator[PipelineProgress, None, None]:
    """Keep a complete saliency map with the same spec, else explain the slide."""
    kept = _done_before(book.stages, "explain", spec)
    if kept is not None:
        yield PipelineProgress("reuse", message=f"{job.folder}: saliency {kept} kept")
        return
    t = time.perf_counter()
    done = yield from _explain(job, spec)
    book.stages["explain"] = {**book.stages.get("explain", {}), done["key"]: done}
    book.timings["explain_s"] = round(time.perf_counter() - t, 3)


def _audit_stage(
    job: _Job, book: _Book, spec: AuditSpec
) -> Generator[PipelineProgress, None, None]:
    """Keep an audit with the same spec, else audit the slide; its verdict joins the summary."""
    if not spec.restart and _done_before(book.stages, "audit", spec) is not None:
        yield PipelineProgress("reuse", message=f"{job.folder}: audit kept")
        return
    t = time.perf_counter()
    done = yield from _audit(job, spec)
    book.stages["audit"] = done
    book.summary["audit_verdict"] = done["verdict"]
    book.summary["audit_sentence"] = done.get("sentence", "")
    book.summary["audit_method"] = done.get("method", "")
    book.timings["audit_s"] = round(time.perf_counter() - t, 3)


def _manifest(job: _Job, book: _Book, fit: dict[str, Any]) -> dict[str, Any]:
    """Build the manifest of the folder :func:`run_slide` writes."""
    params = result_params(job.grid, job.options.summary)
    return {
        "slide_id": job.folder.name,
        "slide": {**slide_identity(Path(job.slide.path)), **_slide_info_dict(job.slide)},
        "model": _model_info(job.loaded),
        "fit": fit,
        "params": params,
        "params_sha256": hash_params(params),
        "runtime": job.options.run.to_dict(),
        "versions": package_versions(),
        "timings": book.timings,
        "summary": book.summary,
        "stages": book.stages,
        **book.extra,
    }
