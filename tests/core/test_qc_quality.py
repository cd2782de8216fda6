"""Out-of-focus tissue and tissue folds on real tissue (artefact labels 5 and 6).

Truth from outside the detectors: a Gaussian blur of a disc of a real slide
(out of focus) and a band of real tissue with a shifted copy of itself laid
over it in transmittance (a fold), composited by ``benchmarks/bench_qc.py``;
the pen-free real images must not be called either. These classes are the
tissue's quality, not marks: they stay tissue and stay out of ``masks.artefact``
(what tiles are flagged from and the audit's shortcut candidates).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from napari_xai.core.masks import (
    QUALITY_LABELS,
    FocusOptions,
    FocusStats,
    SlideMasks,
    blur_mask,
    focus_labels,
    fold_mask,
    mark_mask,
    masks_from_thumbnail,
    merge_strokes,
    slide_masks,
)
from napari_xai.core.masks.focus import BLUR_LABEL
from napari_xai.core.masks.folds import FOLD_LABEL
from napari_xai.core.wsi import open_slide

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_qc import _down, _rec_prec, composite_blur, composite_fold  # noqa: E402


@pytest.fixture(scope="module")
def cmu(shared_data: Path) -> np.ndarray:
    with open_slide(shared_data / "slides" / "CMU-1-Small-Region.svs") as slide:
        return np.asarray(slide.levels[0].compute())[..., :3]


@pytest.fixture(scope="module")
def clean(shared_data: Path, cmu: np.ndarray) -> dict[str, tuple[np.ndarray, float, SlideMasks]]:
    """Pen-free real images (CMU-1 binned 2, as a 2048 px thumbnail sees it) and their masks."""
    import imageio.v3 as iio
    from skimage.data import immunohistochemistry

    with open_slide(shared_data / "slides" / "OS-1-detail.ome.tif") as slide:
        os1 = np.asarray(slide.levels[0].compute())[..., :3]
    lung = np.asarray(iio.imread(shared_data / "patches" / "pen" / "tcga-lung-rgb.png"))[..., :3]
    images = {
        "CMU-1": (_down(cmu).astype(np.uint8), 2.0),
        "OS-1": (os1, 1.0),
        "lung": (lung, 1.0),
        "IHC": (immunohistochemistry(), 1.0),
    }
    return {k: (img, ds, masks_from_thumbnail(img, ds)) for k, (img, ds) in images.items()}


def test_pen_free_real_images_are_neither_blurred_nor_folded(
    clean: dict[str, tuple[np.ndarray, float, SlideMasks]],
) -> None:
    for name, (_, _, masks) in clean.items():
        labels = masks.artefact_labels
        blur, fold = (labels == BLUR_LABEL).mean(), (labels == FOLD_LABEL).mean()
        print(f"\n{name}: called blur {blur:.4f}, fold {fold:.4f}")
        assert blur < 0.01 and fold < 0.01, name


@pytest.mark.parametrize("sigma", [3.0, 5.0])
def test_blur_of_real_tissue_is_found(
    cmu: np.ndarray, clean: dict[str, tuple[np.ndarray, float, SlideMasks]], sigma: float
) -> None:
    """A disc of CMU-1 blurred at level 0 (sigma in level-0 px), seen at downsample 2."""
    img, ds, masks = clean["CMU-1"]
    comp, disc = composite_blur(cmu, rng=np.random.default_rng(1), sigma=sigma, radius=0.25)
    truth = (_down(disc.astype(float)) > 0.5) & masks.tissue
    found = blur_mask(_down(comp).astype(np.uint8), downsample=ds) & masks.tissue
    rec, prec = _rec_prec(found, truth)
    print(f"\nblur sigma {sigma}: recall {rec:.3f} precision {prec:.3f}")
    # cells are 64 µm: those on the disc's rim are partly blurred (precision)
    assert rec > 0.7 and prec > 0.75
    assert not blur_mask(img, downsample=ds)[masks.tissue].any()


def test_folds_of_real_tissue_are_found(
    clean: dict[str, tuple[np.ndarray, float, SlideMasks]],
) -> None:
    rng = np.random.default_rng(2)
    recalls = []
    for name, (img, ds, masks) in clean.items():
        if name == "lung":  # 512 px of dense tissue: too little around a band to compare with
            continue
        comp, truth = composite_fold(img, masks.tissue, rng=rng, width=0.12)
        found = fold_mask(comp, masks.tissue, downsample=ds)
        rec, prec = _rec_prec(found, truth)
        print(f"\nfold {name}: recall {rec:.3f} precision {prec:.3f}")
        assert prec > 0.75, name
        recalls.append(rec)
    assert min(recalls) > 0.5 and np.mean(recalls) > 0.65


@pytest.fixture(scope="module")
def blurred_slide(cmu: np.ndarray, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """CMU-1 (2x, JPEG pyramid 1, 4, 16) with a disc blurred (sigma 4 px before the 2x)."""
    from test_qc_real import _pyramid_from

    comp, disc = composite_blur(cmu, rng=np.random.default_rng(3), sigma=4.0, radius=0.25)
    rgb = np.repeat(np.repeat(comp, 2, axis=0), 2, axis=1)
    truth = np.repeat(np.repeat(disc, 2, axis=0), 2, axis=1)
    return _pyramid_from(rgb, tmp_path_factory.mktemp("blur") / "blurred.svs"), truth


def _on_grid(truth: np.ndarray, masks: SlideMasks) -> np.ndarray:
    """The level-0 truth at the masks' grid (a mask pixel: the truth under its centre)."""
    d = masks.downsample
    rows, cols = masks.tissue.shape
    rr = np.minimum(((np.arange(rows) + 0.5) * d).astype(int), truth.shape[0] - 1)
    cc = np.minimum(((np.arange(cols) + 0.5) * d).astype(int), truth.shape[1] - 1)
    return truth[np.ix_(rr, cc)] & masks.tissue


def test_focus_pass_over_the_pyramid(blurred_slide: tuple[Path, Any]) -> None:
    """A coarse thumbnail cannot see blur; the lazy focus pass at downsample 2 does."""
    path, truth = blurred_slide
    with open_slide(path) as slide:
        thumb_only = slide_masks(slide, max_size=512)
        assert thumb_only.downsample > 8
        assert not (thumb_only.artefact_labels == BLUR_LABEL).any()
        masks = slide_masks(slide, max_size=512, strokes=True)
        ref = _on_grid(truth, masks)
        rec, prec = _rec_prec(masks.artefact_labels == BLUR_LABEL, ref)
        print(f"\nfocus pass, every chunk: recall {rec:.3f} precision {prec:.3f}")
        assert rec > 0.7 and prec > 0.85
        # big slides: each chunk judged from a window at its centre
        stats: list[FocusStats] = []
        opts = FocusOptions(sample_above=0, chunk=512, sample=256)
        sampled = focus_labels(slide, thumb_only, options=opts, stats=stats) == BLUR_LABEL
        assert stats[0].sampled and stats[0].level == 0 and stats[0].cells > 8
        rec_s, prec_s = _rec_prec(sampled, ref)
        print(f"focus pass, sampled chunks: recall {rec_s:.3f} precision {prec_s:.3f}")
        assert rec_s > 0.5 and prec_s > 0.7


def test_quality_labels_stay_tissue_and_are_not_marks() -> None:
    tissue = np.ones((20, 20), bool)
    labels = np.zeros((20, 20), np.uint8)
    labels[:10] = FOLD_LABEL
    labels[10:, :5] = BLUR_LABEL
    labels[15:, 15:] = 1  # ink
    assert {BLUR_LABEL, FOLD_LABEL} == set(QUALITY_LABELS)
    np.testing.assert_array_equal(mark_mask(labels), labels == 1)
    masks = SlideMasks(tissue, mark_mask(labels), labels, 8.0)
    strokes = np.zeros_like(labels)
    strokes[2:4, :] = 4  # red ink over the fold and into plain tissue
    merged = merge_strokes(masks, strokes)
    # a stroke over a fold is a mark: it replaces the fold label and leaves the tissue
    assert (merged.artefact_labels[2:4] == 4).all() and merged.artefact[2:4].all()
    assert not merged.tissue[2:4].any()
    assert (merged.artefact_labels[5:10] == FOLD_LABEL).all() and merged.tissue[5:10].all()
    assert not merged.artefact[5:10].any()


def test_qc_json_has_the_quality_classes(cmu: np.ndarray, tmp_path: Path) -> None:
    from PIL import Image

    from napari_xai.cli import main

    crop = cmu[1000:2200, 400:1600]  # tissue
    comp, _ = composite_blur(crop, rng=np.random.default_rng(4), sigma=5.0, radius=0.3)
    Image.fromarray(comp).save(tmp_path / "blurred.png")
    assert main(["qc", str(tmp_path / "blurred.png"), "--out", str(tmp_path / "qc")]) == 0
    qc = json.loads((tmp_path / "qc" / "blurred" / "qc.json").read_text())
    labels = np.asarray(Image.open(tmp_path / "qc" / "blurred" / "artefact_mask.png"))
    assert qc["artefact_fractions"]["blur"] == pytest.approx((labels == BLUR_LABEL).mean())
    assert qc["artefact_fractions"]["blur"] > 0.05
    assert qc["artefact_fractions"]["fold"] == pytest.approx((labels == FOLD_LABEL).mean())
    assert qc["artefact_labels"][str(BLUR_LABEL)].startswith("out of focus")
    csv = (tmp_path / "qc" / "qc_summary.csv").read_text().splitlines()
    assert "artefact_blur" in csv[0] and "artefact_fold" in csv[0]


def test_qc_and_scoring_write_the_same_masks(shared_data: Path, tmp_path: Path) -> None:
    """``napari-xai qc SLIDE`` and ``napari-xai score SLIDE`` use one mask size by default.

    OS-1 (1101 px): scoring used to take ``max(mask_size_for(...), 1024)`` (1024
    here, downsample 1.08) where QC took 2048 (downsample 1): different masks.
    """
    from PIL import Image

    from napari_xai.cli import main
    from napari_xai.core.options import MASK_SIZE

    slide = shared_data / "slides" / "OS-1-detail.ome.tif"
    assert main(["qc", str(slide), "--out", str(tmp_path / "qc")]) == 0
    assert main(["score", str(slide), "--model", "demo", "--out", str(tmp_path / "res")]) == 0
    qc_dir = tmp_path / "qc" / "OS-1-detail"
    (res_dir,) = [p for p in (tmp_path / "res").iterdir() if (p / "masks.json").is_file()]
    meta = json.loads((res_dir / "masks.json").read_text())
    assert meta["key"]["max_size"] == MASK_SIZE
    qc = json.loads((qc_dir / "qc.json").read_text())
    assert qc["downsample"] == meta["downsample"]
    for name in ("tissue_mask.png", "artefact_mask.png"):
        a = np.asarray(Image.open(qc_dir / name))
        b = np.asarray(Image.open(res_dir / name))
        np.testing.assert_array_equal(a, b, err_msg=name)
    tissue = np.asarray(Image.open(res_dir / "tissue_mask.png")) > 0
    assert qc["tissue_fraction"] == pytest.approx(tissue.mean(), abs=1e-12)
