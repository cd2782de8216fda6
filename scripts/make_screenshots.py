"""Make the screenshots of docs/viewer.md (docs/images/*.png).

Run under Xvfb from the repository root::

    xvfb-run -a -s "-screen 0 1600x1200x24" python scripts/make_screenshots.py [--out docs/images]

Writes ``palette.png`` (the class palette and role colours, no viewer needed)
and, with a real viewer on a result folder scored here from the real slide
``../shared/data/slides/CMU-1-Small-Region.svs``: ``display_panel.png`` (the
display panel docked next to the canvas), ``tile_inspector.png`` (a clicked
tile in the inspector) and ``legend.png`` (the panel's legend). With
``--audit`` also docs/audit_widget.png (the Audit widget after auditing the
synthetic sample: sanity label, verdict, gallery), audit_widget_jump.png (the
first gallery tile clicked) and audit_slide.png (the report's slide figure).
PNGs are quantised to keep each under 300 KB.
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
        REGION_COLOURS,
        ROLE_COLOURS,
        VERDICT_COLOURS,
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
    rows += [(f"audit region {name}", c) for name, c in REGION_COLOURS.items()]
    rows += [(f"verdict {name}", c) for name, c in VERDICT_COLOURS.items()]
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
    """Save an RGB(A) array as PNG, palette-quantised when over 300 KB."""
    import numpy as np
    from PIL import Image

    arr = np.asarray(rgb)[..., :3].astype(np.uint8)
    Image.fromarray(arr).save(path, optimize=True)
    if path.stat().st_size > 300 * 1024:  # too big: fewer colours
        Image.fromarray(arr).quantize(colors=256).save(path, optimize=True)
    return path


def main(argv: list[str] | None = None) -> int:
    """Write the screenshots; return 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "images")
    parser.add_argument("--palette-only", action="store_true", help="no viewer (no Xvfb needed)")
    parser.add_argument("--audit", action="store_true", help="also the Audit widget's (docs/)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    written = [palette_png(args.out)]
    if not args.palette_only:
        written += viewer_pngs(args.out)
    if args.audit:
        written += audit_pngs(REPO / "docs")
    for path in written:
        print(f"{path} {path.stat().st_size // 1024} KB")
    return 0


def _grab(widget: object, path: Path, rect: object = None) -> Path:
    """Save a Qt widget (or a rectangle of it) as a small PNG."""
    import numpy as np

    pix = widget.grab() if rect is None else widget.grab(rect)  # type: ignore[attr-defined]
    image = pix.toImage().convertToFormat(pix.toImage().Format.Format_RGB888)
    h, w = image.height(), image.width()
    buf = np.frombuffer(image.constBits().asstring(image.sizeInBytes()), np.uint8)
    rgb = buf.reshape(h, image.bytesPerLine())[:, : 3 * w].reshape(h, w, 3)
    return _small_png(path, rgb)


def _settle() -> None:
    from qtpy.QtWidgets import QApplication

    for _ in range(10):
        QApplication.processEvents()


def viewer_pngs(out: Path) -> list[Path]:
    """Screenshots with a real viewer (display panel, tile inspector, legend)."""
    import tempfile

    import napari
    from qtpy.QtCore import QPoint, QRect

    from napari_xai.cli import main as cli

    if not CMU.is_file():
        raise SystemExit(f"{CMU}: the real slide is needed for the screenshots")
    tmp = Path(tempfile.mkdtemp(prefix="napari-xai-shots-"))
    common = ["--out", str(tmp), "--device", "cpu"]
    assert cli(["score", str(CMU), *common]) == 0
    assert cli(["explain", str(CMU), "--method", "saliency", "--quiet", *common]) == 0
    folder = tmp / CMU.stem

    viewer = napari.Viewer(show=True)
    viewer.window.resize(1400, 900)
    viewer.open(folder, plugin="napari-xai")
    _, panel = viewer.window.add_plugin_dock_widget("napari-xai", "Display panel")
    tiles = viewer.layers[f"{CMU.stem} tiles"]
    tiles.visible = viewer.layers[f"{CMU.stem} predicted regions"].visible = False
    t = tiles.features
    k = int(t["prob_tumour"].idxmax())
    centre = (t["row"][k] + t["height"][k] / 2, t["col"][k] + t["width"][k] / 2)
    viewer.reset_view()
    _settle()
    written = [_grab(viewer.window._qt_window, out / "display_panel.png")]
    inner = panel.inner
    top = panel._legend_title.native.mapTo(inner, QPoint(0, 0)).y() - 4
    classes = panel._classes.native
    bottom = classes.mapTo(inner, QPoint(0, classes.height())).y() + 4
    written.append(_grab(inner, out / "legend.png", QRect(0, top, inner.width(), bottom - top)))
    _, inspector = viewer.window.add_plugin_dock_widget("napari-xai", "Tile inspector")
    viewer.layers[f"{CMU.stem} saliency [saliency, predicted]"].visible = True
    _settle()
    inspector.inspect_at(centre)
    _settle()
    written.append(_grab(inspector.inner, out / "tile_inspector.png"))
    viewer.close()
    return written


def audit_pngs(out: Path) -> list[Path]:
    """The Audit widget on the synthetic sample: after the audit, and jumped to tile #1."""
    import base64
    import io
    import tempfile

    import napari
    import numpy as np
    from PIL import Image
    from qtpy.QtWidgets import QApplication

    from napari_xai.demo.synthetic import write_synthetic_slide

    tmp = Path(tempfile.mkdtemp(prefix="napari-xai-audit-shots-"))
    slide = tmp / "sample-8192-seed0.svs"
    write_synthetic_slide(slide, shape_rc=(8192, 8192), seed=0)
    viewer = napari.Viewer(show=True)
    viewer.window.resize(1400, 950)
    viewer.open(slide, plugin="napari-xai")
    _, widget = viewer.window.add_plugin_dock_widget("napari-xai", "Audit")
    widget._output.value = tmp / "out"
    widget._max_tiles.value = 128
    while widget._model_sha is None:  # the model is described in a worker
        QApplication.processEvents()
    widget._on_run()
    while widget._worker is not None:
        QApplication.processEvents()
    while widget._sanity.value == "sanity: …":
        QApplication.processEvents()
    viewer.reset_view()
    _settle()
    written = [_grab(viewer.window._qt_window, out / "audit_widget.png")]
    widget._gallery.itemClicked.emit(widget._gallery.item(0))
    _settle()
    written.append(_grab(viewer.window._qt_window, out / "audit_widget_jump.png"))
    page = (widget.last_result.report_path).read_text(encoding="utf-8")
    src = page.split('alt="slide overview"')[0].rsplit("data:image/png;base64,", 1)[1]
    src = src.split('"', 1)[0]
    figure = np.asarray(Image.open(io.BytesIO(base64.b64decode(src))).convert("RGB"))
    written.append(_small_png(out / "audit_slide.png", figure))
    viewer.close()
    return written


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
