"""A vispy scatter in a Qt widget: many points, box (Shift-drag) and lasso (Ctrl-drag) selection.

The explore widget's canvas; the point tests are
:func:`napari_xai.core.explore.select.points_in_box` and
:func:`~napari_xai.core.explore.select.points_in_polygon`. Vispy is imported
when a canvas is made.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import numpy.typing as npt

__all__ = ["ScatterCanvas"]

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
        if len(pts):
            self.markers.set_data(
                pts, face_color=colours[self.visible_rows], edge_width=0, size=size
            )
        else:  # vispy cannot draw no markers: one transparent one
            self.markers.set_data(np.zeros((1, 2), np.float32), face_color=(0, 0, 0, 0), size=1)
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
