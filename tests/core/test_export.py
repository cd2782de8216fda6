"""Export of per-tile results: WSInfer CSV and QuPath GeoJSON layouts."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pandas as pd  # noqa: TID253 (tests may import pandas)
import pytest
import shapely.geometry

from napari_xai.core.export import (
    export_wsinfer_results,
    read_wsinfer_csv,
    tiles_to_qupath_geojson,
    tiles_to_wsinfer_frame,
    write_qupath_geojson,
    write_wsinfer_csv,
)


def make_tiles() -> pd.DataFrame:
    """Tiles table per the contract: 2 x 2 grid, stride 256, origin (512, 1024), one tile gone."""
    rows = np.array([512, 512, 768], np.int64)
    cols = np.array([1024, 1280, 1280], np.int64)
    probs = np.array([[0.9, 0.1], [0.2, 0.8], [0.45, 0.55]], np.float32)
    df = pd.DataFrame(
        {
            "row": rows,
            "col": cols,
            "height": np.full(3, 256, np.int64),
            "width": np.full(3, 256, np.int64),
            "grid_row": [0, 0, 1],
            "grid_col": [0, 1, 1],
            "tissue_fraction": [1.0, 0.75, np.nan],
            "prob_normal": probs[:, 0],
            "prob_tumour": probs[:, 1],
            "pred_class": ["normal", "tumour", "tumour"],
            "pred_index": [0, 1, 1],
            "confidence": probs.max(axis=1),
            "entropy": (-(probs * np.log(probs)).sum(axis=1)).astype(np.float32),
            "flags": ["", "pen", ""],
        }
    )
    df.attrs["class_names"] = ["normal", "tumour"]
    return df


def test_wsinfer_csv_columns_and_values(tmp_path: Path) -> None:
    tiles = make_tiles()
    path = write_wsinfer_csv(tiles, tmp_path / "slide.csv")
    header = path.read_text().splitlines()[0]
    # WSInfer's run_inference: minx, miny, width, height, then prob_<class>; index=False.
    assert header == "minx,miny,width,height,prob_normal,prob_tumour"
    back = pd.read_csv(path)
    assert back["minx"].tolist() == [1024, 1280, 1280]  # x = level-0 column
    assert back["miny"].tolist() == [512, 512, 768]  # y = level-0 row
    assert back["width"].tolist() == [256] * 3 and back["height"].tolist() == [256] * 3
    np.testing.assert_allclose(back["prob_tumour"], tiles["prob_tumour"], rtol=1e-6)
    frame = tiles_to_wsinfer_frame(tiles, class_names=["tumour", "normal"])  # model order
    assert list(frame.columns)[4:] == ["prob_tumour", "prob_normal"]


def test_class_names_from_columns_and_errors() -> None:
    tiles = make_tiles()
    tiles.attrs.clear()
    assert list(tiles_to_wsinfer_frame(tiles).columns)[4:] == ["prob_normal", "prob_tumour"]
    with pytest.raises(ValueError, match="prob_stroma"):
        tiles_to_wsinfer_frame(tiles, class_names=["stroma"])
    with pytest.raises(ValueError, match="geometry"):
        tiles_to_wsinfer_frame(tiles.drop(columns=["row"]))


def test_wsinfer_csv_reads_back_as_tiles_table(tmp_path: Path) -> None:
    tiles = make_tiles()
    path = write_wsinfer_csv(tiles, tmp_path / "slide.csv")
    back = read_wsinfer_csv(path)
    for col in ("row", "col", "height", "width", "grid_row", "grid_col", "pred_index"):
        assert back[col].tolist() == tiles[col].tolist(), col
    assert back["pred_class"].tolist() == ["normal", "tumour", "tumour"]
    np.testing.assert_allclose(back["confidence"], tiles["confidence"], rtol=1e-6)
    np.testing.assert_allclose(back["entropy"], tiles["entropy"], rtol=1e-5)
    assert back.attrs["class_names"] == ["normal", "tumour"]
    assert back.attrs["stride0"] == 256 and back.attrs["grid_shape"] == (2, 2)
    assert back["tissue_fraction"].isna().all()


def test_read_one_class_wsinfer_csv(tmp_path: Path) -> None:
    path = tmp_path / "one.csv"
    path.write_text("minx,miny,width,height,prob_tumor\n0,0,350,350,0.9\n350,0,350,350,0.2\n")
    back = read_wsinfer_csv(path)
    assert back["pred_class"].tolist() == ["tumor", ""]
    assert back["pred_index"].tolist() == [0, -1]
    np.testing.assert_allclose(back["confidence"], [0.9, 0.8], rtol=1e-6)
    bad = tmp_path / "bad.csv"
    bad.write_text("x,y\n1,2\n")
    with pytest.raises(ValueError, match=f"{bad}.*missing columns"):
        read_wsinfer_csv(bad)


def test_geojson_follows_qupath_layout(tmp_path: Path) -> None:
    tiles = make_tiles()
    path = write_qupath_geojson(tiles, tmp_path / "slide.json")
    data = json.loads(path.read_text())  # strict JSON: NaN would not parse in QuPath's reader
    assert "NaN" not in path.read_text()
    assert data["type"] == "FeatureCollection"
    assert len(data["features"]) == 3
    for feature, (_, tile) in zip(data["features"], tiles.iterrows(), strict=True):
        assert feature["type"] == "Feature"
        uuid.UUID(feature["id"])  # QuPath >= 0.4 reads ids as UUIDs
        geom = feature["geometry"]
        assert geom["type"] == "Polygon"
        ring = geom["coordinates"][0]
        assert len(ring) == 5 and ring[0] == ring[-1]  # closed ring
        shape = shapely.geometry.shape(geom)
        assert shape.is_valid
        # x = column, y = row, level-0 pixels.
        assert shape.bounds == (tile["col"], tile["row"], tile["col"] + 256, tile["row"] + 256)
        assert shape.area == 256 * 256
        props = feature["properties"]
        assert props["objectType"] == "tile" and props["isLocked"] is True
        assert props["classification"]["name"] == tile["pred_class"]
        color = props["classification"]["color"]
        assert len(color) == 3 and all(isinstance(c, int) and 0 <= c <= 255 for c in color)
        meas = props["measurements"]
        assert isinstance(meas, dict)  # QuPath >= 0.4 map form
        assert meas["prob_tumour"] == pytest.approx(float(tile["prob_tumour"]))
        assert meas["confidence"] == pytest.approx(float(tile["confidence"]))
    # NaN tissue fraction is left out rather than written as NaN.
    assert "tissue_fraction" not in data["features"][2]["properties"]["measurements"]
    assert data["features"][0]["properties"]["measurements"]["tissue_fraction"] == 1.0
    # Same class, same colour; ids stable across runs.
    c = [f["properties"]["classification"]["color"] for f in data["features"]]
    assert c[1] == c[2] != c[0]
    again = tiles_to_qupath_geojson(tiles)
    assert [f["id"] for f in again["features"]] == [f["id"] for f in data["features"]]


def test_geojson_options() -> None:
    tiles = make_tiles()
    data = tiles_to_qupath_geojson(
        tiles, object_type="detection", classify=False, extra_measurements=(),
        colors={"normal": (1, 2, 3)}, locked=False,
    )  # fmt: skip
    props = data["features"][0]["properties"]
    assert props["objectType"] == "detection"
    assert "classification" not in props and "isLocked" not in props
    assert set(props["measurements"]) == {"prob_normal", "prob_tumour"}
    colored = tiles_to_qupath_geojson(tiles, colors={"normal": (1, 2, 3)})
    assert colored["features"][0]["properties"]["classification"]["color"] == [1, 2, 3]
    with pytest.raises(ValueError, match="object_type"):
        tiles_to_qupath_geojson(tiles, object_type="cell")


def test_export_uses_wsinfer_results_layout(tmp_path: Path) -> None:
    written = export_wsinfer_results(make_tiles(), tmp_path / "results", "slide-1")
    assert written["csv"] == tmp_path / "results" / "model-outputs-csv" / "slide-1.csv"
    assert written["geojson"] == tmp_path / "results" / "model-outputs-geojson" / "slide-1.json"
    assert written["csv"].is_file() and written["geojson"].is_file()


def test_empty_table_exports() -> None:
    tiles = make_tiles().iloc[:0]
    assert tiles_to_qupath_geojson(tiles)["features"] == []
    assert list(tiles_to_wsinfer_frame(tiles).columns)[:4] == ["minx", "miny", "width", "height"]


def test_geojson_reads_back_with_the_annotation_reader(tmp_path: Path) -> None:
    geojson = pytest.importorskip("napari_xai.core.annotations.geojson")
    tiles = make_tiles()
    path = write_qupath_geojson(tiles, tmp_path / "slide.json")
    read = geojson.read_geojson(path, classes=None)
    assert len(read.annotations) == 3 and not read.report.skipped
    first = read.annotations[0]
    assert first.class_name == "normal" and first.object_type == "tile"
    assert first.geometry.bounds == (1024, 512, 1280, 768)
    assert first.measurements["prob_normal"] == pytest.approx(0.9)
