"""WSInfer model-zoo folders: schema validation, loading, writing, WSInfer-exact preprocessing."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch  # noqa: TID253 (tests may import torch)
from PIL import Image

from napari_xai.core.models.card import ModelCard, ModelCardError
from napari_xai.core.models.wsinfer import (
    CONFIG_NAME,
    TORCHSCRIPT_NAME,
    WSInferConfigError,
    is_wsinfer_folder,
    load_wsinfer_folder,
    model_input_size,
    read_wsinfer_config,
    save_wsinfer_model,
    validate_wsinfer_config,
    wsinfer_transform,
)
from napari_xai.core.options import GridOptions, RunOptions
from napari_xai.core.predict import to_probabilities

torch.set_num_threads(1)

MEAN = [0.7238, 0.5716, 0.6779]  # WSInfer's breast-tumour ResNet-34 values
STD = [0.1120, 0.1459, 0.1089]

# Fields WSInfer's published schema (wsinfer_zoo/schemas/model-config.schema.json) requires.
PUBLISHED_REQUIRED = {
    "spec_version",
    "architecture",
    "num_classes",
    "patch_size_pixels",
    "spacing_um_px",
    "class_names",
    "transform",
}


def zoo_config(**changes: Any) -> dict[str, Any]:
    """A config shaped like a WSInfer zoo model's (patch 48 px resized to 32 for the net)."""
    config: dict[str, Any] = {
        "spec_version": "1.0",
        "architecture": "resnet34",
        "num_classes": 2,
        "class_names": ["notumor", "tumor"],
        "patch_size_pixels": 48,
        "spacing_um_px": 0.5,
        "transform": [
            {"name": "Resize", "arguments": {"size": 32}},
            {"name": "ToTensor"},
            {"name": "Normalize", "arguments": {"mean": MEAN, "std": STD}},
        ],
    }
    config.update(changes)
    return config


class TinyNet(torch.nn.Module):
    """Scriptable 2-layer CNN; rejects inputs that are not 32 x 32 (the config's Resize)."""

    def __init__(self, num_classes: int = 2, *, strict_size: int = 0) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.fc = torch.nn.Linear(4, num_classes)
        self.strict_size = strict_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.strict_size > 0 and x.shape[-1] != self.strict_size:
            raise ValueError("wrong input size")
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


def write_zoo_folder(folder: Path, config: dict[str, Any], *, strict_size: int = 0) -> Path:
    """Lay out a folder exactly as the WSInfer zoo ships it (no napari-xai extras)."""
    folder.mkdir(parents=True, exist_ok=True)
    net = TinyNet(config["num_classes"], strict_size=strict_size).eval()
    torch.jit.script(net).save(str(folder / TORCHSCRIPT_NAME))
    (folder / CONFIG_NAME).write_text(json.dumps(config, indent=2))
    return folder


def known_tiles() -> np.ndarray:
    """Two deterministic 48 x 48 RGB tiles (gradients plus a checker)."""
    r = np.arange(48)[:, None]
    c = np.arange(48)[None, :]
    planes = np.broadcast_arrays((r * 5) % 256, (c * 3 + 17) % 256, ((r + c) % 2) * 255)
    tile = np.stack(planes, axis=-1)
    return np.stack([tile, 255 - tile]).astype(np.uint8)


def wsinfer_reference(
    tile: np.ndarray, size: int, mean: list[float], std: list[float]
) -> np.ndarray:
    """WSInfer's documented order with PIL: Resize (bilinear) -> ToTensor (/255) -> Normalize."""
    h, w = tile.shape[:2]
    short, long_ = min(h, w), max(h, w)
    new_long = int(size * long_ / short)
    out_hw = (size, new_long) if h <= w else (new_long, size)
    img = Image.fromarray(tile).resize((out_hw[1], out_hw[0]), Image.BILINEAR)
    x = np.asarray(img).astype(np.float32) / np.float32(255)
    x = (x - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return x.transpose(2, 0, 1)


# -- schema ------------------------------------------------------------------------------------
def test_vendored_schema_has_the_published_constraints() -> None:
    path = (
        Path(__file__).resolve().parents[2] / "napari_xai/core/models/wsinfer_config.schema.json"
    )
    schema = json.loads(path.read_text())
    assert set(schema["required"]) == PUBLISHED_REQUIRED
    assert schema["properties"]["spec_version"]["enum"] == ["1.0"]
    item = schema["properties"]["transform"]["items"]
    assert item["properties"]["name"]["enum"] == ["Resize", "ToTensor", "Normalize"]
    assert item["additionalProperties"] is False
    assert "additionalProperties" not in schema  # room for the napari_xai key
    assert "wsinfer-zoo" in schema["$comment"]  # attribution


def test_valid_zoo_config_passes_and_reads_as_card() -> None:
    validate_wsinfer_config(zoo_config())
    card = ModelCard.from_dict(zoo_config())
    assert card.class_names == ("notumor", "tumor")
    assert card.tile_size == 48 and card.mpp == 0.5
    assert card.mean == tuple(MEAN) and card.std == tuple(STD)
    assert model_input_size(card) == (32, 32)


@pytest.mark.parametrize("field", sorted(PUBLISHED_REQUIRED))
def test_missing_required_field_is_named(field: str) -> None:
    config = zoo_config()
    del config[field]
    with pytest.raises(WSInferConfigError, match=f"missing required field '{field}'"):
        validate_wsinfer_config(config)
    with pytest.raises(ModelCardError, match=field):
        ModelCard.from_dict(config)


def test_unknown_transform_is_named() -> None:
    config = zoo_config()
    config["transform"].insert(1, {"name": "RandomCrop", "arguments": {"size": 24}})
    with pytest.raises(WSInferConfigError) as info:
        validate_wsinfer_config(config)
    msg = str(info.value)
    assert "unknown transform 'RandomCrop' at transform[1]" in msg
    assert "Resize, ToTensor, Normalize" in msg


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    config = zoo_config()
    del config["class_names"]
    path = tmp_path / CONFIG_NAME
    path.write_text(json.dumps(config))
    with pytest.raises(WSInferConfigError, match=rf"{path}.*missing required field 'class_names'"):
        read_wsinfer_config(path)
    path.write_text("{not json")
    with pytest.raises(WSInferConfigError, match="not a JSON file"):
        read_wsinfer_config(tmp_path)
    with pytest.raises(WSInferConfigError, match="not found"):
        read_wsinfer_config(tmp_path / "nope.json")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"num_classes": 3}, "num_classes is 3 but 2 class_names"),
        ({"spec_version": "2.0"}, r"spec_version must be one of \['1.0'\]"),
        ({"class_names": ["a", "a"]}, "class_names repeats a name"),
        ({"patch_size_pixels": 0}, "patch_size_pixels"),
        ({"spacing_um_px": "0.5"}, "spacing_um_px"),
        ({"transform": [{"name": "ToTensor", "args": {}}]}, "only 'name' and 'arguments'"),
        ({"transform": [{"name": "Resize", "arguments": {"size": 32}}]}, "no 'ToTensor'"),
        (
            {
                "transform": [
                    {"name": "ToTensor"},
                    {"name": "Normalize", "arguments": {"mean": MEAN}},
                ]
            },
            "needs 'std'",
        ),
        (
            {"transform": [{"name": "Resize", "arguments": {}}, {"name": "ToTensor"}]},
            "needs 'size'",
        ),
        (
            {
                "transform": [
                    {"name": "Resize", "arguments": {"size": 3, "fill": 1}},
                    {"name": "ToTensor"},
                ]
            },
            r"unknown argument\(s\) \['fill'\]",
        ),
        (
            {
                "transform": [
                    {"name": "Normalize", "arguments": {"mean": MEAN, "std": STD}},
                    {"name": "ToTensor"},
                ]
            },
            "Normalize' before 'ToTensor'",
        ),
    ],
)
def test_bad_configs_fail_clearly(change: dict[str, Any], message: str) -> None:
    with pytest.raises(WSInferConfigError, match=message):
        validate_wsinfer_config(zoo_config(**change))


# -- folders -----------------------------------------------------------------------------------
def test_zoo_folder_scores_with_loader_preprocess_and_forward(tmp_path: Path) -> None:
    folder = write_zoo_folder(tmp_path / "zoo", zoo_config(), strict_size=32)
    assert is_wsinfer_folder(folder)
    module, card = load_wsinfer_folder(folder)
    x = wsinfer_transform(known_tiles(), card)
    assert x.shape == (2, 3, 32, 32) and x.dtype == torch.float32
    with torch.no_grad():
        probs = to_probabilities(module(x))
    assert probs.shape == (2, 2)
    assert torch.allclose(probs.sum(dim=1), torch.ones(2))
    # A tile that skipped WSInfer's Resize would not even fit this model.
    with pytest.raises(Exception, match="wrong input size"):
        module(torch.zeros(1, 3, 48, 48))
    # The .pt or config.json path works as well as the folder.
    assert load_wsinfer_folder(folder / CONFIG_NAME)[1] == card


def test_zoo_folder_loads_through_load_model(tmp_path: Path) -> None:
    loading = pytest.importorskip("napari_xai.core.models.loading")
    folder = write_zoo_folder(tmp_path / "zoo", zoo_config())
    loaded = loading.load_model(folder, device="cpu")
    assert loaded.is_scripted
    assert loaded.card == read_wsinfer_config(folder)
    assert loaded.card.transform[0]["arguments"]["size"] == 32


def test_zoo_folder_scores_a_slide(tmp_path: Path, small_pyramid: Path) -> None:
    inference = pytest.importorskip("napari_xai.core.inference")
    loading = pytest.importorskip("napari_xai.core.models.loading")
    from napari_xai.core.export import tiles_to_wsinfer_frame
    from napari_xai.core.wsi import open_slide

    # The net only accepts 32 x 32 inputs: the pipeline must apply the config's Resize.
    folder = write_zoo_folder(tmp_path / "zoo", zoo_config(), strict_size=32)
    model = loading.load_model(folder, device="cpu")
    with open_slide(small_pyramid) as slide:
        result = inference.score_slide(
            slide, model, grid=GridOptions(tissue=False, max_tiles=6),
            run=RunOptions(batch_size=4, num_workers=1, amp=False),
        )  # fmt: skip
    tiles = result.tiles
    assert len(tiles) == 6
    probs = tiles[["prob_notumor", "prob_tumor"]].to_numpy()
    assert np.isfinite(probs).all()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    frame = tiles_to_wsinfer_frame(tiles)
    assert list(frame.columns) == ["minx", "miny", "width", "height", "prob_notumor", "prob_tumor"]


def test_missing_or_bad_torchscript(tmp_path: Path) -> None:
    folder = tmp_path / "zoo"
    folder.mkdir()
    (folder / CONFIG_NAME).write_text(json.dumps(zoo_config()))
    assert not is_wsinfer_folder(folder)
    with pytest.raises(ValueError, match=f"no {TORCHSCRIPT_NAME}"):
        load_wsinfer_folder(folder)
    (folder / TORCHSCRIPT_NAME).write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a TorchScript model"):
        load_wsinfer_folder(folder)


def test_save_writes_a_valid_zoo_folder_that_round_trips(tmp_path: Path) -> None:
    card = ModelCard.from_dict(
        zoo_config(napari_xai={"cam_layer": "conv", "feature_layer": "fc", "name": "tiny"})
    )
    folder = save_wsinfer_model(TinyNet(), card, tmp_path / "out")
    config = json.loads((folder / CONFIG_NAME).read_text())
    validate_wsinfer_config(config)  # what WSInfer / QuPath validate
    assert config["transform"] == zoo_config()["transform"]
    assert config["napari_xai"]["cam_layer"] == "conv"
    module, again = load_wsinfer_folder(folder)
    assert again == card and again.transform == card.transform
    assert again.sha256 == card.sha256
    # The .pt alone carries the card too (TorchScript extra file).
    extra = {"napari_xai_card.json": ""}
    torch.jit.load(str(folder / TORCHSCRIPT_NAME), _extra_files=extra)
    assert json.loads(extra["napari_xai_card.json"]) == config
    # WSInfer ignores the extension: without it the WSInfer fields still read the same.
    plain = {k: v for k, v in config.items() if k != "napari_xai"}
    bare = ModelCard.from_dict(plain)
    assert (bare.class_names, bare.tile_size, bare.mpp, bare.mean, bare.std) == (
        card.class_names,
        card.tile_size,
        card.mpp,
        card.mean,
        card.std,
    )
    with pytest.raises(FileExistsError):
        save_wsinfer_model(TinyNet(), card, folder)
    save_wsinfer_model(module, card, folder, overwrite=True)  # already scripted


def test_save_refuses_a_model_that_does_not_fit_its_card(tmp_path: Path) -> None:
    card = ModelCard.from_dict(zoo_config(num_classes=3, class_names=["a", "b", "c"]))
    with pytest.raises(ValueError, match="card names 3 classes"):
        save_wsinfer_model(TinyNet(2), card, tmp_path / "bad")


# -- preprocessing -----------------------------------------------------------------------------
def test_preprocess_matches_wsinfer_order_numerically() -> None:
    tiles = known_tiles()
    card = ModelCard.from_dict(zoo_config())
    got = wsinfer_transform(tiles, card).numpy()
    expected = np.stack([wsinfer_reference(t, 32, MEAN, STD) for t in tiles])
    np.testing.assert_array_equal(got, expected)  # bit for bit
    # The order matters: normalising before resizing gives another tensor.
    other = (tiles.astype(np.float32) / 255 - np.float32(MEAN)) / np.float32(STD)
    other_t = torch.nn.functional.interpolate(
        torch.from_numpy(other).permute(0, 3, 1, 2), size=(32, 32), mode="bilinear"
    ).numpy()
    assert np.abs(other_t - got).max() > 1e-3


def test_preprocess_hand_computed_antialiased_bilinear() -> None:
    # 2x2 -> 1x1: PIL's (torchvision's) bilinear shrink weighs all four pixels equally.
    tile = np.array([[[0] * 3, [100] * 3], [[200] * 3, [255] * 3]], np.uint8)[None]
    card = ModelCard.from_dict(
        zoo_config(
            patch_size_pixels=2,
            transform=[
                {"name": "Resize", "arguments": {"size": 1}},
                {"name": "ToTensor"},
                {"name": "Normalize", "arguments": {"mean": [0.5] * 3, "std": [0.25] * 3}},
            ],
        )
    )
    got = wsinfer_transform(tile, card)
    value = round((0 + 100 + 200 + 255) / 4)  # 138.75 -> 139 in uint8
    expected = (np.float32(value) / np.float32(255) - np.float32(0.5)) / np.float32(0.25)
    assert got.shape == (1, 3, 1, 1)
    np.testing.assert_array_equal(got.numpy().ravel(), [expected] * 3)
    # 1x4 -> 1x2: triangle filter of radius 2 input pixels: weights .75, .75, .25 (normalised).
    row = np.zeros((1, 2, 4, 3), np.uint8)
    row[0, :, :, 0] = [0, 40, 80, 120]
    card2 = ModelCard.from_dict(
        zoo_config(
            patch_size_pixels=4,
            transform=[{"name": "Resize", "arguments": {"size": [2, 2]}}, {"name": "ToTensor"}],
        )
    )
    got2 = wsinfer_transform(row, card2)[0, 0, 0].numpy() * 255
    left = (0 * 0.75 + 40 * 0.75 + 80 * 0.25) / 1.75  # 28.57
    right = (40 * 0.25 + 80 * 0.75 + 120 * 0.75) / 1.75  # 91.43
    np.testing.assert_allclose(got2, [round(left), round(right)], atol=1e-4)


def test_preprocess_int_size_sets_shorter_side() -> None:
    rng = np.random.default_rng(1)
    tiles = rng.integers(0, 256, (1, 48, 64, 3), dtype=np.uint8)
    card = ModelCard.from_dict(zoo_config())
    got = wsinfer_transform(tiles, card).numpy()
    assert got.shape == (1, 3, 32, 42)  # int(32 * 64 / 48), as torchvision computes it
    np.testing.assert_array_equal(got[0], wsinfer_reference(tiles[0], 32, MEAN, STD))


def test_preprocess_without_resize_or_normalize_and_bgr() -> None:
    tiles = known_tiles()
    card = ModelCard.from_dict(zoo_config(transform=[{"name": "ToTensor"}]))
    assert card.mean == (0.0, 0.0, 0.0) and card.std == (1.0, 1.0, 1.0)
    got = wsinfer_transform(tiles, card)
    np.testing.assert_array_equal(
        got.numpy(), tiles.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255)
    )
    bgr = ModelCard.from_dict(
        zoo_config(transform=[{"name": "ToTensor"}], napari_xai={"channel_order": "BGR"})
    )
    np.testing.assert_array_equal(wsinfer_transform(tiles, bgr).numpy(), got.numpy()[:, ::-1])
    # torch uint8 input gives the same tensor as numpy input
    card = ModelCard.from_dict(zoo_config())
    np.testing.assert_array_equal(
        wsinfer_transform(torch.from_numpy(tiles), card).numpy(),
        wsinfer_transform(tiles, card).numpy(),
    )


def test_preprocess_default_card_is_tensor_then_normalize() -> None:
    card = ModelCard(
        class_names=("a", "b"), tile_size=48, mpp=0.5, mean=(0.5,) * 3, std=(0.2,) * 3
    )
    tiles = known_tiles()
    got = wsinfer_transform(tiles, card).numpy()
    expected = (
        tiles.transpose(0, 3, 1, 2).astype(np.float32) / np.float32(255) - np.float32(0.5)
    ) / np.float32(0.2)
    np.testing.assert_array_equal(got, expected)


def test_preprocess_rejects_bad_tiles() -> None:
    card = ModelCard.from_dict(zoo_config())
    with pytest.raises(ValueError, match="uint8"):
        wsinfer_transform(np.zeros((1, 48, 48, 3), np.float32), card)
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        wsinfer_transform(np.zeros((1, 48, 48, 4), np.uint8), card)


def test_probabilities_follow_wsinfer() -> None:
    logits = torch.tensor([[2.0, 0.0], [0.0, 0.0]])
    np.testing.assert_allclose(to_probabilities(logits).sum(1).numpy(), [1, 1], rtol=1e-6)
    one = to_probabilities(torch.tensor([[0.0], [100.0]]))
    assert one.shape == (2, 1)
    np.testing.assert_allclose(one.numpy().ravel(), [0.5, 1.0])


def test_config_is_not_mutated() -> None:
    config = zoo_config()
    before = copy.deepcopy(config)
    card = ModelCard.from_dict(config)
    card.transform[0]["arguments"]["size"] = 5  # type: ignore[index]
    assert config == before


# -- CLI ---------------------------------------------------------------------------------------
def run_cli(*argv: str) -> int:
    import argparse

    from napari_xai.cli import add_subcommand
    from napari_xai.cli import wsinfer as wsinfer_cli

    parser = argparse.ArgumentParser()
    add_subcommand(parser.add_subparsers(dest="command"), "wsinfer")
    args = parser.parse_args(["wsinfer", *argv])
    return wsinfer_cli.run(args)


def test_cli_validate_export_model_and_results(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("napari_xai.core.models.loading")
    import pandas as pd  # noqa: TID253

    folder = write_zoo_folder(tmp_path / "zoo", zoo_config())
    assert run_cli("validate", str(folder)) == 0
    assert "valid WSInfer config" in capsys.readouterr().out
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({k: v for k, v in zoo_config().items() if k != "num_classes"}))
    with pytest.raises(WSInferConfigError, match="num_classes"):
        run_cli("validate", str(bad))

    assert run_cli("export-model", str(folder / TORCHSCRIPT_NAME), str(tmp_path / "copy")) == 0
    assert read_wsinfer_config(tmp_path / "copy") == read_wsinfer_config(folder)

    result = tmp_path / "results" / "slide-1"
    result.mkdir(parents=True)
    pd.DataFrame(
        {"row": [0], "col": [48], "height": [48], "width": [48],
         "prob_notumor": [0.25], "prob_tumor": [0.75], "pred_class": ["tumor"]}
    ).to_parquet(result / "tiles.parquet")  # fmt: skip
    assert run_cli("export-results", str(result), "--out", str(tmp_path / "ws")) == 0
    csv = pd.read_csv(tmp_path / "ws" / "model-outputs-csv" / "slide-1.csv")
    assert csv.iloc[0].tolist() == [48, 0, 48, 48, 0.25, 0.75]
    geo = json.loads((tmp_path / "ws" / "model-outputs-geojson" / "slide-1.json").read_text())
    assert geo["features"][0]["properties"]["classification"]["name"] == "tumor"


# -- bundled demo model as a WSInfer folder ----------------------------------------------------
DEMO_WSINFER = Path(__file__).resolve().parents[2] / "napari_xai" / "models" / "demo_wsinfer"


@pytest.mark.skipif(not (DEMO_WSINFER / CONFIG_NAME).is_file(), reason="demo_wsinfer not built")
def test_bundled_demo_wsinfer_folder_matches_demo_model() -> None:
    demo = pytest.importorskip("napari_xai.core.models.demo")
    config = json.loads((DEMO_WSINFER / CONFIG_NAME).read_text())
    validate_wsinfer_config(config)  # a valid WSInfer zoo config, as committed
    module, card = load_wsinfer_folder(DEMO_WSINFER)
    original = demo.load_demo_model(device="cpu")
    assert card == original.card
    tiles = np.random.default_rng(0).integers(
        0, 256, (3, card.tile_size, card.tile_size, 3), dtype=np.uint8
    )
    x = wsinfer_transform(tiles, card)
    with torch.no_grad():
        torch.testing.assert_close(module(x), original.module(x), rtol=1e-4, atol=1e-4)
