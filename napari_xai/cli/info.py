"""``napari-xai info SLIDE``: what the plugin reads from a slide file."""

from __future__ import annotations

import argparse

HELP = "print size, levels, mpp and vendor of slides (and check that they open)"
DESCRIPTION = (
    "Open each slide lazily and print what napari-xai reads from it. "
    "Exits with status 1 if any file cannot be opened, naming the file and the problem."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``info`` arguments to ``parser``."""
    parser.add_argument("slides", nargs="+", metavar="SLIDE", help="slide files")


def run(args: argparse.Namespace) -> int:
    """Print one block per slide; return 1 if any slide failed to open."""
    import sys

    from napari_xai.core.wsi import SlideError, open_slide

    failed = 0
    for path in args.slides:
        try:
            with open_slide(path) as slide:
                info = slide.info
        except SlideError as exc:
            print(f"napari-xai: error: {exc}", file=sys.stderr)
            failed += 1
            continue
        rows, cols = info.shape_rc
        mpp = f"{info.mpp:.4f} µm/px" if info.mpp else f"— ({info.mpp_source})"
        print(f"{info.path}")
        print(f"  vendor        {info.vendor or 'generic TIFF'}")
        print(f"  size          {cols} x {rows} px (width x height)")
        print(f"  mpp           {mpp}")
        print(
            f"  levels        {info.n_levels}: downsamples "
            + ", ".join(f"{d:.3f}" for d in info.level_downsamples)
        )
        print(f"  pixels        {info.dtype}, {info.n_channels} channel(s), rgb={info.is_rgb}")
    return 1 if failed else 0
