"""Score, Explain and Audit docked together, and every widget of the plugin docked at
once, fit a 1280 x 800 screen.

Each widget is a scroll area with wrapped text, so the window can shrink to
the screen, the canvas keeps most of the width, and the audit verdict can be
scrolled into view inside the window (not below the screen's edge).
"""

from __future__ import annotations

from pathlib import Path

import pytest

SCREEN_W, SCREEN_H = 1280, 800


#: Every dock widget of the plugin, as the Plugins menu names them.
EVERY_WIDGET = (
    "Score slide",
    "Explain",
    "Audit",
    "Annotate",
    "Evaluate against annotations",
    "Batch score slides",
    "Explore a cohort",
    "Display panel",
    "Tile inspector",
)


def test_every_widget_is_in_the_stack() -> None:
    """The full stack below is every widget the manifest declares."""
    from npe2 import PluginManifest

    from napari_xai import __file__ as package

    manifest = PluginManifest.from_file(str(Path(package).parent / "napari.yaml"))
    assert {w.display_name for w in manifest.contributions.widgets} == set(EVERY_WIDGET)


@pytest.mark.parametrize(
    "names", [("Score slide", "Explain", "Audit"), EVERY_WIDGET], ids=["three", "all-nine"]
)
def test_dock_stack_fits_1280_by_800(make_napari_viewer, qtbot, names) -> None:
    from qtpy.QtCore import QPoint, QRect
    from qtpy.QtWidgets import QScrollArea

    viewer = make_napari_viewer(show=True)
    window = viewer.window._qt_window
    docked = {}
    for name in names:
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
    # the verdict: the user drags the Audit dock taller (the docks below and above give
    # way: each keeps a scrollable strip), and the verdict, scrolled to, is wholly seen
    from qtpy.QtCore import Qt

    window.resizeDocks([docked["Audit"][0]], [300], Qt.Orientation.Vertical)
    qtbot.wait(200)
    assert window.width() <= SCREEN_W and window.height() <= SCREEN_H, window.size()
    assert all(dock.height() >= 40 for dock, _w in docked.values())  # none squeezed away
    scroll = audit.root_native_widget
    verdict = audit._verdict.native
    scroll.ensureWidgetVisible(verdict)
    qtbot.wait(100)
    assert verdict.isVisible() and verdict.width() <= scroll.viewport().width()  # wrapped
    view = scroll.viewport()
    seen = QRect(verdict.mapTo(view, QPoint(0, 0)), verdict.size())
    assert view.rect().contains(seen), (seen, view.rect())  # all of it, not a sliver
    assert verdict.height() >= verdict.heightForWidth(verdict.width())  # every line of it
    top_left = verdict.mapTo(window, QPoint(0, 0))
    assert window.rect().contains(QRect(top_left, verdict.size()))
