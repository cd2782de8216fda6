"""``napari-xai score SLIDE --model PATH|demo --out DIR``: score one slide with a tile model.

Writes the result folder ``DIR/<slide-stem>/`` (:func:`napari_xai.core.pipeline.run_slide`):
``tiles.parquet`` (one row per tissue tile: level-0 position and size, tissue
fraction, ``prob_<class>``, predicted class, confidence, entropy, flags),
class-probability maps in ``heatmaps.zarr``, predicted regions, ``manifest.json``
and ``preview.png`` (the most telling class's heatmap over the slide's
thumbnail). Saliency and audit already in the folder are kept when the grid
and model are the same. Drop the folder on napari to open it whole.

Examples
--------
``napari-xai score slide.svs --model demo --out results``
``napari-xai score slide.tiff --model my-model/ --mpp 0.25 --device cuda --out results``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from napari_xai.cli._options import (
    add_feature_arguments,
    add_grid_arguments,
    feature_spec,
    given,
    grid_from_args,
)

__all__ = ["add_arguments", "run"]


HELP = "Score one slide with a tile model (tiles.parquet + heatmap preview)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``score`` arguments to ``parser``."""
    parser.add_argument("slide", type=Path, help="whole-slide image (SVS, NDPI, TIFF...)")
    parser.add_argument(
        "--model",
        default="demo",
        help="model file or folder (TorchScript, or state dict + card), or 'demo' (default)",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument(
        "--architecture", help="registered architecture name for state-dict weights"
    )
    parser.add_argument("--device", default=None, help="auto (default), cpu, cuda, mps")
    parser.add_argument("--batch-size", type=int, default=None, help="tiles per batch (32)")
    add_grid_arguments(parser)
    parser.add_argument(
        "--allow-empty",
        action="store_true",
        help="exit 0 even when no tile has enough tissue (default: fail, naming the file)",
    )
    parser.add_argument("--workers", type=int, default=2, help="tile reader threads (2)")
    parser.add_argument("--no-preview", action="store_true", help="skip preview.png")
    add_feature_arguments(parser)


def _progress_printer() -> Any:
    last = [0.0]

    def show(step: Any) -> None:
        if step.stage == "warning":
            print(f"napari-xai: warning: {step.message}", file=sys.stderr)
            return
        if step.stage != "score":
            if step.message and step.stage in ("reuse", "invalidate"):
                print(f"  {step.message}", file=sys.stderr)
            return
        now = time.monotonic()
        if now - last[0] >= 2.0 or step.n_done == step.n_total:
            last[0] = now
            print(
                f"  {step.n_done:,}/{step.n_total:,} tiles · {step.tiles_per_s:,.1f} tiles/s",
                file=sys.stderr,
            )

    return show


def _empty_message(args: argparse.Namespace, manifest: dict[str, Any]) -> str:
    """Why no tile was scored: the file, the slide's size or the tissue found, what to try."""
    from napari_xai.core.results import why_no_tiles

    return (
        f"{args.slide}: 0 tiles scored: {why_no_tiles(manifest)}. "
        "Try --all-tiles (score every tile), a lower --min-tissue, "
        "`napari-xai qc` to inspect the masks, or --allow-empty to accept an empty result"
    )


def run(args: argparse.Namespace) -> int:
    """Score the slide into its result folder; return the exit status."""
    from napari_xai.core.options import RunOptions, SlideOptions
    from napari_xai.core.pipeline import drive, run_slide
    from napari_xai.core.results import load_result

    grid = grid_from_args(args)  # score defines the grid: the flags over the defaults
    run_opts = RunOptions(
        **given(args, device="device", batch_size="batch_size", num_workers="workers"),
        architecture=args.architecture,
        preview=not args.no_preview,
    )
    print(f"scoring {args.slide} with {args.model}", file=sys.stderr)
    folder = drive(
        run_slide(
            args.slide,
            args.model,
            args.out,
            options=SlideOptions(grid=grid, run=run_opts, features=feature_spec(args)),
        ),
        _progress_printer(),
    )
    result = load_result(folder)
    tiles = result.tiles
    counts = tiles["pred_class"].value_counts().to_dict() if len(tiles) else {}
    rate = result.manifest.get("scoring", {}).get("tiles_per_s", 0.0)
    noun = "tile" if len(tiles) == 1 else "tiles"
    print(f"{len(tiles):,} {noun} scored at {rate:,.1f} tiles/s; predicted: {counts}")
    if "ood_score" in tiles:
        method = result.manifest.get("features", {}).get("ood_method", "?")
        print(f"ood_score ({method}): median {tiles['ood_score'].median():.3g}")
    print(f"wrote {folder}")
    if not len(tiles) and not args.allow_empty:
        print(f"napari-xai: error: {_empty_message(args, result.manifest)}", file=sys.stderr)
        return 1
    return 0
