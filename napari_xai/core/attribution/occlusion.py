"""Occlusion: drop of the target score when a square patch is replaced by the mean colour."""

from __future__ import annotations

# ruff: noqa: TID253 (imported only when attribution runs, never by napari's menus)
from typing import Any

import torch
from captum.attr import Occlusion

from napari_xai.core.attribution._base import AttributionMethod, ExplainOptions


def _keywords(options: ExplainOptions, x: torch.Tensor) -> dict[str, Any]:
    """Window sized from the tile at call time."""
    n, c, h, w = x.shape
    window = options.occlusion_window or max(2, min(h, w) // 8)
    stride = max(1, window // 2)
    return {
        "sliding_window_shapes": (c, window, window),
        "strides": (c, stride, stride),
        "baselines": 0.0,
        "perturbations_per_eval": max(1, options.batch_size // max(1, n)),
    }


def _channel_mean(attr: torch.Tensor, size_rc: tuple[int, int]) -> torch.Tensor:
    # captum spreads each window's score drop over all its elements: the channel
    # sum of the reduction would count it c times, so average over channels here.
    return attr / attr.shape[1]


METHOD = AttributionMethod(
    name="occlusion",
    label="Occlusion",
    captum=Occlusion,
    keywords=_keywords,
    smoothable=False,
    postprocess=_channel_mean,
    description=(
        "Score drop when a window (tile/8, stride tile/16) is set to the mean colour; "
        "forward passes only, about 200 per tile."
    ),
)
