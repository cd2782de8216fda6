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
    w._classes.value = [cls]
    w._conf_min.value = 0.6
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
    buttons = w.gallery_buttons
    assert len(buttons) == len(gallery)
    qtbot.waitUntil(lambda: all(not b.icon().isNull() for b in buttons), timeout=60_000)
    w.select(np.flatnonzero(keep)[:3])
    layer = viewer.layers[f"{w.shown_slide} tiles"]
    mine = (tiles["slide_id"] == w.shown_slide).to_numpy()
    expect = np.zeros(len(layer.data), bool)
    expect[tiles.loc[mine, "tile"].to_numpy()] = keep[mine]
    np.testing.assert_array_equal(layer.shown, expect)
    # a selection the filters exclude is dropped when they change
    w._classes.value = [c for c in w._classes.choices if c != cls] or [cls]
    assert (
        all(tiles["pred_class"].iloc[r] != cls for r in w.selection)
        or len(w._classes.choices) == 1
    )


def test_confusion_cell_selects_exactly_its_tiles(widget) -> None:
    from napari_xai._widgets.explore import SELECTION_LAYER

    viewer, w = widget
    tiles = w.result.tiles
    assert "label" in tiles and w._confusion.rowCount() >= 2
    truths, preds = w._cm_labels
    found = False
    for i, t in enumerate(truths):
        for j, p in enumerate(preds):
            n = int(w._confusion.item(i, j).text())
            if n == 0:
                continue
            w._on_confusion_cell(i, j)
            expect = np.flatnonzero(
                ((tiles["label"] == t) & (tiles["pred_class"] == p)).to_numpy()
            )
            np.testing.assert_array_equal(np.sort(w.selection), expect)
            shown = tiles.iloc[expect]
            shown = shown[shown["slide_id"] == w.shown_slide]
            assert len(viewer.layers[SELECTION_LAYER].data) == len(shown) > 0
            found = True
    assert found
