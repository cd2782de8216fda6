"""Benchmark: UI latency of the Score widget in a real napari viewer.

Drives the real widgets (run under ``xvfb-run`` on a headless machine) and prints

* **click → first heatmap drawn**: the time from the Score click to the first
  canvas draw that shows a heatmap layer, on CMU-1-Small-Region
  (``../shared/data/slides``) with a warm viewer (slide shown, widget docked,
  model described), for a first and a second click; target ≤ 3 s;
* **longest GUI stall while scoring the sample**: a ``QTimer`` ticks every 10 ms
  on the GUI thread while the widget scores the synthetic sample slide (File ▸
  Open Sample, generated once into the cache); the longest gap between ticks,
  minus the 10 ms period, is the stall; target no stall over 200 ms. Also the
  stall while opening the sample;
* the machine's load (``os.getloadavg``) before and after, so figures from a
  busy machine are read as such.

Usage::

    xvfb-run -a -s "-screen 0 1600x1200x24" .venv/bin/python benchmarks/bench_ui.py
    ... bench_ui.py --stall-seconds 30   # score the sample for at most 30 s

The figures go to stdout as text and, with ``--json FILE``, as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CMU = ROOT.parent / "shared" / "data" / "slides" / "CMU-1-Small-Region.svs"


class StallMeter:
    """Longest gap between ticks of a 10 ms ``QTimer`` on the GUI thread."""

    def __init__(self, period_ms: int = 10) -> None:
        from qtpy.QtCore import QTimer

        self.period_s = period_ms / 1000.0
        self.gaps: list[float] = []
        self._last = time.perf_counter()
        self._timer = QTimer()
        self._timer.setInterval(period_ms)
        self._timer.timeout.connect(self._tick)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append(now - self._last)
        self._last = now

    def start(self) -> None:
        self.gaps = []
        self._last = time.perf_counter()
        self._timer.start()

    def stop(self) -> dict[str, float]:
        self._timer.stop()
        gaps = sorted(self.gaps) or [0.0]
        return {
            "max_stall_ms": max(0.0, (gaps[-1] - self.period_s) * 1000),
            "p99_gap_ms": gaps[int(0.99 * (len(gaps) - 1))] * 1000,
            "n_ticks": len(self.gaps),
        }


def wait(app: Any, until: Any, timeout: float) -> bool:
    """Process Qt events until ``until()`` is true or ``timeout`` seconds pass."""
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        app.processEvents()
        if until():
            return True
        time.sleep(0.002)
    return False


def click_to_first_heatmap(viewer: Any, widget: Any, app: Any) -> dict[str, float]:
    """Click Score; time the first canvas draw with a heatmap layer, and the whole run."""
    canvas = viewer.window._qt_viewer.canvas._scene_canvas
    marks: dict[str, float] = {}

    def on_draw(_event: Any = None) -> None:
        if "first_draw" not in marks and any(" prob [" in lyr.name for lyr in viewer.layers):
            marks["first_draw"] = time.perf_counter()

    for name in [
        lyr.name for lyr in viewer.layers if " prob [" in lyr.name or " tiles" in lyr.name
    ]:
        viewer.layers.remove(name)
    canvas.events.draw.connect(on_draw)
    meter = StallMeter()
    meter.start()
    t0 = time.perf_counter()
    widget._run.changed.emit(True)  # what a click does
    wait(app, lambda: "first_draw" in marks, 120)
    wait(app, lambda: widget._worker is None, 600)
    done = time.perf_counter()
    stall = meter.stop()
    canvas.events.draw.disconnect(on_draw)
    n = len(widget.last_result.tiles) if widget.last_result is not None else 0
    return {
        "click_to_first_heatmap_s": marks.get("first_draw", float("nan")) - t0,
        "click_to_done_s": done - t0,
        "tiles": n,
        "max_stall_ms": stall["max_stall_ms"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slide", type=Path, default=CMU, help="slide for the click latency")
    parser.add_argument("--stall-seconds", type=float, default=60.0,
                        help="score the sample for at most this long, then cancel")  # fmt: skip
    parser.add_argument("--no-sample", action="store_true", help="skip the sample's stall")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    import napari
    from qtpy.QtWidgets import QApplication

    figures: dict[str, Any] = {"load_before": os.getloadavg(), "cpus": os.cpu_count()}
    viewer = napari.Viewer(show=True)
    app = QApplication.instance()
    if not args.slide.is_file():
        raise SystemExit(f"{args.slide}: not found (see ../shared/data/README.md)")
    viewer.open(str(args.slide), plugin="napari-xai")
    _, widget = viewer.window.add_plugin_dock_widget("napari-xai", "Score slide")
    # warm viewer: the slide drawn, the model described (loaded in a worker, cached)
    wait(app, lambda: widget._model_note.value != "", 120)
    wait(app, lambda: False, 1.0)
    for run in ("first", "second"):
        fig = click_to_first_heatmap(viewer, widget, app)
        figures[f"cmu_{run}_click"] = fig
        print(
            f"{args.slide.name} {run} click: first heatmap drawn "
            f"{fig['click_to_first_heatmap_s']:.2f} s after the click (target <= 3 s), "
            f"done in {fig['click_to_done_s']:.2f} s ({fig['tiles']} tiles), "
            f"longest GUI stall {fig['max_stall_ms']:.0f} ms"
        )

    if not args.no_sample:
        meter = StallMeter()
        meter.start()
        t0 = time.perf_counter()
        layers = viewer.open_sample("napari-xai", "synthetic_slide")
        wait(app, lambda: False, 0.5)
        opened = meter.stop()
        figures["sample_open"] = {"seconds": time.perf_counter() - t0, **opened}
        print(
            f"open sample: {figures['sample_open']['seconds']:.1f} s, longest GUI stall "
            f"{opened['max_stall_ms']:.0f} ms"
        )
        widget._slide_layer.value = layers[0]
        meter.start()
        t0 = time.perf_counter()
        widget._run.changed.emit(True)
        wait(app, lambda: widget._worker is None, args.stall_seconds)
        scored = int(widget._progress.value)
        if widget._worker is not None:
            widget._cancel.changed.emit(True)
            wait(app, lambda: widget._worker is None, 120)
        stall = meter.stop()
        figures["sample_score"] = {
            "seconds": time.perf_counter() - t0,
            "tiles_scored": scored,
            "tiles_total": int(widget._progress.max),
            **stall,
        }
        print(
            f"score the sample: {scored:,} / {int(widget._progress.max):,} tiles in "
            f"{figures['sample_score']['seconds']:.1f} s; longest GUI stall "
            f"{stall['max_stall_ms']:.0f} ms (target <= 200 ms), p99 tick gap "
            f"{stall['p99_gap_ms']:.0f} ms over {stall['n_ticks']:,} ticks"
        )
    figures["load_after"] = os.getloadavg()
    print(
        f"machine: {figures['cpus']} CPUs, load average before "
        f"{', '.join(f'{v:.2f}' for v in figures['load_before'])}, after "
        f"{', '.join(f'{v:.2f}' for v in figures['load_after'])}"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    viewer.close()


if __name__ == "__main__":
    main()
