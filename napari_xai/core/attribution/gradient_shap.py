"""GradientSHAP: expected gradients between the input and random baselines."""

from __future__ import annotations

# ruff: noqa: TID253 (imported only when attribution runs, never by napari's menus)
from typing import Any

import torch
from captum.attr import GradientShap

from napari_xai.core.attribution._base import AttributionMethod, ExplainOptions


def _baselines(x: torch.Tensor) -> torch.Tensor:
    """Zero (mean colour) image plus two flat images one standard deviation off, per tile."""
    zeros = torch.zeros_like(x[:1])
    return torch.cat([zeros, zeros - 1.0, zeros + 1.0])


def _keywords(options: ExplainOptions, x: torch.Tensor) -> dict[str, Any]:
    # the baselines are made from the input's shape at call time
    return {"baselines": _baselines(x), "n_samples": options.n_samples, "stdevs": 0.09}


METHOD = AttributionMethod(
    name="gradient_shap",
    label="GradientSHAP",
    captum=GradientShap,
    keywords=_keywords,
    smoothable=False,  # already averages noisy samples
    expansion=lambda options: max(1, options.n_samples),
    description=(
        "Expected gradients against zero and flat baselines with input noise; n_samples "
        "passes per tile."
    ),
)
