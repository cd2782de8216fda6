"""Explore widget in a real viewer: scatter → slide → scatter, filters, confusion cells."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three tiny slides with labels, batch-scored with features."""
    from napari_xai.cli import main
    from tests.core.batch_helpers import write_tiny_slide

    root = tmp_path_factory.mktemp("explore")
    paths = [write_tiny_slide(root / f"case{i}.tif", seed=i, tumour=i != 1) for i in range(3)]
    pd.DataFrame(
        {"slide": [p.name for p in paths], "label": ["tumour", "normal", "tumour"]}
    ).to_csv(root / "cohort.csv", index=False)
    # metadata beside the cohort, read by the widget: the scanner of each slide
    pd.DataFrame({"slide_id": ["case0", "case1", "case2"], "scanner": ["S1", "S2", "S1"]}).to_csv(
        root / "meta.csv", index=False
    )
    out = root / "out"
    rc = main(["batch", str(root / "cohort.csv"), "--out", str(out), "--scheduler", "sync",
               "-q", "--features"])  # fmt: skip
    assert rc == 0
    return out


@pytest.fixture
def widget(make_napari_viewer, qtbot, scored: Path):
    from napari_xai._widgets.explore import ExploreWidget

    viewer = make_napari_viewer()
    w = ExploreWidget(viewer)
    w._folder.value = scored
    w._metadata.value = scored.parent / "meta.csv"
    w._on_run()
    qtbot.waitUntil(lambda: w.result is not None, timeout=120_000)
    return viewer, w


def _centres(tiles: pd.DataFrame) -> np.ndarray:
    size = tiles["height"].to_numpy(np.float64)
    return np.stack([tiles["row"] + (size - 1) / 2, tiles["col"] + (size - 1) / 2], axis=1)


def _drag(canvas, a, b, modifier) -> None:
    """A real vispy mouse drag from data point a to b with a modifier key held."""
    tr = canvas.canvas.scene.node_transform(canvas.markers)
    pa, pb = tr.imap([*a, 0, 1])[:2], tr.imap([*b, 0, 1])[:2]
    press = canvas.canvas.events.mouse_press(pos=pa, button=1, modifiers=(modifier,))
    mid = (np.asarray(pa) + np.asarray(pb)) / 2
    for p in (mid, pb):
        canvas.canvas.events.mouse_move(pos=p, button=1, modifiers=(modifier,), press_event=press)
    canvas.canvas.events.mouse_release(pos=pb, button=1, modifiers=(modifier,), press_event=press)


def test_scatter_to_slide_to_scatter_round_trip(widget) -> None:
    from napari.utils.interactions import mouse_press_callbacks
    from vispy.util import keys

    from napari_xai._widgets.explore import SELECTION_LAYER

    viewer, w = widget
    tiles = w.result.tiles
    xy = tiles[["x", "y"]].to_numpy()
    assert len(w.scatter.visible_rows) == len(tiles) == len(xy)
    # box around the first slide's tiles in the scatter (a real Shift-drag on the canvas)
    sel = tiles["slide_id"] == "case0"
    lo, hi = xy[sel.to_numpy()].min(0), xy[sel.to_numpy()].max(0)
    mid = (lo + hi) / 2
    _drag(w.scatter, lo - 1e-3, mid, keys.SHIFT)
    picked = w.selection
    inside = np.flatnonzero(np.all((xy >= lo - 1e-3) & (xy <= mid), axis=1))
    assert len(picked) > 0 and set(picked) == set(inside)
    # → slide: its result folder was opened and the selected tiles drawn on it
    assert w.shown_slide in set(tiles["slide_id"].iloc[picked])
    assert f"{w.shown_slide} tiles" in viewer.layers
    on_slide = tiles.iloc[picked]
    on_slide = on_slide[on_slide["slide_id"] == w.shown_slide]
    layer = viewer.layers[SELECTION_LAYER]
    np.testing.assert_allclose(np.sort(layer.data, axis=0), np.sort(_centres(on_slide), axis=0))
    # → scatter: a click on one of those tiles on the slide selects exactly its point
    target = on_slide.index[len(on_slide) // 2]
    row = int(np.flatnonzero(tiles.index == target)[0])
    click = SimpleNamespace(
        position=tuple(_centres(tiles.loc[[target]])[0] + 3.0),
        type="mouse_press",
        modifiers=(),
        button=1,
        handled=False,
        dims_displayed=[0, 1],
        view_direction=None,
    )
    mouse_press_callbacks(viewer, click)
    assert list(w.selection) == [row]
    assert np.all((xy[row] >= lo - 1e-3) & (xy[row] <= mid))  # the point we boxed
    # a click off the tiles changes nothing
    mouse_press_callbacks(viewer, SimpleNamespace(**{**vars(click), "position": (-50.0, -50.0)}))
    assert list(w.selection) == [row]


def test_lasso_filters_and_gallery(widget, qtbot) -> None:
    from vispy.util import keys

    viewer, w = widget
    tiles = w.result.tiles
    xy = tiles[["x", "y"]].to_numpy()
    lo, hi = xy.min(0), xy.max(0)
    _drag(w.scatter, lo - 1, hi + 1, keys.CONTROL)  # a lasso over everything: a diagonal line
    assert len(w.selection) <= len(tiles)
    rows = w.scatter.select_lasso([lo - 1, (hi[0] + 1, lo[1] - 1), hi + 1, (lo[0] - 1, hi[1] + 1)])
    assert len(rows) == len(tiles)
    # filters: one class and a confidence floor, for the scatter, the gallery and the tiles layer
    cls = str(tiles["pred_class"].value_counts().index[0])
    w.filters.classes.value = [cls]
    w.filters.conf_min.value = 0.6
    keep = (tiles["pred_class"] == cls).to_numpy() & (tiles["confidence"] >= 0.6).to_numpy()
    np.testing.assert_array_equal(w.scatter.visible_rows, np.flatnonzero(keep))
    gallery = w.gallery_rows()
    assert len(gallery) == min(24, keep.sum()) and keep[gallery].all()
    conf = tiles["confidence"].to_numpy()[gallery]
    assert np.all(np.diff(conf) >= 0)  # least confident first
    # thumbnails read from the slides, in gallery order
    from napari_xai.core.explore.cohort import tile_thumbnails

    thumbs = tile_thumbnails(tiles.iloc[gallery[:3]], size=48)
    assert len(thumbs) == 3 and thumbs[0].shape == (48, 48, 3) and thumbs[0].std() > 0
    buttons = w.gallery.buttons
    assert len(buttons) == len(gallery)
    qtbot.waitUntil(lambda: all(not b.icon().isNull() for b in buttons), timeout=60_000)
    w.select(np.flatnonzero(keep)[:3])
    layer = viewer.layers[f"{w.shown_slide} tiles"]
    mine = (tiles["slide_id"] == w.shown_slide).to_numpy()
    expect = np.zeros(len(layer.data), bool)
    expect[tiles.loc[mine, "tile"].to_numpy()] = keep[mine]
    np.testing.assert_array_equal(layer.shown, expect)
    # a selection the filters exclude is dropped when they change
    w.filters.classes.value = [c for c in w.filters.classes.choices if c != cls] or [cls]
    assert (
        all(tiles["pred_class"].iloc[r] != cls for r in w.selection)
        or len(w.filters.classes.choices) == 1
    )


def test_confusion_cell_selects_exactly_its_tiles(widget) -> None:
    from napari_xai._widgets.explore import SELECTION_LAYER

    viewer, w = widget
    tiles = w.result.tiles
    assert "label" in tiles and w.confusion.native.rowCount() >= 2
    truths, preds = w.confusion.labels
    found = False
    for i, t in enumerate(truths):
        for j, p in enumerate(preds):
            n = int(w.confusion.native.item(i, j).text())
            if n == 0:
                continue
            w.confusion.pick(i, j)
            expect = np.flatnonzero(
                ((tiles["label"] == t) & (tiles["pred_class"] == p)).to_numpy()
            )
            np.testing.assert_array_equal(np.sort(w.selection), expect)
            shown = tiles.iloc[expect]
            shown = shown[shown["slide_id"] == w.shown_slide]
            assert len(viewer.layers[SELECTION_LAYER].data) == len(shown) > 0
            found = True
    assert found


def _kept_consistently(viewer, w, keep: np.ndarray) -> None:
    """Scatter, gallery, histogram and the shown slide's tiles layer all show ``keep``."""
    tiles = w.result.tiles
    np.testing.assert_array_equal(w.scatter.visible_rows, np.flatnonzero(keep))
    gallery = w.gallery_rows()
    assert len(gallery) == min(24, keep.sum()) and keep[gallery].all()
    assert len(w.gallery.buttons) == len(gallery)
    conf, pred = tiles["confidence"].to_numpy(), tiles["pred_class"].to_numpy()
    for cls, counts in w.histogram.counts.items():
        ref, _ = np.histogram(conf[keep & (pred == cls)], bins=20, range=(0, 1))
        np.testing.assert_array_equal(counts, ref)
    drawn = {a.get_label(): a.get_data().values for a in w.histogram.ax.patches if a.get_label()}
    for cls, counts in w.histogram.counts.items():
        np.testing.assert_array_equal(drawn[cls], counts)  # what the canvas draws
    if w.shown_slide is not None:
        layer = viewer.layers[f"{w.shown_slide} tiles"]
        mine = (tiles["slide_id"] == w.shown_slide).to_numpy()
        expect = np.zeros(len(layer.data), bool)
        expect[tiles.loc[mine, "tile"].to_numpy()] = keep[mine]
        np.testing.assert_array_equal(layer.shown, expect)


def test_metadata_slide_and_flag_filters_change_scatter_gallery_and_layer(widget) -> None:
    from napari_xai.core.explore.report import ExploreResult

    viewer, w = widget
    tiles = w.result.tiles
    f = w.filters
    assert {"scanner", "label", "cluster"} <= set(f.column.choices)
    assert "confidence" not in f.column.choices  # numbers get the range filter, not values
    _kept_consistently(viewer, w, np.ones(len(tiles), bool))
    w.select([int(np.flatnonzero((tiles["slide_id"] == "case0").to_numpy())[0])])
    assert w.shown_slide == "case0"
    # metadata: scanner S1 is case0 and case2 in the table beside the cohort
    meta = pd.read_csv(Path(w._metadata.value))
    s1 = set(meta.loc[meta["scanner"] == "S1", "slide_id"])
    f.column.value = "scanner"
    assert sorted(f.values.choices) == ["S1", "S2"] and len(w.scatter.visible_rows) == len(tiles)
    f.values.value = ["S1"]
    keep = tiles["slide_id"].isin(s1).to_numpy()
    assert 0 < keep.sum() < len(tiles)
    _kept_consistently(viewer, w, keep)
    f.values.value = ["S2"]  # the selection (on case0, S1) is dropped with its tiles
    keep = ~tiles["slide_id"].isin(s1).to_numpy()
    _kept_consistently(viewer, w, keep)
    assert len(w.selection) == 0
    assert not viewer.layers["case0 tiles"].shown.any()
    f.values.value = []  # nothing kept: an empty scatter, gallery and histogram
    _kept_consistently(viewer, w, np.zeros(len(tiles), bool))
    # a cluster (numbers as values) and a slide at once
    f.column.value = "cluster"
    first = str(sorted(tiles["cluster"].unique())[0])
    f.values.value = [first]
    f.slides.value = ["case2"]
    keep = (tiles["cluster"].astype(str) == first).to_numpy() & (
        tiles["slide_id"] == "case2"
    ).to_numpy()
    _kept_consistently(viewer, w, keep)
    # ood_score: a ceiling at the median keeps the tiles at or below it
    f.column.value = "(no metadata filter)"
    f.slides.value = list(f.slides.choices)
    ood = tiles["ood_score"].to_numpy()
    assert f.ood_max.value == f.ood_max.max >= ood.max()
    f.ood_max.value = round(float(np.median(ood)), 2)
    _kept_consistently(viewer, w, ood <= f.ood_max.value)
    f.ood_max.value = f.ood_max.max
    _kept_consistently(viewer, w, np.ones(len(tiles), bool))
    # flags: the same cohort with its first two tile columns flagged
    f.column.value = "(no metadata filter)"
    col = tiles["grid_col"].to_numpy() - tiles["grid_col"].min()
    flagged = tiles.assign(
        flags=np.where(col == 0, "edge;artefact", np.where(col == 1, "artefact", ""))
    )
    res = w.result
    f.slides.value = list(f.slides.choices)
    w.select(np.flatnonzero((tiles["slide_id"] == "case2").to_numpy())[:2])
    assert len(w.selection) == 2
    w.set_result(ExploreResult(flagged, res.clusters, res.embedding, res.options, res.timings))
    assert len(w.selection) == 0  # a new cohort starts with nothing selected
    assert list(f.hide_flags.choices) == ["artefact", "edge"]
    assert len(w.scatter.visible_rows) == len(tiles)  # populated: everything kept again
    f.hide_flags.value = ["edge"]
    _kept_consistently(viewer, w, col != 0)
    f.hide_flags.value = ["artefact"]
    _kept_consistently(viewer, w, col > 1)


def test_deselecting_every_class_or_slide_shows_no_tiles(widget) -> None:
    """An empty pick in the class or slide filter keeps nothing (not "no filter")."""
    viewer, w = widget
    tiles = w.result.tiles
    f = w.filters
    w.select([int(np.flatnonzero((tiles["slide_id"] == "case0").to_numpy())[0])])
    f.classes.value = []
    _kept_consistently(viewer, w, np.zeros(len(tiles), bool))
    assert not viewer.layers["case0 tiles"].shown.any()
    f.classes.value = list(f.classes.choices)
    _kept_consistently(viewer, w, np.ones(len(tiles), bool))
    f.slides.value = []
    _kept_consistently(viewer, w, np.zeros(len(tiles), bool))
    f.slides.value = ["case2"]
    _kept_consistently(viewer, w, (tiles["slide_id"] == "case2").to_numpy())


def test_dragging_on_the_histogram_sets_the_confidence_range(widget) -> None:
    from matplotlib.backend_bases import MouseEvent

    viewer, w = widget
    tiles = w.result.tiles
    canvas, ax = w.histogram.native, w.histogram.ax
    canvas.draw()
    y = float(np.mean(ax.get_ylim()))
    (x0, y0), (x1, _) = ax.transData.transform([(0.5, y), (0.9, y)])
    MouseEvent("button_press_event", canvas, x0, y0, 1)._process()
    MouseEvent("motion_notify_event", canvas, x1, y0, 1, buttons={1})._process()
    MouseEvent("button_release_event", canvas, x1, y0, 1)._process()
    assert (w.filters.conf_min.value, w.filters.conf_max.value) == (0.5, 0.9)
    conf = tiles["confidence"].to_numpy()
    _kept_consistently(viewer, w, (conf >= 0.5) & (conf <= 0.9))


def test_mosaic_map_shows_the_nearest_tiles_and_a_click_selects_a_cell(widget, qtbot) -> None:
    from qtpy.QtCore import QPoint, Qt

    from napari_xai._widgets.explore import MOSAIC_CELL, MOSAIC_GRID, SELECTION_LAYER
    from napari_xai.core.explore.cohort import tile_thumbnails

    viewer, w = widget
    tiles = w.result.tiles
    f = w.filters
    f.slides.value = ["case0", "case1"]  # the mosaic is built from the kept tiles
    keep = tiles["slide_id"].isin(["case0", "case1"]).to_numpy()
    w._mosaic_button.clicked.emit()
    qtbot.waitUntil(lambda: w.mosaic.mosaic is not None, timeout=60_000)
    image = w.mosaic.mosaic.image
    # the grid, computed here from the kept tiles' x and y
    xy = tiles[["x", "y"]].to_numpy()[keep]
    rows = np.flatnonzero(keep)
    lo, hi = xy.min(0), xy.max(0)
    side = float((hi - lo).max()) / MOSAIC_GRID
    n_rows, n_cols = image.shape[0] // MOSAIC_CELL, image.shape[1] // MOSAIC_CELL
    assert MOSAIC_GRID in (n_rows, n_cols)
    i = np.minimum(((hi[1] - xy[:, 1]) // side).astype(int), n_rows - 1)
    j = np.minimum(((xy[:, 0] - lo[0]) // side).astype(int), n_cols - 1)
    occupied = sorted(set(zip(i, j, strict=True)))
    ci, cj = max(occupied, key=lambda c: ((i == c[0]) & (j == c[1])).sum())  # the fullest cell
    members = rows[(i == ci) & (j == cj)]
    centre = (lo[0] + (cj + 0.5) * side, hi[1] - (ci + 0.5) * side)
    nearest = members[np.argmin(np.hypot(*(tiles[["x", "y"]].to_numpy()[members] - centre).T))]
    block = image[
        ci * MOSAIC_CELL : (ci + 1) * MOSAIC_CELL, cj * MOSAIC_CELL : (cj + 1) * MOSAIC_CELL
    ]
    (thumb,) = tile_thumbnails(tiles.iloc[[nearest]], size=MOSAIC_CELL)
    np.testing.assert_array_equal(block, thumb)
    # a real click on that cell selects exactly the kept tiles in it, drawn on their slide
    label = w.mosaic.native
    point = QPoint(int((cj + 0.5) * MOSAIC_CELL), int((ci + 0.5) * MOSAIC_CELL))
    qtbot.mouseClick(label, Qt.MouseButton.LeftButton, pos=point)
    np.testing.assert_array_equal(np.sort(w.selection), members)
    assert w.shown_slide in set(tiles["slide_id"].iloc[members])
    on_slide = tiles.iloc[members]
    on_slide = on_slide[on_slide["slide_id"] == w.shown_slide]
    np.testing.assert_allclose(
        np.sort(viewer.layers[SELECTION_LAYER].data, axis=0), np.sort(_centres(on_slide), axis=0)
    )
    # a click on an empty cell (grey) selects nothing
    empty = [(a, b) for a in range(n_rows) for b in range(n_cols) if (a, b) not in occupied]
    if empty:
        a, b = empty[0]
        grey = image[
            a * MOSAIC_CELL : (a + 1) * MOSAIC_CELL, b * MOSAIC_CELL : (b + 1) * MOSAIC_CELL
        ]
        assert (grey == 240).all()
        point = QPoint(int((b + 0.5) * MOSAIC_CELL), int((a + 0.5) * MOSAIC_CELL))
        qtbot.mouseClick(label, Qt.MouseButton.LeftButton, pos=point)
        assert len(w.selection) == 0


def test_explore_choices_survive_layer_changes(widget) -> None:
    """Docked, the explorer's colour, filter and gallery choices outlive three added layers
    (napari calls reset_choices() on every layer change)."""
    viewer, w = widget
    viewer.window.add_dock_widget(w)
    w._colour_by.value = next(c for c in w._colour_by.choices if c != w._colour_by.value)
    w._order.value = "uncertainty"
    w._method.value = "tsne"
    classes = list(w.filters.classes.choices)
    w.filters.classes.value = classes[:1]
    w.filters.column.value = "scanner"
    w.filters.values.value = ["S1"]
    before = {name: getattr(w, name).value for name in ("_colour_by", "_order", "_method")}
    kept = (w.filters.classes.value, w.filters.column.value, w.filters.values.value)
    shown = len(w.selection), int(np.count_nonzero(w._colours[:, 3])) if len(w._colours) else 0
    from .test_controls_keep_values import _add_three_layers  # noqa: TID252

    _add_three_layers(viewer)
    assert {name: getattr(w, name).value for name in before} == before
    assert (w.filters.classes.value, w.filters.column.value, w.filters.values.value) == kept
    assert list(w.filters.classes.choices) == classes
    after = len(w.selection), int(np.count_nonzero(w._colours[:, 3])) if len(w._colours) else 0
    assert after == shown


def test_a_folder_scored_without_features_is_a_clear_error_not_a_crash(
    make_napari_viewer, qtbot, tmp_path: Path
) -> None:
    """Before, the error was re-raised into Qt's loop and the widget kept its dead worker."""
    from napari_xai._widgets.explore import ExploreWidget
    from napari_xai.cli import main
    from tests.core.batch_helpers import write_tiny_slide

    write_tiny_slide(tmp_path / "plain.tif", seed=0, tumour=True)
    rc = main(["batch", str(tmp_path / "plain.tif"), "--out", str(tmp_path / "out"),
               "--scheduler", "sync", "-q"])  # fmt: skip
    assert rc == 0
    w = ExploreWidget(make_napari_viewer())
    w._folder.value = tmp_path / "out"
    w._on_run()
    qtbot.waitUntil(lambda: w._worker is None, timeout=60_000)
    assert w._status.value.startswith("error: ") and "scored without features" in w._status.value
    assert "plain" in w._status.value and w._run.enabled and w.result is None
