"""Cohort data audit: confounded metadata is flagged, unconfounded passes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd  # noqa: TID253
import pytest
from PIL import Image

from napari_xai.core.audit.data import (
    DataThresholds,
    audit_cohort,
    colour_stats,
    cramers_v,
    make_montage,
    read_cohort,
)
from napari_xai.demo.shortcut import render_tissue


def _write_cohort(
    folder: Path, *, n_per_class: int = 20, seed: int = 0, bright_backlight: bool = False
) -> Path:
    """PNG tiles (normal/tumour) with tissue on a glass background, plus metadata."""
    rng = np.random.default_rng(seed)
    rows = []
    for label in ("normal", "tumour"):
        for i in range(n_per_class):
            tile = render_tissue(label, size=48, rng=rng)
            img = np.full((64, 64, 3), 232, np.uint8)  # glass
            if bright_backlight and label == "tumour":
                img[:] = 250
            img[8:56, 8:56] = tile
            path = folder / f"{label}_{i:02d}.png"
            Image.fromarray(img).save(path)
            # 'site' is confounded: 19 of 20 tumour images come from site A.
            site = (
                ("A" if i < n_per_class - 1 else "B")
                if label == "tumour"
                else ("B" if i < n_per_class - 1 else "A")
            )
            rows.append(
                {
                    "slide": path.name,  # relative to the CSV
                    "label": label,
                    "site": site,
                    "scanner": str(rng.choice(["S1", "S2"])),  # random
                    "age": int(rng.integers(30, 90)),  # numeric, many values
                    "patient_id": f"P{label[0]}{i}",  # identifier
                }
            )
    csv = folder / "cohort.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    return csv


def test_confounded_site_is_flagged_unconfounded_passes(tmp_path: Path) -> None:
    csv = _write_cohort(tmp_path)
    seen = []
    res = audit_cohort(csv, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (40, 40)
    assert res.class_counts == {"normal": 20, "tumour": 20}
    assert res.imbalance == 1.0
    assoc = res.associations.set_index("column")
    assert res.flagged_columns() == ["site"]
    assert assoc.loc["site", "cramers_v"] > 0.8
    assert assoc.loc["site", "p_value"] < 1e-4
    assert assoc.loc["scanner", "cramers_v"] < 0.3 and not assoc.loc["scanner", "flagged"]
    assert assoc.loc["age", "note"].startswith("binned")
    assert not assoc.loc["age", "flagged"]
    assert "identifier" in assoc.loc["patient_id", "note"]
    assert res.verdict == "fail"
    assert any("'site'" in f for f in res.flags)
    # Montages per class, colour statistics per class and per site.
    assert set(res.montages) == {"normal", "tumour"}
    for m in res.montages.values():
        assert m.ndim == 3 and m.shape[2] == 3 and m.std() > 5
    assert set(res.colour_by_class.index) == {"normal", "tumour"}
    assert set(res.colour_by_group["site"].index) == {"A", "B"}
    # Tumour tiles are darker (more nuclei): reported, not flagged (could be biology).
    tests = res.colour_tests.set_index("statistic")
    assert (
        res.colour_by_class.loc["tumour", "brightness"]
        < res.colour_by_class.loc["normal", "brightness"]
    )
    assert not tests["flagged"].any()
    json.dumps(res.to_dict())


def test_unconfounded_cohort_passes(tmp_path: Path) -> None:
    csv = _write_cohort(tmp_path)
    table = pd.read_csv(csv)
    res = audit_cohort(csv, metadata_columns=["scanner", "age"])
    assert res.flagged_columns() == []
    assert res.verdict == "pass", res.flags
    # Dropping the confounded column from a DataFrame input works the same way.
    res2 = audit_cohort(
        table.drop(columns=["site"]).assign(slide=[str(tmp_path / p) for p in table["slide"]])
    )
    assert "site" not in set(res2.associations["column"])
    assert res2.flagged_columns() == []


def test_brighter_backlight_for_one_class_is_flagged(tmp_path: Path) -> None:
    csv = _write_cohort(tmp_path, n_per_class=10, bright_backlight=True)
    res = audit_cohort(csv, metadata_columns=[])
    tests = res.colour_tests.set_index("statistic")
    assert tests.loc["background_brightness", "flagged"]
    assert res.verdict == "fail"
    assert any("background" in f for f in res.flags)


def test_cramers_v_and_helpers() -> None:
    x = ["a"] * 50 + ["b"] * 50
    v, chi2, p, k = cramers_v(x, x)
    assert v == pytest.approx(1.0, abs=0.02) and p < 1e-10 and k == 2
    rng = np.random.default_rng(1)
    v0, _, p0, _ = cramers_v(rng.choice(["a", "b", "c"], 300), rng.choice(["x", "y"], 300))
    assert v0 < 0.15
    assert cramers_v(["a"] * 5, list("xyxyx"))[0] == 0.0
    s = colour_stats(np.full((4, 4, 3), 240, np.uint8))
    assert s["background_fraction"] == 1.0 and s["background_brightness"] == 240
    m = make_montage([np.zeros((10, 20, 3), np.uint8)] * 7, tile=16, columns=3)
    assert m.shape == (3 * 18 + 2, 3 * 18 + 2, 3)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("strong_association", 1.5),
        ("moderate_association", -0.1),
        ("alpha", 2.0),
        ("strong_effect", -1.0),
        ("imbalance_ratio", 0.5),
        ("max_levels", 1),
    ],
)
def test_data_thresholds_validate(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"DataThresholds.{field} must be"):
        DataThresholds(**{field: value})


def test_data_thresholds_moderate_not_above_strong() -> None:
    with pytest.raises(ValueError, match="moderate_association must be <= strong_association"):
        DataThresholds(strong_association=0.4, moderate_association=0.45)
    th = DataThresholds(strong_association=0.4, moderate_association=0.4, max_levels=2)
    assert th.moderate_association == th.strong_association == 0.4


def test_cohort_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not found"):
        read_cohort(tmp_path / "nope.csv")
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"slide": ["x.png"], "site": ["A"]}).to_csv(bad, index=False)
    with pytest.raises(ValueError, match="no label column 'label'"):
        read_cohort(bad)
    pd.DataFrame({"slide": ["missing.png", "m2.png"], "label": ["a", "b"]}).to_csv(
        bad, index=False
    )
    res = audit_cohort(bad)
    assert len(res.errors) == 2 and "missing.png" in res.errors[0]
