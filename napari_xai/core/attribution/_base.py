"""Shared machinery of the attribution methods: model preparation, method specs, reduction.

Every method lives in its own module (``saliency.py``, ``grad_cam.py``...) and
exposes one :class:`AttributionMethod`. This module holds what they share:

* :func:`prepare_model` turns a torch module, a TorchScript module or a loaded
  model (anything with ``.module`` and ``.card``) into a :class:`PreparedModel`
  that knows the Grad-CAM layer and which methods can run on it;
* :func:`reduce_attribution`, the one reduction of a method's output to one
  2-D map per tile used everywhere (see its docstring and ``docs/attribution.md``).
"""

from __future__ import annotations

# ruff: noqa: TID253 (imported only when attribution runs, never by napari's menus)
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from napari_xai.core.limits import check_batch_size
from napari_xai.core.options import Bounded, bounded

__all__ = [
    "AttributionError",
    "AttributionMethod",
    "ExplainOptions",
    "PreparedModel",
    "prepare_model",
    "reduce_attribution",
]


class AttributionError(ValueError):
    """A method cannot run on a model (e.g. Grad-CAM on a TorchScript model without hooks)."""


@dataclass(frozen=True)
class ExplainOptions(Bounded):
    """Options shared by the attribution methods.

    Attributes
    ----------
    batch_size : int
        Largest number of images sent through the model in one forward/backward
        pass, whatever the method (IG steps, GradientSHAP samples, occlusion
        windows and noise samples are batched internally to respect it).
    n_steps : int
        Integrated Gradients: number of steps along the path from the baseline.
    n_samples : int
        GradientSHAP: number of random baseline/input interpolations per image.
    smooth_samples : int
        SmoothGrad (captum ``NoiseTunnel``, ``nt_type='smoothgrad'``): number of
        noisy copies averaged; 0 turns it off.
    smooth_stdev : float
        SmoothGrad noise standard deviation as a fraction of the input range.
    occlusion_window : int or None
        Occlusion: side of the square occluding patch in model pixels
        (default: an eighth of the tile); stride is half the window.
    seed : int
        Seed of the random baselines / noise (GradientSHAP, SmoothGrad).
    """

    batch_size: int = bounded(16, low=1, limit=check_batch_size)
    n_steps: int = bounded(32, low=1)
    n_samples: int = bounded(8, low=1)
    smooth_samples: int = bounded(0, low=0)
    smooth_stdev: float = bounded(0.15, low=0)
    occlusion_window: int | None = bounded(None, low=1)
    seed: int = 0


@dataclass
class PreparedModel:
    """A model ready for attribution.

    Attributes
    ----------
    module : nn.Module
        Python module whose ``forward(x)`` returns class scores (N, K). For a
        TorchScript model exposing ``forward_features``/``forward_head`` this is a
        Python wrapper calling both, so that hooks can attach on the boundary.
    card : object or None
        The model card (``napari_xai.core.models.card.ModelCard``) when known.
    layer : nn.Module or None
        Layer used by Grad-CAM / Guided Grad-CAM / activations, None when no
        layer can be hooked.
    layer_name : str or None
        Its name (``"forward_features"`` for the scripted split).
    scripted : bool
        True for TorchScript models.
    module_hooks : bool
        True when hooks on inner modules (ReLUs for guided backpropagation) work.
    name : str
        Model name used in error messages.
    """

    module: nn.Module
    card: Any = None
    layer: nn.Module | None = None
    layer_name: str | None = None
    scripted: bool = False
    module_hooks: bool = True
    name: str = "model"
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def class_names(self) -> tuple[str, ...] | None:
        """Class names from the card, None when there is no card."""
        names = getattr(self.card, "class_names", None)
        return tuple(names) if names is not None else None


@dataclass(frozen=True)
class AttributionMethod:
    """One attribution method of the registry.

    Attributes
    ----------
    name : str
        Registry key (``"grad_cam"``).
    label : str
        Human-readable name for menus.
    captum : callable
        The captum attribution class, called as ``captum(forward_module)`` or, for a
        method that hooks a layer, ``captum(forward_module, layer)``;
        ``forward_module`` is the module captum differentiates (the model, or a
        wrapper that selects the target class).
    keywords : callable
        ``keywords(options, inputs) -> dict``: the keywords of ``attribute`` for one
        batch of model inputs (N, C, H, W), besides ``target`` (default: none).
    needs_layer : bool
        The method hooks a layer (Grad-CAM family).
    needs_module_hooks : bool
        The method hooks inner modules (guided backpropagation on ReLUs).
    single_pass : bool
        The method evaluates the model only on the input itself (so a predicted
        class can be chosen inside the same forward pass).
    smoothable : bool
        SmoothGrad (NoiseTunnel) may wrap it.
    expansion : callable
        ``expansion(options) -> int``: images per input in one forward batch,
        used to size sub-batches (GradientSHAP draws ``n_samples`` per input).
    postprocess : callable or None
        ``postprocess(attr, (H, W)) -> Tensor``: brings the raw output to what the
        reduction expects (Grad-CAM: layer to input resolution).
    description : str
        One line for the docs and tooltips.
    """

    name: str
    label: str
    captum: Callable[..., Any]
    keywords: Callable[[ExplainOptions, torch.Tensor], dict[str, Any]] = lambda options, x: {}
    needs_layer: bool = False
    needs_module_hooks: bool = False
    single_pass: bool = False
    smoothable: bool = True
    expansion: Callable[[ExplainOptions], int] = lambda options: 1
    postprocess: Callable[[torch.Tensor, tuple[int, int]], torch.Tensor] | None = None
    description: str = ""

    def build(self, prepared: PreparedModel, forward_module: nn.Module) -> Any:
        """Make the captum attribution object on ``forward_module`` (and the hooked layer)."""
        if self.needs_layer:
            assert prepared.layer is not None
            return self.captum(forward_module, prepared.layer)
        return self.captum(forward_module)

    def unsupported_reason(self, prepared: PreparedModel) -> str | None:
        """Why this method cannot run on ``prepared``, or None when it can."""
        if self.needs_layer and prepared.layer is None:
            if prepared.scripted:
                return (
                    "TorchScript models do not accept forward hooks and this one exposes no "
                    "forward_features/forward_head methods to split on"
                )
            return "no layer to hook: set cam_layer in the model card (no Conv2d was found)"
        if self.needs_module_hooks and not prepared.module_hooks:
            return (
                "guided backpropagation hooks the model's ReLU modules, which TorchScript "
                "models do not allow"
            )
        return None


class _SplitModule(nn.Module):
    """Python view of a scripted model split into ``forward_features`` and ``forward_head``."""

    def __init__(self, scripted: nn.Module) -> None:
        super().__init__()
        self.features = _ScriptedCall(scripted, "forward_features")
        self.head = _ScriptedCall(scripted, "forward_head")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.features(x))
        return out


class _ScriptedCall(nn.Module):
    """Call one method of a scripted module, as a hookable Python module."""

    def __init__(self, scripted: nn.Module, method: str) -> None:
        super().__init__()
        self.scripted = scripted
        self.method = method

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = getattr(self.scripted, self.method)(x)
        return out


def _last_conv(module: nn.Module) -> tuple[str, nn.Module] | None:
    found: tuple[str, nn.Module] | None = None
    for name, sub in module.named_modules():
        if isinstance(sub, nn.Conv2d):
            found = (name, sub)
    return found


def prepare_model(model: Any, *, cam_layer: str | None = None) -> PreparedModel:
    """Wrap a model for attribution and find its Grad-CAM layer.

    Parameters
    ----------
    model : nn.Module, torch.jit.ScriptModule, PreparedModel or loaded model
        A loaded model is anything with ``.module`` and ``.card`` attributes
        (``napari_xai.core.models.loading.LoadedModel``).
    cam_layer : str, optional
        Dotted name of the layer for Grad-CAM; default: the card's ``cam_layer``,
        else the last ``nn.Conv2d`` of the model.

    Returns
    -------
    PreparedModel

    Raises
    ------
    AttributionError
        When ``cam_layer`` names no layer of the model.
    """
    if isinstance(model, PreparedModel):
        return model
    card = getattr(model, "card", None)
    module = getattr(model, "module", model)
    if not isinstance(module, nn.Module):
        raise AttributionError(f"expected a torch module or a loaded model, got {type(model)!r}")
    name = str(getattr(card, "name", None) or type(module).__name__)
    module.eval()
    try:
        device = next(module.parameters()).device
    except StopIteration:
        device = torch.device("cpu")
    if isinstance(module, torch.jit.ScriptModule):
        has_split = all(hasattr(module, m) for m in ("forward_features", "forward_head"))
        if has_split:
            split = _SplitModule(module)
            return PreparedModel(
                module=split,
                card=card,
                layer=split.features,
                layer_name="forward_features",
                scripted=True,
                module_hooks=False,
                name=name,
                device=device,
            )
        return PreparedModel(
            module=module, card=card, scripted=True, module_hooks=False, name=name, device=device
        )
    # In-place ReLUs break layer hooks and guided backprop; turning them off does not
    # change what the model computes.
    for sub in module.modules():
        if isinstance(sub, nn.ReLU) and sub.inplace:
            sub.inplace = False
    layer_name = cam_layer or getattr(card, "cam_layer", None)
    layer: nn.Module | None
    if layer_name:
        try:
            layer = module.get_submodule(layer_name)
        except AttributeError as exc:
            names = [n for n, _ in module.named_modules() if n][-8:]
            raise AttributionError(
                f"{name}: Grad-CAM layer {layer_name!r} not found in the model "
                f"(last layers: {', '.join(names)})"
            ) from exc
    else:
        found = _last_conv(module)
        layer_name, layer = found if found is not None else (None, None)
    return PreparedModel(
        module=module, card=card, layer=layer, layer_name=layer_name, name=name, device=device
    )


def reduce_attribution(attr: torch.Tensor) -> torch.Tensor:
    """Reduce a method's output to one non-negative 2-D map per tile.

    The single reduction used for every method: **sum over channels, then keep
    the positive part** (evidence *for* the target class). Saliency gradients are
    absolute values already (captum's default), so for them this is the sum of
    ``|grad|`` over RGB; Grad-CAM has one channel and is ReLU'd, so it is unchanged.
    No per-tile normalisation: values stay in the method's units so that tiles of
    one slide are comparable and stitching shows no seams.

    Parameters
    ----------
    attr : Tensor of shape (N, C, H, W)

    Returns
    -------
    Tensor of shape (N, H, W)
    """
    if attr.ndim != 4:
        raise ValueError(f"expected an attribution of shape (N, C, H, W), got {tuple(attr.shape)}")
    return attr.sum(dim=1).clamp_min(0)
