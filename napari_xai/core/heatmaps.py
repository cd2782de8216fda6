"""Per-tile predictions → tiles table and class-probability maps at grid resolution."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from napari_xai.core.tiling import TileGrid

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "TILE_COLUMNS",
    "empty_maps",
    "entropy",
    "tiles_table",
    "update_maps",
]

#: Fixed columns of the tiles table (``prob_<class>`` columns come after ``tissue_fraction``).
TILE_COLUMNS = (
    "row", "col", "height", "width", "grid_row", "grid_col", "tissue_fraction",
)  # fmt: skip


def entropy(probabilities: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Shannon entropy (nats) of each row of class probabilities ``(N, C)``."""
    p = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-12, 1.0)
    ent: npt.NDArray[np.float32] = (-(p * np.log(p)).sum(axis=1)).astype(np.float32)
    return ent


def empty_maps(grid: TileGrid, n_classes: int) -> npt.NDArray[np.float32]:
    """Class maps ``(C, grid_rows, grid_cols)`` filled with NaN (not scored).

    :func:`update_maps` fills them batch by batch. Pixel ``(i, j)`` is the tile at
    grid position ``(i, j)``; :func:`napari_xai.core.layers.grid_to_world` places it.
    """
    return np.full((n_classes, *grid.grid_shape), np.nan, dtype=np.float32)


def update_maps(
    maps: npt.NDArray[np.float32],
    grid: TileGrid,
    indices: npt.ArrayLike,
    probabilities: npt.ArrayLike,
) -> None:
    """Write one batch of probabilities ``(B, C)`` into ``maps`` in place."""
    idx = np.asarray(indices, dtype=np.int64)
    probs = np.asarray(probabilities, dtype=np.float32)
    maps[:, grid.grid_rows[idx], grid.grid_cols[idx]] = probs.T


def tiles_table(
    grid: TileGrid,
    probabilities: npt.ArrayLike,
    class_names: Sequence[str],
    *,
    indices: npt.ArrayLike | None = None,
    artefact_threshold: float = 0.25,
) -> pd.DataFrame:
    """One row per scored tile (the project's tiles-table contract).

    Parameters
    ----------
    grid : TileGrid
        Grid the tiles come from.
    probabilities : array-like of shape (N, C)
        Class probabilities per scored tile.
    class_names : sequence of str
        Names of the ``C`` classes.
    indices : array-like of shape (N,), optional
        Grid positions of the rows (``0..N-1`` by default).
    artefact_threshold : float
        Tiles whose artefact fraction reaches this get the flag ``"artefact"``.

    Returns
    -------
    pandas.DataFrame
        Columns ``row, col, height, width, grid_row, grid_col, tissue_fraction,
        prob_<class>..., pred_class, pred_index, confidence, entropy, flags``;
        ``attrs`` hold ``class_names``, ``tile_size0``, ``stride0``, ``grid_shape``.
        Flags are ``;``-joined: ``edge`` (tile runs past the slide), ``artefact``.
    """
    import pandas as pd

    probs = np.asarray(probabilities, dtype=np.float32).reshape(-1, len(class_names))
    idx = np.arange(probs.shape[0]) if indices is None else np.asarray(indices, dtype=np.int64)
    n = probs.shape[0]
    data: dict[str, object] = {
        "row": grid.rows[idx].astype(np.int64),
        "col": grid.cols[idx].astype(np.int64),
        "height": np.full(n, grid.tile_size0, np.int64),
        "width": np.full(n, grid.tile_size0, np.int64),
        "grid_row": grid.grid_rows[idx].astype(np.int64),
        "grid_col": grid.grid_cols[idx].astype(np.int64),
        "tissue_fraction": grid.tissue_fraction[idx].astype(np.float32),
    }
    for k, name in enumerate(class_names):
        data[f"prob_{name}"] = probs[:, k]
    pred = probs.argmax(axis=1) if n else np.zeros(0, np.int64)
    names = np.asarray(list(class_names), dtype=object)
    data["pred_class"] = names[pred] if n else np.zeros(0, dtype=object)
    data["pred_index"] = pred.astype(np.int64)
    data["confidence"] = probs.max(axis=1) if n else np.zeros(0, np.float32)
    data["entropy"] = entropy(probs) if n else np.zeros(0, np.float32)
    edge = grid.is_edge[idx]
    art = (
        grid.artefact_fraction[idx] >= artefact_threshold
        if grid.artefact_fraction is not None
        else np.zeros(n, bool)
    )
    flags = np.full(n, "", dtype=object)
    flags[edge & ~art] = "edge"
    flags[art & ~edge] = "artefact"
    flags[art & edge] = "edge;artefact"
    data["flags"] = flags
    df = pd.DataFrame(data)
    df["pred_class"] = df["pred_class"].astype(str)
    df["flags"] = df["flags"].astype(str)
    df.attrs.update(
        {
            "class_names": list(class_names),
            "tile_size0": int(grid.tile_size0),
            "stride0": int(grid.stride0),
            "grid_shape": [int(grid.grid_shape[0]), int(grid.grid_shape[1])],
        }
    )
    return df
