"""What the explorer shows of a cohort's tiles: columns, histograms, slide masks.

Pure helpers behind the explore widget (and the HTML summary): which columns
can colour the scatter or filter the tiles, which flags the tiles carry, the
confidence histogram of each predicted class, the centres of tiles on their
slide and which tiles of a slide's tiles layer the filters keep.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "colour_columns",
    "confidence_histograms",
    "filter_columns",
    "flag_words",
    "layer_shown",
    "tile_centres",
]

#: Tile-table columns that make no sense as colours or filters.
INTERNAL = frozenset(
    {"row", "col", "height", "width", "grid_row", "grid_col", "tile", "result_folder", "x",
     "y", "flags", "pred_index", "entropy", "tissue_fraction"}
)  # fmt: skip
#: Columns with more distinct values than this are not offered as filters.
MAX_FILTER_VALUES = 50


def colour_columns(tiles: pd.DataFrame) -> list[str]:
    """Columns the scatter can be coloured by: prediction, cluster, slide, scores, metadata."""
    first = ["pred_class", "cluster", "confidence", "slide_id"]
    rest = [c for c in tiles.columns if c not in INTERNAL and not str(c).startswith("prob_")]
    return [c for c in dict.fromkeys(first + rest) if c in tiles]


def filter_columns(tiles: pd.DataFrame) -> list[str]:
    """Columns a value filter makes sense on: not numbers, at most 50 distinct values.

    ``pred_class`` and ``slide_id`` have their own filters and are left out.
    """
    out = []
    for c in colour_columns(tiles):
        if c in ("pred_class", "slide_id") or tiles[c].dtype.kind == "f":
            continue
        if tiles[c].astype(str).nunique() <= MAX_FILTER_VALUES:
            out.append(str(c))
    return out


def flag_words(tiles: pd.DataFrame) -> list[str]:
    """Return the flags the tiles carry (``flags`` is ``;``-separated words), sorted."""
    if "flags" not in tiles:
        return []
    words = {w for text in tiles["flags"].astype(str).unique() for w in text.split(";")}
    return sorted(w for w in words if w and w != "nan")


def confidence_histograms(
    tiles: pd.DataFrame, *, rows: npt.ArrayLike | None = None, bins: int = 20
) -> tuple[npt.NDArray[np.float64], dict[str, npt.NDArray[np.int64]]]:
    """Histogram of the confidence of each predicted class over ``[0, 1]``.

    Parameters
    ----------
    tiles : pandas.DataFrame
        Tiles with ``pred_class`` and ``confidence``.
    rows : array_like of int, optional
        Only these positional rows (e.g. the filtered ones).
    bins : int
        Equal bins over ``[0, 1]``.

    Returns
    -------
    (ndarray, dict)
        The ``bins + 1`` edges, and class → counts (every class of ``tiles``,
        so a class filtered away shows zeros).
    """
    import pandas as pd

    edges = np.linspace(0.0, 1.0, bins + 1)
    codes, names = pd.factorize(tiles["pred_class"], sort=False)
    conf = tiles["confidence"].to_numpy(np.float64)
    if rows is not None:
        idx = np.asarray(rows, np.int64)
        codes, conf = codes[idx], conf[idx]
    # np.histogram's bins: [e_i, e_i+1), the last one closed; values outside [0, 1] left out
    inside = (conf >= 0.0) & (conf <= 1.0) & (codes >= 0)
    b = np.clip(np.searchsorted(edges, conf[inside], side="right") - 1, 0, bins - 1)
    table = np.bincount(codes[inside] * bins + b, minlength=len(names) * bins)
    table = table.reshape(len(names), bins).astype(np.int64)
    by_name = {str(n): table[k] for k, n in enumerate(names)}
    return edges, {c: by_name[c] for c in sorted(by_name)}


def tile_centres(tiles: pd.DataFrame) -> npt.NDArray[np.float64]:
    """Level-0 ``(row, col)`` pixel centres of the tiles, ``(N, 2)``."""
    h = tiles["height"].to_numpy(np.float64)
    w = tiles["width"].to_numpy(np.float64) if "width" in tiles else h
    centres = np.stack(
        [tiles["row"].to_numpy(np.float64) + (h - 1) / 2,
         tiles["col"].to_numpy(np.float64) + (w - 1) / 2], axis=1
    )  # fmt: skip
    return centres.reshape(-1, 2)


def layer_shown(
    tiles: pd.DataFrame, keep: npt.NDArray[np.bool_], slide_id: str, n_layer: int
) -> npt.NDArray[np.bool_]:
    """Which points of a slide's tiles layer (``n_layer`` tiles) the filters keep.

    Parameters
    ----------
    tiles : pandas.DataFrame
        Cohort tiles (``slide_id``, ``tile``: the row in that slide's tiles table).
    keep : ndarray of bool
        The filter's mask over ``tiles``.
    slide_id : str
        The slide.
    n_layer : int
        Points in its tiles layer (tiles left out of the cohort are hidden).
    """
    mine = (tiles["slide_id"].astype(str) == slide_id).to_numpy()
    shown = np.zeros(n_layer, bool)
    shown[tiles.loc[mine, "tile"].to_numpy(np.int64)] = np.asarray(keep, bool)[mine]
    return shown
