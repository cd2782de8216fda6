"""Where the model does not know: per-tile out-of-distribution scores.

``ood_score`` (higher = less like what the model was trained on) is, in order
of preference:

* ``"mahalanobis"`` — when the model card names a feature summary of the
  training tiles (``feature_stats``, a ``.npz`` beside the weights, written by
  :func:`fit_feature_stats` / :func:`save_feature_stats`): the class-conditional
  Mahalanobis distance of a tile's features to the nearest training class mean
  (shared, shrunk covariance; Lee et al. 2018), **divided by the 99th
  percentile of the same distance over the training tiles**. So 1.0 is the edge
  of what the model saw: about 1 % of training tiles score above 1, and a tile
  at 3 is three times farther from every class than that.
* ``"energy"`` — without a summary: the free energy of the logits,
  ``-logsumexp(logits)`` (Liu et al. 2020), in logit units; it is comparable
  only between tiles scored by the same model (no reference, no fixed scale).

``mc_uncertainty`` (where the model has dropout) is the mutual information
between the prediction and the dropout masks over ``T`` passes (BALD), in
nats, in ``[0, log C]``: 0 when every pass agrees.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "FeatureStats",
    "energy_score",
    "fit_feature_stats",
    "load_feature_stats",
    "model_feature_stats",
    "mutual_information",
    "ood_map",
    "ood_scores",
    "save_feature_stats",
]

#: Quantile of the training distances that maps to ``ood_score == 1``.
REFERENCE_QUANTILE = 0.99


def energy_score(logits: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Free energy ``-logsumexp(logits)`` per row (higher: less familiar).

    Parameters
    ----------
    logits : array-like of shape (N, C)
    """
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim != 2:
        raise ValueError(f"logits must be (N, C), got shape {z.shape}")
    m = z.max(axis=1, keepdims=True) if z.size else np.zeros((z.shape[0], 1))
    lse = m[:, 0] + np.log(np.exp(z - m).sum(axis=1))
    out: npt.NDArray[np.float32] = (-lse).astype(np.float32)
    return out


def mutual_information(probs: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """BALD mutual information from ``T`` stochastic passes.

    Parameters
    ----------
    probs : array-like of shape (T, N, C)
        Class probabilities of each pass.

    Returns
    -------
    ndarray of shape (N,), float32
        ``H(mean_t p) - mean_t H(p)``, in nats.
    """
    p = np.clip(np.asarray(probs, dtype=np.float64), 1e-12, 1.0)
    mean = p.mean(axis=0)
    total = -(mean * np.log(mean)).sum(axis=1)
    expected = -(p * np.log(p)).sum(axis=2).mean(axis=0)
    out: npt.NDArray[np.float32] = np.maximum(total - expected, 0.0).astype(np.float32)
    return out


@dataclass(frozen=True)
class FeatureStats:
    """Summary of the training tiles' features.

    Attributes
    ----------
    means : ndarray of shape (K, D)
        Per-class means (one row when no labels were given).
    precision : ndarray of shape (D, D)
        Inverse of the shared, shrunk within-class covariance.
    reference : float
        ``REFERENCE_QUANTILE`` of the training distances (``ood_score`` 1).
    layer : str
        Layer the features come from (must match the scoring run).
    n : int
        Training tiles summarised.
    """

    means: npt.NDArray[np.float64]
    precision: npt.NDArray[np.float64]
    reference: float
    layer: str
    n: int

    def distance(self, features: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Mahalanobis distance to the nearest class mean, per row."""
        x = np.asarray(features, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != self.means.shape[1]:
            raise ValueError(
                f"features of dim {x.shape[-1] if x.ndim else 0} do not match the "
                f"training summary (dim {self.means.shape[1]}, layer {self.layer!r})"
            )
        best = np.full(x.shape[0], np.inf)
        for mu in self.means:
            d = x - mu
            best = np.minimum(best, np.einsum("ij,jk,ik->i", d, self.precision, d))
        out: npt.NDArray[np.float64] = np.sqrt(np.maximum(best, 0.0))
        return out

    def score(self, features: npt.ArrayLike) -> npt.NDArray[np.float32]:
        """``ood_score``: distance over the training reference (1 = edge of training)."""
        return (self.distance(features) / max(self.reference, 1e-12)).astype(np.float32)


def fit_feature_stats(
    features: npt.ArrayLike,
    labels: npt.ArrayLike | None = None,
    *,
    layer: str,
    shrinkage: float = 0.05,
) -> FeatureStats:
    """Summarise training features for :func:`ood_scores`.

    Parameters
    ----------
    features : array-like of shape (N, D)
        Features of the training tiles (the layer used when scoring).
    labels : array-like of shape (N,), optional
        Training classes: class-conditional means with a shared covariance.
    layer : str
        The layer's name (checked against the scoring run).
    shrinkage : float
        Weight of the scaled identity mixed into the covariance (keeps the
        precision finite for rank-deficient features).
    """
    x = np.asarray(features, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"need at least 2 feature rows (N, D), got shape {x.shape}")
    y = np.zeros(len(x), np.int64) if labels is None else np.asarray(labels)
    classes = np.unique(y)
    means = np.stack([x[y == c].mean(axis=0) for c in classes])
    centred = x - means[np.searchsorted(classes, y)]
    cov = centred.T @ centred / max(len(x) - len(classes), 1)
    scale = float(np.trace(cov)) / cov.shape[0] or 1.0
    cov = (1 - shrinkage) * cov + shrinkage * scale * np.eye(cov.shape[0])
    precision = np.linalg.inv(cov)
    stats = FeatureStats(means=means, precision=precision, reference=1.0, layer=layer, n=len(x))
    ref = float(np.quantile(stats.distance(x), REFERENCE_QUANTILE))
    return FeatureStats(means=means, precision=precision, reference=ref, layer=layer, n=len(x))


def save_feature_stats(stats: FeatureStats, path: str | Path) -> Path:
    """Write a summary as ``.npz`` (plain arrays; read back without pickle)."""
    path = Path(path)
    np.savez(
        path,
        means=stats.means,
        precision=stats.precision,
        reference=np.float64(stats.reference),
        layer=np.array(stats.layer),
        n=np.int64(stats.n),
    )
    return path


def load_feature_stats(path: str | Path) -> FeatureStats:
    """Read a summary written by :func:`save_feature_stats`.

    Raises
    ------
    ValueError
        When the file is missing a field or is not an ``.npz`` summary (the
        message names the file).
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            return FeatureStats(
                means=np.asarray(data["means"], np.float64),
                precision=np.asarray(data["precision"], np.float64),
                reference=float(data["reference"]),
                layer=str(data["layer"]),
                n=int(data["n"]),
            )
    except FileNotFoundError:
        raise ValueError(f"{path}: feature summary not found") from None
    except (KeyError, OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a feature summary ({exc})") from None


def model_feature_stats(model: Any) -> FeatureStats | None:
    """Return the training summary a loaded model's card names (``feature_stats``), or None."""
    card = getattr(model, "card", None)
    name = getattr(card, "feature_stats", None)
    path = getattr(model, "path", None)
    if not name or path is None:
        return None
    pure = Path(str(name))
    if pure.is_absolute() or ".." in pure.parts:
        raise ValueError(f"model card: feature_stats {name!r} must be a file beside the weights")
    base = Path(path)
    base = base if base.is_dir() else base.parent
    return load_feature_stats(base / pure)


def ood_scores(
    features: npt.ArrayLike,
    energy: npt.ArrayLike,
    *,
    stats: FeatureStats | None,
    layer: str,
) -> tuple[npt.NDArray[np.float32], str]:
    """Per-tile ``ood_score`` and the method that made it (see the module docs).

    Parameters
    ----------
    features : array-like of shape (N, D)
        Features of the scored tiles.
    energy : array-like of shape (N,)
        Their energy scores (:func:`energy_score`).
    stats : FeatureStats or None
        The training summary; used only when it was fitted on ``layer``.
    layer : str
        Layer the features come from.

    Returns
    -------
    (ndarray of shape (N,), str)
        Scores and ``"mahalanobis"`` or ``"energy"``.
    """
    feats = np.asarray(features, dtype=np.float32)
    if stats is not None and stats.layer == layer and feats.shape[1:] == stats.means.shape[1:]:
        return stats.score(feats), "mahalanobis"
    return np.asarray(energy, dtype=np.float32), "energy"


def ood_map(tiles: Any) -> npt.NDArray[np.float32]:
    """``ood_score`` on the tile grid ``(grid_rows, grid_cols)``; NaN where no tile was scored.

    Parameters
    ----------
    tiles : pandas.DataFrame
        A tiles table with ``grid_row``, ``grid_col``, ``ood_score`` and the
        ``grid_shape`` attribute.
    """
    shape = tiles.attrs.get("grid_shape")
    if shape is None:
        shape = (int(tiles["grid_row"].max()) + 1, int(tiles["grid_col"].max()) + 1)
    out = np.full(tuple(int(v) for v in shape), np.nan, np.float32)
    out[tiles["grid_row"].to_numpy(np.int64), tiles["grid_col"].to_numpy(np.int64)] = tiles[
        "ood_score"
    ].to_numpy(np.float32)
    return out
