"""The channels of one model layer for one tile, as a grid beside the tile."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from napari_xai.core.layers.coords import LayerDataTuple
from napari_xai.core.naming import ATTRIBUTION_COLORMAP

if TYPE_CHECKING:
    from napari_xai.core.activations import TileChannels

__all__ = ["channel_mosaic", "channels_layer"]


def channels_layer(channels: TileChannels) -> LayerDataTuple:
    """Image layer of every channel (:func:`napari_xai.core.activations.tile_channels`).

    Returns
    -------
    LayerDataTuple
        ``(mosaic, kwargs, "image")``: the channel grid, each channel drawn as large
        as the tile, its top-left corner at the tile's top-right corner; named
        ``"<slide> channels [<layer>]"``.
    """
    acts, loc, t0 = channels.activations, channels.loc_rc, channels.tile_size0
    mosaic = channel_mosaic(acts)
    s = t0 / (acts.shape[1] + 1)  # channel side + gap, in mosaic pixels
    kwargs: dict[str, Any] = {
        "name": f"{channels.slide_name} channels [{channels.layer}]",
        "colormap": ATTRIBUTION_COLORMAP,  # activations share the attribution colormap
        "contrast_limits": [0.0, 1.0],
        "scale": (s, s),
        "translate": (loc[0] + (s - 1) / 2, loc[1] + t0 + (s - 1) / 2),
        "metadata": {"napari_xai": {"kind": "channels", "tile_rc": loc, "n": len(acts)}},
    }
    return (mosaic, kwargs, "image")


def channel_mosaic(
    activations: npt.NDArray[np.float32], *, n_cols: int | None = None, gap: int = 1
) -> npt.NDArray[np.float32]:
    """Lay channel maps out as a grid, each scaled to [0, 1] by its own range.

    Parameters
    ----------
    activations : ndarray of shape (C, h, w)
    n_cols : int, optional
        Channels per row (default: about square).
    gap : int
        NaN pixels between channels.

    Returns
    -------
    ndarray of shape (rows * (h + gap) - gap, n_cols * (w + gap) - gap), float32
        Channel ``k`` is at grid position ``divmod(k, n_cols)``.
    """
    acts = np.asarray(activations, dtype=np.float32)
    c, h, w = acts.shape
    cols = int(n_cols or math.ceil(math.sqrt(c)))
    rows = math.ceil(c / cols)
    out = np.full((rows * (h + gap) - gap, cols * (w + gap) - gap), np.nan, np.float32)
    lo = acts.reshape(c, -1).min(axis=1)
    hi = acts.reshape(c, -1).max(axis=1)
    for k in range(c):
        r, q = divmod(k, cols)
        span = hi[k] - lo[k]
        norm = (acts[k] - lo[k]) / span if span > 0 else np.zeros((h, w), np.float32)
        out[r * (h + gap) : r * (h + gap) + h, q * (w + gap) : q * (w + gap) + w] = norm
    return out
