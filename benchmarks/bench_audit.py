"""Shortcut-audit runtime and memory on large synthetic slides, and the planted-shortcut figures.

Prints, on this machine in one run:

1. for each slide and attribution method: time to compute the tissue/artefact
   masks and the tile grid, to explain the sampled tiles (``--max-tiles``, all
   tiles touching artefacts first), to write the HTML report + audit.json, and
   the total; tiles/s; the verdict and the attribution shares;
2. the planted-shortcut figures (``--shortcut``): share of attribution on the
   marker for the shortcut vs the clean model (Integrated Gradients, Saliency,
   Grad-CAM) on held-out tiles;
3. (``--sanity``) the sanity checks of each attribution method on the demo model
   (cascading randomisation: Spearman and SSIM with every layer randomised;
   deletion / insertion AUC vs random order), and an edge detector as a method
   that ignores the model;
4. peak RSS of this process.

Each slide audit also times its counterfactual test (seconds per 100 edited
tiles scored) and the sanity checks of its method.

Slides: the 100,000 x 80,000 px slide of ``bench_score.py`` (written once into
``--cache``, tissue only) and the plugin's synthetic sample slide (20,480 x
16,384 px with pen, marker, ruler and label; cached by ``napari_xai._sample_data``).

Usage::

    python benchmarks/bench_audit.py                     # CPU, 2 threads
    python benchmarks/bench_audit.py --device cuda --threads 8 --max-tiles 2048
"""

from __future__ import annotations

import argparse
import importlib.util
import resource
import sys
import tempfile
import time
from pathlib import Path


def big_slide(cache: Path) -> Path:
    spec = importlib.util.spec_from_file_location(
        "bench_score", Path(__file__).with_name("bench_score.py")
    )
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return Path(mod.write_big_slide(cache / "big_100000x80000.svs"))


def shortcut_figures(threads: int) -> None:
    from napari_xai.core.audit.attention import ARTEFACT, audit_attention
    from napari_xai.demo import shortcut as sd

    t0 = time.perf_counter()
    models = {
        "shortcut": sd.train_tiny_cnn(sd.make_shortcut_cohort(200, marker=True, seed=0)),
        "clean": sd.train_tiny_cnn(sd.make_shortcut_cohort(200, marker=False, seed=0)),
    }
    held = sd.make_shortcut_cohort(40, marker=True, seed=100)
    marked = held.has_marker
    area = float((held.regions[marked] == ARTEFACT).mean())
    print(f"\nplanted shortcut: 2 x 400 training tiles (64 px), trained in "
          f"{time.perf_counter() - t0:.1f} s; {len(held)} held-out tiles, {int(marked.sum())} "
          f"with the marker covering {area:.1%} of each")  # fmt: skip
    print(f"{'model':9s} {'method':21s} {'share on marker':>15s} {'enrichment':>10s} "
          f"{'flagged':>8s} verdict")  # fmt: skip
    for name, model in models.items():
        for method in ("integrated_gradients", "saliency", "grad_cam"):
            maps = sd.explain(model, held.images, method=method)
            res = audit_attention(maps, held.regions, sign="positive")
            sub = audit_attention(maps[marked], held.regions[marked], sign="positive")
            print(f"{name:9s} {method:21s} {sub.shares['artefact']:15.1%} "
                  f"{sub.enrichment['artefact']:10.1f} "
                  f"{int(res.flagged.sum()):4d}/{len(held):<3d} "
                  f"{res.verdict}")  # fmt: skip


def sanity_figures(methods: list[str], n_probe: int = 12) -> None:
    import numpy as np

    from napari_xai.core.audit.sanity import edge_detector, sanity_check
    from napari_xai.core.models.demo import load_demo_model
    from napari_xai.demo.synthetic import render_patch

    model = load_demo_model(device="cpu")
    rng = np.random.default_rng(0)
    kinds = ["normal", "tumour", "background"]
    tiles = np.stack([render_patch(kinds[i % 3], size=64, rng=rng) for i in range(n_probe)])
    print(f"\nsanity checks on the demo model, {n_probe} synthetic 64 px probe tiles")
    print(f"{'method':21s} {'spearman':>8s} {'ssim':>6s} {'random.':>7s} {'del AUC':>7s} "
          f"{'random':>6s} {'ins AUC':>7s} {'random':>6s} {'gain':>6s} {'faithful':>12s} "
          f"{'trusted':>7s} {'time':>6s}")  # fmt: skip
    for name in methods:
        method = edge_detector if name == "edge_detector" else name
        t0 = time.perf_counter()
        r = sanity_check(model, tiles, method, cache=False)
        print(f"{name:21s} {r.spearman[-1]:8.2f} {r.ssim[-1]:6.2f} "
              f"{'pass' if r.randomisation_passed else 'FAIL':>7s} {r.deletion_auc:7.3f} "
              f"{r.deletion_auc_random:6.3f} {r.insertion_auc:7.3f} {r.insertion_auc_random:6.3f} "
              f"{r.faithfulness_gain:+6.3f} {r.faithfulness:>12s} {str(r.trusted):>7s} "
              f"{time.perf_counter() - t0:5.1f}s")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=Path("/tmp/napari-xai-bench"))
    parser.add_argument("--slides", nargs="*", type=Path, default=None)
    parser.add_argument("--methods", nargs="*", default=["grad_cam", "integrated_gradients"])
    parser.add_argument("--max-tiles", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-shortcut", action="store_true")
    parser.add_argument("--sanity", action="store_true", help="sanity checks per method")
    parser.add_argument(
        "--sanity-methods", nargs="*",
        default=["grad_cam", "saliency", "integrated_gradients", "edge_detector"],
    )  # fmt: skip
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    from napari_xai._sample_data import sample_slide_path
    from napari_xai.core.audit.slide import iter_audit_slide
    from napari_xai.core.options import AuditSpec, RunOptions
    from napari_xai.core.progress import drive
    from napari_xai.core.wsi import open_slide

    slides = args.slides or [big_slide(args.cache), sample_slide_path()]
    print(f"napari-xai audit benchmark · torch {torch.__version__} · {args.threads} threads · "
          f"device {args.device or 'auto'} · max {args.max_tiles} tiles")  # fmt: skip
    for path in slides:
        with open_slide(path) as slide:
            rows, cols = slide.info.shape_rc
            for method in args.methods:
                out = Path(tempfile.mkdtemp(prefix="bench-audit-"))
                t0 = time.perf_counter()
                steps = []
                gen = iter_audit_slide(
                    slide, "demo", spec=AuditSpec(method=method, max_tiles=args.max_tiles),
                    run=RunOptions(device=args.device or "auto",
                                   explain_batch_size=args.batch_size),
                    out_dir=out,
                )  # fmt: skip
                res = drive(gen, steps.append)
                total = time.perf_counter() - t0
                t = res.timings
                report_s = total - t["total_s"]
                sh = res.attention.shares
                art_area = res.attention.area_shares["artefact"]
                print(
                    f"\n{path.name} ({cols:,} x {rows:,} px, {res.n_grid_tiles:,} tissue tiles), "
                    f"{method}: {len(res.tiles)} tiles audited\n"
                    f"  masks+grid {t['masks_s']:.1f} s · explain {t['explain_s']:.1f} s "
                    f"({t['tiles_per_s']:.0f} tiles/s) · counterfactual "
                    f"{t.get('counterfactual_s', 0.0):.1f} s ("
                    f"{res.counterfactual.seconds_per_100_tiles if res.counterfactual else 0:.2f}"
                    f" s per 100 edited tiles, "
                    f"{res.counterfactual.n_scored if res.counterfactual else 0} scored) · "
                    f"sanity {t.get('sanity_s', 0.0):.1f} s · report {report_s:.1f} s · "
                    f"total {total:.1f} s\n  {res.sentence}\n"
                    f"  verdict {res.verdict}; attribution on tissue {sh['tissue']:.1%}, "
                    f"artefacts {sh['artefact']:.1%} (area {art_area:.1%}), "
                    f"background {sh['background']:.1%}, border {sh['border']:.1%}; "
                    f"{int(res.attention.flagged.sum())} flagged; report "
                    f"{res.report_path.stat().st_size / 1e6:.1f} MB"
                )
    if not args.no_shortcut:
        shortcut_figures(args.threads)
    if args.sanity:
        sanity_figures(args.sanity_methods)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS {peak:,.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
