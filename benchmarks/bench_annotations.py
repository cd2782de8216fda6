"""Time to open and save 50,000 annotated objects, and which napari layer copes.

Run (needs a display for the viewer part; without one the viewer rows are skipped):

    xvfb-run -a -s "-screen 0 1280x1024x24" .venv/bin/python benchmarks/bench_annotations.py

Options: ``--n`` objects (50,000), ``--shapes-n`` how many polygons to put in a
napari Shapes layer for the comparison (default: ``--n``; 0 skips it),
``--no-viewer``.

Prints one line per measurement: what, seconds, and notes.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np

SLIDE_RC = (40_000, 40_000)  # level-0 region holding the nuclei


def make_nuclei(n: int, *, seed: int = 0) -> list:
    """N nucleus-like polygons (16 vertices, radius 4-9 px, slightly elliptic)."""
    from shapely import Polygon

    from napari_xai.core.annotations.geojson import Annotation

    rng = np.random.default_rng(seed)
    centres = rng.uniform(50, SLIDE_RC[0] - 50, (n, 2))
    t = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    out = []
    classes = np.array(["Tumor", "Immune cells", "Stroma", "Other"])
    labels = classes[rng.integers(0, 4, n)]
    radii = rng.uniform(4, 9, n)
    ratio = rng.uniform(0.6, 1.0, n)
    angle = rng.uniform(0, np.pi, n)
    for i in range(n):
        x = radii[i] * np.cos(t)
        y = radii[i] * ratio[i] * np.sin(t)
        c, s = math.cos(angle[i]), math.sin(angle[i])
        ring = np.column_stack([c * x - s * y, s * x + c * y]) + centres[i]
        out.append(Annotation(Polygon(np.round(ring, 2)), str(labels[i]), object_type="detection"))
    return out


def timed(label: str, fn, *args, note: str = "", **kwargs):  # noqa: ANN001, ANN201
    gc.collect()
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    dt = time.perf_counter() - t0
    print(f"{label:<58s} {dt:8.2f} s  {note}", flush=True)
    return result, dt


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--shapes-n", type=int, default=None)
    parser.add_argument("--no-viewer", action="store_true")
    args = parser.parse_args()
    n = args.n
    shapes_n = n if args.shapes_n is None else args.shapes_n

    from napari_xai.core.annotations.geojson import read_geojson, write_geojson
    from napari_xai.core.annotations.raster import rasterize_annotations
    from napari_xai.core.layers.annotations import annotations_to_layer_data, geometry_to_path_rc

    print(
        f"napari-xai annotation benchmark: {n} nucleus polygons (16 vertices) "
        f"over a {SLIDE_RC[0]}x{SLIDE_RC[1]} px region; cpus={os.cpu_count()}"
    )
    nuclei, _ = timed("generate polygons", make_nuclei, n)
    tmp = Path(tempfile.mkdtemp())
    path = tmp / "nuclei.geojson"
    timed("SAVE: write_geojson", write_geojson, nuclei, path)
    print(f"{'  file size':<58s} {path.stat().st_size / 1e6:8.1f} MB")
    aset, t_read = timed(
        "OPEN: read_geojson (parse + validate + clip)", read_geojson, path, shape_rc=SLIDE_RC
    )
    assert len(aset.annotations) == n, aset.report.summary()
    ldts, t_ldt = timed(
        "OPEN: layer data (features, morphology) -> Points",
        annotations_to_layer_data,
        aset,
        name="nuclei",
        mpp=0.25,
    )
    assert ldts[0][2] == ("points" if n > 5000 else "shapes")

    from napari.layers import Labels, Points, Shapes, Vectors

    Points(np.zeros((2, 2)), features={"a": [1, 2]})  # warm-up (imports, first-use cost)
    layer_cls = Points if ldts[0][2] == "points" else Shapes
    _, t_points = timed(
        f"OPEN: napari {layer_cls.__name__} layer, {n} objects + features",
        lambda: layer_cls(ldts[0][0], **ldts[0][1]),
    )
    print(f"{'OPEN total (read + layer data + layer)':<58s} {t_read + t_ldt + t_points:8.2f} s")

    d = 8
    labels, _ = timed(
        f"rasterise to Labels (instances, downsample {d})",
        rasterize_annotations,
        aset.annotations,
        shape_rc=SLIDE_RC,
        downsample=d,
        instances=True,
        note=f"{SLIDE_RC[0] // d}x{SLIDE_RC[1] // d} int32",
    )
    timed("napari Labels layer", lambda: Labels(labels, scale=(d, d)))

    paths = [geometry_to_path_rc(a.geometry) for a in aset.annotations[:shapes_n]]
    if shapes_n:
        segs = np.concatenate([np.stack([p, np.roll(p, -1, 0) - p], 1) for p in paths])
        timed(
            f"napari Vectors layer, outlines of {len(paths)} ({len(segs)} segments)",
            lambda: Vectors(segs, edge_width=1),
        )
        timed(
            f"napari Shapes layer, {shapes_n} polygons",
            lambda: Shapes(paths, shape_type="polygon"),
            note="(regions only; what Points replaces)",
        )

    if args.no_viewer:
        return
    try:
        import napari
        from qtpy.QtWidgets import QApplication
    except Exception as e:  # pragma: no cover
        print(f"viewer part skipped: {e}")
        return
    viewer = napari.Viewer(show=False)
    rgb = np.full((SLIDE_RC[0] // 16, SLIDE_RC[1] // 16, 3), 230, np.uint8)
    viewer.add_image(rgb, rgb=True, scale=(16, 16), name="slide")

    def open_in_viewer() -> list:
        layers = viewer.open(str(path), plugin="napari-xai")
        QApplication.processEvents()
        return layers

    layers, _ = timed("VIEWER: viewer.open(geojson) incl. first draw", open_in_viewer)
    print(f"{'  layers':<58s} {[f'{ly.name}:{type(ly).__name__}' for ly in layers]}")

    def redraw(zoom: float) -> None:
        camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
        camera.zoom = zoom
        viewer.screenshot(canvas_only=True)

    timed(f"VIEWER: zoom out + redraw ({n} as {type(layers[0]).__name__})", redraw, 0.02)
    timed(f"VIEWER: zoom in + redraw ({n} as {type(layers[0]).__name__})", redraw, 1.0)
    timed(
        f"SAVE: {type(layers[0]).__name__} layer ({n}) via napari-xai writer",
        lambda: layers[0].save(str(tmp / "points.geojson"), plugin="napari-xai"),
    )
    if shapes_n:
        viewer.layers.remove(layers[0])
        _, t_add = timed(
            f"VIEWER: add Shapes layer, {shapes_n} polygons",
            lambda: (viewer.add_shapes(paths, shape_type="polygon"), QApplication.processEvents()),
        )
        timed(f"VIEWER: zoom out + redraw (Shapes, {shapes_n})", redraw, 0.02)
        timed(f"VIEWER: zoom in + redraw (Shapes, {shapes_n})", redraw, 1.0)
    sh = viewer.layers[-1]
    out = tmp / "saved.geojson"
    if shapes_n:
        timed(
            f"SAVE: Shapes layer ({shapes_n}) via napari-xai writer",
            lambda: sh.save(str(out), plugin="napari-xai"),
        )
    viewer.close()


if __name__ == "__main__":
    main()
