"""One forward pass: tiles → model input → logits → class probabilities.

Scoring (:mod:`napari_xai.core.inference`), the audit
(:mod:`napari_xai.core.audit`), attribution (:mod:`napari_xai.core.attribution`)
and activations (:mod:`napari_xai.core.activations`) all feed the model through
:func:`preprocess_tiles` and read it through :func:`to_probabilities`, so a tile
gets the same numbers wherever it is scored:

* :func:`preprocess_tiles`: uint8 RGB tiles ``(N, H, W, 3)`` become the card's
  normalised input ``(N, 3, S, S)``. A card with the standard transform
  (``Resize(tile_size)``, ``ToTensor``, ``Normalize``) on tiles already at its
  tile size is scaled and normalised on the device (the uint8 data moves, 4×
  less traffic); any other transform list goes through WSInfer's exact
  preprocessing (:func:`napari_xai.core.models.wsinfer.wsinfer_transform`).
* :func:`forward_logits`: the module (or a ``forward`` callable) under
  float16 autocast on CUDA.
* :func:`to_probabilities`: softmax over classes; sigmoid for one-output models.
* :func:`predict_probabilities`: all three for a batch, outputs checked against
  the card.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import torch

    from napari_xai.core.models.card import ModelCard

__all__ = [
    "forward_logits",
    "predict_probabilities",
    "preprocess_tiles",
    "standard_transform",
    "to_probabilities",
]


def standard_transform(card: ModelCard) -> bool:
    """Tell whether the card's transform is the standard Resize(tile_size), ToTensor, Normalize.

    Then tiles the reader already resized (PIL bilinear, as WSInfer) only need
    scaling and normalising, done on the device.
    """
    if not card.transform:
        return True
    names = [str(step.get("name")) for step in card.transform]
    if names != ["Resize", "ToTensor", "Normalize"]:
        return False
    args = dict(card.transform[0].get("arguments") or {})
    size = args.get("size")
    if isinstance(size, (list, tuple)):
        size = size[0] if len(size) == 1 or (len(size) == 2 and size[0] == size[1]) else None
    interp = str(args.get("interpolation", "bilinear")).lower()
    norm = dict(card.transform[2].get("arguments") or {})
    same_norm = tuple(float(v) for v in norm.get("mean", card.mean)) == tuple(card.mean) and tuple(
        float(v) for v in norm.get("std", card.std)
    ) == tuple(card.std)
    return (
        size == card.tile_size
        and interp in ("bilinear", "2", "interpolationmode.bilinear")
        and args.get("max_size") is None
        and same_norm
    )


def _normalise_on_device(
    tiles: npt.NDArray[np.uint8] | torch.Tensor, card: ModelCard, dev: torch.device
) -> torch.Tensor:
    """Apply the standard transform to tiles at the card's size, on ``dev``."""
    import torch

    t = torch.from_numpy(np.ascontiguousarray(tiles)) if isinstance(tiles, np.ndarray) else tiles
    t = t.to(dev, non_blocking=True).permute(0, 3, 1, 2).float().div_(255.0)
    if card.channel_order == "BGR":
        t = t.flip(1)
    mean = torch.tensor(card.mean, dtype=torch.float32, device=dev).view(1, 3, 1, 1)
    std = torch.tensor(card.std, dtype=torch.float32, device=dev).view(1, 3, 1, 1)
    return t.sub_(mean).div_(std).contiguous()


def _other_arrays(
    arr: npt.NDArray[Any], card: ModelCard | None, dev: torch.device
) -> torch.Tensor:
    """Float or RGBA tiles (e.g. perturbed images): scale, resize and normalise by hand."""
    import torch
    import torch.nn.functional as F

    x = torch.from_numpy(np.ascontiguousarray(arr[..., :3])).to(dev)
    x = x.permute(0, 3, 1, 2).float()
    if arr.dtype == np.uint8:
        x = x / 255.0
    if card is not None:
        if str(getattr(card, "channel_order", "RGB")).upper() == "BGR":
            x = x.flip(1)
        size = int(getattr(card, "tile_size", x.shape[-1]))
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
        mean = torch.tensor(card.mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(card.std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        x = (x - mean) / std
    return x.contiguous()


def preprocess_tiles(
    tiles: npt.NDArray[Any] | torch.Tensor,
    card: ModelCard | None = None,
    *,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Turn tiles into the model's input batch, as scoring does.

    Parameters
    ----------
    tiles : ndarray or Tensor of shape (N, H, W, 3), or float Tensor of shape (N, C, H, W)
        uint8 RGB tiles (array, or a uint8 tensor as the tile reader hands out,
        maybe pinned); float or RGBA arrays are scaled, resized and normalised
        by hand; a float ``(N, C, H, W)`` tensor is already model input and is
        used unchanged.
    card : ModelCard, optional
        The model's card (its transform, mean/std, tile size, channel order);
        without one uint8 tiles are only scaled to [0, 1].
    device : str or torch.device, optional
        Where the batch goes (default CPU).

    Returns
    -------
    torch.Tensor of shape (N, C, S, S), float32

    Raises
    ------
    ValueError
        For arrays that are not ``(N, H, W, 3|4)``.
    """
    import torch

    dev = torch.device(device) if device is not None else torch.device("cpu")
    if isinstance(tiles, torch.Tensor) and tiles.dtype != torch.uint8:
        return tiles.float().to(dev)
    if isinstance(tiles, torch.Tensor) and (tiles.ndim != 4 or tiles.shape[-1] != 3):
        raise ValueError(f"expected uint8 tiles of shape (N, H, W, 3), got {tuple(tiles.shape)}")
    shape = tuple(tiles.shape)
    if len(shape) != 4 or shape[-1] not in (3, 4):
        raise ValueError(f"expected tiles of shape (N, H, W, 3), got {shape}")
    is_rgb8 = shape[-1] == 3 and (
        tiles.dtype == torch.uint8 if isinstance(tiles, torch.Tensor) else tiles.dtype == np.uint8
    )
    if card is not None and is_rgb8:
        at_size = shape[1] == shape[2] == int(card.tile_size)
        if at_size and standard_transform(card):
            return _normalise_on_device(tiles, card, dev)
        from napari_xai.core.models.wsinfer import wsinfer_transform

        return wsinfer_transform(tiles, card, device=dev).float().contiguous()
    arr = tiles.cpu().numpy() if isinstance(tiles, torch.Tensor) else np.asarray(tiles)
    return _other_arrays(arr, card, dev)


def to_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Softmax over classes (WSInfer's convention); sigmoid for single-output models."""
    import torch

    logits = logits.float()
    if logits.ndim == 1 or logits.shape[1] == 1:
        return torch.sigmoid(logits.reshape(logits.shape[0], 1))
    return torch.softmax(logits, dim=1)


def forward_logits(
    module: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, *, amp: bool = True
) -> torch.Tensor:
    """Run ``module`` on a model-input batch; float16 autocast on CUDA when ``amp``."""
    import torch

    ctx = (
        torch.autocast(device_type="cuda", dtype=torch.float16)
        if amp and x.device.type == "cuda"
        else contextlib.nullcontext()
    )
    with ctx:
        return module(x)


def predict_probabilities(
    model: Any,
    tiles: npt.NDArray[Any] | torch.Tensor,
    *,
    device: str | torch.device | None = None,
    amp: bool = True,
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> npt.NDArray[np.float32]:
    """Class probabilities of one batch of tiles (no gradients).

    Parameters
    ----------
    model : LoadedModel or PreparedModel
        Anything with ``module``, ``card`` and ``device`` (its outputs are
        checked against the card when it has one).
    tiles : ndarray or Tensor
        See :func:`preprocess_tiles`.
    device : str or torch.device, optional
        Default: the model's device.
    amp : bool
        float16 autocast on CUDA.
    forward : callable, optional
        Called instead of the module on the normalised batch; returns logits.

    Returns
    -------
    ndarray of shape (N, C), float32

    Raises
    ------
    ModelError
        When the outputs do not fit the card or are not finite.
    """
    import torch

    from napari_xai.core.models.loading import check_outputs

    dev = torch.device(device) if device is not None else getattr(model, "device", None)
    card = getattr(model, "card", None)
    with torch.inference_mode():
        x = preprocess_tiles(tiles, card, device=dev)
        logits = forward_logits(forward or model.module, x, amp=amp)
        if card is not None:
            path = getattr(model, "path", None) or getattr(model, "name", "model")
            check_outputs(logits, card, batch=x.shape[0], path=path)
        probs: npt.NDArray[np.float32] = (
            to_probabilities(logits).cpu().numpy().astype(np.float32, copy=False)
        )
    return probs
