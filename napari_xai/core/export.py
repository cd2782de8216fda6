"""Export per-tile results in the forms WSInfer and QuPath users expect.

- **WSInfer CSV** (what ``wsinfer run`` writes to
  ``model-outputs-csv/<slide>.csv``): one row per tile, columns ``minx``,
  ``miny``, ``width``, ``height`` (level-0 pixels; x = column, y = row), then
  ``prob_<class>`` per class in the model's output order, no index column.
- **QuPath GeoJSON** (what ``wsinfer togeojson`` writes to
  ``model-outputs-geojson/<slide>.json``, read by QuPath's
  *File > Import objects*): a ``FeatureCollection``; each tile is a
  ``Feature`` with a UUID ``id``, a closed rectangular ``Polygon`` in level-0
  pixel coordinates and ``properties`` ``objectType`` (``"tile"``, QuPath's
  detection subtype for tiles; ``"detection"`` or ``"annotation"`` on
  request), ``isLocked``, a ``measurements`` object (name → number, the
  QuPath ≥ 0.4 form) and, unlike WSInfer, a ``classification``
  (``{"name", "color": [r, g, b]}``) with the predicted class.

:func:`read_wsinfer_csv` goes the other way: a WSInfer CSV becomes a
napari-xai tiles table, so WSInfer results open in napari-xai.
"""

from __future__ import annotations

import json
import math
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_xai.core.atomic import atomic_write, atomic_write_text
from napari_xai.core.naming import class_colour, rgb255

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

__all__ = [
    "QUPATH_OBJECT_TYPES",
    "WSINFER_CSV_COLUMNS",
    "class_names_of",
    "export_wsinfer_results",
    "read_wsinfer_csv",
    "tiles_to_qupath_geojson",
    "tiles_to_wsinfer_frame",
    "write_qupath_geojson",
    "write_wsinfer_csv",
]

#: Leading columns of a WSInfer model-output CSV, before the ``prob_<class>`` columns.
WSINFER_CSV_COLUMNS: tuple[str, ...] = ("minx", "miny", "width", "height")
#: ``properties.objectType`` values QuPath reads as tiles, detections, annotations.
QUPATH_OBJECT_TYPES: tuple[str, ...] = ("tile", "detection", "annotation")
#: Measurements copied next to the probabilities when the table has them.
DEFAULT_EXTRA_MEASUREMENTS: tuple[str, ...] = ("confidence", "entropy", "tissue_fraction")
_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/napari-xai/tiles")


def class_names_of(tiles: pd.DataFrame, class_names: Sequence[str] | None = None) -> list[str]:
    """Class names of a tiles table: given, else ``attrs["class_names"]``, else its columns."""
    if class_names is None:
        class_names = tiles.attrs.get("class_names")
    if class_names is None:
        class_names = [c[len("prob_") :] for c in tiles.columns if str(c).startswith("prob_")]
    names = [str(n) for n in class_names]
    if not names:
        raise ValueError("tiles table has no prob_<class> columns and no class_names")
    missing = [n for n in names if f"prob_{n}" not in tiles.columns]
    if missing:
        raise ValueError(f"tiles table lacks probability columns {[f'prob_{n}' for n in missing]}")
    return names


def _check_geometry(tiles: pd.DataFrame) -> None:
    missing = [c for c in ("row", "col", "height", "width") if c not in tiles.columns]
    if missing:
        raise ValueError(f"tiles table lacks level-0 geometry columns {missing}")


def tiles_to_wsinfer_frame(
    tiles: pd.DataFrame, *, class_names: Sequence[str] | None = None
) -> pd.DataFrame:
    """Convert a napari-xai tiles table to WSInfer's model-output columns.

    Parameters
    ----------
    tiles : DataFrame
        Tiles table: level-0 ``row``, ``col``, ``height``, ``width`` and
        ``prob_<class>`` columns.
    class_names : sequence of str, optional
        Classes (output order); default from ``tiles.attrs`` or the columns.

    Returns
    -------
    DataFrame
        Columns ``minx, miny, width, height, prob_<class>...`` (``minx`` is
        the level-0 column, ``miny`` the level-0 row), integer geometry.
    """
    import pandas as pd

    _check_geometry(tiles)
    names = class_names_of(tiles, class_names)
    out = pd.DataFrame(
        {
            "minx": tiles["col"].to_numpy(dtype=np.int64),
            "miny": tiles["row"].to_numpy(dtype=np.int64),
            "width": tiles["width"].to_numpy(dtype=np.int64),
            "height": tiles["height"].to_numpy(dtype=np.int64),
        }
    )
    for name in names:
        out[f"prob_{name}"] = tiles[f"prob_{name}"].to_numpy(dtype=np.float64)
    out.attrs["class_names"] = names
    return out


def write_wsinfer_csv(
    tiles: pd.DataFrame, path: str | os.PathLike[str], *, class_names: Sequence[str] | None = None
) -> Path:
    """Write the tiles as a WSInfer model-output CSV (no index column), atomically.

    Returns
    -------
    Path
        The CSV written.
    """
    frame = tiles_to_wsinfer_frame(tiles, class_names=class_names)
    return atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False))


def read_wsinfer_csv(
    path: str | os.PathLike[str], *, class_names: Sequence[str] | None = None
) -> pd.DataFrame:
    """Read a WSInfer model-output CSV as a napari-xai tiles table.

    Geometry becomes level-0 ``row``/``col``/``height``/``width``; the grid
    index comes from the tile step (the greatest common divisor of the
    offsets, WSInfer's patches do not overlap); ``pred_class``,
    ``pred_index``, ``confidence`` and ``entropy`` are derived from the
    probabilities. One-class (sigmoid) models: ``pred_index`` is 0 where
    the probability is at least 0.5, else -1 with ``pred_class`` "".
    ``tissue_fraction`` is NaN (WSInfer does not record it).

    Parameters
    ----------
    path : path-like
        The CSV.
    class_names : sequence of str, optional
        Class order; default the order of the ``prob_`` columns.

    Returns
    -------
    DataFrame
        The tiles table, with ``attrs`` ``class_names``, ``tile_size0``,
        ``stride0`` and ``grid_shape``.
    """
    import pandas as pd

    path = Path(path)
    try:
        df = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not a readable CSV ({exc})") from None
    missing = [c for c in WSINFER_CSV_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"{path}: not a WSInfer CSV, missing columns {missing}")
    try:
        names = class_names_of(df, class_names)
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    rows = df["miny"].to_numpy(dtype=np.int64)
    cols = df["minx"].to_numpy(dtype=np.int64)
    heights = df["height"].to_numpy(dtype=np.int64)
    widths = df["width"].to_numpy(dtype=np.int64)
    probs = df[[f"prob_{n}" for n in names]].to_numpy(dtype=np.float32)

    def _step(offsets: np.ndarray, fallback: int) -> int:
        positive = np.unique(offsets[offsets > 0])
        return int(np.gcd.reduce(positive)) if positive.size else int(fallback)

    size0 = int(np.median(heights)) if len(df) else 0
    stride_r = _step(rows - rows.min(), size0) if len(df) else 0
    stride_c = _step(cols - cols.min(), int(np.median(widths))) if len(df) else 0
    grid_row = (rows - rows.min()) // max(stride_r, 1) if len(df) else rows
    grid_col = (cols - cols.min()) // max(stride_c, 1) if len(df) else cols

    if probs.shape[1] == 1:
        p = probs[:, 0]
        pred_index = np.where(p >= 0.5, 0, -1)
        pred_class = np.where(p >= 0.5, names[0], "")
        confidence = np.maximum(p, 1 - p)
        two = np.stack([p, 1 - p], axis=1)
    else:
        pred_index = probs.argmax(axis=1) if len(df) else np.zeros(0, dtype=np.int64)
        pred_class = np.asarray(names, dtype=object)[pred_index]
        confidence = probs.max(axis=1) if len(df) else np.zeros(0, dtype=np.float32)
        two = probs
    with np.errstate(divide="ignore", invalid="ignore"):
        entropy = -np.nansum(np.where(two > 0, two * np.log(two), 0.0), axis=1)

    out = pd.DataFrame(
        {
            "row": rows,
            "col": cols,
            "height": heights,
            "width": widths,
            "grid_row": grid_row.astype(np.int64),
            "grid_col": grid_col.astype(np.int64),
            "tissue_fraction": np.full(len(df), np.nan),
        }
    )
    for i, name in enumerate(names):
        out[f"prob_{name}"] = probs[:, i]
    out["pred_class"] = pd.Series(pred_class, dtype=object).astype(str)
    out["pred_index"] = np.asarray(pred_index, dtype=np.int64)
    out["confidence"] = np.asarray(confidence, dtype=np.float32)
    out["entropy"] = np.asarray(entropy, dtype=np.float32)
    out["flags"] = ""
    out.attrs.update(
        class_names=list(names),
        tile_size0=size0,
        stride0=stride_r,
        grid_shape=(int(grid_row.max()) + 1, int(grid_col.max()) + 1) if len(df) else (0, 0),
    )
    return out


def _class_color(name: str, index: int) -> list[int]:
    """QuPath's [r, g, b] of a class: the palette colour of :mod:`napari_xai.core.naming`."""
    return list(rgb255(class_colour(name, index)))


def _finite(value: Any) -> float | None:
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def tiles_to_qupath_geojson(
    tiles: pd.DataFrame,
    *,
    class_names: Sequence[str] | None = None,
    object_type: str = "tile",
    classify: bool = True,
    extra_measurements: Iterable[str] = DEFAULT_EXTRA_MEASUREMENTS,
    colors: Mapping[str, Sequence[int]] | None = None,
    locked: bool = True,
) -> dict[str, Any]:
    """Convert a tiles table to a QuPath-readable GeoJSON FeatureCollection.

    Parameters
    ----------
    tiles : DataFrame
        Tiles table (level-0 ``row``, ``col``, ``height``, ``width``,
        ``prob_<class>``; optionally ``pred_class`` and measurements).
    class_names : sequence of str, optional
        Classes; default from ``tiles.attrs`` or the columns.
    object_type : {"tile", "detection", "annotation"}
        QuPath object type (``"tile"`` as WSInfer writes).
    classify : bool
        Add ``classification`` with the predicted class (``pred_class``
        column, else the arg-max class).
    extra_measurements : iterable of str
        Further numeric columns to copy into ``measurements`` where present;
        NaN values are left out (JSON has no NaN).
    colors : mapping of class name to (r, g, b), optional
        Classification colours; default the class palette
        (:func:`napari_xai.core.naming.class_colour`).
    locked : bool
        ``isLocked`` as WSInfer writes it, so a click does not move a tile.

    Returns
    -------
    dict
        ``{"type": "FeatureCollection", "features": [...]}``; feature ids are
        UUIDs derived from the tile geometry (stable across runs).
    """
    if object_type not in QUPATH_OBJECT_TYPES:
        raise ValueError(f"object_type must be one of {QUPATH_OBJECT_TYPES}, got {object_type!r}")
    _check_geometry(tiles)
    names = class_names_of(tiles, class_names)
    palette = {n: _class_color(n, i) for i, n in enumerate(names)}
    if colors:
        palette.update({str(k): [int(c) for c in v][:3] for k, v in colors.items()})
    prob_cols = [f"prob_{n}" for n in names]
    extras = [c for c in extra_measurements if c in tiles.columns and c not in prob_cols]

    x0 = tiles["col"].to_numpy(dtype=np.int64)
    y0 = tiles["row"].to_numpy(dtype=np.int64)
    w = tiles["width"].to_numpy(dtype=np.int64)
    h = tiles["height"].to_numpy(dtype=np.int64)
    values = tiles[prob_cols + extras].to_numpy(dtype=np.float64)
    keys = prob_cols + extras
    if "pred_class" in tiles.columns:
        preds = tiles["pred_class"].astype(str).to_numpy()
    elif len(names) == 1:
        preds = np.where(values[:, 0] >= 0.5, names[0], "")
    else:
        preds = np.asarray(names, dtype=object)[np.argmax(values[:, : len(names)], axis=1)]

    features: list[dict[str, Any]] = []
    for i in range(len(tiles)):
        minx, miny, maxx, maxy = int(x0[i]), int(y0[i]), int(x0[i] + w[i]), int(y0[i] + h[i])
        measurements = {}
        for k, v in zip(keys, values[i], strict=True):
            f = _finite(v)
            if f is not None:
                measurements[k] = f
        properties: dict[str, Any] = {"objectType": object_type}
        if locked:
            properties["isLocked"] = True
        if classify and preds[i] and preds[i] != "nan":
            cls = str(preds[i])
            properties["classification"] = {
                "name": cls,
                "color": palette.get(cls, _class_color(str(cls), len(palette))),
            }
        properties["measurements"] = measurements
        features.append(
            {
                "type": "Feature",
                "id": str(uuid.uuid5(_ID_NAMESPACE, f"{minx},{miny},{maxx - minx},{maxy - miny}")),
                "geometry": {
                    "type": "Polygon",
                    # Closed ring, same vertex order as WSInfer's togeojson.
                    "coordinates": [
                        [[maxx, miny], [maxx, maxy], [minx, maxy], [minx, miny], [maxx, miny]]
                    ],
                },
                "properties": properties,
            }
        )
    return {"type": "FeatureCollection", "features": features}


def write_qupath_geojson(tiles: pd.DataFrame, path: str | os.PathLike[str], **kwargs: Any) -> Path:
    """Write :func:`tiles_to_qupath_geojson` to ``path`` (strict JSON, no NaN), atomically.

    Returns
    -------
    Path
        The file written.
    """
    data = tiles_to_qupath_geojson(tiles, **kwargs)
    return atomic_write_text(path, json.dumps(data, allow_nan=False))


def export_wsinfer_results(
    tiles: pd.DataFrame,
    results_dir: str | os.PathLike[str],
    slide_name: str,
    *,
    class_names: Sequence[str] | None = None,
    geojson: bool = True,
    **geojson_kwargs: Any,
) -> dict[str, Path]:
    """Write one slide's tiles in WSInfer's results layout.

    ``<results_dir>/model-outputs-csv/<slide_name>.csv`` and (``geojson``)
    ``<results_dir>/model-outputs-geojson/<slide_name>.json``, the folders
    ``wsinfer run`` and ``wsinfer togeojson`` produce.

    Returns
    -------
    dict
        ``{"csv": path, "geojson": path}`` of what was written.
    """
    results_dir = Path(results_dir)
    written = {
        "csv": write_wsinfer_csv(
            tiles, results_dir / "model-outputs-csv" / f"{slide_name}.csv", class_names=class_names
        )
    }
    if geojson:
        written["geojson"] = write_qupath_geojson(
            tiles,
            results_dir / "model-outputs-geojson" / f"{slide_name}.json",
            class_names=class_names,
            **geojson_kwargs,
        )
    return written
