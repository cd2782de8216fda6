"""The Explain widget's view: the canvas rectangle and "follow the view" re-runs.

:class:`FollowView` is a mixin of :class:`napari_xai._widgets.explain.ExplainWidget`
(a :class:`~napari_xai._widgets._base.RunWidget` with ``_follow`` and ``_mode``
controls): in "what I see" mode with "follow the view" on, camera moves are
debounced and the new view is explained once it stops moving (after the current
run when one is going).
"""

from __future__ import annotations

from typing import Any

from napari_xai._widgets._explain_work import canvas_rect

VIEW = "what I see (current view)"
#: Milliseconds the view must stay still before "follow the view" re-runs.
FOLLOW_DELAY_MS = 600


class FollowView:
    """Mixin: the camera, the canvas rectangle and debounced re-runs."""

    _timer: Any = None
    _rerun = False
    # From RunWidget and ExplainWidget.
    _viewer: Any
    _worker: Any
    _follow: Any
    _mode: Any
    _on_run: Any

    def wire_follow(self) -> None:
        """Watch the camera's centre and zoom."""
        camera = self._camera()
        camera.events.center.connect(self._on_camera)
        camera.events.zoom.connect(self._on_camera)

    def _camera(self) -> Any:
        scene = getattr(self._viewer, "scene", None)  # napari >= 0.9
        return scene.camera if scene is not None else self._viewer.camera

    def view_rect(self, layer: Any) -> tuple[float, float, float, float]:
        """Level-0 (row0, col0, row1, col1) of the canvas, in the slide layer's pixels."""
        return canvas_rect(self._viewer, self._camera(), layer)

    def _on_camera(self, _event: Any = None) -> None:
        """Debounce camera moves; explain the new view once it stops moving."""
        if not (self._follow.value and self._mode.value == VIEW):
            return
        if self._timer is None:
            from qtpy.QtCore import QTimer

            self._timer = QTimer()
            self._timer.setSingleShot(True)
            self._timer.timeout.connect(self._on_view_settled)
        self._timer.start(FOLLOW_DELAY_MS)

    def _on_view_settled(self) -> None:
        if self._worker is not None:
            self._rerun = True  # after the current run
            return
        self._on_run()

    def rerun_if_asked(self) -> None:
        """Explain the view that settled while the last run was going (call when it ends)."""
        if self._rerun:
            self._rerun = False
            self._on_camera()
