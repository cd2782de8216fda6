"""Attribution methods (captum) on tiles, stitched into whole-slide saliency maps.

``ATTRIBUTION_METHODS`` maps a method name to its :class:`AttributionMethod`
(one per module: ``saliency``, ``integrated_gradients``, ``gradient_shap``,
``occlusion``, ``grad_cam``, ``guided_grad_cam``); :func:`explain_tiles` runs
one of them on a batch of tiles and returns one 2-D map per tile. SmoothGrad is
an option (``smooth_samples``) of the gradient methods.

Importing this package imports torch and captum: napari-facing modules import it
inside functions only.
"""

from __future__ import annotations

from napari_xai.core.attribution._base import (
    AttributionError,
    AttributionMethod,
    ExplainOptions,
    PreparedModel,
    prepare_model,
    reduce_attribution,
)
from napari_xai.core.attribution.registry import (
    ATTRIBUTION_METHODS,
    Explainer,
    explain_tiles,
    iter_explanations,
    resolve_target,
    supported_methods,
    unsupported_methods,
)

__all__ = [
    "ATTRIBUTION_METHODS",
    "AttributionError",
    "AttributionMethod",
    "ExplainOptions",
    "Explainer",
    "PreparedModel",
    "explain_tiles",
    "iter_explanations",
    "prepare_model",
    "reduce_attribution",
    "resolve_target",
    "supported_methods",
    "unsupported_methods",
]
