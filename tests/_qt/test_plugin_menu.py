"""Every widget of the manifest docks from napari's Plugins menu, as a user opens it."""

from __future__ import annotations

import pytest


def _widget_names() -> list[str]:
    from npe2 import PluginManifest

    manifest = PluginManifest.from_distribution("napari-xai")
    return [w.display_name for w in manifest.contributions.widgets or []]


@pytest.mark.parametrize("name", _widget_names())
def test_widget_docks_from_the_plugins_menu(make_napari_viewer, name: str) -> None:
    viewer = make_napari_viewer()
    dock, widget = viewer.window.add_plugin_dock_widget("napari-xai", name)
    assert dock is not None and widget is not None
    assert name in dock.name
