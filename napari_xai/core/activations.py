"""Look inside a model: channel activation maps of one layer.

* :func:`list_layers` — layers whose output is a spatial map (N, C, h, w);
* :func:`channel_activations` — every channel of one layer for one tile;
* :func:`tile_channels` — those channels for the tile under a point (shown as a grid
  by :func:`napari_xai.core.layers.activations.channels_layer`);
* :func:`iter_channel_slide` — one channel across the whole slide, stitched into
  the same kind of multiscale store as saliency (``activations/<layer>/<channel>``):
  is this channel a texture detector, does it fire on the pen mark?

TorchScript models: only the ``forward_features`` output is reachable (and only
when the scripted model exposes ``forward_features``/``forward_head``).
"""

from __future__ import annotations

# ruff: noqa: TID253 (imported only when attribution runs, never by napari's menus)
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from torch import nn

from napari_xai.core.attribution._base import AttributionError, PreparedModel, prepare_model
from napari_xai.core.options import GridOptions, RunOptions
from napari_xai.core.predict import preprocess_tiles

if TYPE_CHECKING:
    from napari_xai.core.attribution.whole_slide import ExplainProgress, ExplainResult
    from napari_xai.core.wsi import Slide

__all__ = [
    "activation_key",
    "channel_activations",
    "iter_channel_slide",
    "list_layers",
    "tile_channels",
    "TileChannels",
]


def _hookable_layers(prepared: PreparedModel) -> dict[str, nn.Module]:
    if prepared.scripted:
        if prepared.layer is None:
            return {}
        return {"forward_features": prepared.layer}
    return {name: mod for name, mod in prepared.module.named_modules() if name}


def list_layers(model: Any, *, tile_size: int | None = None) -> list[str]:
    """Names of the layers whose output is a spatial map, input to output.

    Parameters
    ----------
    model : nn.Module, TorchScript module or loaded model
    tile_size : int, optional
        Size of the probe input (default: the card's tile size, else 64).
    """
    prepared = prepare_model(model)
    layers = _hookable_layers(prepared)
    size = int(tile_size or getattr(prepared.card, "tile_size", 64) or 64)
    seen: list[str] = []
    handles = []

    def hook(name: str) -> Any:
        def _record(_m: nn.Module, _i: Any, out: Any) -> None:
            if isinstance(out, torch.Tensor) and out.ndim == 4 and name not in seen:
                seen.append(name)

        return _record

    for name, mod in layers.items():
        handles.append(mod.register_forward_hook(hook(name)))
    try:
        with torch.no_grad():
            prepared.module(torch.zeros(1, 3, size, size, device=prepared.device))
    finally:
        for h in handles:
            h.remove()
    return seen


def _layer(prepared: PreparedModel, layer: str | None) -> tuple[str, nn.Module]:
    layers = _hookable_layers(prepared)
    if layer is None:
        if prepared.layer is None or prepared.layer_name is None:
            raise AttributionError(f"{prepared.name}: no layer can be hooked in this model")
        return prepared.layer_name, prepared.layer
    if layer not in layers:
        hint = (
            "TorchScript models only expose 'forward_features'"
            if prepared.scripted
            else f"e.g. {', '.join(list(layers)[-5:])}"
        )
        raise AttributionError(f"{prepared.name}: no layer named {layer!r} ({hint})")
    return layer, layers[layer]


def _activations(prepared: PreparedModel, module: nn.Module, tiles: Any) -> torch.Tensor:
    captured: list[torch.Tensor] = []

    def hook(_m: nn.Module, _i: Any, out: Any) -> None:
        captured.append(out.detach())

    handle = module.register_forward_hook(hook)
    try:
        with torch.no_grad():
            prepared.module(preprocess_tiles(tiles, prepared.card, device=prepared.device))
    finally:
        handle.remove()
    if not captured or captured[0].ndim != 4:
        raise AttributionError(f"{prepared.name}: the chosen layer does not output (N, C, h, w)")
    return captured[0]


def channel_activations(
    model: Any, tile: npt.NDArray[Any], *, layer: str | None = None
) -> npt.NDArray[np.float32]:
    """Activation maps of every channel of ``layer`` for one tile.

    Parameters
    ----------
    model : nn.Module, TorchScript module or loaded model
    tile : ndarray of shape (H, W, 3)
        uint8 RGB tile (normalised with the model card when there is one).
    layer : str, optional
        Layer name (:func:`list_layers`); default the Grad-CAM layer.

    Returns
    -------
    ndarray of shape (C, h, w), float32
    """
    prepared = prepare_model(model)
    _, module = _layer(prepared, layer)
    out = _activations(prepared, module, np.asarray(tile)[None])
    result: npt.NDArray[np.float32] = out[0].float().cpu().numpy()
    return result


def activation_key(layer: str, channel: int) -> str:
    """Group of a channel map in ``heatmaps.zarr``: ``activations/<layer>/channel_<k>``."""
    safe = "".join(ch if (ch.isalnum() or ch in "-_.+") else "_" for ch in layer) or "_"
    return f"activations/{safe}/channel_{int(channel)}"


def iter_channel_slide(
    slide: Slide,
    model: Any,
    *,
    channel: int,
    store: str | Path,
    layer: str | None = None,
    grid: GridOptions | None = None,
    run: RunOptions | None = None,
    map_px: int | None = None,
) -> Generator[ExplainProgress, None, ExplainResult]:
    """One channel of one layer across the slide, stitched into ``store``.

    Parameters ``store``, ``grid``, ``run`` (``explain_batch_size`` tiles per
    batch) and ``map_px`` are those of
    :func:`napari_xai.core.attribution.whole_slide.iter_explain_slide`, plus the
    ``layer`` (default: the Grad-CAM layer) and ``channel`` index. Values are raw
    activations (upsampled bilinearly to the tile); resumable like saliency.
    """
    from napari_xai.core.attribution.whole_slide import (
        ExplainResult,
        iter_stitch_tiles,
        open_map,
        slide_grid,
        slide_name,
    )
    from napari_xai.core.naming import activation_layer_name

    card = getattr(model, "card", None)
    if card is None:
        raise ValueError("a model card (tile size, mpp) is needed to tile the slide")
    t0 = time.perf_counter()
    prepared = prepare_model(model)
    layer_name, module = _layer(prepared, layer)
    tiles = slide_grid(slide, card, grid)
    key = activation_key(layer_name, channel)
    model_id = str(getattr(model, "sha256", None) or getattr(card, "sha256", "model"))
    smap = open_map(
        store,
        key,
        tiles,
        map_px=map_px,
        params={"model": model_id, "layer": layer_name, "channel": int(channel)},
        attrs={"kind": "activations", "method": layer_name, "class_name": f"channel {channel}"},
        name=f"{layer_name}/channel {channel}",
    )
    n_cached = smap.n_done

    def compute(images: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
        acts = _activations(prepared, module, images)
        if not 0 <= channel < acts.shape[1]:
            raise AttributionError(
                f"{prepared.name}: layer {layer_name!r} has {acts.shape[1]} channels, "
                f"no channel {channel}"
            )
        maps = acts[:, channel : channel + 1].float()
        maps = F.interpolate(maps, size=images.shape[1:3], mode="bilinear", align_corners=False)
        result: npt.NDArray[np.float32] = maps[:, 0].cpu().numpy()
        return result

    n_computed = yield from iter_stitch_tiles(
        slide,
        tiles,
        smap,
        compute,
        run=run,
        layer_name=activation_layer_name(slide_name(slide), layer_name, channel),
    )
    coarse = np.asarray(smap.levels[-1][...], dtype=np.float32)
    finite = coarse[np.isfinite(coarse)]
    limits = (
        (float(np.percentile(finite, 0.5)), float(np.percentile(finite, 99.5)))
        if finite.size
        else (0.0, 1.0)
    )
    return ExplainResult(
        store=Path(store),
        key=key,
        method=layer_name,
        class_name=f"channel {channel}",
        slide_name=slide_name(slide),
        n_computed=n_computed,
        n_cached=n_cached,
        n_done=smap.n_done,
        n_tiles=len(tiles),
        limits=limits,
        scale_rc=smap.scale_rc,
        translate_rc=smap.translate_rc,
        timings={"total_s": time.perf_counter() - t0},
        kind="activations",
    )


@dataclass(frozen=True)
class TileChannels:
    """Every channel of one layer for the tile centred on a level-0 point.

    Attributes
    ----------
    activations : ndarray of shape (C, h, w)
        The channel maps (:func:`channel_activations`).
    loc_rc : (int, int)
        Level-0 (row, col) of the tile's top-left corner.
    tile_size0 : int
        Level-0 side of the tile.
    slide_name : str
    layer : str or None
        The model layer (None: the last hookable one).
    """

    activations: npt.NDArray[np.float32]
    loc_rc: tuple[int, int]
    tile_size0: int
    slide_name: str
    layer: str | None


def tile_channels(
    slide: Any,
    model: Any,
    centre_rc: tuple[float, float],
    *,
    layer: str | None = None,
    mpp: float | None = None,
) -> TileChannels:
    """Read the tile centred on a level-0 point and compute every channel of ``layer``.

    Parameters
    ----------
    slide : Slide or path
        The slide (a path is opened and closed here).
    model : LoadedModel
        The model (its card sets the tile size and resolution).
    centre_rc : (float, float)
        Level-0 (row, col) of the tile's centre.
    layer : str, optional
        Model layer; default the last hookable one.
    mpp : float, optional
        Level-0 µm/px when the file does not say.

    Returns
    -------
    TileChannels
        Shown by :func:`napari_xai.core.layers.activations.channels_layer`.
    """
    from napari_xai.core.attribution.whole_slide import slide_grid, slide_name
    from napari_xai.core.reader import resize_tile
    from napari_xai.core.wsi import opened_slide

    with opened_slide(slide, mpp=mpp) as slide:
        grid = slide_grid(slide, model.card, GridOptions(tissue=False, mpp=mpp))
        t0 = int(grid.tile_size0)
        loc = (int(centre_rc[0] - t0 / 2), int(centre_rc[1] - t0 / 2))
        tile = slide.read_region(loc, (grid.read_size, grid.read_size), level=grid.level)
        tile = resize_tile(tile, int(grid.tile_size))
        acts = channel_activations(model, tile, layer=layer)
        return TileChannels(acts, loc, t0, slide_name(slide), layer)
