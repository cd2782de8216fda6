"""The annotation widget's actions, as pure functions (no Qt, no napari)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from shapely.geometry import Polygon

from napari_xai.core.layers.editing import (
    MAX_MASK_SIDE,
    ShapesSnapshot,
    empty_mask,
    measure_shapes,
    merge_features,
    new_shapes_layer,
    save_shapes,
    shapes_to_mask,
    trace_mask,
)

RECT_RC = np.array([[100.0, 200.0], [100.0, 600.0], [400.0, 600.0], [400.0, 200.0]])


def _snapshot(*shapes: np.ndarray, classes: list[str] | None = None) -> ShapesSnapshot:
    features = pd.DataFrame({"class": classes}) if classes else None
    return ShapesSnapshot(data=shapes, shape_types=("polygon",) * len(shapes),
                          features=features, mpp=0.25)  # fmt: skip


def test_measure_shapes_matches_shapely() -> None:
    tri = np.array([[0.0, 0.0], [300.0, 50.0], [120.0, 400.0]])
    table = measure_shapes(_snapshot(RECT_RC, tri, classes=["Tumor", "Stroma"]))
    for i, rc in enumerate((RECT_RC, tri)):
        poly = Polygon(rc[:, ::-1])
        assert table["area_px"][i] == pytest.approx(poly.area)
        assert table["area_um2"][i] == pytest.approx(poly.area * 0.25**2)
        assert table["perimeter_um"][i] == pytest.approx(poly.length * 0.25)
    assert list(table["class"]) == ["Tumor", "Stroma"]
    line = _snapshot(RECT_RC, np.array([[0.0, 0.0], [10.0, 10.0]]))
    line = ShapesSnapshot(data=line.data, shape_types=("polygon", "line"))
    assert measure_shapes(line) is None  # a line has no area


def test_merge_keeps_the_users_class_and_fills_morphology() -> None:
    measured = measure_shapes(_snapshot(RECT_RC, classes=["Tumor"]))
    current = pd.DataFrame({"class": ["Necrosis"], "area_px": [np.nan]})  # re-classed meanwhile
    merged = merge_features(current, measured)
    assert merged["class"][0] == "Necrosis"
    assert merged["area_px"][0] == pytest.approx(300 * 400)
    assert "circularity" in merged.columns
    with pytest.raises(ValueError, match="2 measured rows for 1 shapes"):
        merge_features(current, pd.concat([measured, measured]))


def test_mask_round_trip_and_placement() -> None:
    mask, kwargs, kind = shapes_to_mask(
        _snapshot(RECT_RC, classes=["Stroma"]), shape_rc=(800, 800), downsample=4, name="m"
    )
    assert kind == "labels" and mask.shape == (200, 200)
    assert kwargs["scale"] == (4.0, 4.0) and kwargs["translate"] == (1.5, 1.5)
    assert kwargs["metadata"]["classes"][2] == "Stroma" and set(np.unique(mask)) == {0, 2}
    assert mask[62, 100] == 2 and mask[10, 10] == 0  # level-0 (250, 400) inside
    (data, shape_kwargs, _), = trace_mask(
        mask, downsample=4, translate=kwargs["translate"], classes=kwargs["metadata"]["classes"],
        name="t",
    )  # fmt: skip
    assert list(shape_kwargs["features"]["class"]) == ["Stroma"]
    assert shape_kwargs["features"]["area_px"][0] == pytest.approx(300 * 400, rel=0.03)
    # a mask moved by 10 level-0 pixels traces 10 pixels further
    ((moved, _, _),) = trace_mask(
        mask, downsample=4, translate=(11.5, 1.5), classes=None, name="t"
    )
    np.testing.assert_allclose(moved[0].min(0) - data[0].min(0), [10.0, 0.0])


def test_empty_mask_is_capped_and_new_layer_carries_the_class() -> None:
    mask, kwargs, _ = empty_mask((100_000, 40_000), downsample=2, name="m")
    assert max(mask.shape) <= MAX_MASK_SIDE and kwargs["scale"][0] == 7.0
    _, shapes, kind = new_shapes_layer("Stroma", (1, 2, 3), name="a", shape_rc=(8000, 800))
    assert kind == "shapes" and shapes["feature_defaults"]["class"] == "Stroma"
    assert shapes["feature_defaults"]["color"] == "#010203" and shapes["edge_width"] == 10


def test_save_names_an_unwritable_path(tmp_path) -> None:  # noqa: ANN001
    out = save_shapes(_snapshot(RECT_RC), tmp_path / "regions")
    assert out == tmp_path / "regions.geojson" and out.is_file()
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError, match="blocker|file/x.geojson: cannot write"):
        save_shapes(_snapshot(RECT_RC), blocker / "x.geojson")
