"""The Audit widget in a real viewer: layers align, gallery jumps, cohort audit runs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


@pytest.fixture(scope="module")
def slide_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.core.test_audit_report import audit_test_slide

    return audit_test_slide(tmp_path_factory)


def _run(widget, qtbot, start) -> None:
    start()
    assert widget._worker is not None
    # The widget's own `finished` handler clears `_worker`. Waiting on that (connected
    # before the start) cannot miss a worker that finishes, e.g. is cancelled, before a
    # signal blocker could connect to it.
    qtbot.waitUntil(lambda: widget._worker is None, timeout=180_000)


def test_methods_are_registered() -> None:
    from napari_xai._widgets.audit import METHODS
    from napari_xai.core.attribution import ATTRIBUTION_METHODS

    assert set(METHODS) <= set(ATTRIBUTION_METHODS)


def test_audit_slide_layers_gallery_and_jump(
    make_napari_viewer, qtbot, slide_path, tmp_path
) -> None:
    import torch

    torch.set_num_threads(1)
    from napari_xai._widgets.audit import AuditWidget, regions_layer_name, tiles_layer_name

    viewer = make_napari_viewer(show=True)
    (slide_layer,) = viewer.open(slide_path, plugin="napari-xai")
    widget = AuditWidget(viewer)
    viewer.window.add_dock_widget(widget)
    assert widget._slide_layer.value is slide_layer
    widget._output.value = tmp_path
    widget._max_tiles.value = 16
    viewer.reset_view()
    _run(widget, qtbot, widget._on_run)
    res = widget.last_result
    assert res is not None, widget._status.value
    assert res.report_path is not None and res.report_path.is_file()
    assert (res.report_path.parent / "audit.json").is_file()
    tiles = viewer.layers[tiles_layer_name(slide_layer.name)]
    regions = viewer.layers[regions_layer_name(slide_layer.name)]
    assert len(tiles.data) == len(res.tiles) > 0
    assert set(tiles.features["flagged"]) <= {True, False}
    # Aligned with the slide: tiles lie inside it; the region map covers it.
    s_lo, s_hi = slide_layer.extent.world
    t_lo, t_hi = tiles.extent.world
    assert np.all(t_lo >= s_lo - 1e-6) and np.all(t_hi <= s_hi + res.tiles["height"].max())
    ds = res.regions_downsample
    r_lo, r_hi = regions.extent.world
    np.testing.assert_allclose(r_lo - (ds - 1) / 2, s_lo, atol=1e-6)
    assert np.all(np.abs(r_hi + (ds - 1) / 2 - s_hi) <= ds)
    # Verdict shown with the method's label (its sanity status); the label next to the
    # method says the same once re-read; gallery filled; clicking the first jumps there.
    assert res.verdict.upper() in widget._verdict.value
    assert f"maps: {res.method_label}" in widget._verdict.value
    status = res.method_label.removeprefix(res.method).strip(" ()")
    qtbot.waitUntil(lambda: widget._sanity.value == f"sanity: {status}", timeout=30_000)
    # the region map in the palette's colours (the HTML report's)
    from napari_xai.core.audit.attention import REGION_NAMES
    from napari_xai.core.naming import REGION_COLOURS

    for code, region in enumerate(REGION_NAMES):
        rgba = regions.colormap.map(np.array([code]))[0]
        if region == "background":
            assert rgba[3] == 0  # glass unpainted
        else:
            np.testing.assert_allclose(rgba[:3], REGION_COLOURS[region], atol=1e-3)
    assert widget._gallery.count() == len(res.attention.worst) > 0
    i = res.attention.worst[0]
    row = res.tiles.iloc[i]
    item = widget._gallery.item(0)
    widget._gallery.itemClicked.emit(item)
    scene = getattr(viewer, "scene", None)
    cam = scene.camera if scene is not None else viewer.camera
    np.testing.assert_allclose(
        cam.center[-2:], (row["row"] + row["height"] / 2, row["col"] + row["width"] / 2)
    )
    assert cam.zoom > 0.05
    shot = viewer.screenshot(canvas_only=True, flash=False)
    assert shot[..., :3].astype(float).std() > 5
    # Re-run replaces the layers.
    n_layers = len(viewer.layers)
    _run(widget, qtbot, widget._on_run)
    assert len(viewer.layers) == n_layers


def test_method_label_says_when_a_method_fails_its_sanity_checks(
    make_napari_viewer, qtbot, monkeypatch, tmp_path
) -> None:
    """Next to the method, as in the Explain widget: the last audit's sanity record of the
    method on this model (real checks on the demo model: the edge detector, a "method" that
    ignores the model, FAILS; grad_cam passes), read in a worker."""
    import torch

    torch.set_num_threads(1)
    from napari_xai._widgets.audit import METHODS, AuditWidget
    from napari_xai.core.audit import sanity as S
    from napari_xai.core.models.resolve import resolve_model
    from tests.core.test_audit_sanity import probe_tiles

    monkeypatch.setenv("NAPARI_XAI_CACHE", str(tmp_path))
    monkeypatch.setattr(S, "_CACHE", {})
    model = resolve_model("demo")
    tiles = probe_tiles()
    assert not S.sanity_check(model, tiles, S.edge_detector).trusted
    assert S.sanity_check(model, tiles, "grad_cam").passed
    monkeypatch.setattr(S, "_CACHE", {})  # a later session: the records on disk
    widget = AuditWidget(make_napari_viewer())
    qtbot.waitUntil(lambda: widget._model_sha == model.sha256, timeout=60_000)
    qtbot.waitUntil(lambda: widget._sanity.value == "sanity: sanity checks passed", timeout=30_000)
    widget._method.choices = [*METHODS, "edge_detector"]  # a method the menu does not offer
    widget._method.value = "edge_detector"
    qtbot.waitUntil(lambda: "FAILING sanity checks" in widget._sanity.value, timeout=30_000)
    widget._method.value = "saliency"
    qtbot.waitUntil(lambda: widget._sanity.value == "sanity: not sanity-checked", timeout=30_000)


def test_cancel_stops_the_audit(make_napari_viewer, qtbot, slide_path, tmp_path) -> None:
    from napari_xai._widgets.audit import AuditWidget

    viewer = make_napari_viewer()
    viewer.open(slide_path, plugin="napari-xai")
    widget = AuditWidget(viewer)
    widget._output.value = tmp_path
    widget._max_tiles.value = 10_000
    widget._batch_size.value = 1

    def start_and_cancel() -> None:
        widget._on_run()
        widget._on_cancel()

    _run(widget, qtbot, start_and_cancel)
    assert widget.last_result is None
    assert widget._run.enabled and not widget._cancel.enabled


def test_audit_cohort_from_widget(make_napari_viewer, qtbot, tmp_path) -> None:
    from napari_xai._widgets.audit import AuditWidget
    from tests.core.test_audit_data import _write_cohort

    csv = _write_cohort(tmp_path, n_per_class=6)
    viewer = make_napari_viewer()
    widget = AuditWidget(viewer)
    widget._output.value = tmp_path / "out"
    widget._cohort.value = csv
    assert "site" in widget._label_column.choices and widget._label_column.value == "label"
    _run(widget, qtbot, widget._on_run_cohort)
    data = widget.last_data
    assert data is not None and data.flagged_columns() == ["site"]
    assert "FAIL" in widget._verdict.value
    assert data.report_path is not None and data.report_path.is_file()
    assert data.tile_audit is None
    # With the model: where the demo model looks on the cohort's tiles.
    widget._cohort_model.value = True
    widget._method.value = "saliency"
    _run(widget, qtbot, widget._on_run_cohort)
    assert widget.last_data.tile_audit is not None
    assert widget.last_data.tile_audit.attention.n_tiles == 12
    assert "model attention:" in widget._verdict.value
