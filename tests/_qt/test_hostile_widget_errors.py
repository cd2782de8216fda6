"""A model that raises only on real tiles ends in one napari notification naming it (issue 16)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch  # noqa: TID253

from napari_xai._widgets.score import FROM_FILE, ScoreWidget
from napari_xai.core.models.architectures import register_architecture, unregister_architecture
from napari_xai.core.models.card import ModelCard
from tests.core.batch_helpers import write_tiny_slide
from tests.core.test_hostile_errors import ARCH, _RaisesOnTissue


@pytest.fixture
def bad_model(tmp_path: Path) -> Path:
    register_architecture(ARCH, _RaisesOnTissue, overwrite=True)
    folder = tmp_path / "model"
    folder.mkdir()
    torch.save(_RaisesOnTissue(3).state_dict(), folder / "model.pt")
    card = ModelCard(class_names=("background", "normal", "tumour"), tile_size=64, mpp=1.0)
    ModelCard(**{**card.to_dict(), "architecture": ARCH}).to_json(folder / "config.json")
    yield folder / "model.pt"
    unregister_architecture(ARCH)


def test_score_widget_names_model_and_slide_when_the_model_raises(
    make_napari_viewer, qtbot, tmp_path: Path, bad_model: Path, monkeypatch
) -> None:
    import napari.utils.notifications as notifications

    errors: list[str] = []
    monkeypatch.setattr(notifications, "show_error", lambda msg: errors.append(str(msg)))
    slide = write_tiny_slide(tmp_path / "case.tif")
    viewer = make_napari_viewer()
    viewer.open(str(slide), plugin="napari-xai")
    widget = ScoreWidget(viewer)
    widget._output.value = tmp_path / "out"
    widget._model_source.value = FROM_FILE
    widget._model_file.value = bad_model
    widget._on_run()
    qtbot.waitUntil(lambda: widget._worker is None, timeout=180_000)
    assert len(errors) == 1, errors
    assert str(bad_model) in errors[0] and "case.tif" in errors[0]
    assert "RuntimeError: CUDA kernel exploded" in errors[0] and "\n" not in errors[0]
    assert widget._status.value.startswith("error:")
