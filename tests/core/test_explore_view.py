"""What the explorer shows: histograms per class, filter columns, flags, centres, layer masks."""

from __future__ import annotations

import numpy as np
import pytest

pd = pytest.importorskip("pandas")


def test_confidence_histograms_equal_numpys_on_bin_edges_too() -> None:
    from napari_xai.core.explore.view import confidence_histograms

    rng = np.random.default_rng(0)
    edges_hit = np.linspace(0, 1, 21)  # every edge, 0 and 1 included
    conf = np.concatenate([rng.uniform(0, 1, 500), edges_hit, [0.35, 0.7, 0.15]])
    pred = rng.choice(["tumour", "normal", "stroma"], len(conf))
    tiles = pd.DataFrame({"pred_class": pred, "confidence": conf})
    rows = rng.choice(len(tiles), 300, replace=False)
    for sel in (None, rows):
        edges, counts = confidence_histograms(tiles, rows=sel)
        np.testing.assert_array_equal(edges, np.linspace(0, 1, 21))
        assert list(counts) == ["normal", "stroma", "tumour"]
        sub = tiles if sel is None else tiles.iloc[sel]
        for cls, n in counts.items():
            ref, _ = np.histogram(sub.loc[sub["pred_class"] == cls, "confidence"], bins=edges)
            np.testing.assert_array_equal(n, ref)
    # a class filtered away still has its (empty) histogram
    only = np.flatnonzero(pred == "tumour")
    _, counts = confidence_histograms(tiles, rows=only)
    assert counts["normal"].sum() == 0 and counts["tumour"].sum() == len(only)


def test_filter_columns_flags_centres_and_layer_mask() -> None:
    from napari_xai.core.explore.view import (
        colour_columns,
        filter_columns,
        flag_words,
        layer_shown,
        tile_centres,
    )

    tiles = pd.DataFrame(
        {
            "slide_id": ["a", "a", "b", "b"],
            "tile": [0, 2, 1, 0],
            "row": [0, 64, 0, 128],
            "col": [0, 0, 64, 64],
            "height": [64, 64, 64, 32],
            "width": [64, 64, 64, 32],
            "pred_class": ["t", "n", "t", "n"],
            "confidence": [0.9, 0.8, 0.7, 0.6],
            "prob_t": [0.9, 0.2, 0.7, 0.4],
            "cluster": [0, 1, 1, 0],
            "scanner": ["S1", "S1", "S2", "S2"],
            "case": [f"c{i}" for i in range(4)],
            "flags": ["", "artefact", "edge;artefact", "nan"],
        }
    )
    assert colour_columns(tiles)[:4] == ["pred_class", "cluster", "confidence", "slide_id"]
    assert "prob_t" not in colour_columns(tiles) and "flags" not in colour_columns(tiles)
    assert filter_columns(tiles) == ["cluster", "scanner", "case"]
    many = tiles.loc[tiles.index.repeat(20)].assign(case=[f"c{i}" for i in range(80)])
    assert "case" not in filter_columns(many)  # more than 50 values: not a filter
    assert flag_words(tiles) == ["artefact", "edge"]
    np.testing.assert_array_equal(
        tile_centres(tiles), [[31.5, 31.5], [95.5, 31.5], [31.5, 95.5], [143.5, 79.5]]
    )
    keep = np.array([True, False, True, True])
    np.testing.assert_array_equal(layer_shown(tiles, keep, "a", 3), [True, False, False])
    np.testing.assert_array_equal(layer_shown(tiles, keep, "b", 2), [True, True])
