"""The masks' disk morphology equals scikit-image's, pixel for pixel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from skimage.morphology import closing, disk, opening

from napari_xai.core.masks.morphology import disk_closing, disk_opening


@pytest.mark.parametrize("radius", [0, 1, 2, 3, 4, 5, 7, 11])
def test_random_masks_equal_skimage(radius: int) -> None:
    """Random masks of every density and shape, tiny ones (below the disk) included."""
    rng = np.random.default_rng(radius)
    for _ in range(60):
        shape = tuple(int(n) for n in rng.integers(1, 48, 2))
        mask = rng.random(shape) < rng.random()
        np.testing.assert_array_equal(disk_closing(mask, radius), closing(mask, disk(radius)))
        np.testing.assert_array_equal(disk_opening(mask, radius), opening(mask, disk(radius)))


def test_real_marks_equal_skimage(shared_data: Path) -> None:
    """Dark and coloured pixels of real pen tiles: the masks artefact_labels closes."""
    import imageio.v3 as iio

    tiles = sorted((shared_data / "patches" / "pen").glob("*.png"))
    assert tiles, "no pen tiles in ../shared/data/patches/pen"
    for path in tiles:
        rgb = np.asarray(iio.imread(path))[..., :3].astype(np.int16)
        chroma = rgb.max(axis=-1) - rgb.min(axis=-1)
        for mask in (rgb.max(axis=-1) < 110, chroma > 40, rgb[..., 1] > rgb[..., 0] + 8):
            for radius in (1, 2, 4):
                got, want = disk_closing(mask, radius), closing(mask, disk(radius))
                assert (got == want).all(), f"{path.name}: closing r={radius} differs"
                got, want = disk_opening(mask, radius), opening(mask, disk(radius))
                assert (got == want).all(), f"{path.name}: opening r={radius} differs"


def test_the_result_is_a_new_array() -> None:
    """Writing into the result leaves the mask alone (radius 0 takes the fast path too)."""
    mask = np.zeros((30, 30), bool)
    mask[10:20, 10:20] = True
    out = disk_closing(mask, 0)
    out[:] = False
    assert mask.sum() == 100
