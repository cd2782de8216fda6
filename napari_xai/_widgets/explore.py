"""The "Explore a cohort" widget: every tile in the model's feature space, linked to the slides.

A scatter of the cohort's tiles (2-D embedding of their features,
:func:`napari_xai.core.explore.report.explore_cohort`, computed in a
``thread_worker``) on a vispy canvas inside the dock, coloured by predicted
class, ground truth, confidence, slide, cluster, ``ood_score`` or any metadata
column. Selection goes both ways:

* **scatter → slide**: Shift-drag draws a box, Ctrl-drag a lasso; the tiles
  selected are drawn on their slide (opened from its result folder when it is
  not open yet) as the ``explore selection`` points layer;
* **slide → scatter**: a click on a tile of the shown slide highlights its point.

Filters (classes, confidence range, slides, artefact flag) apply to the scatter,
the gallery and the slide's tiles layer at once. The gallery shows tiles in the
chosen order (confidence, disagreement with labels, cluster, uncertainty); the
confusion matrix's cells select exactly the tiles behind them.

Heavy imports (vispy, pandas, the core) happen inside methods.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    PushButton,
    Select,
)

from napari_xai._widgets._layout import ScrollPanel, fit_panel

if TYPE_CHECKING:
    import napari
    import napari.viewer
    import numpy.typing as npt

    from napari_xai.core.explore.report import ExploreResult

SELECTION_LAYER = "explore selection"
GALLERY_SIZE = 24
_HIGHLIGHT = (1.0, 0.9, 0.1, 1.0)


class ScatterCanvas:
    """A vispy scatter in a Qt widget: many points, box and lasso selection.

    Parameters
    ----------
    on_select : callable
        Called with the selected rows (int64 array) after a box or lasso.
    """

    def __init__(self, on_select: Any) -> None:
        from vispy import scene

        self.canvas = scene.SceneCanvas(keys=None, size=(360, 320), show=False, bgcolor="white")
        self.view = self.canvas.central_widget.add_view()
        self.view.camera = scene.PanZoomCamera(aspect=1)
        self.markers = scene.visuals.Markers(parent=self.view.scene)
        self.highlight = scene.visuals.Markers(parent=self.view.scene)
        self.highlight.order = -1
        self.outline = scene.visuals.Line(color="black", parent=self.view.scene, width=1)
        self.xy = np.zeros((0, 2), np.float32)
        self.visible_rows = np.zeros(0, np.int64)
        self._on_select = on_select
        self._drag: list[tuple[float, float]] = []
        self._mode: str | None = None
        self.markers.set_data(np.zeros((1, 2), np.float32), face_color=(0, 0, 0, 0), size=1)
        self.set_highlight([])
        self.canvas.events.mouse_press.connect(self._press)
        self.canvas.events.mouse_move.connect(self._move)
        self.canvas.events.mouse_release.connect(self._release)

    @property
    def native(self) -> Any:
        """The Qt widget."""
        return self.canvas.native

    def set_points(
        self, xy: npt.NDArray[np.float32], colours: npt.NDArray[np.float32], rows: Any
    ) -> None:
        """Draw the points ``xy[rows]`` with their colours; fit the view on the first call."""
        first = len(self.xy) == 0
        self.xy = np.asarray(xy, np.float32)
        self.visible_rows = np.asarray(rows, np.int64)
        pts = self.xy[self.visible_rows]
        size = float(np.clip(600 / max(len(pts), 1) ** 0.5, 2, 8))
        self.markers.set_data(pts, face_color=colours[self.visible_rows], edge_width=0, size=size)
        if first and len(pts):
            lo, hi = pts.min(axis=0), pts.max(axis=0)
            pad = (hi - lo) * 0.05 + 1e-6
            self.view.camera.set_range(x=(lo[0] - pad[0], hi[0] + pad[0]),
                                       y=(lo[1] - pad[1], hi[1] + pad[1]))  # fmt: skip
        self.canvas.update()

    def set_highlight(self, rows: Any) -> None:
        """Ring the points of ``rows`` (empty: none)."""
        rows = np.asarray(rows, np.int64)
        pts = self.xy[rows] if len(rows) else np.zeros((1, 2), np.float32)
        self.highlight.set_data(
            pts,
            face_color=(0, 0, 0, 0),
            edge_color=_HIGHLIGHT if len(rows) else (0, 0, 0, 0),
            edge_width=2,
            size=10,
        )
        self.canvas.update()

    def to_data(self, pos: Any) -> tuple[float, float]:
        """Canvas pixel → scatter coordinates."""
        tr = self.canvas.scene.node_transform(self.markers)
        p = tr.map(np.asarray(pos, np.float64)[:2])
        return float(p[0]), float(p[1])

    def select_box(self, a: tuple[float, float], b: tuple[float, float]) -> Any:
        """Select the visible points in a box (scatter coordinates)."""
        from napari_xai.core.explore.select import points_in_box

        rows = self.visible_rows[points_in_box(self.xy[self.visible_rows], a, b)]
        self._on_select(rows)
        return rows

    def select_lasso(self, vertices: Any) -> Any:
        """Select the visible points inside a polygon (scatter coordinates)."""
        from napari_xai.core.explore.select import points_in_polygon

        rows = self.visible_rows[points_in_polygon(self.xy[self.visible_rows], vertices)]
        self._on_select(rows)
        return rows

    def _press(self, event: Any) -> None:
        mods = {str(getattr(m, "name", m)).lower() for m in event.modifiers}
        self._mode = "box" if "shift" in mods else "lasso" if "control" in mods else None
        if self._mode:
            self.view.camera.interactive = False
            self._drag = [self.to_data(event.pos)]

    def _move(self, event: Any) -> None:
        if self._mode and event.is_dragging:
            self._drag.append(self.to_data(event.pos))
            pts = np.asarray(self._drag, np.float32)
            if self._mode == "box":
                (x0, y0), (x1, y1) = pts[0], pts[-1]
                pts = np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]], np.float32)
            self.outline.set_data(pos=pts)

    def _release(self, event: Any) -> None:
        if not self._mode:
            return
        self._drag.append(self.to_data(event.pos))
        if self._mode == "box":
            self.select_box(self._drag[0], self._drag[-1])
        else:
            self.select_lasso(self._drag)
        self._mode, self._drag = None, []
        self.outline.set_data(pos=np.zeros((0, 2), np.float32))
        self.view.camera.interactive = True


class ExploreWidget(ScrollPanel, Container):
    """Explore a cohort scored with features: scatter, filters, gallery, confusion matrix.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer (slides and the selection layer go there).
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._viewer = viewer
        self._folder = FileEdit(
            label="results", mode="d", tooltip="a result folder or batch output"
        )
        self._method = ComboBox(label="embedding", choices=["pca", "umap", "tsne"], value="pca")
        self._run = PushButton(text="Explore")
        self._status = Label(value="pick a folder scored with --features")
        self._colour_by = ComboBox(label="colour by", choices=["pred_class"])
        self._classes = Select(label="classes", choices=[])
        self._conf_min = FloatSpinBox(label="confidence ≥", min=0, max=1, step=0.05, value=0)
        self._conf_max = FloatSpinBox(label="confidence ≤", min=0, max=1, step=0.05, value=1)
        self._slides = Select(label="slides", choices=[])
        self._hide_artefacts = CheckBox(text="hide artefact tiles", value=False)
        self._order = ComboBox(
            label="gallery", choices=["confidence", "disagreement", "cluster", "uncertainty"]
        )
        super().__init__(
            widgets=[
                self._folder,
                self._method,
                self._run,
                self._status,
                self._colour_by,
                self._classes,
                self._conf_min,
                self._conf_max,
                self._slides,
                self._hide_artefacts,
                self._order,
            ],
            scrollable=True,
        )
        self.scatter = ScatterCanvas(self._on_scatter_select)
        layout = self.inner.layout()
        self.scatter.native.setMinimumHeight(300)
        layout.addWidget(self.scatter.native)
        from qtpy.QtWidgets import QGridLayout, QTableWidget, QWidget

        self._gallery = QWidget()
        self._gallery_grid = QGridLayout(self._gallery)
        layout.addWidget(self._gallery)
        self._confusion = QTableWidget()
        self._confusion.cellClicked.connect(self._on_confusion_cell)
        layout.addWidget(self._confusion)
        self.result: ExploreResult | None = None
        self.selection = np.zeros(0, np.int64)
        self.shown_slide: str | None = None
        self._cells: dict[tuple[str, str], Any] = {}
        self._colours = np.zeros((0, 4), np.float32)
        self._worker: Any = None
        self._thumb_worker: Any = None
        self.gallery_buttons: list[Any] = []
        self._run.changed.connect(self._on_run)
        for w in (self._classes, self._conf_min, self._conf_max, self._slides):
            w.changed.connect(self._apply)
        self._hide_artefacts.changed.connect(self._apply)
        self._colour_by.changed.connect(self._recolour)
        self._order.changed.connect(self._fill_gallery)
        viewer.mouse_drag_callbacks.append(self._on_slide_click)
        fit_panel(self)

    # -- running -----------------------------------------------------------------------
    def _on_run(self, _value: Any = None) -> None:
        """Load the cohort and explore it in a worker thread."""
        from napari.qt.threading import thread_worker

        from napari_xai.core.explore.cohort import load_cohort
        from napari_xai.core.explore.report import ExploreOptions, explore_cohort

        folder, method = Path(str(self._folder.value)), str(self._method.value)

        def work() -> ExploreResult:
            cohort = load_cohort([folder])
            return explore_cohort(cohort, options=ExploreOptions(method=method))

        self._status.value = f"exploring {folder.name} ({method})…"
        self._run.enabled = False
        worker = thread_worker(work)()
        worker.returned.connect(self.set_result)
        worker.errored.connect(self._on_error)
        worker.finished.connect(lambda: setattr(self._run, "enabled", True))
        self._worker = worker
        worker.start()

    def _on_error(self, exc: BaseException) -> None:
        self._status.value = f"error: {exc}"

    def set_result(self, result: ExploreResult) -> None:
        """Show an explored cohort (the worker's return value)."""
        self.result = result
        tiles = result.tiles
        columns = ["pred_class", "cluster", "confidence", "slide_id"] + [
            c
            for c in tiles.columns
            if c in ("label", "ood_score", "mc_uncertainty")
            or (c not in _NOT_COLOURS and not c.startswith("prob_"))
        ]
        self._colour_by.choices = list(dict.fromkeys(columns))
        self._classes.choices = sorted(tiles["pred_class"].astype(str).unique())
        self._slides.choices = sorted(tiles["slide_id"].astype(str).unique())
        self._classes.value = list(self._classes.choices)
        self._slides.value = list(self._slides.choices)
        n_slides = len(self._slides.choices)
        self._status.value = (
            f"{len(tiles):,} tiles of {n_slides} slides; {len(result.clusters)} clusters"
        )
        self._recolour()
        self._fill_confusion()

    # -- colours and filters -----------------------------------------------------------
    def _recolour(self, _value: Any = None) -> None:
        if self.result is None:
            return
        from napari_xai.core.explore.report import colours_for

        col = str(self._colour_by.value)
        values = self.result.tiles[col]
        if col == "cluster":
            values = values.astype(str)
        self._colours = np.asarray(colours_for(values)[0], np.float32)
        self._apply()

    def filter_mask(self) -> npt.NDArray[np.bool_]:
        """Return the mask of the tiles the filters keep."""
        from napari_xai.core.explore.select import TileFilter

        assert self.result is not None
        filt = TileFilter(
            classes=tuple(self._classes.value),
            confidence=(float(self._conf_min.value), float(self._conf_max.value)),
            slides=tuple(self._slides.value),
            flags=("artefact",) if self._hide_artefacts.value else (),
        )
        return filt.mask(self.result.tiles)

    def _apply(self, _value: Any = None) -> None:
        """Apply the filters to the scatter, the gallery and the layers at once."""
        if self.result is None or not len(self._colours):
            return
        keep = self.filter_mask()
        xy = self.result.tiles[["x", "y"]].to_numpy(np.float32)
        self.scatter.set_points(xy, self._colours, np.flatnonzero(keep))
        self.select(self.selection[keep[self.selection]] if len(self.selection) else [])
        self._filter_tiles_layer(keep)
        self._fill_gallery()

    def _filter_tiles_layer(self, keep: npt.NDArray[np.bool_]) -> None:
        if self.shown_slide is None or self.result is None:
            return
        layer = self._tiles_layer(self.shown_slide)
        if layer is None:
            return
        tiles = self.result.tiles
        mine = (tiles["slide_id"] == self.shown_slide).to_numpy()
        shown = np.zeros(len(layer.data), bool)
        shown[tiles.loc[mine, "tile"].to_numpy(np.int64)] = keep[mine]
        layer.shown = shown

    # -- selection ---------------------------------------------------------------------
    def _on_scatter_select(self, rows: Any) -> None:
        self.select(rows)

    def select(self, rows: Any) -> None:
        """Select tiles (positional rows): ring them in the scatter, draw them on their slide."""
        self.selection = np.asarray(rows, np.int64)
        self.scatter.set_highlight(self.selection)
        if self.result is None or not len(self.selection):
            return
        if "result_folder" not in self.result.tiles:  # features without slides behind them
            return
        slides = self.result.tiles["slide_id"].to_numpy()[self.selection]
        if self.shown_slide not in set(slides):
            self.show_slide(str(slides[0]))
        self._draw_selection()

    def _draw_selection(self) -> None:
        assert self.result is not None
        tiles = self.result.tiles.iloc[self.selection]
        tiles = tiles[tiles["slide_id"] == self.shown_slide]
        size = tiles["height"].to_numpy(np.float64)
        centres = np.stack(
            [tiles["row"] + (size - 1) / 2, tiles["col"] + (size - 1) / 2], axis=1
        ) if len(tiles) else np.zeros((0, 2))  # fmt: skip
        if SELECTION_LAYER in self._viewer.layers:
            layer = self._viewer.layers[SELECTION_LAYER]
            layer.data = centres
            if len(tiles):
                layer.size = float(size.max())
        else:
            self._viewer.add_points(
                centres,
                name=SELECTION_LAYER,
                symbol="square",
                size=float(size.max()) if len(size) else 1.0,
                face_color="transparent",
                border_color="yellow",
                border_width=0.1,
            )

    def show_slide(self, slide_id: str) -> None:
        """Open a slide of the cohort with its result layers (once), and show its tiles."""
        assert self.result is not None
        tiles = self.result.tiles
        folder = str(tiles.loc[tiles["slide_id"] == slide_id, "result_folder"].iloc[0])
        if self._tiles_layer(slide_id) is None:
            self._viewer.open(folder, plugin="napari-xai")
        self.shown_slide = slide_id
        self._filter_tiles_layer(self.filter_mask())

    def _tiles_layer(self, slide_id: str) -> Any:
        from napari_xai.core.naming import tiles_layer_name

        name = tiles_layer_name(slide_id)
        return self._viewer.layers[name] if name in self._viewer.layers else None

    def _on_slide_click(self, _viewer: Any, event: Any) -> None:
        """Select the point of the tile clicked on the shown slide."""
        if self.result is None or self.shown_slide is None:
            return
        from napari_xai.core.explore.select import tile_at

        tiles = self.result.tiles
        mine = np.flatnonzero((tiles["slide_id"] == self.shown_slide).to_numpy())
        hit = tile_at(tiles.iloc[mine], tuple(event.position)[-2:])
        if hit is not None:
            self.select([mine[hit]])

    # -- gallery and confusion matrix ---------------------------------------------------
    def gallery_rows(self) -> npt.NDArray[np.int64]:
        """Rows shown in the gallery: the filtered tiles in the chosen order."""
        from napari_xai.core.explore.select import gallery_order

        assert self.result is not None
        order = str(self._order.value)
        if order == "disagreement" and "label" not in self.result.tiles:
            return np.zeros(0, np.int64)
        rows = np.flatnonzero(self.filter_mask())
        return gallery_order(self.result.tiles, by=order, rows=rows)[:GALLERY_SIZE]

    def _fill_gallery(self, _value: Any = None) -> None:
        if self.result is None:
            return
        from qtpy.QtWidgets import QPushButton

        while self._gallery_grid.count():
            item = self._gallery_grid.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        tiles = self.result.tiles
        rows = self.gallery_rows()
        self.gallery_buttons = []
        for k, row in enumerate(rows):
            t = tiles.iloc[int(row)]
            button = QPushButton(f"{t['pred_class']}\n{t['confidence']:.2f}")
            button.setToolTip(f"{t['slide_id']} tile {t['tile']} at ({t['row']}, {t['col']})")
            button.clicked.connect(lambda _=False, r=int(row): self.select([r]))
            self._gallery_grid.addWidget(button, k // 6, k % 6)
            self.gallery_buttons.append(button)
        if len(rows) and "result_folder" in tiles:
            self._load_thumbnails(tiles.iloc[rows], list(self.gallery_buttons))

    def _load_thumbnails(self, rows: Any, buttons: list[Any]) -> None:
        """Read the gallery's tiles from their slides in a worker; show them as icons."""
        from napari.qt.threading import thread_worker

        from napari_xai.core.explore.cohort import tile_thumbnails

        def show(images: list[Any]) -> None:
            from qtpy.QtCore import QSize
            from qtpy.QtGui import QIcon, QImage, QPixmap

            for button, img in zip(buttons, images, strict=False):
                try:
                    h, w = img.shape[:2]
                    qimg = QImage(img.tobytes(), w, h, 3 * w, QImage.Format.Format_RGB888)
                    button.setIcon(QIcon(QPixmap.fromImage(qimg.copy())))
                    button.setIconSize(QSize(48, 48))
                except RuntimeError:  # the gallery was refilled meanwhile
                    return

        worker = thread_worker(tile_thumbnails)(rows, size=48)
        worker.returned.connect(show)
        worker.errored.connect(self._on_error)
        self._thumb_worker = worker
        worker.start()

    def _fill_confusion(self) -> None:
        from qtpy.QtWidgets import QTableWidgetItem

        self._cells = {}
        assert self.result is not None
        if "label" not in self.result.tiles:
            self._confusion.setVisible(False)
            return
        from napari_xai.core.explore.select import confusion_cells

        cm, self._cells = confusion_cells(self.result.tiles)
        self._confusion.setVisible(True)
        self._confusion.setRowCount(len(cm.index))
        self._confusion.setColumnCount(len(cm.columns))
        self._confusion.setVerticalHeaderLabels([f"true {c}" for c in cm.index])
        self._confusion.setHorizontalHeaderLabels([f"pred {c}" for c in cm.columns])
        for i in range(len(cm.index)):
            for j in range(len(cm.columns)):
                self._confusion.setItem(i, j, QTableWidgetItem(str(int(cm.iat[i, j]))))
        self._cm_labels = (list(cm.index), list(cm.columns))

    def _on_confusion_cell(self, i: int, j: int) -> None:
        """Select exactly the tiles of a confusion-matrix cell."""
        truth, pred = self._cm_labels[0][i], self._cm_labels[1][j]
        self.select(self._cells.get((truth, pred), np.zeros(0, np.int64)))


#: Tile-table columns that make no sense as colours.
_NOT_COLOURS = {
    "row", "col", "height", "width", "grid_row", "grid_col", "tile", "result_folder", "x", "y",
    "flags", "pred_index", "entropy", "tissue_fraction",
}  # fmt: skip
