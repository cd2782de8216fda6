"""Make the screenshots of docs/viewer.md (docs/images/*.png).

Run under Xvfb from the repository root::

    xvfb-run -a -s "-screen 0 1600x1200x24" python scripts/make_screenshots.py [--out docs/images]

Writes ``palette.png`` (the class palette and role colours, no viewer needed)
and, with a real viewer on a result folder scored here from the real slide
``../shared/data/slides/CMU-1-Small-Region.svs``: ``display_panel.png`` (the
display panel docked next to the canvas), ``tile_inspector.png`` (a clicked
tile in the inspector) and ``legend.png`` (the panel's legend). PNGs are
quantised to keep each under 300 KB.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CMU = REPO.parent / "shared" / "data" / "slides" / "CMU-1-Small-Region.svs"


def palette_png(out: Path) -> Path:
    """Swatches of the class palette, the role colours and the two colormaps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import LinearSegmentedColormap

    from napari_xai.core.masks import ARTEFACT_NAMES
    from napari_xai.core.naming import (
        ARTEFACT_COLOURS,
        ATTRIBUTION_COLORMAP,
        ROLE_COLOURS,
        class_colour,
        hex_colour,
        probability_colormap,
    )

    rows: list[tuple[str, tuple[float, float, float]]] = [
        (f"class {n}", class_colour(n))
        for n in ("tumour", "normal", "stroma", "lymphocytes", "necrosis", "adipose", "muscle")
    ]
    rows += [("class background", class_colour("background"))]
    rows += [("flagged tile", ROLE_COLOURS["flag"]), ("tissue outline", ROLE_COLOURS["tissue"])]
    rows += [(f"artefact {ARTEFACT_NAMES[k]}", c) for k, c in ARTEFACT_COLOURS.items()]
    fig, ax = plt.subplots(figsize=(6.4, 0.28 * len(rows) + 1.3), dpi=90)
    for i, (label, rgb) in enumerate(rows):
        y = len(rows) - i
        ax.add_patch(plt.Rectangle((0, y - 0.4), 0.8, 0.8, color=rgb))
        ax.text(1.0, y, f"{label}  {hex_colour(rgb)}", va="center", fontsize=9)
    cm = probability_colormap()
    prob = LinearSegmentedColormap.from_list(
        "p", list(zip(cm["controls"], [tuple(c) for c in cm["colors"]], strict=True))
    )
    grad = np.linspace(0, 1, 256)[None, :]
    ax.imshow(grad, cmap=prob, extent=(0, 4, -1.0, -0.3), aspect="auto")
    ax.text(4.2, -0.65, "probability 0-1 (transparent at 0)", va="center", fontsize=9)
    ax.imshow(grad, cmap=ATTRIBUTION_COLORMAP, extent=(0, 4, -2.1, -1.4), aspect="auto")
    ax.text(4.2, -1.75, "attribution (its own scale)", va="center", fontsize=9)
    ax.set_xlim(0, 9)
    ax.set_ylim(-2.4, len(rows) + 0.6)
    ax.axis("off")
    path = out / "palette.png"
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)
    return path


def _small_png(path: Path, rgb: object) -> Path:
    """Save an RGB(A) array as a palette-quantised PNG (small files)."""
    import numpy as np
    from PIL import Image

    arr = np.asarray(rgb)[..., :3].astype(np.uint8)
    Image.fromarray(arr).quantize(colors=128).save(path, optimize=True)
    return path


def main(argv: list[str] | None = None) -> int:
    """Write the screenshots; return 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    parser.add_argument("--palette-only", action="store_true", help="no viewer (no Xvfb needed)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    written = [palette_png(args.out)]
    if not args.palette_only:
        written += viewer_pngs(args.out)
    for path in written:
        print(f"{path} {path.stat().st_size // 1024} KB")
    return 0


def viewer_pngs(out: Path) -> list[Path]:
    """Screenshots with a real viewer (display panel, tile inspector, legend)."""
    raise SystemExit("viewer screenshots: not written yet")


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
