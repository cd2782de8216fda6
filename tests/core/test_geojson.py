"""QuPath-style GeoJSON: round trips, QuPath exports, bad input, napari layer data."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd  # noqa: TID253
import pytest
from shapely.geometry import MultiPolygon, Point, Polygon, box

from napari_xai.core.annotations.classes import (
    DEFAULT_CLASSES,
    fallback_color,
    find_class,
    pack_rgb,
    unpack_rgb,
)
from napari_xai.core.annotations.geojson import (
    CLIPPED,
    MALFORMED_COORDINATES,
    MALFORMED_JSON,
    OUTSIDE,
    REPAIRED,
    UNKNOWN_CLASS,
    UNSUPPORTED_GEOMETRY,
    Annotation,
    AnnotationError,
    read_geojson,
    write_geojson,
)
from napari_xai.core.annotations.raster import labels_to_annotations, rasterize_annotations
from napari_xai.core.layers.annotations import (
    annotations_to_layer_data,
    geometry_to_path_rc,
    path_rc_to_geometry,
    shapes_to_annotations,
)
from napari_xai.core.layers.coords import rc_to_xy, xy_to_rc
from napari_xai.core.naming import class_colour, rgb255

DONUT = box(100, 200, 400, 500).difference(box(200, 300, 300, 400))  # x 100..400, y 200..500
TWO_PARTS = MultiPolygon(
    [
        Polygon([(1000, 1000), (1200, 1000), (1200, 1100), (1000, 1100)]),
        box(2000, 50, 2300, 350).difference(Point(2150, 200).buffer(50)),
    ]
)


def _annotations() -> list[Annotation]:
    return [
        Annotation(
            DONUT,
            "Tumor",
            (200, 0, 0),
            name="tumour 1",
            object_id="a-1",
            measurements={"Area µm^2": 12.5},
        ),
        Annotation(TWO_PARTS, "Stroma", (150, 200, 150), object_id="a-2"),
        Annotation(
            box(10.25, 20.125, 30.5, 40.75),
            None,
            object_type="detection",
            object_id="d-1",
            properties={"isLocked": True},
        ),
        Annotation(box(500, 500, 600, 650), "My class", (1, 2, 3), object_id="a-3"),
    ]


def test_round_trip_keeps_geometry_class_colour_and_properties(tmp_path: Path) -> None:
    original = _annotations()
    path = write_geojson(original, tmp_path / "a.geojson")
    back = read_geojson(path)
    assert back.report.n_features == 4 and back.report.n_imported == 4
    assert back.report.skipped == [] and back.report.changed == []
    assert back.report.unknown_classes == {"My class": 1}
    for a, b in zip(original, back.annotations, strict=True):
        assert b.geometry.equals_exact(a.geometry, tolerance=0)
        assert b.geometry.geom_type == a.geometry.geom_type
        assert (b.class_name, b.color, b.object_type, b.name, b.object_id) == (
            a.class_name,
            a.color,
            a.object_type,
            a.name,
            a.object_id,
        )
        assert dict(b.measurements) == dict(a.measurements)
        assert dict(b.properties) == dict(a.properties)
    assert len(back.annotations[0].geometry.interiors) == 1
    assert len(back.annotations[1].geometry.geoms) == 2
    assert len(back.annotations[1].geometry.geoms[1].interiors) == 1


def test_written_file_follows_qupath_layout(tmp_path: Path) -> None:
    path = write_geojson(_annotations(), tmp_path / "a.geojson")
    doc = json.loads(path.read_text())
    assert doc["type"] == "FeatureCollection"
    f0 = doc["features"][0]
    assert f0["type"] == "Feature" and f0["id"] == "a-1"
    assert f0["geometry"]["type"] == "Polygon"
    assert f0["properties"]["objectType"] == "annotation"
    assert f0["properties"]["classification"] == {"name": "Tumor", "color": [200, 0, 0]}
    assert f0["properties"]["measurements"] == {"Area µm^2": 12.5}
    # Exterior first, then the hole; level-0 (x, y), closed rings.
    ext, hole = f0["geometry"]["coordinates"]
    assert ext[0] == ext[-1] and {tuple(p) for p in ext} == {
        (100, 200),
        (400, 200),
        (400, 500),
        (100, 500),
    }
    assert len(hole) == 5
    assert doc["features"][2]["properties"]["objectType"] == "detection"
    assert "classification" not in doc["features"][2]["properties"]
    # No temporary file left behind.
    assert [p.name for p in tmp_path.iterdir()] == ["a.geojson"]


# A file laid out as QuPath 0.4+ writes it ("File > Export objects as GeoJSON",
# FEATURE_COLLECTION), typed by hand from QuPath's documented format.
QUPATH_04 = """{
  "type": "FeatureCollection",
  "features": [
    {
      "type": "Feature",
      "id": "4b5a2b0e-7a55-4c8c-9d7c-1d2b3c4d5e6f",
      "geometry": {
        "type": "Polygon",
        "coordinates": [[[1000, 2000], [1600, 2000], [1600, 2400], [1000, 2400], [1000, 2000]],
                        [[1200, 2100], [1300, 2100], [1300, 2200], [1200, 2200], [1200, 2100]]]
      },
      "properties": {
        "objectType": "annotation",
        "name": "Tumour core",
        "classification": {"name": "Tumor", "color": [200, 0, 0]},
        "isLocked": true,
        "measurements": {"Num Detections": 2}
      }
    },
    {
      "type": "Feature",
      "id": "9c9b9a99-1111-2222-3333-444455556666",
      "geometry": {
        "type": "MultiPolygon",
        "coordinates": [[[[0, 0], [50, 0], [50, 50], [0, 0]]],
                        [[[100, 100], [150, 100], [150, 150], [100, 100]]]]
      },
      "properties": {"objectType": "annotation",
                     "classification": {"name": "Stroma", "color": [150, 200, 150]}}
    },
    {
      "type": "Feature",
      "id": "0e0e0e0e-aaaa-bbbb-cccc-dddddddddddd",
      "geometry": {"type": "Polygon",
                   "coordinates": [[[1100, 2050], [1110, 2050], [1110, 2060], [1100, 2050]]]},
      "nucleusGeometry": {"type": "Polygon", "coordinates":
                          [[[1102, 2052], [1105, 2052], [1105, 2055], [1102, 2052]]]},
      "properties": {"objectType": "cell",
                     "classification": {"name": "Tumor", "color": [200, 0, 0]},
                     "measurements": {"Nucleus: Area": 4.5}}
    },
    {
      "type": "Feature",
      "id": "1f1f1f1f-aaaa-bbbb-cccc-dddddddddddd",
      "geometry": {"type": "Polygon",
                   "coordinates": [[[10, 10], [20, 10], [20, 20], [10, 20], [10, 10]]]},
      "properties": {"objectType": "annotation"}
    }
  ]
}"""

# QuPath 0.2/0.3 (the format many exports still have): type in "id", packed colour.
QUPATH_02 = """[
  {"type": "Feature", "id": "PathAnnotationObject",
   "geometry": {"type": "Polygon",
                "coordinates": [[[5, 5], [25, 5], [25, 25], [5, 25], [5, 5]]]},
   "properties": {"classification": {"name": "Necrosis", "colorRGB": -13487566},
                  "isLocked": false,
                  "measurements": [{"name": "Area px^2", "value": 400.0}]}},
  {"type": "Feature", "id": "PathDetectionObject",
   "geometry": {"type": "Polygon",
                "coordinates": [[[30, 30], [35, 30], [35, 35], [30, 35], [30, 30]]]},
   "properties": {"classification": {"name": "Immune cells", "colorRGB": -6268256}}}
]"""


def test_reads_qupath_04_export(tmp_path: Path) -> None:
    path = tmp_path / "qupath.geojson"
    path.write_text(QUPATH_04)
    aset = read_geojson(path, shape_rc=(5000, 5000))
    assert aset.report.clean, aset.report.summary()
    a0, a1, cell, unclassified = aset.annotations
    assert a0.class_name == "Tumor" and a0.color == (200, 0, 0) and a0.name == "Tumour core"
    assert a0.object_id == "4b5a2b0e-7a55-4c8c-9d7c-1d2b3c4d5e6f"
    assert a0.geometry.area == 600 * 400 - 100 * 100
    assert a0.properties == {"isLocked": True}
    assert a0.measurements == {"Num Detections": 2.0}
    assert a1.geometry.geom_type == "MultiPolygon" and a1.class_name == "Stroma"
    assert cell.object_type == "cell" and "nucleusGeometry" in cell.properties
    assert unclassified.class_name is None and unclassified.color is None
    # Writing it back keeps the nucleus and everything else.
    out = write_geojson(aset.annotations, tmp_path / "out.geojson")
    again = read_geojson(out)
    assert again.annotations[2].properties["nucleusGeometry"]["type"] == "Polygon"
    assert [a.object_id for a in again.annotations] == [a.object_id for a in aset.annotations]


def test_reads_qupath_02_legacy_export(tmp_path: Path) -> None:
    path = tmp_path / "legacy.geojson"
    path.write_text(QUPATH_02)
    aset = read_geojson(path)
    necrosis, immune = aset.annotations
    assert necrosis.object_type == "annotation" and necrosis.object_id is None
    assert necrosis.class_name == "Necrosis" and necrosis.color == (50, 50, 50)
    assert necrosis.measurements == {"Area px^2": 400.0}
    assert immune.object_type == "detection" and immune.color == (160, 90, 160)


def test_classes_and_packed_colours() -> None:
    # the default classes carry the plugin's colour-blind-safe palette (core/naming.py)
    assert find_class("Tumor").color == rgb255(class_colour("tumour")) == (230, 159, 0)
    assert find_class("tumor").name == "Tumor"
    assert find_class("Nope") is None
    names = {c.name for c in DEFAULT_CLASSES}
    assert {
        "Tumor",
        "Stroma",
        "Necrosis",
        "Immune cells",
        "Other",
        "Region*",
        "Ignore*",
        "Artefact",
    } <= names
    for c in DEFAULT_CLASSES:
        assert unpack_rgb(pack_rgb(c.color)) == c.color
    assert pack_rgb((50, 50, 50)) == -13487566
    assert fallback_color("x") == fallback_color("x") != fallback_color("y")


# --------------------------------------------------------------------------- bad input
def _feature(coords: list, cls: str | None = "Tumor", kind: str = "Polygon") -> dict:
    props = {"objectType": "annotation"}
    if cls is not None:
        props["classification"] = {"name": cls, "color": [200, 0, 0]}
    return {
        "type": "Feature",
        "geometry": {"type": kind, "coordinates": coords},
        "properties": props,
    }


def test_bad_features_are_skipped_or_repaired_with_reasons(tmp_path: Path) -> None:
    square = [[[10, 10], [60, 10], [60, 60], [10, 60], [10, 10]]]
    bowtie = [[[0, 0], [100, 100], [100, 0], [0, 100], [0, 0]]]
    features = [
        _feature(square),  # fine
        _feature(bowtie),  # self-intersecting -> repaired
        _feature([[[5000, 5000], [5100, 5000], [5100, 5100], [5000, 5000]]]),  # outside
        _feature([[[900, 900], [1100, 900], [1100, 1100], [900, 1100], [900, 900]]]),  # clipped
        _feature(square, cls="Mystery"),  # unknown class, kept
        _feature([[["a", "b"], [1, 2], [3, 4]]]),  # malformed coordinates
        _feature([10, 10], kind="Point"),  # unsupported geometry
        {"type": "Feature", "geometry": None, "properties": {}},  # no geometry
        "not a feature",
    ]
    path = tmp_path / "bad.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    aset = read_geojson(path, shape_rc=(1000, 1000))
    r = aset.report
    assert r.n_features == 9
    assert r.n_imported == 4  # square, repaired bowtie, clipped, unknown class
    assert r.n_imported + r.n_skipped == r.n_features  # nothing silently dropped
    assert r.skipped_counts() == {
        OUTSIDE: 1,
        MALFORMED_COORDINATES: 1,
        UNSUPPORTED_GEOMETRY: 1,
        "no geometry": 1,
        "not a GeoJSON Feature": 1,
    }
    assert r.changed_counts() == {REPAIRED: 1, CLIPPED: 1}
    assert r.unknown_classes == {"Mystery": 1}
    bow = aset.annotations[1].geometry
    assert bow.is_valid and bow.area == pytest.approx(5000)  # two triangles
    clipped = aset.annotations[2].geometry
    assert clipped.bounds == (900, 900, 1000, 1000)
    text = r.summary()
    assert "4 of 9" in text and "5 skipped" in text and "Mystery" in text
    json.dumps(r.to_dict())  # serialisable for manifests
    # Unknown classes can be refused instead, still reported.
    strict = read_geojson(path, shape_rc=(1000, 1000), unknown_classes="skip")
    assert strict.report.skipped_counts()[UNKNOWN_CLASS] == 1
    assert strict.report.n_imported == 3


def test_truncated_json_keeps_features_before_the_damage(tmp_path: Path) -> None:
    good = write_geojson(_annotations(), tmp_path / "good.geojson").read_text()
    cut = good[: good.index('"id":"a-3"') + 20]  # inside the 4th feature
    path = tmp_path / "cut.geojson"
    path.write_text(cut)
    aset = read_geojson(path)
    assert [a.object_id for a in aset.annotations] == ["a-1", "a-2", "d-1"]
    assert aset.report.skipped_counts() == {MALFORMED_JSON: 1}
    assert "line 4" in aset.report.skipped[0].detail
    assert aset.report.n_features == 4 == aset.report.n_imported + aset.report.n_skipped


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty file"),
        ("{not json", "not valid JSON"),
        ('{"type": "Topology"}', "not a GeoJSON FeatureCollection"),
        ("42", "not GeoJSON"),
    ],
)
def test_unreadable_files_raise_naming_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "x.geojson"
    path.write_text(text)
    with pytest.raises(AnnotationError, match=message) as info:
        read_geojson(path)
    assert str(path) in str(info.value)


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(AnnotationError, match="file not found"):
        read_geojson(tmp_path / "nope.geojson")


# --------------------------------------------------------------------------- napari side
def test_coordinates_cross_once_with_half_pixel_shift() -> None:
    xy = np.array([[10.0, 20.0], [0.0, 0.0]])
    rc = xy_to_rc(xy)
    assert rc.tolist() == [[19.5, 9.5], [-0.5, -0.5]]  # QuPath pixel corner -> napari
    assert np.array_equal(rc_to_xy(rc), xy)


@pytest.mark.parametrize("geom", [DONUT, TWO_PARTS, box(0, 0, 5, 5)])
def test_napari_path_encoding_round_trips_holes_and_parts(geom) -> None:  # noqa: ANN001
    path = geometry_to_path_rc(geom)
    back = path_rc_to_geometry(path)
    assert back is not None and back.equals(geom)
    # Filled the way napari fills it (even-odd over the whole path).
    from skimage.measure import points_in_poly

    inside_hole = xy_to_rc(np.array([[250.0, 350.0]]))
    if geom is DONUT:
        assert not points_in_poly(inside_hole, path)[0]
        assert points_in_poly(xy_to_rc(np.array([[150.0, 250.0]])), path)[0]


def test_layer_data_shapes_for_regions_points_for_many_detections() -> None:
    anns = _annotations()
    layers = annotations_to_layer_data(anns, name="slide", mpp=0.5)
    assert [(ldt[1]["name"], ldt[2]) for ldt in layers] == [
        ("slide", "shapes"),
        ("slide detections", "shapes"),
    ]
    data, kwargs, _ = layers[0]
    feats = kwargs["features"]
    assert list(feats["class"]) == ["Tumor", "Stroma", "My class"]
    assert feats["color"][0] == "#c80000"
    assert feats["area_px"][0] == pytest.approx(DONUT.area)
    assert feats["area_um2"][0] == pytest.approx(DONUT.area * 0.25)
    assert np.allclose(kwargs["face_color"][0][:3], np.array([200, 0, 0]) / 255)
    many = [
        Annotation(Point(i * 10 + 5, 7).buffer(3), "Tumor", object_type="detection")
        for i in range(30)
    ]
    layers = annotations_to_layer_data(many, name="n", max_shapes=10)
    ((pts, kw, kind),) = layers
    assert kind == "points" and pts.shape == (30, 2)
    assert np.allclose(pts[3], [7 - 0.5, 35 - 0.5], atol=1e-6)
    assert np.allclose(kw["size"], 6, rtol=0.01)
    # Layer data napari accepts.
    from napari.layers import Layer

    for ldt in [*annotations_to_layer_data(anns), *layers]:
        layer = Layer.create(*ldt)
        assert len(layer.features) == len(ldt[0])


def test_shapes_back_to_annotations_keeps_class_and_properties() -> None:
    anns = _annotations()
    (data, kwargs, _), (ddata, dkwargs, _) = annotations_to_layer_data(anns)
    back, report = shapes_to_annotations(
        data + ["ignored line"] * 0, shape_types="polygon", features=kwargs["features"]
    )
    assert report.n_imported == 3
    assert [a.class_name for a in back] == ["Tumor", "Stroma", "My class"]
    assert back[2].color == (1, 2, 3)
    assert back[0].measurements == {"Area µm^2": 12.5}
    assert back[0].geometry.equals(DONUT)
    lines, report = shapes_to_annotations(
        [np.array([[0, 0], [5, 5]]), np.array([[0, 0], [0, 5], [5, 5]])],
        shape_types=["line", "polygon"],
        default_class="Necrosis",
    )
    assert report.skipped_counts() == {"no area (line or path)": 1}
    assert lines[0].class_name == "Necrosis"
    assert lines[0].color == rgb255(class_colour("Necrosis")) == (51, 34, 136)


def test_rasterize_and_trace_back() -> None:
    anns = [Annotation(DONUT, "Tumor"), Annotation(box(1000, 1000, 1200, 1100), "Stroma")]
    labels = rasterize_annotations(anns, shape_rc=(1500, 1500), downsample=10)
    assert labels.shape == (150, 150)
    assert (labels == 1).sum() == pytest.approx(DONUT.area / 100, rel=0.1)
    assert labels[35, 25] == 0  # the hole (x 250, y 350)
    assert labels[25, 15] == 1 and labels[105, 110] == 2
    back = labels_to_annotations(labels, downsample=10, class_names={1: "Tumor", 2: "Stroma"})
    assert [a.class_name for a in back] == ["Tumor", "Stroma"]
    assert back[0].geometry.area == (labels == 1).sum() * 100  # exact pixel edges
    assert len(back[0].geometry.interiors) == 1
    assert back[0].geometry.symmetric_difference(DONUT).area < 0.1 * DONUT.area


def test_nan_and_degenerate_rings_in_the_bulk_path(tmp_path: Path) -> None:
    square = [[[10, 10], [60, 10], [60, 60], [10, 60], [10, 10]]]
    features = [
        _feature(square),
        _feature([[[0, 0], [float("nan"), 5], [5, 5], [0, 0]]]),
        _feature([[[0, 0], [5, 5], [0, 0]]]),  # closed ring of 3 points: a line
        _feature([[[0, 0], [5, 5], [5, 5], [0, 0]]]),  # no area
        _feature(square),
    ]
    path = tmp_path / "nan.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    r = read_geojson(path).report
    assert r.n_imported == 2 and r.n_features == 5
    assert r.skipped_counts() == {MALFORMED_COORDINATES: 1, "degenerate polygon (no area)": 2}
    assert sorted(s.index for s in r.skipped) == [1, 2, 3]


def test_points_back_to_annotations_keep_outlines_or_use_discs() -> None:
    from napari_xai.core.layers.annotations import points_to_annotations

    cells = [
        Annotation(Point(100, 50).buffer(6), "Tumor", object_type="cell", object_id="a"),
        Annotation(Point(300, 80).buffer(4), "Stroma", object_type="cell", object_id="b"),
    ]
    ((data, kwargs, kind),) = annotations_to_layer_data(cells, max_shapes=1)
    assert kind == "points"
    geoms = kwargs["metadata"]["geometries"]
    feats = kwargs["features"]
    # A point added by hand inherits geometry_index 0 but sits elsewhere: a disc.
    data = np.vstack([data, [[500.0, 500.0]]])
    feats = pd.concat([feats, feats.iloc[:1]], ignore_index=True)
    out, report = points_to_annotations(data, features=feats, geometries=geoms, sizes=8)
    assert [a.object_id for a in out] == ["a", "b", "a"]
    assert out[0].geometry.equals(cells[0].geometry) and out[1].object_type == "cell"
    assert out[2].geometry.centroid.distance(Point(500.5, 500.5)) < 1e-6
    assert out[2].geometry.area == pytest.approx(math.pi * 16, rel=0.1)
    assert report.changed_counts() == {"no outline kept: written as a disc of its size": 1}
