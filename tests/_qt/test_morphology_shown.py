"""The annotation widget shows a shape's morphology as soon as it is drawn or edited,
measured off the GUI thread, and the GeoJSON it saves carries it as QuPath measurements."""

from __future__ import annotations

import json
import math
import threading
from pathlib import Path

import numpy as np
import pytest
from shapely.geometry import Polygon

MPP = 0.5


def _rect(r0: float, c0: float, h: float, w: float) -> np.ndarray:
    return np.array([[r0, c0], [r0, c0 + w], [r0 + h, c0 + w], [r0 + h, c0]], dtype=float)


def _truth(rc: np.ndarray) -> tuple[float, float]:
    """Area (µm²) and perimeter (µm) of a (row, col) polygon, from shapely."""
    poly = Polygon(rc[:, ::-1])
    return poly.area * MPP**2, poly.length * MPP


def test_draw_a_shape_and_the_widget_shows_its_area(
    make_napari_viewer, qtbot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from napari_xai._widgets.annotate import AnnotationWidget
    from napari_xai.core.layers import annotations as core_layers

    measured_in: list[threading.Thread] = []
    real = core_layers.annotations_features

    def recording(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        measured_in.append(threading.current_thread())
        return real(*args, **kwargs)

    monkeypatch.setattr(core_layers, "annotations_features", recording)
    viewer = make_napari_viewer(show=True)
    viewer.add_image(
        np.zeros((1000, 1200, 3), np.uint8), rgb=True, name="slide",
        metadata={"mpp": MPP, "shape_rc": (1000, 1200)},
    )  # fmt: skip
    _, widget = viewer.window.add_plugin_dock_widget("napari-xai", "Annotate")
    assert isinstance(widget, AnnotationWidget)
    layer = widget._on_new_layer()
    assert layer.mode == "add_polygon"

    def shown(text: str) -> None:
        qtbot.waitUntil(lambda: text in widget._morphology.value, timeout=60_000)

    # what the polygon tool leaves when a user finishes drawing: one added shape
    first = _rect(100, 100, 300, 400)
    layer.add_polygons([first])
    area_um2, perimeter_um = _truth(first)
    assert area_um2 == pytest.approx(300 * 400 * MPP**2)
    shown(f"area {area_um2:,.0f} µm²")
    assert measured_in and all(t is not threading.main_thread() for t in measured_in)
    shown_text = widget._morphology.value
    assert f"perimeter {perimeter_um:,.0f} µm" in shown_text
    assert "circularity 0.77" in shown_text and "solidity 1.00" in shown_text  # 4πA/P² of 3x4
    assert not widget._morphology.native.isHidden()
    assert layer.features["area_um2"][0] == pytest.approx(area_um2)
    assert layer.features["perimeter_um"][0] == pytest.approx(perimeter_um)

    # editing the shape (moving a vertex) updates what is shown
    edited = _rect(100, 100, 300, 400)
    edited[2] = [400.0, 700.0]  # a trapezoid now
    layer.data = [edited]
    new_area, new_perimeter = _truth(edited)
    assert new_area == pytest.approx(300 * (400 + 600) / 2 * MPP**2)
    shown(f"area {new_area:,.0f} µm²")
    assert f"perimeter {new_perimeter:,.0f} µm" in widget._morphology.value
    hull = Polygon(edited[:, ::-1])
    assert layer.features["solidity"][0] == pytest.approx(hull.area / hull.convex_hull.area)

    # a second shape is shown when drawn; selecting the first shows the first again
    layer.add_polygons([_rect(600, 600, 100, 100)])
    shown(f"area {100 * 100 * MPP**2:,.0f} µm²")
    layer.selected_data = {0}
    assert widget._morphology.value.startswith("#1:")
    assert f"area {new_area:,.0f} µm²" in widget._morphology.value
    assert all(t is not threading.main_thread() for t in measured_in)

    # saved with the GeoJSON, as QuPath measurements
    widget._path.value = tmp_path / "regions.geojson"
    widget._on_save()
    qtbot.waitUntil(lambda: widget._worker is None, timeout=60_000)
    features = json.loads((tmp_path / "regions.geojson").read_text(encoding="utf-8"))["features"]
    first_m = features[0]["properties"]["measurements"]
    assert first_m["Area µm^2"] == pytest.approx(new_area)
    assert first_m["Area px^2"] == pytest.approx(new_area / MPP**2)
    assert 0 < first_m["Circularity"] < 1 and first_m["Solidity"] == pytest.approx(1.0)
    second = features[1]["properties"]["measurements"]
    assert second["Circularity"] == pytest.approx(math.pi / 4)  # a square


def test_a_late_answer_for_an_earlier_edit_is_not_shown(
    make_napari_viewer, qtbot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two edits in a row, the first one's answer held back: only the latest lands."""
    from napari_xai._widgets import _morphology
    from napari_xai._widgets.annotate import AnnotationWidget
    from napari_xai.core.layers import editing

    gate, calls, answers = threading.Event(), [], []
    real = editing.measure_shapes

    def first_one_late(snapshot):  # noqa: ANN001, ANN202
        calls.append(snapshot)
        out = real(snapshot)
        if len(calls) == 1:
            assert gate.wait(60)
        return out

    real_on_measured = _morphology.LiveMorphology._on_measured

    def counted(self, layer, worker, table) -> None:  # noqa: ANN001
        answers.append(len(table))
        real_on_measured(self, layer, worker, table)

    monkeypatch.setattr(editing, "measure_shapes", first_one_late)
    monkeypatch.setattr(_morphology.LiveMorphology, "_on_measured", counted)
    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((1000, 1200, 3), np.uint8), rgb=True, metadata={"mpp": MPP})
    widget = AnnotationWidget(viewer)
    layer = widget._on_new_layer()
    layer.add_polygons([_rect(0, 0, 10, 10)])  # its answer is held back
    big = _rect(0, 0, 500, 600)
    layer.data = [big]
    area, _ = _truth(big)
    qtbot.waitUntil(lambda: f"area {area:,.0f} µm²" in widget._morphology.value, timeout=60_000)
    gate.set()
    qtbot.waitUntil(lambda: len(answers) == 2, timeout=60_000)  # the late one arrived
    assert layer.features["area_um2"].tolist() == [pytest.approx(area)]
    assert f"area {area:,.0f} µm²" in widget._morphology.value
