"""Read and write QuPath-style GeoJSON annotations.

QuPath (v0.4 and later) exports objects as a GeoJSON ``FeatureCollection``::

    {"type": "FeatureCollection", "features": [
      {"type": "Feature", "id": "<uuid>",
       "geometry": {"type": "Polygon", "coordinates": [[[x, y], ...], [hole...]]},
       "properties": {"objectType": "annotation",
                      "classification": {"name": "Tumor", "color": [200, 0, 0]},
                      "name": "...", "isLocked": true,
                      "measurements": {"Area µm^2": 1234.5}}}]}

Coordinates are level-0 pixels, origin at the top-left corner, ``x`` along
columns and ``y`` along rows. Older exports (v0.2/0.3) put the object type in
``id`` (``"PathAnnotationObject"``), the colour in ``classification.colorRGB``
(a packed ARGB integer) and measurements as a list of ``{name, value}``; the
non-collection export is a bare JSON array of features. All of these are read.

Geometries stay in GeoJSON order (x, y) inside :class:`Annotation`; the swap to
napari's (row, col) (and QuPath's pixel-corner to napari's pixel-centre origin)
happens in exactly one place, :func:`napari_xai.core.layers.coords.xy_to_rc`
and its inverse.

Bad input never silently disappears: every feature that is not imported, or is
imported changed (repaired, clipped), is listed in the :class:`ReadReport` with
a reason, and :meth:`ReadReport.summary` gives the counts.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import re
import sys
import tempfile
import uuid
from abc import abstractmethod
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeVar, overload

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry import MultiPolygon, Polygon, box
from shapely.geometry.base import BaseGeometry

from napari_xai.core.annotations.classes import (
    DEFAULT_CLASSES,
    AnnotationClass,
    fallback_color,
    find_class,
    unpack_rgb,
)
from napari_xai.core.annotations.json_stream import (
    MAX_DEPTH,
    STREAM_BYTES,
    JSONDepthError,
    check_depth,
    iter_features,
)

__all__ = [
    "Annotation",
    "AnnotationError",
    "AnnotationSet",
    "ColumnarAnnotations",
    "GeometryView",
    "ReadReport",
    "Skipped",
    "annotations_to_feature_collection",
    "parse_feature_collection",
    "read_geojson",
    "write_geojson",
]

RGB = tuple[int, int, int]

# Reasons a feature is skipped (not imported).
MALFORMED_JSON = "malformed JSON"
NOT_A_FEATURE = "not a GeoJSON Feature"
NO_GEOMETRY = "no geometry"
UNSUPPORTED_GEOMETRY = "unsupported geometry type"
MALFORMED_COORDINATES = "malformed coordinates"
DEGENERATE = "degenerate polygon (no area)"
UNREPAIRABLE = "invalid geometry that could not be repaired"
OUTSIDE = "outside the slide"
UNKNOWN_CLASS = "unknown class"
# Reasons a feature is imported but changed.
REPAIRED = "invalid geometry (e.g. self-intersecting) repaired with make_valid"
CLIPPED = "partly outside the slide, clipped to its bounds"
PARTS_DROPPED = "non-polygon parts (points, lines) dropped"

_LEGACY_TYPES = {
    "PathAnnotationObject": "annotation",
    "PathDetectionObject": "detection",
    "PathCellObject": "cell",
    "PathTileObject": "tile",
    "TMACoreObject": "tmaCore",
    "PathRootObject": "root",
}
#: Streamed polygons are built this many at a time (bounded temporary arrays).
_BUILD_BATCH = 8192
_KNOWN_PROPERTIES = {
    "objectType",
    "object_type",
    "classification",
    "name",
    "measurements",
}


class AnnotationError(ValueError):
    """Unreadable annotation file; the message reads ``"<path>: <problem>"``."""


@dataclass(frozen=True, slots=True)
class Annotation:
    """One annotated object (region or detection).

    Parameters
    ----------
    geometry : shapely Polygon or MultiPolygon
        Level-0 pixel coordinates in GeoJSON order: ``x`` = column, ``y`` = row.
    class_name : str or None
        Classification name (``None``: unclassified).
    color : tuple of int or None
        Classification colour (r, g, b) 0-255; ``None`` uses the class table.
    object_type : str
        QuPath object type: ``"annotation"``, ``"detection"``, ``"cell"``, ...
    name : str or None
        The object's own name.
    object_id : str or None
        The feature id (a UUID in QuPath >= 0.4).
    measurements : mapping of str to float
        QuPath measurements (kept for round trips).
    properties : mapping
        Other feature properties, kept unchanged for round trips.
    """

    geometry: BaseGeometry
    class_name: str | None = None
    color: RGB | None = None
    object_type: str = "annotation"
    name: str | None = None
    object_id: str | None = None
    measurements: Mapping[str, float] = field(default_factory=dict)
    properties: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Skipped:
    """A feature that was skipped or changed on import.

    Parameters
    ----------
    index : int
        Position of the feature in the file (``-1`` for the file itself).
    reason : str
        One of the module's reason strings (e.g. ``"outside the slide"``).
    detail : str
        What exactly was wrong.
    """

    index: int
    reason: str
    detail: str = ""


@dataclass
class ReadReport:
    """What happened to each feature of a GeoJSON file on import.

    Parameters
    ----------
    source : str
        File path (or ``"<object>"`` for in-memory input).
    n_features : int
        Features found (for a truncated file: the ones that could be parsed,
        plus one for the unreadable rest).
    n_imported : int
        Annotations returned.
    skipped : list of Skipped
        Features not imported, each with its reason.
    changed : list of Skipped
        Features imported but altered (repaired, clipped), each with its reason.
    unknown_classes : dict of str to int
        Class names not in the known class table, with their counts.
    """

    source: str = "<object>"
    n_features: int = 0
    n_imported: int = 0
    skipped: list[Skipped] = field(default_factory=list)
    changed: list[Skipped] = field(default_factory=list)
    unknown_classes: dict[str, int] = field(default_factory=dict)

    @property
    def n_skipped(self) -> int:
        """Number of features not imported."""
        return len(self.skipped)

    def skipped_counts(self) -> dict[str, int]:
        """Count of skipped features by reason."""
        return dict(Counter(s.reason for s in self.skipped))

    def changed_counts(self) -> dict[str, int]:
        """Count of imported-but-changed features by reason."""
        return dict(Counter(s.reason for s in self.changed))

    @property
    def clean(self) -> bool:
        """True when every feature was imported unchanged with a known class."""
        return not (self.skipped or self.changed or self.unknown_classes)

    def summary(self) -> str:
        """One paragraph for a person: what was imported, skipped and why."""
        text = f"{self.source}: {self.n_imported} of {self.n_features} objects imported"
        parts: list[str] = []
        if self.skipped:
            counts = ", ".join(f"{n} {r}" for r, n in sorted(self.skipped_counts().items()))
            parts.append(f"{self.n_skipped} skipped ({counts})")
        if self.changed:
            counts = ", ".join(f"{n} {r}" for r, n in sorted(self.changed_counts().items()))
            parts.append(f"{len(self.changed)} changed ({counts})")
        if self.unknown_classes:
            names = ", ".join(f"{k!r} x{v}" for k, v in sorted(self.unknown_classes.items()))
            parts.append(f"unknown classes kept: {names}")
        return text + ("; " + "; ".join(parts) if parts else "") + "."

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable form (for logs and result manifests)."""
        return {
            "source": self.source,
            "n_features": self.n_features,
            "n_imported": self.n_imported,
            "skipped": self.skipped_counts(),
            "changed": self.changed_counts(),
            "unknown_classes": dict(self.unknown_classes),
            "details": [
                {"index": s.index, "reason": s.reason, "detail": s.detail}
                for s in [*self.skipped, *self.changed]
            ],
        }


@dataclass
class AnnotationSet:
    """Annotations read from a file, with the import report.

    ``annotations`` is a list, or for a streamed (big) file a
    :class:`ColumnarAnnotations` (a sequence of the same annotations, held as
    arrays).
    """

    annotations: Sequence[Annotation]
    report: ReadReport

    def __len__(self) -> int:
        return len(self.annotations)


# --------------------------------------------------------------------------- reading
def read_geojson(
    source: str | os.PathLike[str] | Mapping[str, Any] | Sequence[Any],
    *,
    shape_rc: tuple[int, int] | None = None,
    classes: Iterable[AnnotationClass] | None = DEFAULT_CLASSES,
    unknown_classes: Literal["keep", "skip"] = "keep",
    stream: bool | None = None,
) -> AnnotationSet:
    """Read QuPath-style GeoJSON annotations, importing the valid part of bad files.

    A file is first scanned for its nesting depth (deeper than
    :data:`~napari_xai.core.annotations.json_stream.MAX_DEPTH` is refused, without
    recursion); files larger than
    :data:`~napari_xai.core.annotations.json_stream.STREAM_BYTES` are then parsed
    feature by feature (``ijson``), each feature turned into compact arrays at once,
    so memory stays a small multiple of the file size. Coordinates must be JSON
    numbers: strings (``"12.5"``) are refused, never coerced.

    Parameters
    ----------
    source : path or parsed GeoJSON
        A ``.geojson``/``.json`` file, or an already-parsed FeatureCollection,
        Feature, list of Features or bare geometry.
    shape_rc : (int, int), optional
        Level-0 slide size (rows, cols). Objects entirely outside are skipped,
        objects partly outside are clipped; both are reported.
    classes : iterable of AnnotationClass or None
        Known classes; names not in it are counted in
        ``report.unknown_classes``. ``None`` accepts every name silently.
    unknown_classes : {"keep", "skip"}
        Keep objects of unknown classes (coloured from the file or a stable
        fallback colour) or skip them (reported).
    stream : bool, optional
        Parse feature by feature (default: for files larger than ``STREAM_BYTES``).

    Returns
    -------
    AnnotationSet
        ``.annotations`` (Polygon/MultiPolygon, level-0 (x, y)) and ``.report``;
        for a streamed file ``.annotations`` is a :class:`ColumnarAnnotations`
        (the same annotations as a sequence, held as arrays: no shapely object
        per detection until one is asked for).

    Raises
    ------
    AnnotationError
        When the file cannot be read at all (missing, empty, nested too deep,
        not JSON with not a single readable feature, or not GeoJSON).
    """
    if not isinstance(source, (str, os.PathLike)):
        return parse_feature_collection(
            source,
            shape_rc=shape_rc,
            classes=classes,
            unknown_classes=unknown_classes,
            report=ReadReport(source="<object>"),
        )
    path = Path(source)
    report = ReadReport(source=str(path))
    try:
        size = path.stat().st_size
        check_depth(path)
    except FileNotFoundError:
        raise AnnotationError(f"{path}: file not found") from None
    except JSONDepthError as e:
        raise AnnotationError(str(e)) from None
    except OSError as e:
        raise AnnotationError(f"{path}: cannot read the file ({e})") from None
    if stream if stream is not None else size > STREAM_BYTES:
        data: Any = _stream_features(path, report)
        eager = True
    else:
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as e:
            raise AnnotationError(f"{path}: cannot read the file ({e})") from None
        data = _load_json_tolerant(text, path=path, report=report)
        eager = False
    return parse_feature_collection(
        data,
        shape_rc=shape_rc,
        classes=classes,
        unknown_classes=unknown_classes,
        report=report,
        eager=eager,
    )


def _stream_features(path: Path, report: ReadReport) -> Iterator[Any]:
    """Features of a big file one by one; a break in the JSON ends them (reported)."""
    import ijson

    n = 0
    try:
        for feature in iter_features(path):
            n += 1
            yield feature
    except (ijson.JSONError, UnicodeDecodeError) as error:
        if n == 0:
            raise AnnotationError(
                f"{path}: not valid JSON ({error}) and no readable feature before it"
            ) from None
        report.n_features += 1  # the unreadable rest counts as one skipped entry
        report.skipped.append(
            Skipped(-1, MALFORMED_JSON, f"{error}; {n} features before it were read")
        )
        return
    if n == 0:  # a single Feature or geometry, or not GeoJSON: parse it whole
        text = path.read_text(encoding="utf-8-sig")
        yield from _features_of(_load_json_tolerant(text, path=path, report=report), report)


def parse_feature_collection(
    data: Any,
    *,
    shape_rc: tuple[int, int] | None = None,
    classes: Iterable[AnnotationClass] | None = DEFAULT_CLASSES,
    unknown_classes: Literal["keep", "skip"] = "keep",
    report: ReadReport | None = None,
    eager: bool = False,
) -> AnnotationSet:
    """Turn parsed GeoJSON into annotations; see :func:`read_geojson` for the options.

    ``data`` may also be an iterator of features (streamed); ``eager`` converts
    each feature's coordinates to arrays as it comes, so the parsed Python lists
    are freed feature by feature.
    """
    report = report if report is not None else ReadReport()
    features = _features_of(data, report)
    importer = _Importer(report, shape_rc, classes, skip_unknown=unknown_classes == "skip")
    # Streamed (big) files: columns, no shapely object per plain polygon.
    annotations: list[Annotation] | ColumnarAnnotations = ColumnarAnnotations() if eager else []
    # 1. Per feature: properties and raw geometry (cheap, Python).
    pending: list[tuple[int, Any, _Props]] = []
    for index, feature in enumerate(features):
        read = importer.read(index, feature, eager=eager)
        if read is None:
            continue
        pending.append(read)
        if eager and len(pending) >= _BUILD_BATCH:  # free the ring arrays as we go
            importer.finish(_build_deferred(pending, report), annotations)
            pending = []

    # 2. Hole-less polygons built in bulk; validity (vectorised), repair, clipping.
    importer.finish(_build_deferred(pending, report), annotations)
    report.n_imported = len(annotations)
    report.unknown_classes = dict(importer.unknown_counter)
    return AnnotationSet(annotations, report)


class _Importer:
    """The steps of :func:`parse_feature_collection` for one read, reporting into ``report``.

    Parameters
    ----------
    report : ReadReport
        Where skipped and changed features are recorded.
    shape_rc : tuple of int or None
        Slide (rows, cols): geometries are clipped to it.
    classes : iterable of AnnotationClass or None
        Known classes (None: any class, no colours from the table).
    skip_unknown : bool
        Skip features of a class not in ``classes`` (else keep and count them).
    """

    def __init__(
        self,
        report: ReadReport,
        shape_rc: tuple[int, int] | None,
        classes: Iterable[AnnotationClass] | None,
        *,
        skip_unknown: bool,
    ) -> None:
        self.report = report
        self.shape_rc = shape_rc
        self.known = tuple(classes) if classes is not None else None
        self.skip_unknown = skip_unknown
        self.slide_box = box(0, 0, shape_rc[1], shape_rc[0]) if shape_rc is not None else None
        self.unknown_counter: Counter[str] = Counter()

    def read(self, index: int, feature: Any, *, eager: bool) -> tuple[int, Any, _Props] | None:
        """Return a feature's index, raw geometry and properties (None: skipped, reported)."""
        report = self.report
        report.n_features += 1
        if not isinstance(feature, Mapping) or not (
            feature.get("type") == "Feature" or "geometry" in feature
        ):
            report.skipped.append(Skipped(index, NOT_A_FEATURE, _short(feature)))
            return None
        geometry = feature.get("geometry")
        if not geometry:
            report.skipped.append(Skipped(index, NO_GEOMETRY, _short(feature.get("id"))))
            return None
        try:
            geom, dropped_parts = _geometry_from_geojson(geometry, eager=eager)
            if dropped_parts:
                report.changed.append(Skipped(index, PARTS_DROPPED, dropped_parts))
            props = _properties_of(feature)
        except _SkipError as e:
            report.skipped.append(Skipped(index, e.reason, e.detail))
            return None
        return index, geom, props

    def finish(
        self,
        batch: list[tuple[int, Any, _Props]],
        annotations: list[Annotation] | ColumnarAnnotations,
    ) -> None:
        """Check, repair and clip a batch of built geometries; add them to ``annotations``."""
        geoms = np.array([g for _, g, _ in batch], dtype=object)
        valid, areas, inside = self._checks(geoms)
        plain = np.zeros(len(geoms), bool)
        if isinstance(annotations, ColumnarAnnotations) and len(geoms):
            plain = (shapely.get_type_id(geoms) == 3) & (
                shapely.get_num_interior_rings(geoms) == 0
            )
        del geoms
        batch.reverse()  # popped from the end: each Annotation replaces its entry
        for k in range(len(batch)):
            index, geom, props = batch.pop()
            kept = self._kept(index, geom, valid=bool(valid[k]), area=areas[k], inside=inside[k])
            classified = None if kept is None else self._classified(index, props)
            if kept is None or classified is None:
                continue
            geom, changed = kept
            if isinstance(annotations, ColumnarAnnotations):
                annotations.append(geom, classified, plain=bool(plain[k]) and not changed)
            else:
                annotations.append(Annotation(geom, *classified))

    def _checks(self, geoms: npt.NDArray[np.object_]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return which geometries are valid, their areas, and which lie inside the slide."""
        if not len(geoms):
            return np.zeros(0, bool), np.zeros(0), np.ones(0, bool)
        valid, areas = shapely.is_valid(geoms), shapely.area(geoms)
        if self.slide_box is None:
            return valid, areas, np.ones(len(geoms), bool)
        return valid, areas, shapely.covered_by(geoms, self.slide_box)

    def _kept(
        self, index: int, geom: Any, *, valid: bool, area: Any, inside: Any
    ) -> tuple[Any, bool] | None:
        """Repair and clip a geometry; return it and whether it changed (None: skipped)."""
        changed = False
        if not valid:
            geom = self._repaired(index, geom, area=area)
            if geom is None:
                return None
            changed = True
            inside = self.slide_box is None or bool(shapely.covered_by(geom, self.slide_box))
        elif area <= 0:
            self.report.skipped.append(Skipped(index, DEGENERATE, f"area {area}"))
            return None
        if inside or self.slide_box is None:
            return geom, changed
        clipped = self._clipped(index, geom, self.slide_box)
        return None if clipped is None else (clipped, True)

    def _repaired(self, index: int, geom: Any, *, area: Any) -> Any:
        """Return the polygonal part of an invalid geometry made valid (None: skipped)."""
        reason = shapely.is_valid_reason(geom)
        fixed = _polygonal_part(shapely.make_valid(geom))
        if fixed is None or fixed.is_empty or fixed.area <= 0:
            why = DEGENERATE if area <= 0 else UNREPAIRABLE
            self.report.skipped.append(Skipped(index, why, reason))
            return None
        self.report.changed.append(Skipped(index, REPAIRED, reason))
        return fixed

    def _clipped(self, index: int, geom: Any, slide_box: Any) -> Any:
        """Clip a geometry that crosses the slide's edge (None: nothing left inside)."""
        clipped = _polygonal_part(geom.intersection(slide_box))
        if clipped is None or clipped.is_empty or clipped.area <= 0:
            x0, y0, x1, y1 = geom.bounds
            self.report.skipped.append(
                Skipped(
                    index,
                    OUTSIDE,
                    f"bounds x {x0:g}..{x1:g}, y {y0:g}..{y1:g} vs slide "
                    f"{self.shape_rc[1]} x {self.shape_rc[0]} (cols x rows)",  # type: ignore[index]
                )
            )
            return None
        self.report.changed.append(
            Skipped(index, CLIPPED, f"{1 - clipped.area / geom.area:.1%} of the area cut")
        )
        return clipped

    def _classified(self, index: int, props: _Props) -> _Props | None:
        """Give a feature its class colour, or skip it for an unknown class (when asked)."""
        class_name, color = props.class_name, props.color
        if class_name is not None and self.known is not None:
            cls = find_class(class_name, classes=self.known)
            if cls is None:
                if self.skip_unknown:
                    self.report.skipped.append(Skipped(index, UNKNOWN_CLASS, repr(class_name)))
                    return None
                self.unknown_counter[class_name] += 1
            elif color is None:
                color = cls.color
        if class_name is not None and color is None:
            color = fallback_color(class_name)
        return props._replace(class_name=class_name, color=color)


def polygons_from_rings(rings: Sequence[npt.NDArray[np.float64]]) -> npt.NDArray[np.object_]:
    """Polygons (no holes) from exterior rings of shape (n_i, 2), in one vectorised call."""
    linear = shapely.linearrings(
        np.concatenate(rings),  # type: ignore[arg-type]
        indices=np.repeat(np.arange(len(rings)), [len(a) for a in rings]),  # type: ignore[arg-type]
    )
    polys: npt.NDArray[np.object_] = shapely.polygons(linear)
    return polys


def _build_deferred(
    pending: list[tuple[int, Any, _Props]], report: ReadReport
) -> list[tuple[int, Any, _Props]]:
    """Turn the deferred rings into polygons with one array conversion for all of them."""
    simple = [k for k, (_, g, _) in enumerate(pending) if isinstance(g, _Deferred)]
    if not simple:
        return pending
    raws = [pending[k][1].coords for k in simple]
    lengths = np.array([len(r) for r in raws])
    arrays: list[npt.NDArray[np.float64] | None]
    try:
        if all(isinstance(r, np.ndarray) for r in raws):  # streamed: converted already
            flat = np.concatenate([r[:, :2] for r in raws])
        else:
            flat = np.array(list(itertools.chain.from_iterable(raws)))
            if flat.dtype.kind not in "iuf":  # strings are refused, not coerced
                raise ValueError("not all numbers")
            flat = flat.astype(np.float64, copy=False)
        if flat.ndim != 2 or flat.shape[1] < 2:
            raise ValueError("ragged")
    except (TypeError, ValueError):
        # Something malformed somewhere: convert ring by ring to find it.
        arrays = []
        for k, raw in zip(simple, raws, strict=True):
            try:
                arrays.append(_ring(raw))
            except _SkipError as e:
                report.skipped.append(Skipped(pending[k][0], e.reason, e.detail))
                arrays.append(None)
    else:
        flat = flat[:, :2]
        starts = np.r_[0, np.cumsum(lengths)[:-1]]
        finite = np.logical_and.reduceat(np.isfinite(flat).all(axis=1), starts)
        closed3 = (lengths == 3) & (flat[starts] == flat[starts + 2]).all(axis=1)
        arrays = []
        for i, k in enumerate(simple):
            if not finite[i]:
                reason, detail = MALFORMED_COORDINATES, "NaN or infinite coordinate"
            elif closed3[i]:
                reason, detail = DEGENERATE, "ring with 3 points"
            else:
                arrays.append(flat[starts[i] : starts[i] + lengths[i]])
                continue
            report.skipped.append(Skipped(pending[k][0], reason, detail))
            arrays.append(None)
    ok = [i for i, a in enumerate(arrays) if a is not None]
    polys = np.zeros(0, dtype=object)
    if ok:
        polys = polygons_from_rings([arrays[i] for i in ok])  # type: ignore[misc]
    built = dict(zip((simple[i] for i in ok), polys, strict=True))
    dropped = {simple[i] for i, a in enumerate(arrays) if a is None}
    return [
        (index, built.get(k, geom), props)
        for k, (index, geom, props) in enumerate(pending)
        if k not in dropped
    ]


class _SkipError(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


def _short(obj: Any, n: int = 80) -> str:
    text = repr(obj)
    return text if len(text) <= n else text[: n - 3] + "..."


def _load_json_tolerant(text: str, *, path: Path, report: ReadReport) -> Any:
    """Parse JSON; for a damaged FeatureCollection keep every feature before the damage."""
    if not text.strip():
        raise AnnotationError(f"{path}: empty file")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        salvaged = _salvage_features(text)
        if not salvaged[0]:
            raise AnnotationError(
                f"{path}: not valid JSON ({error.msg}, line {error.lineno}, column "
                f"{error.colno}) and no readable feature before it"
            ) from None
        features, stop = salvaged
        report.n_features += 1  # the unreadable rest counts as one skipped entry
        report.skipped.append(
            Skipped(
                -1,
                MALFORMED_JSON,
                f"{error.msg} (line {error.lineno}, column {error.colno}); "
                f"{len(features)} features before character {stop} were read, the rest "
                f"({len(text) - stop} characters) could not be",
            )
        )
        return {"type": "FeatureCollection", "features": features}


def _salvage_features(text: str) -> tuple[list[Any], int]:
    """Decode features one by one from ``"features": [`` until the first broken one."""
    match = re.search(r'"features"\s*:\s*\[', text)
    if match is None:
        match = re.match(r"\s*\[", text)  # bare array of features
        if match is None:
            return [], 0
    decoder = json.JSONDecoder()
    pos = match.end()
    features: list[Any] = []
    n = len(text)
    while pos < n:
        while pos < n and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= n or text[pos] == "]":
            break
        try:
            obj, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError:
            break
        features.append(obj)
        pos = end
    return features, pos


def _features_of(data: Any, report: ReadReport) -> Iterable[Any]:
    if isinstance(data, (list, Iterator)):  # QuPath's non-FeatureCollection export, a stream
        return data
    if not isinstance(data, Mapping):
        raise AnnotationError(
            f"{report.source}: not GeoJSON (top level is {type(data).__name__}, "
            "expected a FeatureCollection)"
        )
    kind = data.get("type")
    if kind == "FeatureCollection" or "features" in data:
        features = data.get("features")
        if not isinstance(features, list):
            raise AnnotationError(f"{report.source}: 'features' is not a list")
        return features
    if kind == "Feature":
        return [data]
    if kind in {"Polygon", "MultiPolygon", "GeometryCollection"}:
        return [{"type": "Feature", "geometry": data, "properties": {}}]
    raise AnnotationError(f"{report.source}: not a GeoJSON FeatureCollection (type is {kind!r})")


NUMERIC_STRINGS = "coordinates are strings, not JSON numbers"


def _numeric(raw: Any) -> npt.NDArray[np.float64]:
    """Coordinates as float64, refusing anything but JSON numbers (no string coercion)."""
    try:
        a = np.asarray(raw)
    except (TypeError, ValueError, RecursionError):
        raise _SkipError(MALFORMED_COORDINATES, _short(raw)) from None
    if a.dtype.kind in "US":
        raise _SkipError(MALFORMED_COORDINATES, f"{NUMERIC_STRINGS}: {_short(raw, 60)}")
    if a.dtype.kind not in "iuf" or a.ndim > 3:
        raise _SkipError(MALFORMED_COORDINATES, _short(raw))
    return a.astype(np.float64, copy=False)


def _ring(coords: Any) -> npt.NDArray[np.float64]:
    if isinstance(coords, np.ndarray) and coords.dtype == np.float64:
        a = coords
    else:
        a = _numeric(coords)
    if a.ndim != 2 or a.shape[1] < 2:
        raise _SkipError(MALFORMED_COORDINATES, f"ring of shape {a.shape}")
    a = a[:, :2]
    if not np.isfinite(a).all():
        raise _SkipError(MALFORMED_COORDINATES, "NaN or infinite coordinate")
    if len(a) < 3 or (len(a) == 3 and np.array_equal(a[0], a[-1])):
        raise _SkipError(DEGENERATE, f"ring with {len(a)} points")
    return a


def _polygon(coords: Any) -> Polygon:
    if not isinstance(coords, list) or not coords:
        raise _SkipError(MALFORMED_COORDINATES, _short(coords))
    shell = _ring(coords[0])
    holes = []
    for h in coords[1:]:
        try:
            holes.append(_ring(h))
        except _SkipError as e:
            if e.reason != DEGENERATE:
                raise
    return Polygon(shell, holes)


class _Deferred:
    """Raw coordinates of a hole-less polygon's ring, converted in bulk later."""

    __slots__ = ("coords",)

    def __init__(self, coords: list[Any] | npt.NDArray[np.float64]) -> None:
        self.coords = coords


def _geometry_from_geojson(
    geometry: Any, *, eager: bool = False
) -> tuple[BaseGeometry | _Deferred, str]:
    """Polygon/MultiPolygon from a GeoJSON geometry; second value names dropped parts.

    A polygon without holes comes back as its ring (:class:`_Deferred`), for bulk
    conversion by :func:`_build_deferred`: raw (or, with ``eager``, already an
    array). GeometryCollections are walked with a stack (no recursion), at most
    ``MAX_DEPTH`` levels deep.
    """
    if not isinstance(geometry, Mapping):
        raise _SkipError(MALFORMED_COORDINATES, _short(geometry))
    kind = geometry.get("type")
    if kind == "GeometryCollection":
        return _collection(geometry)
    coords = geometry.get("coordinates")
    if kind == "Polygon":
        if isinstance(coords, list) and len(coords) == 1:
            if isinstance(coords[0], list) and len(coords[0]) >= 3:
                # converted in bulk by the caller (eager: now, to free the lists)
                return _Deferred(_ring(coords[0]) if eager else coords[0]), ""
            return Polygon(_ring(coords[0])), ""
        return _polygon(coords), ""
    if kind == "MultiPolygon":
        if not isinstance(coords, list) or not coords:
            raise _SkipError(MALFORMED_COORDINATES, _short(coords))
        polys: list[Polygon] = []
        for c in coords:
            try:
                polys.append(_polygon(c))
            except _SkipError as e:
                if e.reason != DEGENERATE:
                    raise
        if not polys:
            raise _SkipError(DEGENERATE, "MultiPolygon without a non-degenerate part")
        return MultiPolygon(polys), ""
    raise _SkipError(UNSUPPORTED_GEOMETRY, str(kind))


def _collection(geometry: Mapping[str, Any]) -> tuple[BaseGeometry, str]:
    """Collect the polygons of a (nested) GeometryCollection, walked iteratively."""
    parts: list[Polygon] = []
    dropped: Counter[str] = Counter()
    stack: list[tuple[Any, int]] = [(g, 1) for g in reversed(geometry.get("geometries") or [])]
    while stack:
        g, depth = stack.pop()
        if isinstance(g, Mapping) and g.get("type") == "GeometryCollection":
            if depth >= MAX_DEPTH:
                raise _SkipError(
                    MALFORMED_COORDINATES, f"GeometryCollection nested over {MAX_DEPTH} levels"
                )
            members = g.get("geometries") or []
            stack.extend(
                (m, depth + 1) for m in reversed(members if isinstance(members, list) else [])
            )
            continue
        try:
            geom, _ = _geometry_from_geojson(g)
        except _SkipError as e:
            dropped[str(g.get("type") if isinstance(g, Mapping) else e.reason)] += 1
            continue
        if isinstance(geom, _Deferred):
            geom = Polygon(_ring(geom.coords))
        parts.extend(getattr(geom, "geoms", [geom]))
    if not parts:
        raise _SkipError(UNSUPPORTED_GEOMETRY, "GeometryCollection without polygons")
    merged: BaseGeometry = parts[0] if len(parts) == 1 else MultiPolygon(parts)
    return merged, ", ".join(f"{n} {k}" for k, n in dropped.items())


def _polygonal_part(geom: BaseGeometry) -> BaseGeometry | None:
    """Keep only the polygons of a geometry (make_valid may return lines and points)."""
    if geom.is_empty:
        return None
    if isinstance(geom, (Polygon, MultiPolygon)):
        return geom
    polys = [g for g in getattr(geom, "geoms", []) if isinstance(g, (Polygon, MultiPolygon))]
    flat: list[Polygon] = []
    for p in polys:
        flat.extend(getattr(p, "geoms", [p]))
    if not flat:
        return None
    return flat[0] if len(flat) == 1 else MultiPolygon(flat)


class _Props(NamedTuple):
    """A feature's fields other than the geometry, in :class:`Annotation`'s order.

    A tuple, not a dict: a streamed file holds one per feature until the end of
    the read (96 bytes instead of 272).
    """

    class_name: str | None
    color: RGB | None
    object_type: str
    name: str | None
    object_id: str | None
    measurements: dict[str, float]
    properties: Mapping[str, Any]


def _properties_of(feature: Mapping[str, Any]) -> _Props:
    props = feature.get("properties") or {}
    if not isinstance(props, Mapping):
        props = {}
    object_type = props.get("objectType") or props.get("object_type")
    fid = feature.get("id")
    if object_type is None and isinstance(fid, str) and fid in _LEGACY_TYPES:
        object_type = _LEGACY_TYPES[fid]
        fid = None
    object_type = sys.intern(str(object_type)) if object_type else "annotation"
    object_type = _LEGACY_TYPES.get(object_type, object_type)

    class_name, color = _classification_of(props.get("classification"))
    if class_name is not None:  # thousands of objects share a few class names
        class_name = sys.intern(class_name)
    if color is None and props.get("color") is not None and class_name is None:
        color = _color_of(props.get("color"))
    name = props.get("name")
    measurements = _measurements_of(props.get("measurements"))
    extra = {k: v for k, v in props.items() if k not in _KNOWN_PROPERTIES}
    for key in ("nucleusGeometry",):
        if key in feature:
            extra[key] = feature[key]
    return _Props(
        class_name,
        color,
        object_type,
        None if name is None else str(name),
        None if fid is None else str(fid),
        measurements,
        extra,
    )


def _color_of(value: Any) -> RGB | None:
    if isinstance(value, list) and len(value) == 3 and all(type(v) is int for v in value):
        r, g, b = value
        return (min(max(r, 0), 255), min(max(g, 0), 255), min(max(b, 0), 255))
    if isinstance(value, (list, tuple)) and len(value) >= 3:
        try:
            r, g, b = (int(round(float(v))) for v in value[:3])
        except (TypeError, ValueError):
            return None
        return (min(max(r, 0), 255), min(max(g, 0), 255), min(max(b, 0), 255))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return unpack_rgb(int(value))
    if isinstance(value, str) and re.fullmatch(r"#?[0-9a-fA-F]{6}", value):
        h = value.lstrip("#")
        return (int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16))
    return None


def _classification_of(value: Any) -> tuple[str | None, RGB | None]:
    if value is None:
        return None, None
    if isinstance(value, str):
        return value, None
    if not isinstance(value, Mapping):
        return None, None
    name = value.get("name")
    if name is None and isinstance(value.get("names"), list):  # derived classes
        name = ": ".join(str(n) for n in value["names"])
    color = _color_of(value.get("color"))
    if color is None and "colorRGB" in value:
        color = _color_of(value.get("colorRGB"))
    return (None if name is None else str(name)), color


def _measurements_of(value: Any) -> dict[str, float]:
    out: dict[str, float] = {}
    if isinstance(value, Mapping):
        items: Iterable[tuple[Any, Any]] = value.items()
    elif isinstance(value, list):  # QuPath < 0.4: [{"name": ..., "value": ...}]
        items = [(m.get("name"), m.get("value")) for m in value if isinstance(m, Mapping)]
    else:
        return out
    for k, v in items:
        if k is None:
            continue
        try:
            out[sys.intern(str(k))] = float(v) if v is not None else math.nan
        except (TypeError, ValueError):
            continue
    return out


# --------------------------------------------------------------------------- writing
def annotations_to_feature_collection(annotations: Iterable[Annotation]) -> dict[str, Any]:
    """Return the QuPath-style FeatureCollection (a dict) for `annotations`."""
    doc: dict[str, Any] = json.loads(_feature_collection_text(annotations))
    return doc


def _feature_collection_text(
    annotations: Iterable[Annotation], *, indent: int | None = None
) -> str:
    annotations = list(annotations)
    geoms = np.array([a.geometry for a in annotations], dtype=object)
    geom_texts = shapely.to_geojson(geoms) if len(geoms) else np.zeros(0, dtype=object)
    chunks: list[str] = []
    for a, gtext in zip(annotations, geom_texts, strict=True):
        props: dict[str, Any] = {"objectType": a.object_type}
        if a.name is not None:
            props["name"] = a.name
        if a.class_name is not None:
            color = a.color
            if color is None:
                cls = find_class(a.class_name)
                color = cls.color if cls is not None else fallback_color(a.class_name)
            props["classification"] = {"name": a.class_name, "color": [int(c) for c in color]}
        for k, v in a.properties.items():
            if k != "nucleusGeometry":
                props[k] = v
        # QuPath reads measurements as numbers: leave out NaN/inf (JSON has no NaN).
        measurements = {
            k: v
            for k, v in a.measurements.items()
            if not (isinstance(v, float) and not math.isfinite(v))
        }
        if measurements:
            props["measurements"] = measurements
        fid = a.object_id or str(uuid.uuid4())
        head = f'{{"type":"Feature","id":{json.dumps(fid)},"geometry":{gtext}'
        nucleus = a.properties.get("nucleusGeometry")
        if nucleus is not None:
            head += f',"nucleusGeometry":{json.dumps(nucleus)}'
        chunks.append(f'{head},"properties":{json.dumps(props, ensure_ascii=False)}}}')
    sep = ",\n" if indent is not None else ","
    return '{"type":"FeatureCollection","features":[' + sep.join(chunks) + "]}"


def write_geojson(
    annotations: Iterable[Annotation],
    path: str | os.PathLike[str],
) -> Path:
    """Write annotations as a QuPath-compatible GeoJSON FeatureCollection.

    Each feature gets ``objectType``, ``classification`` ``{name, color}`` (when
    classified), ``name``, ``measurements`` and a UUID ``id``, with coordinates
    in level-0 pixels (x, y) at full floating-point precision. The file is
    written to a temporary name and renamed, so a crash never leaves half a file.

    Parameters
    ----------
    annotations : iterable of Annotation
        What to write.
    path : path
        Output file (``.geojson``).

    Returns
    -------
    Path
        The written file.
    """
    path = Path(path)
    text = _feature_collection_text(annotations, indent=0)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


# --------------------------------------------------------------------------- columnar store
_T = TypeVar("_T")


class _BuiltSequence(Sequence[_T]):
    """Read-only sequence whose items are built when asked for (the columnar classes' protocol).

    A subclass gives ``__len__`` and :meth:`_item`; it overrides :meth:`_items`
    and ``__iter__`` when it can build many items at once.
    """

    #: What an item is called in the ``IndexError`` of an out-of-range index.
    _item_name = "item"

    @abstractmethod
    def _item(self, k: int) -> _T:
        """Build item ``k`` (``0 <= k < len(self)``)."""

    def _items(self, i: slice) -> list[_T]:
        """Build the items of the slice ``i``, one by one unless a subclass does better."""
        return [self._item(k) for k in range(*i.indices(len(self)))]

    @overload
    def __getitem__(self, i: int) -> _T: ...

    @overload
    def __getitem__(self, i: slice) -> list[_T]: ...

    def __getitem__(self, i: int | slice) -> _T | list[_T]:
        if isinstance(i, slice):
            return self._items(i)
        n = len(self)
        k = int(i) + n if int(i) < 0 else int(i)
        if not 0 <= k < n:
            raise IndexError(f"{self._item_name} index {i} out of range ({n})")
        return self._item(k)

    def __iter__(self) -> Iterator[_T]:
        for k in range(len(self)):
            yield self._item(k)


class ColumnarAnnotations(_BuiltSequence[Annotation]):
    """Annotations held as arrays; each :class:`Annotation` is built when accessed.

    A big streamed file of detections would otherwise hold one shapely polygon
    (about 1.4 KB), one measurements dict and one Annotation per object. Here a
    hole-less polygon read unchanged is one run of a flat float64 vertex buffer
    (exact coordinates); other geometries (holes, several parts, repaired,
    clipped) are kept as shapely objects. Classes and object types are codes
    into a small table, measurements a flat float64 buffer with one key tuple
    per distinct set of names.

    Indexing and iterating give new, equal :class:`Annotation` objects each time
    (``measurements`` and empty ``properties`` are fresh dicts);
    :meth:`geometries` builds many outlines at once.
    """

    _item_name = "annotation"

    def __init__(self) -> None:
        self._xy = array("d")  # x0, y0, x1, y1, ... of the plain polygons
        self._voff = array("q", [0])  # vertex offsets (pairs), one past each object
        self._special: dict[int, BaseGeometry] = {}
        self._meta = array("i")  # code into _meta_table: (class_name, color, object_type)
        self._meta_table: list[tuple[str | None, RGB | None, str]] = []
        self._meta_codes: dict[tuple[str | None, RGB | None, str], int] = {}
        self._names: list[str | None] = []
        self._ids: list[str | None] = []
        self._props: list[Mapping[str, Any] | None] = []
        self._mkeys = array("i")  # code into _mkey_table
        self._mkey_table: list[tuple[str, ...]] = []
        self._mkey_codes: dict[tuple[str, ...], int] = {}
        self._mvals = array("d")
        self._moff = array("q", [0])
        self._frozen: tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]] | None = None

    # ---- building
    def append(self, geom: BaseGeometry, props: _Props, *, plain: bool) -> None:
        """Add one object; ``plain``: ``geom`` is a hole-less Polygon (stored as vertices)."""
        self._frozen = None
        i = len(self._names)
        if plain:
            self._xy.frombytes(np.ascontiguousarray(shapely.get_coordinates(geom)).tobytes())
        else:
            self._special[i] = geom
        self._voff.append(len(self._xy) // 2)
        key = (props.class_name, props.color, props.object_type)
        code = self._meta_codes.get(key)
        if code is None:
            code = self._meta_codes[key] = len(self._meta_table)
            self._meta_table.append(key)
        self._meta.append(code)
        self._names.append(props.name)
        self._ids.append(props.object_id)
        self._props.append(props.properties or None)
        names = tuple(props.measurements)
        mcode = self._mkey_codes.get(names)
        if mcode is None:
            mcode = self._mkey_codes[names] = len(self._mkey_table)
            self._mkey_table.append(names)
        self._mkeys.append(mcode)
        self._mvals.extend(props.measurements.values())
        self._moff.append(len(self._mvals))

    def _arrays(self) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64]]:
        if self._frozen is None:
            xy = np.frombuffer(self._xy, dtype=np.float64).reshape(-1, 2)
            self._frozen = (xy, np.frombuffer(self._voff, dtype=np.int64))
        return self._frozen

    # ---- columns
    def object_types(self) -> list[str]:
        """Object type of every object."""
        table = [t for _, _, t in self._meta_table]
        return [table[c] for c in self._meta]

    def meta_codes(self) -> npt.NDArray[np.int32]:
        """Per object, its code into :attr:`meta_table`."""
        return np.frombuffer(self._meta, dtype=np.int32)

    @property
    def meta_table(self) -> list[tuple[str | None, RGB | None, str]]:
        """The distinct ``(class_name, color, object_type)`` of the objects."""
        return self._meta_table

    def names(self) -> list[str | None]:
        """Each object's name."""
        return self._names

    def object_ids(self) -> list[str | None]:
        """Each object's id."""
        return self._ids

    def measurements_of(self, i: int) -> dict[str, float]:
        """Measurements of object ``i`` (a new dict)."""
        keys = self._mkey_table[self._mkeys[i]]
        return dict(zip(keys, self._mvals[self._moff[i] : self._moff[i + 1]], strict=True))

    def properties_of(self, i: int) -> Mapping[str, Any]:
        """Other properties of object ``i`` (the stored dict, or a new empty one)."""
        props = self._props[i]
        return props if props is not None else {}

    def geometries(self, index: npt.ArrayLike | None = None) -> npt.NDArray[np.object_]:
        """Build the outlines of the objects at ``index`` (default all) in bulk."""
        xy, voff = self._arrays()
        idx = np.arange(len(self)) if index is None else np.asarray(index, dtype=np.int64)
        out = np.empty(len(idx), dtype=object)
        if not len(idx):
            return out
        starts, counts = voff[idx], voff[idx + 1] - voff[idx]
        plain = np.flatnonzero(counts > 0)
        if plain.size:
            c = counts[plain]
            first = np.repeat(starts[plain] - np.r_[0, np.cumsum(c)[:-1]], c)
            coords = xy[first + np.arange(int(c.sum()))]
            rings = shapely.linearrings(coords, indices=np.repeat(np.arange(plain.size), c))
            out[plain] = shapely.polygons(rings)
        for k in np.flatnonzero(counts == 0):
            out[k] = self._special[int(idx[k])]
        return out

    def geometry(self, i: int) -> BaseGeometry:
        """Build (or return) the outline of object ``i``."""
        special = self._special.get(i)
        if special is not None:
            return special
        xy, voff = self._arrays()
        return Polygon(xy[voff[i] : voff[i + 1]])

    # ---- Sequence
    def __len__(self) -> int:
        return len(self._names)

    def _item(self, k: int) -> Annotation:
        """Build the :class:`Annotation` of object ``k``."""
        class_name, color, object_type = self._meta_table[self._meta[k]]
        return Annotation(
            self.geometry(k),
            class_name,
            color,
            object_type,
            self._names[k],
            self._ids[k],
            self.measurements_of(k),
            self.properties_of(k),
        )

    def __repr__(self) -> str:
        return f"<ColumnarAnnotations: {len(self)} objects>"


class GeometryView(_BuiltSequence[BaseGeometry]):
    """Read-only sequence of the outlines of some objects of a :class:`ColumnarAnnotations`.

    What a Points layer of detections keeps in ``metadata["geometries"]``: each
    outline is built when asked for, so the layer holds no shapely object.
    """

    _item_name = "geometry"

    def __init__(self, store: ColumnarAnnotations, index: npt.NDArray[np.int64]) -> None:
        self._store = store
        self._index = index

    def __len__(self) -> int:
        return len(self._index)

    def _item(self, k: int) -> BaseGeometry:
        """Build the outline of the ``k``-th object of the view."""
        return self._store.geometry(int(self._index[k]))

    def _items(self, i: slice) -> list[BaseGeometry]:
        """Build the outlines of a slice of the view in bulk."""
        return list(self._store.geometries(self._index[i]))

    def __iter__(self) -> Iterator[BaseGeometry]:
        for k in range(0, len(self._index), _BUILD_BATCH):
            yield from self._store.geometries(self._index[k : k + _BUILD_BATCH])

    def __array__(self, dtype: Any = None, copy: Any = None) -> npt.NDArray[np.object_]:
        return self._store.geometries(self._index)
