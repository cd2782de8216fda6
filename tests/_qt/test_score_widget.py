"""The "Score slide" widget in a real viewer: layers appear, align, show, cancel, errors;
every run leaves a result folder the reader opens, and the heatmaps shown are the stored ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_xai._widgets.score import DEMO, FROM_FILE, ScoreWidget


@pytest.fixture(scope="module")
def sample_slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from napari_xai.demo.synthetic import write_synthetic_slide

    path = tmp_path_factory.mktemp("sample") / "sample.svs"
    write_synthetic_slide(path, shape_rc=(1536, 2048), seed=3, workers=1)
    return path


def _open(viewer, path: Path):
    layers = viewer.open(str(path), plugin="napari-xai")
    return layers[0]


def _run_and_wait(widget: ScoreWidget, qtbot, timeout: int = 180_000) -> None:
    widget._on_run()
    assert widget._worker is not None
    # the widget's own finished handler clears _worker: waiting on that cannot miss a worker
    # that finished (a bad model fails at once) before a signal blocker could connect
    qtbot.waitUntil(lambda: widget._worker is None, timeout=timeout)


def _hold_scoring(monkeypatch, event, batches: int) -> None:
    """Make run_slide's scorer wait for ``event`` after its first ``batches`` batches."""
    import napari_xai.core.inference as inference

    real = inference.score_tiles  # what run_slide's score stage calls

    def held(*args, **kwargs):
        gen = real(*args, **kwargs)
        for _ in range(batches):
            yield next(gen)
        event.wait(120)
        return (yield from gen)

    monkeypatch.setattr(inference, "score_tiles", held)


def test_score_widget_scores_the_sample(make_napari_viewer, qtbot, sample_slide, tmp_path) -> None:
    viewer = make_napari_viewer(show=True)  # multiscale layers draw only when shown
    slide_layer = _open(viewer, sample_slide)
    widget = ScoreWidget(viewer)
    widget._output.value = tmp_path
    viewer.window.add_dock_widget(widget, name="Score slide")
    assert widget._slide_layer.value is slide_layer
    assert widget._model_source.value == DEMO
    widget._batch_size.value = 64
    seen: list[int] = []
    widget._progress.changed.connect(lambda v: seen.append(int(v)))
    _run_and_wait(widget, qtbot)

    result = widget.last_result
    assert result is not None and result.complete, widget._status.value
    assert widget._status.value.startswith("done:") and "tiles/s" in widget._status.value
    assert seen and max(seen) == len(result.tiles)
    names = [f"sample prob [{c}]" for c in ("background", "normal", "tumour")]
    for name in [*names, "sample tiles"]:
        assert name in viewer.layers, name
    heat = viewer.layers["sample prob [tumour]"]
    assert heat.visible and not viewer.layers["sample prob [normal]"].visible
    # every probability layer carries its colour bar (probability 0-1)
    for name in ("sample prob [tumour]", "sample prob [normal]"):
        bar_layer = viewer.layers[name]
        assert bar_layer.colorbar.visible
        assert tuple(bar_layer.contrast_limits) == (0.0, 1.0)
    # Aligned: map pixel (0, 0) sits on the centre of tile (0, 0) in slide pixels.
    t0 = result.grid.tile_size0
    np.testing.assert_allclose(heat.data_to_world((0, 0)), ((t0 - 1) / 2, (t0 - 1) / 2))
    np.testing.assert_allclose(slide_layer.data_to_world((0, 0)), (0, 0))
    slide_extent = np.asarray(slide_layer.extent.world)
    heat_extent = np.asarray(heat.extent.world)
    assert np.all(np.abs(heat_extent - slide_extent) <= t0)
    assert np.nanmax(heat.data) > 0.5  # the sample has tumour
    points = viewer.layers["sample tiles"]
    assert len(points.data) == len(result.tiles) == len(points.features)

    # Not blank, and the heatmap changes what a person sees.
    viewer.reset_view()
    for name in [*names, "sample tiles"]:
        viewer.layers[name].visible = False
    without = viewer.screenshot(canvas_only=True, flash=False)
    heat.visible = True
    with_heat = viewer.screenshot(canvas_only=True, flash=False)
    assert without[..., :3].std() > 5
    assert np.abs(with_heat[..., :3].astype(int) - without[..., :3].astype(int)).mean() > 0.5

    # Re-running replaces layers in place instead of adding new ones.
    n_layers = len(viewer.layers)
    layer_id = id(heat)
    _run_and_wait(widget, qtbot)
    assert len(viewer.layers) == n_layers
    assert id(viewer.layers["sample prob [tumour]"]) == layer_id
    # the same grid, model and slide: the folder's score is kept, not recomputed
    assert widget.last_result is None and widget.last_folder == tmp_path / "sample"
    assert "kept from the folder" in widget._status.value


def test_score_widget_run_leaves_the_folder_the_reader_opens(
    make_napari_viewer, qtbot, sample_slide, tmp_path
) -> None:
    """After a run: the folder exists (with features when asked), napari opens it with the
    plugin's reader, and the heatmap the widget shows equals the stored map."""
    import zarr

    from napari_xai.core.results import load_result

    viewer = make_napari_viewer(show=True)
    _open(viewer, sample_slide)
    widget = ScoreWidget(viewer)
    widget._output.value = tmp_path
    widget._features.value = True
    widget._batch_size.value = 64
    _run_and_wait(widget, qtbot)
    folder = tmp_path / "sample"
    assert widget.last_folder == folder and widget._folder.value == str(folder)
    assert (folder / "manifest.json").is_file() and (folder / "tiles.parquet").is_file()
    stored = load_result(folder)
    assert stored.manifest["files"]["features"] == "features.zarr"
    assert (folder / "features.zarr").is_dir() and "ood_score" in stored.tiles
    assert len(stored.tiles) == len(widget.last_result.tiles) > 0

    shown = viewer.layers["sample prob [tumour]"]
    (info,) = [h for h in stored.heatmaps if h.attrs.get("class_name") == "tumour"]
    store = np.asarray(zarr.open_group(str(folder / "heatmaps.zarr"), mode="r")[info.key]["0"])
    expected = np.nan_to_num(store, nan=0.0)  # unscored cells are drawn as 0
    assert np.isfinite(store).any() and np.nanmax(store) > 0.5
    np.testing.assert_array_equal(np.asarray(shown.data), expected)
    np.testing.assert_allclose(shown.scale, info.scales[0])
    np.testing.assert_allclose(shown.translate, info.translates[0])
    assert shown.metadata["result_folder"] == str(folder)
    assert "sample ood_score" in viewer.layers  # the reader's layers, from the folder

    # dropped on a fresh viewer, the folder opens whole: the same layers, the same data
    other = make_napari_viewer()
    other.open(str(folder), plugin="napari-xai")
    assert {layer.name for layer in viewer.layers} <= {layer.name for layer in other.layers}
    reopened = other.layers["sample prob [tumour]"]
    np.testing.assert_array_equal(np.asarray(reopened.data), np.asarray(shown.data))


def test_score_widget_cancel(
    make_napari_viewer, qtbot, sample_slide, monkeypatch, tmp_path
) -> None:
    import gc
    import threading

    # The worker waits after its first batch until the GUI has seen it, so the cancel
    # lands mid-run however fast the (cached) model scores.
    seen = threading.Event()
    _hold_scoring(monkeypatch, seen, 1)
    viewer = make_napari_viewer()
    slide = _open(viewer, sample_slide)
    widget = ScoreWidget(viewer)
    widget._output.value = tmp_path
    widget._batch_size.value = 2
    widget._min_tissue.value = 0.0
    # Cancel at the first batch the GUI shows (connected before the start, so it
    # cannot be missed; the model is cached once the widget has described it, so a
    # poll could come after a whole fast run).
    running: list[bool] = []
    temporaries: list[list[Path]] = []  # the run's temporary result folder, mid-run

    frozen: list[int] = []  # objects the collector skips while the run goes

    def cancel_once(value) -> None:
        if value > 0 and not running:
            running.append(widget._worker is worker)
            frozen.append(gc.get_freeze_count())
            temporaries.append(list(tmp_path.glob(".sample.tmp-*")))
            widget._on_cancel()
            seen.set()

    widget._progress.changed.connect(cancel_once)
    widget._on_run()
    worker = widget._worker
    # the widget's own finished handler clears _worker (cannot miss an early finish)
    qtbot.waitUntil(lambda: widget._worker is None, timeout=120_000)
    assert running == [True]  # a batch was shown while the worker ran
    # full collections skipped the viewer's objects during the run, and no longer do
    assert frozen[0] > 100_000 and gc.get_freeze_count() == 0
    assert widget.last_result is None
    assert "cancelled" in widget._status.value
    assert widget._run.enabled and not widget._cancel.enabled
    assert not (tmp_path / "sample" / "manifest.json").exists()  # no result folder committed
    # the cancelled run's temporary folder is removed now, not by the next run
    assert len(temporaries[0]) == 1  # there while it ran
    qtbot.waitUntil(lambda: not temporaries[0][0].exists(), timeout=60_000)
    assert not list(tmp_path.glob(".sample.*"))
    assert slide in viewer.layers and widget._run.enabled  # napari fine


def test_score_widget_reports_bad_model(
    make_napari_viewer, qtbot, sample_slide, tmp_path: Path, monkeypatch
) -> None:
    import napari.utils.notifications as notifications

    errors: list[str] = []
    monkeypatch.setattr(notifications, "show_error", lambda msg: errors.append(str(msg)))
    bad = tmp_path / "not_a_model.pt"
    bad.write_text("hello")
    viewer = make_napari_viewer()
    _open(viewer, sample_slide)
    widget = ScoreWidget(viewer)
    widget._output.value = tmp_path
    widget._model_source.value = FROM_FILE
    assert not widget._model_file.native.isHidden()
    widget._model_file.value = bad
    _run_and_wait(widget, qtbot)
    assert errors and "not_a_model.pt: not a torch model file" in errors[0]
    assert widget._status.value.startswith("error:")
    assert not any("prob [" in layer.name for layer in viewer.layers)


def test_score_widget_without_slide(make_napari_viewer, monkeypatch) -> None:
    import napari.utils.notifications as notifications

    errors: list[str] = []
    monkeypatch.setattr(notifications, "show_error", lambda msg: errors.append(str(msg)))
    viewer = make_napari_viewer()
    widget = ScoreWidget(viewer)
    assert widget._slide_layer.value is None
    widget._on_run()
    assert errors and "open a slide first" in errors[0]
    assert widget._worker is None


def test_score_widget_from_the_plugin_menu(
    make_napari_viewer, qtbot, sample_slide, tmp_path
) -> None:
    """Docked the way napari's Plugins menu does it: napari passes a proxied viewer."""
    viewer = make_napari_viewer()
    _open(viewer, sample_slide)
    _, widget = viewer.window.add_plugin_dock_widget("napari-xai", "Score slide")
    assert isinstance(widget, ScoreWidget)
    widget._output.value = tmp_path
    assert widget._slide_layer.value is not None
    widget._batch_size.value = 64
    _run_and_wait(widget, qtbot)
    assert widget.last_result is not None, widget._status.value
    assert "sample prob [tumour]" in viewer.layers


def test_score_widget_refuses_zero_tissue_clearly(make_napari_viewer, qtbot, tmp_path) -> None:
    """A glass-only slide: the run ends with a warning naming the file and the tissue found."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "core"))
    from test_score_empty import _glass_slide

    viewer = make_napari_viewer()
    _open(viewer, _glass_slide(tmp_path / "glass.svs"))
    widget = ScoreWidget(viewer)
    widget._output.value = tmp_path / "out"
    _run_and_wait(widget, qtbot)
    (message,) = [m for m in widget.warnings if "0 tiles scored" in m]
    assert "glass.svs" in message and "0.00% tissue" in message and "min tissue" in message
    assert widget._status.value.startswith("no tile scored: glass.svs: 0 tiles scored")


def test_score_widget_shows_masks_as_outlines(make_napari_viewer, qtbot, shared_data) -> None:
    """A real slide: the masks button adds outlined tissue/artefact masks; tissue stays visible."""
    viewer = make_napari_viewer(show=True)
    slide_layer = _open(viewer, shared_data / "slides" / "CMU-1-Small-Region.svs")
    widget = ScoreWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Score slide")
    qtbot.wait(300)
    viewer.reset_view()
    before = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)
    widget._show_masks.native.click()
    qtbot.waitUntil(lambda: widget._worker is None, timeout=120_000)
    tissue = viewer.layers["CMU-1-Small-Region tissue"]
    artefacts = viewer.layers["CMU-1-Small-Region artefacts"]
    assert tissue.contour > 0 and artefacts.contour > 0
    assert 0.2 < tissue.metadata["tissue_fraction"] < 0.9
    assert "tissue" in widget._status.value and "red_ink" in widget._status.value
    assert slide_layer in viewer.layers
    qtbot.wait(200)
    outlined = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)

    def diff(a: np.ndarray, b: np.ndarray) -> float:  # over the common canvas area
        h, w = min(a.shape[0], b.shape[0]), min(a.shape[1], b.shape[1])
        return float((np.abs(a[:h, :w] - b[:h, :w]).sum(-1) > 30).mean())

    changed = diff(outlined, before)
    # filled, the same masks would cover the tissue: outlines change far fewer pixels
    tissue.contour = artefacts.contour = 0
    qtbot.wait(200)
    filled = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)
    covered = diff(filled, before)
    print(f"\npixels changed: outlines {changed:.3f}, filled {covered:.3f}")
    assert changed > 0.001  # the outlines are drawn
    assert changed < 0.25 * covered

    # the Audit widget has the same button (one implementation, _widgets/_masks.py)
    from napari_xai._widgets.audit import AuditWidget

    viewer.layers.remove(tissue)
    viewer.layers.remove(artefacts)
    audit = AuditWidget(viewer)
    audit._show_masks.native.click()
    qtbot.waitUntil(lambda: audit._worker is None, timeout=120_000)
    assert viewer.layers["CMU-1-Small-Region tissue"].contour > 0
    assert "artefact classes" in audit._status.value


def test_score_widget_shows_the_heatmap_while_it_scores(
    make_napari_viewer, qtbot, sample_slide, monkeypatch, tmp_path
) -> None:
    """The shown class's map appears from run_slide's progress before the run ends."""
    import threading

    import napari_xai._widgets._score_work as score_work

    monkeypatch.setattr(score_work, "REFRESH_S", 0.0)  # a live layer on every batch
    release = threading.Event()  # after two batches, wait until the GUI has the live map
    _hold_scoring(monkeypatch, release, 2)
    viewer = make_napari_viewer()
    _open(viewer, sample_slide)
    widget = ScoreWidget(viewer)
    widget._output.value = tmp_path
    widget._batch_size.value = 8
    widget._on_run()
    try:
        qtbot.waitUntil(lambda: "sample prob [tumour]" in viewer.layers, timeout=120_000)
        assert widget._worker is not None  # still scoring
        live = np.asarray(viewer.layers["sample prob [tumour]"].data)
        assert 0 < np.count_nonzero(live) <= 16  # the 16 tiles of two batches, at most
        assert "sample prob [normal]" not in viewer.layers  # hidden classes come at the end
        assert not (tmp_path / "sample" / "manifest.json").exists()
    finally:
        release.set()
    qtbot.waitUntil(lambda: widget._worker is None, timeout=180_000)
    assert "sample prob [normal]" in viewer.layers and widget.last_result is not None
    assert np.count_nonzero(viewer.layers["sample prob [tumour]"].data) > 16


def test_score_widget_prepares_the_maps_a_run_fills(
    make_napari_viewer, qtbot, sample_slide, tmp_path
) -> None:
    """Once the slide and the model are known, the run's maps are added (empty) before any
    click; the run fills those same layers with the store's values."""
    import zarr

    from napari_xai.core.results import load_result

    viewer = make_napari_viewer(show=True)
    _open(viewer, sample_slide)
    widget = ScoreWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Score slide")  # on screen: it prepares
    widget._output.value = tmp_path
    widget._batch_size.value = 64
    names = [f"sample prob [{c}]" for c in ("background", "normal", "tumour")]
    qtbot.waitUntil(
        lambda: all(n in viewer.layers for n in names) and not widget._pacer, timeout=120_000
    )
    prepared = {n: viewer.layers[n] for n in names}
    for name, layer in prepared.items():
        assert not np.any(np.asarray(layer.data)), name  # empty: nothing drawn before a run
        assert layer.visible == (name == "sample prob [tumour]")
        assert layer.colorbar.visible and tuple(layer.contrast_limits) == (0.0, 1.0)
    n_layers = len(viewer.layers)

    _run_and_wait(widget, qtbot)
    folder = tmp_path / "sample"
    assert widget.last_folder == folder and widget.last_result is not None
    stored = load_result(folder)
    group = zarr.open_group(str(folder / "heatmaps.zarr"), mode="r")
    maps = [h for h in stored.heatmaps if h.kind == "probabilities"]
    assert sorted(f"sample prob [{h.attrs['class_name']}]" for h in maps) == sorted(names)
    for info in maps:
        name = f"sample prob [{info.attrs['class_name']}]"
        assert viewer.layers[name] is prepared[name]  # filled, not replaced
        expected = np.nan_to_num(np.asarray(group[info.key]["0"]), nan=0.0)
        np.testing.assert_array_equal(np.asarray(prepared[name].data), expected)
        np.testing.assert_allclose(prepared[name].scale, info.scales[0])
        np.testing.assert_allclose(prepared[name].translate, info.translates[0])
        assert prepared[name].metadata["result_folder"] == str(folder)
    assert np.nanmax(np.asarray(prepared["sample prob [tumour]"].data)) > 0.5
    # only the tiles and the predicted regions were added by the run
    assert len(viewer.layers) == n_layers + 2, [layer.name for layer in viewer.layers]
