"""Explore: feature-extraction overhead, reduction and explorer times for a large cohort.

Prints

1. scoring a synthetic slide with and without ``--features`` (tiles/s, the
   overhead in per cent, the size of ``features.zarr``);
2. reduction of ``--n`` tiles (default 200,000) of ``--dim``-dimensional
   features (a seeded mixture of class blobs and an artefact blob, float16 as
   stored): PCA, UMAP and t-SNE fitted on a sample, k-means with the k chosen
   by silhouette, the cluster summary;
3. the explorer in a real viewer (offscreen): scatter redraw of all points
   (``set_points`` + a rendered frame), a filter change (mask + redraw + histogram +
   gallery), a metadata filter (one cluster out and back),
   a box selection of about 10,000 points (select + ring + draw them on the slide
   are left out: no slide behind synthetic features), rendered frame included;
4. peak RSS of the process after each part.

Usage::

    python benchmarks/bench_explore.py                       # everything, 200,000 tiles
    python benchmarks/bench_explore.py --n 50000 --methods pca
    QT_QPA_PLATFORM=offscreen python benchmarks/bench_explore.py --no-score

Say the machine's load (``uptime``) next to any figure you quote.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # this checkout's napari_xai


def peak_mib() -> float:
    """Peak resident memory of this process so far (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_scoring(shape: int, repeats: int, model_name: str) -> None:
    """Score one slide's tiles with and without the feature capture; print the overhead.

    The grid is planned once (masks left out of both), so the figures compare the
    forward passes and what the capture adds (pooling, copying, energy), then the
    cost of writing ``features.zarr`` and the ``ood_score`` column once.
    """
    import torch

    from napari_xai.core.explore.features import FeatureCapture, add_features
    from napari_xai.core.inference import grid_for_slide, score_tiles
    from napari_xai.core.models.demo import load_demo_model, make_resnet18
    from napari_xai.core.models.loading import LoadedModel
    from napari_xai.core.options import GridOptions
    from napari_xai.core.progress import drive
    from napari_xai.core.wsi import open_slide
    from napari_xai.demo.synthetic import write_synthetic_slide

    torch.set_num_threads(max(1, (os.cpu_count() or 2) - 1))
    loaded = load_demo_model(device="cpu")
    if model_name == "resnet18":
        from dataclasses import replace

        module = make_resnet18(loaded.card.num_classes).eval()
        loaded = LoadedModel(
            module=module,
            card=replace(loaded.card, tile_size=224, feature_stats=None),
            sha256="bench",
            is_scripted=False,
        )
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.svs"
        write_synthetic_slide(path, shape_rc=(shape, shape), mpp=0.5, seed=1, artefacts=())
        with open_slide(path) as slide:
            grid = grid_for_slide(slide, loaded.card, GridOptions(tissue=False))
            best = {"plain": np.inf, "features": np.inf}
            capture = None
            scored = None
            drive(score_tiles(slide, loaded, tile_grid=grid))  # warm-up (threads, allocator)
            for _ in range(repeats):
                for kind in ("plain", "features"):
                    capture = FeatureCapture(loaded) if kind == "features" else None
                    t0 = time.perf_counter()
                    scored = drive(score_tiles(slide, loaded, tile_grid=grid, forward=capture))
                    best[kind] = min(best[kind], time.perf_counter() - t0)
            assert capture is not None and scored is not None
            t0 = time.perf_counter()
            add_features(capture, scored.tiles, loaded, Path(tmp))
            write_s = time.perf_counter() - t0
        size = sum(
            f.stat().st_size for f in (Path(tmp) / "features.zarr").rglob("*") if f.is_file()
        )
    n = len(grid)
    plain, feats = n / best["plain"], n / best["features"]
    overhead = 100 * (best["features"] / best["plain"] - 1)
    print(
        f"scoring {n:,} tiles ({model_name}, CPU, {torch.get_num_threads()} threads, grid "
        f"planned once, best of {repeats}): plain {plain:,.0f} tiles/s, with the feature "
        f"capture {feats:,.0f} tiles/s (overhead {overhead:+.1f} %); "
        f"writing features.zarr + ood_score {write_s * 1000:.0f} ms "
        f"({size / 1e6:.2f} MB, {size / max(n, 1):.0f} B/tile)"
    )
    print(f"  peak RSS {peak_mib():,.0f} MiB")


def synthetic_features(n: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Class blobs (3) and an artefact blob (5 %), float16, with their group."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4, (4, dim))
    group = rng.choice(4, size=n, p=[0.45, 0.3, 0.2, 0.05])
    feats = np.empty((n, dim), np.float16)
    for i in range(0, n, 50_000):
        g = group[i : i + 50_000]
        feats[i : i + 50_000] = centres[g] + rng.normal(0, 1.5, (len(g), dim))
    return feats, group


def bench_reduction(
    feats: np.ndarray, group: np.ndarray, methods: list[str], seed: int, samples: dict[str, int]
):
    """Embed and cluster; print the times; return the PCA embedding's tiles table."""
    import pandas as pd

    from napari_xai.core.explore.cluster import cluster_tiles, summarize_clusters
    from napari_xai.core.explore.reduce import embed

    n = len(feats)
    pca = None
    for method in methods:
        sample = samples[method]
        t0 = time.perf_counter()
        emb = embed(feats, method=method, seed=seed, fit_sample=sample)
        dt = time.perf_counter() - t0
        parts = ", ".join(f"{k} {v:.2f} s" for k, v in emb.timings.items())
        print(
            f"{method}: {n:,} tiles x {feats.shape[1]} in {dt:.2f} s (fit on {sample:,}; {parts})"
        )
        if method == "pca":
            pca = emb
        print(f"  peak RSS {peak_mib():,.0f} MiB")
    if pca is None:
        pca = embed(feats, method="pca", seed=seed)
    t0 = time.perf_counter()
    points = pca.pca.transform(feats, k=10)
    labels = cluster_tiles(points, seed=seed)
    t1 = time.perf_counter()
    names = np.array(["normal", "tumour", "stroma", "ink"])
    tiles = pd.DataFrame(
        {
            "slide_id": np.char.add("s", (np.arange(n) % 50).astype(str)),
            "pred_class": names[np.minimum(group, 2)],
            "confidence": np.random.default_rng(seed).uniform(0.4, 1.0, n),
            "flags": np.where(group == 3, "artefact", ""),
            "x": pca.coords[:, 0],
            "y": pca.coords[:, 1],
            "cluster": labels,
        }
    )
    n_clusters = len(summarize_clusters(tiles))
    t2 = time.perf_counter()
    purity = max(float((labels[group == 3] == c).mean()) for c in np.unique(labels[group == 3]))
    print(
        f"k-means (k by silhouette = {n_clusters}) on 10 PCs: {t1 - t0:.2f} s; "
        f"cluster summary {t2 - t1:.2f} s; planted artefact in one cluster: {purity:.1%}"
    )
    print(f"  peak RSS {peak_mib():,.0f} MiB")
    return tiles


def bench_explorer(tiles, repeats: int) -> None:
    """Time redraw, filter and box selection in the explore widget of a real viewer."""
    import napari

    from napari_xai._widgets.explore import ExploreWidget
    from napari_xai.core.explore.report import ExploreOptions, ExploreResult

    viewer = napari.Viewer(show=False)
    w = ExploreWidget(viewer)
    w.scatter.native.resize(600, 500)
    n = len(tiles)
    tiles = tiles.assign(label=tiles["pred_class"], tile=np.arange(n), row=0, col=0, height=1)
    clusters = tiles.groupby("cluster").size().rename("n_tiles").reset_index()
    result = ExploreResult(tiles, clusters, None, ExploreOptions(), {})  # type: ignore[arg-type]
    t0 = time.perf_counter()
    w.set_result(result)
    w.scatter.canvas.render()
    load = time.perf_counter() - t0
    xy = tiles[["x", "y"]].to_numpy(np.float32)
    colours = w._colours
    rows = np.arange(n)

    def timed(fn) -> str:
        """Best of ``repeats``: our code (update) and one rendered frame, in ms."""
        best, frame = np.inf, np.inf
        for _ in range(repeats):
            t = time.perf_counter()
            fn()
            t1 = time.perf_counter()
            w.scatter.canvas.render()
            best = min(best, t1 - t)
            frame = min(frame, time.perf_counter() - t1)
        return f"{best * 1000:.0f} ms + frame {frame * 1000:.0f} ms"

    redraw = timed(lambda: w.scatter.set_points(xy, colours, rows))

    def recolour_fn() -> None:
        w._colour_by.value = "cluster" if w._colour_by.value != "cluster" else "pred_class"

    recolour = timed(recolour_fn)

    def toggle() -> None:
        flags = w.filters.hide_flags
        flags.value = [] if flags.value else ["artefact"]

    filt = timed(toggle)
    w.filters.hide_flags.value = []
    w.filters.column.value = "cluster"
    values = list(w.filters.values.choices)

    def metadata() -> None:
        w.filters.values.value = (
            values if len(w.filters.values.value) < len(values) else values[1:]
        )

    meta = timed(metadata)
    w.filters.column.value = "(no metadata filter)"
    # a box holding about 10,000 points around the median
    centre = np.median(xy, axis=0)
    d = np.abs(xy - centre).max(axis=1)
    half = float(np.sort(d)[min(10_000, n) - 1])
    a, b = tuple(centre - half), tuple(centre + half)
    picked: list[int] = []

    def select() -> None:
        picked[:] = [len(w.scatter.select_box(a, b))]

    sel = timed(select)
    print(
        f"explorer, {n:,} points (vispy; update + one rendered frame, best of {repeats}; "
        f"GL: {_gl_renderer()}): first show {load * 1000:.0f} ms; redraw {redraw}; "
        f"recolour {recolour}; filter change (mask, redraw, histogram, gallery) {filt}; "
        f"metadata filter (one cluster out / back) {meta}; "
        f"box selection of {picked[0]:,} points (select + ring) {sel}"
    )
    from napari_xai.core.explore.mosaic import mosaic_layout

    t = time.perf_counter()
    lay = mosaic_layout(xy, grid=16)
    print(
        f"mosaic layout of {n:,} points, grid 16: {(time.perf_counter() - t) * 1000:.0f} ms, "
        f"{int((lay.cells >= 0).sum())} cells occupied (thumbnails: no slides behind these)"
    )
    print(f"  peak RSS {peak_mib():,.0f} MiB")
    w.scatter.canvas.close()
    viewer.close()


def _gl_renderer() -> str:
    try:
        from vispy.gloo import gl

        return str(gl.glGetParameter(gl.GL_RENDERER))
    except Exception as exc:  # noqa: BLE001 (only a label in the printout)
        return f"unknown ({type(exc).__name__})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000, help="tiles (200000)")
    parser.add_argument("--dim", type=int, default=512, help="feature dimension (512)")
    parser.add_argument("--methods", default="pca,umap,tsne", help="embeddings to time")
    parser.add_argument("--slide", type=int, default=8192, help="side of the scored slide")
    parser.add_argument(
        "--model", choices=("demo", "resnet18"), default="demo", help="model for the overhead"
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--umap-sample", type=int, default=20_000, help="UMAP fit sample")
    parser.add_argument("--tsne-sample", type=int, default=5_000, help="t-SNE fit sample")
    parser.add_argument("--no-score", action="store_true", help="skip the scoring overhead")
    parser.add_argument("--no-viewer", action="store_true", help="skip the explorer timings")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not os.environ.get("DISPLAY"):
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    print(f"load: {os.getloadavg()[0]:.2f} (1-min average), {os.cpu_count()} CPUs")
    if not args.no_score:
        bench_scoring(args.slide, args.repeats, args.model)
    feats, group = synthetic_features(args.n, args.dim, args.seed)
    print(f"features: {args.n:,} x {args.dim} float16 = {feats.nbytes / 1e6:.0f} MB")
    samples = {"pca": 20_000, "umap": args.umap_sample, "tsne": args.tsne_sample}
    methods = [m for m in args.methods.split(",") if m]
    tiles = bench_reduction(feats, group, methods, args.seed, samples)
    if not args.no_viewer:
        bench_explorer(tiles, args.repeats)
    print(f"load: {os.getloadavg()[0]:.2f} (1-min average)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
