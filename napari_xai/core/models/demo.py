"""Plain-torch tile classifiers: the bundled demo CNN, a ResNet-18 look-alike, TinyCNN.

All follow timm's split into ``forward_features`` (last conv block output,
``(N, C, h, w)``) and ``forward_head`` (pool + linear), which survives
TorchScript scripting, so Grad-CAM and feature extraction can work on the
boundary even in a scripted model. Factories are named in model cards as
``napari_xai.core.models.demo:make_demo_cnn``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import torch  # noqa: TID253 (core runs only when models are used)
from torch import nn  # noqa: TID253

if TYPE_CHECKING:
    from napari_xai.core.models.loading import LoadedModel

__all__ = [
    "DEMO_ARCHITECTURE",
    "DemoCNN",
    "ResNet18Like",
    "SplitNet",
    "TINY_CNN_ARCHITECTURE",
    "TinyCNN",
    "demo_model_path",
    "load_demo_model",
    "make_demo_cnn",
    "make_resnet18",
]

#: Architecture string of the demo model in its card.
DEMO_ARCHITECTURE = "napari_xai.core.models.demo:make_demo_cnn"
#: Architecture name of the planted-shortcut demo models (:mod:`napari_xai.demo.shortcut`).
TINY_CNN_ARCHITECTURE = "shortcut_tiny_cnn"


class BasicBlock(nn.Module):
    """Residual block: two 3×3 convs with batch norm, projection when the shape changes."""

    def __init__(self, in_ch: int, out_ch: int, *, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module
        if stride != 1 or in_ch != out_ch:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch)
            )
        else:
            self.downsample = nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``relu(F(x) + shortcut(x))``."""
        out: torch.Tensor = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = self.relu(out + self.downsample(x))
        return out


class SplitNet(nn.Module):
    """A tile classifier in timm's split: ``forward`` is ``forward_head(forward_features(x))``.

    Subclasses give ``forward_features``; the head pools the feature maps and
    applies the linear ``fc``, unless a subclass gives its own.
    """

    if TYPE_CHECKING:  # set by the subclasses; not class annotations TorchScript would read
        pool: nn.Module
        fc: nn.Module

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Feature maps ``(N, C, h, w)`` of tiles ``(N, 3, H, W)``: the Grad-CAM boundary."""
        raise NotImplementedError

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Pool and classify features from :meth:`forward_features`."""
        out: torch.Tensor = self.fc(torch.flatten(self.pool(x), 1))
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(N, num_classes)`` for tiles ``(N, 3, H, W)``."""
        out: torch.Tensor = self.forward_head(self.forward_features(x))
        return out


class DemoCNN(SplitNet):
    """Small ResNet-ish tile classifier (about 70 k parameters).

    Parameters
    ----------
    num_classes : int
        Number of output logits.
    widths : tuple of int
        Channels of the stem and of the three residual stages.
    """

    def __init__(
        self, num_classes: int = 3, *, widths: tuple[int, ...] = (16, 24, 32, 64)
    ) -> None:
        super().__init__()
        w0, w1, w2, w3 = widths
        self.stem = nn.Sequential(
            nn.Conv2d(3, w0, 3, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(w0),
            nn.ReLU(inplace=True),
        )
        self.layer1 = BasicBlock(w0, w1, stride=2)
        self.layer2 = BasicBlock(w1, w2, stride=2)
        self.layer3 = BasicBlock(w2, w3, stride=2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(w3, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Output of the last residual stage, ``(N, C, h, w)``."""
        out: torch.Tensor = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return out


class ResNet18Like(SplitNet):
    """ResNet-18 layout in plain torch (11.7 M parameters at 1000 classes).

    Used by the benchmark as a realistically sized model; no pretrained weights.
    """

    def __init__(self, num_classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = nn.Sequential(BasicBlock(64, 64), BasicBlock(64, 64))
        self.layer2 = nn.Sequential(BasicBlock(64, 128, stride=2), BasicBlock(128, 128))
        self.layer3 = nn.Sequential(BasicBlock(128, 256, stride=2), BasicBlock(256, 256))
        self.layer4 = nn.Sequential(BasicBlock(256, 512, stride=2), BasicBlock(512, 512))
        self.pool = nn.AdaptiveAvgPool2d(1)  # torchvision's avgpool (no parameters)
        self.fc = nn.Linear(512, num_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Output of ``layer4``, ``(N, 512, h, w)``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        out: torch.Tensor = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return out


def make_demo_cnn(num_classes: int = 3) -> DemoCNN:
    """Build the (untrained) demo architecture."""
    return DemoCNN(num_classes)


def make_resnet18(num_classes: int = 1000) -> ResNet18Like:
    """Build an (untrained) ResNet-18-sized classifier."""
    return ResNet18Like(num_classes)


def demo_model_path() -> Path:
    """Folder of the bundled demo model (``model.pt`` state dict + ``config.json`` card)."""
    return Path(__file__).resolve().parents[2] / "models" / "demo"


def load_demo_model(*, device: str | torch.device | None = None) -> LoadedModel:
    """Load the bundled demo model (background / normal / tumour, 64 px tiles)."""
    from napari_xai.core.models.loading import load_model

    return load_model(demo_model_path(), device=device)


class TinyCNN(SplitNet):
    """A small CNN for 48–96 px tiles (about 6k parameters at ``width=8``).

    Three 3×3 conv blocks, global average pooling and a linear head; the last
    convolution is ``features[-2]`` (``cam_layer="features.6"``).
    """

    def __init__(self, n_classes: int = 2, width: int = 8) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1),
            nn.ReLU(),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(2 * width, n_classes)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Last feature maps (N, C, H/4, W/4): the Grad-CAM boundary, also when scripted."""
        out: torch.Tensor = self.features(x)
        return out

    def forward_head(self, x: torch.Tensor) -> torch.Tensor:
        """Logits from feature maps (the linear layer is ``head``: its weights' name)."""
        out: torch.Tensor = self.head(torch.flatten(self.pool(x), 1))
        return out
