"""The display panel and the tile inspector, in a real viewer on a real result folder.

The result folder is scored from the real slide CMU-1-Small-Region (score and
saliency, from the command line); the truth for the inspector is the folder's
``tiles.parquet`` read with pandas, not the widgets' own layers.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

SLIDE = "CMU-1-Small-Region"


@pytest.fixture(scope="module")
def result_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.conftest import SHARED_DATA

    slide = SHARED_DATA / "slides" / f"{SLIDE}.svs"
    if not slide.is_file():
        pytest.skip(f"{slide} is not there (real test data)")
    from napari_xai.cli import main

    out = tmp_path_factory.mktemp("display") / "D"
    common = ["--out", str(out), "--device", "cpu"]
    assert main(["score", str(slide), *common]) == 0
    assert main(["explain", str(slide), "--method", "saliency", "--quiet", *common]) == 0
    return out / SLIDE


def _canvas(viewer) -> np.ndarray:  # noqa: ANN001
    return viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)


def _pixmap_rgb(label) -> np.ndarray:  # noqa: ANN001
    image = (
        label.native.pixmap()
        .toImage()
        .convertToFormat(label.native.pixmap().toImage().Format.Format_RGB888)
    )
    h, w = image.height(), image.width()
    buf = np.frombuffer(image.constBits().asstring(image.sizeInBytes()), np.uint8)
    return buf.reshape(h, image.bytesPerLine())[:, : 3 * w].reshape(h, w, 3)


def test_display_panel_drives_the_map_it_names(make_napari_viewer, qtbot, result_folder) -> None:
    import pandas as pd

    from napari_xai._widgets.display import DisplayPanel, colorbar_rgb

    viewer = make_napari_viewer(show=True)
    layers = viewer.open(result_folder, plugin="napari-xai")
    _, panel = viewer.window.add_plugin_dock_widget("napari-xai", "Display panel")
    assert isinstance(panel, DisplayPanel)
    maps = {lyr.name: lyr for lyr in layers if type(lyr).__name__ == "Image" and not lyr.rgb}
    # every heatmap and saliency layer the reader opened shows its colour bar
    assert len(maps) == 4 and all(m.colorbar.visible for m in maps.values()), list(maps)
    tumour = maps[f"{SLIDE} prob [tumour]"]
    normal = maps[f"{SLIDE} prob [normal]"]
    assert panel.layer is tumour  # the visible map is the one shown first
    assert panel._legend_title.value == "probability of tumour (0-1)"

    # choosing a map shows it (alone) and the legend follows it
    panel._map.value = normal
    assert normal.visible and not tumour.visible
    assert panel._legend_title.value == "probability of normal (0-1)"
    assert panel._ticks.value.startswith("0 ") and panel._ticks.value.endswith(" 1")
    np.testing.assert_array_equal(_pixmap_rgb(panel._bar), colorbar_rgb(normal))

    # opacity and colormap go to that layer, and the canvas shows it
    for lyr in viewer.layers:
        lyr.visible = lyr is normal or lyr is layers[0]
    viewer.reset_view()
    panel._opacity.value = 1.0
    full = _canvas(viewer)
    panel._opacity.value = 0.0
    assert normal.opacity == 0.0
    normal.visible = False
    bare = _canvas(viewer)
    normal.visible = True
    zero = _canvas(viewer)
    # (the top-right corner holds the map's colour bar and its title, drawn while the
    # layer is visible)
    corner = np.zeros(bare.shape[:2], bool)
    corner[:220, -320:] = True
    assert np.abs(zero - bare)[~corner].max() <= 2  # opacity 0: the slide alone
    assert np.abs(full - bare)[~corner].sum(-1).mean() > 5  # opacity 1: the map shows
    assert np.abs(zero - bare)[corner].max() > 50  # ... and its colour bar is on the canvas
    panel._opacity.value = 0.7
    panel._colormap.value = "cividis"
    assert normal.colormap.name == "cividis" and normal.opacity == pytest.approx(0.7)
    np.testing.assert_array_equal(_pixmap_rgb(panel._bar), colorbar_rgb(normal))
    # a change made in napari's own controls shows in the panel
    normal.opacity = 0.45
    assert panel._opacity.value == pytest.approx(0.45)
    panel._colormap.value = "class colour"
    assert normal.colormap.colors[-1][:3] == pytest.approx(normal.metadata["class_colour"])

    # saliency: the legend names the method, the class and the map's own scale
    saliency = next(m for m in maps.values() if m.metadata.get("napari_xai") == "saliency")
    panel._map.value = saliency
    lo, hi = saliency.contrast_limits
    assert (
        panel._legend_title.value == f"saliency attribution for predicted ({lo:.3g} to {hi:.3g})"
    )

    # per-class toggles hide the tiles of a class (truth: tiles.parquet)
    panel._map.value = tumour
    assert list(panel._class_boxes) == ["background", "normal", "tumour"]
    panel._class_boxes["normal"].value = False
    tiles = viewer.layers[f"{SLIDE} tiles"]
    truth = pd.read_parquet(result_folder / "tiles.parquet")
    np.testing.assert_array_equal(tiles.shown, truth["pred_class"].astype(str) != "normal")
    panel._class_boxes["normal"].value = True
    assert tiles.shown.all()


def test_class_toggles_hide_regions_and_annotations(make_napari_viewer, result_folder) -> None:
    """A class's toggle also hides its predicted region and its annotations, and only them."""
    import json

    from napari_xai._widgets.display import DisplayPanel

    viewer = make_napari_viewer()
    viewer.open(result_folder, plugin="napari-xai")
    panel = DisplayPanel(viewer)
    panel._map.value = viewer.layers[f"{SLIDE} prob [tumour]"]
    regions = [
        lyr for lyr in viewer.layers
        if type(lyr).__name__ == "Shapes" and "class" in lyr.features and len(lyr.data)
    ]  # fmt: skip
    # the predicted regions the folder holds (truth: annotations.geojson)
    stored = json.loads((result_folder / "annotations.geojson").read_text(encoding="utf-8"))
    stored_classes = sorted(f["properties"]["classification"]["name"] for f in stored["features"])
    assert len(regions) == 1 and sorted(regions[0].features["class"].astype(str)) == stored_classes
    assert "tumour" in stored_classes and "normal" in stored_classes
    region = regions[0]
    drawn = viewer.add_shapes(
        [np.array([[0.0, 0.0], [0.0, 50.0], [50.0, 50.0]]),
         np.array([[100.0, 100.0], [100.0, 150.0], [150.0, 150.0]])],
        shape_type="polygon", features={"class": ["Normal", "Stroma"]}, face_color=["red", "blue"],
        name="drawn",
    )  # fmt: skip
    faces, edges = region.face_color.copy(), region.edge_color.copy()
    drawn_faces = drawn.face_color.copy()
    is_normal = region.features["class"].astype(str).to_numpy() == "normal"

    panel._class_boxes["normal"].value = False
    assert (region.face_color[is_normal, 3] == 0).all() and (
        region.edge_color[is_normal, 3] == 0
    ).all()
    np.testing.assert_array_equal(region.face_color[~is_normal], faces[~is_normal])
    assert drawn.face_color[0, 3] == 0 and drawn.edge_color[0, 3] == 0  # "Normal", any case
    np.testing.assert_array_equal(drawn.face_color[1], drawn_faces[1])  # Stroma stays
    tiles = viewer.layers[f"{SLIDE} tiles"]
    assert not tiles.shown[tiles.features["pred_class"].astype(str) == "normal"].any()

    panel._class_boxes["normal"].value = True  # each shape gets its own colours back
    np.testing.assert_array_equal(region.face_color, faces)
    np.testing.assert_array_equal(region.edge_color, edges)
    np.testing.assert_array_equal(drawn.face_color, drawn_faces)


def test_canvas_colour_bar_has_a_title(make_napari_viewer, qtbot, result_folder) -> None:
    """The canvas names each shown colour bar's map (class or method) and its scale."""
    from napari_xai._widgets._style import legend_title as panel_title
    from napari_xai._widgets.display import DisplayPanel

    viewer = make_napari_viewer(show=True)
    layers = viewer.open(result_folder, plugin="napari-xai")
    panel = DisplayPanel(viewer)
    overlay = viewer.canvas.overlays.text
    maps = [lyr for lyr in layers if type(lyr).__name__ == "Image" and not lyr.rgb]
    for layer in maps:  # every map says what it shows, when shown alone
        panel._map.value = layer
        for m in maps:
            m.visible = m is layer
        assert layer.colorbar.visible
        assert overlay.visible and str(overlay.position) == "top_right"
        assert overlay.text == panel._legend_title.value
    for m in maps:  # two bars: two titles, in the bars' order
        m.visible = m in maps[:2]
    assert overlay.text == "  |  ".join(
        panel_title(lyr) for lyr in viewer.layers if lyr in maps[:2]
    )
    for m in maps:
        m.visible = False
    saliency = next(m for m in maps if m.metadata.get("napari_xai") == "saliency")
    panel._map.value = saliency
    saliency.visible = True
    lo, hi = saliency.contrast_limits
    assert overlay.text == f"saliency attribution for predicted ({lo:.3g} to {hi:.3g})"
    saliency.contrast_limits = (0.0, 2 * hi)  # a new scale is named at once
    assert overlay.text.endswith(f"(0 to {2 * hi:.3g})")
    saliency.visible = False
    tumour = viewer.layers[f"{SLIDE} prob [tumour]"]
    panel._map.value = tumour
    assert overlay.text == "probability of tumour (0-1)"

    # what a person sees: the title is drawn in the top-right corner, above the bar
    for lyr in viewer.layers:
        lyr.visible = lyr is tumour or lyr is layers[0]
    viewer.reset_view()
    tumour.opacity = 0.0  # the map itself adds nothing: only its bar and title show
    qtbot.wait(50)
    titled = _canvas(viewer)
    overlay.visible = False
    qtbot.wait(50)
    untitled = _canvas(viewer)
    changed = np.abs(titled - untitled).sum(-1) > 60
    rows, cols = np.nonzero(changed)
    h, w = changed.shape
    assert changed.sum() > 50, changed.sum()
    # top right: the title, and the bar it pushes down (the bar moves up without it)
    assert rows.max() < 220 and rows.max() < 0.4 * h and cols.min() > 0.5 * w
    tumour.visible = False  # no map shown: no title
    assert overlay.text == "" and not overlay.visible


def test_masks_are_outlines_by_default(make_napari_viewer, result_folder) -> None:
    from napari.layers import Layer

    from napari_xai._widgets.display import DisplayPanel
    from napari_xai.core.layers.masks import mask_layers
    from napari_xai.core.masks import slide_masks
    from tests.conftest import SHARED_DATA

    viewer = make_napari_viewer()

    (image,) = viewer.open(SHARED_DATA / "slides" / f"{SLIDE}.svs", plugin="napari-xai")
    panel = DisplayPanel(viewer)
    masks = [viewer.add_layer(Layer.create(*ldt)) for ldt in mask_layers(
        slide_masks(image.metadata["slide"], max_size=512), name_prefix=SLIDE)]  # fmt: skip
    assert [m.contour for m in masks] == [1, 1]
    panel._outlines.value = False
    assert [m.contour for m in masks] == [0, 0]


def test_inspector_shows_the_clicked_tile(make_napari_viewer, qtbot, result_folder) -> None:
    import pandas as pd
    from qtpy.QtCore import QPoint, Qt

    from napari_xai._widgets.inspector import THUMB_SIZE, TileInspector

    viewer = make_napari_viewer(show=True)
    viewer.open(result_folder, plugin="napari-xai")
    _, inspector = viewer.window.add_plugin_dock_widget("napari-xai", "Tile inspector")
    assert isinstance(inspector, TileInspector)
    truth = pd.read_parquet(result_folder / "tiles.parquet").reset_index(drop=True)
    canvas = viewer.window._qt_viewer.canvas.native
    picks = [int(truth["prob_tumour"].idxmax()), int(truth["prob_normal"].idxmax()), 7]
    for k in picks:
        rec = truth.iloc[k]
        # put the tile's centre in the middle of the canvas, zoomed in, and click there
        camera = viewer.scene.camera if hasattr(viewer, "scene") else viewer.camera
        camera.center = (rec["row"] + rec["height"] / 2, rec["col"] + rec["width"] / 2)
        camera.zoom = 2.0
        qtbot.wait(50)
        middle = QPoint(canvas.width() // 2, canvas.height() // 2)
        qtbot.mouseClick(canvas, Qt.MouseButton.LeftButton, pos=middle)
        qtbot.waitUntil(lambda r=rec: inspector.current is not None
                        and inspector.current["row"] == int(r["row"])
                        and inspector.current["col"] == int(r["col"]), timeout=5000)  # fmt: skip
        shown = inspector.current
        classes = [c[5:] for c in truth.columns if c.startswith("prob_")]
        assert shown["probabilities"] == pytest.approx(
            {c: float(rec[f"prob_{c}"]) for c in classes}
        )
        assert shown["pred_class"] == rec["pred_class"]
        for c in classes:
            assert f"{float(rec[f'prob_{c}']):.3f}" in inspector._probs.value
        assert f"grid ({int(rec['grid_row'])}, {int(rec['grid_col'])})" in inspector._title.value
        # the thumbnail is the tile read from the slide, shrunk
        pix = inspector._thumb.native.pixmap()
        assert 0 < max(pix.width(), pix.height()) <= THUMB_SIZE
        (stats,) = shown["saliency"].values()
        assert np.isfinite(stats["mean"]) and stats["max"] >= stats["mean"] >= 0
        assert f"tissue {float(rec['tissue_fraction']):.0%}" in inspector._flags.value
        # what a person sees: every line of the wrapped text, none cut off at the bottom
        # (the probability table once showed two of its three classes)
        qtbot.wait(50)
        for label in (inspector._title, inspector._probs, inspector._saliency, inspector._flags):
            native = label.native
            assert native.height() >= native.heightForWidth(native.width()) > 0, label.value
    # a click off the tiles changes nothing
    before = dict(inspector.current)
    assert inspector.inspect_at([-1000.0, -1000.0]) is None and inspector.current == before


def test_panel_and_inspector_fit_1280_by_800(make_napari_viewer, qtbot, result_folder) -> None:
    from qtpy.QtCore import QPoint, QRect
    from qtpy.QtWidgets import QScrollArea

    viewer = make_napari_viewer(show=True)
    viewer.open(result_folder, plugin="napari-xai")
    window = viewer.window._qt_window
    panel_dock, panel = viewer.window.add_plugin_dock_widget("napari-xai", "Display panel")
    inspector_dock, inspector = viewer.window.add_plugin_dock_widget(
        "napari-xai", "Tile inspector"
    )
    tiles = inspector._tiles.value
    inspector.inspect_tile(int(tiles.features["prob_tumour"].idxmax()))
    window.showNormal()
    window.resize(1280, 800)
    qtbot.wait(200)
    assert window.width() <= 1280 and window.height() <= 800, window.size()
    canvas = viewer.window._qt_viewer.canvas.native
    # both docks stay narrow (long layer names are elided); the canvas keeps most of the
    # width next to napari's own layer list (616-642 px seen: >= 45 %)
    assert panel_dock.width() <= 300 and inspector_dock.width() <= 300
    assert canvas.width() >= 0.45 * 1280 and canvas.height() >= 800 // 3
    # the legend and the clicked tile's probabilities scroll into view inside the window
    for widget, label in ((panel, panel._legend_title), (inspector, inspector._probs)):
        scroll = widget.root_native_widget
        assert isinstance(scroll, QScrollArea)
        scroll.ensureWidgetVisible(label.native)
        qtbot.wait(100)
        rect = QRect(label.native.mapTo(window, QPoint(0, 0)), label.native.size())
        assert not label.native.visibleRegion().isEmpty()
        assert window.rect().intersects(rect), (rect, window.rect())


def test_only_this_map_hides_the_slides_saliency(make_napari_viewer, result_folder) -> None:
    """With "only this map" on, a probability map and the slide's saliency map hide each
    other (the Explain widget's own layer: test_explain_widget)."""
    from napari_xai._widgets.display import DisplayPanel

    viewer = make_napari_viewer()
    layers = viewer.open(result_folder, plugin="napari-xai")
    panel = DisplayPanel(viewer)
    assert panel._only.value
    maps = {lyr.name: lyr for lyr in layers if type(lyr).__name__ == "Image" and not lyr.rgb}
    tumour = maps[f"{SLIDE} prob [tumour]"]
    saliency = maps[f"{SLIDE} saliency [saliency, predicted]"]
    panel._map.value = saliency
    assert saliency.visible and not any(m.visible for m in maps.values() if m is not saliency), {
        m.name: m.visible for m in maps.values()
    }
    panel._map.value = tumour
    assert tumour.visible and not saliency.visible


def test_reader_maps_show_the_store_at_every_zoom(
    make_napari_viewer, qtbot, result_folder
) -> None:
    """The folder's probability and saliency layers are lazy and draw what the store holds:
    the array napari sliced equals the zarr store (unscored cells 0 in probability maps)
    zoomed out, whole and zoomed in, and the canvas is the same after napari's chunk cache
    is cleared."""
    import zarr

    from napari_xai.core.results import load_result

    from .test_live_layers import _clear_napari_cache, _settle  # noqa: TID252

    viewer = make_napari_viewer(show=True)
    layers = viewer.open(result_folder, plugin="napari-xai")
    root = zarr.open_group(str(result_folder / "heatmaps.zarr"), mode="r")
    paths = {h.key: h.paths for h in load_result(result_folder).heatmaps}
    maps = [lyr for lyr in layers if lyr.metadata.get("key") in paths]
    assert len(maps) == 4  # three classes and the saliency map
    camera = viewer.scene.camera
    for layer in maps:
        assert hasattr(layer.data[0] if layer.multiscale else layer.data, "dask"), layer.name
        for other in maps:
            other.visible = other is layer
        for factor in (1 / 16, 1.0, 8.0):
            viewer.reset_view()
            camera.zoom = camera.zoom * factor
            _settle(viewer, qtbot)
            level = layer.data_level if layer.multiscale else 0
            store = np.asarray(root[paths[layer.metadata["key"]][level]][...], np.float32)
            if layer.metadata.get("napari_xai") == "probability":
                store = np.nan_to_num(store, nan=0.0)
            raw = np.asarray(layer._slice.image.raw, np.float32)
            if layer.multiscale:
                (r0, c0), (r1, c1) = layer.corner_pixels[:, -2:].astype(int)
                store = store[r0 : r1 + 1, c0 : c1 + 1]
            np.testing.assert_array_equal(raw, store, err_msg=f"{layer.name} x{factor}")
            assert np.nanmax(raw) > 0, layer.name  # something drawn
            shown = _canvas(viewer)
            _clear_napari_cache()
            layer.refresh()
            _settle(viewer, qtbot)
            np.testing.assert_array_equal(shown, _canvas(viewer))


def test_opening_the_folder_warns_about_nothing(make_napari_viewer, result_folder) -> None:
    """The reader knows the model's classes: the predicted regions open with no toast
    ("unknown classes kept: 'normal', 'tumour'" was raised for the plugin's own classes)."""
    import json

    from napari.utils.notifications import notification_manager

    from napari_xai._notify import warn

    shown: list[str] = []

    def record(notification) -> None:  # noqa: ANN001
        shown.append(str(notification.message))

    viewer = make_napari_viewer(show=True)
    notification_manager.notification_ready.connect(record)
    try:
        layers = viewer.open(result_folder, plugin="napari-xai")
        opened = list(shown)
        warn("probe")  # the recorder hears the plugin's warnings
    finally:
        notification_manager.notification_ready.disconnect(record)
    assert shown == [*opened, "probe"]
    regions = [lyr for lyr in layers if lyr.name == f"{SLIDE} predicted regions"]
    stored = json.loads((result_folder / "annotations.geojson").read_text(encoding="utf-8"))
    classes = {f["properties"]["classification"]["name"] for f in stored["features"]}
    assert regions and len(regions[0].data) == len(stored["features"]) > 0
    assert classes and not classes & {"Tumor", "Stroma"}  # the model's own names
    assert opened == [], opened
