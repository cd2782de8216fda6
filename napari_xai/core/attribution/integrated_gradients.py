"""Integrated Gradients from a baseline of zeros in model-input space (the card's mean colour)."""

from __future__ import annotations

# ruff: noqa: TID253 (imported only when attribution runs, never by napari's menus)
from typing import Any

import torch
from captum.attr import IntegratedGradients

from napari_xai.core.attribution._base import AttributionMethod, ExplainOptions


def _keywords(options: ExplainOptions, x: torch.Tensor) -> dict[str, Any]:
    # internal_batch_size bounds memory: n_steps scaled copies are never all in memory.
    return {
        "baselines": 0.0,
        "n_steps": options.n_steps,
        "internal_batch_size": max(1, options.batch_size),
    }


METHOD = AttributionMethod(
    name="integrated_gradients",
    label="Integrated Gradients",
    captum=IntegratedGradients,
    keywords=_keywords,
    description=(
        "Path integral of gradients from a zero (mean-colour) baseline; n_steps forward+backward "
        "passes, batched internally."
    ),
)
