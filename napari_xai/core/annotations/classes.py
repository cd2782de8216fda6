"""Annotation classes (name + colour), with QuPath's default classes and colours.

QuPath stores a class as ``{"name": "Tumor", "color": [200, 0, 0]}`` in GeoJSON
(v0.4 and later) and as a packed signed ARGB integer ``"colorRGB"`` before that.
The defaults below are QuPath's ``StandardPathClasses`` names in the plugin's
colour-blind-safe class palette (:mod:`napari_xai.core.naming`); the colour is
written into each feature, so QuPath shows the same colours.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from napari_xai.core.naming import class_colour, rgb255

__all__ = [
    "DEFAULT_CLASSES",
    "UNCLASSIFIED",
    "class_names",
    "class_value",
    "AnnotationClass",
    "color_to_rgba",
    "fallback_color",
    "find_class",
    "pack_rgb",
    "rgba_to_color",
    "unpack_rgb",
]

RGB = tuple[int, int, int]


@dataclass(frozen=True)
class AnnotationClass:
    """One annotation class.

    Parameters
    ----------
    name : str
        Class name as QuPath writes it (case matters: ``"Tumor"``).
    color : tuple of int
        (red, green, blue), each 0-255.
    """

    name: str
    color: RGB

    def rgba(self, *, alpha: float = 1.0) -> tuple[float, float, float, float]:
        """Colour as napari wants it: floats in [0, 1] (red, green, blue, alpha)."""
        return color_to_rgba(self.color, alpha=alpha)

    def to_dict(self) -> dict[str, object]:
        """QuPath's GeoJSON ``classification`` object."""
        return {"name": self.name, "color": list(self.color)}


#: Name used in napari feature tables for objects without a classification.
UNCLASSIFIED = "Unclassified"

#: QuPath's standard classes (``PathClass.StandardPathClasses``), plus ``Artefact``
#: (not a QuPath default) for pen marks, folds and debris, in the plugin's
#: colour-blind-safe palette (:mod:`napari_xai.core.naming`), not QuPath's red
#: Tumor: a file that states its own colours keeps them.
DEFAULT_CLASSES: tuple[AnnotationClass, ...] = tuple(
    AnnotationClass(name, rgb255(class_colour(name)))
    for name in (
        "Tumor",
        "Stroma",
        "Necrosis",
        "Immune cells",
        "Other",
        "Region*",
        "Ignore*",
        "Positive",
        "Negative",
        "Artefact",
    )
)


def class_names() -> list[str]:
    """Return the default classes' names, in QuPath's order (a class mask's values 1, 2, …)."""
    return [c.name for c in DEFAULT_CLASSES]


def class_value(name: str) -> int | None:
    """Return a default class's value in a class mask (1, 2, … in QuPath's order), else None."""
    names = class_names()
    return names.index(name) + 1 if name in names else None


def find_class(
    name: str | None, *, classes: Iterable[AnnotationClass] = DEFAULT_CLASSES
) -> AnnotationClass | None:
    """Return the class called `name` (exact match, then case-insensitive), or None."""
    if name is None:
        return None
    classes = tuple(classes)
    for c in classes:
        if c.name == name:
            return c
    lowered = name.casefold()
    for c in classes:
        if c.name.casefold() == lowered:
            return c
    return None


def fallback_color(name: str | None) -> RGB:
    """Return a stable colour for a class that has none (same name, same colour, every run)."""
    if name is None:
        return (128, 128, 128)
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    # Keep colours away from black and white so they show on H&E.
    return (60 + digest[0] % 180, 60 + digest[1] % 180, 60 + digest[2] % 180)


def pack_rgb(color: RGB) -> int:
    """Pack (r, g, b) as QuPath's legacy signed 32-bit ARGB integer (alpha 255)."""
    r, g, b = (int(v) & 0xFF for v in color)
    value = (0xFF << 24) | (r << 16) | (g << 8) | b
    return value - (1 << 32) if value >= (1 << 31) else value


def unpack_rgb(value: int) -> RGB:
    """Unpack QuPath's legacy ``colorRGB`` integer (signed or unsigned) to (r, g, b)."""
    value = int(value) & 0xFFFFFFFF
    return ((value >> 16) & 0xFF, (value >> 8) & 0xFF, value & 0xFF)


def color_to_rgba(color: RGB, *, alpha: float = 1.0) -> tuple[float, float, float, float]:
    """(r, g, b) 0-255 to napari's (r, g, b, a) floats in [0, 1]."""
    r, g, b = color
    return (r / 255.0, g / 255.0, b / 255.0, float(alpha))


def rgba_to_color(rgba: Iterable[float]) -> RGB:
    """Convert napari's float (r, g, b[, a]) in [0, 1] back to (r, g, b) 0-255 (rounded)."""
    values = [float(v) for v in rgba][:3]
    r, g, b = (int(round(min(max(v, 0.0), 1.0) * 255)) for v in values)
    return (r, g, b)


def class_color_map(
    names: Iterable[str | None], *, classes: Iterable[AnnotationClass] = DEFAULT_CLASSES
) -> Mapping[str | None, RGB]:
    """Colour for each name: the known class colour or a stable fallback."""
    classes = tuple(classes)
    out: dict[str | None, RGB] = {}
    for n in names:
        if n in out:
            continue
        c = find_class(n, classes=classes)
        out[n] = c.color if c is not None else fallback_color(n)
    return out
