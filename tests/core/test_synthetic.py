"""Synthetic slides: file layout read back by tiffslide, determinism, ground truth, patches."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
import tiffslide

from napari_xai.demo.synthetic import (
    PATCH_KINDS,
    SyntheticSlide,
    SyntheticTruth,
    render_patch,
    write_synthetic_slide,
)

SHAPE_RC = (2048, 2560)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SyntheticTruth]:
    path = tmp_path_factory.mktemp("synthetic") / "slide.svs"
    calls: list[tuple[int, int]] = []
    truth = write_synthetic_slide(
        path, shape_rc=SHAPE_RC, seed=3, progress=lambda d, t: calls.append((d, t))
    )
    assert calls and calls[-1][0] == calls[-1][1], "progress must reach the total"
    return path, truth


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_tiffslide_reads_size_levels_mpp_and_vendor(written: tuple[Path, SyntheticTruth]) -> None:
    path, _ = written
    with tiffslide.TiffSlide(path) as ts:
        assert ts.dimensions == (SHAPE_RC[1], SHAPE_RC[0])  # (width, height)
        assert ts.level_count == 2
        assert ts.level_downsamples == pytest.approx((1.0, 4.0))
        assert ts.level_dimensions[1] == (SHAPE_RC[1] // 4, SHAPE_RC[0] // 4)
        assert ts.properties["tiffslide.vendor"] == "aperio"
        assert ts.properties["tiffslide.mpp-x"] == pytest.approx(0.5)
        assert ts.properties["tiffslide.mpp-y"] == pytest.approx(0.5)
        assert float(ts.properties["tiffslide.objective-power"]) == pytest.approx(20)
        # Aperio's associated images: thumbnail, label (with its dark text), macro
        assert set(ts.associated_images) == {"thumbnail", "label", "macro"}
        label = np.asarray(ts.associated_images["label"])[..., :3]
        assert label.shape[1] > 2 * label.shape[0]
        assert (label.min(axis=-1) < 80).mean() > 0.05 and np.median(label) > 230
    with tifffile.TiffFile(path) as tf:
        assert tf.is_svs
        tiled = [p for p in tf.pages if p.is_tiled]
        assert len(tiled) == 2
        for page in tiled:
            assert page.compression == tifffile.COMPRESSION.JPEG
            assert page.tilewidth == page.tilelength == 512
        assert tf.pages[0].description.startswith("Aperio Image Library")
        assert "|MPP = 0.5|AppMag = 20" in tf.pages[0].description.replace(
            "|AppMag = 20|MPP = 0.5", "|MPP = 0.5|AppMag = 20"
        )


def test_tiles_in_the_file_match_tiles_rendered_alone(
    written: tuple[Path, SyntheticTruth],
) -> None:
    path, _ = written
    slide = SyntheticSlide(SHAPE_RC, seed=3)
    with tiffslide.TiffSlide(path) as ts:
        for level, tile_rc in [(0, (1, 2)), (0, (2, 1)), (1, (0, 0))]:
            ds = int(ts.level_downsamples[level])
            r0, c0 = tile_rc[0] * 512, tile_rc[1] * 512
            h = min(512, ts.level_dimensions[level][1] - r0)
            w = min(512, ts.level_dimensions[level][0] - c0)
            got = np.asarray(ts.read_region((c0 * ds, r0 * ds), level, (w, h)))[..., :3]
            want = slide.render_tile(level, tile_rc)[:h, :w].astype(int)
            err = np.abs(got.astype(int) - want).mean()
            assert err < 6.0  # JPEG (quality 80, 4:2:0) only
            elsewhere = slide.render_tile(level, (tile_rc[0], tile_rc[1] + 1))[:h, :w]
            assert np.abs(got.astype(int) - elsewhere).mean() > 2 * err


def test_lower_level_is_rendered_consistently_with_level_0() -> None:
    # level 1 is rendered on its own, but must look like level 0 averaged 4 x 4
    slide = SyntheticSlide(SHAPE_RC, seed=3)
    low = slide.render_region((100, 150), (128, 160), level=1).astype(float)
    high = slide.render_region((400, 600), (512, 640), level=0).astype(float)
    high = high.reshape(128, 4, 160, 4, 3).mean(axis=(1, 3))
    assert np.abs(low - high).mean() < 6.0
    assert np.abs(low.mean(axis=(0, 1)) - high.mean(axis=(0, 1))).max() < 4.0


def test_same_seed_same_file_other_seed_other_pixels(
    written: tuple[Path, SyntheticTruth], tmp_path: Path
) -> None:
    path, _ = written
    again = tmp_path / path.name  # same name: the file name is in the description
    write_synthetic_slide(again, shape_rc=SHAPE_RC, seed=3, workers=1)
    assert _sha(again) == _sha(path)
    other = SyntheticSlide(SHAPE_RC, seed=4).render_region((0, 0), (512, 640), level=1)
    same = SyntheticSlide(SHAPE_RC, seed=3).render_region((0, 0), (512, 640), level=1)
    assert np.abs(other.astype(int) - same.astype(int)).mean() > 5


def test_truth_is_consistent_and_round_trips(written: tuple[Path, SyntheticTruth]) -> None:
    path, truth = written
    assert truth.path == path
    assert truth.downsample == 2  # smallest power of two with masks <= 2048 px
    assert truth.tissue.shape == (1024, 1280)
    assert 0.1 < truth.tissue.mean() < 0.6
    assert truth.tumour.any() and not (truth.tumour & ~truth.tissue).any()
    assert set(truth.artefacts) == {"pen", "marker", "ruler", "label"}
    for kind, mask in truth.artefacts.items():
        assert mask.any(), kind
    union = np.logical_or.reduce(list(truth.artefacts.values()))
    np.testing.assert_array_equal(union, truth.artefact)
    # the label, ruler and marker lie on bare glass
    for kind in ("label", "ruler", "marker"):
        assert not (truth.artefacts[kind] & truth.tissue).any(), kind
    loaded = SyntheticTruth.load(path)
    assert loaded.shape_rc == truth.shape_rc and loaded.downsample == truth.downsample
    for name in ("tissue", "tumour", "artefact"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(truth, name))
    for kind in truth.artefacts:
        np.testing.assert_array_equal(loaded.artefacts[kind], truth.artefacts[kind])


def test_truth_matches_the_pixels(written: tuple[Path, SyntheticTruth]) -> None:
    path, truth = written
    with tiffslide.TiffSlide(path) as ts:
        low = np.asarray(ts.read_region((0, 0), 1, ts.level_dimensions[1]))[..., :3]
    # truth at downsample 2 -> level 1 (downsample 4): subsample by 2
    tissue = truth.tissue[1::2, 1::2][: low.shape[0], : low.shape[1]]
    art = truth.artefact[1::2, 1::2][: low.shape[0], : low.shape[1]]
    grey = low.astype(int).sum(axis=-1) / 3
    assert grey[~tissue & ~art].mean() > 235  # glass is near white
    assert grey[tissue & ~art].mean() < 200  # tissue is stained
    sat = low.max(axis=-1).astype(int) - low.min(axis=-1)
    assert np.median(sat[tissue & ~art]) > 40


def test_no_tumour_no_artefacts() -> None:
    truth = SyntheticSlide((1024, 1024), seed=1, tumour=False, artefacts=()).truth()
    assert truth.tissue.any()
    assert not truth.tumour.any() and not truth.artefact.any() and not truth.artefacts


def test_bad_parameters_are_rejected() -> None:
    with pytest.raises(ValueError, match="artefact"):
        SyntheticSlide((1024, 1024), artefacts=("smudge",))
    with pytest.raises(ValueError, match="tile_size"):
        SyntheticSlide((1024, 1024), tile_size=500)
    with pytest.raises(ValueError, match="too small"):
        SyntheticSlide((10, 1024))
    with pytest.raises(ValueError, match="kind"):
        render_patch("fat", rng=np.random.default_rng(0))


@pytest.mark.parametrize("kind", PATCH_KINDS)
def test_render_patch_shape_and_determinism(kind: str) -> None:
    a = render_patch(kind, size=96, rng=np.random.default_rng(7))
    b = render_patch(kind, size=96, rng=np.random.default_rng(7))
    c = render_patch(kind, size=96, rng=np.random.default_rng(8))
    assert a.shape == (96, 96, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_patch_kinds_look_different() -> None:
    rng = np.random.default_rng(0)
    mean = {k: np.mean([render_patch(k, rng=rng).mean() for _ in range(6)]) for k in PATCH_KINDS}
    assert mean["background"] > 235
    assert mean["tumour"] < mean["normal"] < mean["background"]
    # ink is darker or greener/bluer than the stain: some pixels with G >= R (H&E has R > G)
    for kind in ("pen", "marker"):
        inked = 0
        for _ in range(6):
            p = render_patch(kind, rng=rng).astype(int)
            dark_or_ink = (
                (p.sum(-1) < 250)
                | (p[..., 1] > p[..., 0] + 15)
                | ((p[..., 2] > p[..., 0] + 40) & (p[..., 1] < 120))
            )
            inked += dark_or_ink.mean() > 0.02
        assert inked >= 5, kind


def test_cli_writes_a_slide_and_its_truth(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from napari_xai.cli import main

    out = tmp_path / "cli.svs"
    code = main(["synthetic", str(out), "--shape", "512", "640", "--seed", "3",
                 "--artefacts", "pen,ruler", "--no-tumour"])  # fmt: skip
    assert code == 0
    assert "tissue" in capsys.readouterr().out
    truth = SyntheticTruth.load(out)
    assert set(truth.artefacts) == {"pen", "ruler"} and not truth.tumour.any()
    with tiffslide.TiffSlide(out) as ts:
        assert ts.dimensions == (640, 512)
