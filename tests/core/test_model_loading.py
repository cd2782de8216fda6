"""Loading models and cards: TorchScript, state dicts, WSInfer folders, and bad models."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pytest
import torch  # noqa: TID253
from torch import nn  # noqa: TID253

from napari_xai.core.models.card import ModelCard
from napari_xai.core.models.demo import (
    DEMO_ARCHITECTURE,
    demo_model_path,
    load_demo_model,
    make_demo_cnn,
)
from napari_xai.core.models.loading import (
    CARD_EXTRA_FILE,
    ModelError,
    choose_device,
    load_model,
    save_torchscript,
)

torch.set_num_threads(1)

CARD = ModelCard(
    class_names=("background", "normal", "tumour"),
    tile_size=32,
    mpp=1.0,
    architecture=DEMO_ARCHITECTURE,
    cam_layer="layer3",
)


class ConstantModel(nn.Module):
    """Always answers class ``k`` (tests)."""

    def __init__(self, n_classes: int = 3, k: int = 1) -> None:
        super().__init__()
        self.n_classes = n_classes
        self.k = k
        self.dummy = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.zeros(x.shape[0], self.n_classes, device=x.device) + self.dummy
        out[:, self.k] = 10.0
        return out


class NaNModel(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0], 3), float("nan"), device=x.device)


def _state_dict_model(folder: Path, card: ModelCard = CARD, name: str = "model.pt") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.save(make_demo_cnn(card.num_classes).state_dict(), folder / name)
    card.to_json(folder / "config.json")
    return folder / name


def test_state_dict_with_card_beside(tmp_path: Path) -> None:
    weights = _state_dict_model(tmp_path / "m")
    for target in (weights, weights.parent):
        model = load_model(target, device="cpu")
        assert not model.is_scripted
        assert model.card == CARD
        assert model.sha256 == hashlib.sha256(weights.read_bytes()).hexdigest()
        assert model.device.type == "cpu" and not model.module.training
        assert model.path == weights


def test_torchscript_with_embedded_card(tmp_path: Path) -> None:
    path = save_torchscript(make_demo_cnn(3), CARD, tmp_path / "scripted.pt")
    model = load_model(path, device="cpu")
    assert model.is_scripted and model.card.class_names == CARD.class_names
    assert model.card.cam_layer == "layer3"
    # Scripted timm-style models keep forward_features / forward_head.
    feats = model.module.forward_features(torch.zeros(1, 3, 32, 32))
    assert feats.ndim == 4


def test_wsinfer_layout_folder(tmp_path: Path) -> None:
    """TorchScript without an embedded card + WSInfer config.json beside it."""
    folder = tmp_path / "wsinfer"
    folder.mkdir()
    torch.jit.script(ConstantModel(2, 0)).save(str(folder / "torchscript_model.pt"))
    config = {
        "spec_version": "1.0",
        "architecture": "resnet34",
        "num_classes": 2,
        "class_names": ["notumor", "tumor"],
        "patch_size_pixels": 24,
        "spacing_um_px": 0.5,
        "transform": [
            {"name": "Resize", "arguments": {"size": 24}},
            {"name": "ToTensor"},
            {"name": "Normalize", "arguments": {"mean": [0.5] * 3, "std": [0.5] * 3}},
        ],
    }
    (folder / "config.json").write_text(json.dumps(config))
    model = load_model(folder, device="cpu")
    assert model.is_scripted
    assert model.card.class_names == ("notumor", "tumor")
    assert model.card.tile_size == 24 and model.card.mpp == 0.5
    assert model.card.mean == (0.5, 0.5, 0.5)


def test_not_a_model_file(tmp_path: Path) -> None:
    bad = tmp_path / "notes.pt"
    bad.write_text("these are not weights")
    with pytest.raises(ModelError, match=r"notes\.pt: not a torch model file"):
        load_model(bad)
    with pytest.raises(ModelError, match="not found"):
        load_model(tmp_path / "missing.pt")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ModelError, match="no model file"):
        load_model(empty)


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch " + str(_Evil.marker),))


def test_pickled_objects_are_never_unpickled(tmp_path: Path) -> None:
    _Evil.marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"weight": _Evil()}, path)
    CARD.to_json(tmp_path / "config.json")
    with pytest.raises(ModelError, match=r"evil\.pt: cannot read as tensors-only weights"):
        load_model(path)
    assert not _Evil.marker.exists()
    # A whole pickled module (torch.save(model)) is refused too.
    whole = tmp_path / "whole.pt"
    torch.save(make_demo_cnn(3), whole)
    with pytest.raises(ModelError, match="weights_only"):
        load_model(whole)


def test_output_does_not_match_card(tmp_path: Path) -> None:
    card4 = ModelCard(class_names=("a", "b", "c", "d"), tile_size=32, mpp=1.0)
    path = save_torchscript(ConstantModel(3, 0), card4, tmp_path / "m.pt")
    with pytest.raises(ModelError, match=r"outputs shape \(2, 3\).*4 classes"):
        load_model(path)


def test_nan_outputs(tmp_path: Path) -> None:
    path = save_torchscript(NaNModel(), CARD, tmp_path / "nan.pt")
    with pytest.raises(ModelError, match=r"nan\.pt: the model produced NaN"):
        load_model(path)


def test_state_dict_problems(tmp_path: Path) -> None:
    weights = _state_dict_model(tmp_path / "a")
    # Missing card.
    (weights.parent / "config.json").unlink()
    with pytest.raises(ModelError, match="no model card"):
        load_model(weights)
    # Names that are not registered (a WSInfer name, a missing module, a missing
    # factory): one clear error naming the source and listing the registry.
    for spec in ["resnet34", "no_such_pkg.mod:make", "napari_xai.core.models.demo:nope"]:
        message = rf"architecture= argument\): unknown architecture '{re.escape(spec)}'.*demo_cnn"
        with pytest.raises(ModelError, match=message):
            load_model(weights, architecture=spec, card=CARD)
    # Weights that do not fit the architecture.
    with pytest.raises(ModelError, match="do not fit"):
        load_model(weights, architecture="napari_xai.core.models.demo:make_resnet18", card=CARD)


def test_card_override_and_prefixed_state_dict(tmp_path: Path) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    sd = {f"module.{k}": v for k, v in make_demo_cnn(3).state_dict().items()}
    torch.save({"state_dict": sd}, folder / "weights.pth")
    model = load_model(folder / "weights.pth", card=CARD, device="cpu")
    assert model.card is CARD


def test_choose_device() -> None:
    assert choose_device("cpu").type == "cpu"
    assert choose_device(None).type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="CUDA is not available"):
            choose_device("cuda")


def test_torchscript_card_in_archive(tmp_path: Path) -> None:
    import zipfile

    path = save_torchscript(make_demo_cnn(3), CARD, tmp_path / "m.pt")
    names = zipfile.ZipFile(path).namelist()
    assert any(n.endswith(f"extra/{CARD_EXTRA_FILE}") for n in names)


def test_demo_model_ships_and_loads() -> None:
    folder = demo_model_path()
    assert (folder / "model.pt").stat().st_size < 3 * 2**20
    model = load_demo_model(device="cpu")
    assert model.card.class_names == ("background", "normal", "tumour")
    assert model.card.architecture == DEMO_ARCHITECTURE
    modules = dict(model.module.named_modules())
    assert model.card.cam_layer in modules
    # The card is also a schema-valid WSInfer config.
    from napari_xai.core.models.wsinfer import validate_wsinfer_config

    validate_wsinfer_config(json.loads((folder / "config.json").read_text()))
