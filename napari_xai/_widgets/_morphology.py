"""Live morphology of drawn shapes: measured in a worker, shown in a label.

:class:`LiveMorphology` follows Shapes layers: whenever a shape is drawn,
edited or removed it copies the layer's shapes on the GUI thread and measures
them (:func:`napari_xai.core.layers.editing.measure_shapes`) in a worker;
the answer goes into the layer's features table unless a later edit's answer is
on its way, and the selected (else the last) shape's area, perimeter,
circularity and solidity are shown in the label.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class LiveMorphology:
    """Measure followed Shapes layers off the GUI thread as they are drawn.

    Parameters
    ----------
    label : magicgui.widgets.Label
        Where the selected (else the last) shape's morphology is shown.
    snapshot : callable
        ``snapshot(layer)`` copies a layer's shapes (a ``ShapesSnapshot``).
    status : magicgui.widgets.Label
        Where a failure to measure is said.
    """

    def __init__(self, label: Any, snapshot: Callable[[Any], Any], status: Any) -> None:
        self._label = label
        self._snapshot = snapshot
        self._status = status
        self._followed: set[int] = set()
        self._latest: dict[int, Any] = {}  # layer id -> the worker whose answer is shown

    def follow(self, layer: Any) -> None:
        """Measure ``layer`` whenever its shapes change; show a shape when selected."""
        if layer is None or id(layer) in self._followed:
            return
        self._followed.add(id(layer))
        layer.events.data.connect(lambda event: self._on_data(layer, event))
        layer.events.highlight.connect(lambda _event: self.show(layer))

    def _on_data(self, layer: Any, event: Any) -> None:
        from napari.qt.threading import thread_worker

        from napari_xai.core.layers.annotations import MAX_SHAPES
        from napari_xai.core.layers.editing import measure_shapes

        if getattr(event, "action", "added") not in ("added", "changed", "removed"):
            return
        if not 0 < len(layer.data) <= MAX_SHAPES:
            return
        worker = thread_worker(measure_shapes, ignore_errors=True)(self._snapshot(layer))
        self._latest[id(layer)] = worker
        worker.returned.connect(lambda table: self._on_measured(layer, worker, table))
        worker.errored.connect(lambda exc: self._failed(layer, worker, exc))
        worker.start()

    def _failed(self, layer: Any, worker: Any, exc: BaseException) -> None:
        if self._latest.get(id(layer)) is worker:
            self._status.value = f"morphology not updated: {exc}"

    def _on_measured(self, layer: Any, worker: Any, table: Any) -> None:
        if self._latest.get(id(layer)) is worker:  # else a later edit's answer is coming
            self.apply(layer, table)

    def apply(self, layer: Any, table: Any) -> bool:
        """Put a measured table's morphology into ``layer``'s features; show it.

        Returns ``False`` (and changes nothing) when the table is ``None`` or no
        longer matches the layer's shapes.
        """
        from napari_xai.core.layers.editing import merge_features

        if table is None or len(table) != len(layer.data):
            return False
        defaults = layer.feature_defaults
        layer.features = merge_features(layer.features, table)
        if len(defaults):  # setting features resets the defaults of new shapes
            row = defaults.iloc[0].items()
            layer.feature_defaults = {k: v for k, v in row if k in layer.features.columns}
        self.show(layer)
        return True

    def show(self, layer: Any) -> None:
        """Show the selected (else the last) shape's area, perimeter, circularity, solidity."""
        from napari_xai.core.annotations.morphology import describe_morphology

        features = layer.features
        if len(features) == 0 or "area_px" not in features.columns:
            return
        selected = sorted(i for i in layer.selected_data if i < len(features))
        i = selected[-1] if selected else len(features) - 1
        try:
            self._label.value = f"#{i + 1}: {describe_morphology(features.iloc[i])}"
        except (KeyError, TypeError, ValueError):
            return
