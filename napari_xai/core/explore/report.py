"""Explore a cohort without a viewer: embedding, clusters, HTML summary.

:func:`explore_cohort` embeds a :class:`~napari_xai.core.explore.cohort.Cohort`
(:func:`~napari_xai.core.explore.reduce.embed`), clusters it on its first
principal components (:func:`~napari_xai.core.explore.cluster.cluster_tiles`)
and summarises the clusters; :func:`write_explore` writes
``embedding.parquet``, ``clusters.csv``, scatter PNGs, the mosaic map
(``mosaic.png`` and ``mosaic_cells.csv``, :mod:`.mosaic`) and ``index.html``.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_xai.core.explore.reduce import EmbedOptions, embed
from napari_xai.core.options import bounded

if TYPE_CHECKING:
    import pandas as pd

    from napari_xai.core.explore.cohort import Cohort
    from napari_xai.core.explore.reduce import Embedding

__all__ = ["ExploreOptions", "ExploreResult", "explore_cohort", "write_explore"]

EMBEDDING_NAME = "embedding.parquet"
CLUSTERS_NAME = "clusters.csv"
INDEX_NAME = "index.html"
MOSAIC_NAME = "mosaic.png"
MOSAIC_CELLS_NAME = "mosaic_cells.csv"


@dataclass(frozen=True)
class ExploreOptions(EmbedOptions):
    """How a cohort is embedded and clustered.

    The embedding fields are those of :class:`~napari_xai.core.explore.reduce.EmbedOptions`
    (``method``, ``seed``, ``fit_sample``, ``chunk``, ``pre_pca``, ``n_neighbors``,
    ``perplexity``); ``seed``, ``fit_sample`` and ``chunk`` serve the clustering too.

    Attributes
    ----------
    cluster_method : {"kmeans", "hdbscan"}
        Clustering.
    n_clusters : int or None
        k-means clusters (None: chosen by silhouette).
    cluster_dims : int
        Principal components the clustering sees.
    """

    cluster_method: str = "kmeans"
    n_clusters: int | None = bounded(None, low=1)
    cluster_dims: int = bounded(10, low=1)


@dataclass
class ExploreResult:
    """Tiles with ``x``, ``y``, ``cluster``; the cluster summary; the embedding."""

    tiles: pd.DataFrame
    clusters: pd.DataFrame
    embedding: Embedding
    options: ExploreOptions
    timings: dict[str, float]


def explore_cohort(cohort: Cohort, *, options: ExploreOptions | None = None) -> ExploreResult:
    """Embed, cluster and summarise a cohort.

    Parameters
    ----------
    cohort : Cohort
        Tiles and features (:func:`~napari_xai.core.explore.cohort.load_cohort`).
    options : ExploreOptions, optional
        Method, clusters, seed.
    """
    import time

    from napari_xai.core.explore.cluster import cluster_tiles, summarize_clusters

    opts = options or ExploreOptions()
    t0 = time.perf_counter()
    emb = embed(cohort.features, options=opts)
    t1 = time.perf_counter()
    points = np.concatenate(
        [
            emb.pca.transform(cohort.features[i : i + opts.chunk], k=opts.cluster_dims)
            for i in range(0, len(cohort), opts.chunk)
        ]
    )
    labels = cluster_tiles(
        points,
        method=opts.cluster_method,
        n_clusters=opts.n_clusters,
        seed=opts.seed,
        fit_sample=opts.fit_sample,
    )
    t2 = time.perf_counter()
    tiles = cohort.tiles.copy()
    tiles["x"] = emb.coords[:, 0]
    tiles["y"] = emb.coords[:, 1]
    tiles["cluster"] = labels
    clusters = summarize_clusters(tiles)
    return ExploreResult(
        tiles=tiles,
        clusters=clusters,
        embedding=emb,
        options=opts,
        timings={"embed_s": t1 - t0, "cluster_s": t2 - t1, **emb.timings},
    )


def colours_for(values: pd.Series) -> tuple[np.ndarray, list[tuple[str, Any]]]:
    from matplotlib import colormaps

    if values.dtype.kind == "f":
        v = values.to_numpy(np.float64)
        lo, hi = np.nanpercentile(v, [1, 99]) if np.isfinite(v).any() else (0.0, 1.0)
        norm = np.clip((v - lo) / max(hi - lo, 1e-12), 0, 1)
        return colormaps["viridis"](np.nan_to_num(norm)), [(f"{lo:.3g} … {hi:.3g}", None)]
    import pandas as pd

    from napari_xai.core.naming import CLASS_PALETTE, class_colour

    text = values.astype(str)
    cats = sorted(text.unique())
    if len(cats) <= len(CLASS_PALETTE):  # the one palette: a class has its layers' colour
        rows = [(*class_colour(c, i), 1.0) for i, c in enumerate(cats)]
    else:  # more categories than the palette tells apart (clusters, slides): tab20
        cmap = colormaps["tab20"]
        rows = [cmap(i % cmap.N) for i in range(len(cats))]
    table = np.array(rows, np.float64).reshape(-1, 4)
    codes = pd.Categorical(text, categories=cats).codes
    return table[codes], [(c, tuple(table[i])) for i, c in enumerate(cats)][:20]


def _scatter_png(tiles: pd.DataFrame, column: str, path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6, 5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    colours, legend = colours_for(tiles[column])
    size = float(np.clip(2000 / max(len(tiles), 1) ** 0.5, 0.5, 12))
    ax.scatter(tiles["x"], tiles["y"], c=colours, s=size, linewidths=0, rasterized=True)
    for name, colour in legend:
        if colour is not None:
            ax.scatter([], [], color=colour, label=str(name), s=20)
    if any(c is not None for _, c in legend):
        ax.legend(title=column, fontsize=7, markerscale=1, loc="best")
    else:
        ax.set_title(f"{column}: {legend[0][0]} (viridis)")
    ax.set_xticks([])
    ax.set_yticks([])
    fig.savefig(path, dpi=100)
    return path


def _confidence_png(tiles: pd.DataFrame, path: Path) -> Path:
    """Histogram of the confidence of each predicted class (one line per class)."""
    import pandas as pd
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from napari_xai.core.explore.view import confidence_histograms

    fig = Figure(figsize=(6, 3.5), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    edges, counts = confidence_histograms(tiles)
    table, _ = colours_for(pd.Series(list(counts), dtype=object))
    for colour, (cls, n) in zip(table, counts.items(), strict=True):
        ax.stairs(n, edges, linewidth=1.5, color=colour, label=cls)
    ax.set_xlabel("confidence (top probability)")
    ax.set_ylabel("tiles")
    ax.legend(title="predicted", fontsize=7)
    fig.savefig(path, dpi=100)
    return path


def _html_table(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    out = ["<table><tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in cols) + "</tr>"]
    for _, row in df.iterrows():
        cells = []
        for c in cols:
            v = row[c]
            txt = f"{v:.3g}" if isinstance(v, (float, np.floating)) else str(v)
            cells.append(f"<td>{html.escape(txt)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "".join(out) + "</table>"


def _mosaic_files(
    tiles: pd.DataFrame, folder: Path, *, grid: int, size: int
) -> tuple[dict[str, Path], str]:
    """Write ``mosaic.png`` and ``mosaic_cells.csv``; return their paths and the HTML part.

    Without slides behind the tiles (no ``result_folder``), or with a slide
    moved, the HTML says why there is no mosaic instead.
    """
    import pandas as pd
    from PIL import Image

    from napari_xai.core.atomic import atomic_write
    from napari_xai.core.explore.mosaic import mosaic_map

    head = "<h2>Mosaic map (the tile nearest each grid cell's centre)</h2>"
    if "result_folder" not in tiles:
        return {}, f"{head}<p>No mosaic map: these tiles have no slides behind them.</p>"
    try:
        mosaic = mosaic_map(tiles, grid=grid, size=size)
    except FileNotFoundError as exc:
        return {}, f"{head}<p>No mosaic map: {html.escape(str(exc))}</p>"
    cells = mosaic.layout.cells
    ij = np.argwhere(cells >= 0)
    shown = tiles.iloc[cells[cells >= 0]]
    counts = np.bincount(mosaic.layout.cell_of[mosaic.layout.cell_of >= 0], minlength=cells.size)
    table = pd.DataFrame(
        {
            "cell_row": ij[:, 0],
            "cell_col": ij[:, 1],
            "slide_id": shown["slide_id"].to_numpy(),
            "tile": shown["tile"].to_numpy(),
            "pred_class": shown["pred_class"].to_numpy(),
            "n_tiles": counts[ij[:, 0] * cells.shape[1] + ij[:, 1]],
        }
    )
    image = Image.fromarray(mosaic.image)
    paths = {
        "mosaic": atomic_write(folder / MOSAIC_NAME, lambda p: image.save(p, format="PNG")),
        "mosaic_cells": atomic_write(
            folder / MOSAIC_CELLS_NAME, lambda p: table.to_csv(p, index=False)
        ),
    }
    part = (
        f"{head}<p>{len(table)} of {cells.size} cells ({cells.shape[0]} × {cells.shape[1]}) "
        f"hold tiles; which tile each shows: <a href='{MOSAIC_CELLS_NAME}'>"
        f"{MOSAIC_CELLS_NAME}</a>.</p><img class='mosaic' src='{MOSAIC_NAME}' alt='mosaic map'>"
    )
    return paths, part


def write_explore(
    result: ExploreResult,
    out: str | os.PathLike[str],
    *,
    mosaic_grid: int = 16,
    mosaic_size: int = 48,
) -> dict[str, Path]:
    """Write the embedding, the clusters, scatter PNGs, the mosaic map and ``index.html``.

    Parameters
    ----------
    result : ExploreResult
        The explored cohort.
    out : path-like
        Output folder (created).
    mosaic_grid : int
        Mosaic cells along the embedding's longer side (0: no mosaic map).
    mosaic_size : int
        Pixels per mosaic cell.

    Returns
    -------
    dict
        Kind → path (``embedding``, ``clusters``, ``index``, ``confidence``,
        ``scatter_<column>``, ``mosaic`` and ``mosaic_cells`` when drawn).
    """
    from napari_xai.core.atomic import atomic_write
    from napari_xai.core.explore.select import confusion_cells

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    tiles = result.tiles
    paths: dict[str, Path] = {
        "embedding": atomic_write(
            folder / EMBEDDING_NAME, lambda p: tiles.to_parquet(p, index=False)
        ),
        "clusters": atomic_write(
            folder / CLUSTERS_NAME, lambda p: result.clusters.to_csv(p, index=False)
        ),
    }
    columns = ["pred_class", "cluster", "confidence"] + [
        c for c in ("ood_score", "label", "slide_id") if c in tiles
    ]
    figures = []
    for col in columns:
        shown = tiles.assign(cluster=tiles["cluster"].astype(str)) if col == "cluster" else tiles
        name = f"scatter_{col}.png"
        paths[f"scatter_{col}"] = _scatter_png(shown, col, folder / name)
        figures.append(
            f'<figure><img src="{name}" alt="scatter by {html.escape(col)}">'
            f"<figcaption>coloured by {html.escape(col)}</figcaption></figure>"
        )
    paths["confidence"] = _confidence_png(tiles, folder / "confidence_by_class.png")
    figures.append(
        '<figure><img src="confidence_by_class.png" alt="confidence by class">'
        "<figcaption>confidence histogram per predicted class</figcaption></figure>"
    )
    opts = result.options
    n_slides = int(tiles["slide_id"].nunique()) if "slide_id" in tiles else 1
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>napari-xai explore</title>",
        "<style>body{font-family:sans-serif;margin:2em}figure{display:inline-block;margin:.5em}"
        "img{width:420px}img.mosaic{width:auto;max-width:100%;image-rendering:pixelated}table{border-collapse:collapse;font-size:12px}"
        "td,th{border:1px solid #ccc;padding:2px 6px}</style></head><body>",
        "<h1>Cohort in the model's feature space</h1>",
        f"<p>{len(tiles):,} tiles of {n_slides} slide(s); {html.escape(opts.method.upper())} "
        f"embedding (seed {opts.seed}, fitted on {len(result.embedding.sample):,} tiles); "
        f"{result.clusters.shape[0]} {html.escape(opts.cluster_method)} clusters on "
        f"{opts.cluster_dims} principal components.</p>",
        "".join(figures),
        "<h2>Clusters</h2>",
        _html_table(result.clusters),
    ]
    if mosaic_grid > 0:
        files, part = _mosaic_files(tiles, folder, grid=mosaic_grid, size=mosaic_size)
        paths.update(files)
        parts.append(part)
    if "label" in tiles:
        cm, _ = confusion_cells(tiles)
        parts += ["<h2>Confusion matrix (rows: label, columns: predicted)</h2>"]
        parts += [_html_table(cm.reset_index())]
    parts.append("</body></html>")
    text = "\n".join(parts)
    paths["index"] = atomic_write(
        folder / INDEX_NAME, lambda p: Path(p).write_text(text, encoding="utf-8")
    )
    return paths
