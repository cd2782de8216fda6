"""Embedding, clusters and their summaries, filters, galleries and confusion cells.

The cohort: synthetic H&E patches of two classes (the demo model's own
generator), a planted artefact on a fifth of them (a heavy green marker-ink
wash, of both classes), features from the demo model's forward pass.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pd = pytest.importorskip("pandas")
pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def cohort():
    from napari_xai.core.explore.cohort import Cohort
    from napari_xai.core.explore.features import FeatureCapture
    from napari_xai.core.models.demo import load_demo_model
    from napari_xai.core.predict import preprocess_tiles, to_probabilities
    from napari_xai.core.reader import resize_tile
    from napari_xai.demo.shortcut import MARKER_KINDS
    from napari_xai.demo.synthetic import render_patch

    rng = np.random.default_rng(0)
    demo = load_demo_model(device="cpu")
    labels = np.repeat(["normal", "tumour"], 100)
    images = np.stack([resize_tile(render_patch(k, size=128, rng=rng), 64) for k in labels])
    inked = rng.random(len(labels)) < 0.2
    ink = np.asarray(MARKER_KINDS["stroke"], np.float64) / 255.0
    images[inked] = (images[inked] * (0.2 + 0.8 * ink)).astype(np.uint8)
    capture = FeatureCapture(demo)
    with torch.inference_mode():
        probs = to_probabilities(capture(preprocess_tiles(images, demo.card))).numpy()
    names = np.asarray(demo.card.class_names)
    tiles = pd.DataFrame(
        {
            "slide_id": np.where(np.arange(len(labels)) % 2 == 0, "a", "b"),
            "tile": np.arange(len(labels)),
            "pred_class": names[probs.argmax(1)],
            "confidence": probs.max(1),
            "label": labels,
            "flags": np.where(inked, "artefact", ""),
            "site": np.where(np.arange(len(labels)) % 2 == 0, "A", "B"),
        }
    )
    tiles.attrs = {"class_names": list(names)}
    feats = capture.collect()["features"]
    return Cohort(tiles=tiles, features=feats, class_names=tuple(names), layer="pool"), inked


@pytest.mark.parametrize("method", ["kmeans", "hdbscan"])
def test_classes_separate_and_the_planted_artefact_forms_its_own_cluster(cohort, method) -> None:
    from napari_xai.core.explore.report import ExploreOptions, explore_cohort

    data, inked = cohort
    opts = ExploreOptions(cluster_method=method, n_clusters=3 if method == "kmeans" else None)
    res = explore_cohort(data, options=opts)
    cl = res.tiles["cluster"].to_numpy()
    art = pd.Series(cl[inked]).value_counts()
    art_cluster = int(art.index[0])
    members = cl == art_cluster
    assert art.iloc[0] >= 0.95 * inked.sum()  # nearly every inked tile is in it
    assert inked[members].mean() >= 0.95  # and it holds little else
    # the ink is on both classes: the cluster mixes ground truth, the model calls it one class
    truth = res.tiles.loc[members, "label"].value_counts(normalize=True)
    assert set(truth.index) == {"normal", "tumour"} and truth.min() > 0.2
    for cls in ("normal", "tumour"):  # clean tiles of each class: one cluster per class
        clean = (res.tiles["label"] == cls).to_numpy() & ~inked
        top = pd.Series(cl[clean]).value_counts()
        assert top.iloc[0] >= 0.9 * clean.sum() and int(top.index[0]) not in (art_cluster, -1)
    summary = res.clusters.set_index("cluster")
    assert summary.loc[art_cluster, "artefact_share"] >= 0.95
    assert (summary.drop(index=[art_cluster, -1], errors="ignore")["artefact_share"] < 0.05).all()
    assert summary["n_tiles"].sum() == len(data)
    assert {
        "class_mix",
        "confidence",
        "label_mix",
        "disagreement",
        "n_slides",
        "meta_site",
    } <= set(summary.columns)
    assert summary.loc[art_cluster, "n_slides"] == 2


@pytest.mark.parametrize("method", ["pca", "tsne", "umap"])
def test_embedding_is_seeded_and_fits_on_a_sample(cohort, method: str) -> None:
    from napari_xai.core.explore.reduce import EmbedOptions, embed

    if method == "umap":
        pytest.importorskip("umap")
    data, inked = cohort
    opts = EmbedOptions(method=method, seed=1, fit_sample=120)
    a = embed(data.features, options=opts)
    b = embed(data.features, options=opts)
    np.testing.assert_allclose(a.coords, b.coords, rtol=1e-5, atol=1e-5)
    assert a.coords.shape == (len(data), 2) and np.isfinite(a.coords).all()
    assert len(a.sample) == 120
    # the rest were placed, not fitted: they still land beside their own kind
    rest = np.setdiff1d(np.arange(len(data)), a.sample)
    group = np.where(inked, "ink", data.tiles["label"].to_numpy())
    xy = a.coords
    d = np.linalg.norm(xy[rest][:, None] - xy[a.sample][None], axis=2)
    nearest = a.sample[d.argmin(axis=1)]
    assert (group[nearest] == group[rest]).mean() > 0.9
    with pytest.raises(ValueError, match="embedding method must be one of"):
        embed(data.features, options=EmbedOptions(method="mds"))


def test_pca_of_a_sample_projects_everything_incrementally() -> None:
    from napari_xai.core.explore.reduce import EmbedOptions, embed

    rng = np.random.default_rng(0)
    x = rng.normal(size=(5000, 6)) * np.array([10, 3, 1, 1, 1, 1])
    full = embed(x, options=EmbedOptions(fit_sample=10_000, chunk=700))
    part = embed(x, options=EmbedOptions(fit_sample=1000, chunk=700))
    # first axis along feature 0 either way; a sample is enough to find it
    assert abs(np.corrcoef(full.coords[:, 0], x[:, 0])[0, 1]) > 0.99
    assert abs(np.corrcoef(part.coords[:, 0], full.coords[:, 0])[0, 1]) > 0.99
    assert full.pca.explained[0] > 0.5


def test_filters_gallery_orders_and_confusion_cells(cohort) -> None:
    from napari_xai.core.annotations.evaluation import confusion_matrix
    from napari_xai.core.explore.report import explore_cohort
    from napari_xai.core.explore.select import TileFilter, confusion_cells, gallery_order

    data, inked = cohort
    tiles = explore_cohort(data).tiles
    keep = TileFilter(flags=("artefact",)).mask(tiles)
    np.testing.assert_array_equal(keep, ~inked)
    keep = TileFilter(classes=("tumour",), confidence=(0.9, 1.0), slides=("a",)).mask(tiles)
    sub = tiles[keep]
    assert (sub["pred_class"] == "tumour").all() and (sub["confidence"] >= 0.9).all()
    assert set(sub["slide_id"]) == {"a"} and 0 < keep.sum() < len(tiles)
    assert TileFilter(metadata={"site": ("B",)}).mask(tiles).sum() == (tiles["site"] == "B").sum()
    np.testing.assert_array_equal(
        TileFilter(metadata={"cluster": ("0", 2)}).mask(tiles), tiles["cluster"].isin([0, 2])
    )
    with pytest.raises(KeyError, match="no metadata column 'scanner'"):
        TileFilter(metadata={"scanner": ("x",)}).mask(tiles)
    # no filter keeps every tile; an explicit empty pick of classes or slides keeps none
    assert TileFilter().mask(tiles).all()
    assert not TileFilter(classes=()).mask(tiles).any()
    assert not TileFilter(slides=()).mask(tiles).any()

    order = gallery_order(tiles, by="confidence")
    assert np.all(np.diff(tiles["confidence"].to_numpy()[order]) >= 0)
    wrong = gallery_order(tiles, by="disagreement")
    assert (tiles["label"].to_numpy()[wrong] != tiles["pred_class"].to_numpy()[wrong]).all()
    assert len(wrong) == (tiles["label"] != tiles["pred_class"]).sum()
    by_cluster = gallery_order(tiles, by="cluster", rows=np.flatnonzero(keep))
    assert set(by_cluster) == set(np.flatnonzero(keep))
    assert np.all(np.diff(tiles["cluster"].to_numpy()[by_cluster]) >= 0)

    cm, cells = confusion_cells(tiles)
    ref = confusion_matrix(tiles["label"], tiles["pred_class"], labels=list(cm.index))
    np.testing.assert_array_equal(cm.to_numpy(), ref.to_numpy())
    # every cell opens exactly its tiles, each tile in one cell
    seen = np.concatenate(list(cells.values()))
    assert sorted(seen) == list(range(len(tiles)))
    rows = cells[("normal", "tumour")]
    assert len(rows) == cm.loc["normal", "tumour"] > 0
    assert (tiles.iloc[rows]["label"] == "normal").all()
    assert (tiles.iloc[rows]["pred_class"] == "tumour").all()
    assert inked[rows].all()  # the ink made normal tissue 'tumour'


def test_explore_cli_on_a_batch_scored_with_features(tmp_path: Path, capsys) -> None:
    from napari_xai.cli import main

    from .batch_helpers import write_tiny_slide

    slides = [write_tiny_slide(tmp_path / f"case{i}.tif", seed=i, tumour=i == 0) for i in (0, 1)]
    out = tmp_path / "out"
    args = ["batch", *map(str, slides), "--out", str(out), "--scheduler", "sync", "-q"]
    assert main(args) == 0
    assert main(["explore", str(out), "--out", str(tmp_path / "x")]) == 1  # no features yet
    assert "scored without features" in capsys.readouterr().err
    assert main([*args, "--features"]) == 0
    meta = tmp_path / "meta.csv"
    pd.DataFrame({"slide_id": ["case0", "case1"], "scanner": ["S1", "S2"]}).to_csv(meta)
    capsys.readouterr()
    rc = main(["explore", str(out), "--out", str(tmp_path / "x"), "--metadata", str(meta)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "tiles of 2 slides, 64 features (pool)" in printed
    emb = pd.read_parquet(tmp_path / "x" / "embedding.parquet")
    n = sum(len(pd.read_parquet(out / s / "tiles.parquet")) for s in ("case0", "case1"))
    assert len(emb) == n and {"x", "y", "cluster", "ood_score", "scanner"} <= set(emb.columns)
    clusters = pd.read_csv(tmp_path / "x" / "clusters.csv")
    assert clusters["n_tiles"].sum() == n and "meta_scanner" in clusters
    html = (tmp_path / "x" / "index.html").read_text()
    assert "scatter_pred_class.png" in html and (tmp_path / "x" / "scatter_cluster.png").is_file()
    assert f"{n:,} tiles of 2 slide(s)" in html
    assert (
        "confidence_by_class.png" in html
        and (tmp_path / "x" / "confidence_by_class.png").is_file()
    )
    # gallery thumbnails are the tiles, read from the slides the manifests name
    from napari_xai.core.explore.cohort import tile_thumbnails
    from napari_xai.core.reader import resize_tile
    from napari_xai.core.wsi import open_slide

    rows = emb.iloc[[0, len(emb) - 1]]
    thumbs = tile_thumbnails(rows, size=32)
    for thumb, (_, t) in zip(thumbs, rows.iterrows(), strict=True):
        with open_slide(tmp_path / f"{t['slide_id']}.tif") as slide:
            side = int(t["height"])
            ref = resize_tile(slide.read_region((int(t["row"]), int(t["col"])), (side, side)), 32)
        assert np.abs(thumb.astype(int) - ref.astype(int)).mean() < 8
    # the mosaic map: each cell shows the tile nearest its centre, read from its slide
    import tifffile
    from PIL import Image

    assert "mosaic.png" in html and "mosaic_cells.csv" in html
    mosaic = np.asarray(Image.open(tmp_path / "x" / "mosaic.png"))
    cells = pd.read_csv(tmp_path / "x" / "mosaic_cells.csv")
    assert cells["n_tiles"].sum() == n and len(cells) > 1
    xy = emb[["x", "y"]].to_numpy()
    lo, hi = xy.min(0), xy.max(0)
    side = float((hi - lo).max()) / 16
    assert 16 * 48 in mosaic.shape and mosaic.shape[0] % 48 == mosaic.shape[1] % 48 == 0
    i = np.minimum(((hi[1] - xy[:, 1]) // side).astype(int), mosaic.shape[0] // 48 - 1)
    j = np.minimum(((xy[:, 0] - lo[0]) // side).astype(int), mosaic.shape[1] // 48 - 1)
    images = {s: tifffile.imread(tmp_path / f"{s}.tif") for s in ("case0", "case1")}
    for _, c in cells.iterrows():
        members = np.flatnonzero((i == c["cell_row"]) & (j == c["cell_col"]))
        assert len(members) == c["n_tiles"]
        centre = (lo[0] + (c["cell_col"] + 0.5) * side, hi[1] - (c["cell_row"] + 0.5) * side)
        best = emb.iloc[members[np.argmin(np.hypot(*(xy[members] - centre).T))]]
        assert (best["slide_id"], best["tile"]) == (c["slide_id"], c["tile"])
        r0, c0, h = int(best["row"]), int(best["col"]), int(best["height"])
        ref = resize_tile(images[best["slide_id"]][r0 : r0 + h, c0 : c0 + h], 48)
        block = mosaic[c["cell_row"] * 48 : (c["cell_row"] + 1) * 48,
                       c["cell_col"] * 48 : (c["cell_col"] + 1) * 48]  # fmt: skip
        assert np.abs(block.astype(int) - ref.astype(int)).mean() < 8
    # a slide moved away: the report is still written, and says why it has no mosaic map
    (tmp_path / "case0.tif").rename(tmp_path / "moved.tif")
    assert main(["explore", str(out), "--out", str(tmp_path / "y")]) == 0
    html = (tmp_path / "y" / "index.html").read_text()
    assert "No mosaic map:" in html and "case0.tif is not there any more" in html
    assert not (tmp_path / "y" / "mosaic.png").exists()
