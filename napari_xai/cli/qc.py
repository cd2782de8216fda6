"""``napari-xai qc INPUT... --out DIR``: tissue and artefact QC of slides and image tiles.

Per input ``DIR/<stem>/qc.json`` (tissue and artefact fractions of the image
area, per-class artefact fractions, the mask downsample, modality and stain,
warnings), ``tissue_mask.png`` and ``artefact_mask.png`` (uint8 labels, 0 = none)
and ``overlay.png``; for the cohort ``DIR/qc_summary.csv`` and ``DIR/index.html``.

Examples
--------
napari-xai qc slides/*.svs --out qc/
napari-xai qc tiles/ --mpp 0.5 --out qc/
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

__all__ = ["add_arguments", "run"]


HELP = "tissue and artefact masks, fractions and a cohort report for slides and tiles"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``qc`` arguments to ``parser``."""
    parser.add_argument(
        "inputs", nargs="+", type=Path, metavar="INPUT",
        help="slides, image tiles (PNG/JPEG/TIFF) or folders of them",
    )  # fmt: skip
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--mpp", type=float, help="level-0 µm/px for files that lack it")
    from napari_xai.core.options import MASK_SIZE

    parser.add_argument(
        "--max-size", type=int, default=MASK_SIZE,
        help=f"longest thumbnail side for the masks ({MASK_SIZE}, as scoring)",
    )  # fmt: skip
    parser.add_argument(
        "--no-strokes", action="store_true",
        help="skip the stroke-resolution ink pass (thumbnail only; faster)",
    )  # fmt: skip


def _expand(inputs: list[Path]) -> list[Path]:
    from napari_xai.core.naming import COHORT_SUFFIXES, is_slide_name
    from napari_xai.core.qc import TILE_SUFFIXES

    out: list[Path] = []
    for p in inputs:
        if p.is_dir():
            out.extend(
                q
                for q in sorted(p.iterdir())
                if q.is_file() and is_slide_name(q, suffixes=(*TILE_SUFFIXES, *COHORT_SUFFIXES))
            )
        else:
            out.append(p)
    return out


def run(args: argparse.Namespace) -> int:
    """QC every input; return 1 if any could not be read (the others are still written)."""
    from napari_xai.core.qc import qc_image, write_cohort, write_qc

    paths = _expand(list(args.inputs))
    if not paths:
        print("napari-xai: error: no input images found", file=sys.stderr)
        return 1
    results = []
    failed = 0
    seen: dict[str, int] = {}
    for path in paths:
        stem = path.name.split(".")[0]
        n = seen.get(stem, 0)
        seen[stem] = n + 1
        try:
            res, masks, thumb = qc_image(
                path,
                mpp=args.mpp,
                max_size=args.max_size,
                stem=stem if not n else f"{stem}-{n}",
                strokes=not args.no_strokes,
            )
        except (OSError, ValueError) as exc:
            print(f"napari-xai: error: {exc}", file=sys.stderr)
            failed += 1
            continue
        write_qc(res, masks, thumb, args.out)
        results.append(res)
        note = f" [{'; '.join(res.warnings)}]" if res.warnings else ""
        print(
            f"{path}: {res.modality}/{res.stain}, tissue {res.tissue_fraction:.1%}, "
            f"artefacts {res.artefact_fraction:.1%}{note}"
        )
    if results:
        csv_path, html_path = write_cohort(results, args.out)
        print(f"wrote {csv_path} and {html_path}")
    return 1 if failed else 0
