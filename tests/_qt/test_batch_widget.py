"""The "Batch score slides" widget and the result-folder reader in a real viewer (issue 7)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from tests.core.batch_helpers import write_tiny_slide


@pytest.fixture(scope="module")
def cohort_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import pandas as pd

    root = tmp_path_factory.mktemp("cohort")
    rows = []
    for i, tumour in enumerate([True, False, True]):
        write_tiny_slide(root / f"slide{i}.tif", seed=20 + i, tumour=tumour)
        rows.append({"slide_path": f"slide{i}.tif", "label": "tumour" if tumour else "normal"})
    pd.DataFrame(rows).to_csv(root / "cohort.csv", index=False)
    return root / "cohort.csv"


@pytest.fixture(scope="module")
def scored(cohort_csv: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The cohort scored with the demo model (in this process)."""
    from napari_xai.core.batch import run_batch
    from napari_xai.core.options import BatchOptions

    out = tmp_path_factory.mktemp("scored") / "out"
    run_batch(cohort_csv, "demo", out, batch=BatchOptions(scheduler="sync"))
    return out


def _extent(layer) -> np.ndarray:
    """World (rows, cols) of the outer pixel edges (extent.world holds pixel centres)."""
    world = np.asarray(layer.extent.world, dtype=float)
    if layer._type_string != "image":
        return world
    half = np.asarray(layer.scale, dtype=float) / 2
    return np.stack([world[0] - half, world[1] + half])


def test_reader_opens_folder_and_manifest(scored: Path) -> None:
    import npe2

    from napari_xai._results_reader import napari_get_results_reader

    npe2.PluginManager.instance().discover()

    folder = scored / "slide0"
    assert napari_get_results_reader(str(folder)) is not None
    assert napari_get_results_reader(str(folder / "manifest.json")) is not None
    assert napari_get_results_reader(str(scored)) is None  # the cohort folder is not a result
    for path in (folder, folder / "manifest.json"):
        layers = npe2.read([str(path)], stack=False, plugin_name="napari-xai")
        names = [kw["name"] for _, kw, _ in layers]
        kinds = [t for _, _, t in layers]
        assert kinds[0] == "image" and "slide0 prob [tumour]" in names
        assert "slide0 tiles" in names and "slide0 predicted regions" in names


def test_widget_runs_batch_and_opens_result(
    make_napari_viewer, qtbot, cohort_csv: Path, tmp_path: Path
) -> None:
    from napari_xai._widgets.batch import IN_PROCESS, BatchWidget

    viewer = make_napari_viewer(show=True)  # multiscale layers draw only when shown
    widget = BatchWidget(viewer)
    # (not docked: its table would squeeze the canvas of the 1280x1024 test screen)
    widget._input_kind.value = "cohort CSV"
    widget._inputs.value = cohort_csv
    widget._out.value = tmp_path / "out"
    widget._scheduler.value = IN_PROCESS
    widget._on_run()
    worker = widget._worker
    assert worker is not None
    # the widget's own finished handler clears _worker: waiting on that cannot miss a worker
    # that finished (a bad model fails at once) before a signal blocker could connect
    qtbot.waitUntil(lambda: widget._worker is None, timeout=180_000)
    result = widget.last_result
    assert result is not None and result.count("done") == 3
    # ranked table: the two tumour slides first, labels recovered by the demo model
    table = widget._table
    assert table.column_headers[:3] == ("rank", "slide", "score")
    slides = [table.data[i, 1] for i in range(table.shape[0])]
    assert set(slides[:2]) == {"slide0", "slide2"} and slides[2] == "slide1"
    scores = [float(table.data[i, 2]) for i in range(3)]
    assert scores == sorted(scores, reverse=True)
    assert "ROC AUC 1.000" in widget._metrics.value
    assert widget._progress.value == widget._progress.max == 3

    if os.environ.get("NAPARI_XAI_SCREENSHOT_DIR"):  # for docs/batch.md
        widget.native.resize(520, 900)
        widget.native.grab().save(
            str(Path(os.environ["NAPARI_XAI_SCREENSHOT_DIR"]) / "batch_widget.png")
        )

    widget._open_row(0)
    names = [layer.name for layer in viewer.layers]
    top = slides[0]
    assert f"{top} prob [tumour]" in names and f"{top} tiles" in names
    slide_layer = viewer.layers[0]
    assert slide_layer.metadata.get("path", "").endswith(f"{top}.tif")
    heat = viewer.layers[f"{top} prob [tumour]"]
    # the heatmap covers the slide exactly (6 x 8 tiles of 64 px), in level-0 pixels
    np.testing.assert_allclose(_extent(heat), _extent(slide_layer))
    regions = viewer.layers[f"{top} predicted regions"]
    lo, hi = _extent(regions)
    assert (lo >= _extent(slide_layer)[0] - 1).all() and (hi <= _extent(slide_layer)[1] + 1).all()
    viewer.reset_view()
    shot = viewer.screenshot(canvas_only=True, flash=False)
    assert shot[..., :3].std() > 5  # not blank
    if os.environ.get("NAPARI_XAI_SCREENSHOT_DIR"):
        from skimage.io import imsave

        imsave(Path(os.environ["NAPARI_XAI_SCREENSHOT_DIR"]) / "batch_result.png", shot)
    # the tumour heatmap shows: hiding it changes part of the picture, not all of it
    heat_only = [lyr for lyr in viewer.layers if lyr is not heat and lyr is not slide_layer]
    for lyr in heat_only:
        lyr.visible = False
    with_heat = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)
    heat.visible = False
    without = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)
    changed = np.abs(with_heat - without).sum(-1) > 30
    assert 0.01 < changed.mean() < 0.5
    # where it changed, the picture moved towards the probability colormap (viridis:
    # green above blue for p >= 0.5), away from the pink-purple slide (blue above green)
    green_gain = (with_heat[..., 1] - with_heat[..., 2]) - (without[..., 1] - without[..., 2])
    assert green_gain[changed].mean() > 20


def test_widget_cancel_and_errors(
    make_napari_viewer, qtbot, cohort_csv: Path, tmp_path: Path, monkeypatch
) -> None:
    from napari.utils import notifications

    from napari_xai._widgets.batch import IN_PROCESS, BatchWidget

    errors: list[str] = []
    monkeypatch.setattr(notifications, "show_error", lambda msg: errors.append(str(msg)))
    viewer = make_napari_viewer()
    widget = BatchWidget(viewer)
    widget._scheduler.value = IN_PROCESS
    # nothing chosen: a clear message, no worker
    widget._on_run()
    assert widget._worker is None and "choose the slides" in errors[-1]
    # a folder without slides: the core's error becomes a notification, napari lives on
    (tmp_path / "empty").mkdir()
    widget._inputs.value = tmp_path / "empty"
    widget._out.value = tmp_path / "out"
    widget._on_run()
    # the widget clears _worker in its own finished handler: waiting on that cannot miss a
    # worker that finished before a signal blocker would have connected
    qtbot.waitUntil(lambda: widget._worker is None, timeout=60_000)
    assert "no slide files" in errors[-1] and widget._run.enabled
    # cancel right away: every slide is reported cancelled, the summary is still written
    widget._input_kind.value = "cohort CSV"
    widget._inputs.value = cohort_csv
    widget._on_run()
    widget._on_cancel()
    # the widget clears _worker in its own finished handler: waiting on that cannot miss a
    # worker that finished before a signal blocker would have connected
    qtbot.waitUntil(lambda: widget._worker is None, timeout=60_000)
    result = widget.last_result
    assert result is not None and result.cancelled
    assert result.count("done") == 0 and result.count("cancelled") == 3
    assert (tmp_path / "out" / "cohort_summary.csv").is_file()
    assert widget._status.value == "cancelled"
    assert not widget._open.enabled


def test_ranked_table_shows_an_error_else_the_fit_warning() -> None:
    import pandas as pd

    from napari_xai._widgets._batch_table import RANKED_COLUMNS, ranked_rows

    summary = pd.DataFrame(
        {"rank": [1, 2, None], "slide_id": ["dapi", "he", "bad"],
         "status": ["done", "done", "failed"],
         "fit_warnings": ["dapi.ndpi looks like a fluorescence slide", "", None],
         "error": [None, None, "bad.svs: not a slide"], "result_folder": ["d", "h", None]}
    )  # fmt: skip
    rows, folders = ranked_rows(summary)
    assert RANKED_COLUMNS[-1] == "error or warning"
    assert [r[-1] for r in rows] == [
        "dapi.ndpi looks like a fluorescence slide", "", "bad.svs: not a slide"
    ]  # fmt: skip
    assert folders == ["d", "h", None]
