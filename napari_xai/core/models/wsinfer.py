"""Read and write WSInfer model-zoo folders; preprocess tiles as WSInfer does.

A WSInfer model (https://github.com/SBU-BMI/wsinfer, also run by QuPath's
WSInfer extension) is a folder with

- ``torchscript_model.pt``: the TorchScript module, and
- ``config.json``: spec 1.0 (``spec_version``, ``architecture``,
  ``num_classes``, ``class_names``, ``patch_size_pixels``, ``spacing_um_px``
  and a ``transform`` list of ``Resize``, ``ToTensor``, ``Normalize``).

WSInfer builds ``torchvision.transforms.Compose`` from that list, each step
constructed as ``transforms.<name>(**arguments)``, and applies it to the
patch as an RGB ``PIL.Image``. :func:`wsinfer_transform` reproduces that
without torchvision: ``Resize`` on a PIL image is PIL's own resampling
(bilinear by default, which PIL antialiases when it shrinks), ``ToTensor``
is ``uint8 / 255`` in float32 with channels first, ``Normalize`` is
``(x - mean) / std`` in float32. The same tile gives the same tensor.

napari-xai's model card is a superset of the config: its extra fields live
under the top-level ``napari_xai`` key, which WSInfer ignores (the published
schema allows extra top-level keys), so a folder written by
:func:`save_wsinfer_model` is also a valid WSInfer model folder.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from napari_xai.core.models.card import ModelCard, ModelCardError, card_mismatch
from napari_xai.core.models.errors import read_json
from napari_xai.core.models.wsinfer_config import (
    PIL_RESAMPLING,
    TRANSFORM_NAMES,
    WSInferConfigError,
    interpolation_name,
    validate_wsinfer_config,
)

if TYPE_CHECKING:  # pragma: no cover
    import torch

__all__ = [
    "CONFIG_NAME",
    "TORCHSCRIPT_NAME",
    "TRANSFORM_NAMES",
    "WSInferConfigError",
    "is_wsinfer_folder",
    "load_wsinfer_folder",
    "model_input_size",
    "wsinfer_transform",
    "read_wsinfer_config",
    "save_wsinfer_model",
    "validate_wsinfer_config",
]

#: File names of a WSInfer model folder (as in wsinfer_zoo.client).
CONFIG_NAME = "config.json"
TORCHSCRIPT_NAME = "torchscript_model.pt"
#: Card embedded in the TorchScript archive, as napari_xai.core.models.loading reads it.
CARD_EXTRA_FILE = "napari_xai_card.json"


def read_wsinfer_config(path: str | os.PathLike[str]) -> ModelCard:
    """Read and validate a WSInfer ``config.json`` into a :class:`ModelCard`.

    Parameters
    ----------
    path : path-like
        The ``config.json`` file, or the model folder holding it.

    Returns
    -------
    ModelCard
        With ``transform`` holding the config's transform list unchanged.
    """
    path = Path(path)
    if path.is_dir():
        path = path / CONFIG_NAME
    data = read_json(
        path, error=WSInferConfigError, what="WSInfer config", not_json="not a JSON file"
    )
    validate_wsinfer_config(data, source=path)
    try:
        return ModelCard.from_dict(data)
    except ModelCardError as exc:
        raise WSInferConfigError(f"{path}: {exc}") from None


# -- folder I/O --------------------------------------------------------------
def is_wsinfer_folder(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a folder with ``config.json`` and ``torchscript_model.pt``."""
    path = Path(path)
    return path.is_dir() and (path / CONFIG_NAME).is_file() and (path / TORCHSCRIPT_NAME).is_file()


def load_wsinfer_folder(
    path: str | os.PathLike[str], *, map_location: str = "cpu"
) -> tuple[torch.jit.ScriptModule, ModelCard]:
    """Load a WSInfer model folder as (TorchScript module in eval mode, card).

    Parameters
    ----------
    path : path-like
        The folder, or its ``config.json`` / ``torchscript_model.pt``.
    map_location : str
        Device the weights are loaded onto.

    Returns
    -------
    module : torch.jit.ScriptModule
    card : ModelCard

    Raises
    ------
    WSInferConfigError
        Bad or missing ``config.json``.
    ValueError
        Missing or unreadable ``torchscript_model.pt``.
    """
    import torch

    path = Path(path)
    folder = path.parent if path.is_file() else path
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: WSInfer model folder not found")
    card = read_wsinfer_config(folder / CONFIG_NAME)
    weights = folder / TORCHSCRIPT_NAME
    if not weights.is_file():
        raise ValueError(f"{folder}: WSInfer model folder has no {TORCHSCRIPT_NAME}")
    extra = {CARD_EXTRA_FILE: ""}
    try:
        module = torch.jit.load(str(weights), map_location=map_location, _extra_files=extra)
    except Exception as exc:  # torch raises RuntimeError/ValueError/zipfile errors
        raise ValueError(f"{weights}: not a TorchScript model ({exc})") from None
    module.eval()
    raw = extra.get(CARD_EXTRA_FILE)
    if raw:
        try:
            embedded = ModelCard.from_dict(json.loads(raw))
        except (ValueError, UnicodeDecodeError) as exc:
            differ = f"the embedded card is unreadable ({exc})"
        else:
            differ = card_mismatch(card, embedded)
        if differ:
            import warnings

            warnings.warn(
                f"{folder}: {CONFIG_NAME} and the card embedded in {TORCHSCRIPT_NAME} "
                f"disagree ({differ}); using {CONFIG_NAME}",
                UserWarning,
                stacklevel=2,
            )
    return module, card


def save_wsinfer_model(
    module: torch.nn.Module,
    card: ModelCard,
    folder: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    check: bool = True,
) -> Path:
    """Write ``module`` and ``card`` as a WSInfer model folder.

    Writes ``torchscript_model.pt`` (the card's config also embedded as the
    TorchScript extra file ``napari_xai_card.json``, so the ``.pt`` alone
    carries its card) and ``config.json`` (spec 1.0,
    napari-xai fields under ``napari_xai``). The module is scripted with
    ``torch.jit.script``; where scripting fails it is traced on a zero tile.

    Parameters
    ----------
    module : torch.nn.Module
        The model; TorchScript modules are saved as they are.
    card : ModelCard
        Its card.
    folder : path-like
        Output folder (created).
    overwrite : bool
        Replace existing files.
    check : bool
        Reload the folder and check the output has ``num_classes`` columns.

    Returns
    -------
    Path
        The folder.
    """
    import torch

    folder = Path(folder)
    config = card.to_wsinfer_config()
    validate_wsinfer_config(config, source=folder / CONFIG_NAME)
    targets = [folder / CONFIG_NAME, folder / TORCHSCRIPT_NAME]
    if not overwrite and any(t.exists() for t in targets):
        raise FileExistsError(f"{folder}: already holds a model (pass overwrite=True)")
    folder.mkdir(parents=True, exist_ok=True)

    size_rc = model_input_size(card)
    was_training = module.training
    module.eval()
    try:
        if isinstance(module, torch.jit.ScriptModule):
            scripted = module
        else:
            try:
                scripted = torch.jit.script(module)
            except Exception:
                example = torch.zeros((1, 3, *size_rc), dtype=torch.float32)
                with torch.no_grad():
                    scripted = torch.jit.trace(module, example)
    finally:
        module.train(was_training)
    text = json.dumps(config, indent=2) + "\n"
    _atomic_write(
        folder / TORCHSCRIPT_NAME,
        lambda p: torch.jit.save(scripted, str(p), _extra_files={CARD_EXTRA_FILE: text}),
    )
    _atomic_write(folder / CONFIG_NAME, lambda p: p.write_text(text, encoding="utf-8"))
    if check:
        loaded, loaded_card = load_wsinfer_folder(folder)
        with torch.no_grad():
            out = loaded(torch.zeros((1, 3, *size_rc), dtype=torch.float32))
        n_out = 1 if out.ndim == 1 else int(out.shape[-1])
        if out.ndim not in (1, 2) or n_out != loaded_card.num_classes:
            raise ValueError(
                f"{folder}: model output has shape {tuple(out.shape)} but the card names "
                f"{loaded_card.num_classes} classes"
            )
    return folder


def _atomic_write(path: Path, write: Any) -> None:
    """Write through a temporary sibling renamed into place (normal file permissions)."""
    from napari_xai.core.atomic import atomic_write

    atomic_write(path, write)


# -- preprocessing -----------------------------------------------------------
def _resized_shape(
    shape_rc: tuple[int, int], size: int | Sequence[int], max_size: int | None
) -> tuple[int, int]:
    """Output (rows, cols) of torchvision's ``Resize(size, max_size=...)``."""
    if isinstance(size, Sequence) and len(size) == 2:
        return int(size[0]), int(size[1])
    short_side = int(size[0] if isinstance(size, Sequence) else size)
    h, w = shape_rc
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = short_side, int(short_side * long / short)
    if max_size is not None and new_long > max_size:
        new_short, new_long = int(max_size * new_short / new_long), int(max_size)
    return (new_long, new_short) if w <= h else (new_short, new_long)


def _effective_transform(card: ModelCard) -> list[dict[str, Any]]:
    if card.transform:
        return [dict(step) for step in card.transform]
    return card.to_wsinfer_config()["transform"]  # type: ignore[no-any-return]


def model_input_size(card: ModelCard) -> tuple[int, int]:
    """(rows, cols) of the tensor the model receives for a ``tile_size`` tile."""
    shape = (int(card.tile_size), int(card.tile_size))
    for step in _effective_transform(card):
        if step["name"] == "Resize":
            args = step.get("arguments") or {}
            shape = _resized_shape(shape, args["size"], args.get("max_size"))
    return shape


def _resize_uint8(
    tiles: npt.NDArray[np.uint8], shape_rc: tuple[int, int], resample: int
) -> npt.NDArray[np.uint8]:
    """Resize (N, H, W, 3) uint8 tiles with PIL, as torchvision does for PIL images."""
    from PIL import Image

    out = np.empty((tiles.shape[0], shape_rc[0], shape_rc[1], 3), dtype=np.uint8)
    for i, tile in enumerate(tiles):
        image = Image.fromarray(np.ascontiguousarray(tile), mode="RGB")
        out[i] = np.asarray(image.resize((shape_rc[1], shape_rc[0]), resample=resample))
    return out


@dataclass(frozen=True)
class _Batch:
    """Tiles part-way through a WSInfer transform list.

    Attributes
    ----------
    image : numpy.ndarray or torch.Tensor of shape (N, H, W, 3), uint8
        The tiles before ``ToTensor`` (resized by a ``Resize`` that comes first).
    tensor : torch.Tensor of shape (N, 3, h, w), float32, or None
        The tiles from ``ToTensor`` on; None before.
    channel_order : str
        ``"RGB"`` or ``"BGR"`` (the card's): ``ToTensor`` reverses BGR.
    device : torch.device or None
        Where ``ToTensor`` moves the uint8 data (None: where it is).
    """

    image: Any
    tensor: torch.Tensor | None
    channel_order: str
    device: torch.device | None


def _tile_batch(tiles: npt.ArrayLike | torch.Tensor) -> Any:
    """(N, H, W, 3) uint8 tiles (a single (H, W, 3) tile gains N = 1), else ValueError."""
    import torch

    image: Any = tiles if isinstance(tiles, torch.Tensor) else np.asarray(tiles)
    if image.ndim == 3:
        image = image[None]
    if image.ndim != 4 or image.shape[-1] != 3:
        raise ValueError(f"tiles must have shape (N, H, W, 3), got {tuple(image.shape)}")
    if image.dtype not in (np.uint8, torch.uint8):
        raise ValueError(f"tiles must be uint8 RGB, got dtype {image.dtype}")
    return image


def _resize_step(batch: _Batch, args: dict[str, Any], where: str) -> _Batch:
    """``Resize``: PIL on the uint8 image before ``ToTensor``, interpolate on the tensor after."""
    import torch

    interp = interpolation_name(args.get("interpolation", "bilinear"))
    if interp is None:
        raise WSInferConfigError(f"{where} (Resize): unknown interpolation")
    if batch.tensor is None:
        image = batch.image
        shape_in = (int(image.shape[1]), int(image.shape[2]))
        shape_rc = _resized_shape(shape_in, args["size"], args.get("max_size"))
        if shape_rc == shape_in:
            return batch
        if isinstance(image, torch.Tensor):
            image = image.cpu().numpy()
        return replace(batch, image=_resize_uint8(image, shape_rc, PIL_RESAMPLING[interp]))
    tensor = batch.tensor
    shape_in = (int(tensor.shape[2]), int(tensor.shape[3]))
    shape_rc = _resized_shape(shape_in, args["size"], args.get("max_size"))
    if shape_rc == shape_in:
        return batch
    mode = {"nearest": "nearest", "bicubic": "bicubic"}.get(interp, "bilinear")
    kwargs: dict[str, Any] = {}
    if mode != "nearest":
        kwargs = {"align_corners": False, "antialias": args.get("antialias", True)}
    tensor = torch.nn.functional.interpolate(tensor, size=shape_rc, mode=mode, **kwargs)
    return replace(batch, tensor=tensor)


def _to_tensor_step(batch: _Batch, args: dict[str, Any], where: str) -> _Batch:
    """``ToTensor``: ``float32(x) / 255``, channels first, on ``batch.device``."""
    import torch

    if batch.tensor is not None:
        raise WSInferConfigError(f"{where}: ToTensor applied twice")
    image = batch.image
    u8 = (
        image if isinstance(image, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(image))
    )
    if batch.device is not None:
        u8 = u8.to(batch.device, non_blocking=True)
    # A fresh float tensor: in-place ops from here on save allocations.
    tensor = u8.permute(0, 3, 1, 2).to(dtype=torch.float32).div_(255)
    if batch.channel_order == "BGR":
        tensor = tensor.flip(1)
    return replace(batch, tensor=tensor)


def _normalize_step(batch: _Batch, args: dict[str, Any], where: str) -> _Batch:
    """``Normalize``: ``(x - mean) / std`` in float32, in place."""
    import torch

    tensor = batch.tensor
    if tensor is None:
        raise WSInferConfigError(f"{where}: Normalize before ToTensor")
    mean = torch.as_tensor(args["mean"], dtype=torch.float32, device=tensor.device)
    std = torch.as_tensor(args["std"], dtype=torch.float32, device=tensor.device)
    return replace(batch, tensor=tensor.sub_(mean.view(1, -1, 1, 1)).div_(std.view(1, -1, 1, 1)))


# One function per WSInfer transform name (TRANSFORM_NAMES), applied in the card's order.
_STEPS: dict[str, Callable[[_Batch, dict[str, Any], str], _Batch]] = {
    "Resize": _resize_step,
    "ToTensor": _to_tensor_step,
    "Normalize": _normalize_step,
}


def wsinfer_transform(
    tiles: npt.ArrayLike | torch.Tensor,
    card: ModelCard,
    *,
    device: str | torch.device | None = None,
) -> torch.Tensor:
    """Turn RGB uint8 tiles into the model's input tensor, exactly as WSInfer does.

    Applies the card's WSInfer ``transform`` list in its order (default:
    ``Resize(tile_size)``, ``ToTensor``, ``Normalize(mean, std)``):

    - ``Resize`` before ``ToTensor`` resizes the uint8 image with PIL (what
      ``torchvision.transforms.Resize`` does to a PIL image): bilinear unless
      the config names another interpolation; an int ``size`` sets the
      shorter side, ``[h, w]`` sets both. Same-size resizes are skipped
      (identity in PIL and torchvision alike).
    - ``ToTensor``: ``float32(x) / 255``, channels first. The uint8 data is
      moved to ``device`` first (4x less traffic; non-blocking from pinned
      memory).
    - ``Normalize``: ``(x - mean) / std`` in float32.
    - ``Resize`` after ``ToTensor`` resizes the tensor (bilinear with
      antialias, torchvision's tensor default since 0.17).

    A card with ``channel_order="BGR"`` gets its channels reversed (napari-xai
    extension; WSInfer models are RGB).

    Parameters
    ----------
    tiles : array-like or torch.Tensor of shape (N, H, W, 3), uint8
        RGB tiles (rows, cols, channels); any H, W (resized by ``Resize``).
    card : ModelCard
        The model's card.
    device : str or torch.device, optional
        Where the returned tensor lives (default: where ``tiles`` are, CPU
        for arrays).

    Returns
    -------
    torch.Tensor of shape (N, 3, h, w), float32
    """
    import torch

    image = _tile_batch(tiles)
    dev = torch.device(device) if device is not None else None
    batch = _Batch(image=image, tensor=None, channel_order=card.channel_order, device=dev)
    for i, step in enumerate(_effective_transform(card)):
        name, args = step["name"], step.get("arguments") or {}
        apply = _STEPS.get(name)
        if apply is None:
            raise WSInferConfigError(
                f"unknown transform {name!r} at transform[{i}]; WSInfer spec 1.0 knows "
                f"{', '.join(TRANSFORM_NAMES)}"
            )
        batch = apply(batch, args, f"transform[{i}]")
    tensor = batch.tensor
    if tensor is None:
        raise WSInferConfigError("transform never converts the image to a tensor (no ToTensor)")
    if dev is not None:
        tensor = tensor.to(dev)
    return tensor.contiguous()
