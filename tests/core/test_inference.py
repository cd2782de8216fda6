"""Scoring slides: heatmap vs known tumour, uniform maps, bad models, real slides, layers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd  # noqa: TID253
import pytest
import torch  # noqa: TID253
from torch import nn  # noqa: TID253

from napari_xai.core.heatmaps import TILE_COLUMNS
from napari_xai.core.inference import (
    iter_predictions,
    iter_score_slide,
    score_slide,
    slide_stem,
)
from napari_xai.core.layers import grid_to_world, score_layers
from napari_xai.core.models.card import ModelCard
from napari_xai.core.models.demo import load_demo_model
from napari_xai.core.models.loading import LoadedModel, ModelError, save_torchscript
from napari_xai.core.options import GridOptions, RunOptions
from napari_xai.core.tiling import mask_fraction
from napari_xai.core.wsi import open_slide

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory):
    """A 2048 x 3072 synthetic H&E slide with known tumour (seed 3: ~4 % tumour)."""
    from napari_xai.demo.synthetic import write_synthetic_slide

    path = tmp_path_factory.mktemp("syn") / "syn3.svs"
    truth = write_synthetic_slide(path, shape_rc=(2048, 3072), seed=3, workers=1)
    return path, truth


@pytest.fixture(scope="module")
def demo() -> LoadedModel:
    return load_demo_model(device="cpu")


@pytest.fixture(scope="module")
def demo_result(synthetic, demo):
    path, _ = synthetic
    return score_slide(path, demo, run=RunOptions(batch_size=64))


class ConstantModel(nn.Module):
    def __init__(self, n_classes: int, k: int) -> None:
        super().__init__()
        self.n_classes, self.k = n_classes, k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(x.shape[0], self.n_classes, device=x.device)
        out[:, self.k] = 20.0
        return out


class NaNAfterFirstBatch(nn.Module):
    """Fine on the 2 validation tiles, NaN on real batches."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(x.shape[0], 3, device=x.device)
        if x.shape[0] > 2:
            out = out + float("nan")
        return out


def _auc(y: np.ndarray, s: np.ndarray) -> float:
    from scipy.stats import rankdata

    ranks = rankdata(s)
    n1, n0 = int(y.sum()), int((~y).sum())
    return float((ranks[y].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def test_demo_heatmap_agrees_with_known_tumour(synthetic, demo_result) -> None:
    _, truth = synthetic
    tiles, grid = demo_result.tiles, demo_result.grid
    assert demo_result.complete and len(tiles) > 50
    tumour = mask_fraction(
        truth.tumour, tiles.row, tiles.col, tile_size0=grid.tile_size0,
        downsample=truth.downsample,
    )  # fmt: skip
    y = tumour >= 0.5
    assert y.sum() >= 5, "the synthetic slide should hold tumour tiles"
    s = tiles["prob_tumour"].to_numpy()
    auc = _auc(y, s)
    pred = s >= 0.5
    dice = 2 * (pred & y).sum() / (pred.sum() + y.sum())
    print(f"demo model on synthetic seed 3: tile AUC {auc:.4f}, Dice {dice:.4f}")
    assert auc >= 0.95
    assert dice >= 0.7
    # The map says the same as the table.
    k = demo_result.class_names.index("tumour")
    np.testing.assert_allclose(
        demo_result.probabilities[k][tiles.grid_row, tiles.grid_col], s, rtol=1e-6
    )


def test_tiles_table_contract_and_parquet(demo_result, tmp_path: Path) -> None:
    tiles = demo_result.tiles
    names = demo_result.class_names
    expected = [*TILE_COLUMNS, *(f"prob_{c}" for c in names)]
    expected += ["pred_class", "pred_index", "confidence", "entropy", "flags"]
    assert list(tiles.columns) == expected
    for col in ("row", "col", "height", "width", "grid_row", "grid_col", "pred_index"):
        assert tiles[col].dtype == np.int64, col
    for c in names:
        assert tiles[f"prob_{c}"].dtype == np.float32
    probs = tiles[[f"prob_{c}" for c in names]].to_numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (tiles.pred_class == np.asarray(names)[tiles.pred_index]).all()
    assert (tiles.tissue_fraction >= 0.5).all()
    assert tiles.attrs["class_names"] == list(names)
    assert tiles.attrs["stride0"] == demo_result.grid.stride0
    out = demo_result.save(tmp_path / "res")
    back = pd.read_parquet(out)
    pd.testing.assert_frame_equal(back, tiles)


def test_heatmap_and_tiles_layers_align(synthetic, demo_result) -> None:
    from napari.layers import Layer

    layers = score_layers(demo_result)
    names = [kw["name"] for _, kw, _ in layers]
    assert names == [f"syn3 prob [{c}]" for c in demo_result.class_names] + ["syn3 tiles"]
    visible = [kw["visible"] for _, kw, _ in layers[:-1]]
    assert visible == [c == "tumour" for c in demo_result.class_names]
    tiles = demo_result.tiles
    heat = Layer.create(*layers[2])
    # Map pixel (grid_row, grid_col) lands on the tile's centre in world (level-0) coordinates.
    world = np.array(
        [heat.data_to_world((r, c)) for r, c in zip(tiles.grid_row, tiles.grid_col, strict=True)]
    )
    half = (demo_result.grid.tile_size0 - 1) / 2
    np.testing.assert_allclose(world, np.c_[tiles.row + half, tiles.col + half])
    # The map spans the slide: its far edge is within one tile of the slide's extent.
    with open_slide(synthetic[0]) as slide:
        rows, cols = slide.info.shape_rc
    extent = heat.extent.world
    assert extent[0][0] <= 0 + demo_result.grid.tile_size0
    assert rows <= extent[1][0] + demo_result.grid.tile_size0
    assert cols <= extent[1][1] + demo_result.grid.tile_size0
    points = Layer.create(*layers[-1])
    assert len(points.data) == len(tiles) == len(points.features)
    np.testing.assert_allclose(points.data, np.c_[tiles.row + half, tiles.col + half])
    # Coloured by class: tumour tiles red-ish, background grey.
    is_tumour = (tiles.pred_class == "tumour").to_numpy()
    if is_tumour.any():
        assert points.face_color[is_tumour][0][0] > 0.8 > points.face_color[is_tumour][0][1]


def test_constant_model_gives_uniform_map(synthetic, tmp_path: Path) -> None:
    path, _ = synthetic
    card = ModelCard(class_names=("a", "b", "c"), tile_size=32, mpp=2.0)
    model_path = save_torchscript(ConstantModel(3, 1), card, tmp_path / "const.pt")
    result = score_slide(path, model_path, run=RunOptions(device="cpu", batch_size=50))
    maps = result.probabilities
    scored = ~np.isnan(maps[0])
    assert scored.sum() == len(result.tiles) > 10
    np.testing.assert_allclose(maps[1][scored], 1.0, atol=1e-6)
    np.testing.assert_allclose(maps[0][scored], 0.0, atol=1e-6)
    assert (result.tiles.pred_class == "b").all()
    assert result.grid.tile_size0 == 128  # 32 px at 2 µm/px on a 0.5 µm/px slide


def test_scripted_and_eager_demo_agree(synthetic, demo, tmp_path: Path) -> None:
    path, _ = synthetic
    scripted_path = save_torchscript(demo.module, demo.card, tmp_path / "demo_ts.pt")
    with open_slide(path) as slide:
        a = score_slide(slide, demo, grid=GridOptions(max_tiles=40), run=RunOptions(batch_size=16))
        b = score_slide(
            slide, scripted_path, grid=GridOptions(max_tiles=40),
            run=RunOptions(batch_size=7, device="cpu"),
        )  # fmt: skip
    assert len(a.tiles) == len(b.tiles) == 40
    np.testing.assert_allclose(a.tiles.prob_tumour, b.tiles.prob_tumour, atol=1e-5)


def test_nan_during_scoring_is_a_clear_error(synthetic, tmp_path: Path) -> None:
    path, _ = synthetic
    card = ModelCard(class_names=("a", "b", "c"), tile_size=32, mpp=2.0)
    model_path = save_torchscript(NaNAfterFirstBatch(), card, tmp_path / "nan.pt")
    with pytest.raises(ModelError, match=r"nan\.pt: the model produced NaN"):
        score_slide(
            path, model_path, grid=GridOptions(max_tiles=16),
            run=RunOptions(device="cpu", batch_size=8),
        )  # fmt: skip


def test_cancel_stops_scoring(synthetic, demo) -> None:
    path, _ = synthetic
    gen = iter_score_slide(
        path, demo, grid=GridOptions(min_tissue=0.0), run=RunOptions(batch_size=4)
    )
    first = next(gen)
    assert first.n_done == 4 and first.n_total > 40
    second = next(gen)
    assert second.maps is first.maps
    assert np.isfinite(second.maps).any(axis=0).sum() == 8
    gen.close()  # what napari's worker.quit() does


def test_overlap_and_subset(synthetic, demo) -> None:
    path, _ = synthetic
    with open_slide(path) as slide:
        result = score_slide(
            slide, demo, grid=GridOptions(overlap=0.5, max_tiles=30), run=RunOptions(batch_size=30)
        )
        assert result.grid.stride0 == result.grid.tile_size0 // 2
        assert result.grid.grid_shape[0] >= 2 * (slide.info.shape_rc[0] // 128) - 1
        assert len(result.tiles) == 30 and not result.tiles.duplicated(["row", "col"]).any()
        scale, translate = grid_to_world(result.grid.stride0, result.grid.tile_size0)
        assert scale == (64.0, 64.0) and translate == (63.5, 63.5)


def test_iter_predictions_yields_batches(synthetic, demo) -> None:
    from napari_xai.core.inference import grid_for_slide

    path, _ = synthetic
    with open_slide(path) as slide:
        grid = grid_for_slide(slide, demo.card, GridOptions(tissue=False))
        batches = list(
            iter_predictions(slide, demo, grid, run=RunOptions(batch_size=10), indices=range(25))
        )
    assert [len(b.indices) for b in batches] == [10, 10, 5]
    assert batches[-1].n_done == batches[-1].n_total == 25
    assert all(b.probabilities.shape == (len(b.indices), 3) for b in batches)


REAL = ["CMU-1-Small-Region.svs", "OS-1-detail.ome.tif", "boxes.tiff", "small.svs",
        "test3-DAPI-2.ndpi"]  # fmt: skip


@pytest.mark.parametrize("name", REAL)
def test_real_slides_score(shared_data, demo, name: str) -> None:
    path = shared_data / "slides" / name
    with open_slide(path) as slide:
        mpp = None if slide.info.mpp is not None else 0.25
        if mpp is not None:
            # No resolution in the file and none stated: a clear error.
            with pytest.raises(ValueError, match=f"{name}: the slide has no resolution"):
                score_slide(slide, demo)
        result = score_slide(
            slide, demo, grid=GridOptions(mpp=mpp, min_tissue=0.0), run=RunOptions(batch_size=32)
        )
        assert result.complete
        assert result.probabilities.shape[1:] == result.grid.grid_shape
        if name != "small.svs":  # 16 x 16 px of synthetic colour: no tissue is fine
            assert len(result.tiles) > 0
        probs = result.tiles[[f"prob_{c}" for c in result.class_names]].to_numpy()
        assert np.isfinite(probs).all()
        assert slide_stem(path) in score_layers(result)[0][1]["name"]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_amp_matches_cpu(synthetic) -> None:
    path, _ = synthetic
    cpu = score_slide(path, "demo", grid=GridOptions(max_tiles=64), run=RunOptions(device="cpu"))
    gpu = score_slide(
        path, "demo", grid=GridOptions(max_tiles=64), run=RunOptions(device="cuda", amp=True)
    )
    np.testing.assert_allclose(cpu.tiles.prob_tumour, gpu.tiles.prob_tumour, atol=2e-2)


def test_cli_score_writes_tiles_and_preview(synthetic, tmp_path: Path, capsys) -> None:
    from napari_xai.cli import main

    path, _ = synthetic
    status = main(["score", str(path), "--model", "demo", "--out", str(tmp_path),
                   "--max-tiles", "24", "--device", "cpu"])  # fmt: skip
    assert status == 0
    tiles = pd.read_parquet(tmp_path / "syn3" / "tiles.parquet")
    assert len(tiles) == 24 and "prob_tumour" in tiles
    assert (tmp_path / "syn3" / "preview.png").stat().st_size > 1000
    assert "24 tiles scored" in capsys.readouterr().out


def test_cli_score_without_mpp_is_a_clear_error(shared_data, tmp_path: Path, capsys) -> None:
    from napari_xai.cli import main

    slide = shared_data / "slides" / "boxes.tiff"
    assert main(["score", str(slide), "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "boxes.tiff: the slide has no resolution" in err and "--mpp" in err
    # 300 x 250 px of coloured boxes holds no whole tile with tissue: accept the empty result
    assert (
        main(["score", str(slide), "--out", str(tmp_path), "--mpp", "0.25", "--allow-empty"]) == 0
    )


def test_threaded_prefetch_gives_the_same_results(synthetic, demo) -> None:
    path, _ = synthetic
    with open_slide(path) as slide:
        serial = score_slide(
            slide, demo, grid=GridOptions(max_tiles=48),
            run=RunOptions(batch_size=8, num_workers=1, prefetch=0),
        )  # fmt: skip
        threaded = score_slide(
            slide, demo, grid=GridOptions(max_tiles=48),
            run=RunOptions(batch_size=5, num_workers=3, prefetch=4),
        )  # fmt: skip
    pd.testing.assert_frame_equal(serial.tiles, threaded.tiles, atol=1e-5)
    np.testing.assert_allclose(serial.probabilities, threaded.probabilities, atol=1e-5)


def test_tiles_layer_coloured_by_confidence(demo_result) -> None:
    from napari.layers import Layer

    from napari_xai.core.layers import tiles_layer

    ldt = tiles_layer(
        demo_result.tiles, slide_name="syn3", class_names=demo_result.class_names,
        color_by="confidence",
    )  # fmt: skip
    points = Layer.create(*ldt)
    conf = demo_result.tiles.confidence.to_numpy()
    lo, hi = int(np.argmin(conf)), int(np.argmax(conf))
    # viridis: dark blue/purple at low confidence, yellow-green at high.
    assert points.face_color[hi][1] > points.face_color[lo][1]
    with pytest.raises(ValueError, match="color_by"):
        tiles_layer(demo_result.tiles, slide_name="s", class_names=("a",), color_by="x")
