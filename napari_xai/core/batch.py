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
default, :func:`score_and_save`, runs :func:`napari_xai.core.pipeline.run_slide`,
the one writer of result folders, with the batch's options (frozen dataclasses
of :mod:`napari_xai.core.options`). A slide whose folder is up to date for the
same options, model and slide file is skipped, so re-running a killed command
finishes the cohort without redoing finished slides. A slide that fails is
recorded with its error and the others go on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob as _glob
import math
import os
import queue
import shutil
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd  # noqa: TID253 - only imported when work runs

from napari_xai.core.atomic import atomic_write as _atomic_write
from napari_xai.core.atomic import atomic_write_text, clean_temporaries, kill_point
from napari_xai.core.models.resolve import resolve_model
from napari_xai.core.naming import COHORT_SUFFIXES as SLIDE_SUFFIXES
from napari_xai.core.naming import is_positive_label, is_slide_name
from napari_xai.core.naming import slide_stem as slide_id_for
from napari_xai.core.options import (
    BatchOptions,
    GridOptions,
    SlideOptions,
    result_params,
)
from napari_xai.core.pipeline import (  # the one writer of result folders
    PipelineProgress,
    model_fingerprint,
    predicted_regions,
    run_slide,
    summarize_tiles,
    up_to_date,
)
from napari_xai.core.progress import drive, eager, relay
from napari_xai.core.results import clean_stale_temporaries, hash_params, read_manifest

__all__ = [
    "SLIDE_SUFFIXES",
    "SUMMARY_COLUMNS",
    "BatchCancelled",
    "BatchEvent",
    "BatchResult",
    "SlideTask",
    "cohort_metrics",
    "collect_slides",
    "default_cluster_size",
    "iter_batch",
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
    "fit_warnings",
    "audit_verdict",
    "audit_sentence",
    "audit_method",
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
#: Seconds an interrupted in-process slide gets to stop at its next batch and clean up.
STOP_TIMEOUT_S = 60.0
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


# --------------------------------------------------------------------------- tasks


@dataclass(frozen=True)
class SlideTask:
    """Everything a worker needs to do one slide (picklable: paths as strings, frozen options).

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
    options : SlideOptions
        The options of :func:`napari_xai.core.pipeline.run_slide` (grid, run,
        summary, explain, audit, features); the same for every slide.
    torch_threads : int or None
        torch intra-op threads of the worker.
    run_id : str
        Identifies the batch run (progress topic).
    """

    index: int
    slide_id: str
    slide_path: str
    out_folder: str
    model: str
    model_hash: str
    options: SlideOptions = field(default_factory=SlideOptions)
    torch_threads: int | None = None
    run_id: str = ""


ProgressFn = Callable[[int, int], None]
SlideFn = Callable[[SlideTask, ProgressFn], dict[str, Any]]


def score_and_save(task: SlideTask, progress: ProgressFn) -> dict[str, Any]:
    """Run :func:`napari_xai.core.pipeline.run_slide` for one slide of a cohort.

    The default slide function of :func:`iter_batch`. Runs in a dask worker (or
    in this process); the model is loaded once per process. The result folder
    is written (or kept, or added to) by ``run_slide`` alone.

    Parameters
    ----------
    task : SlideTask
        The slide, model, options and output folder.
    progress : callable
        ``progress(tiles_done, tiles_total)``; raises :class:`BatchCancelled`
        to stop (the old result stays).

    Returns
    -------
    dict
        The slide's summary row (scores and timings, from its manifest).
    """
    folder = Path(task.out_folder)
    gen = run_slide(task.slide_path, task.model, folder.parent, task.options, name=folder.name)

    def on_step(step: PipelineProgress) -> None:
        kill_point(f"{step.stage} {task.slide_id} {step.n_done}/{step.n_total}")
        if step.n_total:
            progress(step.n_done, step.n_total)

    try:
        drive(gen, on_step)
    finally:
        gen.close()  # a cancel raised in ``progress``: abort the folder being written
    return _row_from_manifest(folder)


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
    threads = task.torch_threads
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


def _cohort_audit(summary: pd.DataFrame) -> dict[str, Any] | None:
    """Return the cohort's shortcut verdict from each slide's ``audit.json`` (or None)."""
    import json

    from napari_xai.core.audit.cohort_verdict import cohort_audit
    from napari_xai.core.results import AUDIT_NAME

    if "audit_verdict" not in summary.columns or not summary["audit_verdict"].notna().any():
        return None
    slides = []
    for row in summary.to_dict("records"):
        folder, att = row.get("result_folder"), None
        if isinstance(folder, str) and isinstance(row.get("audit_verdict"), str):
            try:
                att = json.loads((Path(folder) / AUDIT_NAME).read_text()).get("attention")
            except (OSError, ValueError, AttributeError):
                att = None
        slides.append({"slide_id": row.get("slide_id"), "attention": att})
    return cohort_audit(slides)


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
    audit = _cohort_audit(summary) if len(summary) else None
    if audit is not None:
        out["audit"] = audit
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
    if metrics.get("audit"):
        from napari_xai.core.audit.cohort_verdict import write_cohort_audit_html

        paths["audit_html"] = write_cohort_audit_html(
            root, metrics["audit"], table.to_dict("records")
        )
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


def _cores() -> int:
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return os.cpu_count() or 1


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
    cores = _cores()
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


class _Cohort:
    """The rows of a batch run and the summary files they make (one per slide, by index)."""

    def __init__(
        self, table: pd.DataFrame, out_dir: Path, threshold: float, run_info: dict[str, Any]
    ) -> None:
        self.out_dir = out_dir
        self.threshold = threshold
        self.run_info = run_info
        self.meta_cols = [c for c in table.columns if c not in ("slide_id", "slide_path")]
        self.rows: dict[int, dict[str, Any]] = {}
        for i, rec in enumerate(table.to_dict("records")):
            self.rows[i] = {
                "slide_id": rec["slide_id"],
                "slide_path": rec["slide_path"],
                **{c: rec[c] for c in self.meta_cols},
                "result_folder": None,
                "status": "pending",
                "reused": False,
            }
        self.n_total = len(self.rows)
        self.n_finished = 0

    def event(self, kind: str, i: int, **kwargs: Any) -> BatchEvent:
        """Make a :class:`BatchEvent` for slide ``i``."""
        sid = self.rows[i]["slide_id"]
        return BatchEvent(kind, i, sid, self.n_total, self.n_finished, **kwargs)

    def finish(self, i: int, result: Mapping[str, Any], *, reused: bool = False) -> dict[str, Any]:
        """Record a slide's outcome (and its traceback under ``_errors``); return its row."""
        row = self.rows[i]
        keep = ("slide_id", "slide_path", "result_folder", *self.meta_cols)
        base = {k: v for k, v in row.items() if k in keep}
        drop = ("index", "class_counts", "traceback")
        clean = {k: v for k, v in result.items() if k not in drop}
        if result.get("traceback"):
            atomic_write_text(
                self.out_dir / ERRORS_DIR / f"{row['slide_id']}.txt",
                f"{row['slide_path']}\n{result['traceback']}",
            )
        row = self.rows[i] = {**base, "error": None, "worker": None, **clean, "reused": reused}
        done = row.get("status") == "done"
        if done:
            remove_stale_error(self.out_dir, row["slide_id"], row["slide_path"])
        row["result_folder"] = str(self.out_dir / row["slide_id"]) if done else None
        if row.get("status") != "cancelled":
            self.n_finished += 1
        return row

    def summary(self) -> pd.DataFrame:
        """Return the ranked cohort summary so far."""
        df = pd.DataFrame([self.rows[i] for i in sorted(self.rows)])
        return rank_summary(df, threshold=self.threshold)

    def save(self, *, plot: bool = False) -> tuple[pd.DataFrame, dict[str, Any], dict[str, Path]]:
        """Write the summary files; return (summary, metrics, files)."""
        df = self.summary()
        metrics = cohort_metrics(df, threshold=self.threshold)
        return (
            df,
            metrics,
            write_cohort_summary(self.out_dir, df, metrics, run=self.run_info, plot=plot),
        )

    def cancel_pending(self) -> list[int]:
        """Mark every slide still pending as cancelled; return their indices."""
        pending = [i for i, r in self.rows.items() if r["status"] == "pending"]
        for i in pending:
            self.rows[i]["status"] = "cancelled"
        return pending


def _torch_threads(batch: BatchOptions, n_slides: int) -> int | None:
    """Return torch threads per worker: the user's, else the cores shared by the workers."""
    if batch.torch_threads:
        return int(batch.torch_threads)
    if batch.in_process:
        return None
    if batch.n_workers:
        return max(1, _cores() // batch.n_workers)
    return default_cluster_size(n_slides)[1]


def _skip_done(
    cohort: _Cohort, tasks: list[SlideTask], batch: BatchOptions
) -> Generator[BatchEvent, None, list[SlideTask]]:
    """Yield ``skipped`` for slides whose folder is up to date; return the others."""
    todo: list[SlideTask] = []
    for task in tasks:
        folder = Path(task.out_folder)
        if not batch.resume:
            todo.append(task)
            continue
        problem = up_to_date(
            folder,
            model_hash=task.model_hash,
            slide_path=task.slide_path,
            options=task.options,
            verify=batch.verify,
        )
        if problem is not None and problem.kind not in ("missing", "stale"):
            if problem.kind == "damaged":  # never adopted by the slide function either
                shutil.rmtree(folder, ignore_errors=True)
            yield cohort.event("recompute", task.index, note=f"scoring again: {problem}")
        if problem is None:
            try:
                result = {**_row_from_manifest(folder), "status": "done"}
            except (OSError, ValueError):
                todo.append(task)
                continue
            row = cohort.finish(task.index, result, reused=True)
            yield cohort.event("skipped", task.index, row=row)
        else:
            todo.append(task)
    return todo


def _run_in_process(
    cohort: _Cohort,
    fn: SlideFn,
    todo: list[SlideTask],
    cancel: threading.Event | None,
    poll_interval: float,
) -> Generator[BatchEvent, None, bool]:
    """Do the slides one after another in this process; return True when cancelled."""
    for task in todo:
        if cancel is not None and cancel.is_set():
            return True
        yield cohort.event("started", task.index)

        def event(p: tuple[int, int], i: int = task.index) -> BatchEvent:
            return cohort.event("progress", i, tiles_done=p[0], tiles_total=p[1])

        # relay closes the slide on Ctrl-C or close(): it stops and joins the slide's thread
        res = yield from relay(_run_local(fn, task, cancel, poll_interval), event)
        row = cohort.finish(task.index, res)
        if row["status"] == "cancelled":
            yield cohort.event("cancelled", task.index, row=row)
            return True
        cohort.save()
        yield cohort.event(row["status"], task.index, row=row)
    return False


def _run_on_cluster(
    cohort: _Cohort,
    fn: SlideFn,
    todo: list[SlideTask],
    cl: Any,
    cancel: threading.Event | None,
    poll_interval: float,
) -> Generator[BatchEvent, None, bool]:
    """Do the slides as dask tasks, relaying worker progress; return True when cancelled."""
    run_id = todo[0].run_id
    topic = f"{_TOPIC}-{run_id}"
    progress_q: queue.Queue[Any] = queue.Queue()
    cl.subscribe_topic(topic, lambda ev: progress_q.put(ev[1]))
    futures = {}
    for task in todo:
        key = f"napari-xai-{task.slide_id}-{run_id}"
        fut = cl.submit(run_task, fn, task, key=key, pure=False)
        futures[fut.key] = (fut, task)
        yield cohort.event("queued", task.index)
    try:
        cancelled = yield from _relay_cluster(cohort, futures, progress_q, cancel, poll_interval)
    except BaseException:  # Ctrl-C or close(): no task of ours goes on running
        with _best_effort():
            cl.cancel([f for f, _ in futures.values()], force=True)
        raise
    if cancelled:
        pending = [f for f, t in futures.values() if cohort.rows[t.index]["status"] == "pending"]
        cl.cancel(pending, force=True)
        for i in cohort.cancel_pending():
            yield cohort.event("cancelled", i, row=cohort.rows[i])
    with _best_effort():
        cl.unsubscribe_topic(topic)
    return cancelled


def _relay_cluster(
    cohort: _Cohort,
    futures: dict[str, tuple[Any, SlideTask]],
    progress_q: queue.Queue[Any],
    cancel: threading.Event | None,
    poll_interval: float,
) -> Generator[BatchEvent, None, bool]:
    """Relay worker progress and finished slides until all are done or cancel is set."""
    from distributed import as_completed

    ac = as_completed([f for f, _ in futures.values()])
    started: set[int] = set()
    cancelled = False
    while not ac.is_empty():
        if cancel is not None and cancel.is_set():
            cancelled = True
            break
        for ev in _drain(progress_q):
            idx = int(ev["index"])
            if idx not in started:
                started.add(idx)
                yield cohort.event("started", idx)
            done, total = int(ev["done"]), int(ev["total"])
            yield cohort.event("progress", idx, tiles_done=done, tiles_total=total)
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
            row = cohort.finish(task.index, res)
            cohort.save()
            yield cohort.event(row["status"], task.index, row=row)
    return cancelled


def iter_batch(
    slides: Any,
    model: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    options: SlideOptions | None = None,
    batch: BatchOptions | None = None,
    slide_fn: SlideFn | None = None,
    model_hash: str | None = None,
    client: Any = None,
    cancel: threading.Event | None = None,
) -> Generator[BatchEvent, None, BatchResult]:
    """Run :func:`napari_xai.core.pipeline.run_slide` over a cohort on dask.distributed.

    Parameters
    ----------
    slides : path, glob, CSV, DataFrame or sequence
        The cohort (see :func:`collect_slides`).
    model : path-like or "demo"
        Model file or folder (TorchScript, state dict + card, WSInfer folder).
    out : path-like
        Output folder: one result folder per slide, plus the cohort summary.
    options : SlideOptions, optional
        The options of every slide's :func:`~napari_xai.core.pipeline.run_slide`
        (default :class:`SlideOptions`: the default grid, summary and run, no
        saliency, no audit, no features; a grid of None means the defaults).
    batch : BatchOptions, optional
        Scheduler, workers, torch threads, resume, label column.
    slide_fn : callable, optional
        ``fn(task, progress) -> dict`` doing one slide (default :func:`score_and_save`).
        Must be importable (or cloudpickle-able) in the workers.
    model_hash : str, optional
        Model fingerprint; computed by loading the model here when None.
    client : distributed.Client, optional
        Use this client (takes precedence over ``batch.scheduler``).
    cancel : threading.Event, optional
        Set it to stop: queued slides are dropped, finished ones stay.

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
    options = options or SlideOptions()
    if options.grid is None:  # one grid for the whole cohort
        options = dataclasses.replace(options, grid=GridOptions())
    batch = batch or BatchOptions()
    table = collect_slides(slides, label_column=batch.label_column)
    out_dir = _prepare_out(out)
    if model_hash is None:
        loaded = resolve_model(str(model), device="cpu", architecture=options.run.architecture)
        model_hash = model_fingerprint(loaded)
    run_info = _run_info(str(model), model_hash, options, batch)
    cohort = _Cohort(table, out_dir, options.summary.threshold, run_info)
    tasks = _slide_tasks(cohort, options, batch)
    todo = yield from _skip_done(cohort, tasks, batch)
    cancelled = yield from _run_todo(
        cohort, slide_fn or score_and_save, todo, batch=batch, client=client, cancel=cancel
    )
    run_info["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    run_info["cancelled"] = cancelled
    table_, metrics, files = cohort.save(plot=batch.write_plot)
    return BatchResult(
        out=out_dir, summary=table_, metrics=metrics, files=files, cancelled=cancelled
    )


def _prepare_out(out: str | os.PathLike[str]) -> Path:
    """Make the output folder and remove what a killed run left half-written in it."""
    out_dir = Path(out).expanduser().absolute()
    out_dir.mkdir(parents=True, exist_ok=True)
    clean_stale_temporaries(out_dir)
    clean_temporaries(out_dir / ERRORS_DIR)  # an error file a killed run was writing
    return out_dir


def _run_info(
    model: str, model_hash: str, options: SlideOptions, batch: BatchOptions
) -> dict[str, Any]:
    """Describe a new batch run for its summary files (model, parameters, stages, run id)."""
    params = result_params(options.grid or GridOptions(), options.summary)
    return {
        "model": model,
        "model_sha256": model_hash,
        "params": params,
        "params_sha256": hash_params(params),
        "stages": options.stages(),
        "scheduler": batch.scheduler or "local",
        "run_id": uuid.uuid4().hex[:12],
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def _slide_tasks(cohort: _Cohort, options: SlideOptions, batch: BatchOptions) -> list[SlideTask]:
    """Make one task per slide of the cohort, for the model and run of ``cohort.run_info``."""
    info = cohort.run_info
    threads = _torch_threads(batch, cohort.n_total)
    return [
        SlideTask(
            index=i,
            slide_id=row["slide_id"],
            slide_path=row["slide_path"],
            out_folder=str(cohort.out_dir / row["slide_id"]),
            model=info["model"],
            model_hash=info["model_sha256"],
            options=options,
            torch_threads=threads,
            run_id=info["run_id"],
        )
        for i, row in cohort.rows.items()
    ]


def _run_todo(
    cohort: _Cohort,
    fn: SlideFn,
    todo: list[SlideTask],
    *,
    batch: BatchOptions,
    client: Any,
    cancel: threading.Event | None,
) -> Generator[BatchEvent, None, bool]:
    """Do the slides not skipped, in this process or on dask; return True when cancelled.

    On Ctrl-C or ``close()`` the finished slides stay and nothing is left
    half-written: the cluster this run started is closed, then the temporaries
    its workers were writing are removed.
    """
    cancelled = False
    try:
        if todo and batch.in_process and client is None:
            cancelled = yield from _run_in_process(cohort, fn, todo, cancel, batch.poll_interval)
        elif todo:
            with _client_for(client, batch, n_slides=len(todo)) as cl:
                cancelled = yield from _run_on_cluster(
                    cohort, fn, todo, cl, cancel, batch.poll_interval
                )
    except BaseException:  # Ctrl-C, close(): finished slides stay, nothing half-written
        if client is None:  # our own workers are gone: their temporaries too
            for task in todo:
                clean_stale_temporaries(cohort.out_dir, name=task.slide_id)
        raise
    if cancelled or (cancel is not None and cancel.is_set()):
        cohort.cancel_pending()
        return True
    return False


@contextlib.contextmanager
def _client_for(client: Any, batch: BatchOptions, *, n_slides: int) -> Iterator[Any]:
    """Use ``client``, else start one (``batch.scheduler``) and close it when done."""
    if client is not None:
        yield client
        return
    owned, cluster = _start_client(batch.scheduler, n_workers=batch.n_workers, n_slides=n_slides)
    try:
        yield owned
    finally:
        with _best_effort():
            owned.close(timeout=10)
        if cluster is not None:
            with _best_effort():
                cluster.close(timeout=10)


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
    poll_interval: float,
) -> Generator[tuple[int, int], None, dict[str, Any]]:
    """Run one slide in a helper thread of this process, yielding its (tiles done, total)."""
    box: dict[str, Any] = {}
    local_q: queue.Queue[tuple[int, int]] = queue.Queue()
    stop = threading.Event()  # set when this generator ends early (Ctrl-C, close)

    def wrapped(t: SlideTask, _progress: ProgressFn) -> dict[str, Any]:
        def progress(done: int, total: int) -> None:
            if stop.is_set() or (cancel is not None and cancel.is_set()):
                raise BatchCancelled(f"{t.slide_path}: cancelled")
            local_q.put((int(done), int(total)))

        return fn(t, progress)

    # Set by the thread itself when the slide is over. Never ask Thread.is_alive() after a
    # Ctrl-C: a join() interrupted by KeyboardInterrupt marks the thread as stopped while it
    # still runs (CPython 3.11's bpo-45274 handling releases the running thread's own lock),
    # and a thread still inside a torch call when the interpreter finalizes aborts the
    # process ("terminate called without an active exception", see docs/reliability.md).
    finished = threading.Event()

    def target() -> None:
        try:
            box["row"] = run_task(wrapped, task, cancel)
        finally:
            finished.set()

    # Not a daemon: the interpreter waits for the slide to stop rather than kill it mid-call.
    th = threading.Thread(target=target, name=f"napari-xai-batch-{task.slide_id}")
    last = 0.0
    try:
        th.start()  # inside the try: a Ctrl-C right after it still stops the slide
        while not finished.wait(poll_interval):
            items = _drain(local_q)
            if items and time.monotonic() - last >= 0.2:
                last = time.monotonic()
                yield items[-1]
    finally:
        if not finished.is_set():  # interrupted: let the slide stop at its next batch, clean up
            stop.set()
            if th.ident is not None:
                finished.wait(STOP_TIMEOUT_S)
    th.join(STOP_TIMEOUT_S)  # finished: only the thread's own exit is left
    items = _drain(local_q)
    if items:
        yield items[-1]
    row = dict(box.get("row") or {"status": "failed", "error": "the slide thread died"})
    row["worker"] = "local"
    return row


run_batch = eager(iter_batch, name="run_batch")


def table_equal_columns(summary: pd.DataFrame) -> list[str]:
    """Columns of a summary that must match between two runs of the same cohort.

    Timings, workers and the ``reused`` flag differ between runs by nature.
    """
    skip = {*_TIMING_COLUMNS, "worker", "reused", "time_total_s"}
    return [c for c in summary.columns if c not in skip and not c.startswith("time_")]
