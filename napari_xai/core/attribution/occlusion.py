"""Occlusion: drop of the target score when a square patch is replaced by the mean colour."""

from __future__ import annotations

# ruff: noqa: TID253 (imported only when attribution runs, never by napari's menus)
from typing import Any

import torch
from captum.attr import Occlusion
from torch import nn

from napari_xai.core.attribution._base import AttributionMethod, ExplainOptions, PreparedModel


class _Occlusion:
    """Occlusion with a window sized from the tile at call time."""

    def __init__(self, forward_module: nn.Module, options: ExplainOptions) -> None:
        self._occlusion = Occlusion(forward_module)
        self._options = options

    def attribute(self, inputs: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        n, c, h, w = inputs.shape
        window = self._options.occlusion_window or max(2, min(h, w) // 8)
        stride = max(1, window // 2)
        out: torch.Tensor = self._occlusion.attribute(
            inputs,
            sliding_window_shapes=(c, window, window),
            strides=(c, stride, stride),
            baselines=0.0,
            perturbations_per_eval=max(1, self._options.batch_size // max(1, n)),
            **kwargs,
        )
        # captum spreads each window's score drop over all its elements: the channel
        # sum of the reduction would count it c times, so average over channels here.
        return out / c


def _build(
    prepared: PreparedModel, forward_module: nn.Module, options: ExplainOptions
) -> tuple[Any, dict[str, Any]]:
    return _Occlusion(forward_module, options), {}


METHOD = AttributionMethod(
    name="occlusion",
    label="Occlusion",
    build=_build,
    smoothable=False,
    description=(
        "Score drop when a window (tile/8, stride tile/16) is set to the mean colour; "
        "forward passes only, about 200 per tile."
    ),
)
