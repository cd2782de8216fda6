"""Layers of a result folder: slide, heatmaps, saliency, predicted regions, tiles.

What the result reader (``napari_xai._results_reader``) and the Score widget show,
all in level-0 pixel coordinates, each map placed by the transform stored with it
(written by the scorer from the grid).
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from napari_xai.core.layers.coords import LayerDataTuple
from napari_xai.core.layers.ood import ood_layer
from napari_xai.core.layers.scores import heatmap_layers, probability_data, tiles_layer
from napari_xai.core.layers.slide import slide_layer_data
from napari_xai.core.naming import ATTRIBUTION_COLORMAP, saliency_layer_name
from napari_xai.core.results import map_limits

if TYPE_CHECKING:
    from napari_xai.core.results import Result

__all__ = [
    "annotation_layers",
    "probability_layers",
    "result_layers",
    "saliency_layers",
]

#: Maps larger than this (pixels per side) are shown as multiscale pyramids.
MULTISCALE_ABOVE = 4096


def _python_warning(message: str) -> None:
    warnings.warn(message, stacklevel=3)


def _map_data(result: Result, key: str) -> tuple[Any, bool]:
    """Lazy levels of a stored map: one array when small, a pyramid when large."""
    levels = result.heatmap_levels(key)
    if len(levels) > 1 and max(levels[0].shape) > MULTISCALE_ABOVE:
        return levels, True
    return levels[0], False


def _coarsest(result: Result, key: str) -> Any:
    """Return the coarsest level of a stored map (lazy)."""
    return result.heatmap_levels(key)[-1]


def probability_layers(result: Result, name: str) -> list[LayerDataTuple]:
    """One heatmap per class (the positive class visible), placed as stored."""
    maps = [h for h in result.heatmaps if h.kind == "probabilities"]
    if not maps:
        return []
    names = [str(h.attrs.get("class_name", h.name)) for h in maps]
    stride0 = float(result.tiles.attrs.get("stride0", maps[0].scales[0][0]))
    # lazy (fresh dask names per read): napari reads the store's chunks it draws
    levels = []
    for info in maps:
        data, multiscale = _map_data(result, info.key)
        levels.append(data if multiscale else [data])
    layers = heatmap_layers(
        [lv[0] for lv in levels],
        names,
        slide_name=name,
        stride0=stride0,
        tile_size0=float(result.tiles.attrs.get("tile_size0", stride0)),
        model_classes=list(result.class_names) or names,
    )
    out = []
    for (data, kwargs, kind), info, lv in zip(layers, maps, levels, strict=True):
        kwargs["metadata"].update(result_folder=str(result.folder), key=info.key)
        # the stored transform is the truth (written by the scorer from the grid)
        kwargs.update(scale=info.scales[0], translate=info.translates[0])
        if len(lv) > 1:  # a pyramid (a large map): its coarser levels as drawn too
            data = [data, *(probability_data(level) for level in lv[1:])]
            kwargs["multiscale"] = True
        out.append((data, kwargs, kind))
    return out


def saliency_layers(result: Result, name: str) -> list[LayerDataTuple]:
    """Every stored saliency map (hidden), lazy, with the contrast limits stored with it."""
    layers = []
    for info in (h for h in result.heatmaps if h.kind == "saliency"):
        data, multiscale = _map_data(result, info.key)
        method = str(info.attrs.get("method") or info.key.split("/")[1])
        cls = str(info.attrs.get("class_name") or info.key.split("/")[-1])
        # stored with the map; older stores: read its coarsest level (<= 256 px a side)
        lo, hi = map_limits(info.attrs, functools.partial(_coarsest, result, info.key))
        layers.append(
            (
                data,
                {
                    "name": saliency_layer_name(name, method, cls),
                    "scale": info.scales[0],
                    "translate": info.translates[0],
                    "colormap": ATTRIBUTION_COLORMAP,
                    "opacity": 0.6,
                    "blending": "translucent",
                    "contrast_limits": [lo, hi],
                    "multiscale": multiscale,
                    "visible": False,
                    "metadata": {
                        "napari_xai": "saliency",
                        "slide": name,
                        "method": method,
                        "class_name": cls,
                        "result_folder": str(result.folder),
                        "key": info.key,
                    },
                },
                "image",
            )
        )
    return layers


def annotation_layers(
    result: Result,
    name: str,
    *,
    mpp: float | None = None,
    warn: Callable[[str], Any] | None = None,
) -> list[LayerDataTuple]:
    """Predicted regions from ``annotations.geojson`` (the model's classes are known)."""
    path = result.folder / result.manifest.get("files", {}).get(
        "annotations", "annotations.geojson"
    )
    if result.annotations is None or not path.is_file():
        return []
    if not result.annotations.get("features"):
        return []
    from napari_xai.core.layers.annotations import geojson_layers  # pandas, shapely

    layers = geojson_layers(path, extra_classes=result.class_names, mpp=mpp, warn=warn)
    out = []
    for data, kwargs, kind in layers:
        kwargs = dict(kwargs)
        kwargs["name"] = (
            f"{name} predicted regions"
            if kind == "shapes"
            else (f"{name} predicted regions ({kind})")
        )
        kwargs.setdefault("opacity", 0.4)
        out.append((data, kwargs, kind))
    return out


def result_layers(
    result: Result,
    *,
    with_slide: bool = True,
    annotations_mpp: float | None = None,
    warn: Callable[[str], Any] | None = None,
) -> list[LayerDataTuple]:
    """LayerData tuples of a loaded result, slide first.

    Parameters
    ----------
    result : napari_xai.core.results.Result
        A result folder read by :func:`napari_xai.core.results.load_result`.
    with_slide : bool
        Also open the slide (skipped with a warning when it has moved).
    annotations_mpp : float, optional
        µm/px given to the predicted regions (their morphology columns).
    warn : callable, optional
        Called with each problem that does not stop reading (default
        :func:`warnings.warn`).

    Returns
    -------
    list of LayerDataTuple
        Slide, probability heatmaps, saliency, predicted regions, ``ood_score``
        (when scored with features, hidden), tiles.
    """
    if warn is None:
        warn = _python_warning
    name = result.slide_id
    layers: list[LayerDataTuple] = []
    slide = result.slide_path
    if with_slide:
        if slide is not None and slide.is_file():
            from napari_xai.core.wsi import open_slide

            data, kwargs, kind = slide_layer_data(open_slide(slide))
            # the masks scoring stored here are the slide's (Layers ▸ Visualize ▸ masks)
            kwargs["metadata"] = {**kwargs["metadata"], "result_folder": str(result.folder)}
            layers.append((data, kwargs, kind))
        else:
            warn(
                f"{result.folder}: the slide {slide} is not there any more; "
                "showing the results alone"
            )
    layers += probability_layers(result, name)
    layers += saliency_layers(result, name)
    layers += annotation_layers(result, name, mpp=annotations_mpp, warn=warn)
    if "ood_score" in result.tiles:
        layers.append(ood_layer(result.tiles, slide_name=name))
    if len(result.tiles):
        ldt = tiles_layer(result.tiles, slide_name=name, class_names=result.class_names)
        ldt[1]["metadata"] = {**ldt[1].get("metadata", {}), "result_folder": str(result.folder)}
        layers.append(ldt)
    return layers
