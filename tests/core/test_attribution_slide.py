"""Whole-slide attribution: stitched store, resume, "explain what I see" (counted)."""

from __future__ import annotations

# ruff: noqa: TID253 (imported only when attribution runs, never by napari's menus)
import numpy as np
import pytest
import torch
import zarr
from torch import nn

from napari_xai.core.attribution.whole_slide import (
    explain_slide,
    iter_explain_slide,
    iter_explain_view,
    saliency_key,
    slide_grid,
    tiles_in_view,
)
from napari_xai.core.models.card import ModelCard
from napari_xai.core.models.loading import LoadedModel
from napari_xai.core.options import ExplainSpec, GridOptions, RunOptions
from napari_xai.core.progress import drive
from napari_xai.core.wsi import open_slide

#: Every tile (no tissue detection), with and without overlap; batches of 8.
NO_MASK = GridOptions(tissue=False)
NO_MASK_OVERLAP = GridOptions(tissue=False, overlap=0.25)
BATCH_8 = RunOptions(explain_batch_size=8)

torch.set_num_threads(1)


class CountingNet(nn.Module):
    """Tiny CNN that counts the tiles it sees."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 2)
        self.seen = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen += int(x.shape[0])
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


@pytest.fixture
def model() -> LoadedModel:
    torch.manual_seed(0)
    card = ModelCard(class_names=("a", "b"), tile_size=32, mpp=4.0, name="tiny")
    return LoadedModel(module=CountingNet().eval(), card=card, sha256="tiny", is_scripted=False)


@pytest.fixture
def slide(small_pyramid):
    with open_slide(small_pyramid) as s:
        yield s


def test_whole_slide_then_resume(slide, model, tmp_path) -> None:
    store = tmp_path / "heatmaps.zarr"
    steps = []
    gen = iter_explain_slide(
        slide,
        model,
        store=store,
        spec=ExplainSpec(method="grad_cam", target="b"),
        grid=NO_MASK_OVERLAP,
        run=RunOptions(explain_batch_size=16),
    )
    res = drive(gen, steps.append)
    grid = slide_grid(slide, model.card, NO_MASK_OVERLAP)
    assert res.key == saliency_key("grad_cam", "b") == "saliency/grad_cam/b"
    assert res.complete and res.n_computed == len(grid) == res.n_tiles
    assert steps and steps[-1].n_done == len(grid)
    assert res.layer_name == "pyramid saliency [grad_cam, b]"
    level0 = np.asarray(zarr.open_group(str(store))[f"{res.key}/0"][...])
    # map covers the slide: rows*downsample ~ slide rows, everything explained
    assert abs(level0.shape[0] * res.scale_rc[0] - slide.info.shape_rc[0]) <= res.scale_rc[0]
    assert np.isfinite(level0).all()
    assert np.nanmax(level0) > 0
    assert res.limits[1] > 0
    # resume: nothing left to compute
    model.module.seen = 0
    again = explain_slide(
        slide,
        model,
        store=store,
        spec=ExplainSpec(method="grad_cam", target="b"),
        grid=NO_MASK_OVERLAP,
    )
    assert again.n_computed == 0 and again.n_cached == len(grid)
    assert model.module.seen == 0
    # a different target is another map
    other = explain_slide(
        slide,
        model,
        store=store,
        spec=ExplainSpec(method="saliency", target=None),
        grid=NO_MASK_OVERLAP,
    )
    assert other.key == "saliency/saliency/predicted" and other.n_computed == len(grid)


def test_view_mode_computes_only_tiles_in_view(slide, model, tmp_path) -> None:
    store = tmp_path / "heatmaps.zarr"
    grid = slide_grid(slide, model.card, NO_MASK)
    t = grid.tile_size0  # 256 level-0 px: grid 8 x 12
    view = (300, 300, 700, 900)  # touches tile rows 1-2, cols 1-3
    expected = {(r, c) for r in (1, 2) for c in (1, 2, 3)}
    got = {(int(grid.grid_rows[i]), int(grid.grid_cols[i])) for i in tiles_in_view(grid, view)}
    assert got == expected
    gen = iter_explain_view(
        slide, model, view, store=store, spec=ExplainSpec(method="grad_cam"), grid=NO_MASK
    )
    model.module.seen = 0
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        res = stop.value
    assert res.n_computed == len(expected) and res.n_cached == 0
    # Grad-CAM with the predicted class: one forward pass per tile, nothing else
    assert model.module.seen == len(expected)
    level0 = np.asarray(zarr.open_group(str(store))[f"{res.key}/0"][...])
    ds = res.scale_rc[0]
    inside = level0[
        int(1 * t / ds) + 1 : int(3 * t / ds) - 1, int(1 * t / ds) + 1 : int(4 * t / ds) - 1
    ]
    assert np.isfinite(inside).all()
    assert np.isnan(level0[: int(t / ds) - 1]).all()  # tile row 0 not computed
    # pan right by one tile: only the new column is computed (cache)
    model.module.seen = 0
    gen = iter_explain_view(slide, model, (300, 300 + t, 700, 900 + t), store=store, grid=NO_MASK)
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        res2 = stop.value
    assert res2.n_computed == 2 and res2.n_cached == 4  # cols 2-3 cached, col 4 new
    assert model.module.seen == 2


def test_view_mode_caps_when_zoomed_out(slide, model, tmp_path) -> None:
    shape = slide.info.shape_rc
    gen = iter_explain_view(
        slide,
        model,
        (0, 0, *shape),
        store=tmp_path / "h.zarr",
        grid=NO_MASK,
        zoom=0.01,
        max_tiles=20,
    )
    try:
        while True:
            next(gen)
    except StopIteration as stop:
        res = stop.value
    assert res.n_computed == 5  # max_tiles // 4 when tiles are drawn < 8 screen px


def test_saliency_layer_data(slide, model, tmp_path) -> None:
    from napari.layers import Layer

    from napari_xai.core.layers.saliency import saliency_layer

    res = explain_slide(
        slide,
        model,
        store=tmp_path / "h.zarr",
        spec=ExplainSpec(method="saliency"),
        grid=NO_MASK,
        map_px=32,
    )
    data, kwargs, kind = saliency_layer(res)
    assert kind == "image" and kwargs["name"] == "pyramid saliency [saliency, predicted]"
    layer = Layer.create(data, kwargs, kind)
    assert layer.multiscale
    # pixel edges line up with the slide's (level-0 pixel (0, 0) spans -0.5..0.5)
    ext = layer.extent.world  # centres of the first and last map pixels
    ds = res.scale_rc[0]
    np.testing.assert_allclose(ext[0] - ds / 2, [-0.5, -0.5])
    assert np.all(np.abs(ext[1] + ds / 2 - (np.array(slide.info.shape_rc) - 0.5)) < ds)
    assert layer.colormap.name == "inferno"
    assert kwargs["contrast_limits"][1] > 0


def test_cli_explain(small_pyramid, tmp_path, capsys) -> None:
    from napari_xai.cli import main

    code = main(
        [
            "explain",
            str(small_pyramid),
            "--out",
            str(tmp_path),
            "--method",
            "saliency",
            "--target",
            "tumour",
            "--view",
            "0",
            "0",
            "300",
            "300",
            "--quiet",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "saliency/saliency/tumour" in out
    assert (tmp_path / "pyramid" / "heatmaps.zarr").is_dir()
    whole = ["explain", str(small_pyramid), "--out", str(tmp_path), "--method", "saliency",
             "--target", "tumour", "--quiet"]  # fmt: skip
    assert main(whole) == 0
    first = capsys.readouterr().out
    assert " tiles computed, " in first
    n_in_map = first.split(", ")[-1].split(" in the map")[0]  # e.g. "36/36"
    assert main(whole) == 0  # the same again: the folder's complete map is kept
    again = capsys.readouterr().out
    assert f"saliency/saliency/tumour: kept (same method and options), {n_in_map} in" in again
    code = main(
        [
            "explain",
            str(small_pyramid),
            "--out",
            str(tmp_path),
            "--method",
            "grad_cam",
            "--target",
            "nope",
            "--quiet",
        ]
    )
    assert code == 1 and "unknown class" in capsys.readouterr().err


def test_cancel_keeps_done_tiles_and_resumes(slide, model, tmp_path) -> None:
    from napari_xai.core.attribution.whole_slide import iter_explain_slide

    store = tmp_path / "h.zarr"
    gen = iter_explain_slide(slide, model, store=store, grid=NO_MASK, run=BATCH_8)
    first = next(gen)
    next(gen)
    gen.close()  # cancel: the in-flight write completes
    assert first.n_done == 8
    res = explain_slide(slide, model, store=store, grid=NO_MASK, run=BATCH_8)
    assert res.n_cached == 16 and res.n_computed == res.n_tiles - 16 and res.complete


def test_write_to_result_folder(slide, model, tmp_path) -> None:
    from napari_xai.core.attribution.whole_slide import write_to_result
    from napari_xai.core.results import ResultWriter, list_heatmaps

    res = explain_slide(
        slide, model, store=tmp_path / "cache.zarr", spec=ExplainSpec(target="b"), grid=NO_MASK
    )
    with ResultWriter(tmp_path / "out" / "pyramid") as writer:
        key = write_to_result(writer, res)
        writer.commit({"slide": "pyramid"})
    assert key == "saliency/grad_cam/b"
    (info,) = list_heatmaps(tmp_path / "out" / "pyramid" / "heatmaps.zarr")
    assert info.key == key and info.scales[0] == res.scale_rc
    copied = np.asarray(zarr.open_group(str(tmp_path / "out/pyramid/heatmaps.zarr"))[f"{key}/0"])
    original = np.asarray(zarr.open_group(str(tmp_path / "cache.zarr"))[f"{res.key}/0"])
    np.testing.assert_array_equal(copied, original)
