"""The widgets say next to the model's name when its card says "synthetic training data"."""

from __future__ import annotations

from pathlib import Path

import pytest

WIDGETS = ("Score slide", "Explain", "Audit", "Batch score slides")


@pytest.mark.parametrize("name", WIDGETS)
def test_demo_model_says_not_for_real_slides(make_napari_viewer, qtbot, name) -> None:
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-xai", name)
    # described in a worker (never on the GUI thread)
    qtbot.waitUntil(lambda: widget._model_note.value != "", timeout=60_000)
    note = widget._model_note.value
    assert note.startswith("napari-xai demo CNN")
    assert "synthetic training data, not for real slides" in note
    assert not widget._model_note.native.isHidden()


def test_a_card_without_the_field_shows_only_its_name(
    make_napari_viewer, qtbot, tmp_path: Path
) -> None:
    import torch

    from napari_xai._widgets._pickers import FROM_FOLDER
    from napari_xai.core.models.card import ModelCard
    from napari_xai.core.models.demo import DEMO_ARCHITECTURE, make_demo_cnn

    folder = tmp_path / "real-model"
    folder.mkdir()
    torch.save(make_demo_cnn(2).state_dict(), folder / "model.pt")
    ModelCard(
        class_names=("benign", "tumour"), tile_size=32, mpp=1.0,
        architecture=DEMO_ARCHITECTURE, name="my model", training_data="real",
    ).to_json(folder / "config.json")  # fmt: skip
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-xai", "Score slide")
    qtbot.waitUntil(lambda: "synthetic" in widget._model_note.value, timeout=60_000)
    widget._model_source.value = FROM_FOLDER
    widget._model_file.value = folder
    qtbot.waitUntil(lambda: widget._model_note.value == "my model", timeout=60_000)
