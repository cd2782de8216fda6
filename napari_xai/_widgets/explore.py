"""The "Explore a cohort" widget: every tile in the model's feature space, linked to the slides.

A scatter of the cohort's 2-D embedding (:func:`~napari_xai.core.explore.report.explore_cohort`,
in a ``thread_worker``) on a vispy canvas (:mod:`._scatter`), coloured by class, label,
confidence, slide, cluster, ``ood_score`` or a metadata column. Shift-drag (box) or Ctrl-drag
(lasso) selects tiles, drawn on their slide (opened when needed, :mod:`._explore_slides`);
a click on a tile of the slide selects its point. Filters (:mod:`._explore_filters`) apply
to the scatter, the gallery, the per-class confidence histogram (drag on it: the confidence
range) and the slide's tiles layer at once; gallery, confusion cells and the mosaic map of
the kept tiles (:mod:`._explore_panels`) select the tiles behind them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.types import FileDialogMode
from magicgui.widgets import ComboBox, Container, FileEdit, Label, PushButton

from napari_xai._widgets._explore_slides import SELECTION_LAYER, SlideLink
from napari_xai._widgets._layout import ScrollPanel, fit_panel
from napari_xai._widgets._pickers import offer

if TYPE_CHECKING:
    import napari.viewer
    import numpy.typing as npt

    from napari_xai.core.explore.mosaic import MosaicMap
    from napari_xai.core.explore.report import ExploreResult

__all__ = ["GALLERY_SIZE", "MOSAIC_GRID", "SELECTION_LAYER", "ExploreWidget"]

GALLERY_SIZE = 24
#: Mosaic map cells along the longer side, and pixels per cell, in the dock.
MOSAIC_GRID, MOSAIC_CELL = 12, 30


class ExploreWidget(ScrollPanel, Container):
    """Explore a cohort scored with features: scatter, filters, gallery, confusion, mosaic.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer (slides and the selection layer go there).
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        from napari_xai._widgets._explore_filters import FilterControls
        from napari_xai._widgets._explore_panels import (
            ConfidenceHistogram,
            ConfusionTable,
            Gallery,
            MosaicView,
        )
        from napari_xai._widgets._scatter import ScatterCanvas

        self._folder = FileEdit(
            label="results",
            mode=FileDialogMode.EXISTING_DIRECTORY,
            tooltip="a result folder or batch output",
        )
        self._metadata = FileEdit(
            label="metadata",
            mode=FileDialogMode.EXISTING_FILE,
            filter="*.csv",
            tooltip="optional: slide_id + columns",
        )
        self._method = ComboBox(label="embedding", choices=["pca", "umap", "tsne"], value="pca")
        self._run = PushButton(text="Explore")
        self._status = Label(value="pick a folder scored with --features")
        self._colour_by = ComboBox(label="colour by", choices=["pred_class"])
        self.filters = FilterControls(self._apply)
        self._order = ComboBox(
            label="gallery", choices=["confidence", "disagreement", "cluster", "uncertainty"]
        )
        self._mosaic_button = PushButton(text="Mosaic map of the kept tiles")
        super().__init__(
            widgets=[self._folder, self._metadata, self._method, self._run, self._status,
                     self._colour_by, *self.filters.widgets, self._order, self._mosaic_button],
            scrollable=True,
        )  # fmt: skip
        self.scatter = ScatterCanvas(self.select)
        self.histogram = ConfidenceHistogram(self._set_confidence)
        self.gallery = Gallery(self.select, self._on_error)
        self.confusion = ConfusionTable(self.select)
        self.mosaic = MosaicView(self.select)
        self.scatter.native.setMinimumHeight(300)
        layout = self.inner.layout()
        for panel in (self.scatter, self.histogram, self.gallery, self.confusion, self.mosaic):
            layout.addWidget(panel.native)
        self.slides = SlideLink(viewer)
        self.result: ExploreResult | None = None
        self.selection = np.zeros(0, np.int64)
        self._colours = np.zeros((0, 4), np.float32)
        self._worker: Any = None
        self._run.changed.connect(self._on_run)
        self._colour_by.changed.connect(self._recolour)
        self._order.changed.connect(self._fill_gallery)
        self._mosaic_button.changed.connect(self._on_mosaic)
        viewer.mouse_drag_callbacks.append(self._on_slide_click)
        fit_panel(self)

    # -- running -----------------------------------------------------------------------
    def _start(self, work: Any, on_done: Any, message: str) -> None:
        from napari.qt.threading import thread_worker

        self._status.value = message
        worker = thread_worker(work, ignore_errors=True)()  # errors: _on_error, not Qt's loop
        worker.returned.connect(on_done)
        worker.errored.connect(self._on_error)
        worker.finished.connect(lambda: setattr(self, "_worker", None))
        self._worker = worker
        worker.start()

    def _on_run(self, _value: Any = None) -> None:
        """Load the cohort (with the metadata table, if one is picked) and explore it."""
        from napari_xai.core.explore.cohort import load_cohort
        from napari_xai.core.explore.report import ExploreOptions, explore_cohort

        folder, method = Path(str(self._folder.value)), str(self._method.value)
        meta = Path(str(self._metadata.value))
        metadata = meta if meta.is_file() else None

        def work() -> ExploreResult:
            cohort = load_cohort([folder], metadata=metadata)
            return explore_cohort(cohort, options=ExploreOptions(method=method))

        self._run.enabled = False
        self._start(work, self.set_result, f"exploring {folder.name} ({method})…")
        self._worker.finished.connect(lambda: setattr(self._run, "enabled", True))

    def _on_error(self, exc: BaseException) -> None:
        from napari.utils.notifications import show_error

        self._status.value = f"error: {exc}"
        show_error(f"Explore: {exc}")  # and a notification: never a silent failure

    def set_result(self, result: ExploreResult) -> None:
        """Show an explored cohort (the worker's return value)."""
        from napari_xai.core.explore.view import colour_columns

        self.result, tiles = result, result.tiles
        self.slides.tiles, self.selection = tiles, np.zeros(0, np.int64)
        self.mosaic.clear()  # it showed the previous cohort's rows
        offer(self._colour_by, colour_columns(tiles))
        self.filters.populate(tiles)
        n_slides = tiles["slide_id"].nunique()
        self._status.value = (
            f"{len(tiles):,} tiles of {n_slides} slides; {len(result.clusters)} clusters"
        )
        self._recolour()
        self.confusion.fill(tiles)

    # -- colours and filters -----------------------------------------------------------
    def _recolour(self, _value: Any = None) -> None:
        if self.result is None:
            return
        from napari_xai.core.explore.report import colours_for

        col = str(self._colour_by.value)
        values = self.result.tiles[col]
        self._colours = np.asarray(
            colours_for(values.astype(str) if col == "cluster" else values)[0], np.float32
        )
        self._apply()

    def filter_mask(self) -> npt.NDArray[np.bool_]:
        """Return the mask of the tiles the filters keep."""
        assert self.result is not None
        return self.filters.tile_filter().mask(self.result.tiles)

    def _set_confidence(self, low: float, high: float) -> None:
        """Set the confidence range (a drag on the histogram); the filters follow."""
        self.filters.conf_max.value = 1.0  # so that the floor is never above the ceiling
        self.filters.conf_min.value = round(low, 2)
        self.filters.conf_max.value = round(high, 2)

    def _apply(self) -> None:
        """Apply the filters to the scatter, the histogram, the gallery and the layers at once."""
        if self.result is None or not len(self._colours):
            return
        keep = self.filter_mask()
        rows = np.flatnonzero(keep)
        self.scatter.set_points(
            self.result.tiles[["x", "y"]].to_numpy(np.float32), self._colours, rows
        )
        span = (float(self.filters.conf_min.value), float(self.filters.conf_max.value))
        self.histogram.show(self.result.tiles, rows, span)
        self.select(self.selection[keep[self.selection]] if len(self.selection) else [], keep)
        self.slides.filter(keep)
        self._fill_gallery(keep=keep)

    # -- selection ---------------------------------------------------------------------
    @property
    def shown_slide(self) -> str | None:
        """Return the cohort slide shown in the viewer (None before a selection opens one)."""
        return self.slides.shown_slide

    def select(self, rows: Any, keep: npt.NDArray[np.bool_] | None = None) -> None:
        """Select tiles (positional rows): ring them in the scatter, draw them on their slide.

        ``keep`` is the filters' mask when the caller has it (default: computed).
        """
        self.selection = np.asarray(rows, np.int64)
        self.scatter.set_highlight(self.selection)
        if self.result is not None and len(self.selection):
            self.slides.show(self.selection, self.filter_mask() if keep is None else keep)

    def _on_slide_click(self, _viewer: Any, event: Any) -> None:
        """Select the point of the tile clicked on the shown slide."""
        row = self.slides.row_at(event.position)
        if row is not None:
            self.select([row])

    # -- gallery and mosaic ------------------------------------------------------------
    def gallery_rows(self, keep: npt.NDArray[np.bool_] | None = None) -> npt.NDArray[np.int64]:
        """Rows shown in the gallery: the kept tiles (default: the filters') in order."""
        from napari_xai.core.explore.select import gallery_order

        assert self.result is not None
        order = str(self._order.value)
        if order == "disagreement" and "label" not in self.result.tiles:
            return np.zeros(0, np.int64)
        rows = np.flatnonzero(self.filter_mask() if keep is None else keep)
        return gallery_order(self.result.tiles, by=order, rows=rows)[:GALLERY_SIZE]

    def _fill_gallery(self, _value: Any = None, keep: npt.NDArray[np.bool_] | None = None) -> None:
        if self.result is not None:
            self.gallery.fill(self.result.tiles, self.gallery_rows(keep))

    def _on_mosaic(self, _value: Any = None) -> None:
        """Build the mosaic map of the kept tiles in a worker (thumbnails from the slides)."""
        if self.result is None or "result_folder" not in self.result.tiles:
            self._status.value = "a mosaic map needs explored tiles with slides behind them"
            return
        from napari_xai.core.explore.mosaic import mosaic_map

        tiles, rows = self.result.tiles, np.flatnonzero(self.filter_mask())

        def work() -> MosaicMap:
            return mosaic_map(tiles, grid=MOSAIC_GRID, size=MOSAIC_CELL, rows=rows)

        def done(mosaic: MosaicMap) -> None:
            self.mosaic.show(mosaic)
            n = int((mosaic.layout.cells >= 0).sum())
            self._status.value = f"mosaic map: {n} cells of {len(rows):,} tiles; click a cell"

        self._start(work, done, f"mosaic map of {len(rows):,} tiles…")
