"""Failures end in one line naming what failed, never a traceback (issue 16)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
import torch  # noqa: TID253

from napari_xai.cli import main
from napari_xai.core.models.architectures import register_architecture, unregister_architecture
from napari_xai.core.models.card import ModelCard
from napari_xai.core.models.demo import make_demo_cnn

from .batch_helpers import write_tiny_slide

torch.set_num_threads(1)
ARCH = "hostile_raises_on_tissue"


class _RaisesOnTissue(torch.nn.Module):
    """The demo CNN, except that it raises on tiles with texture (passes blank checks)."""

    def __init__(self, num_classes: int = 3) -> None:
        super().__init__()
        self.net = make_demo_cnn(num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if float((x[:, :, 1:] - x[:, :, :-1]).abs().mean()) > 0.01:  # texture, not blank
            raise RuntimeError("CUDA kernel exploded\n  on line 2 of a long trace")
        out: torch.Tensor = self.net(x)
        return out


@pytest.fixture
def bad_model(tmp_path: Path) -> Path:
    register_architecture(ARCH, _RaisesOnTissue, overwrite=True)
    folder = tmp_path / "model"
    folder.mkdir()
    torch.save(_RaisesOnTissue(3).state_dict(), folder / "model.pt")
    card = ModelCard(class_names=("background", "normal", "tumour"), tile_size=64, mpp=1.0)
    ModelCard(**{**card.to_dict(), "architecture": ARCH}).to_json(folder / "config.json")
    yield folder
    unregister_architecture(ARCH)


def test_a_model_raising_on_real_tiles_is_one_line_naming_model_and_slide(
    bad_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    slide = write_tiny_slide(tmp_path / "case.tif")
    rc = main(["score", str(slide), "--model", str(bad_model), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 1
    lines = [ln for ln in err.splitlines() if "error" in ln]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    assert str(bad_model) in lines[0] and str(slide) in lines[0]
    assert "RuntimeError: CUDA kernel exploded on line 2" in lines[0]
    assert not [p for p in (tmp_path / "out").rglob("manifest.json")]  # nothing half-written


def test_batch_keeps_the_finished_slides_and_names_the_model(
    bad_model: Path, tmp_path: Path
) -> None:
    from napari_xai.core.batch import ERRORS_DIR, run_batch
    from napari_xai.core.options import BatchOptions

    slides = tmp_path / "slides"
    slides.mkdir()
    write_tiny_slide(slides / "a.tif")
    res = run_batch(slides, bad_model, tmp_path / "out", batch=BatchOptions(scheduler="sync"))
    row = res.summary.set_index("slide_id").loc["a"]
    assert row["status"] == "failed"
    assert str(bad_model) in row["error"] and "a.tif" in row["error"]
    assert "\n" not in row["error"]
    assert (tmp_path / "out" / ERRORS_DIR / "a.txt").is_file()  # the traceback, for a developer


def test_a_full_disk_names_the_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A write raising ENOSPC ends in one line naming the file it was writing."""
    import pandas as pd  # noqa: TID253

    from napari_xai.core.results import ResultWriter

    def full(self: pd.DataFrame, path: object, *args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", full)
    folder = tmp_path / "out" / "slide"
    with pytest.raises(OSError, match="No space left on device") as info:
        with ResultWriter(folder) as writer:
            writer.write_tiles(pd.DataFrame({"a": [1]}))
    assert "tiles.parquet" in str(info.value)
    assert not folder.exists() and list(folder.parent.iterdir()) == []  # nothing left


def test_cli_names_the_path_of_a_bare_oserror(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import napari_xai.cli.score as score

    def full(args: object) -> int:
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "x.parquet"))

    monkeypatch.setattr(score, "run", full)
    rc = main(["score", str(tmp_path / "s.tif"), "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 1 and "x.parquet" in err and "No space left" in err and "Traceback" not in err
