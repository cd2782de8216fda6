"""Layers ▸ Visualize ▸ "Show tissue / artefact masks": masks for any opened slide.

The napari.yaml command ``napari-xai.show_masks`` (menu ``napari/layers/visualize``)
adds the selected slide's tissue and artefact masks as outlined Labels layers
(:func:`napari_xai._widgets._masks.masks_in_worker`, in a worker: the GUI never
waits on the masks) and says the artefact-class legend in a notification. A slide
opened from a result folder shows the masks scoring stored there (stroke pass
included); any other slide, its thumbnail pass. Nothing is shown until asked.
"""

from __future__ import annotations

from typing import Any

import napari

__all__ = ["show_masks", "slide_layer"]


def slide_layer(viewer: napari.viewer.Viewer) -> Any:
    """Return the selected slide layer (napari-xai reader), else the top one, else None."""
    active = viewer.layers.selection.active
    if active is not None and "path" in getattr(active, "metadata", {}):
        if "slide" in active.metadata:
            return active
    for layer in reversed(list(viewer.layers)):
        meta = getattr(layer, "metadata", {})
        if isinstance(layer, napari.layers.Image) and "slide" in meta and "path" in meta:
            return layer
    return None


def show_masks(viewer: napari.viewer.Viewer) -> Any:
    """Add the selected slide's tissue and artefact masks, drawn as outlines.

    Returns
    -------
    napari.qt.threading.WorkerBase or None
        The worker computing them (None when no slide is open: a notification says so).
    """
    from napari.qt.threading import thread_worker
    from napari.utils.notifications import show_error, show_info, show_warning

    from napari_xai._widgets._masks import legend_text, masks_in_worker

    layer = slide_layer(viewer)
    if layer is None:
        show_warning("napari-xai: open a slide first (File ▸ Open, napari-xai reader)")
        return None
    meta = layer.metadata

    def on_returned(layers: list[Any]) -> None:
        from napari_xai._widgets._style import style_layer

        for data, kwargs, kind in layers:
            name = kwargs["name"]
            if name in viewer.layers:
                viewer.layers.remove(name)  # re-runs replace the layer
            added = viewer._add_layer_from_data(data, kwargs, kind)
            for new in added:
                style_layer(new)
        show_info(f"napari-xai {legend_text(layers)}")

    def on_errored(exc: BaseException) -> None:
        show_error(f"napari-xai: masks of {meta['path']}: {exc}")

    worker = thread_worker(masks_in_worker, ignore_errors=True)(
        str(meta["path"]), meta.get("mpp"), meta.get("result_folder")
    )
    worker.returned.connect(on_returned)
    worker.errored.connect(on_errored)
    worker.start()
    return worker
