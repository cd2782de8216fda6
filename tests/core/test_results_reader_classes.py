"""Opening a result folder knows the model's own classes (no "unknown classes" warning)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from napari_xai.core.results import ResultWriter


def _region(cls: str, x0: float) -> dict:
    ring = [[x0, 0.0], [x0 + 64.0, 0.0], [x0 + 64.0, 64.0], [x0, 64.0], [x0, 0.0]]
    return {
        "type": "Feature",
        "geometry": {"type": "Polygon", "coordinates": [ring]},
        "properties": {"objectType": "annotation", "classification": {"name": cls}},
    }


def _folder(tmp_path: Path, classes: list[str], regions: list[str]) -> Path:
    folder = tmp_path / "out" / "slide"
    tiles = pd.DataFrame({"row": [0], "col": [0], "height": [64], "width": [64]})
    with ResultWriter(folder) as writer:
        writer.write_tiles(tiles)
        writer.write_annotations(
            {"type": "FeatureCollection",
             "features": [_region(c, 100.0 * k) for k, c in enumerate(regions)]}
        )  # fmt: skip
        writer.commit({"model": {"sha256": "m", "card": {"class_names": classes}}})
    return folder


@pytest.fixture
def warnings_shown() -> list[str]:
    return []


def test_model_classes_are_known(tmp_path: Path, warnings_shown: list[str]) -> None:
    from napari_xai.core.layers.results import annotation_layers
    from napari_xai.core.results import load_result

    result = load_result(_folder(tmp_path, ["normal", "tumour"], ["tumour", "normal"]))
    layers = annotation_layers(result, "slide", warn=warnings_shown.append)
    assert layers and layers[0][2] == "shapes" and len(layers[0][0]) == 2
    assert not any("unknown classes" in w for w in warnings_shown), warnings_shown


def test_other_classes_still_reported(tmp_path: Path, warnings_shown: list[str]) -> None:
    from napari_xai.core.layers.results import annotation_layers
    from napari_xai.core.results import load_result

    result = load_result(_folder(tmp_path, ["normal", "tumour"], ["tumour", "mystery"]))
    annotation_layers(result, "slide", warn=warnings_shown.append)
    assert any("unknown classes kept" in w and "mystery" in w for w in warnings_shown)
    assert not any("'tumour'" in w for w in warnings_shown)
