"""GradientSHAP: expected gradients between the input and random baselines."""

from __future__ import annotations

# ruff: noqa: TID253 (imported only when attribution runs, never by napari's menus)
from typing import Any

import torch
from captum.attr import GradientShap
from torch import nn

from napari_xai.core.attribution._base import AttributionMethod, ExplainOptions, PreparedModel


def _baselines(x: torch.Tensor) -> torch.Tensor:
    """Zero (mean colour) image plus two flat images one standard deviation off, per tile."""
    zeros = torch.zeros_like(x[:1])
    return torch.cat([zeros, zeros - 1.0, zeros + 1.0])


class _GradientShap:
    """GradientShap whose baselines are made from the input's shape at call time."""

    def __init__(self, forward_module: nn.Module, options: ExplainOptions) -> None:
        self._shap = GradientShap(forward_module)
        self._options = options

    def attribute(self, inputs: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        out: torch.Tensor = self._shap.attribute(
            inputs,
            baselines=_baselines(inputs),
            n_samples=self._options.n_samples,
            stdevs=0.09,
            **kwargs,
        )
        return out


def _build(
    prepared: PreparedModel, forward_module: nn.Module, options: ExplainOptions
) -> tuple[Any, dict[str, Any]]:
    return _GradientShap(forward_module, options), {}


METHOD = AttributionMethod(
    name="gradient_shap",
    label="GradientSHAP",
    build=_build,
    smoothable=False,  # already averages noisy samples
    expansion=lambda options: max(1, options.n_samples),
    description=(
        "Expected gradients against zero and flat baselines with input noise; n_samples "
        "passes per tile."
    ),
)
