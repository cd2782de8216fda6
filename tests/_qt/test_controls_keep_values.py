"""Dropdowns keep the user's choice when layers come and go.

napari calls ``reset_choices()`` on a docked magicgui widget whenever a layer is
added or removed (every run adds one); a dropdown whose choices were set once as
a list fell back to its first entry then, so the second run explained the wrong
class. Each widget is docked from the Plugins menu, as a user does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ..conftest import write_pyramid_tiff  # noqa: TID252


@pytest.fixture(scope="module")
def slide_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("controls")
    return write_pyramid_tiff(folder / "controls.svs", shape_rc=(512, 512), tile=256, levels=1)


def _add_three_layers(viewer) -> None:
    viewer.add_image(np.zeros((8, 8), np.float32), name="extra image")
    viewer.add_points(np.array([[1.0, 1.0]]), name="extra points")
    viewer.add_shapes(
        [np.array([[0.0, 0.0], [0.0, 4.0], [4.0, 4.0]])], shape_type="polygon", name="extra shapes"
    )


def _dock(viewer, name: str):
    _, widget = viewer.window.add_plugin_dock_widget("napari-xai", name)
    return widget


def test_explain_choices_survive_layer_changes(make_napari_viewer, qtbot, slide_path) -> None:
    viewer = make_napari_viewer()
    (slide,) = viewer.open(slide_path, plugin="napari-xai")
    widget = _dock(viewer, "Explain")
    # offered as soon as the widget has described the demo model (in a worker, not on
    # the GUI thread)
    qtbot.waitUntil(lambda: "tumour" in widget._target.choices, timeout=60_000)
    assert "tumour" in widget._target.choices
    layers = [c for c in widget._act_layer.choices if c is not None]
    assert len(layers) >= 2
    assert widget._act_layer.value == layers[-1]
    widget._target.value = "tumour"
    widget._act_layer.value = layers[0]
    widget._method.value = "integrated_gradients"
    _add_three_layers(viewer)
    assert widget._target.value == "tumour"
    assert widget._act_layer.value == layers[0]
    assert widget._method.value == "integrated_gradients"
    assert widget._slide_layer.value is slide
    assert [c for c in widget._act_layer.choices if c is not None] == layers
    # removing layers too
    viewer.layers.remove("extra image")
    assert (widget._target.value, widget._act_layer.value) == ("tumour", layers[0])


def test_score_and_audit_choices_survive_layer_changes(
    make_napari_viewer, slide_path, tmp_path
) -> None:
    viewer = make_napari_viewer()
    (first,) = viewer.open(slide_path, plugin="napari-xai")
    (second,) = viewer.open(slide_path, plugin="napari-xai")
    score = _dock(viewer, "Score slide")
    audit = _dock(viewer, "Audit")
    score._slide_layer.value = first
    audit._slide_layer.value = first
    audit._method.value = "saliency"
    cohort = tmp_path / "cohort.csv"
    cohort.write_text("path,label,diagnosis\na.png,1,tumour\n", encoding="utf-8")
    audit._cohort.value = cohort
    assert set(audit._label_column.choices) == {"path", "label", "diagnosis"}
    audit._label_column.value = "diagnosis"
    _add_three_layers(viewer)
    assert score._slide_layer.value is first
    assert audit._slide_layer.value is first
    assert audit._method.value == "saliency"
    assert audit._label_column.value == "diagnosis"
    assert set(audit._label_column.choices) == {"path", "label", "diagnosis"}
    assert second in score._slide_layer.choices


def test_annotation_choices_survive_layer_changes(make_napari_viewer) -> None:
    viewer = make_napari_viewer()
    shapes = viewer.add_shapes(name="my regions")
    annotate = _dock(viewer, "Annotate")
    evaluate = _dock(viewer, "Evaluate against annotations")
    classes = [c for c in annotate._class.choices if c is not None]
    other = next(c for c in classes if c != annotate._class.value)
    annotate._class.value = other
    annotate._shapes.value = shapes
    evaluate._shapes.value = shapes
    _add_three_layers(viewer)
    assert annotate._class.value == other
    assert annotate._shapes.value is shapes
    assert evaluate._shapes.value is shapes


def _maps_and_tiles(viewer) -> tuple[list, object]:
    """Two class heatmaps and a tiles layer as the scorer makes them (core layer builders)."""
    import pandas as pd

    from napari_xai.core.layers import heatmap_layers, tiles_layer

    classes = ["normal", "tumour"]
    maps = np.random.default_rng(0).random((2, 2, 2)).astype(np.float32)
    tiles = pd.DataFrame(
        {"row": [0, 0, 256, 256], "col": [0, 256, 0, 256], "height": [256] * 4,
         "width": [256] * 4, "pred_class": ["normal", "tumour"] * 2,
         "prob_normal": maps[0].ravel(), "prob_tumour": maps[1].ravel()}
    )  # fmt: skip
    tiles.attrs.update(stride0=256.0, tile_size0=256.0, class_names=classes)
    ldts = [*heatmap_layers(maps, classes, slide_name="s", stride0=256.0),
            tiles_layer(tiles, slide_name="s", class_names=classes)]  # fmt: skip
    made = [viewer._add_layer_from_data(*ldt)[0] for ldt in ldts]
    return made[:2], made[2]


def test_batch_evaluate_display_and_inspector_choices_survive_layer_changes(
    make_napari_viewer, qtbot, slide_path
) -> None:
    from napari_xai._widgets.batch import IN_PROCESS

    viewer = make_napari_viewer()
    viewer.open(slide_path, plugin="napari-xai")
    (normal, tumour), tiles = _maps_and_tiles(viewer)
    batch = _dock(viewer, "Batch score slides")
    evaluate = _dock(viewer, "Evaluate against annotations")
    panel = _dock(viewer, "Display panel")
    inspector = _dock(viewer, "Tile inspector")
    picked = {
        (batch, "_input_kind"): "cohort CSV",
        (batch, "_attribution"): "integrated_gradients",
        (batch, "_scheduler"): IN_PROCESS,
        (batch, "_device"): "cpu",
        (evaluate, "_positive"): next(c for c in evaluate._positive.choices if c != "Tumor"),
        (evaluate, "_heatmap"): normal,
        (evaluate, "_saliency"): tumour,
        (panel, "_map"): normal,
        (panel, "_colormap"): "cividis",
        (inspector, "_tiles"): tiles,
    }
    for (widget, name), value in picked.items():
        getattr(widget, name).value = value
    _add_three_layers(viewer)
    viewer.layers.remove("extra points")
    for (widget, name), value in picked.items():
        assert getattr(widget, name).value == value, (type(widget).__name__, name)
    assert normal.colormap.name == "cividis"  # the panel's choice still drives its map


def test_region_classes_follow_the_shapes_layers(make_napari_viewer, tmp_path) -> None:
    """Evaluate's region class and Annotate's class offer the classes the layers hold.

    Made once from QuPath's defaults, the region class could not be a GeoJSON's own
    class (``tumour``), so nothing in the annotations counted as positive.
    """
    from shapely.geometry import box

    from napari_xai._widgets._shapes_style import class_rgb, style_new_shapes
    from napari_xai.core.annotations.classes import class_names
    from napari_xai.core.annotations.geojson import Annotation, write_geojson

    viewer = make_napari_viewer()
    annotate = _dock(viewer, "Annotate")
    evaluate = _dock(viewer, "Evaluate against annotations")
    defaults = class_names()
    for combo in (evaluate._positive, annotate._class):
        assert list(combo.choices) == defaults
        assert combo.value == "Tumor"
    path = write_geojson(
        [Annotation(box(0, 0, 50, 50), "tumour"), Annotation(box(60, 0, 90, 40), "Mitosis"),
         Annotation(box(0, 60, 30, 90), "Stroma")],
        tmp_path / "own classes.geojson",
    )  # fmt: skip
    (opened,) = viewer.open(str(path), plugin="napari-xai")
    for combo in (evaluate._positive, annotate._class):
        assert list(combo.choices) == [*defaults, "tumour", "Mitosis"]
    evaluate._positive.value = "tumour"
    # a shape drawn with a class of its own (the next shape's class, as Annotate sets it)
    drawn = annotate._on_new_layer()
    style_new_shapes(drawn, "Gland", class_rgb("Gland"))
    assert "Gland" not in evaluate._positive.choices  # no shape of it yet
    drawn.add(np.array([[100.0, 100.0], [100.0, 140.0], [140.0, 140.0]]), shape_type="polygon")
    assert list(drawn.features["class"]) == ["Gland"]
    assert list(evaluate._positive.choices) == [*defaults, "tumour", "Mitosis", "Gland"]
    annotate._class.value = "Gland"
    _add_three_layers(viewer)
    viewer.layers.remove("extra points")
    assert (evaluate._positive.value, annotate._class.value) == ("tumour", "Gland")
    # the chosen class is kept while it exists, and goes with its layer
    viewer.layers.remove(opened)
    assert list(evaluate._positive.choices) == [*defaults, "Gland"]
    assert evaluate._positive.value == "Tumor"
    assert annotate._class.value == "Gland"
