"""``napari-xai synthetic OUT.svs``: write a synthetic H&E slide with its ground truth."""

from __future__ import annotations

import argparse

HELP = "write a synthetic pyramidal H&E slide (tumour, pen, marker, ruler, label)"
DESCRIPTION = (
    "Write an Aperio-SVS-style pyramidal JPEG-tiled slide, streaming with "
    "bounded memory, and its ground truth (<out>.truth.npz: tissue, tumour, artefacts)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``synthetic`` arguments to ``parser``."""
    parser.add_argument("out", metavar="OUT", help="output file, e.g. slide.svs")
    parser.add_argument(
        "--shape",
        nargs=2,
        type=int,
        default=(8192, 8192),
        metavar=("ROWS", "COLS"),
        help="level-0 size (default 8192 8192)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    parser.add_argument("--mpp", type=float, default=0.5, help="µm per pixel (default 0.5)")
    parser.add_argument("--tile-size", type=int, default=512, help="tile side (default 512)")
    parser.add_argument("--quality", type=int, default=80, help="JPEG quality (default 80)")
    parser.add_argument("--no-tumour", action="store_true", help="no tumour regions")
    parser.add_argument(
        "--artefacts",
        default="pen,marker,ruler,label",
        help="comma-separated subset of pen,marker,ruler,label ('' for none)",
    )
    parser.add_argument("--workers", type=int, default=None, help="rendering threads")


def run(args: argparse.Namespace) -> int:
    """Write the slide, report progress and a summary of the truth."""
    import sys
    import time

    from napari_xai.demo.synthetic import write_synthetic_slide

    artefacts = tuple(a for a in args.artefacts.split(",") if a.strip())
    t0 = time.perf_counter()
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.perf_counter()
        if now - last[0] > 2 or done == total:
            last[0] = now
            print(f"\r{done}/{total} tiles", end="", file=sys.stderr, flush=True)

    truth = write_synthetic_slide(
        args.out, shape_rc=tuple(args.shape), seed=args.seed, mpp=args.mpp,
        tile_size=args.tile_size, quality=args.quality, tumour=not args.no_tumour,
        artefacts=artefacts, workers=args.workers, progress=progress,
    )  # fmt: skip
    print(file=sys.stderr)
    rows, cols = truth.shape_rc
    print(f"{truth.path}: {cols} x {rows} px, {time.perf_counter() - t0:.1f} s")
    print(f"  truth (downsample {truth.downsample}): tissue {truth.tissue.mean():.3f}, "
          f"tumour {truth.tumour.mean():.3f}, artefacts {truth.artefact.mean():.3f}")  # fmt: skip
    return 0
