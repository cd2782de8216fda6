"""Load a tile model and its card without unpickling anything but tensors.

Accepted layouts
----------------
* a TorchScript file with the card embedded as the extra file
  ``napari_xai_card.json`` (what :func:`save_torchscript` writes);
* a TorchScript file with a card beside it: ``<stem>.json``, ``card.json`` or
  WSInfer's ``config.json`` (a WSInfer model-zoo folder reads unchanged);
* a state dict (``torch.save(model.state_dict())``) with a card beside it whose
  ``architecture`` (or the ``architecture=`` argument) is a name registered in
  :mod:`napari_xai.core.models.architectures` (never code to import); it is
  read with ``torch.load(weights_only=True)``;
* a folder holding one of the above (``model.pt``, ``torchscript_model.pt``…).
"""

from __future__ import annotations

import hashlib
import inspect
import io
import json
import warnings
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch  # noqa: TID253 (core runs only when models are used)
from torch import nn  # noqa: TID253

from napari_xai.core.models.card import ModelCard, ModelCardError, card_mismatch

__all__ = [
    "CARD_EXTRA_FILE",
    "LoadedModel",
    "ModelError",
    "check_outputs",
    "choose_device",
    "load_model",
    "resolve_factory",
    "save_torchscript",
]

#: Name of the card inside a TorchScript archive (``_extra_files``).
CARD_EXTRA_FILE = "napari_xai_card.json"
#: Weight file names looked for, in order, when a folder is given.
MODEL_FILE_NAMES = ("model.pt", "torchscript_model.pt", "model.pth", "model.ts", "weights.pt")
#: Card file names looked for beside a weight file, after ``<stem>.json``.
CARD_FILE_NAMES = ("card.json", "config.json", "napari_xai_card.json")
_WEIGHT_SUFFIXES = (".pt", ".pth", ".ts", ".torchscript", ".bin")


class ModelError(ValueError):
    """A model file cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class LoadedModel:
    """A torch module ready for inference, with what is needed to feed it.

    Attributes
    ----------
    module : torch.nn.Module
        In eval mode, on ``device``.
    card : ModelCard
        Classes, tile size, resolution, normalisation, Grad-CAM layer.
    sha256 : str
        Hash of the weight file's bytes (identifies the model in manifests).
    is_scripted : bool
        True for TorchScript modules (no forward hooks: captum layer methods
        only at the ``forward_features`` boundary).
    path : Path or None
        The weight file.
    device : torch.device
        Where ``module`` lives.
    """

    module: nn.Module
    card: ModelCard
    sha256: str
    is_scripted: bool
    path: Path | None = None
    device: torch.device = torch.device("cpu")

    @property
    def class_names(self) -> tuple[str, ...]:
        """Output class names (from the card)."""
        return self.card.class_names

    def to(self, device: str | torch.device | None) -> LoadedModel:
        """Return the same model on another device (``None``: best available)."""
        dev = choose_device(device)
        if dev == self.device:
            return self
        return LoadedModel(
            module=self.module.to(dev),
            card=self.card,
            sha256=self.sha256,
            is_scripted=self.is_scripted,
            path=self.path,
            device=dev,
        )


def choose_device(device: str | torch.device | None = None) -> torch.device:
    """Pick a torch device: the given one, or CUDA, then MPS, then CPU.

    ``"auto"`` and ``None`` mean the best available. Asking for CUDA or MPS where
    it is absent raises a clear error instead of failing inside torch.
    """
    if device is None or (isinstance(device, str) and device.lower() in ("", "auto")):
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelError(f"device {device!r}: CUDA is not available on this machine")
    if dev.type == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise ModelError(f"device {device!r}: Apple MPS is not available on this machine")
    return dev


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def resolve_factory(spec: str, *, path: object = "model") -> Callable[..., nn.Module]:
    """Return the registered factory named ``spec`` (nothing is imported from it).

    Parameters
    ----------
    spec : str
        A name from :func:`~napari_xai.core.models.architectures.registered_architectures`.
    path : object
        What named it (the card file), for the error message.

    Raises
    ------
    ModelError
        When ``spec`` is not a registered architecture; the message names
        ``path`` and lists the registered names.
    """
    from napari_xai.core.models.architectures import ArchitectureError, get_architecture

    try:
        factory = get_architecture(spec, source=path)
    except ArchitectureError as exc:
        raise ModelError(str(exc)) from None
    return factory


def _build(factory: Callable[..., nn.Module], card: ModelCard, *, path: object) -> nn.Module:
    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):  # builtins without a signature
        params = {}  # type: ignore[assignment]
    kwargs: dict[str, Any] = {}
    if "num_classes" in params:
        kwargs["num_classes"] = card.num_classes
    try:
        module = factory(**kwargs)
    except Exception as exc:
        raise ModelError(f"{path}: architecture factory failed: {exc}") from exc
    if not isinstance(module, nn.Module):
        raise ModelError(
            f"{path}: architecture factory returned {type(module).__name__}, not a torch Module"
        )
    return module


def _is_torchscript(names: list[str]) -> bool:
    return any("/code/" in n for n in names) and any(n.endswith("constants.pkl") for n in names)


def _zip_names(path: Path) -> list[str]:
    try:
        with zipfile.ZipFile(path) as zf:
            return zf.namelist()
    except zipfile.BadZipFile:
        raise ModelError(
            f"{path}: not a torch model file (expected a TorchScript archive or a "
            "state dict saved with torch.save)"
        ) from None


def _find_in_folder(folder: Path) -> Path:
    for name in MODEL_FILE_NAMES:
        if (folder / name).is_file():
            return folder / name
    candidates = sorted(p for p in folder.iterdir() if p.suffix.lower() in _WEIGHT_SUFFIXES)
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise ModelError(f"{folder}: no model file (*.pt, *.pth, *.ts) in this folder")
    raise ModelError(
        f"{folder}: several model files ({', '.join(p.name for p in candidates)}); "
        "name the one to use"
    )


def _card_file_beside(path: Path) -> Path | None:
    for candidate in (path.with_suffix(".json"), *(path.parent / n for n in CARD_FILE_NAMES)):
        if candidate.is_file():
            return candidate
    return None


def warn_card_mismatch(card: ModelCard, other_file: Path, *, model_path: Path, used: str) -> str:
    """Warn when the card in ``other_file`` disagrees with ``card`` on how the model is fed.

    Parameters
    ----------
    card : ModelCard
        The card in use.
    other_file : Path
        The other card (e.g. ``config.json`` beside a TorchScript file with an embedded card).
    model_path : Path
        The model file (named in the warning).
    used : str
        Which card is used, for the warning ("the embedded card").

    Returns
    -------
    str
        What differs (see :func:`~napari_xai.core.models.card.card_mismatch`); ``""``: no warning.
    """
    try:
        other = ModelCard.from_json(other_file)
    except (ModelCardError, OSError, ValueError) as exc:
        warnings.warn(
            f"{model_path}: {other_file} beside it is not a readable card ({exc}); using {used}",
            UserWarning,
            stacklevel=3,
        )
        return "unreadable"
    differ = card_mismatch(card, other)
    if differ:
        warnings.warn(
            f"{model_path}: the embedded card and {other_file} disagree ({differ}); using {used}",
            UserWarning,
            stacklevel=3,
        )
    return differ


def _card_beside(path: Path) -> ModelCard | None:
    card_file = _card_file_beside(path)
    return None if card_file is None else ModelCard.from_json(card_file)


def _unwrap_state_dict(obj: Any, path: Path) -> Mapping[str, torch.Tensor]:
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping) or not obj:
        raise ModelError(f"{path}: holds a {type(obj).__name__}, not a state dict of tensors")
    bad = [k for k, v in obj.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ModelError(f"{path}: state dict entries that are not tensors: {bad[:5]}")
    # Weights saved from DataParallel / torch.compile carry a prefix.
    for prefix in ("module.", "_orig_mod."):
        if all(str(k).startswith(prefix) for k in obj):
            obj = {str(k)[len(prefix) :]: v for k, v in obj.items()}
    state: Mapping[str, torch.Tensor] = obj
    return state


def _load_scripted(path: Path, card: ModelCard | None) -> tuple[nn.Module, ModelCard | None]:
    """Load a TorchScript file with ``card``, else its embedded card or the one beside it."""
    extra = {CARD_EXTRA_FILE: "", "config.json": ""}
    try:
        with warnings.catch_warnings():  # "torch.jit.load is deprecated" (torch 2.9+)
            warnings.simplefilter("ignore", DeprecationWarning)
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
    except Exception as exc:
        raise ModelError(f"{path}: cannot load TorchScript model: {exc}") from None
    if card is not None:
        return module, card
    raw = extra.get(CARD_EXTRA_FILE) or extra.get("config.json") or b""
    if not raw:
        return module, _card_beside(path)
    try:
        text = raw.decode() if isinstance(raw, bytes) else str(raw)
        card = ModelCard.from_dict(json.loads(text))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelError(f"{path}: embedded model card is not JSON: {exc}") from None
    beside = _card_file_beside(path)
    if beside is not None:
        warn_card_mismatch(card, beside, model_path=path, used="the embedded card")
    return module, card


def _load_weights(
    path: Path, card: ModelCard | None, *, architecture: str | None
) -> tuple[nn.Module, ModelCard]:
    """Build the card's (or ``architecture``'s) module and load the state dict at ``path``."""
    card_source: object = f"{path} (model card given by the caller)"
    if card is None:
        card_file = _card_file_beside(path)
        card = None if card_file is None else ModelCard.from_json(card_file)
        card_source = card_file
    if card is None:
        raise ModelError(
            f"{path}: no model card: put a card JSON (config.json / card.json / "
            f"{path.stem}.json) beside the weights"
        )
    spec = architecture or card.architecture
    if not spec:
        raise ModelError(
            f"{path}: state-dict weights need an architecture "
            "(a registered name) in the card or as architecture=..."
        )
    source = f"{path} (architecture= argument)" if architecture else card_source
    module = _build(resolve_factory(spec, path=source), card, path=path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ModelError(
            f"{path}: cannot read as tensors-only weights (weights_only=True): "
            f"{str(exc).splitlines()[0]}"
        ) from None
    try:
        module.load_state_dict(_unwrap_state_dict(state, path), strict=True)
    except RuntimeError as exc:
        raise ModelError(
            f"{path}: weights do not fit architecture {spec!r}: "
            f"{str(exc).splitlines()[0]} {str(exc).splitlines()[1:2]}"
        ) from None
    return module, card


def load_model(
    path_or_dir: str | Path,
    *,
    architecture: str | None = None,
    device: str | torch.device | None = None,
    card: ModelCard | None = None,
    validate: bool = True,
) -> LoadedModel:
    """Load a tile model (TorchScript or state dict) and its model card.

    Parameters
    ----------
    path_or_dir : str or Path
        Weight file, or a folder holding one (``model.pt``, ``torchscript_model.pt``…).
    architecture : str, optional
        Registered architecture name for state-dict weights (see
        :mod:`napari_xai.core.models.architectures`); overrides the card's.
    device : str or torch.device, optional
        ``"cuda"``, ``"mps"``, ``"cpu"``; best available when omitted or ``"auto"``.
    card : ModelCard, optional
        Card to use instead of the embedded or neighbouring one.
    validate : bool
        Run two blank tiles through the model and check its output against the
        card (shape, finite values).

    Returns
    -------
    LoadedModel

    Raises
    ------
    ModelError
        For a missing file, a file that is not a model, a missing/invalid card,
        an unknown architecture, weights that do not fit it, or outputs that do
        not match the card. Messages name the file.
    """
    path = Path(path_or_dir)
    if not path.exists():
        raise ModelError(f"{path}: model file not found")
    if path.is_dir():
        path = _find_in_folder(path)
    dev = choose_device(device)
    names = _zip_names(path)
    digest = _sha256(path)
    scripted = _is_torchscript(names)
    try:
        if scripted:
            module, card = _load_scripted(path, card)
        else:
            module, card = _load_weights(path, card, architecture=architecture)
    except ModelCardError as exc:
        raise ModelError(f"{path}: {exc}") from None
    if card is None:
        raise ModelError(
            f"{path}: no model card: embed one ({CARD_EXTRA_FILE}) or put config.json / "
            f"card.json / {path.stem}.json beside the file"
        )
    module = module.to(dev).eval()
    loaded = LoadedModel(
        module=module, card=card, sha256=digest, is_scripted=scripted, path=path, device=dev
    )
    if validate:
        _validate(loaded)
    return loaded


def model_failed(model: Any, source: Any, indices: Any, exc: BaseException) -> ModelError:
    """Build the one-line error for a model that raised on real tiles (model, slide, tiles).

    Parameters
    ----------
    model : LoadedModel
        The model that raised.
    source : Slide, path or array
        What its tiles came from.
    indices : array of int
        Grid indices of the batch.
    exc : BaseException
        What the model raised.
    """
    where = getattr(source, "path", None) or (source if isinstance(source, (str, Path)) else "")
    first = int(indices[0]) if len(indices) else -1
    text = " ".join(str(exc).split())  # one line, even for TorchScript's multi-line traces
    if len(text) > 300:
        text = text[:297] + "..."
    name = getattr(model, "path", None) or getattr(getattr(model, "card", None), "name", "model")
    return ModelError(
        f"{name}: the model failed on {where or 'the input'} "
        f"(batch of {len(indices)} tiles from grid index {first}): {type(exc).__name__}: {text}"
    )


def check_outputs(
    logits: torch.Tensor, card: ModelCard, *, batch: int, path: object = "model"
) -> None:
    """Raise :class:`ModelError` when model outputs do not fit the card or are not finite."""
    if not isinstance(logits, torch.Tensor):
        raise ModelError(
            f"{path}: the model returned {type(logits).__name__}, not a tensor of class scores"
        )
    if logits.ndim != 2 or logits.shape[0] != batch or logits.shape[1] != card.num_classes:
        raise ModelError(
            f"{path}: the model outputs shape {tuple(logits.shape)} for {batch} tiles, but "
            f"its card names {card.num_classes} classes {list(card.class_names)} "
            f"(expected ({batch}, {card.num_classes}))"
        )
    if not bool(torch.isfinite(logits).all()):
        raise ModelError(
            f"{path}: the model produced NaN or infinite outputs (bad weights, or inputs "
            "outside what it was trained on?)"
        )


def _validate(model: LoadedModel) -> None:
    from napari_xai.core.models.wsinfer import model_input_size

    try:
        rows, cols = model_input_size(model.card)
    except (KeyError, TypeError, ValueError):
        rows = cols = int(model.card.tile_size)
    size = f"{rows}×{cols}"
    x = torch.zeros((2, 3, rows, cols), device=model.device)
    x[1] = 0.5
    try:
        with torch.inference_mode():
            out = model.module(x)
    except Exception as exc:
        raise ModelError(
            f"{model.path}: running the model on 2 blank {size} tiles failed: {exc}"
        ) from None
    check_outputs(out, model.card, batch=2, path=model.path)


def save_torchscript(
    module: nn.Module, card: ModelCard, path: str | Path, *, script: bool = True
) -> Path:
    """Script (or trace) ``module`` and save it with ``card`` embedded.

    Parameters
    ----------
    module : torch.nn.Module
        Model to save (evaluated in eval mode).
    card : ModelCard
        Card embedded as the extra file ``napari_xai_card.json``.
    path : str or Path
        Output file.
    script : bool
        ``torch.jit.script`` (default) or trace with a blank tile.
    """
    path = Path(path)
    module = module.eval().cpu()
    with warnings.catch_warnings():  # TorchScript is deprecated in favour of torch.export
        warnings.simplefilter("ignore", DeprecationWarning)
        if script:
            scripted = torch.jit.script(module)
        else:
            size = int(card.tile_size)
            scripted = torch.jit.trace(module, torch.zeros(1, 3, size, size))
        extra = {CARD_EXTRA_FILE: json.dumps(card.to_wsinfer_config(), indent=2)}
        buf = io.BytesIO()
        torch.jit.save(scripted, buf, _extra_files=extra)
    path.write_bytes(buf.getvalue())
    return path
