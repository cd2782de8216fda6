"""The Batch widget's tables: one row per slide while it runs, then the ranked slides."""

from __future__ import annotations

from typing import Any

STATUS_COLUMNS = ["slide", "status", "tiles", "score", "seconds", "error"]
RANKED_COLUMNS = [
    "rank", "slide", "score", "tumour area", "tiles", "label", "status", "error or warning"
]  # fmt: skip


def _fmt(value: Any, spec: str = ".3f") -> str:
    try:
        if value is None or value != value:  # None or NaN
            return ""
        return format(float(value), spec)
    except (TypeError, ValueError):
        return str(value)


def _text(value: Any) -> str:
    """``value`` as table text; None and NaN (a column pandas filled) are empty."""
    return "" if value is None or value != value else str(value)


def _wait_for_pandas() -> None:
    """Let an import of pandas under way in a worker finish before a ``Table`` is touched.

    magicgui's ``Table`` looks pandas up in ``sys.modules`` without importing it: while
    a worker (the model description, which warms the layer modules) is importing
    pandas, the module is there half made and making or filling a table fails with
    "partially initialized module 'pandas'" (seen docking Batch right after Score).
    ``import`` waits for the worker's import to finish; without pandas loaded, nothing.
    """
    import sys

    if "pandas" in sys.modules:
        import pandas  # noqa: F401


def status_table() -> Any:
    """Make the Batch widget's (empty) status table."""
    from magicgui.widgets import Table

    _wait_for_pandas()
    return Table(value=[], columns=STATUS_COLUMNS)


def set_table(table: Any, rows: list[list[Any]], columns: list[str]) -> None:
    """Show ``rows`` under ``columns`` in a magicgui ``Table``, numbered from 1."""
    _wait_for_pandas()
    table.value = {
        "data": rows,
        "index": [str(i + 1) for i in range(len(rows))],
        "columns": columns,
    }


def update_status_row(rows: list[list[Any]], where: dict[int, int], event: Any) -> None:
    """Write a ``BatchEvent`` into its slide's row of ``rows`` (``where``: index → row).

    A slide's first event adds its row.
    """
    if event.index not in where:
        where[event.index] = len(rows)
        rows.append([event.slide_id, "queued", "", "", "", ""])
    row = rows[where[event.index]]
    if event.kind == "progress":
        row[1] = "running"
        row[2] = f"{event.tiles_done}/{event.tiles_total}"
    else:
        row[1] = event.kind
    if event.row:
        row[2] = _fmt(event.row.get("n_tiles"), ".0f") or row[2]
        row[3] = _fmt(event.row.get("score"))
        row[4] = _fmt(event.row.get("time_total_s"), ".1f")
        row[5] = _text(event.row.get("error"))


def ranked_rows(summary: Any) -> tuple[list[list[str]], list[Any]]:
    """Rows of the ranked table (:data:`RANKED_COLUMNS`) and each row's result folder."""
    rows, folders = [], []
    for rec in summary.to_dict("records"):
        rank = rec.get("rank")
        rows.append(
            [
                "" if rank is None or rank != rank else str(rank),
                rec["slide_id"],
                _fmt(rec.get("score")),
                _fmt(rec.get("tumour_area_fraction")),
                _fmt(rec.get("n_tiles"), ".0f"),
                _text(rec.get("label")),
                str(rec.get("status")),
                _text(rec.get("error")) or _text(rec.get("fit_warnings")),
            ]
        )
        folders.append(_text(rec.get("result_folder")) or None)
    return rows, folders


def metrics_text(result: Any) -> str:
    """Say how many slides are done, failed, cancelled and, with labels, the cohort figures."""
    m = result.metrics
    text = (
        f"{result.count('done')} done · {result.count('failed')} failed · "
        f"{result.count('cancelled')} cancelled · summary: {result.files['csv']}"
    )
    if m.get("confusion_matrix") is not None:
        (tn, fp), (fn, tp) = m["confusion_matrix"]
        auc = (m.get("roc") or {}).get("auc")
        text += (
            f"\nlabelled {m['n_labelled']}: TP {tp} FP {fp} TN {tn} FN {fn} · "
            f"accuracy {m['accuracy']:.2f}" + (f" · ROC AUC {auc:.3f}" if auc is not None else "")
        )
    return text
