"""Score, Explain, Audit, then Score again in one viewer: the result folder keeps everything."""

from __future__ import annotations

from pathlib import Path


def _run(widget, qtbot) -> None:
    widget._on_run()
    assert widget._worker is not None
    qtbot.waitUntil(lambda: widget._worker is None, timeout=180_000)


def test_widget_runs_add_to_the_folder_and_a_rescore_keeps_them(
    make_napari_viewer, qtbot, shared_data: Path, tmp_path: Path
) -> None:
    """Before, the Explain widget wrote into the folder's heatmaps.zarr behind its manifest
    (over its own grid: 163 tiles where 149 were scored) and the Audit widget wrote
    audit.json / report.html unlisted: the next Score run found the folder damaged,
    scored again and deleted the saliency and the audit."""
    import torch

    torch.set_num_threads(1)
    from napari_xai._widgets.audit import AuditWidget
    from napari_xai._widgets.explain import SLIDE, ExplainWidget
    from napari_xai._widgets.score import ScoreWidget
    from napari_xai.core.results import check_result, read_manifest

    slide = shared_data / "slides" / "CMU-1-Small-Region.svs"
    viewer = make_napari_viewer(show=True)
    viewer.open(str(slide), plugin="napari-xai")
    score, explain, audit = ScoreWidget(viewer), ExplainWidget(viewer), AuditWidget(viewer)
    for widget in (score, explain, audit):
        widget._output.value = tmp_path
    folder = tmp_path / "CMU-1-Small-Region"

    _run(score, qtbot)
    scored = read_manifest(folder)
    explain._mode.value = SLIDE
    _run(explain, qtbot)
    made = explain.last_result
    assert made is not None and made.complete and made.n_computed == made.n_tiles
    assert made.store == folder / "heatmaps.zarr"  # through the pipeline, into the folder
    assert made.n_tiles == len(score.last_result.tiles)  # the scored tiles, none other
    audit._max_tiles.value = 16
    _run(audit, qtbot)
    assert audit.last_result is not None, audit._status.value
    assert audit.last_result.report_path == folder / "report.html"
    audited = read_manifest(folder)
    assert audited["stages"]["audit"]["verdict"] == audit.last_result.verdict
    assert {"audit", "report"} <= set(audited["files"])
    # the folder is intact: its files agree with the manifest's checksums
    assert check_result(folder, audited["params"], audited["model"]["sha256"]) is None
    assert audited["stages"]["score"] == scored["stages"]["score"]  # the score was kept

    _run(score, qtbot)
    assert "kept from the folder" in score._status.value
    again = read_manifest(folder)
    assert again["stages"]["audit"] == audited["stages"]["audit"]
    assert again["stages"]["explain"][made.key]["n_done"] == made.n_tiles
    assert (folder / "audit.json").is_file() and (folder / "report.html").is_file()
