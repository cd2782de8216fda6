"""Saliency: absolute gradient of the target score with respect to the input pixels."""

from __future__ import annotations

# ruff: noqa: TID253 (imported only when attribution runs, never by napari's menus)
from typing import Any

from captum.attr import Saliency
from torch import nn

from napari_xai.core.attribution._base import AttributionMethod, ExplainOptions, PreparedModel


def _build(
    prepared: PreparedModel, forward_module: nn.Module, options: ExplainOptions
) -> tuple[Any, dict[str, Any]]:
    return Saliency(forward_module), {"abs": True}


METHOD = AttributionMethod(
    name="saliency",
    label="Saliency (|gradient|)",
    build=_build,
    single_pass=True,
    description="Absolute input gradient of the target score; one backward pass.",
)
