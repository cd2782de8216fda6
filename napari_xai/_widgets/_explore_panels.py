"""The explore widget's panels: gallery, confusion matrix, confidence histogram, mosaic map.

Each panel is a small class around one Qt widget (``native``) that shows rows
the core computed and hands the rows a click picks to ``on_pick``. Qt and
matplotlib are imported with this module, which the widget imports when it is
built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from qtpy.QtCore import QSize, Qt
from qtpy.QtGui import QIcon
from qtpy.QtWidgets import (
    QGridLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QWidget,
)

from napari_xai._widgets._layout import rgb_pixmap

if TYPE_CHECKING:
    import numpy.typing as npt
    import pandas as pd

    from napari_xai.core.explore.mosaic import MosaicMap

__all__ = ["ConfidenceHistogram", "ConfusionTable", "Gallery", "MosaicView"]

Pick = Callable[[Any], None]


class Gallery:
    """Tiles as buttons (class and confidence, then their thumbnail); a click picks one."""

    def __init__(self, on_pick: Pick, on_error: Callable[[BaseException], None]) -> None:
        self.native = QWidget()
        self._grid = QGridLayout(self.native)
        self.buttons: list[QPushButton] = []
        self._on_pick, self._on_error = on_pick, on_error
        self._worker: Any = None

    def fill(self, tiles: pd.DataFrame, rows: npt.NDArray[np.int64]) -> None:
        """Show ``tiles.iloc[rows]``; read their thumbnails from the slides in a worker."""
        while self._grid.count():
            item = self._grid.takeAt(0)
            old = item.widget() if item is not None else None
            if old is not None:
                old.deleteLater()
        self.buttons = []
        for k, row in enumerate(rows):
            t = tiles.iloc[int(row)]
            button = QPushButton(f"{t['pred_class']}\n{t['confidence']:.2f}")
            button.setToolTip(f"{t['slide_id']} tile {t['tile']} at ({t['row']}, {t['col']})")
            button.clicked.connect(lambda _=False, r=int(row): self._on_pick([r]))
            self._grid.addWidget(button, k // 6, k % 6)
            self.buttons.append(button)
        if len(rows) and "result_folder" in tiles:
            self._load_thumbnails(tiles.iloc[rows], list(self.buttons))

    def _load_thumbnails(self, rows: pd.DataFrame, buttons: list[QPushButton]) -> None:
        from napari.qt.threading import thread_worker

        from napari_xai.core.explore.cohort import tile_thumbnails

        def show(images: list[Any]) -> None:
            for button, img in zip(buttons, images, strict=False):
                try:
                    button.setIcon(QIcon(rgb_pixmap(img)))
                    button.setIconSize(QSize(48, 48))
                except RuntimeError:  # the gallery was refilled meanwhile
                    return

        worker = thread_worker(tile_thumbnails, ignore_errors=True)(rows, size=48)
        worker.returned.connect(show)
        worker.errored.connect(self._on_error)
        self._worker = worker
        worker.start()


class ConfusionTable:
    """Label × prediction counts; a cell picks exactly the tiles behind it."""

    def __init__(self, on_pick: Pick) -> None:
        self.native = QTableWidget()
        self.labels: tuple[list[str], list[str]] = ([], [])
        self._cells: dict[tuple[str, str], Any] = {}
        self._on_pick = on_pick
        self.native.cellClicked.connect(self.pick)

    def fill(self, tiles: pd.DataFrame) -> None:
        """Show the confusion matrix of ``tiles`` (hidden without a ``label`` column)."""
        from napari_xai.core.explore.select import confusion_cells

        self._cells = {}
        self.native.setVisible("label" in tiles)
        if "label" not in tiles:
            return
        cm, self._cells = confusion_cells(tiles)
        t = self.native
        t.setRowCount(len(cm.index))
        t.setColumnCount(len(cm.columns))
        t.setVerticalHeaderLabels([f"true {c}" for c in cm.index])
        t.setHorizontalHeaderLabels([f"pred {c}" for c in cm.columns])
        for i in range(len(cm.index)):
            for j in range(len(cm.columns)):
                t.setItem(i, j, QTableWidgetItem(str(int(cm.iat[i, j]))))
        self.labels = (list(cm.index), list(cm.columns))

    def pick(self, i: int, j: int) -> None:
        """Pick the tiles of cell ``(i, j)``."""
        truth, pred = self.labels[0][i], self.labels[1][j]
        self._on_pick(self._cells.get((truth, pred), np.zeros(0, np.int64)))


class _ClickLabel(QLabel):
    def __init__(self, on_click: Callable[[float, float], None]) -> None:
        super().__init__()
        self._on_click = on_click
        self.setAlignment(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignTop)

    def mousePressEvent(self, event: Any) -> None:  # noqa: N802 (Qt's name)
        pos = event.position() if hasattr(event, "position") else event.pos()
        self._on_click(float(pos.y()), float(pos.x()))


class MosaicView:
    """The mosaic map, one image pixel per screen pixel; a click picks its cell's tiles."""

    def __init__(self, on_pick: Pick) -> None:
        self.native = _ClickLabel(self._clicked)
        self.mosaic: MosaicMap | None = None
        self._on_pick = on_pick

    def show(self, mosaic: MosaicMap) -> None:
        """Show a mosaic map."""
        self.mosaic = mosaic
        self.native.setPixmap(rgb_pixmap(mosaic.image))
        self.native.setFixedSize(mosaic.image.shape[1], mosaic.image.shape[0])

    def clear(self) -> None:
        """Show nothing (a new cohort: the old cells' rows mean nothing now)."""
        self.mosaic = None
        self.native.clear()

    def _clicked(self, y: float, x: float) -> None:
        cell = self.mosaic.cell_at_pixel(y, x) if self.mosaic is not None else None
        if cell is not None and self.mosaic is not None:
            self._on_pick(self.mosaic.layout.rows_in(*cell))


class ConfidenceHistogram:
    """Confidence histogram of each predicted class over the kept tiles; drag to set the range.

    Parameters
    ----------
    on_range : callable
        Called with ``(low, high)`` when a range is dragged on the histogram.
    """

    def __init__(self, on_range: Callable[[float, float], None]) -> None:
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure
        from matplotlib.widgets import SpanSelector

        self.figure = Figure(figsize=(3.6, 2.2), layout="constrained")
        self.native = FigureCanvasQTAgg(self.figure)
        self.native.setMinimumHeight(160)
        self.ax = self.figure.add_subplot()
        self.counts: dict[str, npt.NDArray[np.int64]] = {}
        self._artists: list[Any] = []
        self._on_range = on_range
        self._span = SpanSelector(self.ax, self._dragged, "horizontal", minspan=0.01)

    def show(
        self, tiles: pd.DataFrame, rows: npt.NDArray[np.int64], span: tuple[float, float]
    ) -> None:
        """Draw the histograms of ``tiles.iloc[rows]`` and shade the kept confidence range."""
        import pandas as pd

        from napari_xai.core.explore.report import colours_for
        from napari_xai.core.explore.view import confidence_histograms

        edges, self.counts = confidence_histograms(tiles, rows=rows)
        for artist in self._artists:  # not ax.clear(): the span selector lives on the axes
            artist.remove()
        table, _ = colours_for(pd.Series(list(self.counts), dtype=object))
        self._artists = [
            self.ax.stairs(counts, edges, color=colour, linewidth=1.5, label=cls)
            for colour, (cls, counts) in zip(table, self.counts.items(), strict=True)
        ]
        self._artists.append(self.ax.axvspan(*span, color="0.85", zorder=-1))
        self.ax.relim()
        self.ax.autoscale_view()
        self.ax.set_xlim(0, 1)
        self.ax.set_xlabel("confidence", fontsize=8)
        self.ax.tick_params(labelsize=7)
        if self.counts:
            self._artists.append(self.ax.legend(fontsize=7))
        self.native.draw_idle()

    def _dragged(self, low: float, high: float) -> None:
        self._on_range(float(np.clip(low, 0, 1)), float(np.clip(high, 0, 1)))
