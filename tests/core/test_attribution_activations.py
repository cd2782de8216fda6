"""Channel activations of a chosen layer: one tile, and one channel across the slide."""

from __future__ import annotations

# ruff: noqa: TID253 (imported only when attribution runs, never by napari's menus)
import numpy as np
import pytest
import torch
import zarr
from torch import nn

from napari_xai.core.activations import channel_activations, iter_channel_slide, list_layers
from napari_xai.core.attribution import AttributionError
from napari_xai.core.layers.activations import channel_mosaic
from napari_xai.core.models.card import ModelCard
from napari_xai.core.models.loading import LoadedModel
from napari_xai.core.options import GridOptions
from napari_xai.core.wsi import open_slide

torch.set_num_threads(1)


class Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.conv2 = nn.Conv2d(4, 6, 3, stride=2, padding=1)
        self.fc = nn.Linear(6, 2)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.conv2(torch.relu(self.conv1(x))))

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(x.mean(dim=(2, 3)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


@pytest.fixture
def model() -> LoadedModel:
    torch.manual_seed(0)
    card = ModelCard(class_names=("a", "b"), tile_size=32, mpp=4.0)
    return LoadedModel(module=Net().eval(), card=card, sha256="net", is_scripted=False)


def test_layers_and_channels(model) -> None:
    assert list_layers(model) == ["conv1", "conv2"]
    tile = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    acts = channel_activations(model, tile, layer="conv2")
    assert acts.shape == (6, 16, 16) and acts.dtype == np.float32
    default = channel_activations(model, tile)  # Grad-CAM layer = last conv
    np.testing.assert_array_equal(default, acts)
    mosaic = channel_mosaic(acts, n_cols=3)
    assert mosaic.shape == (2 * 17 - 1, 3 * 17 - 1)
    assert np.nanmax(mosaic) <= 1 and np.nanmin(mosaic) >= 0
    with pytest.raises(AttributionError, match="no layer named"):
        channel_activations(model, tile, layer="conv9")


def test_scripted_model_exposes_forward_features(model) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(model.module)
    assert list_layers(scripted, tile_size=32) == ["forward_features"]
    tile = np.zeros((32, 32, 3), np.uint8)
    with torch.no_grad():
        ref = model.module.forward_features(torch.zeros(1, 3, 32, 32))[0].numpy()
    np.testing.assert_allclose(channel_activations(scripted, tile), ref, atol=1e-6)


def test_one_channel_across_slide(small_pyramid, model, tmp_path) -> None:
    with open_slide(small_pyramid) as slide:
        gen = iter_channel_slide(
            slide,
            model,
            layer="conv2",
            channel=3,
            store=tmp_path / "h.zarr",
            grid=GridOptions(tissue=False),
        )
        try:
            while True:
                next(gen)
        except StopIteration as stop:
            res = stop.value
    assert res.key == "activations/conv2/channel_3" and res.complete
    assert res.layer_name == "pyramid activation [conv2, channel 3]"
    level0 = np.asarray(zarr.open_group(str(tmp_path / "h.zarr"))[f"{res.key}/0"][...])
    assert np.isfinite(level0).all() and level0.std() > 0
