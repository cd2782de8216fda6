"""Per-tile features of one layer, captured in the scoring forward pass.

:class:`FeatureCapture` replaces a model's forward during scoring
(``iter_predictions(..., forward=capture)``): it returns the logits as the
model would and keeps, per batch, the chosen layer's output pooled to one
vector per tile, the energy of the logits and (when asked and the model has
dropout) an MC-dropout uncertainty. No second pass over the slide is needed.

Where the layer comes from:

* the ``forward_features`` / ``forward_head`` boundary (timm's split, kept by
  TorchScript) when no layer is named or the model is scripted;
* otherwise a forward hook on the named module (e.g. the demo card's ``pool``).

The result folder keeps them in ``features.zarr`` (array ``features`` of
shape ``(n_tiles, dim)``, float16, rows in the order of ``tiles.parquet``).
"""

from __future__ import annotations

# ruff: noqa: TID253 (imported only while scoring with features, never by napari's menus)
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

__all__ = [
    "FEATURES_NAME",
    "add_features",
    "FeatureCapture",
    "FeatureError",
    "read_features",
    "write_features",
]

#: Name of the features store in a result folder.
FEATURES_NAME = "features.zarr"


class FeatureError(ValueError):
    """The model has no layer that gives features, or a features store is bad."""


def _pool(out: torch.Tensor) -> torch.Tensor:
    """One vector per tile: mean over space for maps, flattened otherwise."""
    if out.ndim == 4:
        return out.float().mean(dim=(2, 3))
    return out.float().reshape(out.shape[0], -1)


def _dropouts(module: nn.Module) -> list[nn.Module]:
    found = []
    for sub in module.modules():
        name = str(getattr(sub, "original_name", type(sub).__name__))
        if "Dropout" in name or isinstance(sub, nn.modules.dropout._DropoutNd):
            found.append(sub)
    return found


class FeatureCapture:
    """A forward that returns logits and records features of every batch.

    Parameters
    ----------
    model : LoadedModel or nn.Module
        The model (``.module`` and ``.card`` when loaded; a plain module works).
    layer : str, optional
        Dotted module name; default the card's ``feature_layer``, else the
        ``forward_features`` boundary.
    mc_samples : int
        MC-dropout passes per batch (0: none).

    Attributes
    ----------
    layer_name : str
        The layer actually used (``"forward_features"`` at the boundary).
    has_dropout : bool
        Whether MC-dropout can run on this model.

    Raises
    ------
    FeatureError
        When the layer is not in the model, or a scripted model has no
        ``forward_features``/``forward_head``.
    """

    def __init__(self, model: Any, *, layer: str | None = None, mc_samples: int = 0) -> None:
        module = getattr(model, "module", model)
        card = getattr(model, "card", None)
        self._name = str(getattr(card, "name", None) or type(module).__name__)
        self.module: nn.Module = module
        self.mc_samples = int(mc_samples)
        scripted = isinstance(module, torch.jit.ScriptModule)
        wanted = layer or getattr(card, "feature_layer", None)
        has_split = hasattr(module, "forward_features") and hasattr(module, "forward_head")
        self._hooked: nn.Module | None = None
        if wanted and wanted != "forward_features" and not scripted:
            modules = dict(module.named_modules())
            if wanted not in modules:
                if layer:  # named explicitly: an error; from the card: fall back
                    names = ", ".join(n for n in list(modules)[-6:] if n)
                    raise FeatureError(f"{self._name}: no layer named {wanted!r} (e.g. {names})")
                wanted = None
            else:
                self._hooked = modules[wanted]
        if self._hooked is None:
            if not has_split:
                raise FeatureError(
                    f"{self._name}: no feature layer: name one (a module of the model), or give "
                    "the model forward_features/forward_head (TorchScript models need them)"
                )
            wanted = "forward_features"
        self.layer_name: str = str(wanted)
        self._dropout = _dropouts(module)
        self.has_dropout = bool(self._dropout)
        self.features: list[npt.NDArray[np.float16]] = []
        self.energy: list[npt.NDArray[np.float32]] = []
        self.mc_uncertainty: list[npt.NDArray[np.float32]] = []

    def _forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self._hooked is None:
            fmap = self.module.forward_features(x)  # type: ignore[operator]
            logits: torch.Tensor = self.module.forward_head(fmap)  # type: ignore[operator]
            return logits, _pool(fmap)
        captured: list[torch.Tensor] = []
        handle = self._hooked.register_forward_hook(
            lambda _m, _i, out: captured.append(out.detach())
        )
        try:
            logits = self.module(x)
        finally:
            handle.remove()
        if not captured or not isinstance(captured[0], torch.Tensor):
            raise FeatureError(f"{self._name}: layer {self.layer_name!r} gave no tensor output")
        return logits, _pool(captured[-1])

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of ``x``; the batch's features, energy (and MC uncertainty) are kept."""
        from napari_xai.core.explore.ood import energy_score, mutual_information

        logits, feats = self._forward(x)
        self.features.append(feats.cpu().numpy().astype(np.float16))
        self.energy.append(energy_score(logits.float().cpu().numpy()))
        if self.mc_samples > 0 and self.has_dropout:
            was = [m.training for m in self._dropout]
            try:
                for m in self._dropout:
                    m.train()
                probs = [
                    torch.softmax(self.module(x).float(), dim=1).cpu().numpy()
                    for _ in range(self.mc_samples)
                ]
            finally:
                for m, w in zip(self._dropout, was, strict=True):
                    m.train(w)
            self.mc_uncertainty.append(mutual_information(np.stack(probs)))
        return logits

    def collect(self) -> dict[str, npt.NDArray[Any] | None]:
        """Everything recorded, concatenated in batch order.

        Returns
        -------
        dict
            ``features`` ``(N, D)`` float16, ``energy`` ``(N,)`` float32 and
            ``mc_uncertainty`` ``(N,)`` float32 or None.
        """
        dim = self.features[0].shape[1] if self.features else 0
        return {
            "features": np.concatenate(self.features)
            if self.features
            else np.zeros((0, dim), np.float16),
            "energy": np.concatenate(self.energy) if self.energy else np.zeros(0, np.float32),
            "mc_uncertainty": np.concatenate(self.mc_uncertainty) if self.mc_uncertainty else None,
        }


def write_features(
    folder: str | Path,
    features: npt.ArrayLike,
    *,
    layer: str,
    attrs: dict[str, Any] | None = None,
) -> Path:
    """Write ``features.zarr`` (array ``features``, float16) into a result folder.

    Parameters
    ----------
    folder : path-like
        The result folder (or the writer's temporary folder).
    features : array-like of shape (N, D)
        One row per row of ``tiles.parquet``, in its order.
    layer : str
        Where the features come from (recorded in the attributes).
    attrs : dict, optional
        More attributes (e.g. the model's name).

    Returns
    -------
    Path
        The store.
    """
    import zarr

    arr = np.asarray(features, dtype=np.float16)
    if arr.ndim != 2:
        raise FeatureError(f"features must be 2-D (tiles, dim), got shape {arr.shape}")
    path = Path(folder) / FEATURES_NAME
    root = zarr.open_group(str(path), mode="w")
    chunks = (max(1, min(arr.shape[0], 65536)), max(1, arr.shape[1]))
    z = root.create_array("features", shape=arr.shape, chunks=chunks, dtype="float16")
    if arr.size:
        z[...] = arr
    root.attrs.update({"layer": layer, "n_tiles": int(arr.shape[0]), "dim": int(arr.shape[1])})
    root.attrs.update(attrs or {})
    return path


def read_features(
    folder: str | Path, *, rows: Sequence[int] | npt.NDArray[np.int64] | None = None
) -> npt.NDArray[Any]:
    """Read the features of a result folder (float16, rows of ``tiles.parquet``).

    Parameters
    ----------
    folder : path-like
        A result folder scored with features (or its ``features.zarr``).
    rows : sequence of int, optional
        Only these rows.

    Raises
    ------
    FeatureError
        When the folder has no features (score it with ``--features``).
    """
    import zarr

    p = Path(folder)
    path = p if p.name == FEATURES_NAME else p / FEATURES_NAME
    if not path.is_dir():
        raise FeatureError(
            f"{p}: no {FEATURES_NAME}: score the slide with features (napari-xai score --features)"
        )
    try:
        z = zarr.open_group(str(path), mode="r")["features"]
    except (KeyError, ValueError, OSError) as exc:
        raise FeatureError(f"{path}: not a features store ({exc})") from None
    if not isinstance(z, zarr.Array):
        raise FeatureError(f"{path}: 'features' is not an array")
    if rows is None:
        return np.asarray(z[...])
    return np.asarray(z.get_orthogonal_selection((np.asarray(rows, np.int64), slice(None))))


def add_features(
    capture: FeatureCapture, tiles: Any, model: Any, folder: str | Path
) -> tuple[Any, dict[str, Any]]:
    """Write a finished capture into a result folder and add its columns to the tiles.

    Parameters
    ----------
    capture : FeatureCapture
        The capture the scoring run used (rows in the order of ``tiles``).
    tiles : pandas.DataFrame
        The tiles table of the same run.
    model : LoadedModel
        The model (its card may name a training feature summary).
    folder : path-like
        Where ``features.zarr`` goes (the result writer's folder).

    Returns
    -------
    (pandas.DataFrame, dict)
        The tiles with ``ood_score`` (and ``mc_uncertainty``) columns, and what
        the manifest records (layer, dim, ``ood_method``, ``ood_reference``).
    """
    from napari_xai.core.explore.ood import model_feature_stats, ood_scores

    got = capture.collect()
    feats = got["features"]
    assert feats is not None and got["energy"] is not None
    if len(feats) != len(tiles):
        raise FeatureError(
            f"captured {len(feats)} feature rows for {len(tiles)} tiles (a cancelled run?)"
        )
    stats = model_feature_stats(model)
    ood, method = ood_scores(feats, got["energy"], stats=stats, layer=capture.layer_name)
    out = tiles.copy()
    out["ood_score"] = ood
    if got["mc_uncertainty"] is not None:
        out["mc_uncertainty"] = got["mc_uncertainty"]
    out.attrs = {**dict(tiles.attrs), "ood_method": method}
    write_features(folder, feats, layer=capture.layer_name, attrs={"ood_method": method})
    info: dict[str, Any] = {
        "layer": capture.layer_name,
        "dim": int(feats.shape[1]),
        "dtype": "float16",
        "ood_method": method,
        "ood_reference": None if method != "mahalanobis" or stats is None else stats.reference,
        "mc_dropout": bool(got["mc_uncertainty"] is not None),
    }
    if capture.mc_samples and not capture.has_dropout:
        info["note"] = "mc_samples asked, but the model has no dropout: no mc_uncertainty"
    return out, info
