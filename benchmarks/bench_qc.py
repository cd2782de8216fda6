"""Tissue and artefact QC on real material, thin strokes on real tissue, and a gigapixel slide.

Prints, per evaluation image: tissue IoU against the hand-checked references in
``tests/data/qc/``; pen recall and precision on the real pen tiles; thin
synthetic strokes (6-10 px at level 0, semi-transparent navy, green, red and
black) composited onto *real* tissue and found by the stroke-resolution pass
(:func:`napari_xai.core.masks.fine_ink_labels` at downsample 2), per colour,
by the default stroke classifier (``"hybrid"``: the learned classifier's
strokes confirmed by the colour rules), the colour rules alone and the
classifier alone, on real tissue crops the classifier was not trained on
(:data:`HELD_OUT`; checked against the regions the model file records); the
real pen tiles through :func:`napari_xai.core.qc.qc_image`
(thumbnail pass + classifier) with the class of the pen found; false ink on
pen-free IHC and H&E; and time and peak RSS of :func:`napari_xai.core.qc.qc_image`
plus :func:`napari_xai.core.masks.stroke_labels` on a large synthetic slide.

Usage::

    python benchmarks/bench_qc.py                 # real material + 100,000 x 80,000 slide
    python benchmarks/bench_qc.py --big-shape 20000 16000
    python benchmarks/bench_qc.py --no-big
    python benchmarks/bench_qc.py --big-path /tmp/big.svs   # reuse a written slide

The stroke pass reads at stroke resolution only the tissue chunks a
pre-screen at downsample ~16 flags; the big slide's line says how many. The
synthetic slide draws its texture at every level at the same pixel scale (its
low levels are not downsamples of level 0), so its pre-screen sees more
nuclei-sized detail than a real slide's would.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's napari_xai
DATA = ROOT.parent / "shared" / "data"
REF = ROOT / "tests" / "data" / "qc"
INKS = {"navy": (36, 58, 150), "green": (38, 128, 74), "red": (200, 20, 30), "black": (28, 28, 32)}


def _png(path: Path) -> np.ndarray:
    import imageio.v3 as iio

    return np.asarray(iio.imread(path))


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / max(1, (a | b).sum()))


def composite_strokes(
    img: np.ndarray, ink: str, *, rng: np.random.Generator, width: float, alpha: float, n: int = 3
) -> tuple[np.ndarray, np.ndarray]:
    """Draw ``n`` polylines of ``ink`` (``width`` px, opacity ``alpha``), in transmittance."""
    from scipy import ndimage as ndi
    from skimage.draw import line

    h, w = img.shape[:2]
    centre = np.zeros((h, w), bool)
    for _ in range(n):
        start = np.array([rng.uniform(0, h), rng.uniform(0, w)])
        pts = start + np.cumsum(rng.normal(0, 1, (8, 2)) * [h / 10, w / 10], axis=0)
        for (a, b), (c, d) in zip(pts[:-1], pts[1:], strict=True):
            rr, cc = line(int(a), int(b), int(c), int(d))
            ok = (rr >= 0) & (rr < h) & (cc >= 0) & (cc < w)
            centre[rr[ok], cc[ok]] = True
    mask = ndi.distance_transform_edt(~centre) <= width / 2
    t = np.asarray(INKS[ink], float) / 255.0
    out = img.astype(float) * np.where(mask[..., None], t**alpha, 1.0)
    return out.clip(0, 255).astype(np.uint8), mask


def composite_blur(
    img: np.ndarray, *, rng: np.random.Generator, sigma: float, radius: float
) -> tuple[np.ndarray, np.ndarray]:
    """Blur a disc of ``img`` (Gaussian ``sigma`` px, ``radius`` x the short side): out of focus.

    Returns the image and the disc (the truth, before restricting to tissue).
    """
    from scipy import ndimage as ndi

    h, w = img.shape[:2]
    yy, xx = np.mgrid[:h, :w]
    c = (rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w)
    r = radius * min(h, w)
    disc = (yy - c[0]) ** 2 + (xx - c[1]) ** 2 < r * r
    blurred = np.stack(
        [ndi.gaussian_filter(img[..., k].astype(float), sigma) for k in range(3)], -1
    )
    return np.where(disc[..., None], blurred, img).clip(0, 255).astype(np.uint8), disc


def composite_fold(
    img: np.ndarray, tissue: np.ndarray, *, rng: np.random.Generator, width: float
) -> tuple[np.ndarray, np.ndarray]:
    """Fold a band of ``img`` over itself: a shifted copy multiplied in transmittance.

    The band (``width`` x the short side, any angle, through the middle) gets
    the tissue 20-60 px away laid over it; the truth is the band where both
    layers are tissue.
    """
    h, w = img.shape[:2]
    yy, xx = np.mgrid[:h, :w]
    c = (rng.uniform(0.3, 0.7) * h, rng.uniform(0.3, 0.7) * w)
    ang = rng.uniform(0, np.pi)
    band = np.abs((yy - c[0]) * np.cos(ang) - (xx - c[1]) * np.sin(ang)) < width * min(h, w)
    shift = (int(rng.uniform(20, 60)), int(rng.uniform(-60, 60)))
    over = np.roll(img, shift, axis=(0, 1)).astype(float) / 255.0
    out = img.astype(float)
    out[band] *= over[band]
    truth = band & tissue & np.roll(tissue, shift, axis=(0, 1))
    return out.clip(0, 255).astype(np.uint8), truth


def quality_classes(images: dict[str, np.ndarray], *, repeats: int = 3, seed: int = 0) -> None:
    """Out-of-focus and fold recall / precision on real tissue, false rate on the clean images.

    The clean image goes through :func:`masks_from_thumbnail` (every class); the
    composites through the two detectors (:func:`blur_mask`, :func:`fold_mask`)
    on the clean image's tissue, at full resolution.
    """
    from napari_xai.core.masks import (
        blur_mask,
        estimate_background,
        fold_mask,
        masks_from_thumbnail,
    )
    from napari_xai.core.masks.focus import BLUR_LABEL
    from napari_xai.core.masks.folds import FOLD_LABEL

    rng = np.random.default_rng(seed)
    for name, img in images.items():
        clean = masks_from_thumbnail(img, 1.0)
        tissue, bg = clean.tissue, estimate_background(img)
        figs: dict[str, list[tuple[float, float]]] = {"blur": [], "fold": []}
        for _ in range(repeats):
            comp, disc = composite_blur(
                img, rng=rng, sigma=rng.uniform(3, 6), radius=rng.uniform(0.15, 0.3)
            )
            found = blur_mask(comp, background=bg) & tissue
            figs["blur"].append(_rec_prec(found, disc & tissue))
            comp, truth = composite_fold(img, tissue, rng=rng, width=rng.uniform(0.08, 0.15))
            figs["fold"].append(_rec_prec(fold_mask(comp, tissue, background=bg), truth))
        labels = clean.artefact_labels
        rb, pb = np.mean(figs["blur"], axis=0)
        rf, pf = np.mean(figs["fold"], axis=0)
        print(
            f"  {name:14s} blur recall {rb:.3f} precision {pb:.3f} | fold recall {rf:.3f} "
            f"precision {pf:.3f} | clean image called blur {(labels == BLUR_LABEL).mean():.4f}, "
            f"fold {(labels == FOLD_LABEL).mean():.4f}"
        )


def _rec_prec(found: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    hit = float((found & truth).sum())
    return hit / max(1.0, float(truth.sum())), hit / max(1.0, float(found.sum()))


def _down(x: np.ndarray, f: int = 2) -> np.ndarray:
    h, w = (x.shape[0] // f) * f, (x.shape[1] // f) * f
    return x[:h, :w].reshape(h // f, f, w // f, f, *x.shape[2:]).mean(axis=(1, 3))


def thin_strokes(
    img: np.ndarray,
    name: str,
    *,
    seed: int = 0,
    repeats: int = 2,
    method: str = "hybrid",
    whole: np.ndarray | None = None,
) -> None:
    """Recall and precision of the stroke pass for each ink colour on one real image.

    ``whole``: the image ``img`` was cropped from (its glass is the background).
    """
    from scipy import ndimage as ndi

    from napari_xai.core.masks import estimate_background, fine_ink_labels

    rng = np.random.default_rng(seed)
    bg = estimate_background(img if whole is None else whole)
    for ink in INKS:
        rec, prec = [], []
        for _ in range(repeats):
            comp, m = composite_strokes(
                img, ink, rng=rng, width=rng.uniform(6, 10), alpha=rng.uniform(0.5, 0.8)
            )
            small = _down(comp).astype(np.uint8)
            truth = _down(m.astype(float)) > 0.5
            found = fine_ink_labels(small, background=bg, method=method) > 0
            rec.append((found & truth).sum() / max(1, truth.sum()))
            near = ndi.binary_dilation(truth, iterations=2)  # stroke edges are soft
            prec.append((found & near).sum() / max(1, found.sum()))
        print(
            f"  thin strokes {name:14s} {ink:6s} recall {np.mean(rec):.3f} "
            f"precision {np.mean(prec):.3f}"
        )
    clean = _down(img).astype(np.uint8)
    false = (fine_ink_labels(clean, background=bg, method=method) > 0).mean()
    print(f"  thin strokes {name:14s} no ink: false ink {false:.4f}")


def real_material() -> None:
    import tifffile
    from skimage.data import immunohistochemistry

    from napari_xai.core.masks import artefact_labels, masks_from_thumbnail
    from napari_xai.core.wsi import open_slide

    def thumb(name: str) -> np.ndarray:
        with open_slide(DATA / "slides" / name) as slide:
            t, _ = slide.thumbnail(max_size=1024)
        return np.asarray(t)[..., :3]

    print("tissue IoU against tests/data/qc references")
    ihc = immunohistochemistry()
    for name, rgb, ref in [
        ("IHC (skimage)", ihc, "ihc_tissue"),
        ("CMU-1 H&E", thumb("CMU-1-Small-Region.svs"), "CMU-1-Small-Region_tissue"),
        ("DAPI fluor.", thumb("test3-DAPI-2.ndpi"), "test3-DAPI-2_tissue"),
    ]:
        m = masks_from_thumbnail(rgb, 1.0)
        tissue = m.tissue | m.artefact if name.startswith("IHC") else m.tissue
        print(
            f"  {name:14s} IoU {_iou(tissue, _png(REF / f'{ref}.png') > 0):.3f} "
            f"({m.modality}, {m.stain})"
        )
    print("real pen tiles (thumbnail pass)")
    for name in ("tcga-green-pen", "tcga-red-pen", "wsi-blue-pen"):
        found = artefact_labels(_png(DATA / "patches" / "pen" / f"{name}.png")[..., :3]) > 0
        ref = _png(REF / f"{name}_pen.png") > 0
        print(
            f"  {name:14s} recall {(found & ref).sum() / ref.sum():.3f} "
            f"precision {(found & ref).sum() / max(1, found.sum()):.3f}"
        )
    print("false ink on pen-free images (thumbnail pass)")
    lung = _png(DATA / "patches" / "pen" / "tcga-lung-rgb.png")[..., :3]
    with open_slide(DATA / "slides" / "OS-1-detail.ome.tif") as slide:
        os1 = np.asarray(slide.levels[0].compute())[..., :3]
    for name, rgb in [("IHC (skimage)", ihc), ("TCGA lung H&E", lung), ("OS-1 H&E", os1)]:
        print(f"  {name:14s} {(artefact_labels(rgb) > 0).mean():.4f}")
    worst = max(
        (artefact_labels(tifffile.imread(p)[..., :3]) > 0).mean()
        for p in (DATA / "patches" / "nct_crc_he_100k_sample").glob("*.tif")
    )
    print(f"  {'NCT-CRC (worst of 9)':14s} {worst:.4f}")
    with open_slide(DATA / "slides" / "CMU-1-Small-Region.svs") as slide:
        cmu_all = np.asarray(slide.levels[0].compute())[..., :3]
    whole = {"CMU-1": cmu_all, "TCGA lung": lung, "OS-1": os1, "IHC": ihc}
    for method in STROKE_METHODS:
        default = " (the default)" if method == STROKE_METHODS[0] else ""
        print(
            f"thin strokes, {method}{default}, stroke pass at downsample 2, "
            "on crops the classifier was not trained on"
        )
        for name, crop in held_out_crops(whole).items():
            src = name.split(" ")[0] if not name.startswith("TCGA") else "TCGA lung"
            thin_strokes(crop, name, method=method, whole=whole[src])
    print("real pen tiles (napari-xai qc of a tile: thumbnail pass + stroke pass, default)")
    real_pen_tiles()
    print(
        "out of focus (Gaussian blur, sigma 3-6 px, of a disc of radius 0.15-0.3 x the short "
        "side) and folds (a band 0.08-0.15 x the short side with the tissue 20-60 px away laid "
        "over it in transmittance) on real tissue, masks_from_thumbnail at full resolution"
    )
    quality_classes({"CMU-1 H&E": cmu_all, "OS-1 H&E": os1, "TCGA lung H&E": lung, "IHC": ihc})
    nct = [
        tifffile.imread(p)[..., :3]
        for p in sorted((DATA / "patches" / "nct_crc_he_100k_sample").glob("*.tif"))
    ]
    worst = max(float((masks_from_thumbnail(t, 1.0).artefact_labels >= 5).mean()) for t in nct)
    print(f"  NCT-CRC tiles (9), worst share called blur or fold: {worst:.4f}")


#: Stroke classifiers compared (:func:`napari_xai.core.masks.fine_ink_labels`), the default first.
STROKE_METHODS = ("hybrid", "rules", "model")

#: Evaluation crops of the classifier: (source, rows, cols) at level 0, none trained on.
HELD_OUT = {
    "CMU-1 held-out": ("slides/CMU-1-Small-Region.svs", (1200, 2200), (500, 1500)),
    "TCGA lung (all)": ("patches/pen/tcga-lung-rgb.png", (0, 512), (0, 512)),
    "OS-1 right half": ("slides/OS-1-detail.ome.tif", (0, 1101), (550, 1101)),
    "IHC bottom half": ("skimage:immunohistochemistry", (256, 512), (0, 512)),
}


def held_out_crops(whole: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The :data:`HELD_OUT` crops, after checking the model file never trained on them."""
    from napari_xai.core.masks.ink_model import load_ink_model

    trained = load_ink_model().training["regions"]
    out = {}
    for name, (source, (r0, r1), (c0, c1)) in HELD_OUT.items():
        for reg in trained:
            (tr0, tr1), (tc0, tc1) = reg["rows"], reg["cols"]
            overlap = reg["source"] == source and tr0 < r1 and r0 < tr1 and tc0 < c1 and c0 < tc1
            if overlap:
                raise SystemExit(f"{name} overlaps the training region {reg}")
        src = name.split(" ")[0] if not name.startswith("TCGA") else "TCGA lung"
        out[name] = whole[src][r0:r1, c0:c1]
    return out


def real_pen_tiles() -> None:
    """Recall, precision and ink class of :func:`qc_image` on the real pen tiles."""
    from napari_xai.core.masks import ARTEFACT_NAMES
    from napari_xai.core.qc import qc_image

    for name in ("tcga-green-pen", "tcga-red-pen", "wsi-blue-pen"):
        _, masks, _ = qc_image(DATA / "patches" / "pen" / f"{name}.png")
        labels = masks.artefact_labels
        found, ref = labels > 0, _png(REF / f"{name}_pen.png") > 0
        classes = np.bincount(labels[found & ref], minlength=5)
        top = ARTEFACT_NAMES.get(int(classes.argmax()), "none")
        print(
            f"  {name:14s} recall {(found & ref).sum() / ref.sum():.3f} "
            f"precision {(found & ref).sum() / max(1, found.sum()):.3f} "
            f"(class of the found pen: {top}, {classes.max() / max(1, classes.sum()):.2f})"
        )


def _big_child(path: str) -> None:
    """Run in a fresh process so that peak RSS is the QC's own."""
    from napari_xai.core.masks import (
        FocusStats,
        StrokeStats,
        focus_labels,
        masks_from_thumbnail,
        stroke_labels,
    )
    from napari_xai.core.options import MASK_SIZE
    from napari_xai.core.wsi import open_slide

    t0 = time.perf_counter()
    with open_slide(path) as slide:
        thumb, ds = slide.thumbnail(max_size=MASK_SIZE)
        masks = masks_from_thumbnail(np.asarray(thumb)[..., :3], ds)
        t1 = time.perf_counter()
        stats: list[StrokeStats] = []
        fine = stroke_labels(slide, masks, stats=stats)
        t2 = time.perf_counter()
        fstats: list[FocusStats] = []
        blur = focus_labels(slide, masks, stats=fstats)
    t3 = time.perf_counter()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    st, fs = stats[0], fstats[0]
    load = os.getloadavg()
    print(
        f"  thumbnail pass {t1 - t0:.1f} s, stroke pass {t2 - t1:.1f} s, focus pass "
        f"{t3 - t2:.1f} s, total {t3 - t0:.1f} s; peak RSS {rss:.0f} MB; tissue "
        f"{masks.tissue_fraction:.3f}, fine ink {(fine > 0).mean():.4f}, out of focus "
        f"{(blur > 0).mean():.4f}, fold {(masks.artefact_labels == 6).mean():.4f}; chunks read at "
        f"stroke resolution {st.read_chunks} of {st.tissue_chunks} with tissue (level {st.level}, "
        f"pre-screen level {st.screen_level}, chunks classified by {st.method}); focus pass: "
        f"{fs.tissue_chunks} chunks, {'a window of each' if fs.sampled else 'whole'}, level "
        f"{fs.level}, {fs.cells} cells; load after {load[0]:.2f}"
    )


def big_slide(shape_rc: tuple[int, int], reuse: Path | None = None) -> None:
    from napari_xai.demo.synthetic import write_synthetic_slide

    if reuse is not None and reuse.is_file():
        load = os.getloadavg()
        print(f"synthetic slide {reuse} (reused; load average {load[0]:.2f} {load[1]:.2f})")
        subprocess.run([sys.executable, __file__, "--child", str(reuse)], check=True)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.svs"
        t0 = time.perf_counter()
        write_synthetic_slide(path, shape_rc=shape_rc, seed=0)
        print(
            f"synthetic slide {shape_rc[1]} x {shape_rc[0]} "
            f"written in {time.perf_counter() - t0:.0f} s"
        )
        load = os.getloadavg()
        print(f"  (load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})")
        subprocess.run(
            [sys.executable, __file__, "--child", str(path)], check=True, env=dict(os.environ)
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("Usage")[0])
    parser.add_argument("--big-shape", type=int, nargs=2, default=(80_000, 100_000),
                        metavar=("ROWS", "COLS"))  # fmt: skip
    parser.add_argument("--no-big", action="store_true")
    parser.add_argument("--big-path", type=Path, help="reuse this slide if it exists")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _big_child(args.child)
        return
    load = os.getloadavg()
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, {os.cpu_count()} CPUs")
    if DATA.is_dir():
        real_material()
    else:
        print(f"real data not found at {DATA}: skipping the real-material figures")
    if not args.no_big:
        big_slide(tuple(args.big_shape), args.big_path)


if __name__ == "__main__":
    main()
