"""Judge a tile classifier, and its explanations, against annotated regions.

Everything works on plain arrays and the tiles table (pandas DataFrame with
``row``, ``col``, ``height``, ``width`` in level-0 pixels and one ``prob_<class>``
column per class, ``pred_class``), so it runs the same on results from disk, from
a scoring run or from a test.

Maps (masks, heatmaps, saliency) are arrays placed on level 0 by ``scale`` and
``translate`` as in napari: pixel ``i`` of the map has its centre at level-0
world coordinate ``translate + i * scale``, where level-0 pixel ``k`` has its
centre at ``k`` (napari's convention, also the project's contract: a mask at
downsample ``d`` has ``scale=d``, ``translate=(d-1)/2``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd  # noqa: TID253 - only imported when work runs
import shapely
from shapely.geometry.base import BaseGeometry

from napari_xai.core.annotations.geojson import Annotation

__all__ = [
    "draw_confusion_matrix",
    "evaluate_layers",
    "UNLABELLED",
    "confusion_matrix",
    "dice_iou",
    "energy_pointing_game",
    "evaluate_tiles",
    "overlap_fractions",
    "PlacedMap",
    "evaluate_against_annotations",
    "overlap_fractions_from_mask",
    "per_class_metrics",
    "resample_to_grid",
    "roc_auc",
    "roc_curve",
    "tile_labels",
    "write_evaluation",
]

#: Label of tiles that no annotation covers enough.
UNLABELLED = ""

Pair = tuple[float, float]


def _pair(v: float | Sequence[float]) -> Pair:
    if isinstance(v, (int, float, np.integer, np.floating)):
        return (float(v), float(v))
    a, b = v
    return (float(a), float(b))


# --------------------------------------------------------------------------- tile labels
def overlap_fractions(
    tiles: pd.DataFrame,
    annotations: Iterable[Annotation],
    *,
    classes: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Fraction of each tile covered by each annotated class (exact polygon overlap).

    Parameters
    ----------
    tiles : DataFrame
        Tiles table with level-0 ``row``, ``col``, ``height``, ``width``.
    annotations : iterable of Annotation
        Annotated regions (level-0 (x, y) geometries, pixel-corner origin).
    classes : sequence of str, optional
        Which classes to measure (default: every class found, in order).

    Returns
    -------
    DataFrame
        Same index as `tiles`, one float column per class in [0, 1] (overlapping
        annotations of one class are merged first, so never above 1).
    """
    by_class: dict[str, list[BaseGeometry]] = {}
    for a in annotations:
        if a.class_name is None:
            continue
        by_class.setdefault(a.class_name, []).append(a.geometry)
    names = list(classes) if classes is not None else list(by_class)
    row = tiles["row"].to_numpy(dtype=np.float64)
    col = tiles["col"].to_numpy(dtype=np.float64)
    h = tiles["height"].to_numpy(dtype=np.float64)
    w = tiles["width"].to_numpy(dtype=np.float64)
    boxes = shapely.box(col, row, col + w, row + h)
    out = pd.DataFrame(index=tiles.index)
    for name in names:
        geoms = by_class.get(name)
        if not geoms:
            out[name] = 0.0
            continue
        region = shapely.union_all(np.array(geoms, dtype=object))
        shapely.prepare(region)
        frac = np.zeros(len(tiles))
        hit = shapely.intersects(region, boxes)
        if hit.any():
            frac[hit] = shapely.area(shapely.intersection(boxes[hit], region)) / (h * w)[hit]
        out[name] = np.clip(frac, 0.0, 1.0)
    return out


def overlap_fractions_from_mask(
    tiles: pd.DataFrame,
    mask: npt.NDArray[Any],
    *,
    downsample: float,
) -> npt.NDArray[np.float64]:
    """Fraction of each tile inside a boolean mask at a downsample of level 0.

    Parameters
    ----------
    tiles : DataFrame
        Tiles table with level-0 ``row``, ``col``, ``height``, ``width``.
    mask : ndarray of shape (rows, cols)
        Truthy inside the region; mask pixel ``i`` covers level-0 pixels
        ``[i * d, (i + 1) * d)``.
    downsample : float
        ``d`` above.

    Returns
    -------
    ndarray of shape (n_tiles,)
        Fraction in [0, 1], with fractional coverage of border mask pixels.
    """
    m = np.asarray(mask).astype(np.float64)
    d = float(downsample)
    integral = np.zeros((m.shape[0] + 1, m.shape[1] + 1))
    integral[1:, 1:] = m.cumsum(0).cumsum(1)

    def cum(r: npt.NDArray[np.float64], c: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        # Area-weighted integral of the mask over [0, r) x [0, c) (mask pixel units),
        # bilinear in the fractional part.
        r = np.clip(r, 0, m.shape[0])
        c = np.clip(c, 0, m.shape[1])
        r0 = np.floor(r).astype(int)
        c0 = np.floor(c).astype(int)
        r1 = np.minimum(r0 + 1, m.shape[0])
        c1 = np.minimum(c0 + 1, m.shape[1])
        fr, fc = r - r0, c - c0
        total: npt.NDArray[np.float64] = (
            integral[r0, c0] * (1 - fr) * (1 - fc)
            + integral[r1, c0] * fr * (1 - fc)
            + integral[r0, c1] * (1 - fr) * fc
            + integral[r1, c1] * fr * fc
        )
        return total

    r0 = tiles["row"].to_numpy(dtype=np.float64) / d
    c0 = tiles["col"].to_numpy(dtype=np.float64) / d
    r1 = r0 + tiles["height"].to_numpy(dtype=np.float64) / d
    c1 = c0 + tiles["width"].to_numpy(dtype=np.float64) / d
    inside = cum(r1, c1) - cum(r0, c1) - cum(r1, c0) + cum(r0, c0)
    area = (r1 - r0) * (c1 - c0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.clip(np.where(area > 0, inside / area, 0.0), 0.0, 1.0)


def tile_labels(
    overlaps: pd.DataFrame,
    *,
    min_overlap: float = 0.5,
    background: str | None = None,
) -> pd.Series:
    """Label each tile with the class covering most of it, if it covers enough.

    Parameters
    ----------
    overlaps : DataFrame
        From :func:`overlap_fractions` (one column per class).
    min_overlap : float
        A tile takes a class only when that class covers at least this fraction.
    background : str, optional
        Label for tiles no class covers enough (e.g. ``"Normal"`` when everything
        outside the tumour annotation counts as negative). Default: unlabelled
        (``""``), which evaluations leave out.

    Returns
    -------
    Series of str
        Same index as `overlaps`.
    """
    if overlaps.shape[1] == 0:
        return pd.Series(background or UNLABELLED, index=overlaps.index, dtype=object)
    values = overlaps.to_numpy(dtype=np.float64)
    best = values.argmax(axis=1)
    best_value = values[np.arange(len(values)), best]
    names = np.asarray(overlaps.columns, dtype=object)[best]
    labels = np.where(best_value >= min_overlap, names, background or UNLABELLED)
    return pd.Series(labels, index=overlaps.index, dtype=object)


# --------------------------------------------------------------------------- classification
def confusion_matrix(
    y_true: Sequence[str] | npt.ArrayLike,
    y_pred: Sequence[str] | npt.ArrayLike,
    *,
    labels: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Confusion matrix: rows are true classes, columns predicted classes.

    Parameters
    ----------
    y_true, y_pred : sequence of str
        Labels per tile; tiles whose true label is ``""`` (unlabelled) are left out.
    labels : sequence of str, optional
        Order of classes (default: sorted union of both).

    Returns
    -------
    DataFrame of int64
        ``cm.loc[true, predicted]`` = count.
    """
    t = np.asarray(y_true, dtype=object)
    p = np.asarray(y_pred, dtype=object)
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.shape[0]} items but y_pred has {p.shape[0]}")
    keep = t != UNLABELLED
    t, p = t[keep], p[keep]
    names = list(labels) if labels is not None else sorted(set(t) | set(p))
    index = {n: i for i, n in enumerate(names)}
    cm = np.zeros((len(names), len(names)), dtype=np.int64)
    for a, b in zip(t, p, strict=True):
        if a in index and b in index:
            cm[index[a], index[b]] += 1
    return pd.DataFrame(
        cm,
        index=pd.Index(names, name="true"),
        columns=pd.Index(names, name="predicted"),
    )


def per_class_metrics(cm: pd.DataFrame) -> pd.DataFrame:
    """Precision, recall, F1 and support per class from a confusion matrix.

    Returns
    -------
    DataFrame
        Index: class; columns ``precision``, ``recall``, ``f1``, ``support``
        (NaN where undefined, e.g. a class never predicted has no precision).
    """
    m = cm.to_numpy(dtype=np.float64)
    tp = np.diag(m)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = tp / m.sum(axis=0)
        recall = tp / m.sum(axis=1)
        f1 = 2 * precision * recall / (precision + recall)
    return pd.DataFrame(
        {
            "precision": precision,
            "recall": recall,
            "f1": f1,
            "support": m.sum(axis=1).astype(np.int64),
        },
        index=cm.index.rename("class"),
    )


def roc_auc(y_true: npt.ArrayLike, scores: npt.ArrayLike) -> float:
    """Area under the ROC curve (Mann-Whitney U, ties counted half).

    Parameters
    ----------
    y_true : array-like of bool, shape (n,)
        True for positives.
    scores : array-like of float, shape (n,)
        Higher means more positive.

    Returns
    -------
    float
        AUC in [0, 1]; NaN when there are no positives or no negatives.
    """
    y = np.asarray(y_true, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    if y.shape != s.shape:
        raise ValueError(f"y_true has shape {y.shape} but scores {s.shape}")
    finite = np.isfinite(s)
    y, s = y[finite], s[finite]
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return math.nan
    from scipy.stats import rankdata

    ranks = rankdata(s)  # average ranks for ties
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def roc_curve(
    y_true: npt.ArrayLike, scores: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Compute false and true positive rates at each distinct score threshold.

    Returns
    -------
    (fpr, tpr, thresholds)
        From (0, 0) at threshold +inf to (1, 1).
    """
    y = np.asarray(y_true, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    distinct = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]
    tps = np.cumsum(y)[distinct]
    fps = (distinct + 1) - tps
    n_pos, n_neg = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    fpr = np.r_[0.0, fps / n_neg]
    tpr = np.r_[0.0, tps / n_pos]
    return fpr, tpr, np.r_[np.inf, s[distinct]]


# --------------------------------------------------------------------------- maps
def resample_to_grid(
    image: npt.NDArray[Any],
    *,
    scale: float | Sequence[float],
    translate: float | Sequence[float] = 0.0,
    shape_rc: tuple[int, int],
    out_scale: float | Sequence[float],
    out_translate: float | Sequence[float] = 0.0,
    fill: float = 0.0,
) -> npt.NDArray[Any]:
    """Sample a map onto another grid over level 0 (nearest neighbour).

    Parameters
    ----------
    image : ndarray of shape (rows, cols)
        Source map; its pixel ``i`` is centred at ``translate + i * scale``.
    scale, translate : float or (float, float)
        Placement of `image` on level 0 (napari's layer scale and translate).
    shape_rc : (int, int)
        Output shape.
    out_scale, out_translate : float or (float, float)
        Placement of the output grid on level 0.
    fill : float
        Value for output pixels whose centre falls outside `image`.

    Returns
    -------
    ndarray of shape `shape_rc`, dtype of `image` (float if `fill` is NaN)
    """
    image = np.asarray(image)
    s, t = _pair(scale), _pair(translate)
    os_, ot = _pair(out_scale), _pair(out_translate)
    rows_world = ot[0] + np.arange(shape_rc[0]) * os_[0]
    cols_world = ot[1] + np.arange(shape_rc[1]) * os_[1]
    ri = np.floor((rows_world - t[0]) / s[0] + 0.5).astype(np.int64)
    ci = np.floor((cols_world - t[1]) / s[1] + 0.5).astype(np.int64)
    rok = (ri >= 0) & (ri < image.shape[0])
    cok = (ci >= 0) & (ci < image.shape[1])
    dtype = np.result_type(image.dtype, np.float64) if np.isnan(fill) else image.dtype
    out = np.full(tuple(shape_rc), fill, dtype=dtype)
    out[np.ix_(rok, cok)] = image[np.ix_(ri[rok], ci[cok])]
    return out


def dice_iou(
    predicted: npt.ArrayLike,
    truth: npt.ArrayLike,
    *,
    valid: npt.ArrayLike | None = None,
) -> tuple[float, float]:
    """Dice and IoU (Jaccard) between two boolean masks on the same grid.

    Parameters
    ----------
    predicted, truth : array-like of bool, same shape
        E.g. ``heatmap >= 0.5`` resampled onto the annotation mask's grid.
    valid : array-like of bool, optional
        Only these pixels count (e.g. tissue, or where the heatmap has tiles).

    Returns
    -------
    (dice, iou)
        Both 1.0 when both masks are empty.
    """
    p = np.asarray(predicted, dtype=bool)
    t = np.asarray(truth, dtype=bool)
    if p.shape != t.shape:
        raise ValueError(f"masks differ in shape: {p.shape} vs {t.shape}")
    if valid is not None:
        v = np.asarray(valid, dtype=bool)
        p, t = p & v, t & v
    inter = float(np.count_nonzero(p & t))
    sp, st = float(np.count_nonzero(p)), float(np.count_nonzero(t))
    union = sp + st - inter
    if sp + st == 0:
        return 1.0, 1.0
    return 2 * inter / (sp + st), inter / union


def energy_pointing_game(
    saliency: npt.ArrayLike,
    mask: npt.ArrayLike,
    *,
    valid: npt.ArrayLike | None = None,
) -> float:
    """Share of the (positive) saliency energy that falls inside the mask.

    Score-CAM's energy-based pointing game: ``sum(s * mask) / sum(s)`` over
    positive saliency. Compare with the mask's area fraction (the value a map
    that ignores the region would get).

    Parameters
    ----------
    saliency : array-like of float, shape (rows, cols)
        Attribution map (negative values count as zero, NaN as outside).
    mask : array-like of bool, same shape
        The annotated region, on the saliency grid (see :func:`resample_to_grid`).
    valid : array-like of bool, optional
        Only these pixels count.

    Returns
    -------
    float
        In [0, 1]; NaN when there is no positive saliency.
    """
    s = np.asarray(saliency, dtype=np.float64)
    m = np.asarray(mask, dtype=bool)
    if s.shape != m.shape:
        raise ValueError(f"saliency {s.shape} and mask {m.shape} differ in shape")
    s = np.where(np.isfinite(s) & (s > 0), s, 0.0)
    if valid is not None:
        s = s * np.asarray(valid, dtype=bool)
    total = s.sum()
    if total <= 0:
        return math.nan
    return float((s * m).sum() / total)


# --------------------------------------------------------------------------- everything
def evaluate_tiles(
    tiles: pd.DataFrame,
    truth: pd.Series | Sequence[str],
    *,
    class_names: Sequence[str] | None = None,
    class_map: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Tile-level evaluation of a model against annotation-derived labels.

    Parameters
    ----------
    tiles : DataFrame
        Tiles table with ``pred_class`` and ``prob_<class>`` columns.
    truth : Series or sequence of str
        True label per tile (``""`` = unlabelled, left out), e.g. from
        :func:`tile_labels`.
    class_names : sequence of str, optional
        Model classes (default: ``tiles.attrs["class_names"]`` or the
        ``prob_*`` columns).
    class_map : mapping of str to str, optional
        Annotation class name to model class name (e.g. ``{"Tumor": "tumor"}``).

    Returns
    -------
    dict
        JSON-serialisable: ``labels``, ``confusion_matrix`` (list of lists, rows
        true), ``per_class`` {class: {precision, recall, f1, support, auc}},
        ``accuracy``, ``n_tiles`` (labelled tiles used), ``n_unlabelled``.
    """
    if class_names is None:
        class_names = tiles.attrs.get("class_names") or [
            c[len("prob_") :] for c in tiles.columns if c.startswith("prob_")
        ]
    names = list(class_names)
    t = np.asarray(truth, dtype=object)
    if class_map:
        t = np.array([class_map.get(v, v) for v in t], dtype=object)
    if len(t) != len(tiles):
        raise ValueError(f"{len(t)} labels for {len(tiles)} tiles")
    pred = tiles["pred_class"].to_numpy(dtype=object)
    labelled = t != UNLABELLED
    extra = sorted(set(t[labelled]) - set(names))
    labels = names + extra
    cm = confusion_matrix(t, pred, labels=labels)
    metrics = per_class_metrics(cm)
    per_class: dict[str, dict[str, float | int | None]] = {}
    for name in labels:
        col = f"prob_{name}"
        auc = (
            roc_auc(t[labelled] == name, tiles[col].to_numpy()[labelled])
            if col in tiles.columns
            else math.nan
        )
        row = metrics.loc[name]
        per_class[name] = {
            "precision": _json_float(row["precision"]),
            "recall": _json_float(row["recall"]),
            "f1": _json_float(row["f1"]),
            "support": int(row["support"]),
            "auc": _json_float(auc),
        }
    n = int(cm.to_numpy().sum())
    return {
        "labels": labels,
        "confusion_matrix": cm.to_numpy().tolist(),
        "per_class": per_class,
        "accuracy": _json_float(np.trace(cm.to_numpy()) / n if n else math.nan),
        "n_tiles": n,
        "n_unlabelled": int((~labelled).sum()),
    }


def _json_float(v: Any) -> float | None:
    v = float(v)
    return None if not math.isfinite(v) else v


# --------------------------------------------------------------------------- one call
@dataclass(frozen=True)
class PlacedMap:
    """A 2-D map placed on level 0 the napari way.

    Parameters
    ----------
    data : ndarray of shape (rows, cols)
        The map (heatmap of probabilities, saliency...).
    scale : float or (float, float)
        Level-0 pixels per map pixel.
    translate : float or (float, float)
        Level-0 position of the centre of map pixel (0, 0).
    """

    data: npt.NDArray[Any]
    scale: float | tuple[float, float] = 1.0
    translate: float | tuple[float, float] = 0.0

    @classmethod
    def from_layer_data(
        cls,
        data: Any,
        *,
        scale: Sequence[float],
        translate: Sequence[float],
        multiscale: bool = False,
        max_side: int = 4096,
    ) -> PlacedMap:
        """Place an image layer's data (one level, or the finest of at most ``max_side``).

        A saliency pyramid's level 0 can be as large as the slide: the finest level
        of at most ``max_side`` pixels a side is read, its placement scaled to match.
        """
        scale_rc = np.asarray(scale, dtype=float)
        translate_rc = np.asarray(translate, dtype=float)
        if multiscale:
            levels = list(data)
            pick = next((lv for lv in levels if max(lv.shape[-2:]) <= max_side), levels[-1])
            ds = np.asarray(levels[0].shape[-2:], float) / np.asarray(pick.shape[-2:], float)
            translate_rc = translate_rc + (ds - 1) / 2 * scale_rc
            scale_rc = scale_rc * ds
            data = pick
        return cls(
            np.asarray(data),
            scale=(float(scale_rc[0]), float(scale_rc[1])),
            translate=(float(translate_rc[0]), float(translate_rc[1])),
        )


def evaluate_against_annotations(
    tiles: pd.DataFrame,
    annotations: Sequence[Annotation],
    *,
    positive_class: str = "Tumor",
    class_map: Mapping[str, str] | None = None,
    min_overlap: float = 0.5,
    background: str | None = None,
    heatmap: PlacedMap | None = None,
    threshold: float = 0.5,
    saliency: PlacedMap | None = None,
) -> dict[str, Any]:
    """Everything the evaluation widget shows, in one call (JSON-serialisable).

    Parameters
    ----------
    tiles : DataFrame
        Tiles table (``row``, ``col``, ``height``, ``width``, ``prob_<class>``,
        ``pred_class``).
    annotations : sequence of Annotation
        The pathologist's regions (level-0 (x, y)).
    positive_class : str
        Annotation class of the region to compare maps with (``"Tumor"``).
    class_map : mapping of str to str, optional
        Annotation class to model class (default: case-insensitive name match).
    min_overlap : float
        Fraction of a tile a class must cover to label it.
    background : str, optional
        Model class for tiles no annotation covers enough (default: leave out).
    heatmap : PlacedMap, optional
        Probability map of the model class matching `positive_class`; it is
        thresholded at `threshold` for Dice/IoU against the annotated region.
    threshold : float
        Heatmap threshold.
    saliency : PlacedMap, optional
        Attribution map for the energy pointing game.

    Returns
    -------
    dict
        ``tiles`` (see :func:`evaluate_tiles`), ``overlap`` settings, and when
        maps are given ``segmentation`` {dice, iou, threshold} and
        ``pointing_game`` {energy_inside, area_fraction}.
    """
    names = list(
        tiles.attrs.get("class_names")
        or [c[len("prob_") :] for c in tiles.columns if c.startswith("prob_")]
    )
    if class_map is None:
        lowered = {n.casefold(): n for n in names}
        found = {a.class_name for a in annotations if a.class_name is not None}
        class_map = {c: lowered[c.casefold()] for c in found if c.casefold() in lowered}
        # QuPath's "Tumor" vs a model's "tumour"/"TUM": map the positive class by prefix.
        if positive_class not in class_map:
            for n in names:
                if n.casefold()[:3] == positive_class.casefold()[:3]:
                    class_map = {**class_map, positive_class: n}
                    break
    overlaps = overlap_fractions(tiles, annotations)
    truth = tile_labels(overlaps, min_overlap=min_overlap, background=None)
    truth = truth.map(lambda v: class_map.get(v, v) if v else (background or UNLABELLED))
    result: dict[str, Any] = {
        "positive_class": positive_class,
        "class_map": dict(class_map),
        "min_overlap": min_overlap,
        "background": background,
        "n_annotations": len(annotations),
        "tiles": evaluate_tiles(tiles, truth, class_names=names),
    }
    positives = [a for a in annotations if a.class_name == positive_class]
    if heatmap is not None:
        region = _region_on_grid(positives, heatmap)
        predicted = np.nan_to_num(np.asarray(heatmap.data, dtype=np.float64)) >= threshold
        dice, iou = dice_iou(predicted, region)
        result["segmentation"] = {"dice": dice, "iou": iou, "threshold": threshold}
    if saliency is not None:
        region = _region_on_grid(positives, saliency)
        result["pointing_game"] = {
            "energy_inside": _json_float(energy_pointing_game(saliency.data, region)),
            "area_fraction": float(region.mean()) if region.size else None,
        }
    return result


def _region_on_grid(annotations: Sequence[Annotation], placed: PlacedMap) -> npt.NDArray[np.bool_]:
    """Rasterise annotations exactly onto the pixel grid of a placed map."""
    from napari_xai.core.annotations.raster import rasterize_annotations

    s = _pair(placed.scale)
    t = _pair(placed.translate)
    data_shape = np.asarray(placed.data).shape[-2:]
    # Shift so that map pixel (0, 0) starts at level-0 0, paint, no resampling.
    offset = (t[0] - (s[0] - 1) / 2, t[1] - (s[1] - 1) / 2)
    shifted = [
        Annotation(shapely.transform(a.geometry, lambda c: c - [offset[1], offset[0]]), "x")
        for a in annotations
    ]
    if not math.isclose(s[0], s[1]):
        raise ValueError(f"maps with different row and column scales are not supported: {s}")
    mask = rasterize_annotations(
        shifted, shape_rc=(data_shape[0] * s[0], data_shape[1] * s[1]), downsample=s[0]
    )
    return mask[: data_shape[0], : data_shape[1]] > 0


def write_evaluation(result: Mapping[str, Any], path: str | Path) -> Path:
    """Store an evaluation under the ``"evaluation"`` key of a JSON file (e.g. audit.json).

    Other keys of an existing file are kept; the file is replaced atomically
    (:func:`napari_xai.core.atomic.atomic_write`: a kill leaves the old file and
    a temporary the next run's :func:`~napari_xai.core.atomic.clean_temporaries` removes).
    A result folder's ``audit.json`` is written through the folder's writer
    (:func:`napari_xai.core.results.update_audit`): listed in its manifest, so the
    next run keeps it.

    Parameters
    ----------
    result : mapping
        From :func:`evaluate_against_annotations`.
    path : path
        The JSON file.

    Returns
    -------
    Path
        The written file.
    """
    import json

    from napari_xai.core.atomic import atomic_write_text
    from napari_xai.core.results import (
        AUDIT_NAME,
        MANIFEST_NAME,
        read_json_object,
        update_audit,
    )

    path = Path(path)
    if path.name == AUDIT_NAME and (path.parent / MANIFEST_NAME).is_file():
        clean = json.loads(json.dumps(dict(result), allow_nan=False))
        return update_audit(path.parent, "evaluation", clean)
    doc = read_json_object(path)
    doc["evaluation"] = dict(result)
    return atomic_write_text(path, json.dumps(doc, indent=2, allow_nan=False))


def evaluate_layers(
    tiles: pd.DataFrame | str | Path,
    shapes: Any,
    *,
    heatmap: Mapping[str, Any] | None = None,
    saliency: Mapping[str, Any] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Evaluate what napari layers hold: :func:`evaluate_against_annotations` on their data.

    Parameters
    ----------
    tiles : DataFrame or path
        Tiles table, or a ``tiles.parquet`` read here.
    shapes : ShapesSnapshot
        The annotation Shapes layer's copy (:mod:`napari_xai.core.layers.editing`).
    heatmap, saliency : mapping, optional
        Image layers as keyword arguments of :meth:`PlacedMap.from_layer_data`
        (``data``, ``scale``, ``translate``, ``multiscale``); read here.
    **options
        ``positive_class``, ``min_overlap``, ``background``, ``threshold``.
    """
    table = tiles if isinstance(tiles, pd.DataFrame) else pd.read_parquet(tiles)
    heat = None if heatmap is None else PlacedMap.from_layer_data(**heatmap)
    sal = None if saliency is None else PlacedMap.from_layer_data(**saliency)
    annotations = shapes.annotations()
    return evaluate_against_annotations(table, annotations, heatmap=heat, saliency=sal, **options)


def draw_confusion_matrix(ax: Any, labels: Sequence[str], matrix: Sequence[Sequence[int]]) -> None:
    """Draw a confusion matrix (annotated rows, predicted columns) on a matplotlib ``Axes``."""
    cm = np.asarray(matrix, dtype=float)
    ax.imshow(cm, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("annotated")
    top = cm.max() if cm.size else 0
    for (i, j), v in np.ndenumerate(cm):
        colour = "white" if v > top / 2 else "black"
        ax.text(j, i, f"{int(v)}", ha="center", va="center", color=colour)
