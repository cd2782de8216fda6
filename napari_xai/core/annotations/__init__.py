"""Tumour annotation: QuPath GeoJSON, napari layers, morphology and evaluation.

Import the submodules directly (``napari_xai.core.annotations.geojson`` etc.);
this package imports nothing heavy on its own.
"""

from __future__ import annotations
