"""Features captured while scoring, features.zarr in the result folder, ood_score."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def demo():
    from napari_xai.core.models.demo import load_demo_model

    return load_demo_model(device="cpu")


@pytest.fixture(scope="module")
def synthetic_he(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic H&E slide like the demo model's training patches."""
    from napari_xai.demo.synthetic import write_synthetic_slide

    path = tmp_path_factory.mktemp("explore") / "syn.svs"
    write_synthetic_slide(path, shape_rc=(2048, 2048), mpp=0.5, seed=3, artefacts=())
    return path


def test_capture_returns_the_models_logits_and_its_pooled_features(demo) -> None:
    from napari_xai.core.explore.features import FeatureCapture

    x = torch.randn(5, 3, 64, 64)
    hooked = FeatureCapture(demo)  # the card names 'pool'
    boundary = FeatureCapture(demo, layer="forward_features")
    assert hooked.layer_name == "pool" and boundary.layer_name == "forward_features"
    with torch.inference_mode():
        ref = demo.module(x)
        fmap = demo.module.forward_features(x).mean(dim=(2, 3))
        a, b = hooked(x), boundary(x)
    assert torch.allclose(a, ref) and torch.allclose(b, ref)
    got_a, got_b = hooked.collect(), boundary.collect()
    assert got_a["features"].shape == (5, 64) and got_a["features"].dtype == np.float16
    np.testing.assert_allclose(got_a["features"], fmap.numpy(), rtol=2e-3, atol=2e-3)
    np.testing.assert_allclose(got_b["features"], got_a["features"])
    lse = torch.logsumexp(ref, dim=1).numpy()
    np.testing.assert_allclose(got_a["energy"], -lse, rtol=1e-5)
    assert got_a["mc_uncertainty"] is None


def test_scripted_model_gives_features_at_the_forward_features_boundary(demo) -> None:
    from napari_xai.core.explore.features import FeatureCapture, FeatureError

    scripted = torch.jit.script(demo.module)
    cap = FeatureCapture(scripted, layer="pool")  # no hooks in TorchScript: the boundary
    assert cap.layer_name == "forward_features"
    x = torch.randn(3, 3, 64, 64)
    with torch.inference_mode():
        out = cap(x)
        ref = demo.module(x)
    assert torch.allclose(out, ref, atol=1e-5)
    assert cap.collect()["features"].shape == (3, 64)
    with pytest.raises(FeatureError, match="no layer named 'nope'"):
        FeatureCapture(demo, layer="nope")
    plain = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 2))
    with pytest.raises(FeatureError, match="no feature layer"):
        FeatureCapture(torch.jit.script(plain))


def test_mc_dropout_uncertainty_only_where_the_model_has_dropout() -> None:
    from napari_xai.core.explore.features import FeatureCapture

    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Flatten(), torch.nn.Linear(12, 32), torch.nn.ReLU(), torch.nn.Dropout(0.5)
    )
    net.append(torch.nn.Linear(32, 3))
    net.eval()
    cap = FeatureCapture(net, layer="2", mc_samples=8)
    assert cap.has_dropout
    x = torch.randn(6, 3, 2, 2)
    with torch.inference_mode():
        logits = cap(x)
        again = net(x)
    assert torch.allclose(logits, again)  # eval mode restored: deterministic again
    assert not net[3].training
    mc = cap.collect()["mc_uncertainty"]
    assert mc is not None and mc.shape == (6,) and (mc > 0).all() and (mc <= np.log(3)).all()
    no_drop = FeatureCapture(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3)),
                             layer="0", mc_samples=4)  # fmt: skip
    assert not no_drop.has_dropout
    with torch.inference_mode():
        no_drop(x)
    assert no_drop.collect()["mc_uncertainty"] is None


def test_mahalanobis_scale_is_one_at_the_training_99th_percentile() -> None:
    from napari_xai.core.explore.ood import (
        fit_feature_stats,
        ood_scores,
    )

    rng = np.random.default_rng(0)
    train = np.concatenate([rng.normal(0, 1, (500, 8)), rng.normal(6, 1, (500, 8))])
    labels = np.repeat([0, 1], 500)
    stats = fit_feature_stats(train, labels, layer="pool")
    share_above = float((stats.score(train) > 1).mean())
    assert 0.005 <= share_above <= 0.02
    near = rng.normal(6, 1, (200, 8))  # like class 1
    far = rng.normal(3, 1, (200, 8)) + np.array([0, 0, 0, 0, 0, 0, 0, 12.0])
    assert np.median(stats.score(far)) > 2 * np.median(stats.score(near))
    energy = np.zeros(200, np.float32)
    scores, method = ood_scores(near, energy, stats=stats, layer="pool")
    assert method == "mahalanobis" and np.median(scores) < 1
    _, method = ood_scores(near, energy, stats=stats, layer="other")
    assert method == "energy"  # a summary of another layer is not used


def test_feature_stats_file_round_trip_and_bad_file(tmp_path: Path) -> None:
    from napari_xai.core.explore.ood import (
        fit_feature_stats,
        load_feature_stats,
        save_feature_stats,
    )

    stats = fit_feature_stats(np.random.default_rng(1).normal(size=(50, 4)), layer="x")
    back = load_feature_stats(save_feature_stats(stats, tmp_path / "s.npz"))
    np.testing.assert_allclose(back.precision, stats.precision)
    assert back.reference == pytest.approx(stats.reference) and back.layer == "x"
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not an npz")
    with pytest.raises(ValueError, match="bad.npz: not a feature summary"):
        load_feature_stats(bad)


def test_run_slide_with_features_writes_features_zarr_and_ood_score(
    synthetic_he: Path, tmp_path: Path
) -> None:
    from napari_xai.core.explore.features import read_features
    from napari_xai.core.options import FeatureSpec, GridOptions, SlideOptions
    from napari_xai.core.pipeline import drive, run_slide
    from napari_xai.core.results import load_result

    grid = GridOptions(max_tiles=60)
    folder = drive(
        run_slide(
            synthetic_he,
            "demo",
            tmp_path,
            options=SlideOptions(grid=grid),
        )
    )
    assert "ood_score" not in load_result(folder).tiles  # opt-in
    steps: list = []
    folder = drive(
        run_slide(
            synthetic_he,
            "demo",
            tmp_path,
            options=SlideOptions(grid=grid, features=FeatureSpec()),
        ),
        steps.append,
    )
    assert not any(s.stage == "reuse" for s in steps)  # scored again: features were asked
    res = load_result(folder)
    assert res.manifest["files"]["features"] == "features.zarr"
    assert res.manifest["features"]["ood_method"] == "mahalanobis"
    feats = read_features(folder)
    assert feats.shape == (len(res.tiles), 64) and feats.dtype == np.float16
    assert np.isfinite(res.tiles["ood_score"]).all()
    assert res.manifest["summary"]["ood_score"] == pytest.approx(res.tiles["ood_score"].median())
    # rows line up with the tiles: the head on each stored row gives that row's probabilities
    from napari_xai.core.models.demo import load_demo_model

    head = load_demo_model(device="cpu").module.fc
    with torch.inference_mode():
        probs = torch.softmax(head(torch.from_numpy(feats.astype(np.float32))), dim=1).numpy()
    table = res.tiles[[f"prob_{c}" for c in res.class_names]].to_numpy()
    np.testing.assert_allclose(probs, table, atol=0.02)
    assert np.abs(probs - table[::-1]).max() > 0.1  # (a shuffled order would not pass)
    # a later run without --features keeps them (the folder is reused)
    steps = []
    folder = drive(
        run_slide(
            synthetic_he,
            "demo",
            tmp_path,
            options=SlideOptions(grid=grid),
        ),
        steps.append,
    )
    assert any(s.stage == "reuse" for s in steps)
    assert read_features(folder).shape == feats.shape
    assert "ood_score" in load_result(folder).tiles


def test_ood_score_higher_on_fluorescence_and_real_he_than_on_synthetic_he(
    synthetic_he: Path, shared_data: Path, tmp_path: Path
) -> None:
    """The demo model saw synthetic H&E: a fluorescence slide and a real H&E slide are new.

    Compared over tiles that are mostly tissue: the demo model trained on whole
    tissue patches, so a tile half glass is out of distribution on any slide,
    and the share of such edge tiles (set by the tissue mask and the slide's
    size) would otherwise decide the median.
    """
    from napari_xai.core.options import FeatureSpec, GridOptions, SlideOptions
    from napari_xai.core.pipeline import drive, run_slide
    from napari_xai.core.results import load_result

    slides = {
        "fluorescence": shared_data / "slides" / "test3-DAPI-2.ndpi",
        "real H&E": shared_data / "slides" / "CMU-1-Small-Region.svs",
    }
    for path in slides.values():
        if not path.is_file():
            pytest.skip(f"{path} is not there (real test data)")
    grid = GridOptions(max_tiles=150)

    def ood_scores(path: Path) -> tuple[np.ndarray, np.ndarray]:
        folder = drive(
            run_slide(
                path,
                "demo",
                tmp_path,
                options=SlideOptions(grid=grid, features=FeatureSpec()),
            )
        )
        tiles = load_result(folder).tiles
        interior = tiles["tissue_fraction"].to_numpy() >= 0.9
        assert interior.sum() >= 10, (path.name, int(interior.sum()))
        ood = tiles["ood_score"].to_numpy(np.float64)
        return ood[interior], ood[~interior]

    seen, seen_edges = ood_scores(synthetic_he)
    assert np.median(seen) < 1.5  # 1.0 is the edge of the training data
    assert len(seen_edges) and np.median(seen_edges) > 2 * np.median(seen)
    for kind, path in slides.items():
        unseen, _ = ood_scores(path)
        assert np.median(unseen) > 1.5 * np.median(seen), (kind, unseen, seen)


def test_batch_and_score_cli_features(tmp_path: Path, capsys) -> None:
    """``batch --features``: features.zarr per slide, ood_score in the cohort summary."""
    import pandas as pd

    from napari_xai.cli import main
    from napari_xai.core.explore.features import read_features
    from napari_xai.core.results import load_result

    from .batch_helpers import write_tiny_slide

    slides = [write_tiny_slide(tmp_path / f"case{i}.tif", seed=i, tumour=i == 0) for i in (0, 1)]
    out = tmp_path / "out"
    args = ["batch", *map(str, slides), "--out", str(out), "--scheduler", "sync", "-q"]
    assert main([*args, "--features"]) == 0
    summary = pd.read_csv(out / "cohort_summary.csv")
    assert "ood_score" in summary.columns and summary["ood_score"].notna().all()
    for sid in ("case0", "case1"):
        res = load_result(out / sid)
        assert read_features(out / sid).shape[0] == len(res.tiles) > 0
        # features are captured by the score stage: its spec is recorded with the stages
        assert res.manifest["stages"]["features"]["spec"] == {"layer": None, "mc_samples": 0}
        assert float(summary.set_index("slide_id").loc[sid, "ood_score"]) == pytest.approx(
            float(res.tiles["ood_score"].median()), rel=1e-5
        )
    capsys.readouterr()
    assert main(["score", str(slides[0]), "--model", "demo", "--out", str(tmp_path / "s"),
                 "--features", "--no-preview"]) == 0  # fmt: skip
    assert "ood_score (mahalanobis): median" in capsys.readouterr().out
    assert (tmp_path / "s" / "case0" / "features.zarr").is_dir()


def test_scripted_demo_gives_the_same_ood_scores(synthetic_he: Path, tmp_path: Path) -> None:
    """The WSInfer (TorchScript) copy of the demo: features at the boundary, same summary."""
    from napari_xai.core.models.demo import demo_model_path
    from napari_xai.core.options import FeatureSpec, GridOptions, SlideOptions
    from napari_xai.core.pipeline import drive, run_slide
    from napari_xai.core.results import load_result

    grid = GridOptions(max_tiles=40)
    scripted = demo_model_path().parent / "demo_wsinfer"
    a = load_result(
        drive(
            run_slide(
                synthetic_he,
                "demo",
                tmp_path / "a",
                options=SlideOptions(grid=grid, features=FeatureSpec()),
            )
        )
    )
    b = load_result(
        drive(
            run_slide(
                synthetic_he,
                scripted,
                tmp_path / "b",
                options=SlideOptions(grid=grid, features=FeatureSpec()),
            )
        )
    )
    assert b.manifest["features"]["layer"] == "forward_features"
    assert b.manifest["features"]["ood_method"] == "mahalanobis"
    np.testing.assert_allclose(b.tiles["ood_score"], a.tiles["ood_score"], rtol=0.02, atol=0.02)


def test_ood_layer_over_the_slide(synthetic_he: Path, tmp_path: Path) -> None:
    """Opening a result scored with features adds an ood_score layer aligned with the tiles."""
    from napari.layers import Layer

    from napari_xai._results_reader import read_result_folder
    from napari_xai.core.layers import grid_to_world
    from napari_xai.core.options import FeatureSpec, GridOptions, SlideOptions
    from napari_xai.core.pipeline import drive, run_slide
    from napari_xai.core.results import load_result

    grid = GridOptions(max_tiles=50)
    folder = drive(
        run_slide(
            synthetic_he,
            "demo",
            tmp_path,
            options=SlideOptions(grid=grid, features=FeatureSpec()),
        )
    )
    tiles = load_result(folder).tiles
    layers = {ldt[1]["name"]: ldt for ldt in read_result_folder(str(folder))}
    data, kwargs, kind = layers["syn ood_score"]
    assert kind == "image" and kwargs["metadata"]["ood_method"] == "mahalanobis"
    layer = Layer.create(data, kwargs, kind)
    scale, translate = grid_to_world(tiles.attrs["stride0"], tiles.attrs["tile_size0"])
    assert tuple(layer.scale) == scale and tuple(layer.translate) == translate
    t = tiles.iloc[len(tiles) // 2]
    centre = (t["row"] + (t["height"] - 1) / 2, t["col"] + (t["width"] - 1) / 2)
    idx = np.round(layer.world_to_data(centre)).astype(int)
    assert data[idx[0], idx[1]] == pytest.approx(t["ood_score"])
