"""The Explain widget in a real viewer: saliency layers exist, align and are not blank."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ..conftest import write_pyramid_tiff  # noqa: TID252


@pytest.fixture(scope="module")
def slide_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("explain")
    return write_pyramid_tiff(folder / "explain.svs", shape_rc=(1024, 1536), tile=256, levels=2)


def _run(widget, qtbot, start) -> None:
    start()
    worker = widget._worker
    assert worker is not None
    # the widget's own finished handler clears _worker: waiting on that cannot miss a worker
    # that finished (a bad model fails at once) before a signal blocker could connect
    qtbot.waitUntil(lambda: widget._worker is None, timeout=120_000)


def test_methods_menu_matches_registry() -> None:
    from napari_xai._widgets.explain import METHODS
    from napari_xai.core.attribution import ATTRIBUTION_METHODS

    assert set(METHODS) == set(ATTRIBUTION_METHODS)


def test_explain_is_in_the_plugin_menu(make_napari_viewer, slide_path) -> None:
    from napari_xai._widgets.explain import ExplainWidget

    viewer = make_napari_viewer(show=True)
    (slide_layer,) = viewer.open(slide_path, plugin="napari-xai")
    _, widget = viewer.window.add_plugin_dock_widget("napari-xai", "Explain")
    assert isinstance(widget, ExplainWidget)
    assert widget._slide_layer.value is slide_layer
    r0, c0, r1, c1 = widget.view_rect(slide_layer)  # through napari's public-only proxy
    assert r1 > r0 and c1 > c0


def test_whole_slide_saliency_layer(make_napari_viewer, qtbot, slide_path, tmp_path) -> None:
    import torch

    torch.set_num_threads(1)
    from napari_xai._widgets.explain import SLIDE, ExplainWidget

    viewer = make_napari_viewer(show=True)
    (slide_layer,) = viewer.open(slide_path, plugin="napari-xai")
    widget = ExplainWidget(viewer)
    assert widget._slide_layer.value is slide_layer
    qtbot.waitUntil(
        lambda: "tumour" in widget._target.choices, timeout=60_000
    )  # described in a worker
    assert "tumour" in widget._target.choices
    widget._output.value = tmp_path
    widget._mode.value = SLIDE
    widget._method.value = "grad_cam"
    widget._target.value = "tumour"
    viewer.reset_view()
    before = viewer.screenshot(canvas_only=True, flash=False)
    _run(widget, qtbot, widget._on_run)
    res = widget.last_result
    assert res is not None and res.complete and res.n_computed > 0
    name = "explain saliency [grad_cam, tumour]"
    assert name in viewer.layers
    layer = viewer.layers[name]
    assert layer.colormap.name == "inferno"
    # the map the result folder holds (the reader's layer), listed in its manifest
    from napari_xai.core.results import read_manifest

    folder = tmp_path / "explain"
    assert res.store == folder / "heatmaps.zarr" and layer.metadata["result_folder"] == str(folder)
    assert read_manifest(folder)["stages"]["explain"][res.key]["n_done"] == res.n_tiles
    # aligned with the slide: same world bounding box (pixel edges), within a map pixel
    ds = res.scale_rc[0]
    s_ext, m_ext = slide_layer.extent.world, layer.extent.world
    np.testing.assert_allclose(m_ext[0] - (ds - 1) / 2, s_ext[0], atol=1e-6)
    assert np.all(np.abs(m_ext[1] + (ds - 1) / 2 - s_ext[1]) <= ds)

    def _changed() -> bool:  # slicing may finish a few frames later
        after = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)
        # New layer controls may resize the canvas by a few pixels: compare the common part.
        rows, cols = min(after.shape[0], before.shape[0]), min(after.shape[1], before.shape[1])
        ref = before[:rows, :cols, :3].astype(int)
        return after.std() > 5 and np.abs(after[:rows, :cols] - ref).mean() > 5

    qtbot.waitUntil(_changed, timeout=20_000)
    # the saliency itself is not blank
    level = np.asarray(layer.data[-1])
    assert np.nanmax(level) > 0 and np.isfinite(level).mean() > 0.2  # tissue tiles only
    # re-run replaces, does not pile up
    n_layers = len(viewer.layers)
    _run(widget, qtbot, widget._on_run)
    assert len(viewer.layers) == n_layers
    assert widget.last_result.n_computed == 0  # resumed from the store

    # "only this map": the slide's probability map and this saliency map hide each other
    from napari_xai._widgets.display import DisplayPanel
    from napari_xai.core.layers.scores import heatmap_layer
    from napari_xai.core.naming import slide_stem

    assert layer.metadata["slide"] == slide_stem(slide_path)
    data, kwargs, kind = heatmap_layer(
        np.full((4, 4), 0.5), slide_name=slide_stem(slide_path), class_name="tumour", stride0=64
    )
    prob = viewer.add_image(data, **kwargs)
    panel = DisplayPanel(viewer)
    assert panel._only.value
    panel._map.value = layer
    assert layer.visible and not prob.visible
    panel._map.value = prob
    assert prob.visible and not layer.visible


def test_view_mode_and_channels(make_napari_viewer, qtbot, slide_path, tmp_path) -> None:
    import torch

    torch.set_num_threads(1)
    from napari_xai._widgets.explain import VIEW, ExplainWidget
    from napari_xai.core.attribution.whole_slide import slide_grid, tiles_in_view

    viewer = make_napari_viewer(show=True)
    (slide_layer,) = viewer.open(slide_path, plugin="napari-xai")
    widget = ExplainWidget(viewer)
    widget._output.value = tmp_path
    widget._mode.value = VIEW
    widget._method.value = "saliency"
    camera = widget._camera()
    camera.center = (300, 400)
    camera.zoom = 2.0
    rect = widget.view_rect(slide_layer)
    _run(widget, qtbot, widget._on_run)
    res = widget.last_result
    grid = slide_grid(slide_layer.metadata["slide"], widget._load_model().card)
    assert 0 < res.n_computed == len(tiles_in_view(grid, rect)) < res.n_tiles
    assert "explain saliency [saliency, predicted]" in viewer.layers
    # channels of the tile under the cursor, drawn beside it
    viewer.cursor.position = (300, 400)
    _run(widget, qtbot, widget._on_show_channels)  # read and model call in a worker
    (layer,) = [lyr for lyr in viewer.layers if lyr.name.startswith("explain channels [")]
    assert layer is not None and layer.name.startswith("explain channels [")
    assert np.nanmax(layer.data) <= 1 and layer.data.shape[0] > 1


def test_follow_view_explains_after_panning(
    make_napari_viewer, qtbot, slide_path, tmp_path
) -> None:
    import torch

    torch.set_num_threads(1)
    from napari_xai._widgets.explain import VIEW, ExplainWidget

    viewer = make_napari_viewer(show=True)
    viewer.open(slide_path, plugin="napari-xai")
    widget = ExplainWidget(viewer)
    widget._output.value = tmp_path
    widget._mode.value = VIEW
    widget._follow.value = True
    camera = widget._camera()
    camera.zoom = 2.0
    camera.center = (200, 200)
    qtbot.waitUntil(lambda: widget.last_result is not None, timeout=60_000)
    first = widget.last_result
    assert first.n_computed > 0
    qtbot.waitUntil(lambda: widget._worker is None, timeout=60_000)
    camera.center = (700, 1200)  # pan: new tiles come into view
    qtbot.waitUntil(
        lambda: widget.last_result is not None and widget.last_result is not first,
        timeout=60_000,
    )
    qtbot.waitUntil(lambda: widget._worker is None, timeout=60_000)
    assert widget.last_result.n_computed > 0


def test_cancel_keeps_napari_running(make_napari_viewer, qtbot, slide_path, tmp_path) -> None:
    import torch

    torch.set_num_threads(1)
    from napari_xai._widgets.explain import SLIDE, ExplainWidget

    viewer = make_napari_viewer(show=True)
    viewer.open(slide_path, plugin="napari-xai")
    widget = ExplainWidget(viewer)
    widget._output.value = tmp_path
    widget._mode.value = SLIDE
    widget._method.value = "integrated_gradients"  # slow enough to cancel
    widget._batch_size.value = 2
    widget._on_run()
    worker = widget._worker
    # the slide is scored first (the map covers the scored tiles), then explained:
    # cancel once the map is on the canvas
    name = "explain saliency [integrated_gradients, predicted]"
    qtbot.waitUntil(lambda: name in viewer.layers, timeout=60_000)
    with qtbot.waitSignal(worker.finished, timeout=60_000):
        widget._cancel.changed.emit(True)
    assert widget._worker is None and widget._run.enabled
    assert widget.last_result is None and "cancelled" in widget._status.value
    # the layer shown from the first batch stays, with what was computed
    assert name in viewer.layers
    assert not (tmp_path / "explain" / "heatmaps.zarr" / "saliency").exists()  # not committed


def test_method_shows_its_sanity_status(make_napari_viewer, qtbot, monkeypatch, tmp_path) -> None:
    """Next to the method: whether its maps passed the sanity checks on this model (as the
    last audit recorded them), or that they were never checked; the record is read in a
    worker, not on the GUI thread."""
    from napari_xai._widgets.explain import ExplainWidget
    from napari_xai.core.audit import sanity as S
    from napari_xai.core.models.resolve import resolve_model
    from tests.core.test_audit_sanity import probe_tiles

    monkeypatch.setenv("NAPARI_XAI_CACHE", str(tmp_path))
    monkeypatch.setattr(S, "_CACHE", {})
    model = resolve_model("demo")
    tiles = probe_tiles()
    assert S.sanity_check(model, tiles, "grad_cam").passed
    monkeypatch.setattr(S, "_CACHE", {})  # what a later session finds: the record on disk
    import threading

    from napari_xai._widgets.explain import describe_for_explain

    readers: list[threading.Thread] = []
    known = S.known_sanity

    def recording(*args: object) -> object:
        readers.append(threading.current_thread())
        return known(*args)

    monkeypatch.setattr(S, "known_sanity", recording)
    widget = ExplainWidget(make_napari_viewer())
    widget._on_model_described(describe_for_explain("demo"))  # what the model worker returns
    widget._method.value = "grad_cam"
    passed = "sanity: sanity checks passed"
    qtbot.waitUntil(lambda: widget._sanity.value == passed, timeout=30_000)
    widget._method.value = "saliency"
    qtbot.waitUntil(lambda: widget._sanity.value == "sanity: not sanity-checked", timeout=30_000)
    assert readers and threading.main_thread() not in readers  # the file is read in workers
