"""The annotation widget shows a shape's morphology as soon as it is drawn or edited,
and the GeoJSON it saves carries it as QuPath measurements."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

MPP = 0.5


def _rect(r0: float, c0: float, h: float, w: float) -> np.ndarray:
    return np.array([[r0, c0], [r0, c0 + w], [r0 + h, c0 + w], [r0 + h, c0]], dtype=float)


def test_draw_a_shape_and_the_widget_shows_its_area(make_napari_viewer, tmp_path: Path) -> None:
    from napari_xai._widgets.annotate import AnnotationWidget

    viewer = make_napari_viewer(show=True)
    viewer.add_image(
        np.zeros((1000, 1200, 3), np.uint8), rgb=True, name="slide",
        metadata={"mpp": MPP, "shape_rc": (1000, 1200)},
    )  # fmt: skip
    _, widget = viewer.window.add_plugin_dock_widget("napari-xai", "Annotate")
    assert isinstance(widget, AnnotationWidget)
    layer = widget._on_new_layer()
    assert layer.mode == "add_polygon"
    # what the polygon tool leaves when a user finishes drawing: one added shape
    layer.add_polygons([_rect(100, 100, 300, 400)])
    area_um2 = 300 * 400 * MPP**2
    shown = widget._morphology.value
    assert f"area {area_um2:,.0f} µm²" in shown, shown
    assert f"perimeter {2 * (300 + 400) * MPP:,.0f} µm" in shown
    assert "circularity 0.77" in shown and "solidity 1.00" in shown  # 4πA/P² of 3x4
    assert not widget._morphology.native.isHidden()

    # editing the shape (moving a vertex) updates what is shown
    edited = _rect(100, 100, 300, 400)
    edited[2] = [400.0, 700.0]  # a trapezoid now
    layer.data = [edited]
    new_area = 300 * (400 + 600) / 2 * MPP**2
    assert f"area {new_area:,.0f} µm²" in widget._morphology.value

    # a second shape is shown when drawn; selecting the first shows the first again
    layer.add_polygons([_rect(600, 600, 100, 100)])
    assert f"area {100 * 100 * MPP**2:,.0f} µm²" in widget._morphology.value
    layer.selected_data = {0}
    assert widget._morphology.value.startswith("#1:")
    assert f"area {new_area:,.0f} µm²" in widget._morphology.value

    # saved with the GeoJSON, as QuPath measurements
    widget._path.value = tmp_path / "regions.geojson"
    widget._on_save()
    features = json.loads((tmp_path / "regions.geojson").read_text(encoding="utf-8"))["features"]
    first = features[0]["properties"]["measurements"]
    assert first["Area µm^2"] == pytest.approx(new_area)
    assert first["Area px^2"] == pytest.approx(new_area / MPP**2)
    assert 0 < first["Circularity"] < 1 and first["Solidity"] == pytest.approx(1.0)
    second = features[1]["properties"]["measurements"]
    assert second["Circularity"] == pytest.approx(math.pi / 4)  # a square
