"""A real viewer shows a synthetic slide with its tissue and artefact masks over the same place."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_xai.core.layers.masks import mask_layers
from napari_xai.core.masks import slide_masks
from napari_xai.core.naming import ROLE_COLOURS, rgb255
from napari_xai.demo.synthetic import write_synthetic_slide

SHAPE_RC = (3072, 4096)


@pytest.fixture(scope="module")
def slide_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("viewer") / "viewer.svs"
    write_synthetic_slide(path, shape_rc=SHAPE_RC, seed=0)
    return path


def _pink(shot: np.ndarray) -> np.ndarray:
    rgb = shot[..., :3].astype(int)
    return (rgb[..., 0] > rgb[..., 1] + 20) & (rgb[..., 2] > rgb[..., 1] + 10)


def test_masks_cover_the_tissue_on_screen(make_napari_viewer, slide_path: Path) -> None:
    viewer = make_napari_viewer(show=True)
    (image,) = viewer.open(slide_path, plugin="napari-xai")
    assert image.rgb and image.multiscale
    slide = image.metadata["slide"]
    masks = slide_masks(slide, max_size=1024)
    added = [viewer._add_layer_from_data(*ldt)[0] for ldt in mask_layers(masks, name_prefix="s")]
    tissue, artefacts = added
    assert tissue.name == "s tissue" and artefacts.name == "s artefacts"

    # mask layers span the slide: same world bounds within one mask pixel
    d = masks.downsample
    for layer in added:
        lo = np.asarray(layer.data_to_world(np.zeros(2))) - d / 2
        hi = np.asarray(layer.data_to_world(np.array(layer.data.shape) - 1)) + d / 2
        np.testing.assert_allclose(lo, (-0.5, -0.5), atol=1e-6)
        assert np.all(np.abs(hi - (SHAPE_RC[0] - 0.5, SHAPE_RC[1] - 0.5)) <= d)

    viewer.reset_view()
    tissue.visible = artefacts.visible = False
    slide_shot = viewer.screenshot(canvas_only=True, flash=False)
    assert slide_shot[..., :3].std() > 5, "blank canvas"
    pink = _pink(slide_shot)
    assert pink.mean() > 0.1, "no H&E tissue colour on screen"

    # the tissue mask alone, opaque: it must light up where the pink tissue was
    image.visible = False
    tissue.visible = True
    tissue.opacity = 1.0
    tissue.blending = "opaque"
    mask_shot = viewer.screenshot(canvas_only=True, flash=False)
    rgb = mask_shot[..., :3].astype(int)
    # the palette's tissue colour (core/naming.py ROLE_COLOURS["tissue"]), within 30 levels
    want = np.array(rgb255(ROLE_COLOURS["tissue"]))
    tissue_px = np.abs(rgb - want).max(-1) < 30
    iou = (tissue_px & pink).sum() / (tissue_px | pink).sum()
    assert iou > 0.8, iou

    # artefacts (pen, marker, ruler, label) are drawn too, outside the tissue mostly
    tissue.visible = False
    artefacts.visible = True
    artefacts.opacity = 1.0
    art_shot = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)
    coloured = (np.abs(art_shot - slide_shot[..., :3].astype(int)).sum(-1) > 60) & ~np.all(
        art_shot < 10, axis=-1
    )
    assert 0.005 < coloured.mean() < 0.3
