"""Filters, gallery orders and confusion-matrix cells over a cohort's tiles.

The explorer applies one :class:`TileFilter` to the scatter, the gallery and
the slide layers at once; these functions compute the rows, nothing more, so
the widget and the tests share them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "GALLERY_ORDERS",
    "TileFilter",
    "confusion_cells",
    "gallery_order",
    "points_in_box",
    "points_in_polygon",
    "tile_at",
]

#: Gallery orders: the name, and what comes first.
GALLERY_ORDERS = {
    "confidence": "least confident first",
    "disagreement": "labelled tiles the model disagrees with, most confident first",
    "cluster": "by cluster, most typical (nearest the cluster centre of the 2-D picture) first",
    "uncertainty": "highest ood_score (or MC-dropout uncertainty, or entropy) first",
}


@dataclass(frozen=True)
class TileFilter:
    """Which tiles are shown.

    Attributes
    ----------
    classes : tuple of str or None
        Predicted classes kept; None: every class (no filter), empty: none.
    confidence : (float, float)
        Kept confidence range, inclusive.
    slides : tuple of str or None
        ``slide_id`` values kept; None: every slide (no filter), empty: none.
    flags : tuple of str
        Tiles carrying any of these flags are dropped (e.g. ``("artefact",)``).
    ood : (float, float) or None
        Kept ``ood_score`` range.
    metadata : mapping of str to tuple
        Column → values kept (compared as text, so ``"0"`` keeps cluster 0).
    """

    classes: tuple[str, ...] | None = None
    confidence: tuple[float, float] = (0.0, 1.0)
    slides: tuple[str, ...] | None = None
    flags: tuple[str, ...] = ()
    ood: tuple[float, float] | None = None
    metadata: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)

    def mask(self, tiles: pd.DataFrame) -> npt.NDArray[np.bool_]:
        """Boolean mask of the tiles kept, one entry per row."""
        keep = np.ones(len(tiles), bool)
        if self.classes is not None:
            keep &= _text(tiles["pred_class"]).isin(self.classes).to_numpy()
        lo, hi = self.confidence
        conf = tiles["confidence"].to_numpy(np.float64)
        keep &= (conf >= lo) & (conf <= hi)
        if self.slides is not None and "slide_id" in tiles:
            keep &= _text(tiles["slide_id"]).isin(self.slides).to_numpy()
        if self.flags and "flags" in tiles:
            import re

            words = "|".join(re.escape(f) for f in self.flags)
            drop = tiles["flags"].astype(str).str.contains(f"(?:^|;)(?:{words})(?:;|$)")
            keep &= ~drop.to_numpy(bool)
        if self.ood is not None and "ood_score" in tiles:
            o = tiles["ood_score"].to_numpy(np.float64)
            keep &= (o >= self.ood[0]) & (o <= self.ood[1])
        for col, values in self.metadata.items():
            if col not in tiles:
                raise KeyError(f"no metadata column {col!r} (columns: {list(tiles.columns)})")
            wanted = [str(v) for v in values]  # as text: a widget's choices are text
            keep &= tiles[col].astype(str).isin(wanted).to_numpy()
        return keep


def _text(values: pd.Series) -> pd.Series:
    """Return the values as text (text columns as they are: ``astype(str)`` costs)."""
    import pandas as pd

    if values.dtype == object and pd.api.types.infer_dtype(values, skipna=False) == "string":
        return values
    return values.astype(str)


def gallery_order(
    tiles: pd.DataFrame, *, by: str = "confidence", rows: npt.ArrayLike | None = None
) -> npt.NDArray[np.int64]:
    """Positional rows of ``tiles`` in gallery order (see :data:`GALLERY_ORDERS`).

    Parameters
    ----------
    tiles : pandas.DataFrame
        Cohort tiles (``confidence``; ``label``, ``cluster``, ``x``/``y``,
        ``ood_score`` where the order needs them).
    by : str
        One of :data:`GALLERY_ORDERS`.
    rows : array_like of int, optional
        Only these rows (e.g. the filtered ones).
    """
    if by not in GALLERY_ORDERS:
        raise ValueError(f"gallery order must be one of {list(GALLERY_ORDERS)}, not {by!r}")
    idx = np.arange(len(tiles)) if rows is None else np.asarray(rows, np.int64)
    # only the columns the order needs (a copy of every column of 200,000 rows costs more)
    wanted = ["confidence", "label", "pred_class", "cluster", "x", "y", "ood_score",
              "mc_uncertainty", "entropy"]  # fmt: skip
    sub = tiles[[c for c in wanted if c in tiles]].iloc[idx]
    conf = sub["confidence"].to_numpy(np.float64)
    if by == "confidence":
        order = np.argsort(conf, kind="stable")
    elif by == "disagreement":
        if "label" not in sub:
            raise ValueError("ordering by disagreement needs a label column (ground truth)")
        wrong = (sub["label"].astype(str) != sub["pred_class"].astype(str)).to_numpy() & (
            sub["label"].notna().to_numpy()
        )
        order = np.lexsort((-conf, ~wrong))
        order = order[: int(wrong.sum())]
    elif by == "cluster":
        if "cluster" not in sub:
            raise ValueError("ordering by cluster needs a cluster column (explore the cohort)")
        cl = sub["cluster"].to_numpy()
        dist = np.zeros(len(sub))
        if "x" in sub and "y" in sub:
            xy = sub[["x", "y"]].to_numpy(np.float64)
            for c in np.unique(cl):
                m = cl == c
                dist[m] = np.linalg.norm(xy[m] - np.median(xy[m], axis=0), axis=1)
        order = np.lexsort((dist, cl))
    else:
        col = next(
            (c for c in ("ood_score", "mc_uncertainty", "entropy") if c in sub), "confidence"
        )
        value = sub[col].to_numpy(np.float64)
        order = np.argsort(-value if col != "confidence" else value, kind="stable")
    out: npt.NDArray[np.int64] = idx[order]
    return out


def confusion_cells(
    tiles: pd.DataFrame, *, labels: Sequence[str] | None = None
) -> tuple[pd.DataFrame, dict[tuple[str, str], npt.NDArray[np.int64]]]:
    """Confusion matrix of ``label`` vs ``pred_class`` and the rows behind each cell.

    Parameters
    ----------
    tiles : pandas.DataFrame
        Tiles with ``label`` (ground truth; empty or missing = unlabelled,
        left out) and ``pred_class``.
    labels : sequence of str, optional
        Class order (default: the model's classes in ``attrs``, then the rest).

    Returns
    -------
    (pandas.DataFrame, dict)
        ``cm.loc[true, predicted]`` counts, and ``(true, predicted)`` →
        positional rows of ``tiles`` (each labelled tile in exactly one cell).
    """
    import pandas as pd

    if "label" not in tiles:
        raise ValueError("a confusion matrix needs a label column (ground truth)")
    truth = tiles["label"].astype(object).where(tiles["label"].notna(), "").astype(str)
    pred = tiles["pred_class"].astype(str)
    known = truth.to_numpy() != ""
    if labels is None:
        first = [str(c) for c in tiles.attrs.get("class_names", [])]
        seen = set(first)
        rest = sorted((set(truth[known]) | set(pred)) - seen)
        labels = first + rest
    names = list(labels)
    cells: dict[tuple[str, str], npt.NDArray[np.int64]] = {}
    cm = np.zeros((len(names), len(names)), np.int64)
    t, p = truth.to_numpy(), pred.to_numpy()
    for i, a in enumerate(names):
        ta = known & (t == a)
        for j, b in enumerate(names):
            rows = np.flatnonzero(ta & (p == b)).astype(np.int64)
            cells[(a, b)] = rows
            cm[i, j] = len(rows)
    return pd.DataFrame(cm, index=pd.Index(names, name="true"), columns=names), cells


def points_in_box(
    xy: npt.ArrayLike, corner_a: Sequence[float], corner_b: Sequence[float]
) -> npt.NDArray[np.int64]:
    """Rows of ``xy`` ``(N, 2)`` inside the box spanned by two corners (inclusive)."""
    p = np.asarray(xy, np.float64)
    lo = np.minimum(corner_a, corner_b)
    hi = np.maximum(corner_a, corner_b)
    inside = (p[:, 0] >= lo[0]) & (p[:, 0] <= hi[0]) & (p[:, 1] >= lo[1]) & (p[:, 1] <= hi[1])
    return np.flatnonzero(inside).astype(np.int64)


def points_in_polygon(xy: npt.ArrayLike, vertices: npt.ArrayLike) -> npt.NDArray[np.int64]:
    """Rows of ``xy`` ``(N, 2)`` inside a lasso polygon ``(V, 2)`` (V >= 3)."""
    from matplotlib.path import Path

    poly = np.asarray(vertices, np.float64)
    if poly.ndim != 2 or len(poly) < 3:
        return np.zeros(0, np.int64)
    p = np.asarray(xy, np.float64)
    lo, hi = poly.min(axis=0), poly.max(axis=0)
    cand = np.flatnonzero(np.all((p >= lo) & (p <= hi), axis=1))  # cheap box test first
    inside = np.asarray(Path(poly).contains_points(p[cand]), dtype=bool)
    out: npt.NDArray[np.int64] = cand[inside].astype(np.int64)
    return out


def tile_at(tiles: pd.DataFrame, point_rc: Sequence[float]) -> int | None:
    """Positional row of the tile covering a level-0 ``(row, col)``; None off the tiles.

    With overlapping tiles, the one whose centre is nearest wins.
    """
    r, c = float(point_rc[0]), float(point_rc[1])
    top = tiles["row"].to_numpy(np.float64)
    left = tiles["col"].to_numpy(np.float64)
    h = tiles["height"].to_numpy(np.float64)
    w = tiles["width"].to_numpy(np.float64)
    hit = np.flatnonzero((r >= top) & (r < top + h) & (c >= left) & (c < left + w))
    if not len(hit):
        return None
    d = (top[hit] + h[hit] / 2 - r) ** 2 + (left[hit] + w[hit] / 2 - c) ** 2
    return int(hit[np.argmin(d)])
