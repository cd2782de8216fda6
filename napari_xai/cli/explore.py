"""``napari-xai explore RESULTS... --out DIR``: a cohort in the model's feature space.

Reads the result folders of slides scored with ``--features`` (``features.zarr``
beside ``tiles.parquet``), embeds every tile in 2-D (PCA, or UMAP / t-SNE
fitted on a sample), clusters the tiles and writes, without a viewer:

* ``embedding.parquet``: one row per tile (slide, position, prediction,
  confidence, ``ood_score``, ``x``/``y`` of the embedding, ``cluster``);
* ``clusters.csv``: per cluster: size, class mix, confidence, slides,
  artefact share, ``ood_score``, metadata;
* ``mosaic.png`` and ``mosaic_cells.csv``: the mosaic map (the tile nearest
  the centre of each cell of a grid over the embedding, read from its slide)
  and which tile each cell shows;
* ``index.html``: the scatter coloured by class, cluster and ``ood_score``, the
  mosaic map and the cluster table.

Examples
--------
``napari-xai score slide.svs --model demo --features --out results``
``napari-xai explore results/* --method umap --out explore``
"""

from __future__ import annotations

import argparse
from pathlib import Path

from napari_xai.core.explore.cluster import CLUSTER_METHODS
from napari_xai.core.explore.reduce import EMBED_METHODS

__all__ = ["add_arguments", "run"]


HELP = "embed, cluster and summarise a cohort's tiles in the model's feature space"
DESCRIPTION = __doc__.split("\n\n")[1] if __doc__ else None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``explore`` arguments to ``parser``."""
    parser.add_argument(
        "results",
        nargs="+",
        type=Path,
        help="result folders scored with --features, or folders of them (batch output)",
    )
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--method", choices=EMBED_METHODS, default="pca", help="embedding (pca)")
    parser.add_argument(
        "--clusters", choices=CLUSTER_METHODS, default="kmeans", help="clustering (kmeans)"
    )
    parser.add_argument("--k", type=int, help="k-means clusters (default: by silhouette)")
    parser.add_argument("--seed", type=int, default=0, help="seed (0)")
    parser.add_argument(
        "--fit-sample", type=int, default=20_000, help="tiles the methods are fitted on (20000)"
    )
    parser.add_argument(
        "--max-tiles-per-slide", type=int, help="keep at most this many tiles per slide"
    )
    parser.add_argument(
        "--metadata", type=Path, help="CSV with slide_id or slide_path and metadata columns"
    )
    parser.add_argument(
        "--mosaic-grid",
        type=int,
        default=16,
        metavar="N",
        help="mosaic map cells along the longer side (16; 0: no mosaic map)",
    )


def run(args: argparse.Namespace) -> int:
    """Explore the cohort; return the exit status."""
    import time

    from napari_xai.core.explore.cohort import load_cohort
    from napari_xai.core.explore.report import ExploreOptions, explore_cohort, write_explore

    t0 = time.perf_counter()
    cohort = load_cohort(
        args.results, metadata=args.metadata, max_tiles_per_slide=args.max_tiles_per_slide
    )
    opts = ExploreOptions(
        method=args.method,
        cluster_method=args.clusters,
        n_clusters=args.k,
        seed=args.seed,
        fit_sample=args.fit_sample,
    )
    result = explore_cohort(cohort, options=opts)
    paths = write_explore(result, args.out, mosaic_grid=args.mosaic_grid)
    n_slides = result.tiles["slide_id"].nunique()
    print(
        f"{len(cohort):,} tiles of {n_slides} slides, {cohort.features.shape[1]} features "
        f"({cohort.layer}); {args.method} + {result.clusters.shape[0]} {args.clusters} clusters "
        f"in {time.perf_counter() - t0:.1f} s"
    )
    for _, row in result.clusters.iterrows():
        extra = f", artefact {row['artefact_share']:.0%}" if "artefact_share" in row else ""
        print(f"  cluster {row['cluster']}: {row['n_tiles']:,} tiles, {row['class_mix']}{extra}")
    print(f"wrote {paths['index']}")
    return 0
