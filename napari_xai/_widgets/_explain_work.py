"""The Explain widget's worker bodies (imports of the core happen in the worker) and view."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from napari_xai.core.naming import METHOD_NAMES


def run_in_worker(where: str, source: Any, spec: Any, out: Path, /, *args: Any, **kw: Any) -> Any:
    """Worker body: load the model (cached), then run ``where`` into the slide's scratch store.

    :func:`~napari_xai.core.pipeline.scratch_store`, beside the result folder: the
    folder's own files are written only by the pipeline.
    """
    import importlib

    from napari_xai.core.models.resolve import resolve_model
    from napari_xai.core.pipeline import scratch_store

    module, name = where.split(":")
    path = source if isinstance(source, (str, Path)) else source.path
    store = scratch_store(out, path)
    call = getattr(importlib.import_module(module), name)
    return (yield from call(source, resolve_model(spec), *args, store=store, **kw))


def explain_into_folder(
    source: Any, spec: Any, out: Path, /, *, explain: Any, grid: Any, run: Any
) -> Any:
    """Worker body: whole-slide saliency into the slide's result folder (:func:`run_slide`).

    The folder's score is kept (its grid: the map covers the scored tiles); a
    slide not scored yet is scored first. Yields the map's
    :class:`~napari_xai.core.attribution.whole_slide.ExplainProgress` while it
    fills (the resumable cache beside the folder) and the pipeline's other steps.
    Returns ``(result, layer)``: the
    :class:`~napari_xai.core.attribution.whole_slide.ExplainResult` on the folder's
    ``heatmaps.zarr`` and the result reader's layer of that map (what a drop of the
    folder on napari shows).
    """
    import dataclasses

    from napari_xai.core.layers.results import saliency_layers
    from napari_xai.core.models.resolve import resolve_model
    from napari_xai.core.options import SlideOptions
    from napari_xai.core.pipeline import iter_stage, saliency_in_folder
    from napari_xai.core.results import HEATMAPS_NAME, load_result

    asked = SlideOptions(grid=grid, run=run, explain=explain)
    folder, made = yield from iter_stage(source, resolve_model(spec), out, asked, stage="explain")
    if made is not None:
        result = dataclasses.replace(made, store=folder / HEATMAPS_NAME)
    else:  # the folder held this map, complete: kept
        result = saliency_in_folder(folder, explain)
    (layer,) = [
        ldt
        for ldt in saliency_layers(load_result(folder), folder.name)
        if ldt[1]["metadata"]["key"] == result.key
    ]
    layer[1]["visible"] = True
    return result, layer


def describe_for_explain(spec: Any) -> tuple[Any, tuple[str, ...], tuple[str, ...]]:
    """Worker body: the model, the methods it supports and its hookable layers."""
    from napari_xai.core.activations import list_layers
    from napari_xai.core.attribution import supported_methods
    from napari_xai.core.models.resolve import resolve_model

    model = resolve_model(spec)
    methods = supported_methods(model)
    try:
        layers = tuple(list_layers(model))
    except Exception:  # noqa: BLE001 - a model without hookable layers: none offered
        layers = ()
    return model, tuple(m for m in METHOD_NAMES if m in methods), layers


def channels_in_worker(source: Any, spec: Any, centre_rc: Any, **kw: Any) -> Any:
    """Worker body: load the model (cached) and build the channel grid layer."""
    from napari_xai.core.activations import tile_channels
    from napari_xai.core.layers.activations import channels_layer
    from napari_xai.core.models.resolve import resolve_model

    return channels_layer(tile_channels(source, resolve_model(spec), tuple(centre_rc), **kw))


def canvas_rect(viewer: Any, camera: Any, layer: Any) -> tuple[float, float, float, float]:
    """Level-0 (row0, col0, row1, col1) that the canvas shows, in ``layer``'s pixels."""
    import numpy as np

    centre = np.asarray(camera.center[-2:], float)
    canvas = getattr(viewer, "canvas", None)  # napari >= 0.9: viewer.canvas.size
    size: Any = getattr(canvas, "size", None) or getattr(viewer, "_canvas_size", (1024, 1024))
    half = np.asarray(size[-2:], float) / float(camera.zoom) / 2
    lo = layer.world_to_data(list(centre - half))[-2:]
    hi = layer.world_to_data(list(centre + half))[-2:]
    return (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))
