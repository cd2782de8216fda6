"""napari reader and writer for QuPath-style GeoJSON annotations (``*.geojson``).

Reading gives a Shapes layer of the regions (polygons with holes, face colour
from the classification, features: class, colour, morphology) and, for files
with more than :data:`~napari_xai.core.layers.annotations.MAX_SHAPES`
detections (e.g. 50,000 nuclei), a Points layer at their centroids, which napari
keeps responsive. Writing turns a Shapes layer back into GeoJSON that QuPath
opens. Heavy imports (pandas, shapely) happen inside the functions: napari
imports this module to build its menus.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari_xai._notify import warn

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    LayerDataTuple = tuple[Any, dict[str, Any], str]


def napari_get_annotations_reader(
    path: str | list[str],
) -> Callable[[str | list[str]], list[LayerDataTuple]] | None:
    """Return :func:`read_annotations` for ``.geojson`` files, else None."""
    paths = [path] if isinstance(path, str) else list(path)
    if not paths or not all(str(p).lower().endswith(".geojson") for p in paths):
        return None
    return read_annotations


def read_annotations(
    path: str | list[str], *, extra_classes: Sequence[str] = ()
) -> list[LayerDataTuple]:
    """Read one or more GeoJSON files into napari layer data.

    Whatever could not be imported is reported (napari warning + layer
    metadata ``annotation_report``), never dropped silently. ``extra_classes``
    (e.g. a model's own class names, for its predicted regions) count as known
    classes next to the default ones, so they raise no "unknown classes" warning.
    """
    from napari_xai.core.layers.annotations import geojson_layers

    return geojson_layers(path, extra_classes=extra_classes, mpp=_open_slide_mpp(), warn=warn)


def _open_slide_mpp() -> float | None:
    """Return the µm/px of the slide open in the current viewer (napari-xai reader), if one."""
    try:
        from napari import current_viewer

        viewer = current_viewer()
    except Exception:  # pragma: no cover - no napari viewer
        return None
    if viewer is None:
        return None
    mpps = {
        float(layer.metadata["mpp"])
        for layer in viewer.layers
        if "shape_rc" in layer.metadata and layer.metadata.get("mpp")
    }
    return mpps.pop() if len(mpps) == 1 else None  # ambiguous with several slides


def write_shapes_geojson(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """npe2 single-layer writer: a Shapes layer to a QuPath-style GeoJSON file.

    Parameters
    ----------
    path : str
        Output path (``.geojson`` is added when missing).
    data : list of ndarray
        The Shapes layer's vertices, napari (row, col) in level-0 pixels.
    meta : dict
        The layer's state: ``shape_type``, ``features``, ``face_color``, ...

    Returns
    -------
    list of str
        The written path.
    """
    from napari_xai.core.layers.annotations import shapes_to_annotations

    annotations, report = shapes_to_annotations(
        data,
        shape_types=meta.get("shape_type", "polygon"),
        features=meta.get("features"),
        face_colors=meta.get("face_color"),
        morphology=True,  # area µm², perimeter, circularity, solidity saved as measurements
    )
    return _write(path, annotations, report.summary() if report.skipped else None)


def write_points_geojson(path: str, data: Any, meta: dict[str, Any]) -> list[str]:
    """npe2 single-layer writer: a Points layer of detections to GeoJSON.

    Points opened from GeoJSON keep their outlines (``metadata["geometries"]``
    indexed by the ``geometry_index`` feature; for a big, streamed file a
    :class:`~napari_xai.core.annotations.geojson.GeometryView` that builds each
    outline from compact arrays when asked), so saving writes the original
    polygons with the (possibly edited) classes; other points are written as
    discs of their size, and the count is reported.
    """
    from napari_xai.core.layers.annotations import points_to_annotations

    size = meta.get("size")
    annotations, report = points_to_annotations(
        data,
        features=meta.get("features"),
        geometries=(meta.get("metadata") or {}).get("geometries"),
        sizes=None if size is None else (size if size.ndim == 1 else size.mean(axis=-1)),
    )
    return _write(path, annotations, report.summary() if report.changed else None)


def _write(path: str, annotations: Any, note: str | None) -> list[str]:
    """Write annotations to ``path`` (``.geojson`` added when missing); show ``note``."""
    from napari_xai.core.annotations.geojson import write_geojson

    if note:
        warn(note)
    out = Path(path)
    if out.suffix.lower() != ".geojson":
        out = out.with_name(out.name + ".geojson")
    write_geojson(annotations, out)
    return [str(out)]
