"""A dropdown of region classes that follows the viewer's Shapes layers.

The default classes (QuPath's, :func:`napari_xai.core.annotations.classes.class_names`)
come first, in QuPath's order; every other class a Shapes layer holds
(``features["class"]``: a GeoJSON opened with its own classes, a shape drawn
with a new class) follows, in the order first seen. The choices are re-read
when a layer comes or goes and when a Shapes layer's shapes or features change
(a drawn shape, a class set); the chosen class is kept while it is still one of
them, else the first default is chosen.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from napari_xai.core.annotations.classes import UNCLASSIFIED, class_names

if TYPE_CHECKING:
    import napari.viewer

#: Shapes ``data`` event actions that end an edit (``changing`` fires on every mouse move).
_DONE = frozenset({"added", "removed", "changed"})


def region_classes(viewer: napari.viewer.Viewer) -> list[str]:
    """Return the default class names, then the other classes of the viewer's Shapes layers.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        Its Shapes layers with a ``class`` feature are read.

    Returns
    -------
    list of str
        Defaults in QuPath's order, then each other class once, in layer order
        (unclassified shapes add nothing).
    """
    from napari.layers import Shapes

    names = class_names()
    seen = set(names) | {UNCLASSIFIED}
    for layer in viewer.layers:
        if not isinstance(layer, Shapes) or "class" not in layer.features:
            continue
        for value in layer.features["class"].dropna().unique():
            name = str(value)
            if name and name not in seen:
                seen.add(name)
                names.append(name)
    return names


def class_picker(viewer: napari.viewer.Viewer, label: str, *, value: str = "Tumor") -> Any:
    """Make a dropdown of :func:`region_classes` that follows the viewer's Shapes layers.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        Whose Shapes layers give the classes.
    label : str
        The dropdown's label.
    value : str
        The class chosen at first (a default class).

    Returns
    -------
    magicgui.widgets.ComboBox
    """
    from magicgui.widgets import ComboBox

    combo = ComboBox(label=label, choices=lambda _widget: region_classes(viewer), value=value)

    def edited(event: Any = None) -> None:
        action = getattr(event, "action", None)
        if action is None or str(getattr(action, "value", action)) in _DONE:
            combo.reset_choices()

    def layers_changed(_event: Any = None) -> None:
        from napari.layers import Shapes

        for layer in viewer.layers:
            if isinstance(layer, Shapes):  # connecting twice is a no-op in napari's events
                layer.events.data.connect(edited)
                layer.events.features.connect(edited)
        combo.reset_choices()

    viewer.layers.events.inserted.connect(layers_changed)
    viewer.layers.events.removed.connect(layers_changed)
    layers_changed()
    return combo
