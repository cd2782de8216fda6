"""The model picker takes a model folder (WSInfer layout: config.json + weights)."""

from __future__ import annotations

from pathlib import Path


def _model_folder(tmp_path: Path) -> Path:
    import torch

    from napari_xai.core.models.card import ModelCard
    from napari_xai.core.models.demo import DEMO_ARCHITECTURE, make_demo_cnn

    folder = tmp_path / "my-model"
    folder.mkdir()
    torch.save(make_demo_cnn(3).state_dict(), folder / "model.pt")
    card = ModelCard(
        class_names=("a", "b", "c"), tile_size=32, mpp=1.0, architecture=DEMO_ARCHITECTURE
    )
    card.to_json(folder / "config.json")
    return folder


def test_explain_takes_a_model_folder(make_napari_viewer, qtbot, tmp_path: Path) -> None:
    from napari_xai._widgets._pickers import FROM_FOLDER, model_spec
    from napari_xai._widgets.explain import PREDICTED, ExplainWidget

    folder = _model_folder(tmp_path)
    viewer = make_napari_viewer()
    widget = ExplainWidget(viewer)
    widget._model_source.value = FROM_FOLDER
    assert widget._model_file.mode.value == "d"
    assert not widget._model_file.native.isHidden()
    widget._model_file.value = folder
    assert model_spec(FROM_FOLDER, folder) == folder
    # the folder's model is described in a worker
    qtbot.waitUntil(lambda: "a" in widget._target.choices, timeout=60_000)
    assert list(widget._target.choices) == [PREDICTED, "a", "b", "c"]
