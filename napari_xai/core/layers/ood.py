"""The ``ood_score`` layer: how far each tile is from the model's training tiles."""

from __future__ import annotations

from typing import Any

import numpy as np

from napari_xai.core.explore.ood import ood_map
from napari_xai.core.layers.coords import LayerDataTuple, grid_to_world
from napari_xai.core.naming import ood_layer_name

__all__ = ["ood_layer"]


def ood_layer(tiles: Any, *, slide_name: str, visible: bool = False) -> LayerDataTuple:
    """Image layer of ``ood_score`` over the slide (magma; transparent where unscored).

    Contrast runs from 0 to at least 2 (the Mahalanobis scale: 1 is the edge of
    the training tiles) or to the 99th percentile, whichever is larger; energy
    scores (no fixed scale) use their 1st-99th percentiles.
    """
    data = ood_map(tiles)
    finite = data[np.isfinite(data)]
    method = str(tiles.attrs.get("ood_method", "mahalanobis"))
    if method == "mahalanobis":
        lo, hi = 0.0, max(2.0, float(np.quantile(finite, 0.99)) if finite.size else 2.0)
    else:
        lo, hi = (
            (float(np.quantile(finite, 0.01)), float(np.quantile(finite, 0.99)))
            if finite.size
            else (0.0, 1.0)
        )
        hi = hi if hi > lo else lo + 1.0
    stride0 = float(tiles.attrs.get("stride0", tiles["height"].iloc[0] if len(tiles) else 1))
    tile0 = float(tiles.attrs.get("tile_size0", stride0))
    scale, translate = grid_to_world(stride0, tile0)
    kwargs = {
        "name": ood_layer_name(slide_name),
        "scale": scale,
        "translate": translate,
        "colormap": "magma",
        "contrast_limits": (lo, hi),
        "opacity": 0.7,
        "blending": "translucent",
        "interpolation2d": "nearest",
        "visible": bool(visible),
        "metadata": {"napari_xai": "ood", "slide": slide_name, "ood_method": method},
    }
    return np.nan_to_num(data, nan=lo), kwargs, "image"
