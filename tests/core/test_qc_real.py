"""Tissue and ink masks of every modality against hand-checked references on real images.

The references in ``tests/data/qc/`` were drawn with rules independent of
:mod:`napari_xai.core.masks` (HSV hue bands for pen ink, smoothed brightness for
tissue) and checked by eye on overlays; see ``tests/data/qc/README.md``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_xai.core.masks import (
    artefact_labels,
    estimate_background,
    guess_stain,
    masks_from_thumbnail,
    tissue_mask,
)

REF = Path(__file__).resolve().parents[1] / "data" / "qc"


def _ref(name: str) -> np.ndarray:
    import imageio.v3 as iio

    return np.asarray(iio.imread(REF / f"{name}.png")) > 0


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def _png(path: Path) -> np.ndarray:
    import imageio.v3 as iio

    return np.asarray(iio.imread(path))[..., :3]


def _thumb(path: Path) -> tuple[np.ndarray, float]:
    from napari_xai.core.wsi import open_slide

    with open_slide(path) as slide:
        thumb, ds = slide.thumbnail(max_size=1024)
    return np.asarray(thumb)[..., :3], ds


def test_ihc_tissue_and_no_false_ink() -> None:
    from skimage.data import immunohistochemistry

    rgb = immunohistochemistry()
    masks = masks_from_thumbnail(rgb, 1.0)
    assert masks.modality == "brightfield" and masks.stain == "IHC"
    iou = _iou(masks.tissue | masks.artefact, _ref("ihc_tissue"))
    print(f"\nIHC: tissue IoU {iou:.3f}, ink {masks.artefact.mean():.4f}")
    assert iou > 0.9
    # the blue haematoxylin counterstain and the DAB are stain, not ink
    assert masks.artefact.mean() < 0.01


def test_he_slide_tissue(shared_data: Path) -> None:
    thumb, _ = _thumb(shared_data / "slides" / "CMU-1-Small-Region.svs")
    masks = masks_from_thumbnail(thumb, 3.0)
    assert masks.stain == "H&E"
    iou = _iou(masks.tissue, _ref("CMU-1-Small-Region_tissue"))
    print(f"\nCMU-1-Small-Region: tissue IoU {iou:.3f}")
    assert iou > 0.9


def test_fluorescence_detected_with_its_tissue(shared_data: Path) -> None:
    thumb, ds = _thumb(shared_data / "slides" / "test3-DAPI-2.ndpi")
    bg = estimate_background(thumb)
    assert bg.modality == "fluorescence"
    masks = masks_from_thumbnail(thumb, ds)
    assert masks.stain == "fluorescence"
    assert not masks.artefact.any()
    iou = _iou(masks.tissue, _ref("test3-DAPI-2_tissue"))
    print(f"\ntest3-DAPI-2: tissue IoU {iou:.3f}")
    assert iou > 0.9


@pytest.mark.parametrize(
    ("name", "label"), [("tcga-green-pen", None), ("tcga-red-pen", 4), ("wsi-blue-pen", 1)]
)
def test_real_pen_ink_found(shared_data: Path, name: str, label: int | None) -> None:
    rgb = _png(shared_data / "patches" / "pen" / f"{name}.png")
    labels = artefact_labels(rgb)
    ref = _ref(f"{name}_pen")
    found = labels > 0
    recall = (found & ref).sum() / ref.sum()
    precision = (found & ref).sum() / max(1, found.sum())
    print(f"\n{name}: pen recall {recall:.3f}, precision {precision:.3f}")
    assert recall > 0.95
    assert precision > 0.85
    if label is not None:  # the colour class of the ink
        assert np.mean(labels[ref & found] == label) > 0.9
    # ink is not tissue
    assert not (tissue_mask(rgb, artefact=found) & found).any()


@pytest.mark.parametrize("name", ["tcga-lung-rgb"])
def test_pen_free_he_has_no_ink(shared_data: Path, name: str) -> None:
    rgb = _png(shared_data / "patches" / "pen" / f"{name}.png")
    assert (artefact_labels(rgb) > 0).mean() < 0.01  # red blood cells included
    assert guess_stain(rgb, tissue_mask(rgb)) == "H&E"


def test_nct_tiles_have_no_ink(shared_data: Path) -> None:
    import tifffile

    for path in sorted((shared_data / "patches" / "nct_crc_he_100k_sample").glob("*.tif")):
        rgb = tifffile.imread(path)[..., :3]
        assert (artefact_labels(rgb) > 0).mean() < 0.01, path.name


def test_thin_strokes_over_real_tissue(shared_data: Path) -> None:
    """Semi-transparent 6-10 px strokes composited onto real H&E and IHC, found at downsample 2."""
    import sys

    from skimage.data import immunohistochemistry

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from bench_qc import _down, composite_strokes

    from napari_xai.core.masks import fine_ink_labels

    lung = _png(shared_data / "patches" / "pen" / "tcga-lung-rgb.png")
    for name, img in (("lung", lung), ("IHC", immunohistochemistry())):
        rng = np.random.default_rng(1)
        bg = estimate_background(img)
        for ink, min_recall in (("green", 0.9), ("red", 0.9), ("navy", 0.9), ("black", 0.9)):
            comp, truth = composite_strokes(img, ink, rng=rng, width=8, alpha=0.7)
            found = fine_ink_labels(_down(comp).astype(np.uint8), background=bg) > 0
            truth = _down(truth.astype(float)) > 0.5
            recall = (found & truth).sum() / truth.sum()
            from scipy import ndimage as ndi

            precision = (found & ndi.binary_dilation(truth, iterations=2)).sum() / found.sum()
            print(f"\n{name} {ink}: recall {recall:.3f} precision {precision:.3f}")
            assert recall > min_recall, (name, ink)
            assert precision > 0.9, (name, ink)
        # the clean image: nuclei, DAB, eosin, red blood cells are not ink
        assert (fine_ink_labels(_down(img).astype(np.uint8), background=bg) > 0).mean() < 0.01


def test_stroke_pass_over_a_slide_is_lazy_and_on_the_mask_grid(shared_data: Path) -> None:
    from napari_xai.core.masks import slide_masks
    from napari_xai.core.wsi import open_slide

    with open_slide(shared_data / "slides" / "CMU-1-Small-Region.svs") as slide:
        coarse = slide_masks(slide, max_size=1024)
        fine = slide_masks(slide, max_size=1024, strokes=True)
    assert fine.artefact_labels.shape == coarse.artefact_labels.shape
    # the thumbnail pass is kept; the stroke pass only adds
    assert (fine.artefact_labels[coarse.artefact] == coarse.artefact_labels[coarse.artefact]).all()
    assert fine.artefact.mean() < coarse.artefact.mean() + 0.02  # a clean H&E slide
    assert not (fine.tissue & fine.artefact).any()


def _pyramid_from(rgb: np.ndarray, path: Path, *, downsamples: tuple[int, ...] = (4, 16)) -> Path:
    """An Aperio-style JPEG pyramid (levels 1, 4, 16) of a real image, binned from level 0."""
    import tifffile

    from napari_xai.core.masks.passes import bin_pixels

    rows, cols = rgb.shape[:2]
    desc = (
        f"Aperio Image Library v12.0.0\r\n{cols}x{rows} -> {cols}x{rows} - |AppMag = 20|MPP = 0.5"
    )
    opts = {"tile": (256, 256), "compression": "jpeg", "photometric": "rgb"}
    with tifffile.TiffWriter(path) as tif:
        tif.write(rgb, description=desc, **opts)
        for f in downsamples:
            tif.write(bin_pixels(rgb, f), subfiletype=1, **opts)
    return path


def test_stroke_prescreen_reads_only_inked_chunks(shared_data: Path, tmp_path: Path) -> None:
    """Thin strokes on one quarter of a real H&E mosaic: the pre-screen reads few chunks.

    The slide is small, so by default every tissue chunk is read (no
    pre-screen) and the strokes are found. Forced, the pre-screen at downsample
    16 reads a quarter of the chunks and finds only part of the strokes (0.44
    of what reading everything finds: a known limit, see ``StrokeOptions``).
    """
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
    from bench_qc import composite_strokes

    from napari_xai.core.masks import StrokeOptions as Opts
    from napari_xai.core.masks import StrokeStats as Stats
    from napari_xai.core.masks import slide_masks, stroke_labels
    from napari_xai.core.masks.passes import bin_pixels
    from napari_xai.core.wsi import open_slide

    with open_slide(shared_data / "slides" / "CMU-1-Small-Region.svs") as slide:
        cmu = np.asarray(slide.levels[0].compute())[..., :3]
    rows, cols = cmu.shape[:2]
    mosaic = np.concatenate([np.concatenate([cmu, cmu[:, ::-1]], 1)] * 2, 0)
    rng = np.random.default_rng(3)
    quarter = mosaic[:rows, :cols]
    truth = np.zeros(mosaic.shape[:2], bool)
    for ink in ("green", "red"):
        quarter, m = composite_strokes(quarter, ink, rng=rng, width=8, alpha=0.7, n=1)
        truth[:rows, :cols] |= m
    mosaic[:rows, :cols] = quarter
    path = _pyramid_from(mosaic, tmp_path / "mosaic.svs")
    with open_slide(path) as slide:
        assert [round(d) for d in slide.info.level_downsamples] == [1, 4, 16]
        masks = slide_masks(slide, max_size=1024)
        runs = {}
        for name, opts in (
            # one classifier for both runs ("auto" would give the pre-screened run the rules)
            ("all", Opts(chunk=1024, method="model")),
            ("screen", Opts(chunk=1024, screen_above=0, method="model")),
        ):
            stats: list[Stats] = []
            runs[name] = (stroke_labels(slide, masks, options=opts, stats=stats), stats[0])
    ds = int(round(masks.downsample))
    cover = bin_pixels((truth[..., None] * 255).astype(np.uint8), ds)[..., 0] > 127
    h, w = min(cover.shape[0], masks.tissue.shape[0]), min(cover.shape[1], masks.tissue.shape[1])
    cover = cover[:h, :w] & masks.tissue[:h, :w]
    recall = {}
    for name, (fine, st) in runs.items():
        found = (fine[:h, :w] > 0) | masks.artefact[:h, :w]
        recall[name] = (found & cover).sum() / cover.sum()
        clean = (fine[rows // ds + 2 :] > 0).mean()
        print(f"\n{name}: read {st.read_chunks} of {st.tissue_chunks} tissue chunks, "
              f"recall {recall[name]:.3f}, ink on the clean half {clean:.4f}")  # fmt: skip
        assert clean < 0.005
    (fine_all, st_all), (fine_scr, st_scr) = runs["all"], runs["screen"]
    assert st_all.screen_level == -1 and st_all.read_chunks == st_all.tissue_chunks
    assert st_scr.screen_level == 2 and st_scr.level == 0
    assert st_scr.read_chunks < 0.5 * st_scr.tissue_chunks
    # the pre-screen only leaves chunks out: what it finds, reading all finds too
    assert ((fine_scr > 0) <= (fine_all > 0)).all()
    assert recall["all"] > 0.8
    assert recall["screen"] > 0.3
