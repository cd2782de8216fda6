"""``napari-xai explore RESULTS... --out DIR``: a cohort in the model's feature space.

Reads the result folders of slides scored with ``--features`` (``features.zarr``
beside ``tiles.parquet``), embeds every tile in 2-D (PCA, or UMAP / t-SNE
fitted on a sample), clusters the tiles and writes, without a viewer:

* ``embedding.parquet``: one row per tile (slide, position, prediction,
  confidence, ``ood_score``, ``x``/``y`` of the embedding, ``cluster``);
* ``clusters.csv``: per cluster: size, class mix, confidence, slides,
  artefact share, ``ood_score``, metadata;
* ``index.html``: the scatter coloured by class, cluster and ``ood_score``, and
  the cluster table.

The same module holds the ``--features`` options that ``score`` and ``batch``
share.

Examples
--------
``napari-xai score slide.svs --model demo --features --out results``
``napari-xai explore results/* --method umap --out explore``
"""

from __future__ import annotations

import argparse
from typing import Any

__all__ = ["add_feature_arguments", "feature_spec"]


def add_feature_arguments(parser: argparse._ActionsContainer) -> None:
    """Add ``--features``, ``--feature-layer`` and ``--mc-dropout`` to a scoring command."""
    parser.add_argument(
        "--features",
        action="store_true",
        help="keep per-tile features (features.zarr) and add ood_score to the tiles",
    )
    parser.add_argument(
        "--feature-layer",
        help="module giving the features (default: the card's feature_layer, "
        "else forward_features)",
    )
    parser.add_argument(
        "--mc-dropout",
        type=int,
        default=0,
        metavar="N",
        help="MC-dropout passes per batch for mc_uncertainty (models with dropout; 0: none)",
    )


def feature_spec(args: argparse.Namespace) -> Any:
    """Return the :class:`~napari_xai.core.options.FeatureSpec` the flags ask for, or None."""
    from napari_xai.core.options import FeatureSpec

    if not (args.features or args.feature_layer or args.mc_dropout):
        return None
    return FeatureSpec(layer=args.feature_layer, mc_samples=int(args.mc_dropout))
