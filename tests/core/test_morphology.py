"""Morphology on shapes with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from shapely.geometry import MultiPolygon, Point, Polygon, box

from napari_xai.core.annotations.morphology import (
    MORPHOLOGY_COLUMNS,
    measure_geometries,
    measure_labels,
)


def test_disc_is_circular_and_not_eccentric() -> None:
    disc = Point(500, 300).buffer(40, quad_segs=128)
    m = measure_geometries([disc], mpp=0.25).iloc[0]
    assert m["circularity"] == pytest.approx(1.0, abs=1e-3)
    assert m["eccentricity"] == pytest.approx(0.0, abs=1e-3)
    assert m["solidity"] == pytest.approx(1.0)
    assert m["extent"] == pytest.approx(math.pi / 4, rel=1e-3)
    assert m["area_px"] == pytest.approx(math.pi * 40**2, rel=1e-3)
    assert (m["centroid_row"], m["centroid_col"]) == pytest.approx((300, 500))


def test_square_area_in_square_micrometres() -> None:
    square = box(0, 0, 200, 200)  # 200 px at 0.5 µm/px = 100 µm a side
    m = measure_geometries([square], mpp=0.5).iloc[0]
    assert m["area_px"] == 40_000
    assert m["area_um2"] == pytest.approx(10_000)
    assert m["perimeter_px"] == 800 and m["perimeter_um"] == pytest.approx(400)
    assert m["circularity"] == pytest.approx(math.pi / 4)
    assert m["extent"] == 1.0 and m["eccentricity"] == pytest.approx(0.0, abs=1e-12)


def test_no_mpp_means_no_micrometres() -> None:
    m = measure_geometries([box(0, 0, 10, 10)]).iloc[0]
    assert math.isnan(m["area_um2"]) and math.isnan(m["perimeter_um"])
    assert m["area_px"] == 100


def test_rectangle_eccentricity_and_rotation_invariance() -> None:
    rect = Polygon([(0, 0), (40, 0), (40, 10), (0, 10)])
    rotated = shapely.affinity.rotate(rect, 33, origin="centroid")
    t = measure_geometries([rect, rotated])
    expected = math.sqrt(1 - (10**2 / 12) / (40**2 / 12))  # from second moments
    assert t["eccentricity"].tolist() == pytest.approx([expected, expected], rel=1e-6)
    assert t["extent"][0] == 1.0 and t["extent"][1] < 0.5


def test_holes_and_parts_count() -> None:
    ring = box(0, 0, 100, 100).difference(box(25, 25, 75, 75))
    concave = Polygon([(0, 0), (100, 0), (100, 100), (50, 50), (0, 100)])
    two = MultiPolygon([box(0, 0, 10, 10), box(20, 0, 30, 10)])
    t = measure_geometries([ring, concave, two], mpp=1.0)
    assert t["area_px"].tolist() == [7500, 7500, 200]
    assert t["perimeter_px"][0] == 600  # outer and inner rings
    assert t["solidity"][1] == pytest.approx(0.75)
    assert t["solidity"][2] == pytest.approx(200 / 300)
    assert t["centroid_col"][2] == pytest.approx(15)
    assert t["eccentricity"][0] == pytest.approx(0, abs=1e-12)


def test_downsampled_coordinates_report_level0_pixels() -> None:
    t = measure_geometries([box(0, 0, 10, 10)], downsample=4, mpp=0.5)
    assert t["area_px"][0] == 1600 and t["area_um2"][0] == pytest.approx(400)


def test_labels_match_geometry_measures() -> None:
    yy, xx = np.mgrid[:200, :200]
    labels = np.zeros((200, 200), np.int32)
    labels[(yy - 100) ** 2 + (xx - 60) ** 2 <= 30**2] = 1
    labels[20:60, 120:180] = 2
    t = measure_labels(labels, mpp=0.5)
    assert list(t.columns) == list(MORPHOLOGY_COLUMNS)
    assert t.index.tolist() == [1, 2]
    assert t.loc[1, "circularity"] == pytest.approx(1.0, abs=0.1)
    assert t.loc[1, "eccentricity"] < 0.05
    assert t.loc[2, "area_px"] == 40 * 60 and t.loc[2, "area_um2"] == pytest.approx(600)
    assert t.loc[2, "extent"] == 1.0
    assert (t.loc[2, "centroid_row"], t.loc[2, "centroid_col"]) == pytest.approx((39.5, 149.5))


def test_empty_input() -> None:
    assert len(measure_geometries([])) == 0
