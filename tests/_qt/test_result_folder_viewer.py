"""score, explain, audit from the command line leave one folder that a real viewer opens whole."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest


@pytest.mark.parametrize("grid", [[], ["--overlap", "0.25"]], ids=["default-grid", "overlap"])
def test_score_explain_audit_folder_opens_whole(
    make_napari_viewer,
    shared_data: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    grid: list[str],
) -> None:
    from napari_xai.cli import main

    slide = shared_data / "slides" / "CMU-1-Small-Region.svs"
    if not slide.is_file():
        pytest.skip(f"{slide} is not there (real test data)")
    out = tmp_path / "D"
    common = ["--out", str(out), "--device", "cpu"]
    assert main(["score", str(slide), *grid, *common]) == 0
    folder = out / "CMU-1-Small-Region"
    scored = json.loads((folder / "manifest.json").read_text())
    capsys.readouterr()
    # explain and audit take the folder's grid (no grid flags): nothing is re-scored
    assert main(["explain", str(slide), "--method", "saliency", "--quiet", *common]) == 0
    assert main(["audit", str(slide), "--max-tiles", "8", "--quiet", *common]) == 0
    said = capsys.readouterr().err
    assert "re-scoring" not in said and "invalidates" not in said, said
    assert sorted(p.name for p in out.iterdir()) == ["CMU-1-Small-Region"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["stages"]["score"] == scored["stages"]["score"]
    assert manifest["timings"]["score_s"] == scored["timings"]["score_s"]  # the score kept
    assert manifest["params"]["overlap"] == (0.25 if grid else 0.0)
    explained = manifest["stages"]["explain"]["saliency/saliency/predicted"]
    assert explained["n_tiles"] == explained["n_done"] == manifest["summary"]["n_tiles"]
    assert {"tiles", "heatmaps", "annotations", "audit", "report"} <= set(manifest["files"])
    assert "saliency/saliency/predicted" in manifest["heatmaps"]

    viewer = make_napari_viewer(show=True)
    layers = viewer.open(folder, plugin="napari-xai")
    names = [layer.name for layer in layers]
    kinds = {type(layer).__name__ for layer in layers}
    assert {"Image", "Points", "Shapes"} <= kinds
    slide_layer = layers[0]
    assert slide_layer.rgb and slide_layer.metadata["mpp"] == pytest.approx(0.499)
    probs = [layer for layer in layers
             if str(layer.metadata.get("key", "")).startswith("probabilities/")]  # fmt: skip
    assert len(probs) == 3, names  # background, normal, tumour
    saliency = [layer for layer in layers if layer.metadata.get("napari_xai") == "saliency"]
    assert len(saliency) == 1 and saliency[0].metadata["method"] == "saliency"
    # the reader's maps carry a colour bar too (not only widget-added layers)
    for layer in [*probs, *saliency]:
        assert layer.colorbar.visible, layer.name
    assert all(not layer.colorbar.visible for layer in layers if type(layer).__name__ == "Image"
               and layer not in probs and layer not in saliency)  # fmt: skip
    # every derived layer lines up with the slide: its extent lies inside the slide's
    lo, hi = slide_layer.extent.world
    for layer in layers[1:]:
        elo, ehi = layer.extent.world
        assert np.all(elo[-2:] >= lo[-2:] - layer.scale[-2:]), layer.name
        assert np.all(ehi[-2:] <= hi[-2:] + layer.scale[-2:]), layer.name
    tiles = next(layer for layer in layers if type(layer).__name__ == "Points")
    assert len(tiles.data) == len(tiles.features) > 50
