"""Attribution methods on tensors: registry, reduction, quadrant test, TorchScript support."""

from __future__ import annotations

# ruff: noqa: TID253 (imported only when attribution runs, never by napari's menus)
import numpy as np
import pytest
import torch
from torch import nn

from napari_xai.core.attribution import (
    ATTRIBUTION_METHODS,
    AttributionError,
    explain_tiles,
    supported_methods,
    unsupported_methods,
)

torch.set_num_threads(1)

SIZE = 64


class QuadrantNet(nn.Module):
    """Tiny CNN that by construction only sees the top-left quadrant of its input.

    The input is masked, convolutions have no bias: nothing outside the quadrant (but
    the one-pixel ring the 3x3 kernel reaches) can change the output.
    """

    def __init__(self, n_classes: int = 3) -> None:
        super().__init__()
        mask = torch.zeros(1, 1, SIZE, SIZE)
        mask[..., : SIZE // 2, : SIZE // 2] = 1.0
        self.register_buffer("mask", mask)
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(8, 8, 1, bias=False)
        self.relu2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, n_classes)
        with torch.no_grad():  # class 0 = "much texture in the quadrant", so it is predicted
            self.fc.weight[0].abs_()
            self.fc.weight[1:].copy_(-self.fc.weight[1:].abs())
            self.fc.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x * self.mask
        x = self.relu2(self.conv2(self.relu1(self.conv1(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


@pytest.fixture(scope="module")
def quadrant_model() -> QuadrantNet:
    torch.manual_seed(0)
    return QuadrantNet().eval()


@pytest.fixture(scope="module")
def tiles() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(4, SIZE, SIZE, 3), dtype=np.uint8)


def test_registry_lists_every_method() -> None:
    assert set(ATTRIBUTION_METHODS) == {
        "saliency",
        "integrated_gradients",
        "gradient_shap",
        "occlusion",
        "grad_cam",
        "guided_grad_cam",
    }
    from napari_xai.core.naming import AUDIT_METHOD_NAMES, METHOD_NAMES

    # the menus' order (naming, importable without torch) is the registry's order
    assert tuple(ATTRIBUTION_METHODS) == METHOD_NAMES
    assert set(AUDIT_METHOD_NAMES) < set(METHOD_NAMES)


@pytest.mark.parametrize(
    ("method", "options"),
    [(m, {}) for m in ATTRIBUTION_METHODS] + [("saliency", {"smooth_samples": 4})],
)
def test_quadrant_mass(quadrant_model, tiles, method, options) -> None:
    maps = explain_tiles(
        quadrant_model, tiles, method=method, batch_size=8, n_steps=8, n_samples=4, **options
    )
    assert maps.shape == (len(tiles), SIZE, SIZE)
    assert maps.dtype == np.float32
    assert np.isfinite(maps).all()
    assert (maps >= 0).all()
    total = maps.sum()
    assert total > 0
    fraction = maps[:, : SIZE // 2, : SIZE // 2].sum() / total
    label = method + (" + smoothgrad" if options else "")
    print(f"\nquadrant mass fraction [{label}]: {fraction:.4f}")
    # Receptive fields leak a few pixels over the quadrant border (Grad-CAM upsampling too).
    assert fraction > 0.8


@pytest.mark.parametrize(
    ("method", "options"),
    [("gradient_shap", {"n_samples": 4}), ("saliency", {"smooth_samples": 4})],
)
def test_seed_makes_random_methods_reproducible(quadrant_model, tiles, method, options) -> None:
    def run(seed: int) -> np.ndarray:
        return explain_tiles(quadrant_model, tiles, method=method, seed=seed, **options)

    np.random.seed(1)
    torch.manual_seed(1)
    first = run(3)
    # the caller's random state is as it was: the next draws are those seeding 1 gives
    after_np, after_torch = np.random.rand(4), torch.rand(4)
    np.random.seed(1)
    torch.manual_seed(1)
    np.testing.assert_array_equal(after_np, np.random.rand(4))
    assert torch.equal(after_torch, torch.rand(4))
    # the caller's generators are elsewhere now (and unseeded draws happen between runs)
    np.random.seed(99)
    torch.manual_seed(99)
    np.random.rand(7), torch.rand(7)
    np.testing.assert_array_equal(run(3), first)
    other = run(4)
    assert np.isfinite(other).all() and other.max() > 0
    assert np.abs(other - first).max() > 1e-3 * np.abs(first).max()


def test_target_by_name_and_index(quadrant_model, tiles) -> None:
    a = explain_tiles(quadrant_model, tiles, method="saliency", target=1)
    b = explain_tiles(quadrant_model, tiles, method="saliency", target=2)
    assert not np.allclose(a, b)
    with pytest.raises(AttributionError, match="out of range|unknown class"):
        explain_tiles(quadrant_model, tiles, method="saliency", target="tumour")


def test_predicted_target_matches_argmax(quadrant_model, tiles) -> None:
    from napari_xai.core.attribution import Explainer
    from napari_xai.core.predict import preprocess_tiles

    explainer = Explainer(quadrant_model, method="grad_cam")
    _, targets = explainer.explain(tiles)
    with torch.no_grad():
        expected = quadrant_model(preprocess_tiles(tiles)).argmax(1).numpy()
    np.testing.assert_array_equal(targets, expected)


def test_unknown_method(quadrant_model, tiles) -> None:
    with pytest.raises(AttributionError, match="unknown attribution method"):
        explain_tiles(quadrant_model, tiles, method="lime")


class _Features(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(4, 2)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.conv(x))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


class _Plain(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


def test_torchscript_support(tiles) -> None:
    torch.manual_seed(0)
    plain = torch.jit.script(_Plain())
    assert "grad_cam" not in supported_methods(plain)
    assert "saliency" in supported_methods(plain)
    assert "TorchScript" in unsupported_methods(plain)["grad_cam"]
    with pytest.raises(AttributionError, match="TorchScript.*Supported: saliency"):
        explain_tiles(plain, tiles, method="grad_cam")
    maps = explain_tiles(plain, tiles, method="integrated_gradients", n_steps=4)
    assert maps.shape == (len(tiles), SIZE, SIZE)

    split = torch.jit.script(_Features())
    methods = supported_methods(split)
    assert "grad_cam" in methods and "guided_grad_cam" not in methods
    cam = explain_tiles(split, tiles, method="grad_cam")
    # Same as Grad-CAM on the Python model with hooks on the features' output.
    eager = _Features()
    eager.load_state_dict(split.state_dict())
    from napari_xai.core.attribution import prepare_model

    ref = explain_tiles(prepare_model(eager, cam_layer="relu"), tiles, method="grad_cam")
    np.testing.assert_allclose(cam, ref, rtol=1e-4, atol=1e-6)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_methods_on_cuda(quadrant_model, tiles) -> None:
    model = QuadrantNet().cuda().eval()
    model.load_state_dict(quadrant_model.state_dict())
    for method in ("grad_cam", "integrated_gradients"):
        maps = explain_tiles(model, tiles, method=method, n_steps=8)
        ref = explain_tiles(quadrant_model, tiles, method=method, n_steps=8)
        np.testing.assert_allclose(maps, ref, rtol=1e-3, atol=1e-5)


def test_every_method_runs_on_the_demo_model() -> None:
    from napari_xai.core.models.demo import load_demo_model
    from napari_xai.demo.synthetic import render_patch

    model = load_demo_model(device="cpu")
    assert supported_methods(model) == tuple(ATTRIBUTION_METHODS)
    rng = np.random.default_rng(0)
    tiles = np.stack([render_patch(k, size=64, rng=rng) for k in ("tumour", "normal")])
    for method in ATTRIBUTION_METHODS:
        maps = explain_tiles(model, tiles, method=method, target="tumour", n_steps=8)
        assert maps.shape == (2, 64, 64) and np.isfinite(maps).all(), method
        assert maps.max() > 0, method
