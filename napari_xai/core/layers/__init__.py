"""Every napari LayerData builder: results, masks, saliency, audit, annotations.

Nothing here imports napari, Qt or torch: each builder is a pure function that
returns ``(data, kwargs, layer_type)`` tuples, which napari (or
``napari.layers.Layer.create``) turns into layers. Layer names are deterministic
(:mod:`napari_xai.core.naming`), so a re-run updates layers instead of piling
them up. World coordinates are level-0 pixels in (row, col) order
(:mod:`~napari_xai.core.layers.coords`, the one place that places maps and masks
and swaps x/y).

Submodules (import them directly; this package imports only the light ones):

- :mod:`~napari_xai.core.layers.coords`: ``grid_to_world``, ``mask_to_world``,
  ``xy_to_rc``/``rc_to_xy``.
- :mod:`~napari_xai.core.layers.slide`: the slide image (the reader's layer).
- :mod:`~napari_xai.core.layers.scores`: probability heatmaps and the tiles layer.
- :mod:`~napari_xai.core.layers.masks`: tissue and artefact Labels.
- :mod:`~napari_xai.core.layers.saliency`: stitched saliency maps.
- :mod:`~napari_xai.core.layers.audit`: audited tiles, flagged regions, the verdict.
- :mod:`~napari_xai.core.layers.annotations`: annotations to and from Shapes/Points.
- :mod:`~napari_xai.core.layers.editing`: the Annotate widget's actions on a layer's snapshot.
- :mod:`~napari_xai.core.layers.ood`: the ``ood_score`` map.
"""

# No `from __future__ import annotations` here: it would bind the name `annotations` in
# this package, and `from napari_xai.core.layers import annotations` would get it
# instead of the submodule.
from napari_xai.core.layers.coords import LayerDataTuple, grid_to_world, mask_to_world
from napari_xai.core.layers.scores import heatmap_layer, heatmap_layers, score_layers, tiles_layer

__all__ = [
    "LayerDataTuple",
    "grid_to_world",
    "heatmap_layer",
    "heatmap_layers",
    "mask_to_world",
    "score_layers",
    "tiles_layer",
]
