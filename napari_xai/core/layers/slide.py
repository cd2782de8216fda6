"""The slide layer: a lazy multiscale image in level-0 pixel coordinates."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from napari_xai.core.layers.coords import LayerDataTuple

if TYPE_CHECKING:
    from napari_xai.core.wsi import Slide

__all__ = ["slide_layer_data"]


def slide_layer_data(slide: Slide) -> LayerDataTuple:
    """Build the LayerDataTuple of an open :class:`~napari_xai.core.wsi.Slide`."""
    info = slide.info
    levels = slide.levels
    metadata = {
        "path": str(info.path),
        "mpp": info.mpp,
        "mpp_source": info.mpp_source,
        "vendor": info.vendor,
        "shape_rc": info.shape_rc,
        "level_downsamples": info.level_downsamples,
        "magnification": info.magnification,
        # Keeps the file open for the lazy arrays as long as the layer lives.
        "slide": slide,
    }
    meta: dict[str, Any] = {
        "name": info.path.name,
        "metadata": metadata,
        "multiscale": len(levels) > 1,
    }
    if info.is_rgb:
        meta["rgb"] = True
    else:
        # Non-RGB data: contrast from the dtype range, never from a full-level scan.
        dtype = np.dtype(info.dtype)
        hi = float(np.iinfo(dtype).max) if np.issubdtype(dtype, np.integer) else 1.0
        meta["rgb"] = False
        meta["contrast_limits"] = [0.0, hi]
        if info.channel_axis is not None:
            meta["channel_axis"] = info.channel_axis
            meta["name"] = [f"{info.path.name} [ch {i}]" for i in range(info.n_channels)]
            meta["blending"] = "additive"
    data = levels if len(levels) > 1 else levels[0]
    return (data, meta, "image")
