"""``napari-xai explain SLIDE``: whole-slide saliency into the result folder ``OUT/<slide>/``."""

from __future__ import annotations

import argparse
from typing import Any

from napari_xai.cli._options import add_grid_arguments, grid_from_args
from napari_xai.core.naming import METHOD_NAMES

METHODS = METHOD_NAMES


HELP = "explain a slide's predictions: stitched whole-slide saliency (Grad-CAM, IG...)"
DESCRIPTION = (
    "Run an attribution method over every tissue tile of a slide and stitch the "
    "tile maps into a multiscale saliency map, saved as "
    "OUT/<slide>/heatmaps.zarr/saliency/<method>/<class> in the slide's result folder "
    "(scored first when it is not, with the same tile grid). Resumes where a previous "
    "run with the same settings stopped. With --view, only the tiles in a level-0 "
    "rectangle are explained."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``explain`` arguments to ``parser``."""
    parser.add_argument("slide", metavar="SLIDE", help="slide file")
    parser.add_argument("--model", default="demo", help="model file/folder, or 'demo' (default)")
    parser.add_argument("--method", default="grad_cam", choices=METHODS)
    parser.add_argument(
        "--target", default=None, help="class name or index (default: each tile's predicted class)"
    )
    parser.add_argument("--out", default="napari-xai-results", help="output folder")
    parser.add_argument("--batch-size", type=int, default=16)
    add_grid_arguments(parser, fields=("overlap", "min_tissue", "mpp"), from_folder=True)
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


def run(args: argparse.Namespace) -> int:
    """Explain the slide into its result folder; print where the map is; return 0."""
    import sys

    from napari_xai.core.options import ExplainSpec, RunOptions, SlideOptions
    from napari_xai.core.pipeline import drive, result_folder, run_slide

    target: Any = args.target
    if target is not None and str(target).isdigit():
        target = int(target)
    folder = result_folder(args.out, args.slide)
    grid = grid_from_args(args, folder=folder)  # None: the folder's grid (nothing re-scored)
    run_opts = RunOptions(device=args.device, explain_batch_size=args.batch_size)
    spec = ExplainSpec(
        method=args.method, target=target, n_steps=args.steps, smooth_samples=args.smoothgrad,
        view_rc=None if args.view is None else tuple(args.view), restart=args.restart,
    )  # fmt: skip
    done: list[Any] = []

    def show(step: Any) -> None:
        if step.stage == "explain" and step.value is not None:
            done.append(step.value)
        if args.quiet:
            return
        if step.stage in ("score", "explain") and step.value is None:
            print(
                f"\r{step.stage}: {step.n_done:,}/{step.n_total:,} tiles · "
                f"{step.tiles_per_s:,.1f} tiles/s",
                end="",
                file=sys.stderr,
                flush=True,
            )
        elif step.message:
            print(f"\r{step.message}", file=sys.stderr)

    options = SlideOptions(grid=grid, run=run_opts, explain=spec)
    folder = drive(run_slide(args.slide, args.model, args.out, options), show)
    if not done:  # a complete map with the same spec was in the folder: kept
        from napari_xai.core.pipeline import saliency_in_folder

        kept = saliency_in_folder(folder, spec)
        print(
            f"{folder}/heatmaps.zarr/{kept.key}: kept (same method and options), "
            f"{kept.n_done}/{kept.n_tiles} in the map"
        )
        return 0
    result = done[-1]
    print(
        f"{folder}/heatmaps.zarr/{result.key}: {result.n_computed} tiles computed, "
        f"{result.n_cached} reused, {result.n_done}/{result.n_tiles} in the map "
        f"({result.timings.get('total_s', 0.0):.1f} s)"
    )
    return 0
