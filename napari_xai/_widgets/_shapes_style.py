"""Class and colour of shapes in a napari Shapes layer (what the Annotate widget sets)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

RGB = tuple[int, int, int]


def _hex(rgb: RGB) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb)


def _with_category(features: Any, name: str) -> None:
    """Make ``name`` one of the categories of a categorical ``class`` column."""
    column = features["class"]
    if hasattr(column, "cat") and name not in column.cat.categories:
        features["class"] = column.cat.add_categories([name])


def style_new_shapes(layer: Any, name: str, rgb: RGB) -> None:
    """Make ``name`` (colour ``rgb``) the class and colour of the shapes drawn next."""
    from napari_xai.core.layers.annotations import FACE_ALPHA

    if "class" in layer.features.columns:
        _with_category(layer.features, name)
        current = layer.feature_defaults
        old = current.iloc[0].to_dict() if len(current) else {}
        layer.feature_defaults = {**old, "class": name, "color": _hex(rgb)}
    r, g, b = (c / 255 for c in rgb)
    layer.current_face_color = (r, g, b, FACE_ALPHA)
    layer.current_edge_color = (r, g, b, 1.0)


def apply_class(layer: Any, indices: Sequence[int], name: str, rgb: RGB) -> int:
    """Give the shapes at ``indices`` the class ``name`` and its colour; return how many."""
    from napari_xai.core.layers.annotations import FACE_ALPHA

    idx = list(indices)
    if "class" in layer.features.columns:
        _with_category(layer.features, name)
        layer.features.loc[idx, "class"] = name
        layer.features.loc[idx, "color"] = _hex(rgb)
    faces, edges = layer.face_color.copy(), layer.edge_color.copy()
    faces[idx] = [c / 255 for c in rgb] + [FACE_ALPHA]
    edges[idx] = [c / 255 for c in rgb] + [1.0]
    layer.face_color = faces
    layer.edge_color = edges
    return len(idx)


def class_rgb(name: str) -> RGB:
    """Colour of an annotation class: its palette colour, else a stable fallback."""
    from napari_xai.core.annotations.classes import fallback_color, find_class

    cls = find_class(name)
    return cls.color if cls is not None else fallback_color(name)


def show_swatch(label: Any, rgb: RGB) -> None:
    """Show ``rgb`` in a magicgui Label: its hex code on that colour."""
    label.value = _hex(rgb)
    label.native.setStyleSheet(f"background-color: {_hex(rgb)}; color: white;")
