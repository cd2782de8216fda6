"""One forward pass (core/predict.py), one model resolver (core/models/resolve.py): issue 13."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from napari_xai.core.models.card import ModelCard  # noqa: E402
from napari_xai.core.models.wsinfer import wsinfer_transform  # noqa: E402
from napari_xai.core.predict import (  # noqa: E402
    predict_probabilities,
    preprocess_tiles,
    standard_transform,
    to_probabilities,
)

CARD = ModelCard(
    class_names=("a", "b"), tile_size=32, mpp=1.0, mean=(0.5, 0.4, 0.3), std=(0.2, 0.25, 0.3)
)


def _tiles(n: int = 3, size: int = 32) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def test_fast_path_equals_wsinfer_exact_preprocessing() -> None:
    tiles = _tiles()
    assert standard_transform(CARD)
    exact = wsinfer_transform(tiles, CARD)
    np.testing.assert_array_equal(preprocess_tiles(tiles, CARD).numpy(), exact.numpy())
    # the tile reader hands out uint8 tensors: the same numbers
    np.testing.assert_array_equal(
        preprocess_tiles(torch.from_numpy(tiles), CARD).numpy(), exact.numpy()
    )
    # tiles not at the card's size go through WSInfer's Resize (PIL bilinear), as scoring
    small = _tiles(size=24)
    got = preprocess_tiles(small, CARD)
    assert got.shape == (3, 3, 32, 32)
    np.testing.assert_array_equal(got.numpy(), wsinfer_transform(small, CARD).numpy())


def test_model_input_passes_through_and_other_arrays_are_normalised() -> None:
    x = torch.randn(2, 3, 32, 32)
    assert torch.equal(preprocess_tiles(x, CARD), x)
    rgba = np.full((1, 32, 32, 4), 0.5, np.float32)
    got = preprocess_tiles(rgba, CARD)[0, :, 0, 0].numpy()
    np.testing.assert_allclose(got, (0.5 - np.array(CARD.mean)) / np.array(CARD.std), rtol=1e-6)
    np.testing.assert_allclose(preprocess_tiles(_tiles())[0].numpy().max(), 1.0, atol=1 / 255)
    with pytest.raises(ValueError, match=r"\(N, H, W, 3\)"):
        preprocess_tiles(np.zeros((32, 32, 3), np.uint8), CARD)


def test_probabilities_softmax_and_one_output_sigmoid() -> None:
    p = to_probabilities(torch.tensor([[2.0, 0.0], [0.0, 0.0]]))
    np.testing.assert_allclose(p.sum(1).numpy(), [1, 1], rtol=1e-6)
    one = to_probabilities(torch.tensor([[0.0], [100.0]]))
    assert one.shape == (2, 1)
    np.testing.assert_allclose(one.numpy().ravel(), [0.5, 1.0])


def test_predict_probabilities_checks_outputs_and_serves_the_audit() -> None:
    from napari_xai.core.audit.counterfactual import tile_probabilities
    from napari_xai.core.models.loading import LoadedModel, ModelError

    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 2)).eval()
    model = LoadedModel(module=module, card=CARD, sha256="x", is_scripted=False)
    tiles = _tiles()
    probs = predict_probabilities(model, tiles)
    with torch.no_grad():
        expected = torch.softmax(module(wsinfer_transform(tiles, CARD)), 1).numpy()
    np.testing.assert_allclose(probs, expected, rtol=1e-5)
    np.testing.assert_allclose(tile_probabilities(model, tiles, batch_size=2), probs, rtol=1e-6)
    wrong = LoadedModel(
        module=module,
        card=ModelCard(class_names=("a", "b", "c"), tile_size=32, mpp=1.0),
        sha256="x",
        is_scripted=False,
    )
    with pytest.raises(ModelError, match="3 classes"):
        predict_probabilities(wrong, tiles)


def test_one_resolver_and_cache(tmp_path: Path) -> None:
    from napari_xai.core.models.demo import demo_model_path
    from napari_xai.core.models.resolve import clear_model_cache, resolve_model

    clear_model_cache()
    demo = resolve_model("demo", device="cpu")
    assert resolve_model("demo", device="cpu") is demo
    assert resolve_model(str(demo_model_path()), device="cpu") is demo  # the same model
    assert resolve_model(demo) is demo  # a loaded model is returned as it is
    copy = tmp_path / "model"
    shutil.copytree(demo_model_path(), copy)
    first = resolve_model(copy, device="cpu")
    assert first is not demo and resolve_model(copy, device="cpu") is first
    config = copy / "config.json"
    st = config.stat()
    os.utime(config, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the card changed
    assert resolve_model(copy, device="cpu") is not first
    with pytest.raises((OSError, ValueError)):
        resolve_model(tmp_path / "missing.pt", device="cpu")


def test_explaining_or_auditing_a_bare_module_says_it_needs_a_card() -> None:
    import torch

    from napari_xai.core.models.resolve import resolve_carded_model

    demo = resolve_carded_model("demo", device="cpu", task="explaining a slide", needs="mpp")
    assert demo.card.tile_size > 0  # a loaded model with its card passes through
    bare = torch.nn.Conv2d(3, 2, 3)
    with pytest.raises(ValueError, match=r"^auditing a slide needs a model card \(classes\): "):
        resolve_carded_model(bare, task="auditing a slide", needs="classes")
