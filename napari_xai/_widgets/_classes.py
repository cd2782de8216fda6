"""Show or hide a class everywhere it is drawn: tiles, predicted regions, annotations.

The display panel's per-class toggles call :func:`show_classes`. A Points layer
of tiles (``features["pred_class"]``) hides its points through ``shown``; napari's
Shapes layers have no per-shape visibility, so a region or annotation of a
hidden class (``features["class"]``, compared without case: the model's
``tumour`` is QuPath's ``Tumour``) gets transparent face and edge colours, and
gets its own colours back when shown again.
"""

from __future__ import annotations

import weakref
from collections.abc import Collection
from typing import Any

#: Shapes layer -> (face, edge) colours of its shapes before any was hidden here.
_COLOURS: weakref.WeakKeyDictionary[Any, tuple[Any, Any]] = weakref.WeakKeyDictionary()


def _hidden_mask(values: Any, hidden: Collection[str]) -> Any:
    import numpy as np

    names = {str(h).casefold() for h in hidden}
    return np.array([str(v).casefold() in names for v in values], dtype=bool)


def show_classes(viewer: Any, hidden: Collection[str], *, tiles: str | None = None) -> None:
    """Hide the classes in ``hidden`` (and show every other) in the viewer's layers.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        Its Shapes layers with a ``class`` feature (predicted regions,
        annotations) and the tiles layer are changed.
    hidden : collection of str
        Class names to hide.
    tiles : str, optional
        Name of the tiles (Points) layer whose ``pred_class`` points follow.
    """
    from napari.layers import Shapes

    if tiles is not None and tiles in viewer.layers:
        layer = viewer.layers[tiles]
        feats = getattr(layer, "features", None)
        if feats is not None and "pred_class" in feats and hasattr(layer, "shown"):
            layer.shown = ~_hidden_mask(feats["pred_class"], hidden)
    for layer in viewer.layers:
        if isinstance(layer, Shapes) and "class" in layer.features and len(layer.data):
            _show_shapes(layer, _hidden_mask(layer.features["class"], hidden))


def _show_shapes(layer: Any, hide: Any) -> None:
    """Make the shapes where ``hide`` is true transparent; restore the others' colours."""
    saved = _COLOURS.get(layer)
    if saved is None or len(saved[0]) != len(hide):
        if not hide.any():
            return
        saved = (layer.face_color.copy(), layer.edge_color.copy())
        _COLOURS[layer] = saved
    face, edge = saved[0].copy(), saved[1].copy()
    face[hide, 3] = 0.0
    edge[hide, 3] = 0.0
    layer.face_color = face
    layer.edge_color = edge
    if not hide.any():
        del _COLOURS[layer]
