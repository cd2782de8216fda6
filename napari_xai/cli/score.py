"""``napari-xai score SLIDE --model PATH|demo --out DIR``: score one slide with a tile model.

Writes ``DIR/<slide-stem>/tiles.parquet`` (one row per tissue tile: level-0
position and size, tissue fraction, ``prob_<class>``, predicted class,
confidence, entropy, flags) and ``preview.png`` (the most telling class's
heatmap over the slide's thumbnail). Same core call as the "Score slide" widget.

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

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``score`` subcommand."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "score",
        help="Score one slide with a tile model (tiles.parquet + heatmap preview).",
        description=__doc__.split("Examples")[0].strip() if __doc__ else None,
    )
    parser.add_argument("slide", type=Path, help="whole-slide image (SVS, NDPI, TIFF...)")
    parser.add_argument(
        "--model",
        default="demo",
        help="model file or folder (TorchScript, or state dict + card), or 'demo' (default)",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--architecture", help="package.module:factory for state-dict weights")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda, mps")
    parser.add_argument("--batch-size", type=int, default=32, help="tiles per batch (32)")
    parser.add_argument("--overlap", type=float, default=0.0, help="tile overlap in [0, 1)")
    parser.add_argument(
        "--min-tissue", type=float, default=0.5, help="minimum tissue fraction of a tile (0.5)"
    )
    parser.add_argument(
        "--all-tiles", action="store_true", help="score every tile (no tissue detection)"
    )
    parser.add_argument(
        "--mpp", type=float, help="slide µm/px at level 0 (when the file lacks it)"
    )
    parser.add_argument("--workers", type=int, default=2, help="tile reader threads (2)")
    parser.add_argument("--max-tiles", type=int, help="score only this many tiles (spread out)")
    parser.add_argument("--no-preview", action="store_true", help="skip preview.png")
    return parser


def _progress_printer() -> Any:
    last = [0.0]

    def show(step: Any) -> None:
        now = time.monotonic()
        if now - last[0] >= 2.0 or step.n_done == step.n_total:
            last[0] = now
            print(
                f"  {step.n_done:,}/{step.n_total:,} tiles · {step.tiles_per_s:,.1f} tiles/s",
                file=sys.stderr,
            )

    return show


def write_preview(result: Any, slide: Any, path: Path, *, class_name: str | None = None) -> Path:
    """Blend one class's heatmap over the slide thumbnail and save a PNG."""
    import numpy as np
    from PIL import Image

    from napari_xai.core.layers import _focus_class, class_colour

    names = list(result.class_names)
    name = class_name or _focus_class(names)
    k = names.index(name)
    thumb, ds = slide.thumbnail(max_size=1024)
    prob = np.nan_to_num(result.probabilities[k], nan=0.0)
    # Map every thumbnail pixel to the grid cell whose stride box holds it.
    rows = (np.arange(thumb.shape[0]) + 0.5) * ds
    cols = (np.arange(thumb.shape[1]) + 0.5) * ds
    g = result.grid
    half = (g.tile_size0 - g.stride0) / 2.0
    gi = np.clip(((rows - half) // g.stride0).astype(int), 0, prob.shape[0] - 1)
    gj = np.clip(((cols - half) // g.stride0).astype(int), 0, prob.shape[1] - 1)
    alpha = (prob[gi][:, gj] * 0.6)[..., None]
    colour = np.asarray(class_colour(name, k)) * 255.0
    out = thumb.astype(np.float32) * (1 - alpha) + colour * alpha
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(out.clip(0, 255).astype(np.uint8)).save(path)
    return path


def run(args: argparse.Namespace) -> int:
    """Score the slide and write the outputs; return the exit status."""
    from napari_xai.core.inference import iter_score_slide, slide_stem
    from napari_xai.core.wsi import open_slide

    out = Path(args.out) / slide_stem(args.slide)
    show = _progress_printer()
    with open_slide(args.slide, mpp=args.mpp) as slide:
        print(f"scoring {args.slide} with {args.model}", file=sys.stderr)
        gen = iter_score_slide(
            slide,
            args.model,
            architecture=args.architecture,
            mpp=args.mpp,
            overlap=args.overlap,
            tissue=None if args.all_tiles else "auto",
            min_tissue=args.min_tissue,
            batch_size=args.batch_size,
            device=args.device,
            num_workers=args.workers,
            max_tiles=args.max_tiles,
        )
        while True:
            try:
                show(next(gen))
            except StopIteration as stop:
                result = stop.value
                break
        tiles_path = result.save(out)
        preview = None
        if not args.no_preview and len(result.tiles):
            preview = write_preview(result, slide, out / "preview.png")
    counts = result.tiles["pred_class"].value_counts().to_dict() if len(result.tiles) else {}
    rate = result.timings.get("tiles_per_s", 0.0)
    print(f"{len(result.tiles):,} tiles scored at {rate:,.1f} tiles/s; predicted: {counts}")
    print(f"wrote {tiles_path}" + (f" and {preview}" if preview else ""))
    return 0
