"""Attention-share arithmetic on arrays with known answers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from napari_xai.core.audit.attention import (
    ARTEFACT,
    BACKGROUND,
    BORDER,
    TISSUE,
    AuditThresholds,
    audit_attention,
    crop_tile_regions,
    make_region_map,
    map_region_shares,
    tile_region_shares,
)


def test_region_map_precedence() -> None:
    tissue = np.zeros((10, 10), bool)
    tissue[0:5, 0:5] = True  # touches the edge: stays tissue
    art = np.zeros((10, 10), bool)
    art[2, 2] = True  # ink on tissue: artefact
    art[7, 7] = True
    reg = make_region_map(tissue, artefact=art, border_width=1)
    assert reg[0, 0] == TISSUE
    assert reg[2, 2] == ARTEFACT and reg[7, 7] == ARTEFACT
    assert reg[9, 5] == BORDER and reg[5, 0] == BORDER
    assert reg[6, 6] == BACKGROUND
    with pytest.raises(ValueError, match="artefact mask shape"):
        make_region_map(tissue, artefact=art[:5])


def test_tile_shares_known_values() -> None:
    att = np.zeros((2, 4, 4))
    reg = np.full((2, 4, 4), TISSUE, np.uint8)
    reg[:, 0, :] = ARTEFACT  # a quarter of each tile
    att[0] = 1.0  # uniform: shares follow area
    att[1, 0, :] = 3.0  # all mass on the artefact row
    att[1, 1, 0] = -1.0  # abs counts
    shares, area, mass = tile_region_shares(att, reg)
    np.testing.assert_allclose(
        shares[0, [BACKGROUND, TISSUE, ARTEFACT, BORDER]], [0, 0.75, 0.25, 0]
    )
    np.testing.assert_allclose(shares[1, ARTEFACT], 12 / 13)
    np.testing.assert_allclose(area[:, ARTEFACT], 0.25)
    np.testing.assert_allclose(mass, [16, 13])
    pos, _, _ = tile_region_shares(att, reg, sign="positive")
    np.testing.assert_allclose(pos[1, ARTEFACT], 1.0)
    # Coarser region maps are resampled onto the attribution grid.
    coarse = reg[:, ::2, ::2]
    shares2, _, _ = tile_region_shares(np.ones((2, 4, 4)), coarse)
    np.testing.assert_allclose(shares2[:, ARTEFACT], 0.5)


def test_audit_flags_off_tissue_tiles_and_verdicts() -> None:
    n = 10
    att = np.ones((n, 8, 8))
    reg = np.full((n, 8, 8), TISSUE, np.uint8)
    reg[:, :2, :2] = ARTEFACT  # 1/16 of the area
    res = audit_attention(att, reg, pred_class=["a"] * 5 + ["b"] * 5)
    assert res.verdict == "pass" and not res.flagged.any()
    np.testing.assert_allclose(res.enrichment["artefact"], 1.0)
    # Tile 3 puts 80% of its mass on the artefact corner: flagged; 1/10 tiles -> fail.
    att[3, :2, :2] = 0.8 * 60 / 0.2 / 4
    res = audit_attention(att, reg, pred_class=["a"] * 5 + ["b"] * 5)
    assert res.flagged.tolist() == [i == 3 for i in range(n)]
    assert res.worst[0] == 3
    assert res.verdict == "fail"
    assert res.shares_by_class["a"]["artefact"] > res.shares_by_class["b"]["artefact"]
    lenient = AuditThresholds(slide_flagged_fraction=0.5, slide_artefact_share=0.9)
    assert audit_attention(att, reg, thresholds=lenient).verdict == "warn"
    # A half-background tile with uniform attribution is *not* flagged (enrichment 1).
    reg2 = reg.copy()
    reg2[:, 4:, :] = BACKGROUND
    res2 = audit_attention(np.ones((n, 8, 8)), reg2)
    assert not res2.flagged.any()
    json.dumps(res.to_dict())  # JSON-ready


def test_thresholds_validate() -> None:
    with pytest.raises(ValueError, match="tile_off_tissue_share"):
        AuditThresholds(tile_off_tissue_share=1.5)
    with pytest.raises(ValueError, match="shape"):
        tile_region_shares(np.ones((4, 4)), np.ones((4, 4), np.uint8))


def test_crop_tile_regions_and_map_shares_agree() -> None:
    # Slide 64 x 96 level-0 px; region map at downsample 4; artefact block at
    # level-0 rows 0-15, cols 32-47; tiles of 32 px.
    reg = np.full((16, 24), TISSUE, np.uint8)
    reg[0:4, 8:12] = ARTEFACT
    tiles = np.array([[0, 32], [32, 0], [48, 80]])
    crops = crop_tile_regions(
        reg, tiles, regions_downsample=4, tile_shape0=(32, 32), out_shape=(16, 16)
    )
    assert crops.shape == (3, 16, 16)
    assert (crops[0, :8, :8] == ARTEFACT).all() and (crops[0, 8:, :] == TISSUE).all()
    assert (crops[1] == TISSUE).all()
    assert (crops[2, 8:, :] == BORDER).all()  # beyond the slide's bottom edge
    # Whole-slide map at stride 8 with all mass on the artefact: share 1.
    sal = np.zeros((8, 12))
    sal[0:2, 4:6] = 1.0
    mass, pixels = map_region_shares(
        sal, reg, saliency_downsample=8, regions_downsample=4, block_rows=3
    )
    np.testing.assert_allclose(mass / mass.sum(), [0, 0, 1, 0])
    assert pixels.sum() == sal.size and pixels[ARTEFACT] == 4


def test_no_tiles_is_not_a_pass() -> None:
    res = audit_attention(np.zeros((0, 8, 8)), np.zeros((0, 8, 8), np.uint8))
    assert res.verdict == "n/a" and res.n_tiles == 0 and res.worst == []
    json.dumps(res.to_dict())
