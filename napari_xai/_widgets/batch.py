"""The "Batch score slides" widget: score a cohort into result folders, resumably.

The widget only wires controls to one core call,
:func:`napari_xai.core.batch.iter_batch`, run in a napari ``thread_worker``:
every yielded :class:`~napari_xai.core.batch.BatchEvent` updates the overall
progress bar and the per-slide status table; the returned
:class:`~napari_xai.core.batch.BatchResult` fills the table with the slides
ranked by score and shows the cohort figures (confusion matrix, ROC AUC) when
the slides carry labels. Double-click a row (or select it and press "Open") to
open that slide with its heatmaps, saliency, tiles and predicted regions.

Cancel sets the core's ``cancel`` event rather than quitting the thread: the
core then drops queued slides, keeps the finished ones, writes the summary and
closes its cluster before it returns. Heavy imports happen inside methods.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    LineEdit,
    ProgressBar,
    PushButton,
    SpinBox,
    Table,
)

from napari_xai._widgets._layout import ScrollPanel, fit_panel
from napari_xai._widgets._pickers import (
    DEMO,
    MODEL_FILE_FILTER,
    MODEL_SOURCES,
    model_spec,
    show_model_file,
)
from napari_xai.core.options import DEFAULT_MIN_TISSUE

if TYPE_CHECKING:
    import napari
    import napari.viewer

    from napari_xai.core.batch import BatchEvent, BatchResult

LOCAL = "local cluster (this machine)"
IN_PROCESS = "in this process"
ADDRESS = "dask scheduler address"
NO_ATTRIBUTION = "none"
#: Attribution methods offered (the core checks them against the model).
ATTRIBUTION_CHOICES = (
    NO_ATTRIBUTION,
    "grad_cam",
    "saliency",
    "integrated_gradients",
    "gradient_shap",
    "occlusion",
    "guided_grad_cam",
)
STATUS_COLUMNS = ["slide", "status", "tiles", "score", "seconds", "error"]
#: Seconds between redraws of the status table while a batch runs.
REFRESH_S = 0.3
RANKED_COLUMNS = ["rank", "slide", "score", "tumour area", "tiles", "label", "status", "error"]


def _fmt(value: Any, spec: str = ".3f") -> str:
    try:
        if value is None or value != value:  # None or NaN
            return ""
        return format(float(value), spec)
    except (TypeError, ValueError):
        return str(value)


class BatchWidget(ScrollPanel, Container):
    """Batch-score slides (folder, glob or cohort CSV) into one result folder each.

    Parameters
    ----------
    viewer : napari.Viewer
        Viewer in which results are opened.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True, scrollable=True)
        self._viewer = viewer
        self._inputs = FileEdit(
            label="slides",
            mode="d",
            tooltip="A folder of slides. You can also type a glob pattern (data/**/*.svs),"
            " a slide file, or a cohort CSV (slide_path, optional label and metadata columns).",
        )
        self._input_kind = ComboBox(
            label="browse for", choices=["folder", "cohort CSV"], value="folder"
        )
        self._model_source = ComboBox(label="model", choices=list(MODEL_SOURCES), value=DEMO)
        self._model_file = FileEdit(
            label="model file", mode="r", filter=MODEL_FILE_FILTER, visible=False
        )
        self._out = FileEdit(
            label="output folder",
            mode="d",
            tooltip="One result folder per slide, plus cohort_summary.csv",
        )
        self._overlap = FloatSpinBox(label="overlap", value=0.0, min=0.0, max=0.9, step=0.05)
        self._min_tissue = FloatSpinBox(
            label="min tissue", value=DEFAULT_MIN_TISSUE, min=0.0, max=1.0, step=0.05
        )
        self._attribution = ComboBox(
            label="saliency", choices=list(ATTRIBUTION_CHOICES), value=NO_ATTRIBUTION
        )
        self._top_k = SpinBox(
            label="top-k tiles",
            value=10,
            min=1,
            max=100_000,
            tooltip="Slide score = mean of the k highest tile probabilities",
        )
        self._positive = LineEdit(
            label="positive class", value="", tooltip="Blank: the tumour-like class of the model"
        )
        self._scheduler = ComboBox(
            label="run on", choices=[LOCAL, IN_PROCESS, ADDRESS], value=LOCAL
        )
        self._address = LineEdit(label="scheduler", value="tcp://127.0.0.1:8786", visible=False)
        self._workers = SpinBox(
            label="workers",
            value=0,
            min=0,
            max=256,
            tooltip="Worker processes of the local cluster (0 = auto)",
        )
        self._device = ComboBox(label="device", choices=["auto", "cpu", "cuda", "mps"])
        self._resume = CheckBox(label="skip slides already done", value=True)
        self._run = PushButton(text="Batch score")
        self._cancel = PushButton(text="Cancel", enabled=False)
        self._progress = ProgressBar(label="slides", value=0, min=0, max=1)
        self._status = Label(value="")
        self._table = Table(value=[], columns=STATUS_COLUMNS)
        self._metrics = Label(value="")
        self._open = PushButton(text="Open selected result", enabled=False)
        self.extend(
            [
                self._inputs,
                self._input_kind,
                self._model_source,
                self._model_file,
                self._out,
                self._overlap,
                self._min_tissue,
                self._attribution,
                self._top_k,
                self._positive,
                self._scheduler,
                self._address,
                self._workers,
                self._device,
                self._resume,
                self._run,
                self._cancel,
                self._progress,
                self._status,
                self._table,
                self._metrics,
                self._open,
            ]
        )
        fit_panel(self)
        self._worker: Any = None
        self._cancel_event = threading.Event()
        self._rows: dict[int, int] = {}  # cohort index -> status row
        self._status_rows: list[list[Any]] = []
        self._last_refresh = 0.0
        self._ranked_folders: list[str | None] = []
        self.last_result: BatchResult | None = None
        self._model_source.changed.connect(self._on_model_source)
        self._input_kind.changed.connect(self._on_input_kind)
        self._scheduler.changed.connect(self._on_scheduler)
        self._run.changed.connect(self._on_run)
        self._cancel.changed.connect(self._on_cancel)
        self._open.changed.connect(self._on_open_selected)
        self._table.native.cellDoubleClicked.connect(lambda row, _col: self._open_row(row))

    # -- controls --------------------------------------------------------------------
    def _on_model_source(self, value: str) -> None:
        show_model_file(value, self._model_file)

    def _on_input_kind(self, value: str) -> None:
        self._inputs.mode = "d" if value == "folder" else "r"
        self._inputs.filter = None if value == "folder" else "*.csv"

    def _on_scheduler(self, value: str) -> None:
        self._address.visible = value == ADDRESS
        self._workers.visible = value == LOCAL

    def _model_spec(self) -> str:
        return str(model_spec(self._model_source.value, self._model_file.value))

    def _scheduler_spec(self) -> str:
        if self._scheduler.value == IN_PROCESS:
            return "sync"
        if self._scheduler.value == ADDRESS:
            return str(self._address.value).strip()
        return "local"

    def _options(self) -> dict[str, Any]:
        """Keyword options of :func:`napari_xai.core.batch.iter_batch` from the controls."""
        from napari_xai.core.options import (
            BatchOptions,
            ExplainSpec,
            GridOptions,
            RunOptions,
            SummaryOptions,
        )

        method = self._attribution.value
        return {
            "grid": GridOptions(
                min_tissue=float(self._min_tissue.value), overlap=float(self._overlap.value)
            ),
            "summary": SummaryOptions(
                top_k=int(self._top_k.value),
                positive_class=str(self._positive.value).strip() or None,
            ),
            "explain": None if method == NO_ATTRIBUTION else ExplainSpec(method=str(method)),
            "run": RunOptions(device=str(self._device.value)),
            "batch": BatchOptions(
                scheduler=self._scheduler_spec(),
                n_workers=int(self._workers.value) or None,
                resume=bool(self._resume.value),
            ),
        }

    # -- running ---------------------------------------------------------------------
    def _on_run(self, _value: Any = None) -> None:
        """Start batch scoring in a worker thread."""
        from napari.qt.threading import thread_worker
        from napari.utils.notifications import show_error

        from napari_xai.core.batch import iter_batch

        if self._worker is not None:
            show_error("Batch score: already running; cancel first")
            return
        inputs = str(self._inputs.value)
        out = str(self._out.value)
        if inputs in ("", ".") or out in ("", "."):
            show_error("Batch score: choose the slides and an output folder")
            return
        self._cancel_event = threading.Event()
        self._rows = {}
        self._status_rows = []
        self._last_refresh = 0.0
        self._ranked_folders = []
        self.last_result = None
        self._set_table([], STATUS_COLUMNS)
        self._metrics.value = ""
        # Errors go to _on_errored (a notification), not re-raised in the Qt loop.
        worker = thread_worker(iter_batch, ignore_errors=True)(
            inputs,
            self._model_spec(),
            out,
            cancel=self._cancel_event,
            **self._options(),
        )
        worker.yielded.connect(self._on_event)
        worker.returned.connect(self._on_returned)
        worker.errored.connect(self._on_errored)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        self._run.enabled = False
        self._cancel.enabled = True
        self._open.enabled = False
        self._progress.value = 0
        self._status.value = "starting…"
        worker.start()

    def _on_cancel(self, _value: Any = None) -> None:
        """Stop after the slides in progress; finished slides stay."""
        self._cancel_event.set()
        self._status.value = "cancelling (finished slides are kept)…"

    def _set_table(self, rows: list[list[Any]], columns: list[str]) -> None:
        self._table.value = {
            "data": rows,
            "index": [str(i + 1) for i in range(len(rows))],
            "columns": columns,
        }

    def _on_event(self, event: BatchEvent) -> None:
        """Update the progress bar and the slide's row of the status table.

        Rows live in a list; the table is redrawn at most every ``REFRESH_S``
        seconds (and when a slide finishes), so big cohorts keep napari responsive.
        """
        self._progress.max = max(event.n_total, 1)
        self._progress.value = event.n_finished
        if event.index not in self._rows:
            self._rows[event.index] = len(self._status_rows)
            self._status_rows.append([event.slide_id, "queued", "", "", "", ""])
        row = self._status_rows[self._rows[event.index]]
        if event.kind == "progress":
            row[1] = "running"
            row[2] = f"{event.tiles_done}/{event.tiles_total}"
        else:
            row[1] = event.kind
        if event.row:
            row[2] = _fmt(event.row.get("n_tiles"), ".0f") or row[2]
            row[3] = _fmt(event.row.get("score"))
            row[4] = _fmt(event.row.get("time_total_s"), ".1f")
            row[5] = str(event.row.get("error") or "")
        self._status.value = event.message
        now = time.monotonic()
        if now - self._last_refresh >= REFRESH_S or event.kind in ("done", "failed"):
            self._last_refresh = now
            self._set_table([list(r) for r in self._status_rows], STATUS_COLUMNS)

    def _on_returned(self, result: BatchResult) -> None:
        """Show the slides ranked by score and the cohort figures."""
        self.last_result = result
        summary = result.summary
        rows = []
        self._ranked_folders = []
        for rec in summary.to_dict("records"):
            rows.append(
                [
                    ""
                    if rec.get("rank") is None or rec.get("rank") != rec.get("rank")
                    else str(rec.get("rank")),
                    rec["slide_id"],
                    _fmt(rec.get("score")),
                    _fmt(rec.get("tumour_area_fraction")),
                    _fmt(rec.get("n_tiles"), ".0f"),
                    "" if rec.get("label") is None else str(rec.get("label")),
                    str(rec.get("status")),
                    str(rec.get("error") or ""),
                ]
            )
            self._ranked_folders.append(rec.get("result_folder") or None)
        self._set_table(rows, RANKED_COLUMNS)
        self._progress.value = self._progress.max
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
                f"accuracy {m['accuracy']:.2f}"
                + (f" · ROC AUC {auc:.3f}" if auc is not None else "")
            )
        self._metrics.value = text
        self._status.value = "cancelled" if result.cancelled else "done"
        self._open.enabled = any(self._ranked_folders)

    def _on_errored(self, exc: BaseException) -> None:
        from napari.utils.notifications import show_error

        self._status.value = f"error: {exc}"
        show_error(f"Batch score: {exc}")

    def _on_finished(self) -> None:
        self._worker = None
        self._run.enabled = True
        self._cancel.enabled = False

    # -- opening results -------------------------------------------------------------
    def _on_open_selected(self, _value: Any = None) -> None:
        rows = sorted({i.row() for i in self._table.native.selectedIndexes()})
        for row in rows or [0]:
            self._open_row(row)

    def _open_row(self, row: int) -> None:
        """Open the result folder of ranked row ``row`` in the viewer."""
        from napari.utils.notifications import show_error

        if row < 0 or row >= len(self._ranked_folders):
            return
        folder = self._ranked_folders[row]
        if not folder:
            show_error("Batch score: this slide has no result (it failed or was cancelled)")
            return
        try:
            self._viewer.open(folder, plugin="napari-xai")
        except Exception as exc:  # never crash napari
            show_error(f"Batch score: cannot open {folder}: {exc}")
