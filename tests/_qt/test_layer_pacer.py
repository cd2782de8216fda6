"""Layers reach napari one per event-loop turn; a newer layer of a name replaces a queued one."""

from __future__ import annotations

import numpy as np


def _ldt(name: str, value: float) -> tuple:
    return np.full((4, 4), value, np.float32), {"name": name}, "image"


def test_layers_are_shown_one_per_turn_newest_wins(make_napari_viewer, qtbot) -> None:
    from napari.layers import Layer
    from qtpy.QtCore import QTimer

    from napari_xai._widgets._pace import LayerPacer

    viewer = make_napari_viewer()
    turns: list[list[str]] = []  # the layers napari holds at each later turn of the loop

    def show(ldt: tuple) -> None:
        viewer.add_layer(Layer.create(*ldt))
        # what the loop looks like on the next turn, before the pacer's next step
        QTimer.singleShot(0, lambda: turns.append([layer.name for layer in viewer.layers]))

    pacer = LayerPacer(show)
    done: list[bool] = []
    for name, value in (("a", 1.0), ("b", 2.0), ("a", 3.0), ("c", 4.0)):
        pacer.put(_ldt(name, value))
    assert pacer and not len(viewer.layers)  # nothing in the handler that queued them
    pacer.then(lambda: done.append(True))
    qtbot.waitUntil(lambda: bool(done), timeout=30_000)
    assert not pacer
    # "a" was queued again with new data: it moved behind "b", shown once, newest data
    assert [layer.name for layer in viewer.layers] == ["b", "a", "c"]
    assert float(viewer.layers["a"].data[0, 0]) == 3.0
    qtbot.waitUntil(lambda: len(turns) == 3, timeout=30_000)
    assert turns[0] == ["b"] and turns[1] == ["b", "a"]  # one layer per turn
    # on an empty queue, then() runs at once
    pacer.then(lambda: done.append(False))
    assert done == [True, False]


def test_a_failing_step_does_not_stop_the_queue(make_napari_viewer, qtbot) -> None:
    from napari.layers import Layer

    from napari_xai._widgets._pace import LayerPacer

    viewer = make_napari_viewer()

    def show(ldt: tuple) -> None:
        if ldt[1]["name"] == "bad":
            raise ValueError("a layer napari refuses")
        viewer.add_layer(Layer.create(*ldt))

    pacer = LayerPacer(show)
    done: list[bool] = []
    for name in ("bad", "good"):
        pacer.put(_ldt(name, 1.0))
    pacer.then(lambda: done.append(True))
    with qtbot.captureExceptions() as raised:
        qtbot.waitUntil(lambda: bool(done), timeout=30_000)
    assert [str(e[1]) for e in raised] == ["a layer napari refuses"]  # reported, not swallowed
    assert [layer.name for layer in viewer.layers] == ["good"] and not pacer
