"""The annotation widget's actions, one pure function each, over a layer's snapshot.

The Annotate widget copies what it needs off a napari layer on the GUI thread
(:class:`ShapesSnapshot`: vertices, shape types, features, colours) and runs one
of these functions in a worker: measuring morphology, painting a mask, tracing a
mask back into polygons, saving GeoJSON. Each returns what the widget shows
(a features table, LayerData tuples) and never touches napari.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd  # noqa: TID253 - only imported when work runs

from napari_xai.core.annotations.classes import class_color_map, class_names
from napari_xai.core.annotations.geojson import Annotation, AnnotationSet
from napari_xai.core.annotations.morphology import MORPHOLOGY_COLUMNS

__all__ = [
    "MAX_MASK_SIDE",
    "ShapesSnapshot",
    "empty_mask",
    "load_geojson",
    "mask_layer_data",
    "measure_mask",
    "measure_shapes",
    "merge_features",
    "new_shapes_layer",
    "save_shapes",
    "shapes_to_mask",
    "trace_mask",
]

LayerDataTuple = tuple[Any, dict[str, Any], str]
#: Longest side (mask pixels) of a new mask to paint: a larger slide gets a coarser one.
MAX_MASK_SIDE = 16384


@dataclass(frozen=True, eq=False)
class ShapesSnapshot:
    """What the actions need of a napari Shapes layer, copied on the GUI thread.

    Attributes
    ----------
    data : tuple of arrays of shape (N, 2)
        Vertices in napari (row, col) level-0 coordinates.
    shape_types : tuple of str
        napari shape types, one per shape.
    features : DataFrame, optional
        The layer's features table (a copy).
    face_colors : ndarray of shape (N, 4), optional
        Face colours (used as class colour when the features carry none).
    default_class : str, optional
        Class of shapes without one.
    mpp : float, optional
        Level-0 µm per pixel.
    """

    data: tuple[npt.NDArray[Any], ...]
    shape_types: tuple[str, ...]
    features: pd.DataFrame | None = None
    face_colors: npt.NDArray[Any] | None = None
    default_class: str | None = None
    mpp: float | None = None

    @classmethod
    def of(
        cls, layer: Any, *, default_class: str | None = None, mpp: float | None = None
    ) -> ShapesSnapshot:
        """Copy a Shapes layer's vertices, types, features and face colours."""
        return cls(
            data=tuple(np.array(d, dtype=np.float64) for d in layer.data),
            shape_types=tuple(layer.shape_type),
            features=layer.features.copy(),
            face_colors=np.array(layer.face_color),
            default_class=default_class,
            mpp=layer.metadata.get("mpp") or mpp,
        )

    def annotations(self, *, morphology: bool = False) -> list[Annotation]:
        """Return the shapes as annotations (lines and paths, which have no area, are skipped)."""
        from napari_xai.core.layers.annotations import shapes_to_annotations

        annotations, _ = shapes_to_annotations(
            self.data,
            shape_types=self.shape_types,
            features=self.features,
            face_colors=self.face_colors,
            default_class=self.default_class,
            morphology=morphology,
        )
        return annotations


def measure_shapes(snapshot: ShapesSnapshot) -> pd.DataFrame | None:
    """Measure the shapes: their features table, ``None`` when one has no area (a line)."""
    from napari_xai.core.layers.annotations import annotations_features

    annotations = snapshot.annotations()
    if len(annotations) != len(snapshot.data):
        return None
    return annotations_features(annotations, mpp=snapshot.mpp)


def merge_features(current: pd.DataFrame, measured: pd.DataFrame) -> pd.DataFrame:
    """Return ``current`` with ``measured``'s morphology and any column it lacks.

    The user's own edits made meanwhile (a class set on a selected shape) are kept.
    """
    if len(current) != len(measured):
        raise ValueError(f"{len(measured)} measured rows for {len(current)} shapes")
    out = current.copy() if len(current.columns) else pd.DataFrame(index=measured.index)
    for column in measured.columns:
        if column in MORPHOLOGY_COLUMNS or column not in out.columns:
            out[column] = measured[column].to_numpy()
    return out


def new_shapes_layer(
    class_name: str,
    rgb: tuple[int, int, int],
    *,
    name: str,
    shape_rc: tuple[int, int] | None = None,
    mpp: float | None = None,
) -> LayerDataTuple:
    """Build an empty annotation Shapes layer whose new shapes get ``class_name``.

    Parameters
    ----------
    class_name : str
        Class of the shapes drawn next.
    rgb : (int, int, int)
        Its colour, 0-255.
    name : str
        Layer name.
    shape_rc : (int, int), optional
        Level-0 size of the slide (sets the outline width).
    mpp : float, optional
        Level-0 µm per pixel (kept in the metadata for the µm columns).
    """
    features = pd.DataFrame(
        {
            "class": pd.Categorical([], categories=class_names()),
            "color": pd.Series([], dtype=object),
            "object_type": pd.Series([], dtype=object),
            "name": pd.Series([], dtype=object),
            "object_id": pd.Series([], dtype=object),
            **{c: pd.Series([], dtype=np.float64) for c in MORPHOLOGY_COLUMNS},
            "qupath_properties": pd.Series([], dtype=object),
        }
    )
    defaults: dict[str, Any] = {
        "class": class_name,
        "color": "#{:02x}{:02x}{:02x}".format(*rgb),
        "object_type": "annotation",
        "name": "",
        "object_id": "",
        "qupath_properties": "",
        **{c: np.nan for c in MORPHOLOGY_COLUMNS},
    }
    kwargs = {"name": name, "ndim": 2, "features": features, "feature_defaults": defaults,
              "edge_width": max(1.0, max(shape_rc or (1000, 1000)) / 800),
              "metadata": {"mpp": mpp}}  # fmt: skip
    return ([], kwargs, "shapes")


def mask_layer_data(
    mask: npt.NDArray[np.integer],
    names: Sequence[str | None],
    *,
    downsample: float,
    name: str,
    mpp: float | None = None,
) -> LayerDataTuple:
    """Build the Labels layer of a class mask: value ``i + 1`` is ``names[i]``, in its colour.

    Placed at ``downsample`` of level 0 (scale ``d``, translate ``(d - 1) / 2``).
    """
    d = float(downsample)
    colours = class_color_map(names)
    colormap: dict[int | None, Any] = {
        i + 1: [c / 255 for c in colours[n]] + [1.0] for i, n in enumerate(names)
    }
    colormap[0] = colormap[None] = [0.0, 0.0, 0.0, 0.0]
    kwargs = {
        "name": name,
        "scale": (d, d),
        "translate": ((d - 1) / 2, (d - 1) / 2),
        "metadata": {"classes": {i + 1: n for i, n in enumerate(names)}, "downsample": d,
                     "mpp": mpp},
        "colormap": colormap,
        "opacity": 0.5,
    }  # fmt: skip
    return (mask, kwargs, "labels")


def empty_mask(
    shape_rc: tuple[int, int], *, downsample: float, name: str, mpp: float | None = None
) -> LayerDataTuple:
    """Build an empty class mask to paint on, at most :data:`MAX_MASK_SIDE` pixels a side."""
    d = max(float(downsample), math.ceil(max(shape_rc) / MAX_MASK_SIDE))
    mask = np.zeros((math.ceil(shape_rc[0] / d), math.ceil(shape_rc[1] / d)), dtype=np.uint8)
    return mask_layer_data(mask, [*class_names(), None], downsample=d, name=name, mpp=mpp)


def shapes_to_mask(
    snapshot: ShapesSnapshot, *, shape_rc: tuple[int, int], downsample: float, name: str
) -> LayerDataTuple:
    """Paint the shapes into a class mask (value = class, QuPath order; unclassified last)."""
    from napari_xai.core.annotations.raster import rasterize_annotations

    annotations = snapshot.annotations()
    names: list[str | None] = list(class_names())
    names += sorted({a.class_name for a in annotations if a.class_name is not None} - set(names))
    names.append(None)  # unclassified
    values = {n: i + 1 for i, n in enumerate(names)}
    mask = rasterize_annotations(
        annotations, shape_rc=shape_rc, downsample=downsample, values=values
    )
    return mask_layer_data(mask, names, downsample=downsample, name=name, mpp=snapshot.mpp)


def trace_mask(
    mask: npt.NDArray[np.integer],
    *,
    downsample: float,
    translate: Sequence[float],
    classes: Mapping[Any, str | None] | None,
    name: str,
    mpp: float | None = None,
) -> list[LayerDataTuple]:
    """Trace a class mask into polygons (holes kept): the Shapes layer, empty if none.

    Parameters
    ----------
    mask : ndarray of shape (rows, cols)
        Class values (0 background).
    downsample : float
        Mask pixel size in level-0 pixels.
    translate : (float, float)
        The Labels layer's translate; an offset from ``(d - 1) / 2`` moves the polygons.
    classes : mapping of int to str, optional
        Value → class name (the default classes, in QuPath's order, when ``None``).
    """
    import shapely

    from napari_xai.core.annotations.raster import labels_to_annotations
    from napari_xai.core.layers.annotations import annotations_to_layer_data

    d = float(downsample)
    table = classes or {i + 1: n for i, n in enumerate(class_names())}
    names = {int(k): v for k, v in table.items() if v is not None}
    annotations = labels_to_annotations(np.asarray(mask), downsample=d, class_names=names)
    offset = np.asarray(translate, dtype=float)[-2:] - (d - 1) / 2
    if np.abs(offset).max() > 0:
        annotations = [
            Annotation(
                shapely.transform(a.geometry, lambda c: c + [offset[1], offset[0]]), a.class_name
            )
            for a in annotations
        ]
    return annotations_to_layer_data(annotations, name=name, mpp=mpp)


def measure_mask(
    mask: npt.NDArray[np.integer], *, downsample: float, mpp: float | None = None
) -> pd.DataFrame:
    """Morphology of each label of a mask, as a Labels layer's features (column ``index``)."""
    from napari_xai.core.annotations.morphology import measure_labels

    table = measure_labels(np.asarray(mask), mpp=mpp, downsample=float(downsample))
    return table.reset_index().rename(columns={"label": "index"})


def save_shapes(snapshot: ShapesSnapshot, path: Path) -> Path:
    """Write the shapes, with their morphology as QuPath measurements, as GeoJSON.

    A path without the ``.geojson`` suffix gets it. An unwritable path is an
    ``OSError`` naming it.
    """
    from napari_xai.core.annotations.geojson import write_geojson

    path = Path(path)
    if path.suffix.lower() != ".geojson":
        path = path.with_name(path.name + ".geojson")
    try:
        return Path(write_geojson(snapshot.annotations(morphology=True), path))
    except OSError as e:
        raise OSError(f"{path}: cannot write ({e})") from e


def load_geojson(
    path: Path, *, shape_rc: tuple[int, int] | None = None, mpp: float | None = None
) -> tuple[AnnotationSet, list[LayerDataTuple]]:
    """Read a GeoJSON file and build its layers (regions as Shapes, detections as Points)."""
    from napari_xai.core.annotations.geojson import read_geojson
    from napari_xai.core.layers.annotations import annotations_to_layer_data

    aset = read_geojson(path, shape_rc=shape_rc)
    return aset, annotations_to_layer_data(aset, name=Path(path).stem, mpp=mpp, source=str(path))
