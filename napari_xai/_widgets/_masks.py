"""The "Show tissue / artefact masks" button of the Score and Audit widgets (one place).

The masks are :func:`napari_xai.core.masks.slide_masks` (the QC call), computed
in the widget's worker and added as Labels layers drawn as outlines, so the
tissue under them stays visible; nothing is shown until the button is pressed.

:func:`warm_masks` makes a picked slide's scoring masks in the background (the
masks are most of the wait before a run's first tiles: seconds on a real slide).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from magicgui.widgets import PushButton

__all__ = ["legend_text", "masks_button", "masks_in_worker", "warm_masks"]


def masks_in_worker(path: str, mpp: float | None = None, folder: str | None = None) -> Any:
    """Worker body: the slide's tissue and artefact masks as outlined Labels layers.

    The masks stored in ``folder`` (a result folder: scoring's, stroke pass
    included) when they were made from this slide file, else the thumbnail
    pass (seconds; the stroke pass is what scoring adds). The tissue layer's
    metadata says which (``masks_source``).
    """
    from napari_xai.core.layers.masks import mask_layers
    from napari_xai.core.masks import masks_key, read_masks, slide_masks
    from napari_xai.core.naming import slide_stem
    from napari_xai.core.wsi import open_slide

    with open_slide(path, mpp=mpp) as slide:
        stored = None
        if folder:
            key = masks_key(slide, max_size=0, strokes=True)
            stored = read_masks(folder, key=key, any_size=True)
        masks = stored if stored is not None else slide_masks(slide)
    yield from ()
    layers = mask_layers(masks, name_prefix=slide_stem(path))
    source = f"{folder} (stroke pass included)" if stored is not None else "thumbnail pass"
    layers[0][1]["metadata"]["masks_source"] = source
    return layers


#: Slides whose masks a worker is making now (touched on the GUI thread only).
_WARMING: set[str] = set()


def _warm_in_worker(path: str) -> None:
    from napari_xai.core.pipeline import warm_masks as make  # imported in the worker

    make(path)


def warm_masks(path: str) -> None:
    """Make ``path``'s scoring masks in a background worker.

    :func:`napari_xai.core.pipeline.warm_masks` keeps them in the process, so the
    run that follows reuses them and one started meanwhile waits for them; a
    slide already made costs a header read. Failures are left to the run, which
    reports them.
    """
    from napari.qt.threading import thread_worker

    if path in _WARMING:  # one worker per slide: napari's thread pool has a thread per core
        return
    _WARMING.add(path)
    worker = thread_worker(_warm_in_worker, ignore_errors=True)(path)
    worker.finished.connect(lambda: _WARMING.discard(path))
    worker.start()


def legend_text(layers: list[Any]) -> str:
    """Say what the mask layers show: tissue fraction, artefact classes, where they come from."""
    from napari_xai.core.masks import ARTEFACT_LABELS, ARTEFACT_NAMES

    meta = layers[0][1]["metadata"]
    classes = "; ".join(f"{ARTEFACT_NAMES[k]} ({v})" for k, v in ARTEFACT_LABELS.items())
    return (
        f"masks: tissue {meta['tissue_fraction']:.1%} (outline); artefact classes {classes} "
        f"[{meta.get('masks_source', 'thumbnail pass')}]"
    )


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

        for ldt in layers:
            style_layer(widget.upsert(ldt))
        widget._status.value = legend_text(layers)

    def on_click(_value: Any = None) -> None:
        layer = widget.picked_slide()
        if layer is None or widget.busy():
            return
        path = str(layer.metadata["path"])
        widget.launch(
            masks_in_worker,
            path,
            (float(mpp.value) or None) if mpp is not None else None,
            layer.metadata.get("result_folder"),
            status=f"tissue and artefact masks of {Path(path).name}…",
            on_returned=on_masks,
        )

    button.changed.connect(on_click)
    return button
