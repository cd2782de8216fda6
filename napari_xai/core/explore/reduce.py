"""Tile features in 2-D: PCA always, UMAP and t-SNE when asked; seeded.

For a large cohort every method is *fitted on a sample* (``fit_sample`` tiles,
drawn with the seed) and the rest are placed in chunks of ``chunk`` rows, so
memory stays bounded by the sample and one chunk:

* PCA: principal axes of the centred sample; every tile projected.
* UMAP (umap-learn): fitted on the sample's first ``pre_pca`` principal
  components; the rest through ``UMAP.transform``.
* t-SNE (scikit-learn) has no transform: the rest are placed at the mean
  position of their ``k`` nearest sample tiles (in PCA space).

The same features, method and seed give the same coordinates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from napari_xai.core.options import _Options, bounded

__all__ = ["EMBED_METHODS", "EmbedOptions", "Embedding", "PCABasis", "embed", "fit_pca"]

EMBED_METHODS = ("pca", "umap", "tsne")


@dataclass(frozen=True)
class EmbedOptions(_Options):
    """How tile features are embedded in 2-D (see :func:`embed`).

    Attributes
    ----------
    method : {"pca", "umap", "tsne"}
        Embedding; UMAP needs umap-learn, t-SNE scikit-learn.
    seed : int
        Seed of the sample and of the method.
    fit_sample : int
        Tiles the method is fitted on (all when there are fewer).
    chunk : int
        Rows transformed at a time.
    pre_pca : int
        Principal components fed to UMAP / t-SNE.
    n_neighbors : int
        UMAP neighbours (and the k of t-SNE's placement of the rest).
    perplexity : float
        t-SNE perplexity (capped for small samples).
    """

    method: str = "pca"
    seed: int = 0
    fit_sample: int = bounded(20_000, low=1)
    chunk: int = bounded(65_536, low=1)
    pre_pca: int = bounded(30, low=1)
    n_neighbors: int = bounded(15, low=1)
    perplexity: float = bounded(30.0, low=1)


@dataclass(frozen=True)
class PCABasis:
    """Centre and principal axes fitted on a sample (features are not rescaled).

    Attributes
    ----------
    mean : ndarray of shape (D,)
        Per-feature centre of the sample.
    components : ndarray of shape (K, D)
        Principal axes, largest variance first.
    explained : ndarray of shape (K,)
        Share of the sample's variance along each axis.
    """

    mean: npt.NDArray[np.float32]
    components: npt.NDArray[np.float32]
    explained: npt.NDArray[np.float32]

    def transform(self, x: npt.ArrayLike, *, k: int | None = None) -> npt.NDArray[np.float32]:
        """Project rows onto the first ``k`` axes (all by default)."""
        z = np.asarray(x, dtype=np.float32) - self.mean
        comp = self.components if k is None else self.components[:k]
        out: npt.NDArray[np.float32] = (z @ comp.T).astype(np.float32, copy=False)
        return out


def fit_pca(sample: npt.ArrayLike, *, n_components: int = 50) -> PCABasis:
    """PCA of a centred sample (thin SVD; ``n_components`` capped by its rank)."""
    x = np.asarray(sample, dtype=np.float32)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"PCA needs at least 2 rows of features (N, D), got shape {x.shape}")
    mean = x.mean(axis=0)
    _, s, vt = np.linalg.svd(x - mean, full_matrices=False)
    k = int(min(n_components, vt.shape[0]))
    var = s**2
    explained = (var / var.sum()) if var.sum() > 0 else np.zeros_like(var)
    # Fix each axis's sign (largest loading positive): the same data gives the same picture.
    comp = vt[:k]
    signs = np.sign(comp[np.arange(k), np.abs(comp).argmax(axis=1)])
    comp = comp * signs[:, None]
    return PCABasis(
        mean=mean,
        components=comp.astype(np.float32),
        explained=explained[:k].astype(np.float32),
    )


@dataclass(frozen=True)
class Embedding:
    """2-D coordinates of every tile and how they were made.

    Attributes
    ----------
    coords : ndarray of shape (N, 2), float32
    method : str
        ``"pca"``, ``"umap"`` or ``"tsne"``.
    sample : ndarray of int64
        Rows the method was fitted on.
    pca : PCABasis
        The PCA fitted on the sample (used for clustering and placing).
    timings : dict
        Seconds: ``pca_s``, ``fit_s``, ``transform_s``.
    """

    coords: npt.NDArray[np.float32]
    method: str
    sample: npt.NDArray[np.int64]
    pca: PCABasis
    timings: dict[str, float] = field(default_factory=dict)


def _chunks(n: int, chunk: int) -> list[slice]:
    return [slice(i, min(i + chunk, n)) for i in range(0, n, max(chunk, 1))]


def _knn_place(
    ref: npt.NDArray[np.float32],
    ref_xy: npt.NDArray[np.float32],
    x: npt.NDArray[np.float32],
    k: int,
) -> npt.NDArray[np.float32]:
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=min(k, len(ref))).fit(ref)
    _, idx = nn.kneighbors(x)
    out: npt.NDArray[np.float32] = ref_xy[idx].mean(axis=1).astype(np.float32)
    return out


def embed(features: npt.ArrayLike, *, options: EmbedOptions | None = None) -> Embedding:
    """Embed tile features in 2-D.

    Parameters
    ----------
    features : array-like of shape (N, D)
        One row per tile (float16 is fine).
    options : EmbedOptions, optional
        Method, seed, sample and chunk sizes (default: :class:`EmbedOptions`).

    Returns
    -------
    Embedding

    Raises
    ------
    ValueError
        For an unknown method or fewer than 3 tiles.
    ImportError
        When UMAP is asked and umap-learn is not installed (the message says
        how to install it).
    """
    import time

    opts = EmbedOptions() if options is None else options
    method, seed, chunk, pre_pca = opts.method, opts.seed, opts.chunk, opts.pre_pca
    if method not in EMBED_METHODS:
        raise ValueError(f"embedding method must be one of {EMBED_METHODS}, not {method!r}")
    x = np.asarray(features)
    if x.ndim != 2 or x.shape[0] < 3:
        raise ValueError(f"need at least 3 tiles with features (N, D), got shape {x.shape}")
    n = x.shape[0]
    rng = np.random.default_rng(seed)
    sample = (
        np.arange(n, dtype=np.int64)
        if n <= opts.fit_sample
        else np.sort(rng.choice(n, size=opts.fit_sample, replace=False)).astype(np.int64)
    )
    t0 = time.perf_counter()
    basis = fit_pca(x[sample], n_components=max(2, pre_pca))
    timings = {"pca_s": time.perf_counter() - t0}
    coords = np.empty((n, 2), np.float32)
    t1 = time.perf_counter()
    if method == "pca":
        for sl in _chunks(n, chunk):
            coords[sl] = basis.transform(x[sl], k=2)
        timings["transform_s"] = time.perf_counter() - t1
        return Embedding(coords, method, sample, basis, timings)
    ref = basis.transform(x[sample], k=pre_pca)
    place: Callable[[npt.NDArray[np.float32]], npt.NDArray[Any]]
    if method == "umap":
        try:
            import umap
        except ImportError as exc:
            raise ImportError(
                "UMAP needs umap-learn: pip install umap-learn (or napari-xai[explore])"
            ) from exc
        reducer: Any = umap.UMAP(
            n_components=2,
            n_neighbors=min(opts.n_neighbors, len(sample) - 1),
            random_state=seed,
            n_jobs=1,
        )
        ref_xy = np.asarray(reducer.fit_transform(ref), np.float32)
        place = reducer.transform
    else:
        from sklearn.manifold import TSNE

        tsne = TSNE(
            n_components=2,
            perplexity=float(min(opts.perplexity, (len(sample) - 1) / 3)),
            random_state=seed,
            init="pca",
        )
        ref_xy = np.asarray(tsne.fit_transform(ref), np.float32)

        def place(z: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
            return _knn_place(ref, ref_xy, z, opts.n_neighbors)

    timings["fit_s"] = time.perf_counter() - t1
    t2 = time.perf_counter()
    coords[sample] = ref_xy
    rest = np.setdiff1d(np.arange(n), sample)
    for sl in _chunks(len(rest), chunk):
        rows = rest[sl]
        coords[rows] = np.asarray(place(basis.transform(x[rows], k=pre_pca)))
    timings["transform_s"] = time.perf_counter() - t2
    return Embedding(coords, method, sample, basis, timings)
