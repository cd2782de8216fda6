"""Opening a result folder hands napari lazy maps: the store is read when drawn, not before.

The truth is the zarr store itself, read back with zarr: every probability and
saliency layer equals it (unscored cells 0 in probability maps), and the layers
built when the folder was opened show what the store holds when they are drawn,
even after the store was written again.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.core.test_results import _manifest, _tiles

CLASSES = ("background", "normal", "tumour")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    from napari_xai.core import results as R

    slide = tmp_path / "slide.tif"
    slide.write_bytes(b"II*\x00" + bytes(range(256)) * 10)
    rng = np.random.default_rng(0)
    with R.ResultWriter(tmp_path / "out" / "slide") as w:
        w.write_tiles(_tiles())
        for cls in CLASSES:
            prob = rng.random((2, 3)).astype(np.float32)
            prob[0, 0] = np.nan  # an unscored cell
            w.write_heatmap("probabilities", cls, prob, scale_rc=(64, 64),
                            translate_rc=(31.5, 31.5))  # fmt: skip
        sal = rng.normal(size=(600, 700)).astype(np.float32)  # three levels (min_size 256)
        w.write_heatmap("saliency", "tumour", sal, scale_rc=(1, 1), translate_rc=(0, 0),
                        method="grad_cam")  # fmt: skip
        return w.commit(_manifest(slide))


def _data_limits(coarsest: np.ndarray) -> tuple[float, float]:
    """The map's own limits, from its values: 0 (or its lowest, when negative) to p99.5."""
    finite = coarsest[np.isfinite(coarsest)]
    return (min(0.0, float(finite.min())), float(np.percentile(finite, 99.5)))


class _Reads:
    """Chunk keys read from any zarr store (metadata documents are not chunks)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from zarr.storage import LocalStore

        self.keys: list[str] = []
        get = LocalStore.get

        async def counting(store: LocalStore, key: str, *args: object, **kw: object) -> object:
            if not key.endswith((".json", ".zattrs", ".zarray", ".zgroup", ".zmetadata")):
                self.keys.append(key)
            return await get(store, key, *args, **kw)

        monkeypatch.setattr(LocalStore, "get", counting)

    def under(self, group: str) -> list[str]:
        return [k for k in self.keys if k.startswith(group + "/")]


def test_opening_a_folder_reads_no_probability_chunks(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import zarr

    from napari_xai.core.layers.results import probability_layers, saliency_layers
    from napari_xai.core.results import load_result

    reads = _Reads(monkeypatch)
    result = load_result(folder)
    probs = probability_layers(result, "slide")
    sal = saliency_layers(result, "slide")
    assert len(probs) == len(CLASSES) and len(sal) == 1
    assert reads.under("probabilities") == []  # nothing read up front
    # saliency: its contrast limits were stored with it, nothing is read (GUI thread)
    (info,) = [h for h in result.heatmaps if h.kind == "saliency"]
    coarsest = info.paths[-1]
    assert len(info.paths) == 3
    assert all(k.startswith(f"{coarsest}/") for k in reads.under("saliency")), reads.under(
        "saliency"
    )
    assert reads.under("saliency") == []
    root = zarr.open_group(str(folder / "heatmaps.zarr"), mode="r")
    assert sal[0][1]["contrast_limits"] == pytest.approx(_data_limits(root[coarsest][...]))
    for data, kwargs, kind in probs:
        assert kind == "image" and hasattr(data, "dask"), kwargs["name"]  # lazy
        (hm,) = [h for h in result.heatmaps if h.key == kwargs["metadata"]["key"]]
        stored = np.asarray(root[hm.paths[0]][...])
        np.testing.assert_array_equal(np.asarray(data), np.nan_to_num(stored, nan=0.0))
    assert reads.under("probabilities")  # read when asked for, from the store
    data, kwargs, _ = sal[0]
    assert not kwargs["multiscale"] and hasattr(data, "dask")  # 700 px: one level, lazy
    np.testing.assert_array_equal(np.asarray(data), root[info.paths[0]][...])


def test_layers_opened_before_a_rewrite_show_the_new_store(folder: Path) -> None:
    """The layer reads the store when drawn: a map written after opening is what it shows."""
    import zarr

    from napari_xai.core.layers.results import probability_layers
    from napari_xai.core.results import load_result

    (data, kwargs, _), *_ = probability_layers(load_result(folder), "slide")
    (hm,) = [h for h in load_result(folder).heatmaps if h.key == kwargs["metadata"]["key"]]
    array = zarr.open_group(str(folder / "heatmaps.zarr"), mode="r+")[hm.paths[0]]
    new = np.full(array.shape, 0.25, np.float32)
    new[1, 2] = np.nan
    array[...] = new
    np.testing.assert_array_equal(np.asarray(data), np.nan_to_num(new, nan=0.0))
    # a second opening gets fresh task names: napari's chunk cache cannot serve the first
    (again, _, _), *_ = probability_layers(load_result(folder), "slide")
    assert again.name != data.name


def test_a_store_without_stored_limits_reads_its_coarsest_level(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A folder written before the limits were stored: the coarsest level gives them."""
    import zarr

    from napari_xai.core.layers.results import saliency_layers
    from napari_xai.core.results import LIMITS_ATTR, load_result

    root = zarr.open_group(str(folder / "heatmaps.zarr"), mode="r+")
    (info,) = [h for h in load_result(folder).heatmaps if h.kind == "saliency"]
    group = root[info.key]
    stored = group.attrs[LIMITS_ATTR]
    assert stored == pytest.approx(_data_limits(root[info.paths[-1]][...]))
    del group.attrs[LIMITS_ATTR]
    reads = _Reads(monkeypatch)
    (sal,) = saliency_layers(load_result(folder), "slide")
    assert sal[1]["contrast_limits"] == pytest.approx(stored)
    assert reads.under("saliency")  # read, and only its coarsest level
    assert all(k.startswith(f"{info.paths[-1]}/") for k in reads.under("saliency"))
