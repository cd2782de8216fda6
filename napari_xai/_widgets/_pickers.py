"""Slide and model pickers shared by the widgets (cheap imports only)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import napari.viewer

DEMO = "demo model (bundled)"
FROM_FILE = "model file…"
#: A model folder: a WSInfer model (``config.json`` + weights) or a card folder.
FROM_FOLDER = "model folder (WSInfer)…"
#: The model picker's choices, in menu order.
MODEL_SOURCES = (DEMO, FROM_FILE, FROM_FOLDER)
MODEL_FILE_FILTER = "*.pt *.pth *.ts *.json"


def slide_layer_choices(viewer: napari.viewer.Viewer) -> list[tuple[str, Any]]:
    """Image layers that come from a slide file (have ``metadata['path']``)."""
    from napari.layers import Image

    return [
        (layer.name, layer)
        for layer in viewer.layers
        if isinstance(layer, Image) and layer.metadata.get("path")
    ]


def show_model_file(source: str, model_file: Any) -> None:
    """Show the path picker for a file or a folder source (hidden for the demo)."""
    model_file.visible = source in (FROM_FILE, FROM_FOLDER)
    model_file.mode = "d" if source == FROM_FOLDER else "r"


def model_spec(source: str, model_file: str | Path) -> str | Path:
    """``"demo"`` or the model path; a card / WSInfer ``config.json`` means its folder."""
    if source == DEMO:
        return "demo"
    path = Path(model_file)
    if source == FROM_FOLDER:
        return path
    return path.parent if path.name.endswith(".json") else path
