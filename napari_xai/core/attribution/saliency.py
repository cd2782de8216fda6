"""Saliency: absolute gradient of the target score with respect to the input pixels."""

from __future__ import annotations

# ruff: noqa: TID253 (imported only when attribution runs, never by napari's menus)
from captum.attr import Saliency

from napari_xai.core.attribution._base import AttributionMethod

METHOD = AttributionMethod(
    name="saliency",
    label="Saliency (|gradient|)",
    captum=Saliency,
    keywords=lambda options, x: {"abs": True},
    single_pass=True,
    description="Absolute input gradient of the target score; one backward pass.",
)
