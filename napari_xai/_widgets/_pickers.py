"""Slide and model pickers shared by the widgets (cheap imports only)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import napari.viewer

DEMO = "demo model (bundled)"
FROM_FILE = "model file…"
MODEL_FILE_FILTER = "*.pt *.pth *.ts *.json"


def slide_layer_choices(viewer: napari.viewer.Viewer) -> list[tuple[str, Any]]:
    """Image layers that come from a slide file (have ``metadata['path']``)."""
    from napari.layers import Image

    return [
        (layer.name, layer)
        for layer in viewer.layers
        if isinstance(layer, Image) and layer.metadata.get("path")
    ]


def model_spec(source: str, model_file: str | Path) -> str | Path:
    """``"demo"`` or the model path; a card / WSInfer ``config.json`` means its folder."""
    if source == DEMO:
        return "demo"
    path = Path(model_file)
    return path.parent if path.name.endswith(".json") else path
