"""``napari-xai explain SLIDE``: whole-slide saliency into ``<out>/<slide>/heatmaps.zarr``."""

from __future__ import annotations

import argparse
from typing import Any

METHODS = (
    "grad_cam",
    "saliency",
    "integrated_gradients",
    "gradient_shap",
    "occlusion",
    "guided_grad_cam",
)


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``explain`` subcommand."""
    parser = subparsers.add_parser(
        "explain",
        help="explain a slide's predictions: stitched whole-slide saliency (Grad-CAM, IG...)",
        description=(
            "Run an attribution method over every tissue tile of a slide and stitch the "
            "tile maps into a multiscale saliency map, saved as "
            "OUT/<slide>/heatmaps.zarr/saliency/<method>/<class>. Resumes where a previous "
            "run with the same settings stopped. With --view, only the tiles in a level-0 "
            "rectangle are explained."
        ),
    )
    parser.add_argument("slide", metavar="SLIDE", help="slide file")
    parser.add_argument("--model", default="demo", help="model file/folder, or 'demo' (default)")
    parser.add_argument("--method", default="grad_cam", choices=METHODS)
    parser.add_argument(
        "--target", default=None, help="class name or index (default: each tile's predicted class)"
    )
    parser.add_argument("--out", default="napari-xai-results", help="output folder")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--overlap", type=float, default=0.0, help="tile overlap fraction")
    parser.add_argument("--min-tissue", type=float, default=0.5)
    parser.add_argument("--mpp", type=float, default=None, help="slide µm/px if the file lacks it")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument("--steps", type=int, default=32, help="Integrated Gradients steps")
    parser.add_argument(
        "--smoothgrad", type=int, default=0, metavar="N",
        help="SmoothGrad (NoiseTunnel) with N noisy samples (gradient methods)",
    )  # fmt: skip
    parser.add_argument(
        "--view", type=float, nargs=4, default=None, metavar=("ROW0", "COL0", "ROW1", "COL1"),
        help="explain only tiles in this level-0 rectangle",
    )  # fmt: skip
    parser.add_argument("--restart", action="store_true", help="ignore what a previous run left")
    parser.add_argument("--quiet", action="store_true")
    return parser


def run(args: argparse.Namespace) -> int:
    """Explain the slide; print where the map is; return 0."""
    import sys
    from pathlib import Path

    from napari_xai.core.attribution.whole_slide import (
        iter_explain_slide,
        iter_explain_view,
        resolve_model,
    )
    from napari_xai.core.inference import slide_stem
    from napari_xai.core.wsi import open_slide

    target: Any = args.target
    if target is not None and str(target).isdigit():
        target = int(target)
    store = Path(args.out) / slide_stem(args.slide) / "heatmaps.zarr"
    model = resolve_model(args.model, device=args.device)
    options: dict[str, Any] = {"n_steps": args.steps}
    if args.smoothgrad:
        options["smooth_samples"] = args.smoothgrad
    common: dict[str, Any] = dict(
        store=store,
        method=args.method,
        target=target,
        batch_size=args.batch_size,
        overlap=args.overlap,
        min_tissue=args.min_tissue,
        mpp=args.mpp,
        **options,
    )
    with open_slide(args.slide, mpp=args.mpp) as slide:
        if args.view is not None:
            gen = iter_explain_view(slide, model, args.view, max_tiles=1_000_000, **common)
        else:
            gen = iter_explain_slide(slide, model, resume=not args.restart, **common)
        while True:
            try:
                step = next(gen)
            except StopIteration as stop:
                result = stop.value
                break
            if not args.quiet:
                print(
                    f"\r{step.n_done:,}/{step.n_total:,} tiles · {step.tiles_per_s:,.1f} tiles/s",
                    end="",
                    file=sys.stderr,
                    flush=True,
                )
    if not args.quiet:
        print(file=sys.stderr)
    print(
        f"{result.store}/{result.key}: {result.n_computed} tiles computed, "
        f"{result.n_cached} reused, {result.n_done}/{result.n_tiles} in the map "
        f"({result.timings.get('total_s', 0.0):.1f} s)"
    )
    return 0
