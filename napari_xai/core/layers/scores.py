"""Layers of a scoring run: probability heatmaps and the tiles (Points) layer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from napari_xai.core.layers.coords import LayerDataTuple, grid_to_world
from napari_xai.core.naming import (
    class_colour,
    heatmap_layer_name,
    positive_class,
    probability_colormap,
    tiles_layer_name,
)

if TYPE_CHECKING:
    import pandas as pd

    from napari_xai.core.inference import ScoreResult

__all__ = ["heatmap_layer", "heatmap_layers", "probability_data", "score_layers", "tiles_layer"]


def _nan_to_zero(block: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    return np.nan_to_num(block, nan=0.0)


def probability_data(prob_map: Any) -> Any:
    """Return a probability map as drawn: float32, unscored cells (NaN) 0.

    A dask array (a stored map) stays lazy, NaN replaced chunk by chunk when
    napari reads the chunks it draws; anything else becomes a numpy array.
    """
    if hasattr(prob_map, "map_blocks"):
        return prob_map.astype(np.float32).map_blocks(_nan_to_zero, dtype=np.float32)
    return _nan_to_zero(np.asarray(prob_map, dtype=np.float32))


def heatmap_layer(
    prob_map: npt.ArrayLike,
    *,
    slide_name: str,
    class_name: str,
    stride0: float,
    tile_size0: float | None = None,
    colour: Sequence[float] | None = None,
    visible: bool = True,
    opacity: float = 0.6,
    origin_rc: Sequence[float] = (0.0, 0.0),
    metadata: dict[str, Any] | None = None,
) -> LayerDataTuple:
    """Image layer for one class-probability map ``(grid_rows, grid_cols)``.

    Unscored cells (NaN) become 0; the colormap is the one probability colormap
    (:func:`napari_xai.core.naming.probability_colormap`: viridis, transparent at
    0, so the slide shows through), the same for every class; ``colour`` (default:
    the class's palette colour) goes to ``metadata["class_colour"]`` for legends.
    A dask array (a stored map) stays lazy: napari reads the chunks it draws.
    """
    data = probability_data(prob_map)
    scale, translate = grid_to_world(stride0, tile_size0, origin_rc=origin_rc)
    rgb = tuple(colour) if colour is not None else class_colour(class_name)
    kwargs: dict[str, Any] = {
        "name": heatmap_layer_name(slide_name, class_name),
        "scale": scale,
        "translate": translate,
        "colormap": probability_colormap(),
        "contrast_limits": (0.0, 1.0),
        "opacity": float(opacity),
        "blending": "translucent",
        "interpolation2d": "nearest",
        "visible": bool(visible),
        "metadata": {
            "napari_xai": "probability",
            "slide": slide_name,
            "class_name": class_name,
            "class_colour": [float(v) for v in rgb[:3]],
            "units": "probability (0-1)",
            "stride0": float(stride0),
            "tile_size0": float(stride0 if tile_size0 is None else tile_size0),
            **(metadata or {}),
        },
    }
    return data, kwargs, "image"


def heatmap_layers(
    maps: npt.ArrayLike | Sequence[Any],
    class_names: Sequence[str],
    *,
    slide_name: str,
    stride0: float,
    tile_size0: float | None = None,
    visible_class: str | None = None,
    model_classes: Sequence[str] | None = None,
) -> list[LayerDataTuple]:
    """One heatmap layer per class.

    Parameters
    ----------
    maps : array of shape (C, rows, cols), or a sequence of C maps (rows, cols)
        One map per class of ``class_names``; dask maps (a result folder's)
        stay lazy.
    class_names : sequence of str
    slide_name, stride0, tile_size0
        As for :func:`heatmap_layer`.
    visible_class : str, optional
        The one layer that starts visible (default: the tumour-like or first
        non-background class of ``model_classes``).
    model_classes : sequence of str, optional
        The model's class list, when ``maps`` hold only some of its classes:
        it picks the palette colour of a class without a fixed one (default:
        ``class_names``).
    """
    per_class = list(maps) if isinstance(maps, list | tuple) else np.asarray(maps)
    if len(per_class) != len(class_names) or any(np.ndim(m) != 2 for m in per_class):
        shape = getattr(per_class, "shape", None) or [np.shape(m) for m in per_class]
        raise ValueError(
            f"maps must have shape (n_classes={len(class_names)}, rows, cols), got {shape}"
        )
    order = list(model_classes or class_names)
    focus = visible_class or positive_class(order)
    return [
        heatmap_layer(
            prob_map,
            slide_name=slide_name,
            class_name=name,
            stride0=stride0,
            tile_size0=tile_size0,
            colour=class_colour(name, order.index(name) if name in order else 0),
            visible=name == focus,
        )
        for prob_map, name in zip(per_class, class_names, strict=True)
    ]


def tiles_layer(
    tiles: pd.DataFrame,
    *,
    slide_name: str,
    class_names: Sequence[str],
    visible: bool | None = None,
    color_by: str = "class",
) -> LayerDataTuple:
    """Points layer: one square per tile at its centre, coloured by class or confidence.

    ``features`` hold the tiles table (hover a point to read its probabilities).
    Hidden by default above 20,000 tiles (drawing that many squares is slow).
    ``color_by="class"`` colours by predicted class (the heatmaps' colours);
    ``"confidence"`` maps the top probability through viridis (0 to 1).
    """
    if color_by not in ("class", "confidence"):
        raise ValueError(f"color_by must be 'class' or 'confidence', got {color_by!r}")
    import pandas as pd

    n = len(tiles)
    size0 = np.asarray(tiles["height"], dtype=np.float64) if n else np.zeros(0)
    centres = np.empty((n, 2), dtype=np.float64)
    if n:
        centres[:, 0] = np.asarray(tiles["row"], np.float64) + (size0 - 1.0) / 2.0
        centres[:, 1] = np.asarray(tiles["col"], np.float64) + (size0 - 1.0) / 2.0
    stride0 = float(tiles.attrs.get("stride0", size0[0] if n else 1.0))
    colours = [[*class_colour(c, k), 1.0] for k, c in enumerate(class_names)]
    kwargs: dict[str, Any] = {
        "name": tiles_layer_name(slide_name),
        "features": tiles.reset_index(drop=True),
        "size": max(stride0 * 0.9, 1.0),
        "symbol": "square",
        "border_width": 0.0,
        "opacity": 0.4,
        "visible": (n <= 20_000) if visible is None else bool(visible),
        "metadata": {"napari_xai": "tiles", "slide": slide_name},
    }
    if n and color_by == "confidence":
        kwargs["face_color"] = "confidence"
        kwargs["face_colormap"] = "viridis"
        kwargs["face_contrast_limits"] = (0.0, 1.0)
    elif n:
        # Categories follow class order so colours match the heatmaps.
        kwargs["features"]["pred_class"] = kwargs["features"]["pred_class"].astype(
            pd.CategoricalDtype(list(class_names))
        )
        kwargs["face_color"] = "pred_class"
        kwargs["face_color_cycle"] = colours
    return centres, kwargs, "points"


def score_layers(
    result: ScoreResult, *, slide_name: str | None = None, with_tiles: bool = True
) -> list[LayerDataTuple]:
    """Heatmap layers (and the tiles layer) for a :class:`ScoreResult`."""
    name = slide_name or result.slide_name
    layers = heatmap_layers(
        result.probabilities,
        result.class_names,
        slide_name=name,
        stride0=result.grid.stride0,
        tile_size0=result.grid.tile_size0,
    )
    if with_tiles:
        layers.append(tiles_layer(result.tiles, slide_name=name, class_names=result.class_names))
    return layers
