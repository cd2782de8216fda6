"""Clusters of tiles in feature space, and what each cluster holds.

:func:`cluster_tiles` groups tiles on their first principal components
(not on the 2-D picture, which distorts distances): k-means (the number of
clusters chosen by silhouette on a sample when not given) or HDBSCAN
(scikit-learn; noise is cluster -1). Both are fitted on a seeded sample and
the other tiles join the cluster of their nearest centre (k-means) or nearest
sample tile (HDBSCAN), so a cohort of any size costs the sample plus a pass.

:func:`summarize_clusters` says per cluster: size, class mix, mean
confidence, ground-truth mix (a ``label`` column), slides, artefact share,
``ood_score`` and metadata (the most common value of each text column, the
mean of each numeric one).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CLUSTER_METHODS", "cluster_tiles", "summarize_clusters"]

CLUSTER_METHODS = ("kmeans", "hdbscan")

#: Columns of the tiles table that are not metadata.
_TILE_COLUMNS = {
    "row", "col", "height", "width", "grid_row", "grid_col", "tissue_fraction", "pred_class",
    "pred_index", "confidence", "entropy", "flags", "ood_score", "mc_uncertainty", "x", "y",
    "cluster", "slide_id", "result_folder", "tile", "label",
}  # fmt: skip


def _best_k(x: npt.NDArray[np.float32], ks: range, seed: int) -> int:
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    best, best_s = ks.start, -2.0
    distinct = len(np.unique(x, axis=0))
    for k in ks:
        if k >= distinct:
            break
        labels = KMeans(n_clusters=k, n_init=2, random_state=seed).fit_predict(x)
        s = float(silhouette_score(x, labels, random_state=seed))
        if s > best_s + 1e-3:
            best, best_s = k, s
    return best


def cluster_tiles(
    points: npt.ArrayLike,
    *,
    method: str = "kmeans",
    n_clusters: int | None = None,
    seed: int = 0,
    fit_sample: int = 20_000,
    min_cluster_size: int | None = None,
    max_k: int = 12,
) -> npt.NDArray[np.int64]:
    """Cluster tiles (rows of ``points``, e.g. their first principal components).

    Parameters
    ----------
    points : array-like of shape (N, K)
    method : {"kmeans", "hdbscan"}
    n_clusters : int, optional
        k-means clusters; default: the k in ``2..max_k`` with the best
        silhouette on a sample of at most 2,000 tiles.
    seed : int
        Seed of the sample and the method.
    fit_sample : int
        Tiles the method is fitted on.
    min_cluster_size : int, optional
        HDBSCAN's smallest cluster (default: 1 % of the sample, at least 5).
    max_k : int
        Largest k tried when choosing.

    Returns
    -------
    ndarray of shape (N,), int64
        Cluster per tile (0, 1, ... by decreasing size; -1: HDBSCAN noise).
    """
    if method not in CLUSTER_METHODS:
        raise ValueError(f"cluster method must be one of {CLUSTER_METHODS}, not {method!r}")
    x = np.asarray(points, dtype=np.float32)
    n = len(x)
    if n < 2:
        return np.zeros(n, np.int64)
    rng = np.random.default_rng(seed)
    sample = np.arange(n) if n <= fit_sample else np.sort(rng.choice(n, fit_sample, replace=False))
    ref = x[sample]
    if method == "kmeans":
        from sklearn.cluster import KMeans

        if n_clusters is None:
            small = ref if len(ref) <= 2000 else ref[rng.choice(len(ref), 2000, replace=False)]
            n_clusters = _best_k(small, range(2, max_k + 1), seed)
        k = min(int(n_clusters), len(np.unique(ref, axis=0)))
        km = KMeans(n_clusters=max(k, 1), n_init=4, random_state=seed)
        km.fit(ref)
        labels = np.empty(n, np.int64)
        for i in range(0, n, 65_536):
            labels[i : i + 65_536] = km.predict(x[i : i + 65_536])
    else:
        from sklearn.cluster import HDBSCAN
        from sklearn.neighbors import NearestNeighbors

        size = min_cluster_size or max(5, len(ref) // 100)
        ref_labels = HDBSCAN(min_cluster_size=int(size), copy=True).fit_predict(ref)
        labels = np.empty(n, np.int64)
        nn = NearestNeighbors(n_neighbors=1).fit(ref)
        for i in range(0, n, 65_536):
            _, idx = nn.kneighbors(x[i : i + 65_536])
            labels[i : i + 65_536] = ref_labels[idx[:, 0]]
    return _by_size(labels)


def _by_size(labels: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    """Renumber clusters 0, 1, ... by decreasing size (noise stays -1)."""
    ids, counts = np.unique(labels[labels >= 0], return_counts=True)
    order = ids[np.argsort(-counts, kind="stable")]
    lut = {int(old): new for new, old in enumerate(order)}
    out = np.array([lut.get(int(v), -1) for v in range(int(labels.max(initial=-1)) + 1)])
    res = np.full(len(labels), -1, np.int64)
    ok = labels >= 0
    res[ok] = out[labels[ok]]
    return res


def _mix(values: pd.Series, top: int = 4) -> str:
    shares = values.astype(str).value_counts(normalize=True).head(top)
    return ", ".join(f"{k} {v:.0%}" for k, v in shares.items())


def summarize_clusters(tiles: pd.DataFrame, *, cluster_column: str = "cluster") -> pd.DataFrame:
    """One row per cluster: what its tiles are.

    Parameters
    ----------
    tiles : pandas.DataFrame
        Tiles with ``cluster``, ``pred_class``, ``confidence`` and optionally
        ``slide_id``, ``label``, ``flags``, ``ood_score`` and metadata columns.

    Returns
    -------
    pandas.DataFrame
        ``cluster``, ``n_tiles``, ``share``, ``class_mix``, ``top_class``,
        ``top_class_share``, ``confidence``, ``label_mix`` and ``disagreement``
        (with labels), ``n_slides``, ``slides``, ``artefact_share``,
        ``ood_score``, then ``meta_<column>`` per metadata column.
    """
    import pandas as pd

    rows: list[dict[str, Any]] = []
    total = max(len(tiles), 1)
    meta = [c for c in tiles.columns if c not in _TILE_COLUMNS and not c.startswith("prob_")]
    for cid, grp in tiles.groupby(cluster_column, sort=True):
        counts = grp["pred_class"].astype(str).value_counts()
        row: dict[str, Any] = {
            "cluster": int(cid),  # type: ignore[call-overload]
            "n_tiles": len(grp),
            "share": len(grp) / total,
            "class_mix": _mix(grp["pred_class"]),
            "top_class": str(counts.index[0]),
            "top_class_share": float(counts.iloc[0] / len(grp)),
            "confidence": float(grp["confidence"].mean()),
        }
        if "label" in grp:
            row["label_mix"] = _mix(grp["label"])
            row["disagreement"] = float((grp["label"].astype(str) != grp["pred_class"]).mean())
        if "slide_id" in grp:
            row["n_slides"] = int(grp["slide_id"].nunique())
            row["slides"] = _mix(grp["slide_id"], top=3)
        if "flags" in grp:
            row["artefact_share"] = float(
                grp["flags"].astype(str).str.contains("artefact", regex=False).mean()
            )
        if "ood_score" in grp:
            row["ood_score"] = float(grp["ood_score"].median())
        for col in meta:
            values = grp[col]
            if pd.api.types.is_numeric_dtype(values):
                row[f"meta_{col}"] = float(values.mean())
            else:
                row[f"meta_{col}"] = _mix(values, top=2)
        rows.append(row)
    return pd.DataFrame(rows)
