"""The result folder: atomic writing, completeness checks, reading back (issue 7)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd  # noqa: TID253
import pytest

from napari_xai.core import results as R

MODEL_HASH = "m" * 64
PARAMS = {"score": {"overlap": 0.0}, "mpp": None, "attribution": None, "audit": False}


def _tiles(n: int = 6) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(3), size=n).astype(np.float32)
    names = ["background", "normal", "tumour"]
    df = pd.DataFrame(
        {
            "row": np.arange(n, dtype=np.int64) // 3 * 64,
            "col": np.arange(n, dtype=np.int64) % 3 * 64,
            "height": np.full(n, 64, np.int64),
            "width": np.full(n, 64, np.int64),
            "grid_row": np.arange(n) // 3,
            "grid_col": np.arange(n) % 3,
            "tissue_fraction": np.ones(n, np.float32),
            **{f"prob_{c}": p[:, k] for k, c in enumerate(names)},
            "pred_class": [names[i] for i in p.argmax(1)],
            "pred_index": p.argmax(1),
            "confidence": p.max(1),
            "entropy": np.zeros(n, np.float32),
            "flags": [""] * n,
        }
    )
    df.attrs = {"class_names": names, "stride0": 64, "tile_size0": 64, "grid_shape": (2, 3)}
    return df


def _manifest(slide: Path, params: dict = PARAMS, model_hash: str = MODEL_HASH) -> dict:
    return {
        "slide_id": slide.stem,
        "slide": R.slide_identity(slide),
        "model": {
            "sha256": model_hash,
            "card": {"class_names": ["background", "normal", "tumour"]},
        },
        "params": params,
        "params_sha256": R.hash_params(params),
        "versions": R.package_versions(),
        "timings": {"total_s": 0.1},
        "summary": {"score": 0.5},
    }


@pytest.fixture
def slide(tmp_path: Path) -> Path:
    p = tmp_path / "slide.tif"
    p.write_bytes(b"II*\x00" + bytes(range(256)) * 10)
    return p


def _write(folder: Path, slide: Path, **kw) -> Path:
    with R.ResultWriter(folder) as w:
        w.write_tiles(_tiles())
        prob = np.arange(6, dtype=np.float32).reshape(2, 3) / 6
        w.write_heatmap(
            "probabilities", "tumour", prob, scale_rc=(64, 64), translate_rc=(31.5, 31.5)
        )
        w.write_annotations({"type": "FeatureCollection", "features": []})
        w.write_audit({"attention_on_artefacts": 0.1})
        return w.commit(_manifest(slide, **kw))


def test_hash_params_is_canonical() -> None:
    a = {"b": (1, 2), "a": Path("/x"), "c": {"z": 1, "y": None}}
    b = {"c": {"y": None, "z": 1}, "a": "/x", "b": [1, 2]}
    assert R.hash_params(a) == R.hash_params(b)
    assert R.hash_params(a) != R.hash_params({**b, "b": [2, 1]})


def test_slide_identity_hashes_only_the_header(tmp_path: Path) -> None:
    p = tmp_path / "big.bin"
    head = os.urandom(R.HEADER_BYTES)
    p.write_bytes(head + b"A" * 1000)
    ident = R.slide_identity(p)
    assert ident["size"] == R.HEADER_BYTES + 1000
    p.write_bytes(head + b"B" * 1000)  # same size, same header: same identity
    assert R.slide_identity(p)["header_sha256"] == ident["header_sha256"]
    with pytest.raises(FileNotFoundError, match="missing.svs"):
        R.slide_identity(tmp_path / "missing.svs")


def test_write_then_load_roundtrip(tmp_path: Path, slide: Path) -> None:
    folder = _write(tmp_path / "out" / "slide", slide)
    assert sorted(p.name for p in folder.iterdir()) == [
        "annotations.geojson",
        "audit.json",
        "heatmaps.zarr",
        "manifest.json",
        "tiles.parquet",
    ]
    # nothing temporary left next to it
    assert [p.name for p in folder.parent.iterdir()] == ["slide"]
    res = R.load_result(folder / "manifest.json")
    assert res.folder == folder
    pd.testing.assert_frame_equal(res.tiles, _tiles())
    assert res.tiles.attrs["stride0"] == 64
    assert res.class_names == ("background", "normal", "tumour")
    assert res.slide_path == slide.resolve()
    assert res.audit == {"attention_on_artefacts": 0.1}
    assert res.annotations["type"] == "FeatureCollection"
    [hm] = res.heatmaps
    assert hm.key == "probabilities/tumour" and hm.kind == "probabilities"
    assert hm.scales[0] == (64.0, 64.0) and hm.translates[0] == (31.5, 31.5)
    levels = res.heatmap_levels(hm.key)
    np.testing.assert_allclose(levels[0].compute(), np.arange(6).reshape(2, 3) / 6, rtol=1e-6)
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["format"] == R.FORMAT_NAME
    assert set(manifest["files"]) == {"tiles", "heatmaps", "annotations", "audit"}


def test_multiscale_levels_stay_aligned(tmp_path: Path) -> None:
    import zarr

    data = np.random.default_rng(1).random((37, 50)).astype(np.float32)
    data[0, 0] = np.nan
    grp = zarr.open_group(str(tmp_path / "m.zarr"), mode="w").require_group("probabilities/x")
    n = R.write_multiscale(
        grp, data, scale_rc=(10, 10), translate_rc=(4.5, 4.5), min_size=10, chunk_size=16
    )
    assert n == 4  # 37x50 -> 18x25 -> 9x12 -> 4x6
    [info] = R.list_heatmaps(tmp_path / "m.zarr")
    assert [grp[p].shape for p in ("0", "1", "2", "3")] == [(37, 50), (18, 25), (9, 12), (4, 6)]
    # level 1 pixel (0, 0) pools level-0 pixels (0..1, 0..1): centre (0.5, 0.5) in level-0 map
    # pixels = 4.5 + 10 * 0.5 in world
    assert info.key == "probabilities/x"
    assert info.scales[1] == (20.0, 20.0) and info.translates[1] == (9.5, 9.5)
    assert info.scales[2] == (40.0, 40.0) and info.translates[2] == (19.5, 19.5)
    lvl1 = grp["1"][:]
    # NaN-aware mean: the NaN pixel does not poison its block
    np.testing.assert_allclose(lvl1[0, 0], np.nanmean(data[:2, :2]), rtol=1e-6)
    np.testing.assert_allclose(lvl1[3, 4], data[6:8, 8:10].mean(), rtol=1e-6)


def test_crash_before_commit_leaves_no_result(tmp_path: Path, slide: Path) -> None:
    folder = tmp_path / "out" / "slide"
    with pytest.raises(RuntimeError, match="boom"):
        with R.ResultWriter(folder) as w:
            w.write_tiles(_tiles())
            raise RuntimeError("boom")
    assert not folder.exists()
    assert list(folder.parent.iterdir()) == []  # temporary folder removed
    assert R.check_result(folder, PARAMS, MODEL_HASH) is not None


def test_killed_writer_leftovers_are_invisible_and_cleaned(tmp_path: Path, slide: Path) -> None:
    out = tmp_path / "out"
    w = R.ResultWriter(out / "slide").__enter__()  # "killed": never committed nor aborted
    w.write_tiles(_tiles())
    assert R.check_result(out / "slide", PARAMS, MODEL_HASH) is not None
    assert list(R.iter_result_folders(out)) == []
    assert R.clean_stale_temporaries(out) == 1
    assert list(out.iterdir()) == []


def test_commit_replaces_an_older_result(tmp_path: Path, slide: Path) -> None:
    folder = _write(tmp_path / "slide", slide, params={**PARAMS, "audit": True})
    old = R.read_manifest(folder)["written"]
    _write(tmp_path / "slide", slide)
    assert R.read_manifest(folder)["written"] != old
    assert R.check_result(folder, PARAMS, MODEL_HASH) is None
    assert [p.name for p in tmp_path.iterdir() if p.name != "slide.tif"] == ["slide"]


def test_check_result_detects_stale_and_partial(tmp_path: Path, slide: Path) -> None:
    folder = _write(tmp_path / "slide-res", slide)
    assert R.check_result(folder, PARAMS, MODEL_HASH, slide_path=slide) is None
    assert R.check_result(folder, dict(reversed(list(PARAMS.items()))), MODEL_HASH) is None
    assert (
        R.check_result(folder, {**PARAMS, "audit": True}, MODEL_HASH) is not None
    )  # other params
    assert R.check_result(folder, PARAMS, "x" * 64) is not None  # other model
    assert R.check_result(tmp_path / "nothing", PARAMS, MODEL_HASH) is not None  # missing
    slide.write_bytes(b"II*\x00changed")  # the slide file changed
    assert R.check_result(folder, PARAMS, MODEL_HASH, slide_path=slide) is not None
    (folder / "tiles.parquet").unlink()  # partial: a listed file is gone
    assert R.check_result(folder, PARAMS, MODEL_HASH) is not None
    (folder / "manifest.json").write_text("{not json")
    assert R.check_result(folder, PARAMS, MODEL_HASH) is not None
    with pytest.raises(ValueError, match="not valid JSON"):
        R.load_result(folder)


def test_load_result_errors_name_the_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nope"):
        R.load_result(tmp_path / "nope")
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "manifest.json").write_text(json.dumps({"format": "other"}))
    with pytest.raises(ValueError, match="not a napari-xai result manifest"):
        R.load_result(tmp_path / "x")


def test_saliency_needs_a_method(tmp_path: Path) -> None:
    with R.ResultWriter(tmp_path / "s") as w:
        with pytest.raises(ValueError, match="method"):
            w.write_heatmap(
                "saliency", "tumour", np.zeros((2, 2)), scale_rc=(1, 1), translate_rc=(0, 0)
            )
        key = w.write_heatmap(
            "saliency",
            "tumour/x",
            np.ones((4, 4)),
            method="grad cam",
            scale_rc=(16, 16),
            translate_rc=(7.5, 7.5),
        )
        assert key == "saliency/grad_cam/tumour_x"


def test_multiscale_from_dask_equals_numpy(tmp_path: Path) -> None:
    import dask.array as da
    import zarr

    data = np.random.default_rng(0).random((101, 77)).astype(np.float32)
    data[5:9, 7:20] = np.nan
    g1 = zarr.open_group(str(tmp_path / "a.zarr"), mode="w")
    g2 = zarr.open_group(str(tmp_path / "b.zarr"), mode="w")
    n1 = R.write_multiscale(
        g1, data, scale_rc=(1, 1), translate_rc=(0, 0), min_size=16, chunk_size=32
    )
    n2 = R.write_multiscale(
        g2,
        da.from_array(data, chunks=40),
        scale_rc=(1, 1),
        translate_rc=(0, 0),
        min_size=16,
        chunk_size=32,
    )
    assert n1 == n2 == 4
    for k in range(n1):
        np.testing.assert_allclose(g1[str(k)][:], g2[str(k)][:], rtol=1e-6, equal_nan=True)
    assert g1.attrs.asdict() == g2.attrs.asdict()
