"""Attention audit of a set of tile images (a patch cohort) with a model.

Where the cohort is made of tiles rather than slides (NCT-CRC-HE style patch
datasets, the planted-shortcut cohort), each tile's region map comes from the
tile itself: artefacts from :func:`napari_xai.core.masks.artefact_mask` (inks,
dyes, marker glyphs, dark text), background where the pixel is bright and
unsaturated (glass), tissue elsewhere. The attribution comes from the project's
registry, on the model's own preprocessing (card mean/std and tile size).
"""

from __future__ import annotations

from collections.abc import Generator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from napari_xai.core.audit.attention import (
    ARTEFACT,
    BACKGROUND,
    TISSUE,
    AttentionAudit,
    AuditThresholds,
    audit_attention,
)

__all__ = ["TileAudit", "audit_tiles", "iter_audit_tiles", "tile_regions"]


def tile_regions(image: npt.ArrayLike) -> npt.NDArray[np.uint8]:
    """Region map of one RGB tile: artefact, background (glass) or tissue.

    Parameters
    ----------
    image : array-like of uint8, shape (H, W, 3)

    Returns
    -------
    ndarray of uint8, shape (H, W)
        :data:`~.attention.ARTEFACT` where an artefact is detected, else
        :data:`~.attention.BACKGROUND` where the pixel is bright (mean > 215) and
        unsaturated (HSV saturation < 0.08), else :data:`~.attention.TISSUE`.
    """
    from napari_xai.core.masks import artefact_mask

    rgb = np.asarray(image)[..., :3]
    arr = rgb.astype(np.float32)
    mx, mn = arr.max(axis=2), arr.min(axis=2)
    sat = (mx - mn) / np.maximum(mx, 1.0)
    out = np.full(rgb.shape[:2], TISSUE, np.uint8)
    out[(arr.mean(axis=2) > 215) & (sat < 0.08)] = BACKGROUND
    out[np.asarray(artefact_mask(rgb), bool)] = ARTEFACT
    return out


@dataclass
class TileAudit:
    """Result of :func:`audit_tiles`.

    Attributes
    ----------
    attention : AttentionAudit
    images : ndarray of uint8, shape (N, H, W, 3)
    maps : ndarray of float32, shape (N, H, W)
        Attribution maps.
    regions : ndarray of uint8, shape (N, H, W)
    pred_class : list of str
    probabilities : ndarray of float32, shape (N, C)
    class_names : tuple of str
    method : str
    """

    attention: AttentionAudit
    images: npt.NDArray[np.uint8]
    maps: npt.NDArray[np.float32]
    regions: npt.NDArray[np.uint8]
    pred_class: list[str]
    probabilities: npt.NDArray[np.float32]
    class_names: tuple[str, ...]
    method: str

    @property
    def verdict(self) -> str:
        """``"pass"``, ``"warn"``, ``"fail"`` or ``"n/a"``."""
        return self.attention.verdict


def _load_images(images: npt.ArrayLike | Sequence[str | Path]) -> npt.NDArray[np.uint8]:
    if isinstance(images, np.ndarray):
        arr = images
    else:
        seq: list[Any] = list(images)  # type: ignore[arg-type]
        if seq and isinstance(seq[0], (str, Path)):
            from PIL import Image

            loaded = []
            for p in seq:
                p = Path(p)
                try:
                    with Image.open(p) as img:
                        loaded.append(np.asarray(img.convert("RGB")))
                except (OSError, ValueError) as exc:
                    raise ValueError(f"{p}: cannot read image ({exc})") from exc
            shapes = {a.shape for a in loaded}
            if len(shapes) > 1:
                raise ValueError(f"tiles must share one size, got {sorted(shapes)[:4]}")
            arr = np.stack(loaded)
        else:
            arr = np.asarray(seq)
    if arr.ndim != 4 or arr.shape[-1] < 3:
        raise ValueError(f"expected tiles of shape (N, H, W, 3), got {arr.shape}")
    return np.ascontiguousarray(arr[..., :3], dtype=np.uint8)


def iter_audit_tiles(
    images: npt.ArrayLike | Sequence[str | Path],
    model: Any,
    *,
    method: str = "integrated_gradients",
    target: int | str | None = None,
    batch_size: int = 32,
    regions: npt.ArrayLike | None = None,
    thresholds: AuditThresholds | None = None,
    device: str | None = None,
    **options: Any,
) -> Generator[tuple[int, int], None, TileAudit]:
    """Audit where a model looks on tile images (generator: yields ``(done, total)``).

    Parameters
    ----------
    images : ndarray of uint8 (N, H, W, 3), or sequence of image paths
        The tiles (all the same size).
    model : LoadedModel, str or Path
        Model with its card, a model file/folder, or ``"demo"``.
    method : str
        Attribution method (key of ``ATTRIBUTION_METHODS``).
    target : int, str or None
        Class to explain (default: each tile's predicted class).
    batch_size : int
        Tiles per batch.
    regions : array-like of uint8, shape (N, H, W), optional
        Known region maps; detected from the tiles (:func:`tile_regions`) otherwise.
    thresholds : AuditThresholds, optional
    device : str, optional
    **options
        Attribution options (``n_steps``...).

    Returns
    -------
    TileAudit
    """
    from napari_xai.core.attribution import Explainer, ExplainOptions
    from napari_xai.core.models.resolve import resolve_model
    from napari_xai.core.predict import predict_probabilities

    tiles = _load_images(images)
    loaded = resolve_model(model, device=device)
    card = getattr(loaded, "card", None)
    names: tuple[str, ...] = tuple(card.class_names) if card is not None else ()
    if "n_steps" not in options and method == "integrated_gradients":
        options["n_steps"] = 16
    explainer = Explainer(
        loaded,
        method=method,
        target=target,
        options=ExplainOptions(batch_size=batch_size, **options),
    )
    n = len(tiles)
    maps = np.zeros(tiles.shape[:3], np.float32)
    probs_list: list[npt.NDArray[np.float32]] = []
    for start in range(0, n, batch_size):
        chunk = tiles[start : start + batch_size]
        m, _ = explainer.explain(chunk)
        maps[start : start + len(chunk)] = m
        probs_list.append(predict_probabilities(explainer.prepared, chunk))
        yield min(start + batch_size, n), n
    probs = np.concatenate(probs_list) if probs_list else np.zeros((0, len(names)), np.float32)
    pred = [names[i] if i < len(names) else str(i) for i in probs.argmax(axis=1)]
    regs = (
        np.asarray(regions, np.uint8)
        if regions is not None
        else np.stack([tile_regions(t) for t in tiles])
        if n
        else np.zeros(tiles.shape[:3], np.uint8)
    )
    attention = audit_attention(
        maps, regs, pred_class=pred, thresholds=thresholds, sign="positive"
    )
    return TileAudit(
        attention=attention,
        images=tiles,
        maps=maps,
        regions=regs,
        pred_class=pred,
        probabilities=probs.astype(np.float32),
        class_names=names,
        method=method,
    )


def audit_tiles(
    images: npt.ArrayLike | Sequence[str | Path], model: Any, **kwargs: Any
) -> TileAudit:
    """Run :func:`iter_audit_tiles` to the end (same parameters)."""
    gen = iter_audit_tiles(images, model, **kwargs)
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            result: TileAudit = stop.value
            return result
