"""Benchmark: UI latency of the Score widget in a real napari viewer.

Drives the real widgets (run under ``xvfb-run`` on a headless machine) and prints

* **click → first heatmap drawn**: the time from the Score click to the first
  canvas draw that shows a heatmap layer, on CMU-1-Small-Region
  (``../shared/data/slides``) with a warm viewer (slide shown, widget docked,
  model described, the masks made or being made in the background), for a
  first and a second click, and for a click with the masks not made (as right
  after picking a slide: the masks are then part of the wait); target ≤ 3 s;
* **longest GUI stall while scoring the sample**: a ``QTimer`` ticks every 10 ms
  on the GUI thread while the widget scores the synthetic sample slide (File ▸
  Open Sample, generated once into the cache); the longest gap between ticks,
  minus the 10 ms period, is the stall; target no stall over 200 ms. Also the
  stall while opening the sample;
* **the longest GUI stall while the widget prepares a slide's maps**: once a
  slide is picked and the model described, the widget adds the run's
  probability maps empty (one per turn) so a run only fills them; that work is
  timed on its own (after docking on CMU-1-Small-Region, and after picking the
  sample), not hidden outside the figures;
* **the top stall causes**: a helper thread samples the GUI thread's Python
  stack every 5 ms; the samples inside each gap over 100 ms are grouped by the
  handler that ran (the outermost frame below Qt's event loop) and the frame
  where the time went (the innermost napari_xai, napari or vispy frame), and
  the largest groups are printed with their milliseconds ("no Python frame"
  means Qt's own C++ work, e.g. painting, or waiting for the GIL);
* the garbage collector's full passes in each measured span (their number and
  the longest: they hold the GIL, and no stack sample names them);
* the machine's load (``os.getloadavg``) before and after, so figures from a
  busy machine are read as such.

Each click scores into a fresh temporary output folder (a second click into
the same folder would reuse the result, not score).

Usage::

    xvfb-run -a -s "-screen 0 1600x1200x24" .venv/bin/python benchmarks/bench_ui.py
    ... bench_ui.py --stall-seconds 30   # score the sample for at most 30 s

The figures go to stdout as text and, with ``--json FILE``, as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CMU = ROOT.parent / "shared" / "data" / "slides" / "CMU-1-Small-Region.svs"


class StallMeter:
    """Longest gap between ticks of a 10 ms ``QTimer`` on the GUI thread.

    Also times the garbage collector's full (generation 2) passes on any thread
    (they hold the GIL: the GUI waits), which no stack sample can name.
    """

    def __init__(self, period_ms: int = 10) -> None:
        from qtpy.QtCore import QTimer

        self.period_s = period_ms / 1000.0
        self.gaps: list[float] = []
        self.long: list[tuple[float, float]] = []  # (when, gap) of gaps over 100 ms
        self._last = time.perf_counter()
        self._timer = QTimer()
        self._timer.setInterval(period_ms)
        self._timer.timeout.connect(self._tick)
        self.collections: list[float] = []  # ms of each full collection
        self._gc_start = 0.0

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if info["generation"] != 2:
            return
        if phase == "start":
            self._gc_start = time.perf_counter()
        else:
            self.collections.append((time.perf_counter() - self._gc_start) * 1000)

    def _tick(self) -> None:
        now = time.perf_counter()
        self.gaps.append(now - self._last)
        if now - self._last > 0.1:
            self.long.append((self._last, now - self._last))
        self._last = now

    def start(self) -> None:
        import gc

        self.gaps = []
        self.long = []
        self.collections = []
        gc.callbacks.append(self._on_gc)
        self._last = time.perf_counter()
        self._timer.start()

    def stop(self) -> dict[str, float]:
        import gc

        self._timer.stop()
        gc.callbacks.remove(self._on_gc)
        gaps = sorted(self.gaps) or [0.0]
        return {
            "max_stall_ms": max(0.0, (gaps[-1] - self.period_s) * 1000),
            "p99_gap_ms": gaps[int(0.99 * (len(gaps) - 1))] * 1000,
            "n_ticks": len(self.gaps),
            "full_collections": len(self.collections),
            "longest_full_collection_ms": max(self.collections, default=0.0),
        }


class StackSampler:
    """Samples the GUI (main) thread's Python stack every ``interval_s`` from a helper thread."""

    #: Frames of the event loop and of this benchmark: not a cause.
    PLUMBING = ("bench_ui.py", "/qtpy/", "/superqt/", "/napari/_qt/qt_event_loop", "/threading.py")

    def __init__(self, interval_s: float = 0.005) -> None:
        self.interval_s = interval_s
        self.samples: list[tuple[float, tuple[str, ...]]] = []
        self._main = threading.main_thread().ident
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self.samples = []
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            frame = sys._current_frames().get(self._main)
            stack = []
            while frame is not None:
                code = frame.f_code
                stack.append(f"{code.co_filename}:{code.co_name}")
                frame = frame.f_back
            self.samples.append((time.perf_counter(), tuple(reversed(stack))))
            time.sleep(self.interval_s)

    @staticmethod
    def _short(frame: str) -> str:
        path, func = frame.rsplit(":", 1)
        parts = Path(path).with_suffix("").parts
        for root in ("napari_xai", "napari", "vispy", "numpy", "dask", "zarr"):
            if root in parts:
                return ".".join(parts[len(parts) - 1 - parts[::-1].index(root) :]) + f".{func}"
        return f"{Path(path).stem}.{func}"

    def cause(self, stack: tuple[str, ...]) -> str:
        """``handler -> where``: the outermost frame below the event loop, the innermost ours."""
        frames = [f for f in stack if not any(p in f for p in self.PLUMBING)]
        if not frames:
            return "no Python frame (Qt C++ work: painting, layout; or waiting for the GIL)"
        entry = frames[0]
        where = next(
            (
                f
                for f in reversed(frames)
                if any(k in f for k in ("napari_xai", "napari", "vispy"))
            ),
            frames[-1],
        )
        return f"{self._short(entry)} -> {self._short(where)}"

    def causes(self, gaps: list[tuple[float, float]], top: int = 3) -> list[dict[str, Any]]:
        """Per gap ((start, length) pairs), the ``top`` causes with their milliseconds.

        Each sample stands for the time since the previous sample (the helper
        thread waits for the GIL too), clipped to the gap.
        """
        out = []
        for start, length in sorted(gaps, key=lambda g: -g[1]):
            spent: Counter[str] = Counter()
            prev = start
            for t, stack in self.samples:
                if start <= t <= start + length:
                    spent[self.cause(stack)] += (t - prev) * 1000
                    prev = t
            causes = [(cause, round(ms)) for cause, ms in spent.most_common(top)]
            out.append({"at": start, "ms": round(length * 1000), "causes": causes})
        return out


def print_causes(gaps: list[dict[str, Any]], t0: float, top: int = 5) -> None:
    """Print the longest stalls (over 100 ms) with their top causes."""
    if not gaps:
        print("  no stall over 100 ms")
    for gap in gaps[:top]:
        causes = "; ".join(f"{cause} ~{ms} ms" for cause, ms in gap["causes"]) or "no sample"
        print(f"  stall {gap['ms']} ms at {gap['at'] - t0:.2f} s: {causes}")


def time_handlers(widget: Any) -> dict[str, list[float]]:
    """Time the widget's GUI-thread work: its result handlers and its layer updates."""
    spent: dict[str, list[float]] = {"handlers": [], "upsert": []}

    def timed(name: str, fn: Any) -> Any:
        def run(*args: Any, **kwargs: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name].append(time.perf_counter() - t)

        return run

    for attr in ("_on_yielded", "_on_returned"):
        object.__setattr__(
            widget, attr, timed("handlers", getattr(type(widget), attr).__get__(widget))
        )
    widget._pacer._show = timed("upsert", widget._pacer._show)  # layers, one per turn
    return spent


def handler_figures(spent: dict[str, list[float]]) -> str:
    """Total and longest time in the widget's handlers and layer updates."""
    parts = []
    for name, values in spent.items():
        if values:
            total, longest = sum(values), max(values) * 1000
            parts.append(f"{name} {len(values)}x, total {total:.2f} s, max {longest:.0f} ms")
    return "; ".join(parts) or "no handler ran"


def wait(app: Any, until: Any, timeout: float) -> bool:
    """Process Qt events until ``until()`` is true or ``timeout`` seconds pass."""
    end = time.perf_counter() + timeout
    while time.perf_counter() < end:
        app.processEvents()
        if until():
            return True
        time.sleep(0.002)
    return False


def measured(app: Any, until: Any, timeout: float) -> dict[str, Any]:
    """Process events until ``until()``; the time taken, the longest stall and its causes."""
    meter, sampler = StallMeter(), StackSampler()
    sampler.start()
    meter.start()
    t0 = time.perf_counter()
    done = wait(app, until, timeout)
    wait(app, lambda: False, 0.3)  # the paints that follow
    stall = meter.stop()
    sampler.stop()
    return {
        "seconds": time.perf_counter() - t0,
        "done": done,
        **stall,
        "stall_causes": sampler.causes(meter.long),
        "t0": t0,
    }


def print_measured(what: str, fig: dict[str, Any]) -> None:
    """One line for a :func:`measured` figure, then its stall causes."""
    print(
        f"{what}: {fig['seconds']:.1f} s{'' if fig['done'] else ' (timed out)'}, "
        f"longest GUI stall {fig['max_stall_ms']:.0f} ms, "
        f"{fig['full_collections']} full garbage collections"
    )
    print_causes(fig["stall_causes"], fig["t0"])


def click_to_first_heatmap(viewer: Any, widget: Any, app: Any) -> dict[str, Any]:
    """Click Score; time the first canvas draw after a heatmap layer is first shown."""
    canvas = viewer.window._qt_viewer.canvas._scene_canvas
    marks: dict[str, float] = {}
    show = widget._pacer._show

    def shown(ldt: Any) -> Any:
        out = show(ldt)
        meta = ldt[1].get("metadata", {}) if isinstance(ldt, tuple) else ldt.metadata
        if meta.get("napari_xai") == "probability":
            marks.setdefault("maps", time.perf_counter())
        return out

    def on_draw(_event: Any = None) -> None:
        if "maps" in marks and "first_draw" not in marks:
            marks["first_draw"] = time.perf_counter()

    widget._pacer._show = shown
    canvas.events.draw.connect(on_draw)
    widget._output.value = tempfile.mkdtemp(prefix="bench_ui_")  # score, do not reuse
    meter = StallMeter()
    sampler = StackSampler()
    sampler.start()
    meter.start()
    t0 = time.perf_counter()
    widget._run.changed.emit(True)  # what a click does
    wait(app, lambda: "first_draw" in marks, 120)
    wait(app, lambda: widget._worker is None, 600)
    wait(app, lambda: False, 0.3)
    done = time.perf_counter()
    stall = meter.stop()
    sampler.stop()
    canvas.events.draw.disconnect(on_draw)
    widget._pacer._show = show
    n = len(widget.last_result.tiles) if widget.last_result is not None else 0
    return {
        "click_to_first_heatmap_s": marks.get("first_draw", float("nan")) - t0,
        "click_to_maps_s": marks.get("maps", float("nan")) - t0,
        "click_to_done_s": done - t0,
        "tiles": n,
        "max_stall_ms": stall["max_stall_ms"],
        "long_gaps": [(round(w - t0, 2), round(g * 1000)) for w, g in meter.long],
        "stall_causes": sampler.causes(meter.long),
        "t0": t0,
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
    # warm viewer: the slide drawn, the model described (loaded in a worker, cached),
    # the slide's maps prepared (empty)
    wait(app, lambda: widget._model_note.value != "", 120)
    fig = measured(app, lambda: not widget._pacer, 120)
    figures["cmu_prepare"] = fig
    print_measured(f"{args.slide.name}: preparing the maps (model described -> ready)", fig)
    wait(app, lambda: False, 1.0)
    from napari_xai._widgets import _masks
    from napari_xai.core.masks import store

    for run in ("first", "second", "masks-not-made"):
        if run == "masks-not-made":  # as for a slide picked just before the click
            store.forget_made_masks()
        warming = str(widget._slide_layer.value.metadata["path"]) in _masks._WARMING
        fig = click_to_first_heatmap(viewer, widget, app)
        fig["masks_at_click"] = (
            "being made" if warming else "made" if run != "masks-not-made" else "not made"
        )
        figures[f"cmu_{run}_click"] = fig
        print(
            f"{args.slide.name} {run} click (masks {fig['masks_at_click']}): first heatmap drawn "
            f"{fig['click_to_first_heatmap_s']:.2f} s after the click (target <= 3 s), "
            f"done in {fig['click_to_done_s']:.2f} s ({fig['tiles']} tiles), "
            f"longest GUI stall {fig['max_stall_ms']:.0f} ms; gaps > 100 ms (s after "
            f"click, ms): {fig['long_gaps']}"
        )
        print_causes(fig["stall_causes"], fig["t0"])

    if not args.no_sample:
        meter = StallMeter()
        sampler = StackSampler()
        sampler.start()
        meter.start()
        t0 = time.perf_counter()
        layers = viewer.open_sample("napari-xai", "synthetic_slide")
        wait(app, lambda: False, 0.5)
        opened = meter.stop()
        sampler.stop()
        figures["sample_open"] = {"seconds": time.perf_counter() - t0, **opened}
        figures["sample_open"]["stall_causes"] = sampler.causes(meter.long)
        print(
            f"open sample: {figures['sample_open']['seconds']:.1f} s, longest GUI stall "
            f"{opened['max_stall_ms']:.0f} ms"
        )
        print_causes(figures["sample_open"]["stall_causes"], t0)
        widget._slide_layer.value = layers[0]
        fig = measured(app, lambda: not widget._pacer, 120)
        figures["sample_prepare"] = fig
        print_measured("sample picked: preparing its maps (picked -> ready)", fig)
        widget._output.value = tempfile.mkdtemp(prefix="bench_ui_")
        spent = time_handlers(widget)
        sampler = StackSampler()
        sampler.start()
        meter.start()
        t0 = time.perf_counter()
        widget._run.changed.emit(True)
        wait(app, lambda: widget._worker is None, args.stall_seconds)
        scored = int(widget._progress.value)
        if widget._worker is not None:
            widget._cancel.changed.emit(True)
            wait(app, lambda: widget._worker is None, 120)
        stall = meter.stop()
        sampler.stop()
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
            f"{stall['p99_gap_ms']:.0f} ms over {stall['n_ticks']:,} ticks; "
            f"{stall['full_collections']} full garbage collections (longest "
            f"{stall['longest_full_collection_ms']:.0f} ms); gaps > 100 ms "
            f"(s after click, ms): {[(round(w - t0, 1), round(g * 1000)) for w, g in meter.long]}"
        )
        figures["sample_score"]["widget_gui_work"] = handler_figures(spent)
        print(f"  of which the widget's own GUI-thread work: {handler_figures(spent)}")
        figures["sample_score"]["stall_causes"] = sampler.causes(meter.long)
        print_causes(figures["sample_score"]["stall_causes"], t0)
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
