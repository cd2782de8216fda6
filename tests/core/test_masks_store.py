"""Masks kept in a result folder: scoring and the audit use the stroke-resolution masks.

The slide is a real H&E region (CMU-1-Small-Region, upsampled 2x) with thin navy
hatching drawn over its tissue at level 0: too thin for the thumbnail pass, found by the stroke
pass. Tiles under it must be flagged from the stored (stroke) artefact mask,
the same rule as for a thumbnail artefact.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from napari_xai.core.masks import (
    cached_slide_masks,
    mark_mask,
    masks_from_thumbnail,
    masks_key,
    read_masks,
    slide_masks,
    write_masks,
)
from napari_xai.core.wsi import open_slide


@pytest.fixture(scope="module")
def hatched(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CMU-1 (2x) with two hatched squares of 6 px navy lines (12 px apart) over tissue."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from test_qc_real import _pyramid_from

    with open_slide(shared_data / "slides" / "CMU-1-Small-Region.svs") as slide:
        rgb = np.asarray(slide.levels[0].compute())[..., :3]
    # twice the size, so that the masks' thumbnail (1024 px) is coarse (downsample ~6)
    rgb = np.repeat(np.repeat(rgb, 2, axis=0), 2, axis=1)
    ink = np.asarray((36, 58, 150), float) / 255.0
    for r0, c0 in ((2600, 1200), (3800, 1800)):  # inside the skin strip
        block = rgb[r0 : r0 + 800, c0 : c0 + 800].astype(float)
        for k in range(0, 800, 12):
            block[k : k + 6] *= ink**0.7
        rgb[r0 : r0 + 800, c0 : c0 + 800] = block.clip(0, 255).astype(np.uint8)
    return _pyramid_from(rgb, tmp_path_factory.mktemp("hatched") / "hatched.svs")


def test_masks_round_trip_and_key(hatched: Path, tmp_path: Path) -> None:
    with open_slide(hatched) as slide:
        masks = slide_masks(slide, max_size=512, strokes=True)
        key = masks_key(slide, max_size=512, strokes=True)
        names = write_masks(masks, tmp_path, key=key)
        assert sorted(names) == ["artefact_mask.png", "masks.json", "tissue_mask.png"]
        back = read_masks(tmp_path, key=key)
        assert back is not None
        np.testing.assert_array_equal(back.tissue, masks.tissue)
        np.testing.assert_array_equal(back.artefact_labels, masks.artefact_labels)
        assert (back.downsample, back.modality, back.stain) == (
            masks.downsample,
            masks.modality,
            masks.stain,
        )
        # another size or no stroke pass: not these masks
        assert read_masks(tmp_path, key=masks_key(slide, max_size=1024, strokes=True)) is None
        assert read_masks(tmp_path, key=masks_key(slide, max_size=512, strokes=False)) is None
        assert read_masks(tmp_path, key=masks_key(slide, max_size=1024, strokes=True),
                          any_size=True) is not None  # fmt: skip
        # stored masks are reused as they are (a mark planted in the file is read back)
        planted = masks.artefact_labels.copy()
        planted[:3, :3] = 2
        from dataclasses import replace

        write_masks(replace(masks, artefact_labels=planted), tmp_path, key=key)
        again = cached_slide_masks(slide, tmp_path, max_size=512)
        assert (again.artefact_labels[:3, :3] == 2).all()
    # a damaged file is a clear error naming it
    (tmp_path / "artefact_mask.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="artefact_mask.png"):
        read_masks(tmp_path)


def test_scoring_and_audit_use_the_stroke_masks(
    hatched: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pandas as pd
    from PIL import Image

    from napari_xai.core import options
    from napari_xai.core.options import AuditSpec, GridOptions, SlideOptions
    from napari_xai.core.pipeline import run_slide

    # the slide is made for a 1024 px mask (downsample ~6, where the thumbnail pass
    # misses the hatching); the default (MASK_SIZE 2048, downsample ~3) sees most of it
    monkeypatch.setattr(options, "MASK_SIZE", 1024)

    def drive(gen):  # noqa: ANN001, ANN202
        while True:
            try:
                next(gen)
            except StopIteration as stop:
                return stop.value

    grid = GridOptions(min_tissue=0.3)
    folder = drive(run_slide(hatched, "demo", tmp_path, SlideOptions(grid=grid)))
    manifest = json.loads((folder / "manifest.json").read_text())
    assert {"masks", "tissue_mask", "artefact_mask"} <= set(manifest["files"])
    stored = read_masks(folder)
    assert stored is not None
    labels = np.asarray(Image.open(folder / "artefact_mask.png"))
    # the stroke pass found the hatching that the thumbnail pass misses
    with open_slide(hatched) as slide:
        size = json.loads((folder / "masks.json").read_text())["key"]["max_size"]
        thumb, ds = slide.thumbnail(max_size=size)
    thumb_only = masks_from_thumbnail(np.asarray(thumb)[..., :3], ds).artefact
    assert thumb_only.shape == labels.shape
    marks = mark_mask(labels)  # out-of-focus tissue and folds are not marks
    strokes_only = marks & ~thumb_only
    assert strokes_only.sum() > 100

    tiles = pd.read_parquet(folder / "tiles.parquet")

    def fraction(mask: np.ndarray) -> np.ndarray:
        d = stored.downsample
        out = []
        for r, c, h, w in tiles[["row", "col", "height", "width"]].itertuples(index=False):
            sub = mask[
                int(r // d) : int(np.ceil((r + h) / d)), int(c // d) : int(np.ceil((c + w) / d))
            ]
            out.append(sub.mean() if sub.size else 0.0)
        return np.asarray(out)

    flagged = tiles["flags"].str.contains("artefact").to_numpy()
    stroke_frac = fraction(marks)

    # tiles are flagged from the stored (stroke) mask by the thumbnail mask's rule
    # (artefact fraction >= 0.25; our crop of the mask differs by a pixel row)
    assert flagged.sum() >= 2
    assert (stroke_frac[flagged] > 0.2).all()
    assert flagged[stroke_frac > 0.3].all()
    # and at least one only because of the stroke pass
    assert (fraction(thumb_only)[flagged] < 0.1).any()
    # a second stage reuses the stored masks (same files, same labels)
    before = (folder / "artefact_mask.png").read_bytes()
    audit = AuditSpec(max_tiles=8, counterfactual=False, sanity=False)
    folder = drive(run_slide(hatched, "demo", tmp_path, SlideOptions(grid=grid, audit=audit)))
    assert (folder / "artefact_mask.png").read_bytes() == before
    attention = json.loads((folder / "audit.json").read_text())["attention"]
    # the audit ran on the scoring's masks and grid
    assert attention["regions_downsample"] == pytest.approx(stored.downsample)
    assert attention["n_grid_tiles"] == len(tiles)


def test_masks_are_made_once_per_process(
    small_pyramid: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Callers of one slide's masks, at once or one after the other, share one computation."""
    import threading

    from napari_xai.core.masks import store

    made = []
    real = store.slide_masks

    def counted(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        made.append(threading.get_ident())
        return real(*args, **kwargs)

    monkeypatch.setattr(store, "slide_masks", counted)
    got: list = []
    with open_slide(small_pyramid) as slide:

        def ask() -> None:
            got.append(cached_slide_masks(slide, None, max_size=256))

        threads = [threading.Thread(target=ask) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ask()
        assert len(made) == 1 and len(got) == 4
        assert all(m is got[0] for m in got)
        with pytest.raises(ValueError, match="read-only"):
            got[0].artefact_labels[0, 0] = 1
        cached_slide_masks(slide, None, max_size=128)  # another key: made again
        assert len(made) == 2
