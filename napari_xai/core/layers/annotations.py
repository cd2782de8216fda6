"""Annotations ⇄ napari layer data (Shapes, Points, Labels), without importing napari.

Coordinates: GeoJSON/QuPath (x, y, pixel corners) cross to napari (row, col,
pixel centres) only through :func:`~napari_xai.core.layers.coords.xy_to_rc` and
:func:`~napari_xai.core.layers.coords.rc_to_xy`, so an object written here opens at
the same place in QuPath and in napari.

Representation (see ``docs/annotations.md``): regions go to a Shapes layer,
one polygon per object (holes and multiple parts encoded the way napari's
triangulation understands: each extra ring joined to the first by a bridge
edge walked twice). napari's Shapes layer builds Python objects and a
triangulation per shape, about 0.6 ms per polygon (30 s for 50,000 nuclei, as
much again to add them to a viewer, slow redraws); groups larger than
``max_shapes`` therefore become a Points layer at the centroids (size =
equivalent diameter, colour = class) with the same features table, which
napari opens in milliseconds. For outlines at
full resolution, :func:`napari_xai.core.annotations.raster.rasterize_annotations`
paints a label image.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd  # noqa: TID253 - only imported when work runs
import shapely
from shapely.geometry import MultiPolygon, Polygon
from shapely.geometry.base import BaseGeometry

from napari_xai.core.annotations.classes import (
    DEFAULT_CLASSES,
    UNCLASSIFIED,
    AnnotationClass,
    fallback_color,
    find_class,
    rgba_to_color,
)
from napari_xai.core.annotations.geojson import (
    Annotation,
    AnnotationSet,
    ColumnarAnnotations,
    GeometryView,
    ReadReport,
    polygons_from_rings,
)
from napari_xai.core.annotations.morphology import (
    MORPHOLOGY_COLUMNS,
    QUPATH_MEASUREMENTS,
    measure_geometries,
    qupath_measurements,
)
from napari_xai.core.layers.coords import LayerDataTuple, rc_to_xy, xy_to_rc

__all__ = [
    "geojson_layers",
    "DETECTION_TYPES",
    "MAX_SHAPES",
    "MAX_VERTICES",
    "annotations_to_layer_data",
    "geometry_to_path_rc",
    "path_rc_to_geometry",
    "points_to_annotations",
    "shapes_to_annotations",
]

#: QuPath object types shown as detections (many small objects).
DETECTION_TYPES = frozenset({"detection", "cell", "tile"})
#: Above this many objects in one group, show centroids (Points) instead of Shapes.
MAX_SHAPES = 5000
#: Most vertices one shape gets in a Shapes layer: napari triangulates every
#: polygon when the layer is built, and a million-vertex outline hangs the viewer.
#: Bigger outlines are simplified (Douglas-Peucker, topology kept) to fit; the
#: morphology columns are measured on the exact geometry.
MAX_VERTICES = 10_000
#: Fill opacity of region polygons.
FACE_ALPHA = 0.35


# --------------------------------------------------------------------------- one polygon
def _rings(geom: BaseGeometry) -> list[npt.NDArray[np.float64]]:
    """Open rings (no repeated closing vertex) of a Polygon/MultiPolygon, in (x, y)."""
    rings: list[npt.NDArray[np.float64]] = []
    for part in getattr(geom, "geoms", [geom]):
        if not isinstance(part, Polygon) or part.is_empty:
            continue
        for ring in (part.exterior, *part.interiors):
            c = np.asarray(ring.coords, dtype=np.float64)[:, :2]
            if len(c) > 1 and np.array_equal(c[0], c[-1]):
                c = c[:-1]
            rings.append(c)
    return rings


def geometry_to_path_rc(geom: BaseGeometry) -> npt.NDArray[np.float64]:
    """One napari polygon path (row, col) for a Polygon/MultiPolygon with holes.

    napari drops edges walked twice before triangulating and fills by the
    even-odd rule, so every extra ring (hole or part) is appended after a bridge
    from the first vertex and closed back to it::

        R1 ... R1[0], R2 ... R2[0], R1[0], R3 ... R3[0], R1[0]

    Parameters
    ----------
    geom : Polygon or MultiPolygon
        Level-0 (x, y) coordinates.

    Returns
    -------
    ndarray of shape (N, 2)
        Vertices in napari (row, col).
    """
    rings = _rings(geom)
    if not rings:
        raise ValueError("empty geometry")
    first = rings[0]
    if len(rings) == 1:
        return xy_to_rc(first)
    pieces = [first, first[:1]]
    for ring in rings[1:]:
        pieces += [ring, ring[:1], first[:1]]
    return xy_to_rc(np.concatenate(pieces))


def path_rc_to_geometry(vertices_rc: npt.ArrayLike) -> BaseGeometry | None:
    """Polygon/MultiPolygon (x, y) for a napari polygon path, filled as napari fills it.

    Inverse of :func:`geometry_to_path_rc`; also turns a user-drawn
    self-intersecting outline into its even-odd area (napari's rule).

    Parameters
    ----------
    vertices_rc : array-like of shape (N, 2)
        napari (row, col) vertices (first vertex not repeated, or repeated).

    Returns
    -------
    Polygon, MultiPolygon or None
        ``None`` when the path encloses no area.
    """
    xy = rc_to_xy(np.asarray(vertices_rc, dtype=np.float64)[:, -2:])
    if len(xy) < 3:
        return None
    simple = Polygon(xy)
    if simple.is_valid and len(np.unique(xy, axis=0)) == len(xy) - int(
        np.array_equal(xy[0], xy[-1])
    ):
        return simple if simple.area > 0 else None
    # Edges as napari sees them: consecutive vertices, closed, duplicates cancel.
    closed = np.vstack([xy, xy[:1]])
    keys: dict[tuple[tuple[float, float], tuple[float, float]], int] = {}
    for a, b in zip(map(tuple, closed[:-1]), map(tuple, closed[1:]), strict=True):
        if a == b:
            continue
        k = (a, b) if a < b else (b, a)
        keys[k] = keys.get(k, 0) + 1
    edges = [shapely.LineString(k) for k, count in keys.items() if count % 2 == 1]
    if not edges:
        return None
    noded = shapely.unary_union(edges)
    faces = list(shapely.get_parts(shapely.polygonize(list(shapely.get_parts(noded)))))
    if not faces:
        return None
    from skimage.measure import points_in_poly

    points = np.array([f.representative_point().coords[0] for f in faces])
    inside = points_in_poly(points, xy)
    kept = [f for f, keep in zip(faces, inside, strict=True) if keep]
    if not kept:
        return None
    merged = shapely.unary_union(kept)
    if isinstance(merged, (Polygon, MultiPolygon)) and merged.area > 0:
        return merged
    polys = [g for g in getattr(merged, "geoms", []) if isinstance(g, Polygon)]
    return MultiPolygon(polys) if polys else None


# --------------------------------------------------------------------------- to napari
def _hex(color: Sequence[int]) -> str:
    r, g, b = (int(c) for c in color[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


def _class_color(a: Annotation, classes: Sequence[AnnotationClass]) -> tuple[int, int, int]:
    return _rgb_of(a.class_name, a.color, classes)


def _rgb_of(
    class_name: str | None, color: tuple[int, int, int] | None, classes: Sequence[AnnotationClass]
) -> tuple[int, int, int]:
    if color is not None:
        return color
    cls = find_class(class_name, classes=classes)
    return cls.color if cls is not None else fallback_color(class_name)


def _hex_colors(
    annotations: Sequence[Annotation], classes: Sequence[AnnotationClass]
) -> list[str]:
    """``#rrggbb`` of each object, one shared string per colour (not one per object)."""
    hexes: dict[tuple[int, ...], str] = {}
    out = []
    for a in annotations:
        rgb = tuple(int(c) for c in _class_color(a, classes)[:3])
        text = hexes.get(rgb)
        if text is None:
            text = hexes[rgb] = _hex(rgb)
        out.append(text)
    return out


def annotations_features(
    annotations: Sequence[Annotation],
    *,
    mpp: float | None = None,
    classes: Sequence[AnnotationClass] = DEFAULT_CLASSES,
) -> pd.DataFrame:
    """Build the napari features table: class, colour, type, name, id, morphology, extras.

    Parameters
    ----------
    annotations : sequence of Annotation
        The objects, one row each.
    mpp : float, optional
        Level-0 µm per pixel for the µm columns.
    classes : sequence of AnnotationClass
        Class table for colours.

    Returns
    -------
    DataFrame
        Columns ``class``, ``color`` (``#rrggbb``), ``object_type``, ``name``,
        ``object_id``, the morphology columns, and ``qupath_properties`` (JSON of
        measurements and other properties, so that saving loses nothing).
    """
    if isinstance(annotations, ColumnarAnnotations):
        return _columnar_features(annotations, np.arange(len(annotations)), mpp, classes)
    morph = measure_geometries([a.geometry for a in annotations], mpp=mpp)
    extras = [
        json.dumps({"measurements": dict(a.measurements), "properties": dict(a.properties)})
        if (a.measurements or a.properties)
        else ""
        for a in annotations
    ]
    columns = {
        "class": pd.Categorical(
            [a.class_name if a.class_name is not None else UNCLASSIFIED for a in annotations]
        ),
        "color": _hex_colors(annotations, classes),
        "object_type": [a.object_type for a in annotations],
        "name": [a.name or "" for a in annotations],
        "object_id": [a.object_id or "" for a in annotations],
    }
    return _features_table(columns, morph, extras)


def _features_table(
    columns: dict[str, Any], morph: pd.DataFrame, extras: list[str]
) -> pd.DataFrame:
    """Build the features table: ``columns``, the morphology, then ``qupath_properties``."""
    table = pd.DataFrame(columns)
    # Centroids in napari's pixel-centre convention, like the layer's vertices.
    morph["centroid_row"] = morph["centroid_row"] - 0.5
    morph["centroid_col"] = morph["centroid_col"] - 0.5
    for c in MORPHOLOGY_COLUMNS:
        table[c] = morph[c].to_numpy()
    table["qupath_properties"] = extras
    return table


def _columnar_features(
    store: ColumnarAnnotations,
    index: npt.NDArray[np.int64],
    mpp: float | None,
    classes: Sequence[AnnotationClass],
) -> pd.DataFrame:
    """:func:`annotations_features` of ``store[index]``, from its columns (no Annotation)."""
    step = 8192  # outlines built and measured a chunk at a time
    parts = [
        measure_geometries(store.geometries(index[k : k + step]), mpp=mpp)
        for k in range(0, len(index), step)
    ]
    morph = pd.concat(parts, ignore_index=True) if parts else measure_geometries([], mpp=mpp)
    extras = []
    for i in index.tolist():
        m, p = store.measurements_of(i), store.properties_of(i)
        extras.append(json.dumps({"measurements": m, "properties": dict(p)}) if (m or p) else "")
    codes = store.meta_codes()[index]
    table_rows = store.meta_table
    labels = [c if c is not None else UNCLASSIFIED for c, _, _ in table_rows]
    hexes = [_hex(_rgb_of(c, col, classes)) for c, col, _ in table_rows]
    types = [t for _, _, t in table_rows]
    names, ids = store.names(), store.object_ids()
    columns = {
        "class": pd.Categorical([labels[c] for c in codes.tolist()]),
        "color": [hexes[c] for c in codes.tolist()],
        "object_type": [types[c] for c in codes.tolist()],
        "name": [names[i] or "" for i in index.tolist()],
        "object_id": [ids[i] or "" for i in index.tolist()],
    }
    return _features_table(columns, morph, extras)


def _columnar_points_layer(
    store: ColumnarAnnotations,
    index: npt.NDArray[np.int64],
    *,
    name: str,
    mpp: float | None,
    classes: Sequence[AnnotationClass],
    metadata: Mapping[str, Any],
) -> LayerDataTuple:
    """Points layer of ``store[index]``; the outlines stay columns (a GeometryView)."""
    features = _columnar_features(store, index, mpp, classes)
    table_rgb = np.array(
        [_rgb_of(c, col, classes) for c, col, _ in store.meta_table],
        dtype=np.float64,
    ).reshape(-1, 3)
    rgb = table_rgb[store.meta_codes()[index]] / 255.0
    return _points_tuple(features, rgb, GeometryView(store, index), name=name, metadata=metadata)


def annotations_to_layer_data(
    annotations: AnnotationSet | Sequence[Annotation],
    *,
    name: str = "annotations",
    mpp: float | None = None,
    max_shapes: int = MAX_SHAPES,
    classes: Sequence[AnnotationClass] = DEFAULT_CLASSES,
    source: str | None = None,
) -> list[LayerDataTuple]:
    """LayerData tuples for napari: regions as Shapes, many detections as Points.

    Parameters
    ----------
    annotations : AnnotationSet or sequence of Annotation
        What to show (level-0 (x, y) geometries).
    name : str
        Base layer name; detections go to ``f"{name} detections"``.
    mpp : float, optional
        Level-0 µm per pixel (morphology in µm; stored in metadata).
    max_shapes : int
        Groups (regions, detections) with more objects than this become a Points
        layer at the centroids, because napari's Shapes layer is too slow there.
    classes : sequence of AnnotationClass
        Class table for colours.
    source : str, optional
        File the annotations came from (stored in metadata).

    Returns
    -------
    list of (data, kwargs, layer_type)
        Zero, one or two layers; the import report (when given an
        AnnotationSet) is in ``kwargs["metadata"]["annotation_report"]``.
    """
    report: ReadReport | None = None
    if isinstance(annotations, AnnotationSet):
        report = annotations.report
        annotations = annotations.annotations
    classes = tuple(classes)
    store: ColumnarAnnotations | None = None
    groups: list[Any]
    if isinstance(annotations, ColumnarAnnotations):  # a big streamed file: no list of objects
        store = annotations
        is_det = np.array([t in DETECTION_TYPES for _, _, t in store.meta_table], bool)
        flags = is_det[store.meta_codes()] if len(store) else np.zeros(0, bool)
        groups = [np.flatnonzero(~flags), np.flatnonzero(flags)]
    else:
        items = list(annotations)
        groups = [
            [a for a in items if a.object_type not in DETECTION_TYPES],
            [a for a in items if a.object_type in DETECTION_TYPES],
        ]
    metadata: dict[str, Any] = {
        "mpp": mpp,
        "source": source,
        "classes": [c.to_dict() for c in classes],
    }
    if report is not None:
        metadata["annotation_report"] = report.to_dict()
    out: list[LayerDataTuple] = []
    for group, layer_name in zip(groups, (name, f"{name} detections"), strict=True):
        if not len(group):
            continue
        if store is not None:
            if len(group) > max_shapes:
                out.append(
                    _columnar_points_layer(
                        store, group, name=layer_name, mpp=mpp, classes=classes, metadata=metadata
                    )
                )
                continue
            group = [store[int(i)] for i in group]
        features, rgb = _features_and_colours(group, mpp=mpp, classes=classes)
        if len(group) > max_shapes:
            geometries = np.array([a.geometry for a in group], dtype=object)
            out.append(
                _points_tuple(features, rgb, geometries, name=layer_name, metadata=metadata)
            )
        else:
            out.append(_shapes_tuple(features, rgb, group, name=layer_name, metadata=metadata))
    return out


def _edge_width(items: Sequence[Annotation]) -> float:
    bounds = shapely.total_bounds(np.array([a.geometry for a in items], dtype=object))
    size = max(bounds[2] - bounds[0], bounds[3] - bounds[1], 1.0)
    return float(max(1.0, size / 800))


def _features_and_colours(
    items: Sequence[Annotation], *, mpp: float | None, classes: Sequence[AnnotationClass]
) -> tuple[pd.DataFrame, npt.NDArray[np.float64]]:
    """Features table and 0-1 RGB class colours of the objects of one layer."""
    features = annotations_features(items, mpp=mpp, classes=classes)
    rgb = np.array([_class_color(a, classes) for a in items], dtype=np.float64) / 255.0
    return features, rgb


def _shapes_tuple(
    features: pd.DataFrame,
    rgb: npt.NDArray[np.float64],
    items: Sequence[Annotation],
    *,
    name: str,
    metadata: Mapping[str, Any],
) -> LayerDataTuple:
    face = np.column_stack([rgb, np.full(len(items), FACE_ALPHA)])
    edge = np.column_stack([rgb, np.ones(len(items))])
    shown, simplified = fit_vertex_budget([a.geometry for a in items])
    data = [geometry_to_path_rc(g) for g in shown]
    if simplified:
        metadata = dict(
            metadata,
            simplified=simplified,
            note=f"{simplified['n']} outlines over {MAX_VERTICES} vertices simplified for "
            f"display (tolerance up to {simplified['max_tolerance_px']:.3g} px); "
            "morphology is measured on the exact outlines",
        )
    kwargs: dict[str, Any] = {
        "name": name,
        "shape_type": "polygon",
        "features": features,
        "face_color": face,
        "edge_color": edge,
        "edge_width": _edge_width(items),
        "metadata": dict(metadata, representation="shapes"),
    }
    return (data, kwargs, "shapes")


def fit_vertex_budget(
    geometries: Sequence[BaseGeometry], *, max_vertices: int = MAX_VERTICES
) -> tuple[list[BaseGeometry], dict[str, Any]]:
    """Simplify the outlines that have more than ``max_vertices`` vertices, to fit.

    Parameters
    ----------
    geometries : sequence of shapely Polygon/MultiPolygon
        The outlines.
    max_vertices : int
        Budget per outline.

    Returns
    -------
    list of geometry
        The outlines, simplified where over budget (the others unchanged).
    dict
        ``{}`` when nothing changed, else ``{"n", "indices", "max_vertices",
        "max_tolerance_px"}``.
    """
    shown = list(geometries)
    if not shown:
        return shown, {}
    counts = shapely.get_num_coordinates(np.array(shown, dtype=object))
    over = np.flatnonzero(counts > max_vertices)
    tolerances = []
    for i in over:
        geom = shown[i]
        x0, y0, x1, y1 = geom.bounds
        tol = max(x1 - x0, y1 - y0, 1.0) / max_vertices
        while True:  # at most ~log2(size) rounds: each doubles the tolerance
            fitted = geom.simplify(tol, preserve_topology=True)
            if shapely.get_num_coordinates(fitted) <= max_vertices or fitted.is_empty:
                break
            tol *= 2
        if fitted.is_empty or fitted.area <= 0:  # keep something visible
            fitted = geom.envelope
        shown[i] = fitted
        tolerances.append(tol)
    if not len(over):
        return shown, {}
    return shown, {
        "n": len(over),
        "indices": [int(i) for i in over],
        "max_vertices": int(max_vertices),
        "max_tolerance_px": float(max(tolerances)),
    }


def _points_tuple(
    features: pd.DataFrame,
    rgb: npt.NDArray[np.float64],
    geometries: Sequence[BaseGeometry] | npt.NDArray[np.object_],
    *,
    name: str,
    metadata: Mapping[str, Any],
) -> LayerDataTuple:
    n = len(features)
    face = np.column_stack([rgb, np.full(n, 0.8)])
    data = features[["centroid_row", "centroid_col"]].to_numpy(dtype=np.float64)
    size = 2 * np.sqrt(features["area_px"].to_numpy() / math.pi)
    # Outlines travel with the layer, so that saving loses nothing; the index column
    # follows the points through deletions.
    features["geometry_index"] = np.arange(n, dtype=np.int64)
    kwargs: dict[str, Any] = {
        "name": name,
        "features": features,
        "face_color": face,
        "border_width": 0,
        "size": np.maximum(size, 1.0),
        "metadata": dict(
            metadata,
            representation="points",
            geometries=geometries,
            note=f"{n} objects shown as centroids (napari Shapes is too slow above "
            f"{MAX_SHAPES}); outlines: rasterise to Labels",
        ),
    }
    return (data, kwargs, "points")


# --------------------------------------------------------------------------- from napari
def shapes_to_annotations(
    data: Sequence[npt.ArrayLike],
    *,
    shape_types: Sequence[str] | str = "polygon",
    features: pd.DataFrame | None = None,
    face_colors: npt.ArrayLike | None = None,
    default_class: str | None = None,
    classes: Sequence[AnnotationClass] = DEFAULT_CLASSES,
    morphology: bool = False,
) -> tuple[list[Annotation], ReadReport]:
    """Annotations from a napari Shapes layer's data (napari (row, col) coordinates).

    Parameters
    ----------
    data : sequence of arrays of shape (N, D)
        Shape vertices (the last two axes are (row, col)).
    shape_types : str or sequence of str
        napari shape types; polygons, rectangles and ellipses are kept, lines
        and paths (no area) are skipped and reported.
    features : DataFrame, optional
        The layer's features: ``class``, ``color``, ``object_type``, ``name``,
        ``object_id``, ``qupath_properties`` are used when present.
    face_colors : array-like of shape (N, 4), optional
        Used as class colour when the features carry none.
    default_class : str, optional
        Class for shapes without one.
    classes : sequence of AnnotationClass
        Class table (colour of a class named without colour).
    morphology : bool
        Add the features' morphology columns (area µm², perimeter, circularity,
        solidity) to each annotation's QuPath measurements (what saving does).

    Returns
    -------
    (list of Annotation, ReadReport)
        The annotations, and what was skipped.
    """
    from napari_xai.core.annotations.geojson import DEGENERATE, Skipped

    n = len(data)
    types = [shape_types] * n if isinstance(shape_types, str) else list(shape_types)
    report = ReadReport(source="<shapes layer>", n_features=n)
    # Geometries: plain polygons in bulk; keyholes, self-intersections one by one.
    xys: list[npt.NDArray[np.float64] | None] = []
    for vertices, kind in zip(data, types, strict=True):
        if kind in ("line", "path"):
            xys.append(None)
            continue
        v = np.asarray(vertices, dtype=np.float64)[:, -2:]
        if kind == "ellipse":
            v = _ellipse_vertices(v)
        xys.append(rc_to_xy(v))
    geoms: list[BaseGeometry | None] = [None] * n
    bulk = [i for i, xy in enumerate(xys) if xy is not None and len(xy) >= 3]
    if bulk:
        polys = polygons_from_rings([xys[i] for i in bulk])  # type: ignore[misc]
        good = shapely.is_valid(polys) & (shapely.area(polys) > 0)
        for i, poly, ok in zip(bulk, polys, good, strict=True):
            geoms[i] = poly if ok else path_rc_to_geometry(xy_to_rc(xys[i]))  # type: ignore[arg-type]

    rows = _annotations_from_features(
        geoms,
        features,
        face_colors=face_colors,
        default_class=default_class,
        classes=classes,
        with_morphology=morphology,
    )
    out: list[Annotation] = []
    for i in range(n):
        if xys[i] is None:
            report.skipped.append(Skipped(i, "no area (line or path)", str(types[i])))
        elif rows[i] is None:
            report.skipped.append(Skipped(i, DEGENERATE, f"{len(xys[i])} vertices"))  # type: ignore[arg-type]
        else:
            out.append(rows[i])  # type: ignore[arg-type]
    report.n_imported = len(out)
    return out, report


def _annotations_from_features(
    geoms: Sequence[BaseGeometry | None],
    features: pd.DataFrame | None,
    *,
    face_colors: npt.ArrayLike | None = None,
    default_class: str | None = None,
    classes: Sequence[AnnotationClass] = DEFAULT_CLASSES,
    default_object_type: str = "annotation",
    with_morphology: bool = False,
) -> list[Annotation | None]:
    """One Annotation per geometry (None where the geometry is None), attributes from features.

    With ``with_morphology``, the features' morphology columns (area µm², perimeter,
    circularity, solidity) become QuPath measurements, so they are saved with them.
    """
    n = len(geoms)
    faces = np.asarray(face_colors) if face_colors is not None else None
    columns: dict[str, list[Any]] = {}
    if features is not None:
        for key in ("class", "color", "object_type", "name", "object_id", "qupath_properties"):
            if key in features.columns:
                values = features[key].astype(object).tolist()
                columns[key] = values + [None] * (n - len(values))
    morphology: dict[str, Any] = {}
    if with_morphology and features is not None and len(features) == n:
        morphology = {
            c: features[c].to_numpy(np.float64) for c in QUPATH_MEASUREMENTS if c in features
        }

    def get(key: str, i: int) -> Any:
        value = columns[key][i] if key in columns else None
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        return value

    out: list[Annotation | None] = []
    class_colors: dict[str, tuple[int, int, int] | None] = {}
    for i in range(n):
        geom = geoms[i]
        if geom is None:
            out.append(None)
            continue
        class_name = get("class", i) or default_class
        if class_name == UNCLASSIFIED:
            class_name = None
        color_text = get("color", i)
        color: tuple[int, int, int] | None
        if color_text:
            h = str(color_text).lstrip("#")
            color = (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16))
        elif class_name is not None and class_name not in class_colors:
            cls = find_class(class_name, classes=classes)
            class_colors[class_name] = cls.color if cls is not None else None
            color = class_colors[class_name]
        elif class_name is not None:
            color = class_colors[class_name]
        else:
            color = None
        if color is None and faces is not None and i < len(faces):
            color = rgba_to_color(faces[i])
        extra: dict[str, Any] = {}
        text = get("qupath_properties", i)
        if text:
            try:
                extra = json.loads(text)
            except (TypeError, ValueError):
                extra = {}
        out.append(
            Annotation(
                geometry=geom,
                class_name=class_name,
                color=color if class_name is not None else None,
                object_type=get("object_type", i) or default_object_type,
                name=get("name", i) or None,
                object_id=get("object_id", i) or None,
                measurements={
                    **extra.get("measurements", {}),
                    **qupath_measurements({c: v[i] for c, v in morphology.items()}),
                },
                properties=extra.get("properties", {}),
            )
        )
    return out


def points_to_annotations(
    data: npt.ArrayLike,
    *,
    features: pd.DataFrame | None = None,
    geometries: Sequence[BaseGeometry] | npt.NDArray[np.object_] | None = None,
    sizes: npt.ArrayLike | None = None,
    default_class: str | None = None,
    object_type: str = "detection",
) -> tuple[list[Annotation], ReadReport]:
    """Annotations from a Points layer of detections (as the reader makes them).

    Each point gets its original outline when the features carry a
    ``geometry_index`` into `geometries` (the reader keeps both), otherwise a
    disc of the point's size (reported as changed).

    Parameters
    ----------
    data : array-like of shape (N, 2)
        Point positions, napari (row, col).
    features : DataFrame, optional
        The layer's features (``class``, ``color``, ``object_type``, ``name``,
        ``object_id``, ``qupath_properties``, ``geometry_index``).
    geometries : sequence of Polygon/MultiPolygon, optional
        Outlines in level-0 (x, y), from ``layer.metadata["geometries"]``.
    sizes : array-like of shape (N,), optional
        Point diameters, for points without an outline (default 10).
    default_class : str, optional
        Class of points without one.
    object_type : str
        Object type of points without one.

    Returns
    -------
    (list of Annotation, ReadReport)
    """
    from napari_xai.core.annotations.geojson import Skipped

    points = np.asarray(data, dtype=np.float64).reshape(-1, 2)
    n = len(points)
    feats = features if features is not None else pd.DataFrame(index=range(n))
    index = (
        feats["geometry_index"].to_numpy()
        if "geometry_index" in feats.columns and geometries is not None
        else np.full(n, -1)
    )
    diam = np.broadcast_to(np.asarray(sizes if sizes is not None else 10.0, float), (n,))
    report = ReadReport(source="<points layer>", n_features=n)
    geoms: list[BaseGeometry | None] = []
    xy = rc_to_xy(points)
    for i in range(n):
        gi = index[i]
        x, y = xy[i]
        if geometries is not None and 0 <= gi < len(geometries):
            # A point added by hand inherits a default index: accept the outline only
            # if the point sits on it.
            x0, y0, x1, y1 = geometries[int(gi)].bounds
            if x0 - 1 <= x <= x1 + 1 and y0 - 1 <= y <= y1 + 1:
                geoms.append(geometries[int(gi)])
                continue
        geoms.append(shapely.Point(x, y).buffer(max(float(diam[i]) / 2, 0.5), quad_segs=4))
        report.changed.append(Skipped(i, "no outline kept: written as a disc of its size"))
    rows = _annotations_from_features(
        geoms, feats, default_class=default_class, default_object_type=object_type
    )
    exact = [a for a in rows if a is not None]
    report.n_imported = len(exact)
    return exact, report


def _ellipse_vertices(corners_rc: npt.NDArray[np.float64], n: int = 64) -> npt.NDArray[np.float64]:
    """Polygon approximating a napari ellipse given by its 4 bounding-box corners."""
    center = corners_rc.mean(axis=0)
    ax1 = (corners_rc[1] - corners_rc[0]) / 2
    ax2 = (corners_rc[2] - corners_rc[1]) / 2
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    out: npt.NDArray[np.float64] = center + np.outer(np.cos(t), ax1) + np.outer(np.sin(t), ax2)
    return out


def geojson_layers(
    paths: str | Path | Sequence[str | Path],
    *,
    extra_classes: Sequence[str] = (),
    mpp: float | None = None,
    warn: Callable[[str], Any] | None = None,
) -> list[LayerDataTuple]:
    """Read GeoJSON files into napari layer data, reporting what could not be imported.

    Parameters
    ----------
    paths : path or sequence of paths
        QuPath-style GeoJSON files; each gives its own layers, named after its stem.
    extra_classes : sequence of str
        Class names known besides the default ones (e.g. a model's own classes, for
        its predicted regions), so they raise no "unknown classes" report; coloured
        with :func:`~napari_xai.core.naming.class_colour`.
    mpp : float, optional
        Level-0 µm per pixel of the slide they belong to (morphology in µm).
    warn : callable, optional
        Called with each import report that is not clean and each simplification
        note (default :func:`warnings.warn`); nothing is dropped silently.

    Returns
    -------
    list of LayerDataTuple
    """
    from napari_xai.core.annotations.geojson import read_geojson
    from napari_xai.core.naming import class_colour, rgb255

    if warn is None:
        import warnings

        def warn(message: str) -> None:
            warnings.warn(message, stacklevel=3)

    known = {c.name for c in DEFAULT_CLASSES}
    classes = list(DEFAULT_CLASSES) + [
        AnnotationClass(name, rgb255(class_colour(name, k)))
        for k, name in enumerate(extra_classes)
        if name not in known
    ]
    layers: list[LayerDataTuple] = []
    for p in [paths] if isinstance(paths, (str, Path)) else list(paths):
        aset = read_geojson(p, classes=classes)
        if not aset.report.clean:
            warn(aset.report.summary())
        new = annotations_to_layer_data(aset, name=Path(p).stem, source=str(p), mpp=mpp)
        for _data, kwargs, _kind in new:
            if kwargs["metadata"].get("simplified"):
                warn(f"{p}: {kwargs['metadata']['note']}")
        layers += new
    return layers
