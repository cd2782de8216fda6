"""Hand layers to napari one per event-loop turn, so the viewer never stalls on many.

Adding or updating an image layer costs napari a slice, a thumbnail, a vispy
node and (for scalar maps) a colour bar; several in one handler call freeze
the GUI for seconds on a software-rendered canvas. :class:`LayerPacer` queues
LayerData by name (a newer layer with the same name replaces a queued one, so
live refreshes never pile up) and shows the oldest one per turn of Qt's event
loop, letting paints and input through in between.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from napari.layers import Layer

    from napari_xai._widgets._base import LayerData


#: Milliseconds between two steps. Not 0: Qt sends a zero-delay single shot as a posted
#: event, and a chain of them runs step after step (each a layer add and its first paint)
#: before the loop's timers and input get a turn, one stall of all the steps together.
PACE_MS = 20


class LayerPacer:
    """Queue of layers shown one per event-loop turn.

    Parameters
    ----------
    show : callable
        Shows one LayerData (e.g. :meth:`RunWidget.upsert`).
    """

    def __init__(self, show: Callable[[LayerData | Layer], Any]) -> None:
        self._show = show
        self._pending: dict[str, Any] = {}  # name -> LayerData, layer or _Call
        self._calls = 0
        self._then: list[Callable[[], Any]] = []

    def __bool__(self) -> bool:
        """Whether layers are still waiting to be shown."""
        return bool(self._pending)

    def put(self, ldt: LayerData | Layer) -> None:
        """Queue ``ldt`` (replacing a queued layer of the same name, which moves last).

        ``ldt`` is a LayerData tuple or a layer built in a worker.
        """
        idle = not self._pending
        name = ldt[1]["name"] if isinstance(ldt, tuple) else ldt.name
        self._pending.pop(name, None)
        self._pending[name] = ldt
        if idle:
            self._schedule()

    def call(self, callback: Callable[[], Any]) -> None:
        """Queue ``callback`` as a step of its own (e.g. a colour bar shown after its map)."""
        self._calls += 1
        idle = not self._pending
        self._pending[f"\0call {self._calls}"] = _Call(callback)
        if idle:
            self._schedule()

    def then(self, callback: Callable[[], Any]) -> None:
        """Call ``callback`` once the queue is empty (at once when it is)."""
        if self._pending:
            self._then.append(callback)
        else:
            callback()

    def _schedule(self) -> None:
        from qtpy.QtCore import QTimer

        QTimer.singleShot(PACE_MS, self._step)

    def _step(self) -> None:
        try:
            if self._pending:
                item = self._pending.pop(next(iter(self._pending)))
                try:
                    item.callback() if isinstance(item, _Call) else self._show(item)
                except RuntimeError:  # the widget or viewer was closed meanwhile
                    self._pending.clear()
        finally:  # a step that raised (reported by Qt's hook) does not stop the queue
            if self._pending:
                self._schedule()
            else:
                callbacks, self._then = self._then, []
                for callback in callbacks:
                    callback()


class _Call:
    """A queued callback (not a layer)."""

    def __init__(self, callback: Callable[[], Any]) -> None:
        self.callback = callback
