"""Guided Grad-CAM: guided backpropagation times the upsampled Grad-CAM map."""

from __future__ import annotations

# ruff: noqa: TID253 (imported only when attribution runs, never by napari's menus)
from captum.attr import GuidedGradCam

from napari_xai.core.attribution._base import AttributionMethod

METHOD = AttributionMethod(
    name="guided_grad_cam",
    label="Guided Grad-CAM",
    captum=GuidedGradCam,
    keywords=lambda options, x: {"interpolate_mode": "bilinear"},
    needs_layer=True,
    needs_module_hooks=True,
    single_pass=True,
    description=(
        "Guided backpropagation (ReLU hooks) multiplied by Grad-CAM: fine detail inside "
        "the regions Grad-CAM selects."
    ),
)
