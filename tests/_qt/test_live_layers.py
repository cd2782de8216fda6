"""Live saliency and activation layers show what the store holds, not napari's dask cache.

Each check is against the zarr store itself (not an earlier screenshot): the
array napari sliced for the canvas equals the store's values over the same
region at the level napari chose, at the coarsest and at the finest level, and
the rendered canvas is unchanged after napari's chunk cache is cleared. The
result folder's probability (heatmap) and saliency layers get the same check in
``test_display.py::test_reader_maps_show_the_store_at_every_zoom``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ..conftest import write_pyramid_tiff  # noqa: TID252


@pytest.fixture(scope="module")
def slide_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("live")
    return write_pyramid_tiff(folder / "live.svs", shape_rc=(1024, 1536), tile=256, levels=2)


def _settle(viewer, qtbot) -> None:
    """Let napari finish slicing and drawing the current view."""
    viewer._layer_slicer.wait_until_idle(timeout=30)
    qtbot.wait(100)
    viewer._layer_slicer.wait_until_idle(timeout=30)


def _sliced_vs_store(layer, store_levels) -> tuple[np.ndarray, np.ndarray]:
    """The array napari sliced for the canvas and the store's values it stands for."""
    raw = np.asarray(layer._slice.image.raw, dtype=np.float32)
    level = layer.data_level if layer.multiscale else 0
    ref = np.asarray(store_levels[level][...], dtype=np.float32)
    if layer.multiscale:
        (r0, c0), (r1, c1) = layer.corner_pixels[:, -2:].astype(int)
        ref = ref[r0 : r1 + 1, c0 : c1 + 1]
    return raw, ref


def _clear_napari_cache() -> None:
    from napari.utils._dask_utils import _DASK_CACHE

    _DASK_CACHE.cache.clear()


def test_whole_slide_saliency_matches_store(
    make_napari_viewer, qtbot, slide_path, tmp_path, monkeypatch
) -> None:
    import torch

    torch.set_num_threads(1)
    from napari_xai._widgets import explain

    monkeypatch.setattr(explain, "REFRESH_S", 0.0)  # refresh the layer after every batch
    viewer = make_napari_viewer(show=True)
    viewer.open(slide_path, plugin="napari-xai")
    widget = explain.ExplainWidget(viewer)
    qtbot.waitUntil(
        lambda: "tumour" in widget._target.choices, timeout=60_000
    )  # described in a worker
    widget._output.value = tmp_path
    widget._mode.value = explain.SLIDE
    widget._method.value = "grad_cam"
    widget._target.value = "tumour"
    widget._batch_size.value = 2  # many batches: the layer is read while half written
    viewer.reset_view()
    n_refresh = 0
    reload = explain.ExplainWidget._refresh_layer

    def counting_reload(self, *args, **kwargs) -> bool:
        nonlocal n_refresh
        shown = reload(self, *args, **kwargs)
        n_refresh += int(shown and self._layer_name is not None)  # a refresh, not the first
        return shown

    monkeypatch.setattr(explain.ExplainWidget, "_refresh_layer", counting_reload)
    widget._on_run()
    assert widget._worker is not None
    # the widget's own finished handler clears _worker: waiting on that cannot miss a worker
    # that finished (a bad model fails at once) before a signal blocker could connect
    qtbot.waitUntil(lambda: widget._worker is None, timeout=180_000)
    res = widget.last_result
    assert res is not None and res.complete and res.n_computed > 2
    assert n_refresh >= 1  # the layer was shown and refreshed while the run wrote
    layer = viewer.layers[res.layer_name]
    assert layer.colorbar.visible  # a legend with the attribution's range
    # after the run the layer is the map the result folder holds, as its reader shows it
    from napari_xai.core.results import load_result

    assert res.store == tmp_path / "live" / "heatmaps.zarr"
    store_levels = load_result(res.store.parent).heatmap_levels(res.key)
    full = np.asarray(store_levels[0][...])
    assert np.isfinite(full).mean() > 0.2  # the store holds the whole slide's map
    drawn = _matches_store_at_every_zoom(viewer, qtbot, layer, store_levels)
    assert drawn == ({0, len(layer.data) - 1} if layer.multiscale else {0})


def _matches_store_at_every_zoom(viewer, qtbot, layer, store_levels) -> set[int]:
    """Zoomed out, whole and zoomed in: napari's sliced array equals the store at the level
    napari chose, and the canvas is the same after napari's chunk cache is cleared.
    Returns the pyramid levels napari drew."""
    camera = viewer.scene.camera
    levels_seen = set()
    for factor in (1 / 16, 1.0, 8.0):  # coarsest level, whole slide, zoomed in
        viewer.reset_view()
        camera.zoom = camera.zoom * factor
        _settle(viewer, qtbot)
        levels_seen.add(layer.data_level if layer.multiscale else 0)
        raw, ref = _sliced_vs_store(layer, store_levels)
        assert raw.shape == ref.shape
        np.testing.assert_array_equal(raw, ref)  # NaN where the store has NaN
        assert np.isfinite(raw).any()  # something to see in this view
        shown = viewer.screenshot(canvas_only=True, flash=False)
        _clear_napari_cache()
        layer.refresh()
        _settle(viewer, qtbot)
        fresh = viewer.screenshot(canvas_only=True, flash=False)
        np.testing.assert_array_equal(shown, fresh)
    return levels_seen


def test_fresh_dask_names_per_read(tmp_path) -> None:
    """Two reads of a store around a write do not share task names (the cache key)."""
    import zarr

    from napari_xai.core.stitch import StitchedMap

    z = zarr.open_array(str(tmp_path / "a.zarr"), mode="w", shape=(4, 4), dtype="f4")
    z[...] = 1.0

    class _Map(StitchedMap):
        def __init__(self, levels) -> None:  # only what to_dask reads
            self.levels = levels

    first = _Map([z]).to_dask()[0]
    assert float(first.sum().compute()) == 16.0
    z[...] = 2.0
    second = _Map([z]).to_dask()[0]
    assert first.name != second.name
    assert float(second.sum().compute()) == 32.0


def test_channel_across_slide_matches_store(
    make_napari_viewer, qtbot, slide_path, tmp_path, monkeypatch
) -> None:
    import torch
    import zarr

    torch.set_num_threads(1)
    from napari_xai._widgets import explain
    from napari_xai.core.stitch import StitchedMap

    monkeypatch.setattr(explain, "REFRESH_S", 0.0)
    viewer = make_napari_viewer(show=True)
    viewer.open(slide_path, plugin="napari-xai")
    widget = explain.ExplainWidget(viewer)
    widget._output.value = tmp_path
    widget._batch_size.value = 2
    # the model is described in a worker
    qtbot.waitUntil(lambda: widget._act_layer.value is not None, timeout=60_000)
    assert widget._act_layer.value is not None
    viewer.reset_view()
    widget._on_channel_slide()
    assert widget._worker is not None
    # the widget's own finished handler clears _worker: waiting on that cannot miss a worker
    # that finished (a bad model fails at once) before a signal blocker could connect
    qtbot.waitUntil(lambda: widget._worker is None, timeout=180_000)
    res = widget.last_result
    assert res is not None and res.n_computed > 2
    layer = viewer.layers[res.layer_name]
    assert layer.colorbar.visible
    store_levels = StitchedMap(zarr.open_group(str(res.store), mode="r")[res.key]).levels
    levels_seen = _matches_store_at_every_zoom(viewer, qtbot, layer, store_levels)
    assert levels_seen == ({0, len(layer.data) - 1} if layer.multiscale else {0}), [
        lv.shape for lv in store_levels
    ]
