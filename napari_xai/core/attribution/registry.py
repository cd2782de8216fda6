"""Registry of attribution methods and :func:`explain_tiles`, the one call behind them."""

from __future__ import annotations

# ruff: noqa: TID253 (imported only when attribution runs, never by napari's menus)
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
import torch.nn.functional as F
from captum.attr import NoiseTunnel
from torch import nn

from napari_xai.core.attribution import (
    grad_cam,
    gradient_shap,
    guided_grad_cam,
    integrated_gradients,
    occlusion,
    saliency,
)
from napari_xai.core.attribution._base import (
    AttributionError,
    AttributionMethod,
    ExplainOptions,
    PreparedModel,
    prepare_model,
    reduce_attribution,
)
from napari_xai.core.predict import preprocess_tiles

__all__ = [
    "ATTRIBUTION_METHODS",
    "Explainer",
    "explain_tiles",
    "iter_explanations",
    "resolve_target",
    "supported_methods",
    "unsupported_methods",
]

#: Every method, by registry key, in menu order.
ATTRIBUTION_METHODS: dict[str, AttributionMethod] = {
    m.name: m
    for m in (
        grad_cam.METHOD,
        saliency.METHOD,
        integrated_gradients.METHOD,
        gradient_shap.METHOD,
        occlusion.METHOD,
        guided_grad_cam.METHOD,
    )
}


@contextmanager
def _seeded(seed: int, device: torch.device) -> Iterator[None]:
    """Draw one attribution call's random numbers from ``seed``; the caller's state is kept.

    captum draws GradientSHAP's baselines and interpolation points from numpy's
    global generator, and its input noise (and SmoothGrad's) from torch's on the
    input's device; both are seeded here and restored on the way out.
    """
    devices: list[int] = []
    if device.type == "cuda":
        devices = [torch.cuda.current_device() if device.index is None else device.index]
    np_state = np.random.get_state()
    with torch.random.fork_rng(devices=devices):
        torch.random.default_generator.manual_seed(seed)
        for index in devices:
            with torch.cuda.device(index):
                torch.cuda.manual_seed(seed)
        np.random.seed(seed % 2**32)
        try:
            yield
        finally:
            np.random.set_state(np_state)


def unsupported_methods(model: Any) -> dict[str, str]:
    """Methods that cannot run on ``model``, with the reason for each.

    Parameters
    ----------
    model : nn.Module, TorchScript module or loaded model

    Returns
    -------
    dict of str to str
        Method name → reason; empty when every method is supported.
    """
    prepared = prepare_model(model)
    out: dict[str, str] = {}
    for name, method in ATTRIBUTION_METHODS.items():
        reason = method.unsupported_reason(prepared)
        if reason is not None:
            out[name] = reason
    return out


def supported_methods(model: Any) -> tuple[str, ...]:
    """Names of the attribution methods that can run on ``model``.

    Input-gradient methods (saliency, integrated_gradients, gradient_shap,
    occlusion) run on any differentiable model; ``grad_cam`` needs a hookable
    layer (a Python module, or a TorchScript model exposing ``forward_features``
    and ``forward_head``); ``guided_grad_cam`` also hooks the ReLU modules, so
    never runs on TorchScript.
    """
    bad = unsupported_methods(model)
    return tuple(name for name in ATTRIBUTION_METHODS if name not in bad)


def resolve_target(target: int | str | None, prepared: PreparedModel) -> int | None:
    """Class index from a target given as index, class name, ``None`` or ``"predicted"``."""
    if target is None or (isinstance(target, str) and target.lower() == "predicted"):
        return None
    names = prepared.class_names
    if isinstance(target, str):
        if names is None or target not in names:
            raise AttributionError(
                f"{prepared.name}: unknown class {target!r}; classes: {', '.join(names or ())}"
            )
        return names.index(target)
    index = int(target)
    if index < 0 or (names is not None and index >= len(names)):
        raise AttributionError(
            f"{prepared.name}: class index {index} out of range (model has "
            f"{len(names) if names else '?'} classes)"
        )
    return index


class _TargetOutput(nn.Module):
    """Expose one class score per image: a fixed class or the one the model predicts."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module
        self.index: int | None = None
        self.last_prediction: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.module(x)
        if out.ndim == 1:
            out = out[:, None]
        if self.index is None:
            idx = out.detach().argmax(dim=1, keepdim=True)
        else:
            idx = torch.full((out.shape[0], 1), self.index, device=out.device, dtype=torch.long)
        self.last_prediction = idx[:, 0]
        result: torch.Tensor = out.gather(1, idx)
        return result


@dataclass
class ExplainedBatch:
    """Maps of one batch: ``maps`` (n, H, W) float32 and ``targets`` (n,) class indices."""

    maps: npt.NDArray[np.float32]
    targets: npt.NDArray[np.int64]
    start: int


class Explainer:
    """Compute one attribution method on batches of tiles.

    Parameters
    ----------
    model : nn.Module, TorchScript module or loaded model
    method : str
        Key of :data:`ATTRIBUTION_METHODS`.
    target : int, str or None
        Class index or name; None (or ``"predicted"``) for each tile's predicted class.
    options : ExplainOptions, optional
    cam_layer : str, optional
        Overrides the card's Grad-CAM layer.

    Raises
    ------
    AttributionError
        Unknown method, or a method the model does not support (the message lists
        the supported ones).
    """

    def __init__(
        self,
        model: Any,
        *,
        method: str = "grad_cam",
        target: int | str | None = None,
        options: ExplainOptions | None = None,
        cam_layer: str | None = None,
    ) -> None:
        self.prepared = prepare_model(model, cam_layer=cam_layer)
        if method not in ATTRIBUTION_METHODS:
            raise AttributionError(
                f"unknown attribution method {method!r}; choose one of "
                f"{', '.join(ATTRIBUTION_METHODS)}"
            )
        self.method = ATTRIBUTION_METHODS[method]
        reason = self.method.unsupported_reason(self.prepared)
        if reason is not None:
            raise AttributionError(
                f"{self.prepared.name}: {self.method.label} is not available for this model: "
                f"{reason}. Supported: {', '.join(supported_methods(self.prepared))}"
            )
        self.options = options or ExplainOptions()
        if self.options.smooth_samples and not self.method.smoothable:
            raise AttributionError(f"SmoothGrad cannot wrap {self.method.label}")
        self.target = resolve_target(target, self.prepared)
        self._selector = _TargetOutput(self.prepared.module)
        self._attr = self.method.build(self.prepared, self._forward_module)

    @property
    def _in_pass_target(self) -> bool:
        return self.method.single_pass and not self.options.smooth_samples

    @property
    def _forward_module(self) -> nn.Module:
        # Single-pass methods differentiate the selected class score directly, so the
        # predicted class comes from the same forward pass (no extra pass).
        return self._selector if self._in_pass_target else self.prepared.module

    def _predict(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            out = self.prepared.module(x)
        return out.argmax(dim=1) if out.ndim == 2 else torch.zeros(len(x), dtype=torch.long)

    def _run(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with warnings.catch_warnings():
            # captum says so each call when guided backprop hooks the ReLUs
            warnings.filterwarnings("ignore", message="Setting backward hooks on ReLU")
            return self._run_method(x)

    def _run_method(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        opts = self.options
        x = x.detach().requires_grad_(True)
        kwargs = self.method.keywords(opts, x)
        if self._in_pass_target:
            self._selector.index = self.target
            attr = self._attr.attribute(x, target=0, **kwargs)
            assert self._selector.last_prediction is not None
            targets = self._selector.last_prediction[: len(x)].clone()
        else:
            if self.target is None:
                targets = self._predict(x)
            else:
                targets = torch.full((len(x),), self.target, dtype=torch.long, device=x.device)
            if opts.smooth_samples:
                stdev = float(opts.smooth_stdev * (x.max() - x.min()).clamp_min(1e-6))
                with _seeded(opts.seed, x.device):
                    attr = NoiseTunnel(self._attr).attribute(
                        x,
                        nt_type="smoothgrad",
                        nt_samples=opts.smooth_samples,
                        nt_samples_batch_size=max(1, opts.batch_size // max(1, len(x))),
                        stdevs=stdev,
                        target=targets,
                        **kwargs,
                    )
            else:
                with _seeded(opts.seed, x.device):
                    attr = self._attr.attribute(x, target=targets, **kwargs)
        if self.method.postprocess is not None:
            attr = self.method.postprocess(attr, (int(x.shape[-2]), int(x.shape[-1])))
        return reduce_attribution(attr.detach()), targets

    def explain(
        self, tiles: npt.NDArray[Any] | torch.Tensor
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """Attribution maps of a batch of tiles.

        Parameters
        ----------
        tiles : ndarray of shape (N, H, W, 3) or Tensor of shape (N, C, H, W)
            See :func:`napari_xai.core.predict.preprocess_tiles`; split in sub-batches of
            ``options.batch_size // method expansion``.

        Returns
        -------
        maps : ndarray of shape (N, H, W), float32
            Reduced maps (:func:`reduce_attribution`) at the tiles' resolution.
        targets : ndarray of shape (N,), int64
            Class explained for each tile.
        """
        n = len(tiles)
        in_hw = (
            tuple(tiles.shape[-2:]) if isinstance(tiles, torch.Tensor) else tuple(tiles.shape[1:3])
        )
        step = max(1, self.options.batch_size // max(1, self.method.expansion(self.options)))
        maps: list[torch.Tensor] = []
        targets: list[torch.Tensor] = []
        with torch.inference_mode(False), torch.enable_grad():
            for start in range(0, n, step):
                chunk = tiles[start : start + step]
                x = preprocess_tiles(chunk, self.prepared.card, device=self.prepared.device)
                m, t = self._run(x)
                if tuple(m.shape[-2:]) != in_hw:
                    m = F.interpolate(m[:, None], size=in_hw, mode="bilinear")[:, 0]
                maps.append(m.float().cpu())
                targets.append(t.cpu())
        if not maps:
            return np.zeros((0, *in_hw), np.float32), np.zeros(0, np.int64)
        return (
            torch.cat(maps).numpy().astype(np.float32, copy=False),
            torch.cat(targets).numpy().astype(np.int64, copy=False),
        )


def iter_explanations(
    model: Any,
    tiles: npt.NDArray[Any] | torch.Tensor,
    *,
    method: str = "grad_cam",
    target: int | str | None = None,
    batch_size: int = 16,
    **options: Any,
) -> Iterator[ExplainedBatch]:
    """Yield attribution maps batch by batch (see :func:`explain_tiles`)."""
    explainer = Explainer(
        model,
        method=method,
        target=target,
        options=ExplainOptions(batch_size=batch_size, **options),
    )
    for start in range(0, len(tiles), batch_size):
        maps, targets = explainer.explain(tiles[start : start + batch_size])
        yield ExplainedBatch(maps=maps, targets=targets, start=start)


def explain_tiles(
    model: Any,
    tiles: npt.NDArray[Any] | torch.Tensor | Sequence[Any],
    *,
    method: str = "grad_cam",
    target: int | str | None = None,
    batch_size: int = 16,
    **options: Any,
) -> npt.NDArray[np.float32]:
    """Explain tiles with one attribution method.

    Parameters
    ----------
    model : nn.Module, TorchScript module or loaded model
        A loaded model (``.module`` + ``.card``) gets the card's normalisation,
        tile size and Grad-CAM layer.
    tiles : ndarray of shape (N, H, W, 3) or Tensor of shape (N, C, H, W)
        uint8 RGB tiles, or a float tensor already in model-input space.
    method : str
        Key of :data:`ATTRIBUTION_METHODS`: ``grad_cam``, ``saliency``,
        ``integrated_gradients``, ``gradient_shap``, ``occlusion``, ``guided_grad_cam``.
    target : int, str or None
        Class index or name; None for the class each tile is predicted as.
    batch_size : int
        Most images in one forward/backward pass.
    **options
        Fields of :class:`ExplainOptions`: ``n_steps`` (IG, default 32),
        ``n_samples`` (GradientSHAP), ``smooth_samples`` (SmoothGrad through
        NoiseTunnel, 0 = off), ``smooth_stdev``, ``occlusion_window``, ``seed``.

    Returns
    -------
    ndarray of shape (N, H, W), float32
        One non-negative map per tile (channel sum, positive part; not normalised).
    """
    if not isinstance(tiles, (np.ndarray, torch.Tensor)):
        tiles = np.stack([np.asarray(t) for t in tiles]) if len(tiles) else np.zeros((0, 1, 1, 3))
    parts = [
        b.maps
        for b in iter_explanations(
            model, tiles, method=method, target=target, batch_size=batch_size, **options
        )
    ]
    if not parts:
        hw = tiles.shape[-2:] if isinstance(tiles, torch.Tensor) else tiles.shape[1:3]
        return np.zeros((0, *hw), np.float32)
    return np.concatenate(parts)
