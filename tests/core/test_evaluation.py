"""Evaluation against annotations on a synthetic slide with a known tumour mask."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd  # noqa: TID253
import pytest
from shapely.geometry import box

from napari_xai.core.annotations.evaluation import (
    confusion_matrix,
    dice_iou,
    energy_pointing_game,
    evaluate_tiles,
    overlap_fractions,
    overlap_fractions_from_mask,
    per_class_metrics,
    resample_to_grid,
    roc_auc,
    roc_curve,
    tile_labels,
)
from napari_xai.core.annotations.geojson import Annotation
from napari_xai.core.annotations.raster import labels_to_annotations

SHAPE_RC = (2048, 3072)  # level-0 slide
DS = 16  # mask downsample
TILE = 256


def _truth_mask() -> np.ndarray:
    """Known tumour: a disc plus a rectangle, at downsample 16."""
    rows, cols = SHAPE_RC[0] // DS, SHAPE_RC[1] // DS
    yy, xx = np.mgrid[:rows, :cols]
    mask = (yy - 60) ** 2 + (xx - 70) ** 2 <= 40**2
    mask[20:110, 130:170] = True
    return mask


def _tiles(mask: np.ndarray, *, rng: np.random.Generator) -> pd.DataFrame:
    grid = [(r, c) for r in range(0, SHAPE_RC[0], TILE) for c in range(0, SHAPE_RC[1], TILE)]
    t = pd.DataFrame(grid, columns=["row", "col"]).astype(np.int64)
    t["height"] = TILE
    t["width"] = TILE
    frac = overlap_fractions_from_mask(t, mask, downsample=DS)
    # A decent but imperfect model: tumour probability follows the truth plus noise.
    p = np.clip(frac * 0.8 + rng.normal(0, 0.15, len(t)) + 0.1, 0, 1).astype(np.float32)
    t["prob_tumor"] = p
    t["prob_normal"] = 1 - p
    t["pred_class"] = np.where(p >= 0.5, "tumor", "normal")
    t.attrs["class_names"] = ["normal", "tumor"]
    return t


def test_overlap_from_mask_matches_exact_polygon_overlap() -> None:
    mask = _truth_mask()
    tiles = _tiles(mask, rng=np.random.default_rng(0))
    from_mask = overlap_fractions_from_mask(tiles, mask, downsample=DS)
    anns = labels_to_annotations(mask.astype(np.int32), downsample=DS, class_names={1: "Tumor"})
    exact = overlap_fractions(tiles, anns)["Tumor"].to_numpy()
    assert np.allclose(from_mask, exact, atol=1e-9)
    assert from_mask.max() == 1.0 and from_mask.min() == 0.0
    assert 0 < (from_mask * TILE * TILE).sum() / (mask.sum() * DS * DS) <= 1.0 + 1e-9


def test_tile_labels_by_overlap() -> None:
    tiles = pd.DataFrame(
        {"row": [0, 0, 0], "col": [0, 100, 200], "height": [100] * 3, "width": [100] * 3}
    )
    anns = [Annotation(box(0, 0, 160, 100), "Tumor"), Annotation(box(160, 0, 300, 100), "Stroma")]
    ov = overlap_fractions(tiles, anns)
    assert ov["Tumor"].tolist() == pytest.approx([1.0, 0.6, 0.0])
    assert ov["Stroma"].tolist() == pytest.approx([0.0, 0.4, 1.0])
    assert tile_labels(ov, min_overlap=0.5).tolist() == ["Tumor", "Tumor", "Stroma"]
    assert tile_labels(ov, min_overlap=0.7).tolist() == ["Tumor", "", "Stroma"]
    assert tile_labels(ov, min_overlap=0.7, background="Other").tolist()[1] == "Other"


def test_evaluation_on_synthetic_truth() -> None:
    mask = _truth_mask()
    tiles = _tiles(mask, rng=np.random.default_rng(1))
    frac = overlap_fractions_from_mask(tiles, mask, downsample=DS)
    truth = pd.Series(np.where(frac >= 0.5, "tumor", np.where(frac == 0, "normal", "")))
    report = evaluate_tiles(tiles, truth)
    json.dumps(report)  # goes into audit.json as is
    assert report["labels"] == ["normal", "tumor"]
    cm = np.array(report["confusion_matrix"])
    assert cm.sum() == report["n_tiles"] == int((truth != "").sum())
    assert report["n_unlabelled"] == int((truth == "").sum()) > 0
    assert report["per_class"]["tumor"]["auc"] > 0.9
    assert report["per_class"]["tumor"]["support"] == int((truth == "tumor").sum())
    # A perfect model scores 1, a shuffled one does not.
    perfect = tiles.copy()
    perfect["prob_tumor"] = frac
    perfect["pred_class"] = np.where(frac >= 0.5, "tumor", "normal")
    best = evaluate_tiles(perfect, truth)
    assert best["accuracy"] == 1.0 and best["per_class"]["tumor"]["auc"] == 1.0
    shuffled = perfect.copy()
    shuffled["prob_tumor"] = np.random.default_rng(2).permutation(frac)
    assert evaluate_tiles(shuffled, truth)["per_class"]["tumor"]["auc"] < 0.8


def test_confusion_matrix_and_metrics_by_hand() -> None:
    cm = confusion_matrix(["a", "a", "b", "b", "b", ""], ["a", "b", "b", "b", "a", "a"])
    assert cm.loc["a"].tolist() == [1, 1] and cm.loc["b"].tolist() == [1, 2]
    m = per_class_metrics(cm)
    assert m.loc["a", "precision"] == 0.5 and m.loc["b", "recall"] == pytest.approx(2 / 3)
    assert m["support"].tolist() == [2, 3]


def test_roc_auc_known_values() -> None:
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert roc_auc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert roc_auc([0, 1], [0.5, 0.5]) == 0.5
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    assert math.isnan(roc_auc([1, 1], [0.1, 0.2]))
    fpr, tpr, _ = roc_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    assert np.trapezoid(tpr, fpr) == pytest.approx(0.75)


def test_dice_iou_between_thresholded_heatmap_and_annotation() -> None:
    mask = _truth_mask()
    # A heatmap at tile stride (256) placed on level 0 like core/layers does.
    tiles = _tiles(mask, rng=np.random.default_rng(3))
    frac = overlap_fractions_from_mask(tiles, mask, downsample=DS)
    heat = frac.reshape(SHAPE_RC[0] // TILE, SHAPE_RC[1] // TILE)
    on_mask_grid = resample_to_grid(
        heat,
        scale=TILE,
        translate=(TILE - 1) / 2,
        shape_rc=mask.shape,
        out_scale=DS,
        out_translate=(DS - 1) / 2,
    )
    dice, iou = dice_iou(on_mask_grid >= 0.5, mask)
    assert 0.8 < dice < 1.0 and iou == pytest.approx(dice / (2 - dice))
    assert dice_iou(mask, mask) == (1.0, 1.0)
    assert dice_iou(mask, ~mask) == (0.0, 0.0)
    assert dice_iou(np.zeros((3, 3)), np.zeros((3, 3))) == (1.0, 1.0)


def test_resample_places_pixels_by_scale_and_translate() -> None:
    src = np.arange(4).reshape(2, 2)  # pixel centres at level-0 1.5 and 5.5 (scale 4)
    out = resample_to_grid(src, scale=4, translate=1.5, shape_rc=(8, 8), out_scale=1)
    assert out[0].tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    assert out[7, 7] == 3
    nan = resample_to_grid(
        src, scale=4, translate=1.5, shape_rc=(12, 12), out_scale=1, fill=np.nan
    )
    assert np.isnan(nan[11, 11]) and nan[0, 0] == 0


def test_energy_pointing_game() -> None:
    mask = np.zeros((10, 10), bool)
    mask[:5] = True
    focused = np.where(mask, 1.0, 0.0)
    assert energy_pointing_game(focused, mask) == 1.0
    uniform = np.ones((10, 10))
    assert energy_pointing_game(uniform, mask) == pytest.approx(0.5)  # = area fraction
    half = np.where(mask, 3.0, 1.0) - 2.0  # negatives ignored
    assert energy_pointing_game(half, mask) == 1.0
    assert math.isnan(energy_pointing_game(np.zeros((10, 10)), mask))


def test_evaluate_against_annotations_with_maps(tmp_path) -> None:  # noqa: ANN001
    from napari_xai.core.annotations.evaluation import (
        PlacedMap,
        evaluate_against_annotations,
        write_evaluation,
    )

    mask = _truth_mask()
    tiles = _tiles(mask, rng=np.random.default_rng(4))
    anns = labels_to_annotations(mask.astype(np.int32), downsample=DS, class_names={1: "Tumor"})
    frac = overlap_fractions_from_mask(tiles, mask, downsample=DS)
    heat = frac.reshape(SHAPE_RC[0] // TILE, SHAPE_RC[1] // TILE)
    # Saliency at the mask's grid: all of it on the tumour, or all of it off.
    on = PlacedMap(mask.astype(float), scale=DS, translate=(DS - 1) / 2)
    off = PlacedMap((~mask).astype(float), scale=DS, translate=(DS - 1) / 2)
    result = evaluate_against_annotations(
        tiles,
        anns,
        background="normal",
        heatmap=PlacedMap(heat, scale=TILE, translate=(TILE - 1) / 2),
        saliency=on,
    )
    assert result["class_map"] == {"Tumor": "tumor"}  # QuPath name -> model class
    assert result["tiles"]["n_unlabelled"] == 0  # background fills the rest
    assert result["tiles"]["per_class"]["tumor"]["auc"] > 0.9
    assert 0.8 < result["segmentation"]["dice"] <= 1.0
    assert result["pointing_game"]["energy_inside"] == pytest.approx(1.0)
    assert result["pointing_game"]["area_fraction"] == pytest.approx(mask.mean())
    away = evaluate_against_annotations(tiles, anns, saliency=off)
    assert away["pointing_game"]["energy_inside"] == pytest.approx(0.0)
    # Stored next to other audit figures, keeping them.
    audit = tmp_path / "audit.json"
    audit.write_text(json.dumps({"shortcut": {"pen": 0.1}}))
    write_evaluation(result, audit)
    doc = json.loads(audit.read_text())
    assert doc["shortcut"] == {"pen": 0.1} and doc["evaluation"]["tiles"]["labels"]


def test_a_killed_evaluation_write_keeps_the_old_file(tmp_path) -> None:  # noqa: ANN001
    """SIGKILLed inside the write: audit.json is the old one, the leftover is a known temporary."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from napari_xai.core.atomic import clean_temporaries

    audit = tmp_path / "audit.json"
    old = json.dumps({"shortcut": {"pen": 0.1}})
    audit.write_text(old)
    code = (
        "import sys; from napari_xai.core.annotations.evaluation import write_evaluation; "
        "write_evaluation({'tiles': {'n': 3}}, sys.argv[1])"
    )
    env = {**os.environ, "NAPARI_XAI_KILL_AT": "1", "OMP_NUM_THREADS": "1"}
    root = Path(__file__).resolve().parents[2]
    run = subprocess.run(
        [sys.executable, "-c", code, str(audit)], cwd=root, env=env, timeout=300, check=False
    )
    assert run.returncode == -signal.SIGKILL  # killed at the write's kill point
    assert audit.read_text() == old
    assert clean_temporaries(tmp_path) == 1  # the next run recognises and removes it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["audit.json"]


@pytest.mark.slow
def test_synthetic_slide_tumour_annotation_round_trip(tmp_path) -> None:  # noqa: ANN001
    """The synthetic slide's known tumour, as QuPath GeoJSON, scores as the truth does."""
    synthetic = pytest.importorskip("napari_xai.demo.synthetic")
    from napari_xai.core.annotations.geojson import read_geojson, write_geojson
    from napari_xai.core.annotations.morphology import measure_geometries

    truth = synthetic.write_synthetic_slide(
        tmp_path / "s.svs", shape_rc=(1536, 1536), seed=2, artefacts=(), workers=1
    )
    d = truth.downsample
    assert truth.tumour.any()
    anns = labels_to_annotations(
        truth.tumour.astype(np.int32), downsample=d, class_names={1: "Tumor"}
    )
    path = write_geojson(anns, tmp_path / "tumour.geojson")
    back = read_geojson(path, shape_rc=truth.shape_rc)
    assert back.report.clean, back.report.summary()
    area = measure_geometries([a.geometry for a in back.annotations], mpp=truth.mpp)
    assert area["area_um2"].sum() == pytest.approx(truth.tumour.sum() * d * d * truth.mpp**2)
    rows, cols = np.mgrid[0 : truth.shape_rc[0] : 128, 0 : truth.shape_rc[1] : 128]
    tiles = pd.DataFrame({"row": rows.ravel(), "col": cols.ravel()})
    tiles["height"] = tiles["width"] = 128
    exact = overlap_fractions(tiles, back.annotations)["Tumor"].to_numpy()
    from_mask = overlap_fractions_from_mask(tiles, truth.tumour, downsample=d)
    assert np.allclose(exact, from_mask, atol=1e-9)
    tiles["prob_tumor"] = from_mask
    tiles["prob_normal"] = 1 - from_mask
    tiles["pred_class"] = np.where(from_mask >= 0.5, "tumor", "normal")
    truth_labels = tile_labels(
        overlap_fractions(tiles, back.annotations), background="normal"
    ).replace({"Tumor": "tumor"})
    report = evaluate_tiles(tiles, truth_labels)
    assert report["accuracy"] == 1.0 and report["per_class"]["tumor"]["auc"] == 1.0


def test_an_evaluation_saved_into_a_result_folder_stays_through_audit_and_rescore(
    shared_data, tmp_path, capsys
) -> None:  # noqa: ANN001
    """CMU-1-Small-Region scored, evaluated against its own predicted regions, audited, then
    scored again. Before, the evaluation's audit.json was written beside the manifest: unlisted,
    the next run dropped it (or, listed, its checksum broke and the next run re-scored)."""
    import json

    from napari_xai.cli import main
    from napari_xai.core.results import check_result, read_manifest

    slide = str(shared_data / "slides" / "CMU-1-Small-Region.svs")
    common = ["--out", str(tmp_path), "--device", "cpu"]
    folder = tmp_path / "CMU-1-Small-Region"
    evaluate = ["evaluate", str(folder / "tiles.parquet"), "--positive-class", "tumour",
                "--annotations", str(folder / "annotations.geojson"), "--quiet"]  # fmt: skip
    assert main(["score", slide, *common]) == 0
    assert main(evaluate) == 0
    manifest = read_manifest(folder)
    assert manifest["files"]["audit"] == "audit.json"  # listed, with its checksum
    assert check_result(folder, manifest["params"], manifest["model"]["sha256"]) is None
    first = json.loads((folder / "audit.json").read_text())["evaluation"]
    assert main(["audit", slide, "--max-tiles", "8", "--quiet", *common]) == 0
    audited = json.loads((folder / "audit.json").read_text())
    assert audited["evaluation"] == first and "attention" in audited  # both kept
    assert main(evaluate) == 0  # again, now over the audit: the audit is kept
    assert main(["score", slide, *common]) == 0
    assert "kept" in capsys.readouterr().err
    final = json.loads((folder / "audit.json").read_text())
    assert final["evaluation"] == first and final["attention"] == audited["attention"]
    manifest = read_manifest(folder)
    assert check_result(folder, manifest["params"], manifest["model"]["sha256"]) is None
