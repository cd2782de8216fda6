"""Benchmark: open a 100,000 x 80,000 px synthetic slide lazily.

Writes (or reuses) the slide, then in fresh processes measures

* without a viewer: ``read_slide`` + ``napari.layers.Layer.create``;
* with a real napari viewer (Qt; run under ``xvfb-run`` on a headless machine):
  time until the layer is in the viewer and until the first view is drawn,

each with the number of tiles decoded (store reads counted) and the peak RSS
growth. Also prints the time and peak memory to *write* the slide.

Usage::

    xvfb-run -a -s "-screen 0 1280x1024x24" .venv/bin/python benchmarks/bench_open.py
    .venv/bin/python benchmarks/bench_open.py --shape 20000 25000 --no-viewer   # quick

Targets: layer in the viewer in under 1 s, a few dozen tiles for the first
view, under 200 MB of RSS growth.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _count_store_reads() -> list[str]:
    """Count tile reads through tifffile's zarr store (what tiffslide decodes from)."""
    from tifffile.zarr import ZarrTiffStore

    decoded: list[str] = []
    original = ZarrTiffStore.get

    async def counting_get(self, key, prototype, byte_range=None):  # type: ignore[no-untyped-def]
        value = await original(self, key, prototype, byte_range)
        if value is not None and not key.endswith((".zarray", ".zgroup", ".zattrs", "zarr.json")):
            decoded.append(key)
        return value

    ZarrTiffStore.get = counting_get  # type: ignore[method-assign]
    return decoded


def child_write(path: str, rows: int, cols: int, workers: int | None) -> dict[str, float]:
    from napari_xai.demo.synthetic import write_synthetic_slide

    base = _maxrss_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    last = [0.0]

    def progress(done: int, total: int) -> None:
        now = time.perf_counter()
        if now - last[0] > 30 or done == total:
            last[0] = now
            print(f"  write: {done}/{total} tiles, {now - t0:.0f} s", file=sys.stderr, flush=True)

    write_synthetic_slide(path, shape_rc=(rows, cols), seed=0, progress=progress, workers=workers)
    return {
        "write_s": time.perf_counter() - t0,
        "write_cpu_s": time.process_time() - c0,
        "write_peak_rss_mb": _maxrss_mb(),
        "write_rss_before_mb": base,
        "file_mb": Path(path).stat().st_size / 1e6,
    }


def _import_reader_modules() -> float:
    """Import what the first slide pulls in (dask.array, tiffslide, zarr); return seconds."""
    t0 = time.perf_counter()
    import dask.array  # noqa: F401
    import tiffslide  # noqa: F401
    import zarr  # noqa: F401

    import napari_xai.core.wsi  # noqa: F401

    return time.perf_counter() - t0


def child_layer(path: str) -> dict[str, float]:
    """read_slide + Layer.create, no viewer (modules imported first, timed apart)."""
    from napari.layers import Layer

    from napari_xai._reader import read_slide

    import_s = _import_reader_modules()
    decoded = _count_store_reads()
    base = _maxrss_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    (ldt,) = read_slide(path)
    t1 = time.perf_counter()
    layer = Layer.create(*ldt)
    t2, c2 = time.perf_counter(), time.process_time()
    n_first, rss_first = len(decoded), _maxrss_mb() - base
    # a second slide in the same session (another name: no cache can help)
    t3, c3 = time.perf_counter(), time.process_time()
    (ldt2,) = read_slide(_second_name(path))
    Layer.create(*ldt2)
    t4, c4 = time.perf_counter(), time.process_time()
    return {
        "second_s": t4 - t3,
        "second_cpu_s": c4 - c3,
        "second_tiles": float(len(decoded) - n_first),
        "import_s": import_s,
        "read_slide_s": t1 - t0,
        "read_slide_plus_layer_s": t2 - t0,
        "cpu_s": c2 - c0,
        "tiles_decoded": float(n_first),
        "rss_growth_mb": rss_first,
        "levels": float(len(layer.data)),
    }


def child_viewer(path: str) -> dict[str, float]:
    """A real napari viewer: open through the plugin, draw the first view."""
    import napari
    from qtpy.QtWidgets import QApplication

    import_s = _import_reader_modules()
    decoded = _count_store_reads()
    viewer = napari.Viewer(show=True)
    app = QApplication.instance()
    for _ in range(20):
        app.processEvents()
    base = _maxrss_mb()
    t0, c0 = time.perf_counter(), time.process_time()
    layers = viewer.open(path, plugin="napari-xai")
    t1, c1 = time.perf_counter(), time.process_time()
    app.processEvents()
    shot = viewer.screenshot(canvas_only=True, flash=False)  # forces a full draw
    t2 = time.perf_counter()
    # let napari's async slicing settle, count again
    for _ in range(50):
        app.processEvents()
        time.sleep(0.01)
    shot = viewer.screenshot(canvas_only=True, flash=False)
    rgb = shot[..., :3].astype(float)
    n_first, rss_first = len(decoded), _maxrss_mb() - base
    # a second slide in the same session (another name: no cache can help)
    viewer.layers.clear()
    t3, c3 = time.perf_counter(), time.process_time()
    viewer.open(_second_name(path), plugin="napari-xai")
    t4, c4 = time.perf_counter(), time.process_time()
    viewer.screenshot(canvas_only=True, flash=False)
    t5 = time.perf_counter()
    for _ in range(50):
        app.processEvents()
        time.sleep(0.01)
    out = {
        "import_s": import_s,
        "open_to_layer_s": t1 - t0,
        "open_to_layer_cpu_s": c1 - c0,
        "open_to_first_draw_s": t2 - t0,
        "tiles_decoded_first_view": float(n_first),
        "rss_growth_mb": rss_first,
        "second_to_layer_s": t4 - t3,
        "second_to_layer_cpu_s": c4 - c3,
        "second_to_draw_s": t5 - t3,
        "second_tiles": float(len(decoded) - n_first),
        "screenshot_std": float(rgb.std()),
        "n_layers": float(len(layers)),
    }
    viewer.close()
    return out


def _second_name(path: str | Path) -> str:
    """A hard link to the slide under another name (created once)."""
    path = Path(path)
    other = path.with_name(path.stem + "_second" + path.suffix)
    if not other.exists():
        try:
            os.link(path, other)
        except OSError:
            os.symlink(path.resolve(), other)
    return str(other)


def _run_child(mode: str, args: argparse.Namespace) -> dict[str, float]:
    cmd = [sys.executable, __file__, "--child", mode, "--path", str(args.path)]
    cmd += ["--shape", str(args.shape[0]), str(args.shape[1])]
    if args.workers:
        cmd += ["--workers", str(args.workers)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    sys.stderr.write(proc.stderr[-3000:] if proc.returncode else "")
    if proc.returncode:
        raise SystemExit(f"{mode} child failed with code {proc.returncode}")
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--shape",
        nargs=2,
        type=int,
        default=(80_000, 100_000),
        metavar=("ROWS", "COLS"),
        help="level-0 size (default 80000 100000)",
    )
    parser.add_argument("--path", type=Path, default=None, help="slide file (reused if present)")
    parser.add_argument("--workers", type=int, default=None, help="writer threads")
    parser.add_argument("--no-viewer", action="store_true", help="skip the Qt viewer run")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.path is None:
        from napari_xai._sample_data import cache_dir

        args.path = cache_dir() / f"bench_{args.shape[0]}x{args.shape[1]}_seed0.svs"

    if args.child:
        fn = {
            "write": lambda: child_write(str(args.path), *args.shape, args.workers),
            "layer": lambda: child_layer(str(args.path)),
            "viewer": lambda: child_viewer(str(args.path)),
        }[args.child]
        print(json.dumps(fn()))
        return 0

    rows, cols = args.shape
    print(f"slide: {args.path} ({cols} x {rows} px = {rows * cols / 1e9:.1f} gigapixels)")
    from napari_xai.demo.synthetic import SyntheticTruth

    if args.path.is_file() and SyntheticTruth.default_path(args.path).is_file():
        print("write: reusing the existing file (delete it to measure writing)")
    else:
        w = _run_child("write", args)
        print(
            f"write: {w['write_s']:.1f} s (CPU {w['write_cpu_s']:.1f} s, all threads), "
            f"peak RSS {w['write_peak_rss_mb']:.0f} MB "
            f"(of which {w['write_rss_before_mb']:.0f} MB before writing), "
            f"file {w['file_mb']:.0f} MB"
        )
    lay = _run_child("layer", args)
    print(
        f"imports (dask.array, tiffslide, zarr, core.wsi; once per session): "
        f"{lay['import_s'] * 1000:.0f} ms"
    )
    print(
        f"no viewer: read_slide {lay['read_slide_s'] * 1000:.0f} ms, "
        f"+ Layer.create {lay['read_slide_plus_layer_s'] * 1000:.0f} ms "
        f"(CPU {lay['cpu_s'] * 1000:.0f} ms), "
        f"{lay['levels']:.0f} levels, tiles decoded {lay['tiles_decoded']:.0f}, "
        f"peak RSS growth {lay['rss_growth_mb']:.0f} MB; a second slide: "
        f"{lay['second_s'] * 1000:.0f} ms (CPU {lay['second_cpu_s'] * 1000:.0f} ms), "
        f"{lay['second_tiles']:.0f} tiles"
    )
    if not args.no_viewer:
        if not os.environ.get("DISPLAY") and not os.environ.get("WAYLAND_DISPLAY"):
            print("viewer: skipped (no display; run under xvfb-run)")
        else:
            v = _run_child("viewer", args)
            print(
                f"viewer: layer in viewer {v['open_to_layer_s'] * 1000:.0f} ms "
                f"(CPU {v['open_to_layer_cpu_s'] * 1000:.0f} ms), "
                f"first view drawn {v['open_to_first_draw_s'] * 1000:.0f} ms, "
                f"tiles decoded for the first view {v['tiles_decoded_first_view']:.0f}, "
                f"peak RSS growth {v['rss_growth_mb']:.0f} MB "
                f"(screenshot std {v['screenshot_std']:.1f})"
            )
            print(
                f"viewer, a second slide: layer {v['second_to_layer_s'] * 1000:.0f} ms "
                f"(CPU {v['second_to_layer_cpu_s'] * 1000:.0f} ms), "
                f"drawn {v['second_to_draw_s'] * 1000:.0f} ms, {v['second_tiles']:.0f} tiles"
            )
    load = os.getloadavg()[0]
    print(f"machine: {os.cpu_count()} CPUs, load average {load:.1f} at the end")
    print("targets: < 1 s to the layer, a few dozen tiles, < 200 MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
