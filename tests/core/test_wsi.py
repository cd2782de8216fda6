"""Slide access: real slides, metadata, regions, laziness, threads, bad input."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from napari_xai.core.wsi import SlideError, open_slide

from ..conftest import SHARED_DATA, real_slides, write_pyramid_tiff

# What ../shared/data/README.md says of each real slide: (rows, cols), levels, mpp.
EXPECTED = {
    "CMU-1-Small-Region.svs": ((2967, 2220), 1, 0.499),
    "OS-1-detail.ome.tif": ((1101, 1101), 1, 0.227),
    "test3-DAPI-2.ndpi": ((4864, 3968), 4, 0.228),
    "small.svs": ((16, 16), 1, 0.499),
    "boxes.tiff": ((250, 300), 4, None),
}


@pytest.mark.parametrize("path", real_slides(), ids=lambda p: p.name)
def test_real_slides_match_their_documented_size_levels_and_mpp(path: Path) -> None:
    shape_rc, n_levels, mpp = EXPECTED[path.name]
    with open_slide(path) as slide:
        assert slide.info.shape_rc == shape_rc
        assert slide.info.n_levels == n_levels
        if mpp is None:
            assert slide.info.mpp is None
            assert slide.info.mpp_source.startswith("unknown")
        else:
            assert slide.info.mpp == pytest.approx(mpp, abs=1e-3)
        level0 = slide.levels[0]
        assert level0.shape[:2] == shape_rc
        assert level0.dtype == np.uint8


def test_odd_downsamples_are_kept(shared_data: Path) -> None:
    with open_slide(shared_data / "slides" / "boxes.tiff") as slide:
        ds = slide.info.level_downsamples
        assert ds[2] == pytest.approx(4.016, abs=1e-3)
        assert ds[3] == pytest.approx(8.086, abs=1e-3)
        assert slide.best_level_for_downsample(4.0) == 1
        assert slide.best_level_for_downsample(4.02) == 2
        assert slide.best_level_for_downsample(100) == 3


def test_user_mpp_overrides_missing_mpp(shared_data: Path) -> None:
    with open_slide(shared_data / "slides" / "boxes.tiff", mpp=0.25) as slide:
        assert slide.info.mpp == 0.25
        assert slide.info.mpp_source == "user"


def test_read_region_matches_level_array_and_pads_outside(small_pyramid: Path) -> None:
    with open_slide(small_pyramid) as slide:
        level1 = slide.levels[1]
        region = slide.read_region((200, 400), (64, 96), level=1)
        expected = np.asarray(level1[100:164, 200:296])
        np.testing.assert_array_equal(region, expected)
        # Half outside the bottom-right corner: the outside part is white.
        rows, cols = slide.info.shape_rc
        edge = slide.read_region((rows - 10, cols - 10), (20, 20))
        assert (edge[10:, :] == 255).all() and (edge[:, 10:] == 255).all()
        assert not (edge[:10, :10] == 255).all()


def test_dask_chunks_follow_file_tiles(small_pyramid: Path, shared_data: Path) -> None:
    with open_slide(small_pyramid) as slide:
        assert slide.levels[0].chunksize == (256, 256, 3)
    # NDPI stores 8-row strips: they are merged into reasonable dask chunks.
    with open_slide(shared_data / "slides" / "test3-DAPI-2.ndpi") as slide:
        assert slide.levels[0].chunksize[0] >= 256


def test_thumbnail_is_bounded_and_reports_its_downsample(small_pyramid: Path) -> None:
    with open_slide(small_pyramid) as slide:
        thumb, ds = slide.thumbnail(max_size=500)
        assert max(thumb.shape[:2]) <= 500
        assert thumb.dtype == np.uint8 and thumb.shape[2] == 3
        assert ds == pytest.approx(slide.info.shape_rc[0] / thumb.shape[0])
        # Same colours as the pyramid at that scale.
        lvl = np.asarray(slide.levels[2]).astype(float).mean(axis=(0, 1))
        assert np.allclose(thumb.astype(float).mean(axis=(0, 1)), lvl, atol=3)


@pytest.mark.parametrize("factor", [2, 3, 16, 17])
def test_block_mean_is_the_float_mean_rounded_down(factor: int) -> None:
    """The thumbnail's integer block mean equals numpy's float mean, truncated to uint8."""
    from napari_xai.core.wsi import _block_mean

    img = np.random.default_rng(factor).integers(0, 256, (5 * factor + 3, 7 * factor, 3), np.uint8)
    rows, cols = img.shape[0] // factor, img.shape[1] // factor
    want = img[: rows * factor, : cols * factor].reshape(rows, factor, cols, factor, 3)
    want = want.mean(axis=(1, 3)).astype(np.uint8)
    np.testing.assert_array_equal(_block_mean(img, factor), want)
    bright = np.full((factor * 2, factor * 2, 3), 255, np.uint8)  # the largest sums
    assert (_block_mean(bright, factor) == 255).all()


def test_reading_a_region_decodes_only_its_tiles(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Laziness: computing one view decodes only the file tiles under it."""
    from tifffile.zarr import ZarrTiffStore

    path = write_pyramid_tiff(tmp_path / "big.svs", shape_rc=(4096, 4096), tile=256, levels=2)
    decoded: list[str] = []
    original = ZarrTiffStore.get

    async def counting_get(self, key, prototype, byte_range=None):  # type: ignore[no-untyped-def]
        value = await original(self, key, prototype, byte_range)
        if value is not None and not key.endswith((".zarray", ".zgroup", ".zattrs")):
            decoded.append(key)
        return value

    monkeypatch.setattr(ZarrTiffStore, "get", counting_get)
    with open_slide(path) as slide:
        assert decoded == []  # opening decodes nothing
        view = slide.levels[0][1000:1500, 2100:2600].compute()
        assert view.shape == (500, 500, 3)
    # rows 1000..1499 touch tiles 3..5, cols 2100..2599 touch tiles 8..10: 3 x 3 tiles.
    assert len(decoded) == 9
    assert len(set(decoded)) == 9


def test_concurrent_reads_from_threads_agree_with_serial_reads(small_pyramid: Path) -> None:
    """tiffslide issue #14: reads from many threads must not corrupt each other."""
    script = textwrap.dedent(
        f"""
        import numpy as np
        from multiprocessing.pool import ThreadPool
        from napari_xai.core.wsi import open_slide

        slide = open_slide({str(small_pyramid)!r})
        rng = np.random.default_rng(0)
        jobs = [(int(r), int(c), int(lv)) for r, c, lv in zip(
            rng.integers(0, 1800, 64), rng.integers(0, 2800, 64), rng.integers(0, 3, 64))]
        def read(job):
            r, c, lv = job
            return slide.read_region((r, c), (200, 200), level=lv)
        def read_dask(job):
            r, c, lv = job
            ds = int(2 ** lv)
            return np.asarray(slide.levels[lv][r // ds: r // ds + 50, c // ds: c // ds + 50])
        serial = [read(j) for j in jobs]
        serial_dask = [read_dask(j) for j in jobs]
        with ThreadPool(8) as pool:
            for _ in range(3):
                assert all(np.array_equal(a, b) for a, b in zip(serial, pool.map(read, jobs)))
                assert all(np.array_equal(a, b)
                           for a, b in zip(serial_dask, pool.map(read_dask, jobs)))
        print("OK")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "OK" in result.stdout


# -- bad input ---------------------------------------------------------------------


def _expect_error(path: Path, *words: str) -> str:
    with pytest.raises(SlideError) as info:
        open_slide(path)
    message = str(info.value)
    assert str(path) in message
    for word in words:
        assert word.lower() in message.lower(), message
    return message


def test_dicom_is_refused_clearly(shared_data: Path) -> None:
    _expect_error(shared_data / "slides" / "bad" / "boxes_0.dcm", "DICOM", "not supported")


def test_4d_ome_series_is_refused_clearly(shared_data: Path) -> None:
    _expect_error(shared_data / "slides" / "bad" / "4D-series.ome.tiff", "not a 2-D slide")


def test_empty_missing_and_renamed_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.svs"
    empty.write_bytes(b"")
    _expect_error(empty, "empty file")
    _expect_error(tmp_path / "nope.svs", "not found")
    png = tmp_path / "photo.svs"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    _expect_error(png, "PNG", "renamed")
    text = tmp_path / "notes.tif"
    text.write_text("hello, not a slide")
    _expect_error(text, "not a TIFF")


def test_truncated_svs_is_refused_clearly(tmp_path: Path) -> None:
    SHARED = SHARED_DATA / "slides" / "CMU-1-Small-Region.svs"
    if not SHARED.exists():
        pytest.skip("real data absent")
    data = SHARED.read_bytes()
    cut = tmp_path / "cut.svs"
    cut.write_bytes(data[: len(data) // 2])
    _expect_error(cut, "truncated")


def test_huge_strip_tiff_is_refused_clearly(tmp_path: Path) -> None:
    import tifffile

    path = tmp_path / "strips.tif"
    # One 5000 x 5000 RGB strip: 71 MiB would have to be decoded for any region.
    tifffile.imwrite(
        path, np.zeros((5000, 5000, 3), np.uint8), rowsperstrip=5000, compression="zlib"
    )
    _expect_error(path, "not a tiled image", "MiB")


def test_copy_of_a_real_slide_under_another_name_opens(tmp_path: Path, shared_data: Path) -> None:
    copy = tmp_path / "renamed.tiff"
    shutil.copy(shared_data / "slides" / "CMU-1-Small-Region.svs", copy)
    with open_slide(copy) as slide:
        assert slide.info.shape_rc == (2967, 2220)


def test_every_opened_slide_gets_its_own_dask_names(tmp_path: Path) -> None:
    """napari caches chunks by task name, so two slides must never share one.

    Names built from ``id(slide)`` collided once a closed slide was collected:
    a freshly opened multichannel TIFF got another slide's cached chunks and
    dask failed with "could not broadcast (256,144) into (480,144)".
    """
    import gc

    import tifffile

    names = set()
    for k in range(20):
        path = tmp_path / f"s{k}.tif"
        tifffile.imwrite(path, np.full((64 + k, 80), k, np.uint8), tile=(16, 16))
        slide = open_slide(path)
        names.add(slide.levels[0].name)
        assert int(slide.levels[0][-1, -1].compute()) == k
        slide.close()
        del slide
        gc.collect()
    assert len(names) == 20
