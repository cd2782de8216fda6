"""The "Show tissue / artefact masks" button of the Score and Audit widgets (one place).

The masks are :func:`napari_xai.core.masks.slide_masks` (the QC call), computed
in the widget's worker and added as Labels layers drawn as outlines, so the
tissue under them stays visible; nothing is shown until the button is pressed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from magicgui.widgets import PushButton

__all__ = ["masks_button", "masks_in_worker"]


def masks_in_worker(path: str, mpp: float | None = None) -> Any:
    """Worker body: the slide's tissue and artefact masks as outlined Labels layers."""
    from napari_xai.core.layers.masks import mask_layers
    from napari_xai.core.masks import slide_masks
    from napari_xai.core.naming import slide_stem
    from napari_xai.core.wsi import open_slide

    with open_slide(path, mpp=mpp) as slide:
        masks = slide_masks(slide)
    yield from ()
    return mask_layers(masks, name_prefix=slide_stem(path))


def masks_button(widget: Any, *, mpp: Any = None) -> PushButton:
    """Make a button that adds the picked slide's masks to ``widget``'s viewer.

    Parameters
    ----------
    widget : napari_xai._widgets._base.RunWidget
        Gives the picked slide, the worker (``launch``) and ``upsert``.
    mpp : magicgui widget, optional
        Its value (0 = from the file) is the slide's µm/px.
    """
    button = PushButton(
        text="Show tissue / artefact masks",
        tooltip="Outline the tissue and the pen, marker, ruler and label masks (QC)",
    )

    def on_masks(layers: list[Any]) -> None:
        from napari_xai._widgets._style import style_layer
        from napari_xai.core.masks import ARTEFACT_NAMES

        for ldt in layers:
            style_layer(widget.upsert(ldt))
        tissue = layers[0][1]["metadata"]["tissue_fraction"]
        classes = ", ".join(ARTEFACT_NAMES.values())
        widget._status.value = f"masks: tissue {tissue:.1%}; artefact classes: {classes}"

    def on_click(_value: Any = None) -> None:
        layer = widget.picked_slide()
        if layer is None or widget.busy():
            return
        path = str(layer.metadata["path"])
        widget.launch(
            masks_in_worker,
            path,
            (float(mpp.value) or None) if mpp is not None else None,
            status=f"tissue and artefact masks of {Path(path).name}…",
            on_returned=on_masks,
        )

    button.changed.connect(on_click)
    return button
