"""Hostile sizes: limits are checked before anything is planned or allocated."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import napari_xai
from napari_xai.core import limits
from napari_xai.core.limits import LimitError, check_mpp
from napari_xai.core.options import GridOptions, RunOptions
from napari_xai.core.wsi import SlideError, open_slide
from tests.conftest import write_pyramid_tiff
from tests.core.hostile_files import write_declared_tiff

BAD_MPP = [math.inf, -math.inf, math.nan, 0.0, -1.0, 1e-9, 1e9]


@pytest.fixture(scope="module")
def slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_pyramid_tiff(
        tmp_path_factory.mktemp("hostile") / "slide.svs", shape_rc=(512, 512), levels=1
    )


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(Path(napari_xai.__file__).parents[1])}


def test_declared_terapixel_tiff_is_refused_fast_and_small(tmp_path: Path) -> None:
    path = write_declared_tiff(tmp_path / "huge.tif")
    assert path.stat().st_size < 1_000_000
    code = (
        "import sys, time\n"
        "from napari_xai.core.wsi import open_slide, SlideError\n"
        # CPU seconds of this program: the refusal's own cost, whatever the machine's load
        "t = time.process_time()\n"
        "try:\n"
        "    open_slide(sys.argv[1])\n"
        "except SlideError as exc:\n"
        "    print('ERROR', exc)\n"
        "print('SECONDS', time.process_time() - t)\n"
        # VmHWM (peak RSS of this program's address space): ru_maxrss would
        # include the parent's peak, inherited through fork
        "hwm = [ln for ln in open('/proc/self/status') if ln.startswith('VmHWM')][0]\n"
        "print('RSS_MB', int(hwm.split()[1]) / 1024)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(path)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = dict(line.split(" ", 1) for line in proc.stdout.splitlines())
    assert out["ERROR"].startswith(f"{path}: slide declares 1000000 × 1000000 px")
    assert float(out["SECONDS"]) < 1.0
    assert float(out["RSS_MB"]) < 300
    assert proc.stderr == ""


def test_declared_terapixel_tiff_in_the_score_cli(tmp_path: Path) -> None:
    path = write_declared_tiff(tmp_path / "huge.tif")
    proc = subprocess.run(
        [sys.executable, "-m", "napari_xai", "score", str(path), "--model", "demo",
         "--out", str(tmp_path / "out")],
        env=_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error" in line]
    assert len(errors) == 1 and "Traceback" not in proc.stderr
    assert errors[0].startswith(f"napari-xai: error: {path}: slide declares 1000000 × 1000000")


def test_declared_size_within_limits_opens_lazily(tmp_path: Path) -> None:
    path = write_declared_tiff(tmp_path / "ok.tif", shape_rc=(8192, 8192))
    with open_slide(path, mpp=0.5) as s:
        assert s.info.shape_rc == (8192, 8192)


def test_limits_can_be_overridden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_declared_tiff(tmp_path / "wide.tif", shape_rc=(4096, 81920))
    monkeypatch.setattr(limits, "MAX_SLIDE_SIDE_PX", 50_000)
    with pytest.raises(SlideError, match="MAX_SLIDE_SIDE_PX"):
        open_slide(path)
    monkeypatch.setattr(limits, "MAX_SLIDE_SIDE_PX", 100_000)
    open_slide(path).close()


@pytest.mark.parametrize("mpp", BAD_MPP)
def test_bad_mpp_is_refused_naming_file_and_option(slide: Path, mpp: float) -> None:
    with pytest.raises(SlideError, match=rf"^{slide}: .*mpp"):
        open_slide(slide, mpp=mpp)
    with pytest.raises(ValueError, match="mpp"):
        GridOptions(mpp=mpp)
    with pytest.raises(LimitError, match=r"--mpp"):
        check_mpp(mpp, what="--mpp")


@pytest.mark.parametrize("mpp", ["inf", "1e-9", "nan", "0", "-2"])
def test_bad_mpp_in_the_score_cli(slide: Path, tmp_path: Path, mpp: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "napari_xai", "score", str(slide), "--model", "demo",
         "--mpp", mpp, "--out", str(tmp_path / "out")],
        env=_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode in (1, 2), proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert "Traceback" not in proc.stderr and "mpp" in lines[-1]
    assert not list((tmp_path / "out").glob("*/tiles.parquet"))


@pytest.mark.parametrize("size", [0, 10**6])
def test_bad_batch_size(size: int) -> None:
    with pytest.raises(ValueError, match="batch_size"):
        RunOptions(batch_size=size)


def _card(folder: Path, **change: object) -> Path:
    card = {
        "spec_version": "1.0",
        "architecture": "resnet34",
        "num_classes": 2,
        "class_names": ["a", "b"],
        "patch_size_pixels": 224,
        "spacing_um_px": 0.5,
        "transform": [
            {"name": "Resize", "arguments": {"size": 224}},
            {"name": "ToTensor"},
            {"name": "Normalize", "arguments": {"mean": [0.5] * 3, "std": [0.5] * 3}},
        ],
    }
    card.update(change)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.json"
    path.write_text(json.dumps(card))  # json writes inf as Infinity, as a careless tool does
    return path


BAD_CARDS = {
    "spacing_inf": ({"spacing_um_px": math.inf}, "spacing_um_px"),
    "spacing_tiny": ({"spacing_um_px": 1e-9}, "spacing_um_px"),
    "patch_huge": ({"patch_size_pixels": 200000}, "patch_size_pixels"),
    "resize_huge": (
        {
            "transform": [
                {"name": "Resize", "arguments": {"size": 100000}},
                {"name": "ToTensor"},
            ]
        },
        r"Resize\) size",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_CARDS))
def test_bad_card_values_fail_validation(tmp_path: Path, case: str) -> None:
    from napari_xai.cli import main
    from napari_xai.core.models.card import ModelCard, ModelCardError
    from napari_xai.core.models.wsinfer import WSInferConfigError, read_wsinfer_config

    change, field = BAD_CARDS[case]
    path = _card(tmp_path / case, **change)
    with pytest.raises(WSInferConfigError, match=rf"^{path}: invalid WSInfer config: .*{field}"):
        read_wsinfer_config(path)
    with pytest.raises(ModelCardError, match="exceeds the limit|outside|positive finite"):
        ModelCard.from_json(path)
    assert main(["wsinfer", "validate", str(path)]) == 1


def test_card_values_within_limits_validate(tmp_path: Path) -> None:
    from napari_xai.cli import main

    assert main(["wsinfer", "validate", str(_card(tmp_path / "ok"))]) == 0


@pytest.mark.parametrize("cut", [8, 16, 100, 400, 1000, 0.5])
def test_truncated_slide_says_truncated(slide: Path, tmp_path: Path, cut: float) -> None:
    data = slide.read_bytes()
    n = int(len(data) * cut) if cut < 1 else int(cut)
    path = tmp_path / "cut.svs"
    path.write_bytes(data[:n])
    with pytest.raises(SlideError, match=rf"^{path}: truncated"):
        open_slide(path)


def test_truncated_slide_logs_nothing(slide: Path, tmp_path: Path) -> None:
    path = tmp_path / "cut.svs"
    path.write_bytes(slide.read_bytes()[:400])
    code = (
        "import sys\nfrom napari_xai.core.wsi import open_slide, SlideError\n"
        "try:\n    open_slide(sys.argv[1])\nexcept SlideError as exc:\n    print(exc)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(path)], env=_env(), capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert "truncated" in proc.stdout and proc.stderr == ""


def test_brackets_in_a_file_name_are_not_a_glob(slide: Path, tmp_path: Path) -> None:
    from napari_xai.core.batch import collect_slides

    path = tmp_path / "slide[1].svs"
    path.write_bytes(slide.read_bytes())
    table = collect_slides([str(path)])
    assert [Path(p) for p in table["slide_path"]] == [path]


def test_grid_planning_is_banded_for_a_huge_declared_slide() -> None:
    """A 600k x 600k px slide (inside the limits) plans its grid in bounded memory."""
    import tracemalloc

    import numpy as np

    from napari_xai.core.tiling import TileMasks, tile_grid

    shape = (600_000, 600_000)
    mask = np.zeros((1172, 1172), bool)  # thumbnail at downsample 512
    mask[500:520, 600:640] = True  # a little tissue
    tracemalloc.start()
    try:
        grid = tile_grid(
            shape, tile_size0=224, masks=TileMasks(tissue=mask, downsample=512), min_tissue=0.5
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    n_cells = grid.grid_shape[0] * grid.grid_shape[1]
    assert n_cells > 7_000_000  # a full list of positions would be ~0.5 GB of temporaries
    assert 0 < len(grid.rows) < 50_000
    assert peak < 150 * 2**20, peak / 2**20
    kept = (grid.rows // 512, grid.cols // 512)
    assert mask[kept].all()  # every kept tile starts on tissue
