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
    Label,
    LineEdit,
    PushButton,
    SpinBox,
)

from napari_xai._widgets._base import RunWidget
from napari_xai._widgets._batch_table import (
    RANKED_COLUMNS,
    STATUS_COLUMNS,
    metrics_text,
    ranked_rows,
    set_table,
    status_table,
    update_status_row,
)
from napari_xai._widgets._grid import min_tissue_box, overlap_box
from napari_xai._widgets._pickers import file_edit
from napari_xai.core.naming import METHOD_NAMES

if TYPE_CHECKING:
    import napari
    import napari.viewer

    from napari_xai.core.batch import BatchEvent, BatchResult

LOCAL = "local cluster (this machine)"
IN_PROCESS = "in this process"
ADDRESS = "dask scheduler address"
NO_ATTRIBUTION = "none"
#: Attribution methods offered (the core checks them against the model).
ATTRIBUTION_CHOICES = (NO_ATTRIBUTION, *METHOD_NAMES)
#: Seconds between redraws of the status table while a batch runs.
REFRESH_S = 0.3


def batch_in_worker(inputs: str, spec: str, out: str, **options: Any) -> Any:
    """Worker body: plan and run the batch (imports the core here, not on the GUI thread)."""
    from napari_xai.core.batch import iter_batch

    return (yield from iter_batch(inputs, spec, out, **options))


class BatchWidget(RunWidget):
    """Batch-score slides (folder, glob or cohort CSV) into one result folder each."""

    title = "Batch score"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer, slide=False, run_text="Batch score")
        self._inputs = file_edit(
            label="slides",
            mode="d",
            tooltip="A folder of slides. You can also type a glob pattern (data/**/*.svs),"
            " a slide file, or a cohort CSV (slide_path, optional label and metadata columns).",
        )
        self._input_kind = ComboBox(
            label="browse for", choices=["folder", "cohort CSV"], value="folder"
        )
        self._out = file_edit(
            label="output folder",
            mode="d",
            tooltip="One result folder per slide, plus cohort_summary.csv",
        )
        self._overlap, self._min_tissue = overlap_box(), min_tissue_box()
        self._attribution = ComboBox(
            label="saliency", choices=list(ATTRIBUTION_CHOICES), value=NO_ATTRIBUTION
        )
        self._top_k = SpinBox(
            label="top-k tiles", value=10, min=1, max=100_000,
            tooltip="Slide score = mean of the k highest tile probabilities",
        )  # fmt: skip
        self._positive = LineEdit(
            label="positive class", value="", tooltip="Blank: the tumour-like class of the model"
        )
        self._scheduler = ComboBox(
            label="run on", choices=[LOCAL, IN_PROCESS, ADDRESS], value=LOCAL
        )
        self._address = LineEdit(label="scheduler", value="tcp://127.0.0.1:8786", visible=False)
        self._workers = SpinBox(
            label="workers", value=0, min=0, max=256,
            tooltip="Worker processes of the local cluster (0 = auto)",
        )  # fmt: skip
        self._device = ComboBox(label="device", choices=["auto", "cpu", "cuda", "mps"])
        self._resume = CheckBox(label="skip slides already done", value=True)
        self._progress.label = "slides"
        self._table = status_table()
        self._metrics = Label(value="")
        self._open = PushButton(text="Open selected result", enabled=False)
        self._cancel_event = threading.Event()
        self._rows: dict[int, int] = {}  # cohort index -> status row
        self._status_rows: list[list[Any]] = []
        self._last_refresh = 0.0
        self._ranked_folders: list[str | None] = []
        self.last_result: BatchResult | None = None
        self._pickers.insert(0, self._inputs)
        self._pickers.insert(1, self._input_kind)
        self.finish(
            [
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
                *self.run_controls(),
                self._table,
                self._metrics,
                self._open,
            ]
        )
        self._input_kind.changed.connect(self._on_input_kind)
        self._scheduler.changed.connect(self._on_scheduler)
        self._open.changed.connect(self._on_open_selected)
        self._table.native.cellDoubleClicked.connect(lambda row, _col: self._open_row(row))

    # -- controls --------------------------------------------------------------------
    def _on_input_kind(self, value: str) -> None:
        self._inputs.mode = "d" if value == "folder" else "r"
        self._inputs.filter = None if value == "folder" else "*.csv"

    def _on_scheduler(self, value: str) -> None:
        self._address.visible = value == ADDRESS
        self._workers.visible = value == LOCAL

    def _options(self) -> dict[str, Any]:
        """Keyword options of :func:`napari_xai.core.batch.iter_batch` from the controls."""
        from napari_xai.core.options import cohort_options

        where = {IN_PROCESS: "sync", LOCAL: "local"}
        return cohort_options(
            min_tissue=self._min_tissue.value, overlap=self._overlap.value,
            top_k=self._top_k.value, positive_class=str(self._positive.value),
            method=None if self._attribution.value == NO_ATTRIBUTION else self._attribution.value,
            device=str(self._device.value), resume=bool(self._resume.value),
            scheduler=where.get(self._scheduler.value, str(self._address.value).strip()),
            n_workers=int(self._workers.value) or None,
        )  # fmt: skip

    # -- running ---------------------------------------------------------------------
    def _on_run(self, _value: Any = None) -> None:
        """Start batch scoring in a worker thread."""
        if self.busy():
            return
        inputs = str(self._inputs.value)
        out = str(self._out.value)
        if inputs in ("", ".") or out in ("", "."):
            self.error("choose the slides and an output folder")
            return
        self._cancel_event = threading.Event()
        self._rows = {}
        self._status_rows = []
        self._last_refresh = 0.0
        self._ranked_folders = []
        self.last_result = None
        set_table(self._table, [], STATUS_COLUMNS)
        self._metrics.value = ""
        self._open.enabled = False
        self.launch(
            batch_in_worker,
            inputs,
            str(self._model_spec()),
            out,
            cancel=self._cancel_event,
            **self._options(),
            status="starting…",
            on_yielded=self._on_event,
            on_returned=self._on_returned,
        )

    def _on_cancel(self, _value: Any = None) -> None:
        """Stop after the slides in progress; finished slides stay."""
        self._cancel_event.set()
        self._status.value = "cancelling (finished slides are kept)…"

    def _on_event(self, event: BatchEvent) -> None:
        """Update the progress and the slide's row; redraw at most every ``REFRESH_S`` s."""
        self._progress.max = max(event.n_total, 1)
        self._progress.value = event.n_finished
        update_status_row(self._status_rows, self._rows, event)
        self._status.value = event.message
        now = time.monotonic()
        if now - self._last_refresh >= REFRESH_S or event.kind in ("done", "failed"):
            self._last_refresh = now
            set_table(self._table, [list(r) for r in self._status_rows], STATUS_COLUMNS)

    def _on_returned(self, result: BatchResult) -> None:
        """Show the slides ranked by score and the cohort figures."""
        self.last_result = result
        rows, self._ranked_folders = ranked_rows(result.summary)
        set_table(self._table, rows, RANKED_COLUMNS)
        self._progress.value = self._progress.max
        self._metrics.value = metrics_text(result)
        self._status.value = "cancelled" if result.cancelled else "done"
        self._open.enabled = any(self._ranked_folders)

    # -- opening results -------------------------------------------------------------
    def _on_open_selected(self, _value: Any = None) -> None:
        rows = sorted({i.row() for i in self._table.native.selectedIndexes()})
        for row in rows or [0]:
            self._open_row(row)

    def _open_row(self, row: int) -> None:
        """Open the result folder of ranked row ``row`` in the viewer."""
        if row < 0 or row >= len(self._ranked_folders):
            return
        folder = self._ranked_folders[row]
        if not folder:
            self.error("this slide has no result (it failed or was cancelled)")
            return
        try:
            self._viewer.open(folder, plugin="napari-xai")
        except Exception as exc:  # never crash napari
            self.error(f"cannot open {folder}: {exc}")
