"""``napari-xai evaluate``: tiles.parquet + GeoJSON -> audit.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd  # noqa: TID253
from shapely.geometry import box

from napari_xai.cli import main
from napari_xai.core.annotations.geojson import Annotation, write_geojson


def test_evaluate_writes_into_audit_json(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    rows, cols = np.mgrid[0:1000:100, 0:1000:100]
    tiles = pd.DataFrame({"row": rows.ravel(), "col": cols.ravel()}).astype(np.int64)
    tiles["height"] = tiles["width"] = 100
    inside = (tiles["row"] < 500) & (tiles["col"] < 500)
    tiles["prob_TUM"] = np.where(inside, 0.8, 0.1).astype(np.float32)
    tiles["prob_NORM"] = 1 - tiles["prob_TUM"]
    tiles["pred_class"] = np.where(inside, "TUM", "NORM")
    result = tmp_path / "slide"
    result.mkdir()
    tiles.to_parquet(result / "tiles.parquet")
    (result / "audit.json").write_text(json.dumps({"attention": {"verdict": "pass"}}))
    ann = write_geojson([Annotation(box(0, 0, 500, 500), "Tumor")], tmp_path / "a.geojson")

    status = main(["evaluate", str(result), "--annotations", str(ann), "--background", "NORM"])
    assert status == 0
    doc = json.loads((result / "audit.json").read_text())
    assert doc["attention"] == {"verdict": "pass"}  # kept
    ev = doc["evaluation"]
    assert ev["class_map"] == {"Tumor": "TUM"}  # QuPath's Tumor found as TUM
    assert ev["tiles"]["confusion_matrix"] == [[25, 0], [0, 75]]
    assert ev["tiles"]["per_class"]["TUM"]["auc"] == 1.0
    assert ev["annotations"]["import"]["n_imported"] == 1
    assert "written:" in capsys.readouterr().out


def test_evaluate_reports_bad_input(tmp_path: Path, capsys) -> None:  # noqa: ANN001
    ann = write_geojson([Annotation(box(0, 0, 5, 5), "Tumor")], tmp_path / "a.geojson")
    assert main(["evaluate", str(tmp_path), "--annotations", str(ann)]) == 1
    assert "tiles table not found" in capsys.readouterr().err
