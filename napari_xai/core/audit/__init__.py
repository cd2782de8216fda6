"""Shortcut and bias audit: does the model look at tissue, or at the pen mark.

Submodules (import them directly; this package imports nothing heavy):

- :mod:`napari_xai.core.audit.attention`: attribution-mass shares on tissue,
  background, artefacts and the slide border band; per-tile flags; slide verdict.
- :mod:`napari_xai.core.audit.data`: cohort data audit (class balance, montages,
  colour statistics, metadata/label association).
- :mod:`napari_xai.core.audit.report`: self-contained HTML report + ``audit.json``.
- :mod:`napari_xai.core.audit.slide`: end-to-end audit of one slide with a model, and
  region shares of a stitched saliency map from a result store.
- :mod:`napari_xai.core.audit.tiles`: attention audit of a tile cohort (artefacts
  detected in each tile).
"""

from __future__ import annotations
