"""The colormaps the display panel offers for a map, and what each choice sets."""

from __future__ import annotations

from typing import Any

from napari_xai._widgets._style import layer_info
from napari_xai.core.naming import (
    ATTRIBUTION_COLORMAP,
    PROBABILITY_COLORMAP,
    class_colour,
    hex_colour,
    probability_colormap,
)

#: Colormap choice meaning "transparent to the class's palette colour".
CLASS_COLOUR = "class colour"
#: Colormaps offered for a map (the palette's first).
COLORMAPS = (PROBABILITY_COLORMAP, CLASS_COLOUR, ATTRIBUTION_COLORMAP, "viridis", "cividis",
             "magma", "gray")  # fmt: skip


def _class_rgb(layer: Any) -> tuple[float, float, float]:
    info = layer_info(layer)
    if info.get("class_colour"):
        r, g, b = (float(v) for v in info["class_colour"][:3])
        return (r, g, b)
    return class_colour(str(info.get("class_name") or ""))


def colormap_for(layer: Any, choice: str) -> Any:
    """Return what ``layer.colormap`` is set to for a choice of :data:`COLORMAPS`."""
    if choice == PROBABILITY_COLORMAP:
        return probability_colormap()
    if choice == CLASS_COLOUR:
        rgb = _class_rgb(layer)
        return {
            "colors": [[*rgb, 0.0], [*rgb, 1.0]],
            "name": f"napari-xai class {hex_colour(rgb)}",
        }
    return choice


def colormap_choice(layer: Any) -> str:
    """Return the panel's name for the layer's current colormap."""
    name = str(layer.colormap.name)
    if name == PROBABILITY_COLORMAP:
        return PROBABILITY_COLORMAP
    if name.startswith("napari-xai class"):
        return CLASS_COLOUR
    return name if name in COLORMAPS else COLORMAPS[2]
