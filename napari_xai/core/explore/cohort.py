"""The tiles and features of many result folders as one table.

:func:`load_cohort` reads result folders scored with features (or batch
output folders holding them) and returns one :class:`Cohort`: a tiles table
with ``slide_id``, ``result_folder`` and ``tile`` (the row in that slide's
``tiles.parquet``) in front, the slide's ``label`` and metadata columns when
known, and the features stacked in the same row order.

Labels come from a batch run's ``cohort_summary.csv`` beside the folders (its
``label`` column: the slide's label; in a tile cohort, where every "slide" is
one tile, the tile's), metadata from a table given by the caller (a
``slide_id`` or ``slide_path`` column, one row per slide).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Cohort", "load_cohort", "result_folders", "tile_thumbnails"]


@dataclass
class Cohort:
    """Tiles of many slides with their features.

    Attributes
    ----------
    tiles : pandas.DataFrame
        One row per tile: ``slide_id``, ``result_folder``, ``tile``, then the
        tiles-table columns, ``label`` and metadata when known.
    features : ndarray of shape (N, D), float16
        Row ``i`` belongs to ``tiles.iloc[i]``.
    class_names : tuple of str
        The model's classes (the same model scored every slide).
    layer : str
        Layer the features come from.
    """

    tiles: pd.DataFrame
    features: npt.NDArray[Any]
    class_names: tuple[str, ...]
    layer: str

    def __len__(self) -> int:
        return len(self.tiles)


def result_folders(paths: Iterable[str | os.PathLike[str]]) -> list[Path]:
    """Expand paths into result folders (a batch output folder gives all of its slides)."""
    from napari_xai.core.results import MANIFEST_NAME, iter_result_folders

    out: list[Path] = []
    for p in map(Path, paths):
        if (p / MANIFEST_NAME).is_file():
            out.append(p)
        elif p.is_dir():
            found = list(iter_result_folders(p))
            if not found:
                raise ValueError(f"{p}: neither a result folder nor a folder of result folders")
            out.extend(found)
        else:
            raise FileNotFoundError(f"{p}: no such result folder")
    return list(dict.fromkeys(out))


def _labels_beside(folder: Path) -> dict[str, Any]:
    import pandas as pd

    csv = folder.parent / "cohort_summary.csv"
    if not csv.is_file():
        return {}
    table = pd.read_csv(csv)
    if "slide_id" not in table or "label" not in table:
        return {}
    return {
        str(k): v
        for k, v in zip(table["slide_id"], table["label"], strict=True)
        if isinstance(v, str) or not pd.isna(v)
    }


def load_cohort(
    paths: Iterable[str | os.PathLike[str]],
    *,
    metadata: pd.DataFrame | str | os.PathLike[str] | None = None,
    max_tiles_per_slide: int | None = None,
    seed: int = 0,
) -> Cohort:
    """Read the tiles and features of result folders into one :class:`Cohort`.

    Parameters
    ----------
    paths : iterable of path-like
        Result folders, or folders of result folders (batch output).
    metadata : DataFrame or path, optional
        One row per slide with ``slide_id`` (the result folder's name) or
        ``slide_path``; every other column is added to the slide's tiles.
    max_tiles_per_slide : int, optional
        Keep at most this many tiles per slide (a seeded sample).
    seed : int
        Seed of that sample.

    Raises
    ------
    ValueError
        When a folder has no features, the folders were scored by different
        models or layers, or the metadata table lacks an id column.
    """
    import pandas as pd

    from napari_xai.core.explore.features import read_features
    from napari_xai.core.results import load_result

    folders = result_folders(paths)
    if not folders:
        raise ValueError("no result folders given")
    meta: pd.DataFrame | None = None
    if metadata is not None:
        meta = metadata if isinstance(metadata, pd.DataFrame) else pd.read_csv(metadata)
        if "slide_id" not in meta and "slide_path" not in meta:
            raise ValueError("the metadata table needs a 'slide_id' or 'slide_path' column")
    rng = np.random.default_rng(seed)
    frames, feats = [], []
    names: tuple[str, ...] | None = None
    layer: str | None = None
    model: str | None = None
    for folder in folders:
        res = load_result(folder)
        info = res.manifest.get("features")
        if not info:
            raise ValueError(f"{folder}: scored without features (score it with --features)")
        sha = str(res.manifest.get("model", {}).get("sha256"))
        if model is not None and (sha != model or info.get("layer") != layer):
            raise ValueError(
                f"{folder}: scored by another model or layer than {folders[0]} "
                "(a cohort shares one feature space)"
            )
        model, layer, names = sha, str(info.get("layer")), tuple(res.class_names)
        tiles = res.tiles.reset_index(drop=True)
        rows = np.arange(len(tiles))
        if max_tiles_per_slide is not None and len(tiles) > max_tiles_per_slide:
            rows = np.sort(rng.choice(len(tiles), max_tiles_per_slide, replace=False))
        f = read_features(folder, rows=rows if len(rows) < len(tiles) else None)
        if f.shape[0] != len(rows):
            raise ValueError(
                f"{folder}: features.zarr has {f.shape[0]} rows for {len(rows)} tiles"
            )
        part = tiles.iloc[rows].copy()
        part.insert(0, "tile", rows)
        part.insert(0, "result_folder", str(folder))
        part.insert(0, "slide_id", folder.name)
        label = _labels_beside(folder).get(folder.name)
        if label is not None and "label" not in part:
            part["label"] = str(label)
        if meta is not None:
            key = "slide_id" if "slide_id" in meta else "slide_path"
            value = folder.name if key == "slide_id" else str(res.slide_path)
            hit = meta[meta[key].astype(str) == value]
            for col in meta.columns:
                if col not in ("slide_id", "slide_path") and len(hit):
                    part[col] = hit.iloc[0][col]
        frames.append(part)
        feats.append(f)
    table = pd.concat(frames, ignore_index=True, sort=False)
    table.attrs = {"class_names": list(names or ())}
    return Cohort(
        tiles=table,
        features=np.concatenate(feats).astype(np.float16, copy=False),
        class_names=names or (),
        layer=layer or "",
    )


def tile_thumbnails(tiles: pd.DataFrame, *, size: int = 64) -> list[npt.NDArray[np.uint8]]:
    """RGB thumbnails ``(size, size, 3)`` of cohort tiles, read from their slides.

    Parameters
    ----------
    tiles : pandas.DataFrame
        Rows of a :class:`Cohort` table (``result_folder``, ``row``, ``col``,
        ``height``, ``width``); each slide is opened once, from the path its
        manifest records, and read at the coarsest level that still has
        ``size`` pixels per tile.

    Raises
    ------
    FileNotFoundError
        When a slide has moved (the message names the result folder and slide).
    """
    from napari_xai.core.reader import resize_tile
    from napari_xai.core.results import load_result
    from napari_xai.core.wsi import open_slide

    out: list[npt.NDArray[np.uint8] | None] = [None] * len(tiles)
    pos = np.arange(len(tiles))
    for folder, idx in tiles.groupby("result_folder", sort=False).indices.items():
        path = load_result(folder).slide_path
        if path is None or not Path(path).is_file():
            raise FileNotFoundError(f"{folder}: its slide {path} is not there any more")
        with open_slide(path) as slide:
            downs = np.asarray(slide.info.level_downsamples, np.float64)
            for i in pos[idx]:
                t = tiles.iloc[int(i)]
                extent = float(max(t["height"], t["width"]))
                ok = np.flatnonzero(extent / downs >= size)
                level = int(ok[-1]) if len(ok) else 0
                shape = (
                    max(1, round(float(t["height"]) / downs[level])),
                    max(1, round(float(t["width"]) / downs[level])),
                )
                region = slide.read_region((int(t["row"]), int(t["col"])), shape, level=level)
                out[int(i)] = resize_tile(region, size)
    return [o for o in out if o is not None]
