"""Batch scoring of cohorts: one result folder per slide, resumable, on dask.distributed.

:func:`iter_batch` is the core: a generator that scores every slide of a cohort
(a folder, a glob, a cohort CSV, or explicit paths; see :func:`collect_slides`)
as one task per slide on a dask.distributed client (a :class:`LocalCluster`
sized to the machine by default, or an existing scheduler by address, or in
this process with ``scheduler="sync"``), and yields a :class:`BatchEvent` for
every slide that starts, progresses, finishes, fails or is skipped. It returns a
:class:`BatchResult` with the cohort summary (slide-level scores, status,
timings, errors, rank) and cohort metrics (confusion matrix, ROC) when slides
carry labels. :func:`run_batch` drives it to the end.

Each slide's work is a *slide function* ``fn(task, progress) -> dict``; the
default, :func:`score_and_save`, opens the slide, scores it with the model and
writes the result folder atomically (:class:`napari_xai.core.results.ResultWriter`).
A slide whose folder is complete for the same parameters and model hash is
skipped, so re-running a killed command finishes the cohort without redoing
finished slides. A slide that fails is recorded with its error and the others go on.
"""

from __future__ import annotations

import contextlib
import glob as _glob
import math
import os
import queue
import shutil
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Generator, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd  # noqa: TID253 - only imported when work runs

from napari_xai.core.atomic import atomic_write as _atomic_write
from napari_xai.core.atomic import atomic_write_text
from napari_xai.core.naming import COHORT_SUFFIXES as SLIDE_SUFFIXES
from napari_xai.core.naming import is_positive_label, is_slide_name
from napari_xai.core.naming import slide_stem as slide_id_for
from napari_xai.core.options import DEFAULT_MIN_TISSUE
from napari_xai.core.pipeline import (  # moved there: one writer of result folders
    _iter_prob_maps,
    _model_info,
    _slide_info_dict,
    model_fingerprint,
    predicted_regions,
    summarize_tiles,
)
from napari_xai.core.pipeline import load_model_cached as _load_model_cached
from napari_xai.core.results import (
    ResultWriter,
    check_result,
    clean_stale_temporaries,
    hash_params,
    package_versions,
    read_manifest,
    slide_identity,
)

__all__ = [
    "SLIDE_SUFFIXES",
    "SUMMARY_COLUMNS",
    "BatchCancelled",
    "BatchEvent",
    "BatchResult",
    "SlideTask",
    "build_manifest",
    "cohort_metrics",
    "collect_slides",
    "default_cluster_size",
    "iter_batch",
    "make_params",
    "model_fingerprint",
    "predicted_regions",
    "rank_summary",
    "run_batch",
    "score_and_save",
    "slide_id_for",
    "summarize_tiles",
]

_PATH_COLUMNS = ("slide_path", "path", "slide", "file", "filename", "image")
#: Columns of the cohort summary, in order (label/metadata columns follow ``slide_path``).
SUMMARY_COLUMNS = (
    "rank",
    "slide_id",
    "slide_path",
    "status",
    "score",
    "mean_prob",
    "topk_mean",
    "tumour_area_fraction",
    "tumour_area_mm2",
    "n_tiles",
    "positive_class",
    "pred_label",
    "audit_verdict",
    "audit_sentence",
    "reused",
    "result_folder",
    "error",
    "time_total_s",
    "time_open_s",
    "time_score_s",
    "time_write_s",
    "worker",
)
_TIMING_COLUMNS = ("time_total_s", "time_open_s", "time_score_s", "time_write_s")
_TOPIC = "napari-xai-batch"
SUMMARY_CSV = "cohort_summary.csv"
SUMMARY_PARQUET = "cohort_summary.parquet"
COHORT_JSON = "cohort.json"
COHORT_ROC_PNG = "cohort_roc.png"
#: Sub-folder of the output folder holding the traceback of each failed slide.
ERRORS_DIR = "_errors"


def remove_stale_error(out: str | os.PathLike[str], slide_id: str, slide_path: str) -> bool:
    """Remove ``_errors/<slide_id>.txt`` of a slide now done, when it is provably ours.

    The file is ours when its first line is the slide's path (as a failed run
    writes it); anything else in ``_errors`` is left alone.

    Returns
    -------
    bool
        True when a stale error file was removed.
    """
    path = Path(out) / ERRORS_DIR / f"{slide_id}.txt"
    try:
        with open(path, encoding="utf-8") as fh:
            first = fh.readline().rstrip("\n")
    except (OSError, UnicodeDecodeError):
        return False
    if first != str(slide_path):
        return False
    path.unlink(missing_ok=True)
    return True


class BatchCancelled(RuntimeError):
    """Raised inside a slide function when the user cancelled the batch."""


# --------------------------------------------------------------------------- inputs


def _is_slide_file(path: Path) -> bool:
    return is_slide_name(path) and path.is_file()


def _read_cohort_csv(path: Path, *, label_column: str) -> pd.DataFrame:
    try:
        table = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read cohort CSV ({exc})") from exc
    lower = {c.lower(): c for c in table.columns}
    path_col = next((lower[c] for c in _PATH_COLUMNS if c in lower), None)
    if path_col is None:
        raise ValueError(
            f"{path}: cohort CSV needs a slide path column, one of {', '.join(_PATH_COLUMNS)}"
            f" (found {', '.join(map(str, table.columns)) or 'no columns'})"
        )
    out = table.rename(columns={path_col: "slide_path"})
    if label_column != "label" and label_column in out.columns:
        out = out.rename(columns={label_column: "label"})
    resolved = []
    for value in out["slide_path"].astype(str):
        p = Path(value).expanduser()
        resolved.append(str(p if p.is_absolute() else (path.parent / p)))
    out["slide_path"] = resolved
    return out


def collect_slides(
    inputs: str | os.PathLike[str] | pd.DataFrame | Iterable[str | os.PathLike[str]],
    *,
    label_column: str = "label",
    recursive: bool = False,
) -> pd.DataFrame:
    """Gather the slides of a cohort into a table.

    Parameters
    ----------
    inputs : path, glob, CSV, DataFrame or sequence of them
        A folder (its slide files), a glob pattern (``"data/**/*.svs"``), a
        cohort CSV (a slide path column named ``slide_path``, ``path``,
        ``slide`` or ``file``; optional ``label`` and ``slide_id`` columns; any
        other column is kept as metadata; relative paths are relative to the
        CSV), a slide file, or a DataFrame with a ``slide_path`` column.
    label_column : str
        Name of the label column in a cohort CSV.
    recursive : bool
        Look into sub-folders of a folder input.

    Returns
    -------
    pandas.DataFrame
        Columns ``slide_id`` (unique, used as result folder name), ``slide_path``
        (absolute), then ``label`` and metadata columns when given. Slides listed
        twice are kept once.

    Raises
    ------
    ValueError
        When an input matches nothing, or a CSV lacks a path column.
    """
    if isinstance(inputs, pd.DataFrame):
        frames = [inputs.copy()]
    else:
        items = [inputs] if isinstance(inputs, (str, os.PathLike)) else list(inputs)
        frames = []
        loose: list[str] = []
        for item in items:
            text = os.fspath(item)
            p = Path(text).expanduser()
            if p.is_dir():
                pattern = "**/*" if recursive else "*"
                found = sorted(str(f) for f in p.glob(pattern) if _is_slide_file(f))
                if not found:
                    raise ValueError(f"{p}: no slide files ({', '.join(SLIDE_SUFFIXES)})")
                loose.extend(found)
            elif p.suffix.lower() == ".csv" and p.is_file():
                frames.append(_read_cohort_csv(p, label_column=label_column))
            elif not p.exists() and any(ch in text for ch in "*?["):
                # an existing file named like "slide[1].svs" is a file, not a pattern
                found = sorted(f for f in _glob.glob(str(p), recursive=True) if Path(f).is_file())
                if not found:
                    raise ValueError(f"{text}: the pattern matches no file")
                loose.extend(found)
            else:
                # A plain path: kept even when missing, so the batch reports it as failed.
                loose.append(str(p))
        if loose:
            frames.insert(0, pd.DataFrame({"slide_path": loose}))
    if not frames:
        raise ValueError("no slides given")
    table = pd.concat(frames, ignore_index=True, sort=False)
    if "slide_path" not in table.columns:
        raise ValueError("the slide table needs a 'slide_path' column")
    table["slide_path"] = [str(Path(p).expanduser().absolute()) for p in table["slide_path"]]
    table = table.drop_duplicates(subset="slide_path", keep="first").reset_index(drop=True)
    ids: list[str] = []
    seen: dict[str, int] = {}
    given = table["slide_id"] if "slide_id" in table.columns else [None] * len(table)
    for path, sid in zip(table["slide_path"], given, strict=True):
        base = str(sid) if isinstance(sid, str) and sid.strip() else slide_id_for(path)
        base = base.replace("/", "_").replace("\\", "_").lstrip(".") or "slide"
        n = seen.get(base, 0) + 1
        seen[base] = n
        ids.append(base if n == 1 else f"{base}-{n}")
    table["slide_id"] = ids
    first = ["slide_id", "slide_path"] + (["label"] if "label" in table.columns else [])
    return table[first + [c for c in table.columns if c not in first]]


# --------------------------------------------------------------------------- parameters


def make_params(
    *,
    tissue_threshold: float | None = None,
    overlap: float | None = None,
    mpp: float | None = None,
    attribution: str | None = None,
    attribution_target: str | None = None,
    audit: bool = False,
    top_k: int = 10,
    positive_class: str | None = None,
    threshold: float = 0.5,
    score_options: Mapping[str, Any] | None = None,
    features: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Collect the parameters that define a result (hashed into its manifest).

    Runtime choices that do not change the numbers (device, batch size,
    workers) are not parameters.

    Parameters
    ----------
    tissue_threshold : float, optional
        Minimum tissue fraction of a scored tile (0.5 when None).
    overlap : float, optional
        Tile overlap in [0, 1) (0 when None).
    mpp : float, optional
        µm/px to assume for slides whose file does not say.
    attribution : str, optional
        Attribution method for saliency maps (none when None).
    attribution_target : str, optional
        Class explained (default: each tile's predicted class).
    audit : bool
        Run the shortcut audit.
    top_k : int
        Number of most-positive tiles averaged into ``topk_mean``.
    positive_class : str, optional
        Class whose probability scores a slide (default: a class named like
        "tumour", else the last class).
    threshold : float
        Slide score at or above which a slide is called positive.
    score_options : mapping, optional
        Extra keyword arguments for the scorer.
    features : mapping, optional
        ``FeatureSpec.to_dict()``: keep per-tile features and ``ood_score``
        (:mod:`napari_xai.core.explore.features`).

    Returns
    -------
    dict
        JSON-able parameters.
    """
    # Defaults are written out, so equal settings hash equally however they were given.
    score: dict[str, Any] = {
        "min_tissue": DEFAULT_MIN_TISSUE,
        "overlap": 0.0,
        **dict(score_options or {}),
    }
    if tissue_threshold is not None:
        score["min_tissue"] = float(tissue_threshold)
    if overlap is not None:
        score["overlap"] = float(overlap)
    return {
        "score": score,
        "mpp": None if mpp is None else float(mpp),
        "attribution": attribution or None,
        **({"attribution_target": attribution_target} if attribution_target else {}),
        "audit": bool(audit),
        "summary": {
            "top_k": int(top_k),
            "positive_class": positive_class or None,
            "threshold": float(threshold),
        },
        # Only when asked, so results scored without features keep their hash.
        **({"features": dict(features)} if features is not None else {}),
    }


# --------------------------------------------------------------------------- tasks


@dataclass(frozen=True)
class SlideTask:
    """Everything a worker needs to score one slide (picklable, paths as strings).

    Attributes
    ----------
    index : int
        Position of the slide in the cohort table.
    slide_id : str
        Result folder name.
    slide_path : str
        The slide file.
    out_folder : str
        The final result folder ``<out>/<slide_id>``.
    model : str
        Model file or folder, or ``"demo"``.
    model_hash : str
        Fingerprint of the model (see :func:`model_fingerprint`).
    params : dict
        Result-defining parameters (see :func:`make_params`).
    runtime : dict
        Device, batch size, threads: choices that do not change the numbers.
    run_id : str
        Identifies the batch run (progress topic).
    """

    index: int
    slide_id: str
    slide_path: str
    out_folder: str
    model: str
    model_hash: str
    params: dict[str, Any]
    runtime: dict[str, Any] = field(default_factory=dict)
    run_id: str = ""


ProgressFn = Callable[[int, int], None]
SlideFn = Callable[[SlideTask, ProgressFn], dict[str, Any]]


def build_manifest(
    task: SlideTask,
    *,
    identity: Mapping[str, Any],
    model_info: Mapping[str, Any],
    slide_info: Mapping[str, Any] | None = None,
    timings: Mapping[str, Any] | None = None,
    summary: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble a result manifest (status and file list are added on commit)."""
    return {
        "slide_id": task.slide_id,
        "slide": {**dict(identity), **dict(slide_info or {})},
        "model": dict(model_info),
        "params": task.params,
        "params_sha256": hash_params(task.params),
        "runtime": task.runtime,
        "versions": package_versions(),
        "timings": dict(timings or {}),
        "summary": dict(summary or {}),
        **dict(extra or {}),
    }


def _score_slide_call(
    slide: Any, loaded: Any, task: SlideTask, progress: ProgressFn, forward: Any = None
) -> Any:
    """Call the single-slide scorer with the task's options and a progress hook."""
    from napari_xai.core.inference import score_slide

    kwargs = dict(task.params.get("score", {}))
    if forward is not None:
        kwargs["forward"] = forward
    if task.params.get("mpp") is not None:
        kwargs["mpp"] = task.params["mpp"]
    for key in ("device", "batch_size", "num_workers"):
        if task.runtime.get(key) is not None:
            kwargs[key] = task.runtime[key]
    return score_slide(slide, loaded, progress=lambda p: progress(p.n_done, p.n_total), **kwargs)


def score_and_save(task: SlideTask, progress: ProgressFn) -> dict[str, Any]:
    """Score one slide with the model and write its result folder atomically.

    The default slide function of :func:`iter_batch`. Runs in a dask worker (or
    in this process); the model is loaded once per process.

    Parameters
    ----------
    task : SlideTask
        The slide, model, parameters and output folder.
    progress : callable
        ``progress(tiles_done, tiles_total)``; raises :class:`BatchCancelled`
        to stop.

    Returns
    -------
    dict
        The slide's summary row (scores and timings).
    """
    from napari_xai.core.wsi import open_slide

    t0 = time.perf_counter()
    loaded = _load_model_cached(
        task.model,
        device=task.runtime.get("device"),
        architecture=task.runtime.get("architecture"),
    )
    identity = slide_identity(task.slide_path)
    params = task.params
    class_names = list(loaded.card.class_names)
    opts = params.get("summary", {})
    with (
        open_slide(task.slide_path, mpp=params.get("mpp")) as slide,
        ResultWriter(task.out_folder) as writer,
    ):
        t_open = time.perf_counter()
        info = _slide_info_dict(slide)
        capture = None
        if params.get("features") is not None:
            from napari_xai.core.explore.features import FeatureCapture

            spec = params["features"]
            capture = FeatureCapture(
                loaded, layer=spec.get("layer"), mc_samples=int(spec.get("mc_samples", 0))
            )
        scored = _score_slide_call(slide, loaded, task, progress, capture)
        t_score = time.perf_counter()
        tiles: pd.DataFrame = scored.tiles
        feature_info: dict[str, Any] = {}
        if capture is not None:
            from napari_xai.core.explore.features import FEATURES_NAME, add_features

            tiles, feature_info = add_features(capture, tiles, loaded, writer.path)
            writer.add_file("features", FEATURES_NAME)
        summary = summarize_tiles(
            tiles,
            class_names=class_names,
            positive_class=opts.get("positive_class"),
            top_k=int(opts.get("top_k", 10)),
            mpp=info.get("mpp"),
        )
        writer.write_tiles(tiles)
        for name, data, scale, translate in _iter_prob_maps(scored):
            writer.write_heatmap(
                "probabilities", name, data, scale_rc=tuple(scale), translate_rc=tuple(translate)
            )
        writer.write_annotations(predicted_regions(tiles, class_names=class_names))
        t_write = time.perf_counter()
        timings = {
            "open_s": round(t_open - t0, 3),
            "score_s": round(t_score - t_open, 3),
            "write_s": round(t_write - t_score, 3),
        }
        extra: dict[str, Any] = {"grid": scored.grid.attrs(), "scoring": dict(scored.timings)}
        if feature_info:
            extra["features"] = feature_info
        if params.get("attribution"):
            extra["saliency"] = _explain_into(writer, slide, loaded, task, progress)
            timings["explain_s"] = round(time.perf_counter() - t_write, 3)
        if params.get("audit"):
            t_audit = time.perf_counter()
            verdict, sentence = _audit_into(writer, slide, loaded, task, progress)
            summary["audit_verdict"] = verdict
            summary["audit_sentence"] = sentence
            timings["audit_s"] = round(time.perf_counter() - t_audit, 3)
        timings["total_s"] = round(time.perf_counter() - t0, 3)
        writer.commit(
            build_manifest(
                task,
                identity=identity,
                model_info=_model_info(loaded),
                slide_info=info,
                timings=timings,
                summary=summary,
                extra=extra,
            )
        )
    return {**summary, **{f"time_{k}": v for k, v in timings.items()}}


def _explain_into(
    writer: ResultWriter, slide: Any, loaded: Any, task: SlideTask, progress: ProgressFn
) -> dict[str, Any]:
    """Stitch a whole-slide saliency map into the result's ``heatmaps.zarr``."""
    from napari_xai.core.attribution.whole_slide import explain_slide

    params = task.params
    score = params.get("score", {})
    kwargs: dict[str, Any] = {
        k: score[k] for k in ("overlap", "tissue", "min_tissue") if k in score
    }
    if params.get("mpp") is not None:
        kwargs["mpp"] = params["mpp"]
    if task.runtime.get("num_workers") is not None:
        kwargs["num_workers"] = task.runtime["num_workers"]
    result = explain_slide(
        slide,
        loaded,
        store=writer.path / "heatmaps.zarr",
        method=params["attribution"],
        target=params.get("attribution_target"),
        resume=False,
        progress=lambda p: progress(p.n_done, p.n_total),
        **kwargs,
    )
    writer.add_heatmap(result.key)
    return {
        "method": result.method,
        "class_name": result.class_name,
        "key": result.key,
        "n_tiles": result.n_tiles,
        "limits": list(result.limits),
    }


def _audit_into(
    writer: ResultWriter, slide: Any, loaded: Any, task: SlideTask, progress: ProgressFn
) -> tuple[str, str]:
    """Audit, write ``report.html`` and ``audit.json``; return (verdict, sentence)."""
    from napari_xai.core.audit.report import REPORT_NAME, write_report
    from napari_xai.core.audit.slide import audit_slide

    params = task.params
    score = params.get("score", {})
    kwargs: dict[str, Any] = {k: score[k] for k in ("min_tissue",) if k in score}
    if params.get("mpp") is not None:
        kwargs["mpp"] = params["mpp"]
    for key in ("device", "num_workers"):
        if task.runtime.get(key) is not None:
            kwargs[key] = task.runtime[key]
    audit = audit_slide(
        slide,
        loaded,
        method=params.get("attribution") or "grad_cam",
        progress=lambda p: progress(p.n_done, p.n_total),
        **kwargs,
    )
    write_report(writer.path, slide_audit=audit, title=f"Shortcut audit: {Path(slide.path).name}")
    writer.add_file("report", REPORT_NAME)
    writer.write_audit(audit.to_dict())
    return str(audit.verdict), str(audit.sentence)


def _worker_progress(task: SlideTask, cancel: threading.Event | None) -> ProgressFn:
    """Make a throttled progress callback that reaches the caller from a dask worker."""
    worker = None
    try:
        from distributed import get_worker

        worker = get_worker()
    except (ImportError, ValueError):
        worker = None
    last = [0.0]

    def progress(done: int, total: int) -> None:
        if cancel is not None and cancel.is_set():
            raise BatchCancelled(f"{task.slide_path}: cancelled")
        now = time.monotonic()
        if worker is not None and (now - last[0] >= 0.25 or done >= total):
            last[0] = now
            worker.log_event(
                f"{_TOPIC}-{task.run_id}",
                {"index": task.index, "done": int(done), "total": int(total)},
            )

    return progress


def run_task(
    fn: SlideFn, task: SlideTask, cancel: threading.Event | None = None
) -> dict[str, Any]:
    """Run one slide function, turning any error into a ``failed`` row.

    This is what the dask task executes. It never raises (except when the
    process dies), so a bad slide never stops the cohort.
    """
    start = time.perf_counter()
    worker = ""
    try:
        from distributed import get_worker

        worker = str(get_worker().address)
    except (ImportError, ValueError):
        worker = "local"
    threads = task.runtime.get("torch_threads")
    if threads:
        try:
            import torch

            if torch.get_num_threads() != int(threads):
                torch.set_num_threads(int(threads))
        except ImportError:  # pragma: no cover
            pass
    row: dict[str, Any] = {"index": task.index, "slide_id": task.slide_id, "worker": worker}
    try:
        out = fn(task, _worker_progress(task, cancel))
        row.update(out)
        row["status"] = "done"
    except BatchCancelled:
        row.update(status="cancelled", error="cancelled")
    except Exception as exc:  # noqa: BLE001 - one bad slide must not stop the cohort
        row.update(
            status="failed",
            error=f"{type(exc).__name__}: {exc}",
            traceback=traceback.format_exc(limit=20),
        )
    row.setdefault("time_total_s", round(time.perf_counter() - start, 3))
    return row


# --------------------------------------------------------------------------- cohort


def _label_to_binary(value: Any, positive: str) -> float:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return float("nan")
    if isinstance(value, (bool, np.bool_)):
        return float(value)
    if isinstance(value, (int, float, np.integer, np.floating)):
        return float(value != 0)
    text = str(value).strip().lower()
    if not text or text in ("nan", "none", "na"):
        return float("nan")
    return 1.0 if is_positive_label(text, positive) else 0.0


def _roc(
    y: np.ndarray, s: np.ndarray
) -> tuple[list[float], list[float], list[float | None], float]:
    order = np.argsort(-s, kind="mergesort")
    y, s = y[order], s[order]
    distinct = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    tps = np.cumsum(y)[distinct]
    fps = (distinct + 1) - tps
    p, n = y.sum(), len(y) - y.sum()
    tpr = np.r_[0.0, tps / p]
    fpr = np.r_[0.0, fps / n]
    thr = np.r_[np.inf, s[distinct]]
    # trapezoid rule over the ROC points (np.trapz is gone from numpy 2.x)
    auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    return fpr.tolist(), tpr.tolist(), [float(t) if np.isfinite(t) else None for t in thr], auc


def cohort_metrics(summary: pd.DataFrame, *, threshold: float = 0.5) -> dict[str, Any]:
    """Cohort-level confusion matrix and ROC from slide labels and scores.

    Labels are read as binary: the positive class name, 1/true/yes/positive
    (or a tumour-like word) is positive, anything else negative; missing
    labels and unscored slides are left out.

    Parameters
    ----------
    summary : pandas.DataFrame
        The cohort summary (``label``, ``score``, ``positive_class``, ``status``).
    threshold : float
        Score at or above which a slide is called positive.

    Returns
    -------
    dict
        ``n_slides``, ``n_done``, ``n_failed``, ``n_labelled``, and when labels
        exist ``confusion_matrix`` (``[[TN, FP], [FN, TP]]``), ``accuracy``,
        ``sensitivity``, ``specificity``, and ``roc`` (``fpr``, ``tpr``,
        ``thresholds``, ``auc``; AUC needs both classes).
    """
    out: dict[str, Any] = {
        "n_slides": int(len(summary)),
        "n_done": int((summary.get("status") == "done").sum()) if len(summary) else 0,
        "n_failed": int((summary.get("status") == "failed").sum()) if len(summary) else 0,
        "threshold": float(threshold),
    }
    if "label" not in summary.columns or len(summary) == 0:
        out["n_labelled"] = 0
        return out
    pos = (
        summary["positive_class"].dropna()
        if "positive_class" in summary.columns
        else pd.Series([], dtype=object)
    )
    positive = str(pos.iloc[0]) if len(pos) else "tumour"
    y = np.array([_label_to_binary(v, positive) for v in summary["label"]], dtype=np.float64)
    s = (
        pd.to_numeric(summary["score"], errors="coerce").to_numpy(dtype=np.float64)
        if "score" in summary.columns
        else np.full(len(summary), np.nan)
    )
    ok = np.isfinite(y) & np.isfinite(s)
    out["n_labelled"] = int(ok.sum())
    out["positive_class"] = positive
    if not ok.any():
        return out
    yy, ss = y[ok].astype(int), s[ok]
    pred = (ss >= threshold).astype(int)
    tp = int(((pred == 1) & (yy == 1)).sum())
    tn = int(((pred == 0) & (yy == 0)).sum())
    fp = int(((pred == 1) & (yy == 0)).sum())
    fn = int(((pred == 0) & (yy == 1)).sum())
    out["confusion_matrix"] = [[tn, fp], [fn, tp]]
    out["confusion_labels"] = ["negative", f"positive ({positive})"]
    out["accuracy"] = (tp + tn) / len(yy)
    out["sensitivity"] = tp / (tp + fn) if tp + fn else None
    out["specificity"] = tn / (tn + fp) if tn + fp else None
    if 0 < yy.sum() < len(yy):
        fpr, tpr, thr, auc = _roc(yy.astype(np.float64), ss)
        out["roc"] = {"fpr": fpr, "tpr": tpr, "thresholds": thr, "auc": auc}
    else:
        out["roc"] = None
    return out


def rank_summary(summary: pd.DataFrame, *, threshold: float = 0.5) -> pd.DataFrame:
    """Sort slides by score (highest first; unscored last) and number them."""
    df = summary.copy()
    score = pd.to_numeric(df.get("score"), errors="coerce") if len(df) else pd.Series(dtype=float)
    df["_score"] = score
    df = df.sort_values(
        ["_score", "slide_id"], ascending=[False, True], na_position="last", kind="mergesort"
    )
    ranks = np.arange(1, len(df) + 1, dtype=float)
    ranks[~np.isfinite(df["_score"].to_numpy(dtype=float))] = np.nan
    df["rank"] = pd.array(ranks, dtype="Int64") if len(df) else pd.array([], dtype="Int64")
    df["pred_label"] = [
        (None if not np.isfinite(v) else ("positive" if v >= threshold else "negative"))
        for v in df["_score"].to_numpy(dtype=float)
    ]
    df = df.drop(columns="_score").reset_index(drop=True)
    if "n_tiles" in df.columns:
        df["n_tiles"] = pd.to_numeric(df["n_tiles"], errors="coerce").astype("Int64")
    first = [c for c in SUMMARY_COLUMNS[:3] if c in df.columns]
    extra = [c for c in df.columns if c not in SUMMARY_COLUMNS]
    rest = [c for c in SUMMARY_COLUMNS[3:] if c in df.columns]
    return df[first + extra + rest]


def _parquet_safe(df: pd.DataFrame) -> pd.DataFrame:
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object or str(out[col].dtype).startswith("string"):
            out[col] = [
                None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
                for v in out[col]
            ]
    return out


def _write_roc_png(path: Path, metrics: Mapping[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    roc = metrics.get("roc")
    fig = Figure(figsize=(7, 3.4), dpi=100)
    ax1, ax2 = fig.subplots(1, 2)
    if roc:
        ax1.plot(roc["fpr"], roc["tpr"], marker=".")
        ax1.set_title(f"ROC (AUC {roc['auc']:.3f}, n={metrics['n_labelled']})")
    ax1.plot([0, 1], [0, 1], ":", color="grey")
    ax1.set_xlabel("false positive rate")
    ax1.set_ylabel("true positive rate")
    cm = np.asarray(metrics["confusion_matrix"])
    ax2.imshow(cm, cmap="Blues")
    for (i, j), v in np.ndenumerate(cm):
        ax2.text(j, i, str(v), ha="center", va="center")
    ax2.set_xticks([0, 1], ["pred neg", "pred pos"])
    ax2.set_yticks([0, 1], ["true neg", "true pos"])
    ax2.set_title("confusion matrix")
    fig.tight_layout()
    fig.savefig(path, format="png")


def write_cohort_summary(
    out: str | os.PathLike[str],
    summary: pd.DataFrame,
    metrics: Mapping[str, Any],
    *,
    run: Mapping[str, Any] | None = None,
    plot: bool = True,
) -> dict[str, Path]:
    """Write ``cohort_summary.csv``/``.parquet``, ``cohort.json`` (and the ROC plot).

    Each file is replaced atomically, so a reader never sees a half-written one.
    """
    import json

    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    paths = {
        "csv": root / SUMMARY_CSV,
        "parquet": root / SUMMARY_PARQUET,
        "json": root / COHORT_JSON,
    }
    table = summary.drop(columns=[c for c in ("traceback",) if c in summary.columns])
    _atomic_write(paths["csv"], lambda p: table.to_csv(p, index=False))
    _atomic_write(paths["parquet"], lambda p: _parquet_safe(table).to_parquet(p, index=False))
    from napari_xai.core.results import _jsonable

    body = {"metrics": _jsonable(dict(metrics)), "run": _jsonable(dict(run or {}))}

    def write_json(p: Path) -> None:
        p.write_text(json.dumps(body, indent=2) + "\n")

    _atomic_write(paths["json"], write_json)
    if plot and metrics.get("confusion_matrix") is not None:
        try:
            _atomic_write(root / COHORT_ROC_PNG, lambda p: _write_roc_png(p, metrics))
            paths["roc_png"] = root / COHORT_ROC_PNG
        except Exception:  # noqa: BLE001 - a plot is a nicety, never fail a batch for it
            pass
    return paths


# --------------------------------------------------------------------------- running


@dataclass
class BatchEvent:
    """Something that happened during a batch run.

    Attributes
    ----------
    kind : str
        ``"queued"`` (slide submitted), ``"started"`` (first progress from its
        worker), ``"progress"`` (tiles done), ``"skipped"`` (complete result
        reused), ``"recompute"`` (a result folder found on resume is damaged or
        incomplete: ``note`` says why, the slide is scored again), ``"done"``,
        ``"failed"``, ``"cancelled"``.
    index : int
        Row of the slide in the cohort table.
    slide_id : str
        The slide's result folder name.
    n_total, n_finished : int
        Slides in the cohort, and slides finished so far (done, failed, skipped).
    tiles_done, tiles_total : int
        Tile progress of this slide (``progress`` events).
    row : dict or None
        The slide's summary row (finished slides).
    note : str
        Why (``recompute`` events).
    """

    kind: str
    index: int
    slide_id: str
    n_total: int
    n_finished: int
    tiles_done: int = 0
    tiles_total: int = 0
    row: dict[str, Any] | None = None
    note: str = ""

    @property
    def message(self) -> str:
        """One line for a log or status bar."""
        head = f"[{self.n_finished}/{self.n_total}] {self.slide_id}: {self.kind}"
        if self.kind == "progress" and self.tiles_total:
            return f"{head} {self.tiles_done}/{self.tiles_total} tiles"
        if self.note:
            return f"{head} ({self.note})"
        if self.kind == "failed" and self.row:
            return f"{head} ({self.row.get('error')})"
        if self.kind in ("done", "skipped") and self.row:
            score = self.row.get("score")
            return f"{head} score={score:.3f}" if isinstance(score, float) else head
        return head


@dataclass
class BatchResult:
    """Outcome of a batch run.

    Attributes
    ----------
    out : Path
        Output folder.
    summary : pandas.DataFrame
        One row per slide, ranked by score (see :data:`SUMMARY_COLUMNS`).
    metrics : dict
        Cohort metrics (see :func:`cohort_metrics`).
    files : dict
        Paths of the summary files.
    cancelled : bool
        True when the run was cancelled before every slide finished.
    """

    out: Path
    summary: pd.DataFrame
    metrics: dict[str, Any]
    files: dict[str, Path]
    cancelled: bool = False

    def count(self, status: str) -> int:
        """Count slides with this status (``done``, ``failed``, ...)."""
        return int((self.summary["status"] == status).sum()) if len(self.summary) else 0


def default_cluster_size(n_slides: int | None = None) -> tuple[int, int]:
    """Workers and torch threads per worker for a LocalCluster on this machine.

    One worker per GPU where CUDA exists; on CPU one worker per 4 cores (a slide
    keeps reader threads and torch's intra-op threads busy), at least one, never
    more than the slides.

    Returns
    -------
    tuple of int
        ``(n_workers, torch_threads_per_worker)``.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS / Windows
        cores = os.cpu_count() or 1
    n_gpu = 0
    try:
        import torch

        n_gpu = torch.cuda.device_count() if torch.cuda.is_available() else 0
    except ImportError:  # pragma: no cover
        pass
    n = n_gpu if n_gpu else max(1, cores // 4)
    if n_slides is not None:
        n = max(1, min(n, n_slides))
    return n, max(1, cores // n)


def _start_client(
    scheduler: str | None,
    *,
    n_workers: int | None,
    threads: int,
    n_slides: int,
) -> tuple[Any, Any]:
    import logging

    import dask
    from distributed import Client, LocalCluster

    if scheduler and scheduler not in ("local", "localcluster"):
        return Client(scheduler, timeout="30s"), None
    n = n_workers or default_cluster_size(n_slides)[0]
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        cluster = LocalCluster(
            n_workers=n,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=None,
            silence_logs=logging.CRITICAL,  # shutdown heartbeats are noise
        )
    return Client(cluster), cluster


def _row_from_manifest(folder: Path) -> dict[str, Any]:
    manifest = read_manifest(folder)
    summary = dict(manifest.get("summary", {}))
    timings = manifest.get("timings", {})
    summary.update({f"time_{k}": v for k, v in timings.items()})
    return summary


def iter_batch(
    slides: Any,
    model: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    params: Mapping[str, Any] | None = None,
    slide_fn: SlideFn | None = None,
    model_hash: str | None = None,
    scheduler: str | None = None,
    client: Any = None,
    n_workers: int | None = None,
    device: str | None = None,
    batch_size: int | None = None,
    num_workers: int | None = None,
    architecture: str | None = None,
    torch_threads: int | None = None,
    resume: bool = True,
    cancel: threading.Event | None = None,
    poll_interval: float = 0.1,
    label_column: str = "label",
    write_plot: bool = True,
    verify: bool = False,
) -> Generator[BatchEvent, None, BatchResult]:
    """Score a cohort slide by slide on dask.distributed, yielding events.

    Parameters
    ----------
    slides : path, glob, CSV, DataFrame or sequence
        The cohort (see :func:`collect_slides`).
    model : path-like or "demo"
        Model file or folder (TorchScript, state dict + card, WSInfer folder).
    out : path-like
        Output folder: one result folder per slide, plus the cohort summary.
    params : mapping, optional
        Result-defining parameters (:func:`make_params`; defaults when None).
    slide_fn : callable, optional
        ``fn(task, progress) -> dict`` doing one slide (default :func:`score_and_save`).
        Must be importable (or cloudpickle-able) in the workers.
    model_hash : str, optional
        Model fingerprint; computed by loading the model here when None.
    scheduler : str, optional
        ``None``/``"local"``: start a LocalCluster sized to the machine
        (:func:`default_cluster_size`); ``"sync"``: score in this process, one
        slide after another; otherwise a scheduler address (``tcp://host:8786``)
        whose workers have napari-xai installed and see the same paths.
    client : distributed.Client, optional
        Use this client (takes precedence over ``scheduler``).
    n_workers : int, optional
        Workers of the LocalCluster (default: :func:`default_cluster_size`).
    device, batch_size, num_workers : optional
        Runtime options passed to the scorer (``num_workers``: tile reader threads).
    architecture : str, optional
        Registered architecture name for state-dict weights (part of the model's identity).
    torch_threads : int, optional
        torch intra-op threads per worker (default: cores / workers on a
        LocalCluster, torch's own default in this process). On a machine whose
        cores are shared, 1 avoids OpenMP oversubscription.
    resume : bool
        Skip slides whose result folder is complete for the same parameters,
        model and slide file; False redoes every slide.
    cancel : threading.Event, optional
        Set it to stop: queued slides are dropped, finished ones stay.
    poll_interval : float
        Seconds between checks for progress and cancellation.
    label_column : str
        Label column of a cohort CSV.
    write_plot : bool
        Also write ``cohort_roc.png`` when labels are given.
    verify : bool
        On resume, also compare the sha256 of every file and zarr chunk of a
        result folder with its manifest (sizes and chunk listings are always
        compared). A damaged folder is scored again, with a ``recompute`` event.

    Yields
    ------
    BatchEvent
        One per slide state change and progress report.

    Returns
    -------
    BatchResult
        Ranked summary, cohort metrics and summary file paths (the generator's
        return value; :func:`run_batch` hands it back).
    """
    fn: SlideFn = slide_fn or score_and_save
    table = collect_slides(slides, label_column=label_column)
    out_dir = Path(out).expanduser().absolute()
    out_dir.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(out_dir)
    p = dict(params) if params is not None else make_params()
    model_ref = str(model)
    if model_hash is None:
        loaded = _load_model_cached(model_ref, device="cpu", architecture=architecture)
        model_hash = model_fingerprint(loaded)
    run_id = uuid.uuid4().hex[:12]
    n_total = len(table)
    local_mode = scheduler in ("sync", "synchronous", "process", "inline") and client is None
    threads = default_cluster_size(n_total)[1] if not local_mode else None
    if n_workers and not local_mode:
        try:
            threads = max(1, len(os.sched_getaffinity(0)) // n_workers)
        except AttributeError:  # pragma: no cover
            threads = max(1, (os.cpu_count() or 1) // n_workers)
    if torch_threads:
        threads = int(torch_threads)
    runtime = {
        "device": device,
        "batch_size": batch_size,
        "num_workers": num_workers,
        "torch_threads": threads,
        "architecture": architecture,
    }
    runtime = {k: v for k, v in runtime.items() if v is not None}
    meta_cols = [c for c in table.columns if c not in ("slide_id", "slide_path")]
    rows: dict[int, dict[str, Any]] = {}
    tasks: list[SlideTask] = []
    for i, rec in enumerate(table.to_dict("records")):
        base = {
            "slide_id": rec["slide_id"],
            "slide_path": rec["slide_path"],
            **{c: rec[c] for c in meta_cols},
            "result_folder": None,
        }
        rows[i] = {**base, "status": "pending", "reused": False}
        tasks.append(
            SlideTask(
                index=i,
                slide_id=rec["slide_id"],
                slide_path=rec["slide_path"],
                out_folder=str(out_dir / rec["slide_id"]),
                model=model_ref,
                model_hash=model_hash,
                params=p,
                runtime=runtime,
                run_id=run_id,
            )
        )
    n_finished = 0
    cancelled = False
    threshold = float(p.get("summary", {}).get("threshold", 0.5))
    run_info: dict[str, Any] = {
        "model": model_ref,
        "model_sha256": model_hash,
        "params": p,
        "params_sha256": hash_params(p),
        "scheduler": scheduler or "local",
        "run_id": run_id,
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }

    def finish_row(i: int, result: Mapping[str, Any], *, reused: bool = False) -> dict[str, Any]:
        base = {
            k: v
            for k, v in rows[i].items()
            if k in ("slide_id", "slide_path", "result_folder", *meta_cols)
        }
        clean = {
            k: v for k, v in result.items() if k not in ("index", "class_counts", "traceback")
        }
        if result.get("traceback"):
            atomic_write_text(
                out_dir / ERRORS_DIR / f"{rows[i]['slide_id']}.txt",
                f"{rows[i]['slide_path']}\n{result['traceback']}",
            )
        rows[i] = {**base, "error": None, "worker": None, **clean, "reused": reused}
        done = rows[i].get("status") == "done"
        if done:
            remove_stale_error(out_dir, rows[i]["slide_id"], rows[i]["slide_path"])
        rows[i]["result_folder"] = str(out_dir / rows[i]["slide_id"]) if done else None
        return rows[i]

    def current_summary() -> pd.DataFrame:
        df = pd.DataFrame([rows[i] for i in sorted(rows)])
        return rank_summary(df, threshold=threshold)

    def save() -> dict[str, Path]:
        df = current_summary()
        return write_cohort_summary(
            out_dir, df, cohort_metrics(df, threshold=threshold), run=run_info, plot=False
        )

    todo: list[SlideTask] = []
    for task in tasks:
        folder = Path(task.out_folder)
        problem = (
            check_result(folder, p, model_hash, slide_path=task.slide_path, verify=verify)
            if resume
            else None
        )
        if resume and problem is not None and problem.kind not in ("missing", "stale"):
            if problem.kind == "damaged":  # never adopted by the slide function either
                shutil.rmtree(folder, ignore_errors=True)
            yield BatchEvent(
                "recompute",
                task.index,
                task.slide_id,
                n_total,
                n_finished,
                note=f"scoring again: {problem}",
            )
        if resume and problem is None:
            try:
                row = finish_row(
                    task.index,
                    {
                        **_row_from_manifest(folder),
                        "status": "done",
                        "error": None,
                        "worker": None,
                    },
                    reused=True,
                )
            except (OSError, ValueError):
                todo.append(task)
                continue
            n_finished += 1
            yield BatchEvent("skipped", task.index, task.slide_id, n_total, n_finished, row=row)
        else:
            todo.append(task)

    client_owned = None
    cluster = None
    progress_q: queue.Queue[Any] = queue.Queue()
    started: set[int] = set()
    try:
        if todo and local_mode:
            for task in todo:
                if cancel is not None and cancel.is_set():
                    cancelled = True
                    break
                yield BatchEvent("started", task.index, task.slide_id, n_total, n_finished)
                started.add(task.index)
                result = _run_local(fn, task, cancel, progress_q, poll_interval)
                while True:
                    try:
                        kind, payload = result.send(None)
                    except StopIteration as stop:
                        res = stop.value
                        break
                    yield BatchEvent(
                        "progress",
                        task.index,
                        task.slide_id,
                        n_total,
                        n_finished,
                        tiles_done=payload[0],
                        tiles_total=payload[1],
                    )
                row = finish_row(task.index, res)
                if row["status"] == "cancelled":
                    cancelled = True
                    rows[task.index]["status"] = "cancelled"
                    yield BatchEvent(
                        "cancelled", task.index, task.slide_id, n_total, n_finished, row=row
                    )
                    break
                n_finished += 1
                save()
                yield BatchEvent(
                    row["status"], task.index, task.slide_id, n_total, n_finished, row=row
                )
        elif todo:
            from distributed import as_completed

            if client is None:
                client_owned, cluster = _start_client(
                    scheduler, n_workers=n_workers, threads=threads or 1, n_slides=len(todo)
                )
            cl: Any = client if client is not None else client_owned
            topic = f"{_TOPIC}-{run_id}"
            cl.subscribe_topic(topic, lambda ev: progress_q.put(ev[1]))
            futures = {}
            for task in todo:
                fut = cl.submit(
                    run_task, fn, task, key=f"napari-xai-{task.slide_id}-{run_id}", pure=False
                )
                futures[fut.key] = (fut, task)
                yield BatchEvent("queued", task.index, task.slide_id, n_total, n_finished)
            ac = as_completed([f for f, _ in futures.values()])
            by_index = {t.index: t for _, t in futures.values()}
            while not ac.is_empty():
                if cancel is not None and cancel.is_set():
                    cancelled = True
                    break
                for ev in _drain(progress_q):
                    idx = int(ev["index"])
                    t = by_index[idx]
                    if idx not in started:
                        started.add(idx)
                        yield BatchEvent("started", idx, t.slide_id, n_total, n_finished)
                    yield BatchEvent(
                        "progress",
                        idx,
                        t.slide_id,
                        n_total,
                        n_finished,
                        tiles_done=int(ev["done"]),
                        tiles_total=int(ev["total"]),
                    )
                batch = ac.next_batch(block=False)
                if not batch:
                    time.sleep(poll_interval)
                    continue
                for fut in batch:
                    task = futures[fut.key][1]
                    try:
                        res = fut.result()
                    except Exception as exc:  # noqa: BLE001 - worker died (KilledWorker...)
                        res = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"}
                    fut.release()
                    row = finish_row(task.index, res)
                    n_finished += 1
                    save()
                    yield BatchEvent(
                        row["status"], task.index, task.slide_id, n_total, n_finished, row=row
                    )
            if cancelled:
                pending = [f for f, t in futures.values() if rows[t.index]["status"] == "pending"]
                cl.cancel(pending, force=True)
                for _f, t in futures.values():
                    if rows[t.index]["status"] == "pending":
                        rows[t.index]["status"] = "cancelled"
                        yield BatchEvent(
                            "cancelled",
                            t.index,
                            t.slide_id,
                            n_total,
                            n_finished,
                            row=rows[t.index],
                        )
            with _best_effort():
                cl.unsubscribe_topic(topic)
    finally:
        if cancelled or (cancel is not None and cancel.is_set()):
            cancelled = True
            for i, r in rows.items():
                if r["status"] == "pending":
                    rows[i]["status"] = "cancelled"
        if client_owned is not None:
            with _best_effort():
                client_owned.close(timeout=10)
        if cluster is not None:
            with _best_effort():
                cluster.close(timeout=10)
    summary = current_summary()
    metrics = cohort_metrics(summary, threshold=threshold)
    run_info["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    run_info["cancelled"] = cancelled
    files = write_cohort_summary(out_dir, summary, metrics, run=run_info, plot=write_plot)
    return BatchResult(
        out=out_dir, summary=summary, metrics=metrics, files=files, cancelled=cancelled
    )


def _best_effort() -> contextlib.suppress:
    """Ignore errors of cleanup steps, but never Ctrl-C or SystemExit (BaseException)."""
    return contextlib.suppress(Exception)


def _drain(q: queue.Queue[Any]) -> list[Any]:
    items = []
    while True:
        try:
            items.append(q.get_nowait())
        except queue.Empty:
            return items


def _run_local(
    fn: SlideFn,
    task: SlideTask,
    cancel: threading.Event | None,
    progress_q: queue.Queue[Any],
    poll_interval: float,
) -> Generator[tuple[str, tuple[int, int]], None, dict[str, Any]]:
    """Run one slide in a helper thread of this process, relaying its progress."""
    box: dict[str, Any] = {}
    local_q: queue.Queue[tuple[int, int]] = queue.Queue()

    def wrapped(t: SlideTask, _progress: ProgressFn) -> dict[str, Any]:
        def progress(done: int, total: int) -> None:
            if cancel is not None and cancel.is_set():
                raise BatchCancelled(f"{t.slide_path}: cancelled")
            local_q.put((int(done), int(total)))

        return fn(t, progress)

    def target() -> None:
        box["row"] = run_task(wrapped, task, cancel)

    th = threading.Thread(target=target, name=f"napari-xai-batch-{task.slide_id}", daemon=True)
    th.start()
    last = 0.0
    while th.is_alive():
        th.join(poll_interval)
        items = _drain(local_q)
        if items and (time.monotonic() - last >= 0.2 or not th.is_alive()):
            last = time.monotonic()
            yield ("progress", items[-1])
    items = _drain(local_q)
    if items:
        yield ("progress", items[-1])
    row = dict(box.get("row") or {"status": "failed", "error": "the slide thread died"})
    row["worker"] = "local"
    return row


def run_batch(
    slides: Any,
    model: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    on_event: Callable[[BatchEvent], None] | None = None,
    **kwargs: Any,
) -> BatchResult:
    """Run :func:`iter_batch` to the end and return its :class:`BatchResult`.

    Parameters
    ----------
    slides, model, out
        See :func:`iter_batch`.
    on_event : callable, optional
        Called with every :class:`BatchEvent` (e.g. to print progress).
    **kwargs
        Passed to :func:`iter_batch`.
    """
    from napari_xai.core.progress import drive

    result: BatchResult = drive(iter_batch(slides, model, out, **kwargs), on_event)
    return result


def table_equal_columns(summary: pd.DataFrame) -> list[str]:
    """Columns of a summary that must match between two runs of the same cohort.

    Timings, workers and the ``reused`` flag differ between runs by nature.
    """
    skip = {*_TIMING_COLUMNS, "worker", "reused", "time_total_s"}
    return [c for c in summary.columns if c not in skip and not c.startswith("time_")]
