"""Score, Explain and Audit docked together fit a 1280 x 800 screen.

Each widget is a scroll area with wrapped text, so the window can shrink to
the screen, the canvas keeps most of the width, and the audit verdict can be
scrolled into view inside the window (not below the screen's edge).
"""

from __future__ import annotations

SCREEN_W, SCREEN_H = 1280, 800


def test_dock_stack_fits_1280_by_800(make_napari_viewer, qtbot) -> None:
    from qtpy.QtCore import QPoint, QRect
    from qtpy.QtWidgets import QScrollArea

    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    docked = {}
    for name in ("Score slide", "Explain", "Audit"):
        dock, widget = viewer.window.add_plugin_dock_widget("napari-xai", name)
        docked[name] = (dock, widget)
    audit = docked["Audit"][1]
    # a long verdict, as an audit writes it; it must wrap, not widen the dock
    audit._verdict.value = (
        "Verdict: the model attends to artefacts (pen ink, marker) on 38 of 256 explained "
        "tiles; attention outside tissue 12.5 %; saliency passes the randomisation check. "
        "Review the tiles below before trusting slide-level scores."
    )
    window.showNormal()
    window.resize(SCREEN_W, SCREEN_H)
    qtbot.wait(200)
    assert window.width() <= SCREEN_W and window.height() <= SCREEN_H, window.size()
    assert window.minimumSizeHint().height() <= SCREEN_H
    for name, (_dock, widget) in docked.items():
        assert isinstance(widget.root_native_widget, QScrollArea), name
    canvas = viewer.window._qt_viewer.canvas.native
    assert canvas.width() >= SCREEN_W // 2 and canvas.height() >= SCREEN_H // 3
    # the verdict: scrolled to inside its panel, it lies within the window
    scroll = audit.root_native_widget
    verdict = audit._verdict.native
    scroll.ensureWidgetVisible(verdict)
    qtbot.wait(100)
    assert verdict.isVisible() and not verdict.visibleRegion().isEmpty()
    top_left = verdict.mapTo(window, QPoint(0, 0))
    rect = QRect(top_left, verdict.size())
    assert window.rect().contains(rect), (rect, window.rect())
    assert verdict.width() <= scroll.viewport().width()  # wrapped, not clipped
