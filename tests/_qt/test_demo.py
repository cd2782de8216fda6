"""The README's main job, end to end, in a real napari window under Xvfb."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest


@pytest.mark.slow
def test_demo_scores_explains_audits_and_screenshots(tmp_path: Path, qapp) -> None:
    from skimage.io import imread

    from napari_xai.cli import main

    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--size", "2048", "--no-show"]) == 0
    [folder] = [p for p in (out / "results").iterdir() if p.is_dir()]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    [explained] = manifest["stages"]["explain"].values()
    assert explained["method"] == "grad_cam" and manifest["stages"]["audit"]["verdict"]
    for name in ("tiles.parquet", "heatmaps.zarr", "annotations.geojson", "audit.json"):
        assert (folder / name).exists(), name
    audit = json.loads((folder / "audit.json").read_text())
    assert audit["verdict"] in ("pass", "warn", "fail")
    # Attribution shares over tissue, background, artefact and border add up to 1
    # (audit.json: the overall verdict, and the slide audit under "attention").
    assert sum(audit["attention"]["shares"].values()) == pytest.approx(1.0, abs=1e-6)
    for shot in (out / "screenshot.png", out / "screenshot-saliency.png"):
        image = imread(shot)[..., :3].astype(float)
        assert image.std() > 10, f"{shot.name} looks blank"
    # The saliency view differs from the predictions view: the layers really changed.
    a = imread(out / "screenshot.png")[..., :3].astype(float)
    b = imread(out / "screenshot-saliency.png")[..., :3].astype(float)
    assert np.abs(a - b).mean() > 1.0
