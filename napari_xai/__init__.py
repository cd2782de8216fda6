"""napari-xai: make tile-level models on whole-slide images explain themselves.

Importing this package is cheap on purpose: napari imports it to resolve every
command of the plugin, so nothing heavy (torch, dask.array, Qt) is imported here.
The public API lives in :mod:`napari_xai.core`.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
