"""Annotations ⇄ label images: paint polygons into a mask, outline a mask's labels.

Label images are at a downsample ``d`` of level 0 (mask pixel ``(i, j)`` covers
level-0 pixels ``[i*d, (i+1)*d)``); geometries are level-0 GeoJSON (x, y). A label
image goes into napari with :func:`napari_xai.core.layers.coords.mask_to_world`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from napari_xai.core.annotations.geojson import Annotation

__all__ = ["labels_to_annotations", "rasterize_annotations"]


def rasterize_annotations(
    annotations: Iterable[Annotation],
    *,
    shape_rc: tuple[int, int],
    downsample: float = 1.0,
    values: Mapping[str | None, int] | None = None,
    instances: bool = False,
) -> npt.NDArray[np.int32]:
    """Paint annotations into a label image at a downsample of level 0.

    A mask pixel is painted when its centre lies inside the polygon (holes
    excluded); later annotations paint over earlier ones, like QuPath's
    labelled-image export.

    Parameters
    ----------
    annotations : iterable of Annotation
        Level-0 (x, y) geometries.
    shape_rc : (int, int)
        Level-0 slide size (rows, cols).
    downsample : float
        Mask pixel size in level-0 pixels; the mask has ``ceil(shape / d)`` pixels
        and goes into napari with ``scale=(d, d)``, ``translate=((d-1)/2, (d-1)/2)``.
    values : mapping of class name to int, optional
        Label value per class (semantic labels). Defaults to 1, 2, ... in order of
        first appearance; classes not in `values` are not painted.
    instances : bool
        Paint object i with value i + 1 instead (one label per object).

    Returns
    -------
    ndarray of shape (ceil(rows / d), ceil(cols / d)), int32
    """
    from skimage.draw import polygon as draw_polygon

    d = float(downsample)
    out_shape = (int(math.ceil(shape_rc[0] / d)), int(math.ceil(shape_rc[1] / d)))
    labels = np.zeros(out_shape, dtype=np.int32)
    table: dict[str | None, int] = dict(values) if values is not None else {}
    auto = values is None
    for i, a in enumerate(annotations):
        if instances:
            value = i + 1
        else:
            if a.class_name not in table:
                if not auto:
                    continue
                table[a.class_name] = len(table) + 1
            value = table[a.class_name]
        for part in getattr(a.geometry, "geoms", [a.geometry]):
            if not isinstance(part, Polygon):
                continue
            # Mask pixel i has its centre at level-0 (i + 0.5) * d in GeoJSON coordinates.
            ext = np.asarray(part.exterior.coords, dtype=np.float64)[:, :2] / d - 0.5
            r0 = max(int(math.floor(ext[:, 1].min())), 0)
            c0 = max(int(math.floor(ext[:, 0].min())), 0)
            r1 = min(int(math.ceil(ext[:, 1].max())) + 1, out_shape[0])
            c1 = min(int(math.ceil(ext[:, 0].max())) + 1, out_shape[1])
            if r1 <= r0 or c1 <= c0:
                continue
            region = np.zeros((r1 - r0, c1 - c0), dtype=bool)
            for ring, fill in [(ext, True)] + [
                (np.asarray(h.coords, dtype=np.float64)[:, :2] / d - 0.5, False)
                for h in part.interiors
            ]:
                rr, cc = draw_polygon(ring[:, 1] - r0, ring[:, 0] - c0, shape=region.shape)
                region[rr, cc] = fill
            labels[r0:r1, c0:c1][region] = value
    return labels


def labels_to_annotations(
    labels: npt.NDArray[np.integer],
    *,
    downsample: float = 1.0,
    class_names: Mapping[int, str] | None = None,
    instances: bool = False,
    object_type: str = "annotation",
    simplify: float = 0.0,
) -> list[Annotation]:
    """Polygons (with holes) tracing a label image, one annotation per value or object.

    Parameters
    ----------
    labels : ndarray of shape (rows, cols), int
        0 is background.
    downsample : float
        Mask pixel size in level-0 pixels.
    class_names : mapping of int to str, optional
        Class name per label value (semantic labels); missing: ``"Label <v>"``.
    instances : bool
        Each label value is one object; its class comes from `class_names`
        when given.
    object_type : str
        QuPath object type of the results.
    simplify : float
        Douglas-Peucker tolerance in mask pixels (0: keep every vertex).

    Returns
    -------
    list of Annotation
        Level-0 (x, y) geometries that follow pixel edges (area = pixel count × d²).
    """
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be 2-D (rows, cols), got shape {labels.shape}")
    d = float(downsample)
    out: list[Annotation] = []
    for value in np.unique(labels):
        if value == 0:
            continue
        geom = _mask_to_geometry(labels == value)
        if geom is None:
            continue
        if simplify > 0:
            geom = geom.simplify(simplify, preserve_topology=True)
        geom = _scale(geom, d)
        name = class_names.get(int(value)) if class_names else None
        if name is None and not instances:
            name = f"Label {int(value)}"
        out.append(
            Annotation(
                geometry=geom,
                class_name=name,
                object_type=object_type,
                name=f"label {int(value)}" if instances else None,
            )
        )
    return out


def _scale(geom: BaseGeometry, d: float) -> BaseGeometry:
    if d == 1.0:
        return geom
    return shapely.transform(geom, lambda c: c * d)


def _mask_to_geometry(mask: npt.NDArray[np.bool_]) -> BaseGeometry | None:
    """Exact pixel-edge outline of a boolean mask as a (Multi)Polygon in mask pixels."""
    if not mask.any():
        return None
    # One box per horizontal run of pixels, then their union.
    padded = np.zeros((mask.shape[0], mask.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    diff = np.diff(padded, axis=1)
    starts_r, starts_c = np.nonzero(diff == 1)
    ends_r, ends_c = np.nonzero(diff == -1)
    boxes = shapely.box(starts_c, starts_r, ends_c, ends_r + 1)
    merged = shapely.union_all(boxes)
    merged = shapely.simplify(merged, 0)  # drop collinear vertices
    if isinstance(merged, (Polygon, MultiPolygon)):
        return merged
    polys = [g for g in shapely.get_parts(merged) if isinstance(g, Polygon)]
    return MultiPolygon(polys) if polys else None
