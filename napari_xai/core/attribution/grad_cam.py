"""Grad-CAM on the model card's ``cam_layer`` (default: the last Conv2d)."""

from __future__ import annotations

# ruff: noqa: TID253 (imported only when attribution runs, never by napari's menus)
import torch
from captum.attr import LayerAttribution, LayerGradCam

from napari_xai.core.attribution._base import AttributionMethod


def upsample_cam(attr: torch.Tensor, size_rc: tuple[int, int]) -> torch.Tensor:
    """Upsample a (N, 1, h, w) layer map to (N, 1, H, W), bilinear (captum's interpolate)."""
    if tuple(attr.shape[-2:]) == tuple(size_rc):
        return attr
    out: torch.Tensor = LayerAttribution.interpolate(attr, size_rc, interpolate_mode="bilinear")
    return out


METHOD = AttributionMethod(
    name="grad_cam",
    label="Grad-CAM",
    captum=LayerGradCam,
    keywords=lambda options, x: {"relu_attributions": True},
    needs_layer=True,
    single_pass=True,
    smoothable=False,
    postprocess=upsample_cam,
    description=(
        "Layer activations weighted by their mean gradient, ReLU, bilinear upsampling; "
        "one forward pass and a backward pass down to the layer only."
    ),
)
