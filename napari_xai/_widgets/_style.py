"""How the plugin's layers look once napari has made them: colour bars, outlines, legends.

LayerData tuples cannot switch on a layer's colour bar or draw a Labels layer as
outlines (neither is a layer keyword), so :func:`watch_viewer` styles every
napari-xai layer as it is inserted: the result reader, the sample and the
display panel call it, and the widgets style the layers they add themselves.

* Scalar maps (class probability, saliency, activations, channels) show the
  canvas colour bar. napari's bar has ticks but no title, so the canvas's text
  overlay, tiled above the bars in the top-right corner, names each shown map's
  class or method and its scale (:func:`canvas_legend`, one title per bar, in
  the bars' order); the display panel's legend says the same.
* Masks (tissue, artefacts, ground truth: ``metadata["display"] == "outline"``)
  are drawn as outlines (``contour``) so the tissue under them stays visible.
"""

from __future__ import annotations

import weakref
from typing import Any

__all__ = [
    "OUTLINE_WIDTH",
    "canvas_legend",
    "layer_info",
    "layer_role",
    "legend_title",
    "style_layer",
    "watch_current_viewer",
    "watch_viewer",
]

#: Outline width (mask pixels) of masks drawn as outlines.
OUTLINE_WIDTH = 1

_WATCHED: weakref.WeakSet[Any] = weakref.WeakSet()

#: metadata kind -> role shown in legends
_ROLES = {
    "probability": "probability",
    "saliency": "saliency",
    "activations": "activation",
    "channels": "activation",
}


def layer_role(layer: Any) -> str | None:
    """Return ``"probability"``, ``"saliency"``, ``"activation"`` (napari-xai maps) or None."""
    meta = getattr(layer, "metadata", None) or {}
    tag = meta.get("napari_xai")
    kind = tag.get("kind") if isinstance(tag, dict) else tag
    return _ROLES.get(str(kind)) if kind is not None else None


def layer_info(layer: Any) -> dict[str, Any]:
    """Return the layer's metadata with its ``napari_xai`` entry (a dict) merged in."""
    meta = getattr(layer, "metadata", None) or {}
    tag = meta.get("napari_xai")
    return {**meta, **tag} if isinstance(tag, dict) else dict(meta)


def legend_title(layer: Any) -> str:
    """Say what a scalar map's values are, with their units (the legend's title).

    ``"probability of tumour (0-1)"`` for a class heatmap; ``"grad_cam attribution
    for tumour (-0.12 to 3.4)"`` for saliency (its own scale: the contrast limits);
    ``"activation layer4 channel 3 (0 to 2.1)"`` for activations.
    """
    role = layer_role(layer)
    info = layer_info(layer)
    cls = info.get("class_name")
    if role == "probability":
        return f"probability of {cls} (0-1)"
    lo, hi = (float(v) for v in layer.contrast_limits)
    scale = f"({lo:.3g} to {hi:.3g})"
    method = info.get("method") or ""
    if role == "saliency":
        return f"{method} attribution for {cls} {scale}".replace("  ", " ").strip()
    if role == "activation":
        what = f"{method} {cls}" if method or cls else str(layer.name)
        return f"activation {what.strip()} {scale}"
    return str(layer.name)


def style_layer(layer: Any) -> Any:
    """Give a napari-xai layer its colour bar (scalar maps) or outline (masks); return it."""
    from napari.layers import Labels

    from napari_xai._widgets._layout import show_colorbar

    if layer_role(layer) is not None:
        show_colorbar(layer)  # its ticks are the contrast limits; units: the panel's legend
    elif isinstance(layer, Labels) and (layer.metadata or {}).get("display") == "outline":
        layer.contour = OUTLINE_WIDTH
    return layer


def canvas_legend(viewer: Any) -> str:
    """Titles of the colour bars on the canvas (shown maps), in the bars' order."""
    shown = [
        layer
        for layer in viewer.layers
        if layer_role(layer) is not None and layer.visible and layer.colorbar.visible
    ]
    return "  |  ".join(legend_title(layer) for layer in shown)


def _text_overlay(viewer: Any) -> Any:
    canvas = getattr(viewer, "canvas", None)
    overlays = getattr(canvas, "overlays", None)
    return getattr(overlays, "text", None) or viewer.text_overlay


def show_canvas_legend(viewer: Any) -> None:
    """Write :func:`canvas_legend` in the canvas's text overlay, top right, above the bars."""
    text = canvas_legend(viewer)
    overlay = _text_overlay(viewer)
    if not text and overlay.text == "":
        return
    overlay.position = "top_right"
    overlay.text = text
    overlay.visible = bool(text)


def _follow(viewer: Any, layer: Any) -> None:
    """Rewrite the canvas legend when a map is shown, hidden or rescaled."""
    if layer_role(layer) is None:
        return
    ref = weakref.ref(viewer)

    def update(_event: Any = None) -> None:
        alive = ref()
        if alive is not None:
            show_canvas_legend(alive)

    for name in ("visible", "contrast_limits", "name"):
        getattr(layer.events, name).connect(update)
    layer.colorbar.events.visible.connect(update)


def watch_viewer(viewer: Any) -> None:
    """Style the viewer's napari-xai layers now and every one inserted later (once per viewer)."""
    for layer in list(viewer.layers):
        style_layer(layer)
    if viewer in _WATCHED:
        show_canvas_legend(viewer)
        return
    _WATCHED.add(viewer)
    for layer in list(viewer.layers):
        _follow(viewer, layer)

    def inserted(event: Any) -> None:
        style_layer(event.value)
        _follow(viewer, event.value)
        show_canvas_legend(viewer)

    viewer.layers.events.inserted.connect(inserted)
    viewer.layers.events.removed.connect(lambda _event: show_canvas_legend(viewer))
    show_canvas_legend(viewer)


def watch_current_viewer() -> None:
    """:func:`watch_viewer` on napari's current viewer, if there is one (never raises)."""
    try:
        from napari import current_viewer

        viewer = current_viewer()
        if viewer is not None:
            watch_viewer(viewer)
    except Exception:  # styling is cosmetic: a reader must not fail for it
        return
