"""Tiny H&E-like slides for the batch / result-folder tests (issue 7).

Slides are mosaics of 64 px synthetic patches (``render_patch``) at 1 µm/px, the
demo model's tile size and resolution: glass around the edge, normal tissue
inside, and a tumour block on "positive" slides. A small pool of patches is
rendered once per process and reused, so a slide costs milliseconds.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

PATCH = 64


@lru_cache(maxsize=1)
def _pool() -> dict[str, list[np.ndarray]]:
    from napari_xai.demo.synthetic import render_patch

    rng = np.random.default_rng(1234)
    return {
        k: [render_patch(k, size=PATCH, rng=rng) for _ in range(4)]
        for k in ("background", "normal", "tumour")
    }


def write_tiny_slide(
    path: Path,
    *,
    seed: int = 0,
    grid_rc: tuple[int, int] = (6, 8),
    tumour: bool = True,
    mpp: float = 1.0,
) -> Path:
    """Write a tiled RGB TIFF mosaic of synthetic patches (mpp in the resolution tags)."""
    import tifffile

    rng = np.random.default_rng(seed)
    pool = _pool()
    gr, gc = grid_rc
    kinds = np.full((gr, gc), "normal", dtype=object)
    kinds[0, :] = kinds[-1, :] = kinds[:, 0] = kinds[:, -1] = "background"
    if tumour:
        r0 = int(rng.integers(1, max(2, gr - 3)))
        c0 = int(rng.integers(1, max(2, gc - 3)))
        kinds[r0 : r0 + 2, c0 : c0 + 3] = "tumour"
        kinds[0, :] = kinds[-1, :] = kinds[:, 0] = kinds[:, -1] = "background"
    img = np.zeros((gr * PATCH, gc * PATCH, 3), np.uint8)
    for i in range(gr):
        for j in range(gc):
            patch = pool[kinds[i, j]][int(rng.integers(0, 4))]
            img[i * PATCH : (i + 1) * PATCH, j * PATCH : (j + 1) * PATCH] = patch
    res = 1e4 / mpp
    tifffile.imwrite(
        path,
        img,
        tile=(128, 128),
        photometric="rgb",
        resolution=(res, res),
        resolutionunit="CENTIMETER",
    )
    return path


def write_tiny_model(path: Path, *, seed: int = 0) -> Path:
    """A randomly initialised demo CNN (64 px tiles at 1 µm/px) saved as TorchScript."""
    import torch

    from napari_xai.core.models.card import ModelCard
    from napari_xai.core.models.demo import make_demo_cnn
    from napari_xai.core.models.loading import save_torchscript

    torch.manual_seed(seed)
    card = ModelCard(
        class_names=("background", "normal", "tumour"), tile_size=64, mpp=1.0, name="tiny"
    )
    return save_torchscript(make_demo_cnn(3), card, path)
