"""Tissue and artefact masks: against synthetic ground truth and on real slides and tiles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_xai.core.layers.masks import mask_layers
from napari_xai.core.masks import (
    SlideMasks,
    artefact_labels,
    artefact_mask,
    masks_from_thumbnail,
    slide_masks,
    tissue_mask,
)
from napari_xai.demo.synthetic import SyntheticSlide, SyntheticTruth, write_synthetic_slide


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SyntheticTruth]:
    path = tmp_path_factory.mktemp("masks") / "masks.svs"
    return path, write_synthetic_slide(path, shape_rc=(3072, 4096), seed=0)


def test_masks_match_synthetic_truth(synthetic: tuple[Path, SyntheticTruth]) -> None:
    from napari_xai.core.wsi import open_slide

    path, truth = synthetic
    with open_slide(path) as slide:
        masks = slide_masks(slide, max_size=1024)
    assert masks.downsample == pytest.approx(4.0)
    # truth at downsample 2 -> masks at 4: take every other truth pixel (centres)
    f = int(round(masks.downsample / truth.downsample))
    rows, cols = masks.tissue.shape

    def at_mask_res(m: np.ndarray) -> np.ndarray:
        return m[f // 2 :: f, f // 2 :: f][:rows, :cols]

    tissue = at_mask_res(truth.tissue)
    art = at_mask_res(truth.artefact)
    iou_tissue = _iou(masks.tissue, tissue & ~art)
    iou_art = _iou(masks.artefact, art)
    print(f"\nsynthetic 3072x4096 seed 0: tissue IoU {iou_tissue:.3f}, artefact IoU {iou_art:.3f}")
    for kind, m in truth.artefacts.items():
        m = at_mask_res(m)
        print(f"  {kind}: recall {(masks.artefact & m).sum() / m.sum():.3f}")
    assert iou_tissue > 0.9
    assert iou_art > 0.8
    # few false alarms: what is flagged is mostly a true artefact
    assert (masks.artefact & ~art).sum() < 0.1 * masks.artefact.sum()


def test_glass_only_and_tissue_only_images() -> None:
    slide = SyntheticSlide((4096, 4096), seed=5, artefacts=())
    glass = slide.render_region((0, 0), (100, 100), level=1)  # top-left corner: bare glass
    assert not tissue_mask(glass).any()
    assert not artefact_mask(glass).any()
    rng = np.random.default_rng(0)
    from napari_xai.demo.synthetic import render_patch

    tissue = np.concatenate([render_patch("normal", rng=rng) for _ in range(2)], axis=1)
    assert tissue_mask(tissue).mean() > 0.9
    assert artefact_mask(tissue).mean() < 0.01


def test_inks_are_artefacts_and_not_tissue() -> None:
    img = np.full((200, 300, 3), 244, np.uint8)
    img[40:60, 20:280] = (38, 128, 74)  # green ink
    img[100:120, 20:280] = (28, 28, 32)  # black ink
    img[150:170, 20:280] = (226, 222, 196)  # ruler plastic
    labels = artefact_labels(img)
    assert (labels[45:55, 30:270] == 1).all()
    assert (labels[105:115, 30:270] == 2).all()
    assert (labels[155:165, 30:270] == 3).all()
    assert not tissue_mask(img).any()
    with pytest.raises(ValueError, match="RGB"):
        tissue_mask(np.zeros((10, 10)))


def test_mask_layers_align_with_the_slide() -> None:
    from napari.layers import Layer

    tissue = np.zeros((50, 40), bool)
    tissue[10:20, 5:15] = True
    labels = np.zeros((50, 40), np.uint8)
    labels[30:35, 5:30] = 2
    masks = SlideMasks(tissue, labels > 0, labels, 8.0)
    layers = [Layer.create(*ldt) for ldt in mask_layers(masks, name_prefix="s1")]
    assert [ly.name for ly in layers] == ["s1 tissue", "s1 artefacts"]
    for layer in layers:
        assert type(layer).__name__ == "Labels"
        np.testing.assert_allclose(layer.scale, (8, 8))
        np.testing.assert_allclose(layer.translate, (3.5, 3.5))
        # mask pixel (i, j) covers level-0 pixels [8i, 8i + 8): its centre is 8i + 3.5
        np.testing.assert_allclose(layer.data_to_world((2, 3)), (19.5, 27.5))
    assert layers[0].data.max() == 1 and layers[1].data.max() == 2


def test_real_slide_tissue_fraction(shared_data: Path) -> None:
    from napari_xai.core.wsi import open_slide

    with open_slide(shared_data / "slides" / "CMU-1-Small-Region.svs") as slide:
        masks = slide_masks(slide, max_size=1024)
    print(
        f"\nCMU-1-Small-Region: tissue fraction {masks.tissue_fraction:.3f}, "
        f"artefact fraction {masks.artefact.mean():.3f} (downsample {masks.downsample:.2f})"
    )
    # a strip of skin over about a third of the field, surrounded by glass
    assert 0.15 < masks.tissue_fraction < 0.5
    assert masks.artefact.mean() < 0.08
    with open_slide(shared_data / "slides" / "OS-1-detail.ome.tif") as slide:
        masks = slide_masks(slide, max_size=1024)
    print(f"OS-1-detail: tissue fraction {masks.tissue_fraction:.3f}")
    assert masks.tissue_fraction > 0.8  # a crop inside the tissue
    assert masks.artefact.mean() < 0.02


@pytest.mark.parametrize(
    ("prefix", "low", "high"),
    [("BACK", 0.0, 0.05), ("STR", 0.9, 1.0), ("MUS", 0.9, 1.0), ("DEB", 0.9, 1.0),
     ("LYM", 0.9, 1.0), ("TUM", 0.3, 1.0)],
)  # fmt: skip
def test_nct_crc_tiles(shared_data: Path, prefix: str, low: float, high: float) -> None:
    folder = shared_data / "patches" / "nct_crc_he_100k_sample"
    (path,) = sorted(folder.glob(f"{prefix}-*.tif"))
    rgb = tifffile.imread(path)[..., :3]
    fraction = tissue_mask(rgb).mean()
    print(f"\n{path.name}: tissue fraction {fraction:.3f}")
    assert low <= fraction <= high
    assert artefact_mask(rgb).mean() < 0.05


def test_masks_from_thumbnail_keeps_the_downsample() -> None:
    thumb = SyntheticSlide((2048, 2048), seed=2).render_region((0, 0), (512, 512), level=1)
    masks = masks_from_thumbnail(thumb, 4.0)
    assert masks.tissue.shape == masks.artefact.shape == (512, 512)
    assert masks.downsample == 4.0
    assert not (masks.tissue & masks.artefact).any()


def test_pale_tissue_counts_where_it_touches_stained_tissue() -> None:
    """Hysteresis: a pale band (OD ~0.022, under the 0.025 floor) joined to stain is tissue.

    The same pale band alone on the glass is not (nothing stained touches it),
    nor is the glass's JPEG-like noise.
    """
    rng = np.random.default_rng(0)
    img = np.full((300, 400, 3), 240.0)
    img += rng.normal(0, 1.5, img.shape)  # glass noise
    img[50:150, 40:120] = (150, 90, 170)  # stained (purple)
    img[50:150, 160:240] = (150, 90, 170)
    pale = 240 * 10**-0.022  # OD 0.022 in every channel: pale grey-blue stroma
    img[50:150, 120:160] = pale  # between the two stained blocks
    img[200:280, 40:240] = pale  # alone on the glass
    mask = tissue_mask(np.clip(img, 0, 255).astype(np.uint8), artefact=np.zeros((300, 400), bool))
    assert mask[60:140, 125:155].mean() > 0.95  # the joined band
    assert mask[205:275, 45:235].mean() < 0.05  # the lone band
    assert mask[160:195, 250:390].mean() < 0.01  # glass
    assert not mask[10:40, 10:390].any()


def test_truth_layer_puts_each_mask_pixel_over_the_level0_pixels_it_covers() -> None:
    from napari_xai.core.layers.masks import truth_layer

    mask = np.zeros((4, 6), bool)
    mask[1, 2] = True
    data, kwargs, kind = truth_layer(
        mask, downsample=8.0, name="s tumour (truth)", colour=(1, 0, 0)
    )
    assert kind == "labels" and data.dtype == np.uint8 and data.sum() == 1 and data[1, 2] == 1
    # mask pixel (1, 2) covers level-0 rows 8..15 and cols 16..23: its centre is (11.5, 19.5)
    centre = np.asarray(kwargs["translate"]) + np.asarray(kwargs["scale"]) * (1, 2)
    np.testing.assert_allclose(centre, (11.5, 19.5))
    assert kwargs["colormap"][1] == (1, 0, 0) and kwargs["metadata"]["display"] == "outline"
