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


def test_a_late_failure_for_the_previous_pick_keeps_the_current_note(
    make_napari_viewer, qtbot, tmp_path: Path, monkeypatch
) -> None:
    """A slow error describing the model picked before must not overwrite the note.

    Picking "from folder" first describes whatever folder the picker held (it may not
    be a model); that answer can arrive after the folder the user then picks.
    """
    import threading

    import torch

    from napari_xai._widgets import _base
    from napari_xai._widgets._pickers import FROM_FOLDER
    from napari_xai.core.models.card import ModelCard
    from napari_xai.core.models.demo import DEMO_ARCHITECTURE, make_demo_cnn

    good = tmp_path / "real-model"
    good.mkdir()
    torch.save(make_demo_cnn(2).state_dict(), good / "model.pt")
    ModelCard(
        class_names=("benign", "tumour"), tile_size=32, mpp=1.0,
        architecture=DEMO_ARCHITECTURE, name="my model", training_data="real",
    ).to_json(good / "config.json")  # fmt: skip
    bad = tmp_path / "not-a-model"
    bad.mkdir()
    release = threading.Event()
    real = _base.RunWidget._describe_model

    def describe(self, spec):
        if str(spec) == str(bad):
            release.wait(60)
            raise ValueError(f"{bad} is not a model folder")
        return real(self, spec)

    monkeypatch.setattr(_base.RunWidget, "_describe_model", describe)
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-xai", "Score slide")
    qtbot.waitUntil(lambda: "synthetic" in widget._model_note.value, timeout=60_000)
    widget._model_source.value = FROM_FOLDER
    widget._model_file.value = bad
    late = widget._info_worker
    widget._model_file.value = good
    qtbot.waitUntil(lambda: widget._model_note.value == "my model", timeout=60_000)
    with qtbot.waitSignal(late.finished, timeout=60_000):
        release.set()
    qtbot.wait(50)  # let the queued error signal reach the widget
    assert widget._model_note.value == "my model"
