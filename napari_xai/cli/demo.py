"""``napari-xai demo``: the whole pipeline on the bundled defaults.

Writes a synthetic sample slide (tumour regions, a pen mark, an 'R' marker, a
ruler, a label), scores it with the bundled demo model, explains the
predictions over the whole slide, audits where the attribution falls, and
shows the result folder in napari — or, without a display (``--no-show``),
saves a screenshot of the same view.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

DEFAULT_OUT = "napari-xai-demo"


HELP = "score, explain and audit the bundled sample slide with the demo model, and show it"
DESCRIPTION = __doc__
FORMATTER_CLASS = argparse.RawDescriptionHelpFormatter


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``demo`` arguments to ``parser``."""
    parser.add_argument(
        "--out", default=DEFAULT_OUT, help=f"output folder (default: {DEFAULT_OUT})"
    )
    parser.add_argument(
        "--size",
        type=int,
        default=8192,
        help="sample slide height in level-0 pixels; width is 1.25x (default: 8192)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample slide")
    parser.add_argument(
        "--method",
        default="grad_cam",
        help="attribution method for the saliency layer (default: grad_cam)",
    )
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    parser.add_argument(
        "--no-show",
        action="store_true",
        help="do not open a napari window; save OUT/screenshot.png of the same view instead",
    )


def _say(message: str) -> None:
    print(f"[napari-xai demo] {message}", flush=True)


def ensure_sample_slide(out: Path, *, size: int, seed: int) -> Path:
    """Write the synthetic sample slide into ``out`` unless it is already there."""
    from napari_xai.demo.synthetic import write_synthetic_slide

    path = out / f"sample-{size}-seed{seed}.svs"
    if path.exists():
        _say(f"sample slide {path} (reused)")
        return path
    rows, cols = size, int(size * 1.25) // 512 * 512
    _say(f"writing sample slide {path} ({cols} x {rows} px)")
    t0 = time.perf_counter()
    write_synthetic_slide(path, shape_rc=(rows, cols), seed=seed)
    _say(f"  written in {time.perf_counter() - t0:.1f} s")
    return path


def score_explain_audit(slide: Path, out: Path, *, method: str, device: str | None) -> Path:
    """Run :func:`napari_xai.core.pipeline.run_slide` into ``out/results/<slide>``; return it."""
    from napari_xai.core.options import AuditSpec, ExplainSpec, RunOptions, SlideOptions
    from napari_xai.core.pipeline import drive, run_slide

    last = [0.0]

    def on_step(step: Any) -> None:
        now = time.monotonic()
        if now - last[0] > 2.0 or step.message:
            last[0] = now
            done = f" {step.n_done:,}/{step.n_total:,}" if step.n_total else ""
            _say(f"  {step.stage}{done} {step.message}".rstrip())

    _say(f"scoring, explaining ({method}) and auditing with the demo model -> {out / 'results'}")
    t0 = time.perf_counter()
    folder = drive(
        run_slide(
            slide,
            "demo",
            out / "results",
            options=SlideOptions(
                run=RunOptions(device=device or "auto"),
                explain=ExplainSpec(method=method),
                audit=AuditSpec(method=method),
            ),
        ),
        on_step,
    )
    _say(f"  done in {time.perf_counter() - t0:.1f} s")
    return folder


def show_result(folder: Path, *, screenshot: Path | None) -> list[Path]:
    """Open the result folder in napari, or save screenshots of it instead of showing.

    With ``screenshot``, two pictures are saved: the predictions over the
    slide (``screenshot``) and the saliency over the slide (``…-saliency.png``).
    """
    import napari

    # A shown window even for screenshots: a hidden canvas renders black.
    viewer = napari.Viewer(title="napari-xai demo", show=True)
    viewer.window.resize(1400, 950)
    viewer.open(folder, plugin="napari-xai")
    viewer.reset_view()
    if screenshot is None:
        _say("showing the result in napari (close the window to finish)")
        napari.run()
        return []
    saved = [_screenshot(viewer, screenshot)]
    saliency = [layer for layer in viewer.layers if "saliency" in layer.name]
    if saliency:
        for layer in viewer.layers:
            if layer is not viewer.layers[0] and layer not in saliency:
                layer.visible = False
        saliency[0].visible = True
        viewer.layers.selection.active = saliency[0]
        saved.append(_screenshot(viewer, screenshot.with_name(screenshot.stem + "-saliency.png")))
    viewer.close()
    return saved


def _screenshot(viewer: Any, path: Path) -> Path:
    from qtpy.QtWidgets import QApplication

    for _ in range(10):  # let the first (lazy) tiles arrive before the screenshot
        QApplication.processEvents()
        time.sleep(0.1)
    image = viewer.screenshot(path=str(path), canvas_only=False, flash=False)
    _say(f"screenshot {path} ({image.shape[1]} x {image.shape[0]} px)")
    return path


def has_display() -> bool:
    """Whether Qt can open a window here (Linux without X or Wayland cannot: Qt aborts)."""
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def run(args: argparse.Namespace) -> int:
    """Run the demo; return the exit status."""
    out = Path(args.out).expanduser().absolute()
    out.mkdir(parents=True, exist_ok=True)
    slide = ensure_sample_slide(out, size=args.size, seed=args.seed)
    folder = score_explain_audit(slide, out, method=args.method, device=args.device)
    for name in ("tiles.parquet", "heatmaps.zarr", "audit.json", "annotations.geojson"):
        _say(f"  {folder / name}")
    _print_audit(folder)
    if not has_display():
        _say(
            "no display (DISPLAY is not set): the result folder is complete; for the screenshots "
            "run `xvfb-run -a napari-xai demo --no-show` or `bash scripts/quickstart.sh`"
        )
        return 0 if args.no_show else 1
    show_result(folder, screenshot=out / "screenshot.png" if args.no_show else None)
    return 0


def _print_audit(folder: Path) -> None:
    import json

    path = folder / "audit.json"
    if not path.exists():
        return
    audit = json.loads(path.read_text())
    verdict = audit.get("attention", audit).get("verdict") if isinstance(audit, dict) else None
    if verdict:
        _say(f"audit verdict: {verdict}")


if __name__ == "__main__":  # pragma: no cover
    from napari_xai.cli import main

    sys.exit(main(["demo", *sys.argv[1:]]))
