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

# The public names are listed once, in each module's ``__all__``.
from napari_xai.core.attribution import _base, registry
from napari_xai.core.attribution._base import *  # noqa: F403
from napari_xai.core.attribution.registry import *  # noqa: F403

__all__ = [*_base.__all__, *registry.__all__]
