"""Labels layers of :class:`~napari_xai.core.masks.slide.SlideMasks`: tissue and artefacts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from napari_xai.core.layers.coords import LayerDataTuple, mask_to_world
from napari_xai.core.masks.artefacts import ARTEFACT_LABELS
from napari_xai.core.naming import ARTEFACT_COLOURS, ROLE_COLOURS, mask_layer_name

if TYPE_CHECKING:
    from napari_xai.core.masks.slide import SlideMasks

__all__ = ["mask_layers", "truth_layer"]


def mask_layers(masks: SlideMasks, *, name_prefix: str = "slide") -> list[LayerDataTuple]:
    """Labels LayerData tuples for the masks, aligned with the slide layer.

    Parameters
    ----------
    masks : SlideMasks
        From :func:`slide_masks`.
    name_prefix : str
        Usually the slide's name; layers are named ``"<prefix> tissue"`` and
        ``"<prefix> artefacts"`` (deterministic: re-runs replace them).

    Returns
    -------
    list of (data, kwargs, "labels")
    """
    scale, translate = mask_to_world(masks.downsample)
    common = {"scale": scale, "translate": translate, "blending": "translucent"}
    tissue = (
        masks.tissue.astype(np.uint8),
        {
            **common,
            "name": mask_layer_name(name_prefix, "tissue"),
            "opacity": 0.35,
            "colormap": {0: "transparent", 1: ROLE_COLOURS["tissue"], None: "transparent"},
            "metadata": {
                "kind": "tissue_mask",
                "display": "outline",
                "downsample": masks.downsample,
                "tissue_fraction": masks.tissue_fraction,
            },
        },
        "labels",
    )
    colormap: dict[int | None, Any] = {0: "transparent", None: "transparent"}
    colormap.update({int(k): ARTEFACT_COLOURS[k] for k in ARTEFACT_LABELS})
    artefacts = (
        masks.artefact_labels.astype(np.uint8),
        {
            **common,
            "name": mask_layer_name(name_prefix, "artefacts"),
            "opacity": 0.6,
            "colormap": colormap,
            "metadata": {
                "kind": "artefact_mask",
                "display": "outline",
                "downsample": masks.downsample,
                "labels": dict(ARTEFACT_LABELS),
            },
        },
        "labels",
    )
    return [tissue, artefacts]


def truth_layer(
    mask: npt.NDArray[np.bool_],
    *,
    downsample: float,
    name: str,
    colour: Sequence[float],
    visible: bool = False,
) -> LayerDataTuple:
    """Labels layer (outlined) of a ground-truth mask at ``downsample`` (e.g. tumour).

    Parameters
    ----------
    mask : ndarray of bool, shape (rows, cols)
        The truth at ``downsample`` level-0 pixels per mask pixel.
    downsample : float
    name : str
        Layer name.
    colour : sequence of float
        RGB(A) in [0, 1] of the region.
    visible : bool
    """
    scale, translate = mask_to_world(downsample)
    return (
        np.asarray(mask).astype(np.uint8),
        {
            "name": name,
            "scale": scale,
            "translate": translate,
            "opacity": 0.4,
            "visible": bool(visible),
            "colormap": {0: "transparent", 1: tuple(colour), None: "transparent"},
            "metadata": {"kind": "ground_truth", "display": "outline", "downsample": downsample},
        },
        "labels",
    )
