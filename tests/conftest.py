"""Shared fixtures: real data location, small synthetic slides, tiny models."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

# Two cores: keep BLAS/torch from oversubscribing when tests run in parallel processes.
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="session", autouse=True)
def _own_napari_xai_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Give the test run its own napari-xai cache folder (``$NAPARI_XAI_CACHE``).

    The per-user cache (``~/.cache/napari-xai``) holds the sanity results audits keep
    per model hash, the widgets' default result stores and the sample slide. Every run
    on the machine shares it: the developers', concurrent ones and CI's. A result left
    there by an earlier run (the "sanity:" label of a model hash, say) must not decide a
    test. Tests that need their own cache still set the variable themselves.
    """
    patch = pytest.MonkeyPatch()
    patch.setenv("NAPARI_XAI_CACHE", str(tmp_path_factory.mktemp("napari-xai-cache")))
    yield
    patch.undo()


@pytest.fixture(autouse=True)
def _masks_made_afresh() -> None:
    """Forget the masks an earlier test made in this process (``cached_slide_masks``).

    A test that changes a detector's options for the same slide file must see
    them made again; only loaded when some test has imported the masks.
    """
    import sys

    store = sys.modules.get("napari_xai.core.masks.store")
    if store is not None:
        store.forget_made_masks()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ``../shared/data`` (real slides and tiles); skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test data not found at {SHARED_DATA}")
    return SHARED_DATA


def real_slides() -> list[Path]:
    """Every readable real slide in ``../shared/data/slides`` (not the ``bad`` ones)."""
    folder = SHARED_DATA / "slides"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file())


def write_pyramid_tiff(
    path: Path,
    *,
    shape_rc: tuple[int, int] = (2048, 3072),
    tile: int = 256,
    levels: int = 3,
    mpp: float | None = 0.5,
    seed: int = 0,
) -> Path:
    """Write a small tiled JPEG pyramid (Aperio-style description) with smooth content.

    Copied in spirit from tiffslide's ``_write_test_tiff``: level 0 plus
    ``levels - 1`` halvings as SubIFDs. Content is a smooth colour gradient
    with noise so that every tile differs.
    """
    import numpy as np
    import tifffile

    rng = np.random.default_rng(seed)
    rows, cols = shape_rc
    r = np.arange(rows)[:, None]
    c = np.arange(cols)[None, :]
    data = np.empty((rows, cols, 3), np.uint8)
    data[..., 0] = (128 + 100 * np.sin(r / 97.0)).astype(np.uint8)
    data[..., 1] = (128 + 100 * np.cos(c / 131.0)).astype(np.uint8)
    data[..., 2] = ((r + c) % 256).astype(np.uint8)
    # Noise from a small non-tile-sized patch, repeated: every tile still differs.
    noise = rng.integers(0, 8, (251, 263, 1), dtype=np.uint8)
    data += np.tile(noise, (rows // 251 + 1, cols // 263 + 1, 1))[:rows, :cols]
    desc = f"Aperio Image Library v12.0.0\r\n{cols}x{rows} -> {cols}x{rows} - |AppMag = 20"
    if mpp is not None:
        desc += f"|MPP = {mpp}"
    with tifffile.TiffWriter(path, bigtiff=False) as tif:
        opts = dict(tile=(tile, tile), compression="jpeg", photometric="rgb")
        tif.write(data, description=desc, **opts)
        level = data
        for _ in range(levels - 1):
            level = level[::2, ::2]
            if min(level.shape[:2]) < tile:
                break
            tif.write(level, subfiletype=1, **opts)
    return path


@pytest.fixture(scope="session")
def small_pyramid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2048 x 3072 tiled JPEG pyramid with 3 levels and mpp 0.5."""
    return write_pyramid_tiff(tmp_path_factory.mktemp("slides") / "pyramid.svs")
