"""Guided Grad-CAM: guided backpropagation times the upsampled Grad-CAM map."""

from __future__ import annotations

# ruff: noqa: TID253 (imported only when attribution runs, never by napari's menus)
from typing import Any

from captum.attr import GuidedGradCam
from torch import nn

from napari_xai.core.attribution._base import AttributionMethod, ExplainOptions, PreparedModel


def _build(
    prepared: PreparedModel, forward_module: nn.Module, options: ExplainOptions
) -> tuple[Any, dict[str, Any]]:
    assert prepared.layer is not None
    return GuidedGradCam(forward_module, prepared.layer), {"interpolate_mode": "bilinear"}


METHOD = AttributionMethod(
    name="guided_grad_cam",
    label="Guided Grad-CAM",
    build=_build,
    needs_layer=True,
    needs_module_hooks=True,
    single_pass=True,
    description=(
        "Guided backpropagation (ReLU hooks) multiplied by Grad-CAM: fine detail inside "
        "the regions Grad-CAM selects."
    ),
)
