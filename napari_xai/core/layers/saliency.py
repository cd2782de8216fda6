"""LayerData tuples for stitched saliency and activation maps (no napari import).

The layer is a multiscale image read lazily from the zarr store (dask arrays over
the pyramid levels, re-read on every refresh, so it fills in while a run writes).
Its ``scale``/``translate`` put map pixel centres on the level-0 pixels they cover;
unexplained regions are NaN, which napari draws transparent, so the slide shows
through where nothing was computed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import zarr

from napari_xai.core.layers.coords import LayerDataTuple
from napari_xai.core.naming import ATTRIBUTION_COLORMAP
from napari_xai.core.stitch import StitchedMap

__all__ = ["DEFAULT_COLORMAP", "stitched_layer", "saliency_layer"]

#: Perceptually uniform; low values dark, so saliency reads as "heat" (the palette's role).
DEFAULT_COLORMAP = ATTRIBUTION_COLORMAP


def stitched_layer(
    store: str | Path,
    key: str,
    *,
    name: str,
    colormap: str = DEFAULT_COLORMAP,
    opacity: float = 0.6,
    contrast_limits: tuple[float, float] | None = None,
    visible: bool = True,
    metadata: dict[str, Any] | None = None,
) -> LayerDataTuple:
    """Image LayerData tuple of a stitched map at ``store/key``.

    Parameters
    ----------
    store : path
        Zarr store.
    key : str
        Group of the map.
    name : str
        Layer name (deterministic, so re-runs replace the layer).
    colormap : str
        napari colormap name.
    opacity : float
    contrast_limits : (float, float), optional
        Default: 0 to the 99.5th percentile of the coarsest level.
    visible : bool
    metadata : dict, optional
        Extra layer metadata.

    Returns
    -------
    tuple
        ``(data, kwargs, "image")`` with ``data`` a list of dask arrays (multiscale)
        or one array when the map has a single level.
    """
    group: Any = zarr.open_group(str(store), mode="r")[key]
    smap = StitchedMap(group)
    levels = smap.to_dask()
    limits = contrast_limits or smap.value_limits()
    if not limits[1] > limits[0]:
        limits = (limits[0], limits[0] + 1.0)
    kwargs: dict[str, Any] = {
        "name": name,
        "colormap": colormap,
        "opacity": float(opacity),
        "blending": "translucent",
        "contrast_limits": [float(limits[0]), float(limits[1])],
        "scale": smap.scale_rc,
        "translate": smap.translate_rc,
        "visible": visible,
        "multiscale": len(levels) > 1,
        "metadata": {
            "napari_xai": {
                "kind": str(group.attrs.get("kind", "saliency")),
                "store": str(store),
                "key": key,
                "method": group.attrs.get("method"),
                "class_name": group.attrs.get("class_name"),
                "n_done": smap.n_done,
            },
            **(metadata or {}),
        },
    }
    data: Any = levels if len(levels) > 1 else levels[0]
    return (data, kwargs, "image")


def saliency_layer(result: Any, **kwargs: Any) -> LayerDataTuple:
    """Layer of an :class:`~napari_xai.core.attribution.whole_slide.ExplainResult`.

    Named ``"<slide> saliency [<method>, <class>]"``; ``kwargs`` go to
    :func:`stitched_layer` (``colormap``, ``opacity``, ``contrast_limits``...). Its
    metadata names the slide (``"slide"``, as the slide's probability maps do), so the
    display panel knows it for one of that slide's maps.
    """
    kwargs.setdefault("contrast_limits", result.limits)
    kwargs["metadata"] = {"slide": result.slide_name, **(kwargs.get("metadata") or {})}
    return stitched_layer(result.store, result.key, name=result.layer_name, **kwargs)
