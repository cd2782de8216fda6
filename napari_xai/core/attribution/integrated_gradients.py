"""Integrated Gradients from a baseline of zeros in model-input space (the card's mean colour)."""

from __future__ import annotations

# ruff: noqa: TID253 (imported only when attribution runs, never by napari's menus)
from typing import Any

from captum.attr import IntegratedGradients
from torch import nn

from napari_xai.core.attribution._base import AttributionMethod, ExplainOptions, PreparedModel


def _build(
    prepared: PreparedModel, forward_module: nn.Module, options: ExplainOptions
) -> tuple[Any, dict[str, Any]]:
    # internal_batch_size bounds memory: n_steps scaled copies are never all in memory.
    kwargs = {
        "baselines": 0.0,
        "n_steps": options.n_steps,
        "internal_batch_size": max(1, options.batch_size),
    }
    return IntegratedGradients(forward_module), kwargs


METHOD = AttributionMethod(
    name="integrated_gradients",
    label="Integrated Gradients",
    build=_build,
    description=(
        "Path integral of gradients from a zero (mean-colour) baseline; n_steps forward+backward "
        "passes, batched internally."
    ),
)
