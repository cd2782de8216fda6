"""Annotation in a real viewer: draw, save through the writer, reopen at the same place."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from napari_xai.core.naming import class_colour, rgb255

SLIDE_RC = (1200, 1600)
MPP = 0.5


@pytest.fixture
def viewer(make_napari_viewer):  # noqa: ANN001, ANN201
    v = make_napari_viewer(show=True)  # a hidden canvas renders black screenshots
    rgb = np.full((*SLIDE_RC, 3), 230, np.uint8)
    rgb[300:900, 400:1200] = (200, 120, 170)  # "tissue"
    v.add_image(rgb, name="slide", rgb=True, metadata={"mpp": MPP})
    return v


def _done(qtbot, widget, worker=None):  # noqa: ANN001, ANN202
    """Wait for the widget's worker (geometry and files run off the GUI thread)."""
    qtbot.waitUntil(lambda: widget._worker is None, timeout=60_000)
    return worker


def _measured(qtbot, layer, n: int) -> None:  # noqa: ANN001
    """Wait until the live morphology of ``n`` shapes is in the layer's features."""
    qtbot.waitUntil(
        lambda: len(layer.features) == n and not layer.features["area_px"].isna().any(),
        timeout=60_000,
    )


TRIANGLE_RC = np.array([[100.0, 200.0], [500.0, 900.0], [800.0, 300.0]])


def test_draw_save_reopen_same_place(viewer, tmp_path: Path) -> None:  # noqa: ANN001
    from napari_xai.core.annotations.geojson import read_geojson

    layer = viewer.add_shapes(name="drawn")
    layer.add_polygons([TRIANGLE_RC])  # as if drawn with the polygon tool
    path = tmp_path / "drawn.geojson"
    written = layer.save(str(path), plugin="napari-xai")
    assert written == [str(path)] and path.is_file()
    # On disk: QuPath pixel-corner (x, y) = napari (col, row) + 0.5.
    aset = read_geojson(path)
    ((x, y),) = [aset.annotations[0].geometry.exterior.coords[0]]
    assert (x, y) == (200.5, 100.5)

    layers = viewer.open(str(path), plugin="napari-xai")
    assert len(layers) == 1 and layers[0].name.startswith("drawn")  # "drawn [1]": name taken
    reopened = layers[0]
    assert reopened.shape_type == ["polygon"]
    np.testing.assert_allclose(reopened.data[0], TRIANGLE_RC, atol=1e-4)
    np.testing.assert_allclose(reopened.extent.world, layer.extent.world, atol=1e-4)
    # Same world frame as the slide (level-0 pixels, scale 1).
    assert np.allclose(reopened.scale, viewer.layers["slide"].scale)
    assert np.allclose(reopened.data_to_world(TRIANGLE_RC[0]), TRIANGLE_RC[0])
    (a, b), (c, d) = TRIANGLE_RC[1] - TRIANGLE_RC[0], TRIANGLE_RC[2] - TRIANGLE_RC[0]
    assert reopened.features["area_px"][0] == pytest.approx(0.5 * abs(a * d - b * c))

    # What a person sees: the reopened polygon shows over the slide.
    layer.visible = False
    viewer.reset_view()
    shot = viewer.screenshot(canvas_only=True)[..., :3].astype(int)
    slide_grey = (np.abs(shot - 230).sum(-1) < 10).mean()
    tinted = (shot[..., 0] - shot[..., 1] > 40).mean()  # the tissue and the polygon
    assert slide_grey > 0.1 and tinted > 0.05
    reopened.visible = False
    without = viewer.screenshot(canvas_only=True)[..., :3].astype(int)
    changed = np.abs(shot - without).sum(-1) > 10
    assert 0.02 < changed.mean() < 0.5  # the reopened triangle is drawn, and only there
    rows, cols = np.nonzero(changed)
    h, w = changed.shape
    # Its drawn centre sits where the triangle's centre is relative to the slide
    # (slide 1200 x 1600 fills the canvas width after reset_view).
    centre = TRIANGLE_RC.mean(0) / np.array(SLIDE_RC)
    drawn = np.array([rows.mean(), cols.mean()])
    slide_px = w / SLIDE_RC[1]
    top = (h - SLIDE_RC[0] * slide_px) / 2
    expected = np.array([top + centre[0] * SLIDE_RC[0] * slide_px, centre[1] * w])
    assert np.abs(drawn - expected).max() < 0.1 * w


def test_reading_a_bad_file_imports_the_valid_part(viewer, tmp_path: Path) -> None:  # noqa: ANN001
    good = {
        "type": "Feature",
        "properties": {"classification": {"name": "Tumor"}},
        "geometry": {
            "type": "Polygon",
            "coordinates": [[[10, 10], [90, 10], [90, 90], [10, 90], [10, 10]]],
        },
    }
    bad = {
        "type": "Feature",
        "properties": {},
        "geometry": {"type": "Polygon", "coordinates": [[["x", 1]]]},
    }
    path = tmp_path / "mixed.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [good, bad]}))
    (layer,) = viewer.open(str(path), plugin="napari-xai")
    assert len(layer.data) == 1
    report = layer.metadata["annotation_report"]
    assert report["n_features"] == 2 and report["skipped"] == {"malformed coordinates": 1}
    # no colour in the file: the default class's palette colour (core/naming.py)
    assert np.allclose(layer.face_color[0][:3], np.array(rgb255(class_colour("Tumor"))) / 255)


def test_annotation_widget_classes_masks_measure_save_load(
    viewer,
    qtbot,
    tmp_path: Path,  # noqa: ANN001
) -> None:
    from napari_xai._widgets.annotate import AnnotationWidget

    widget = AnnotationWidget(viewer)
    layer = widget._on_new_layer()
    assert layer.mode == "add_polygon"
    widget._class.value = "Tumor"
    layer.add_polygons(
        [np.array([[100.0, 100.0], [100.0, 500.0], [400.0, 500.0], [400.0, 100.0]])]
    )
    widget._class.value = "Stroma"
    layer.add_polygons([np.array([[600.0, 800.0], [600.0, 1000.0], [700.0, 1000.0]])])
    _measured(qtbot, layer, 2)  # measured in a worker
    assert list(layer.features["class"]) == ["Tumor", "Stroma"]
    assert np.allclose(layer.face_color[1][:3], np.array(rgb255(class_colour("Stroma"))) / 255)
    # Morphology follows drawing, without pressing Measure.
    assert layer.features["area_px"].tolist() == pytest.approx([300 * 400, 100 * 200 / 2])
    assert layer.feature_defaults["class"][0] == "Stroma"

    # Re-class the second shape.
    layer.selected_data = {1}
    widget._class.value = "Necrosis"
    widget._on_apply_class()
    assert layer.features["class"][1] == "Necrosis"

    _done(qtbot, widget, widget._on_run())  # the "Measure morphology" button
    assert layer.features["area_px"][0] == pytest.approx(300 * 400)
    assert layer.features["area_um2"][0] == pytest.approx(300 * 400 * MPP**2)

    widget._downsample.value = 4
    _done(qtbot, widget, widget._on_to_labels())
    labels = viewer.layers[f"{layer.name} mask"]
    assert labels.scale.tolist() == [4, 4] and labels.translate.tolist() == [1.5, 1.5]
    assert labels.data.shape == (300, 400)
    assert set(np.unique(labels.data)) == {0, 1, 3}  # Tumor, Necrosis (QuPath order)
    assert labels.data[60, 75] == 1  # level-0 (240, 300) is inside the tumour rectangle
    assert widget._mask.value is labels
    _done(qtbot, widget, widget._on_to_shapes())
    traced = viewer.layers[f"{layer.name} traced"]
    assert widget._shapes.value is traced
    assert list(traced.features["class"]) == ["Tumor", "Necrosis"]
    assert traced.features["area_px"][0] == pytest.approx(300 * 400, rel=0.03)

    # Save and load through the widget.
    widget._shapes.value = layer
    widget._path.value = tmp_path / "w.geojson"
    _done(qtbot, widget, widget._on_save())
    assert (tmp_path / "w.geojson").is_file()
    _done(qtbot, widget, widget._on_load())
    loaded = viewer.layers["w"]
    assert list(loaded.features["class"]) == ["Tumor", "Necrosis"]
    np.testing.assert_allclose(loaded.data[0], layer.data[0], atol=1e-4)


def test_evaluation_widget_draws_confusion_matrix(viewer, qtbot) -> None:  # noqa: ANN001
    import pandas as pd  # noqa: TID253

    from napari_xai._widgets.evaluate import EvaluationWidget

    shapes = viewer.add_shapes(
        [np.array([[0.0, 0.0], [0.0, 800.0], [600.0, 800.0], [600.0, 0.0]])],
        name="annotations",
        features={"class": ["Tumor"]},
    )
    rows, cols = np.mgrid[0:1200:200, 0:1600:200]
    tiles = pd.DataFrame({"row": rows.ravel(), "col": cols.ravel()})
    tiles["height"] = tiles["width"] = 200
    inside = (tiles["row"] < 600) & (tiles["col"] < 800)
    tiles["prob_tumor"] = np.where(inside, 0.9, 0.2)
    tiles.loc[0, "prob_tumor"] = 0.3  # one miss
    tiles["prob_normal"] = 1 - tiles["prob_tumor"]
    tiles["pred_class"] = np.where(tiles["prob_tumor"] >= 0.5, "tumor", "normal")
    heat = tiles["prob_tumor"].to_numpy().reshape(rows.shape)
    viewer.add_image(heat, name="heatmap", scale=(200, 200), translate=(99.5, 99.5))

    # The tiles as the scoring widget shows them (a Points layer whose features are the table).
    from napari.layers import Layer

    from napari_xai.core.layers import tiles_layer

    tiles.attrs["class_names"] = ["tumor", "normal"]
    viewer.add_layer(
        Layer.create(*tiles_layer(tiles, slide_name="s", class_names=["tumor", "normal"]))
    )
    # A saliency pyramid, all of it on the annotated tumour (rows < 600, cols < 800).
    sal = np.zeros(SLIDE_RC, np.float32)
    sal[:600, :800] = 1.0
    viewer.add_image([sal, sal[::4, ::4]], name="saliency", multiscale=True)

    widget = EvaluationWidget(viewer)
    widget._tiles_layer.value = viewer.layers["s tiles"]
    widget._saliency.value = viewer.layers["saliency"]
    widget._shapes.value = shapes
    widget._background.value = "normal"
    widget._heatmap.value = viewer.layers["heatmap"]
    assert widget._on_run() is not None  # evaluated in a worker
    _done(qtbot, widget)
    result = widget.result
    assert result["tiles"]["labels"] == ["tumor", "normal"]  # prob_* column order
    assert result["tiles"]["confusion_matrix"] == [[11, 1], [0, 36]]
    assert result["segmentation"]["dice"] == pytest.approx(2 * 11 / (11 + 12))
    assert "AUC tumor" in widget._summary.value
    assert result["pointing_game"]["energy_inside"] == pytest.approx(1.0)
    assert result["pointing_game"]["area_fraction"] == pytest.approx(0.25, abs=0.01)
    assert widget._canvas is not None
    ax = widget._figure.axes[0]
    assert [t.get_text() for t in ax.texts] == ["11", "1", "0", "36"]


def test_annotations_line_up_with_a_real_slide(
    make_napari_viewer, qtbot, shared_data, tmp_path
) -> None:  # noqa: ANN001, E501
    from shapely.geometry import box

    from napari_xai._widgets._pickers import slide_mpp as _slide_mpp
    from napari_xai._widgets._pickers import slide_shape_rc as _slide_shape_rc
    from napari_xai.core.annotations.geojson import Annotation, write_geojson

    slide_path = shared_data / "slides" / "CMU-1-Small-Region.svs"
    if not slide_path.is_file():
        pytest.skip(f"{slide_path} not found")
    viewer = make_napari_viewer(show=True)
    (slide,) = viewer.open(str(slide_path), plugin="napari-xai")
    rows, cols = _slide_shape_rc(viewer)
    assert _slide_mpp(viewer) == pytest.approx(0.499, abs=1e-3)
    # A QuPath annotation covering exactly the slide's bottom-right quarter.
    quarter = box(cols / 2, rows / 2, cols, rows)
    path = write_geojson([Annotation(quarter, "Tumor")], tmp_path / "q.geojson")
    (layer,) = viewer.open(str(path), plugin="napari-xai")
    # Pixel-edge box in napari: from the centre pixel's corner to the last pixel's far edge.
    np.testing.assert_allclose(
        layer.extent.world, [[rows / 2 - 0.5, cols / 2 - 0.5], [rows - 0.5, cols - 0.5]]
    )
    slide_extent = slide.extent.world[:, -2:]
    np.testing.assert_allclose(layer.extent.world[1], slide_extent[1], atol=1.0)
    # µm from the open slide's mpp (the file itself has none).
    assert layer.features["area_px"][0] == pytest.approx(rows * cols / 4)
    assert layer.features["area_um2"][0] == pytest.approx(rows * cols / 4 * 0.499**2, rel=0.01)
    from napari_xai._widgets.annotate import AnnotationWidget

    widget = AnnotationWidget(viewer)
    widget._shapes.value = layer
    _done(qtbot, widget, widget._on_run())  # same from the widget ("Measure morphology")
    assert layer.features["area_um2"][0] == pytest.approx(rows * cols / 4 * 0.499**2, rel=0.01)
    viewer.reset_view()
    shot = viewer.screenshot(canvas_only=True)[..., :3].astype(int)
    h, w = shot.shape[:2]

    # The tumour tint sits in the lower-right of the canvas, not in the upper-left.
    def redness(a: np.ndarray) -> float:
        return float((a[..., 0] - a[..., 1]).mean())

    assert (
        redness(shot[int(h * 0.6) : int(h * 0.7), int(w * 0.6) : int(w * 0.7)])
        > redness(shot[int(h * 0.3) : int(h * 0.4), int(w * 0.3) : int(w * 0.4)]) + 10
    )
    # Without a slide in the viewer, no µm are invented.
    viewer.layers.remove(slide)
    (alone,) = viewer.open(str(path), plugin="napari-xai")
    assert np.isnan(alone.features["area_um2"][0])


def test_holes_render_as_holes(make_napari_viewer) -> None:  # noqa: ANN001
    from napari.layers import Layer
    from shapely.geometry import Point

    from napari_xai.core.annotations.geojson import Annotation
    from napari_xai.core.layers.annotations import annotations_to_layer_data

    viewer = make_napari_viewer(show=True)
    viewer.add_image(np.full((3000, 2200, 3), 255, np.uint8), rgb=True)
    donut = Point(1250, 1500).buffer(430).difference(Point(1300, 1550).buffer(130))
    (ldt,) = annotations_to_layer_data([Annotation(donut, "Tumor")])
    viewer.add_layer(Layer.create(*ldt))
    viewer.reset_view()
    shot = viewer.screenshot(canvas_only=True)[..., :3].astype(int)
    h, w = shot.shape[:2]
    camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
    zoom, centre = camera.zoom, np.array(camera.center[-2:])

    def pixel(x: float, y: float) -> np.ndarray:  # QuPath (x, y) -> screenshot pixel
        r, c = (np.array([y - 0.5, x - 0.5]) - centre) * zoom + [h / 2, w / 2]
        return shot[int(r), int(c)]

    assert pixel(1300, 1550).tolist() == [255, 255, 255]  # the hole shows the slide
    ring = pixel(1250 - 300, 1500)
    # the ring is tinted with the Tumor colour (the palette's orange) over white
    tint = 255 - ring.astype(float)
    towards = 255 - np.array(rgb255(class_colour("Tumor")), float)
    assert tint.max() > 40
    assert tint @ towards / (np.linalg.norm(tint) * np.linalg.norm(towards)) > 0.95
    assert pixel(300, 300).tolist() == [255, 255, 255]  # outside


def test_many_detections_open_as_points_and_save_back(make_napari_viewer, tmp_path) -> None:  # noqa: ANN001, E501
    from shapely.geometry import Point

    from napari_xai.core.annotations.geojson import Annotation, read_geojson, write_geojson
    from napari_xai.core.layers.annotations import MAX_SHAPES

    n = MAX_SHAPES + 1
    rng = np.random.default_rng(0)
    xy = rng.uniform(20, 3980, (n, 2))
    nuclei = [
        Annotation(
            Point(x, y).buffer(5, quad_segs=4),
            "Tumor" if i % 2 else "Immune cells",
            object_type="cell",
            object_id=f"c{i}",
        )
        for i, (x, y) in enumerate(xy)
    ]
    path = write_geojson(nuclei, tmp_path / "cells.geojson")
    viewer = make_napari_viewer()
    (layer,) = viewer.open(str(path), plugin="napari-xai")
    assert type(layer).__name__ == "Points" and len(layer.data) == n
    np.testing.assert_allclose(layer.data[:, ::-1] + 0.5, xy, atol=1e-6)  # centroids
    assert layer.features["area_px"][0] == pytest.approx(nuclei[0].geometry.area)
    # Edit: re-class one cell, delete another, then save through the writer.
    layer.features.loc[0, "class"] = "Tumor"
    layer.selected_data = {1}
    layer.remove_selected()
    out = tmp_path / "edited.geojson"
    assert layer.save(str(out), plugin="napari-xai") == [str(out)]
    back = read_geojson(out)
    assert back.report.clean and len(back) == n - 1
    assert back.annotations[0].class_name == "Tumor"
    assert back.annotations[0].geometry.equals(nuclei[0].geometry)  # outline kept
    assert [a.object_id for a in back.annotations[:2]] == ["c0", "c2"]
    assert back.annotations[1].object_type == "cell"


def test_paint_a_mask_by_class_and_trace_it(viewer, qtbot) -> None:  # noqa: ANN001
    from napari_xai._widgets.annotate import AnnotationWidget

    widget = AnnotationWidget(viewer)
    widget._downsample.value = 8
    widget._class.value = "Necrosis"
    mask = widget._on_new_mask()
    assert mask.data.shape == (150, 200) and mask.scale.tolist() == [8, 8]
    assert mask.selected_label == 3 and mask.mode == "paint"
    widget._class.value = "Stroma"
    assert mask.selected_label == 2
    # What a brush stroke with the Stroma label leaves: level-0 rows 400..799, cols 80..479.
    mask.data[50:100, 10:60] = mask.selected_label
    mask.refresh()
    _done(qtbot, widget, widget._on_to_shapes())
    traced = viewer.layers["annotation traced"]
    assert list(traced.features["class"]) == ["Stroma"]
    assert traced.features["area_px"][0] == 400 * 400
    np.testing.assert_allclose(traced.extent.world, [[399.5, 79.5], [799.5, 479.5]])


def test_widget_errors_become_notifications(viewer, qtbot, tmp_path: Path) -> None:  # noqa: ANN001
    from napari_xai._widgets.annotate import AnnotationWidget

    widget = AnnotationWidget(viewer)
    bad = tmp_path / "bad.geojson"
    bad.write_text("{not json")
    widget._path.value = bad
    assert widget._on_load() is not None  # the error surfaces in the worker, shown, not raised
    _done(qtbot, widget)
    assert "not valid JSON" in widget._status.value
    assert widget._on_loaded(("not an AnnotationSet", [])) is None  # raised inside, shown
    assert widget._on_to_shapes() is None  # no Labels layer chosen: message, no exception


@pytest.mark.parametrize("name", ["Annotate", "Evaluate against annotations"])
def test_widgets_dock_from_the_plugins_menu_with_the_viewer(make_napari_viewer, name) -> None:  # noqa: ANN001
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-xai", name)
    # napari passed (a proxy of) this viewer: it needs the annotation napari.viewer.Viewer.
    viewer.add_shapes(name="drawn here")
    assert "drawn here" in widget._viewer.layers


def test_the_viewer_meshes_polygons_with_a_compiled_triangulation(viewer) -> None:
    """napari's pure-Python polygon mesher takes seconds per long outline (bermuda)."""
    t = np.linspace(0, 2 * np.pi, 2000, endpoint=False)
    outline = np.c_[600 + 250 * np.sin(t) * (1 + 0.3 * np.sin(7 * t)), 800 + 350 * np.cos(t)]
    layer = viewer.add_shapes([outline], shape_type="polygon", name="outline")
    mesh = layer._data_view.shapes[0]
    assert type(mesh)._set_meshes.__name__ == "_set_meshes_compiled_bermuda"
    assert len(mesh._face_triangles) >= len(outline) - 2  # the outline is filled, all of it
