"""Stitching tile maps into a multiscale zarr map: seams, geometry, resume."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

from napari_xai.core.stitch import StitchedMap, footprint, taper_window


def _grid(shape0, tile0, stride0):
    rows = np.arange(0, shape0[0], stride0)
    cols = np.arange(0, shape0[1], stride0)
    gr, gc = np.meshgrid(np.arange(len(rows)), np.arange(len(cols)), indexing="ij")
    return rows[gr.ravel()], cols[gc.ravel()], gr.ravel(), gc.ravel(), (len(rows), len(cols))


@pytest.mark.parametrize(
    ("tile0", "stride0", "downsample"),
    [(100, 100, 4.0), (100, 75, 4.0), (96, 64, 3.0), (90, 60, 7.3)],
)
def test_constant_attribution_has_no_seams(tmp_path, tile0, stride0, downsample) -> None:
    shape0 = (700, 530)
    rows, cols, gr, gc, gshape = _grid(shape0, tile0, stride0)
    smap = StitchedMap.open(
        tmp_path / "h.zarr",
        "saliency/test/c",
        shape0_rc=shape0,
        downsample=downsample,
        grid_shape=gshape,
        overlap0=tile0 - stride0,
        min_size=16,
    )
    maps = np.full((len(rows), 13, 13), 0.7, np.float32)  # odd tile-map size on purpose
    # in a few batches, in a shuffled order
    order = np.random.default_rng(0).permutation(len(rows))
    for part in np.array_split(order, 5):
        smap.add_tiles(
            maps[part], rows[part], cols[part], size0=tile0, grid_index=(gr[part], gc[part])
        )
    level0 = np.asarray(smap.levels[0][...])
    assert np.isfinite(level0).all(), "gaps between tiles"
    np.testing.assert_allclose(level0, 0.7, rtol=1e-5)
    # the horizontal profile across tile borders is flat
    assert np.ptp(level0[level0.shape[0] // 2]) < 1e-5
    assert smap.n_levels > 1
    for lvl in smap.levels[1:]:
        np.testing.assert_allclose(np.asarray(lvl[...]), 0.7, rtol=1e-5)
    assert smap.done.all()


def test_overlap_blend_is_between_neighbours(tmp_path) -> None:
    smap = StitchedMap.open(
        tmp_path / "h.zarr",
        "k",
        shape0_rc=(100, 150),
        downsample=1.0,
        grid_shape=(1, 2),
        overlap0=50,
    )
    maps = np.stack([np.zeros((100, 100), np.float32), np.ones((100, 100), np.float32)])
    smap.add_tiles(maps, [0, 0], [0, 50], size0=100, grid_index=([0, 0], [0, 1]))
    row = np.asarray(smap.levels[0][50])
    assert row[:50].max() < 0.05 and row[100:].min() > 0.95
    # cross-fade: monotonic across the overlap, no jump
    assert np.all(np.diff(row[50:100]) >= -1e-6)
    assert np.abs(np.diff(row)).max() < 0.1


def test_multiscales_attrs_and_geometry(tmp_path) -> None:
    smap = StitchedMap.open(
        tmp_path / "h.zarr",
        "saliency/grad_cam/tumour",
        shape0_rc=(1000, 600),
        downsample=4.0,
        grid_shape=(10, 6),
        name="grad_cam/tumour",
        attrs={"kind": "saliency"},
        min_size=64,
    )
    assert smap.shape_rc == (250, 150)
    ms = zarr.open_group(str(tmp_path / "h.zarr"))["saliency/grad_cam/tumour"].attrs[
        "multiscales"
    ][0]
    scales = [d["coordinateTransformations"][0]["scale"] for d in ms["datasets"]]
    translations = [d["coordinateTransformations"][1]["translation"] for d in ms["datasets"]]
    assert scales[0] == [4.0, 4.0] and scales[1] == [8.0, 8.0]
    assert translations[0] == [1.5, 1.5]
    # untouched map is NaN (not explained), accumulators are zero
    assert np.isnan(np.asarray(smap.levels[0][:5, :5])).all()
    # compatible with the result-folder reader
    from napari_xai.core.results import list_heatmaps

    infos = list_heatmaps(tmp_path / "h.zarr")
    assert [i.key for i in infos] == ["saliency/grad_cam/tumour"]
    assert infos[0].scales[0] == (4.0, 4.0)


def test_resume_and_reset(tmp_path) -> None:
    kw = dict(shape0_rc=(200, 200), downsample=2.0, grid_shape=(2, 2), params={"method": "a"})
    smap = StitchedMap.open(tmp_path / "h.zarr", "k", **kw)
    smap.add_tiles(np.ones((1, 8, 8)), [0], [0], size0=100, grid_index=([0], [0]))
    again = StitchedMap.open(tmp_path / "h.zarr", "k", **kw)
    assert again.done[0, 0] and again.n_done == 1
    assert np.nanmax(np.asarray(again.levels[0][...])) == pytest.approx(1.0)
    other = StitchedMap.open(tmp_path / "h.zarr", "k", **{**kw, "params": {"method": "b"}})
    assert other.n_done == 0
    assert np.isnan(np.asarray(other.levels[0][...])).all()


def test_footprint_and_window() -> None:
    # neighbours touch exactly in map pixels whatever the downsample
    for ds in (1.0, 3.0, 4.016, 7.3):
        a = footprint(0, 90, ds)
        b = footprint(90, 90, ds)
        assert a[1] == b[0]
    w = taper_window(10, 3)
    assert w.min() > 0 and w.max() == 1.0 and np.allclose(w, w[::-1])
    assert (taper_window(7, 0) == 1).all()


@pytest.mark.parametrize(
    "shape, size",
    [((7, 7), (3, 3)), ((224, 224), (37, 37)), ((14, 14), (224, 224)), ((7, 9), (30, 5)),
     ((56, 56), (17, 23)), ((5, 5), (1, 1)), ((3, 4), (7, 7))],
)  # fmt: skip
def test_resize_matches_torch_area_and_bilinear(shape, size) -> None:
    """Stitching resizes without torch, with torch's own weights (the reference)."""
    torch = pytest.importorskip("torch")
    from napari_xai.core.stitch import _resize

    maps = np.random.default_rng(0).random((2, *shape)).astype(np.float32)
    t = torch.from_numpy(maps)[:, None]
    if size[0] <= shape[0] and size[1] <= shape[1]:
        ref = torch.nn.functional.adaptive_avg_pool2d(t, size)
    else:
        ref = torch.nn.functional.interpolate(t, size=size, mode="bilinear", align_corners=False)
    out = _resize(maps, size)
    assert out.dtype == np.float32 and out.shape == (2, *size)
    np.testing.assert_allclose(out, ref[:, 0].numpy(), atol=1e-6)


def test_limits_are_stored_with_the_map_and_equal_the_data(tmp_path) -> None:
    """Every write stores the map's own contrast limits: a viewer never reads the map for them."""
    from napari_xai.core.layers.saliency import stitched_layer
    from napari_xai.core.results import LIMITS_ATTR

    rows, cols, gr, gc, grid = _grid((800, 800), 100, 100)
    smap = StitchedMap.open(tmp_path / "h.zarr", "k", shape0_rc=(800, 800), downsample=1.0,
                            grid_shape=grid, min_size=64)  # fmt: skip
    rng = np.random.default_rng(1)
    maps = rng.normal(size=(len(rows), 10, 10)).astype(np.float32)  # signed (IG-like)
    for part in (slice(0, 20), slice(20, None)):  # the limits follow the map as it fills
        smap.add_tiles(maps[part], rows[part], cols[part], size0=100,
                       grid_index=(gr[part], gc[part]))  # fmt: skip
        coarse = np.asarray(zarr.open_group(str(tmp_path / "h.zarr"))["k"][str(smap.n_levels - 1)])
        finite = coarse[np.isfinite(coarse)]
        expected = (min(0.0, float(finite.min())), float(np.percentile(finite, 99.5)))
        group = zarr.open_group(str(tmp_path / "h.zarr"), mode="r")["k"]
        assert group.attrs[LIMITS_ATTR] == pytest.approx(expected)
        assert expected[0] < 0 < expected[1]
        assert smap.value_limits() == pytest.approx(expected)
        layer = stitched_layer(tmp_path / "h.zarr", "k", name="s")
        assert layer[1]["contrast_limits"] == pytest.approx(expected)


def test_attribution_limits_edge_cases() -> None:
    from napari_xai.core.results import attribution_limits

    assert attribution_limits(np.full((4, 4), np.nan)) == (0.0, 1.0)  # nothing computed
    assert attribution_limits(np.zeros((4, 4))) == (0.0, 1.0)  # flat
    sparse = np.zeros((40, 40), np.float32)
    sparse[3, 4] = 0.25  # the 99.5th percentile is 0: the largest value is the top
    assert attribution_limits(sparse) == pytest.approx((0.0, 0.25))
    assert attribution_limits(np.array([[-2.0, 1.0], [np.nan, 0.5]])) == pytest.approx(
        (-2.0, float(np.percentile([-2.0, 1.0, 0.5], 99.5)))
    )
