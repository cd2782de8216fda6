"""ModelCard: validation, napari-xai and WSInfer layouts, stable hashing."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from napari_xai.core.models.card import EXTENSION_KEY, ModelCard, ModelCardError
from napari_xai.core.models.wsinfer import validate_wsinfer_config


def make_card(**changes: object) -> ModelCard:
    fields: dict[str, object] = {
        "class_names": ("background", "normal", "tumour"),
        "tile_size": 64,
        "mpp": 2.0,
        "mean": (0.8, 0.6, 0.7),
        "std": (0.1, 0.15, 0.12),
        "cam_layer": "features.3",
        "feature_layer": "head.pool",
        "name": "demo",
        "architecture": "napari_xai.core.models.demo:make_demo_cnn",
        "description": "synthetic tiles",
    }
    fields.update(changes)
    return ModelCard(**fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"class_names": ()}, "at least one class"),
        ({"class_names": ("a", "a")}, "repeat"),
        ({"tile_size": 0}, "tile_size"),
        ({"mpp": 0.0}, "mpp"),
        ({"mean": (0.5, 0.5)}, "3 values"),
        ({"std": (0.1, 0.0, 0.1)}, "std must be positive"),
        ({"channel_order": "RGBA"}, "channel_order"),
    ],
)
def test_invalid_cards_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ModelCardError, match=message):
        make_card(**changes)


def test_napari_card_round_trip_and_hash(tmp_path: Path) -> None:
    card = make_card()
    assert ModelCard.from_dict(card.to_dict()) == card
    path = card.to_json(tmp_path / "card.json", wsinfer=False)
    assert ModelCard.from_json(path) == card
    # Hash: of the canonical JSON, independent of key order, sensitive to content.
    reordered = dict(reversed(list(card.to_dict().items())))
    assert ModelCard.from_dict(reordered).sha256 == card.sha256
    assert make_card(mpp=1.0).sha256 != card.sha256
    assert len(card.sha256) == 64


def test_wsinfer_config_is_schema_valid_superset(tmp_path: Path) -> None:
    card = make_card()
    config = card.to_wsinfer_config()
    validate_wsinfer_config(config)
    assert config["num_classes"] == 3 and config["patch_size_pixels"] == 64
    assert config["spacing_um_px"] == 2.0
    assert [t["name"] for t in config["transform"]] == ["Resize", "ToTensor", "Normalize"]
    assert config["transform"][2]["arguments"] == {
        "mean": [0.8, 0.6, 0.7],
        "std": [0.1, 0.15, 0.12],
    }
    ext = config[EXTENSION_KEY]
    assert ext["cam_layer"] == "features.3" and ext["feature_layer"] == "head.pool"
    # Round trip through config.json keeps every field and the hash.
    again = ModelCard.from_json(card.to_json(tmp_path / "config.json"))
    assert again == card and again.sha256 == card.sha256
    assert dataclasses.asdict(again) == dataclasses.asdict(card)


def test_custom_transform_is_kept_and_hashed() -> None:
    card = make_card()
    config = card.to_wsinfer_config()
    config["transform"][0]["arguments"]["size"] = 32
    resized = ModelCard.from_dict(config)
    assert resized.transform[0] == {"name": "Resize", "arguments": {"size": 32}}
    assert resized.sha256 != card.sha256  # feeding differs, so the identity differs
    assert ModelCard.from_dict(resized.to_dict()).transform == resized.transform
    assert resized.to_wsinfer_config()["transform"] == config["transform"]


def test_transform_must_agree_with_mean_std() -> None:
    config = make_card().to_wsinfer_config()
    transform = tuple(config["transform"])
    with pytest.raises(ModelCardError, match="disagree"):
        make_card(transform=transform, mean=(0.5, 0.5, 0.5))
    with pytest.raises(ModelCardError, match="disagree"):
        make_card(transform=({"name": "ToTensor"},))  # no Normalize means mean 0, std 1
    ok = make_card(transform=({"name": "ToTensor"},), mean=(0.0,) * 3, std=(1.0,) * 3)
    assert ok.transform == ({"name": "ToTensor"},)


def test_wsinfer_config_without_extension_uses_defaults() -> None:
    config = {
        "spec_version": "1.0",
        "architecture": "resnet34",
        "num_classes": 1,
        "class_names": ["tumor"],
        "patch_size_pixels": 350,
        "spacing_um_px": 0.25,
        "transform": [
            {"name": "Resize", "arguments": {"size": 224}},
            {"name": "ToTensor"},
            {"name": "Normalize", "arguments": {"mean": [0.5] * 3, "std": [0.5] * 3}},
        ],
    }
    card = ModelCard.from_dict(json.loads(json.dumps(config)))
    assert card.class_names == ("tumor",) and card.num_classes == 1
    assert card.name == "resnet34" and card.architecture == "resnet34"
    assert card.cam_layer is None and card.channel_order == "RGB"
    assert card.to_wsinfer_config()["transform"] == config["transform"]


def test_from_json_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(ModelCardError, match="not found"):
        ModelCard.from_json(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]")
    with pytest.raises(ModelCardError, match=f"{bad}.*JSON object"):
        ModelCard.from_json(bad)
    bad.write_text(json.dumps({"class_names": ["a"], "mpp": 0.5}))
    with pytest.raises(ModelCardError, match="missing required field 'tile_size'"):
        ModelCard.from_json(bad)


def test_training_data_caveat_round_trips(tmp_path) -> None:
    """A card can say its model saw only synthetic tiles; the bundled demo cards do."""
    from napari_xai.core.models.demo import demo_model_path

    plain = make_card()
    assert plain.training_data == "" and plain.caveat == ""
    assert "training_data" not in plain.to_dict()  # cards that say nothing keep their hash
    synthetic = dataclasses.replace(plain, training_data="synthetic")
    assert synthetic.caveat == "synthetic training data, not for real slides"
    assert synthetic.sha256 != plain.sha256
    for wsinfer in (True, False):
        path = synthetic.to_json(tmp_path / f"card_{wsinfer}.json", wsinfer=wsinfer)
        assert ModelCard.from_json(path).caveat == synthetic.caveat
    for folder in (demo_model_path(), demo_model_path().parent / "demo_wsinfer"):
        card = ModelCard.from_json(folder / "config.json")
        assert card.training_data == "synthetic" and "not for real slides" in card.caveat
