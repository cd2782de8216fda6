"""Tiny slides and a tiny model for the batch / result-folder tests (issue 7)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_tiny_slide(
    path: Path, *, seed: int = 0, shape_rc: tuple[int, int] = (384, 512), mpp: float = 1.0
) -> Path:
    """A tiled RGB TIFF with a textured tissue block on white glass (mpp in the tags)."""
    import tifffile

    rng = np.random.default_rng(seed)
    rows, cols = shape_rc
    img = np.full((rows, cols, 3), 240, np.uint8)
    h, w = rows // 2, cols // 2
    r0 = int(rng.integers(0, rows - h))
    c0 = int(rng.integers(0, cols - w))
    img[r0 : r0 + h, c0 : c0 + w] = (rng.integers(0, 128, (h, w, 3)) + 60).astype(np.uint8)
    img[r0 : r0 + h, c0 : c0 + w, 0] = 200  # pink-ish
    res = 1e4 / mpp
    tifffile.imwrite(
        path, img, tile=(128, 128), photometric="rgb",
        resolution=(res, res), resolutionunit="CENTIMETER",
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
