"""Counterfactual shortcut test: remove and add artefacts, re-score, compare with a control.

Independent of any saliency map. For every predicted class ``c`` and artefact kind
``k`` (tiles of ``c`` that contain ``k``):

- **removal**: the artefact's pixels (dilated by one pixel, and grown a few
  pixels into the non-tissue or near-white pixels they sit on: the paper of a
  label, the glass under a pen line) are inpainted from the surrounding tissue
  (mean of known neighbours, grown inwards) and the tile is re-scored. A *flip* is
  a tile no longer called ``c`` whose ``p(c)`` dropped by at least ``min_shift``
  (a tile at 0.51 that goes to 0.49 has not changed its mind); ``mean_dp`` is the
  mean drop of ``p(c)``. The **control** inpaints a region of the same shape moved
  onto plain tissue of the same tile.
- **paste**: the artefact's pixels are pasted, at the same place, onto clean tiles
  (no artefact) predicted as another class. A *flip* is a tile now called ``c``
  whose ``p(c)`` rose by at least ``min_shift``; ``mean_dp`` is the mean rise of
  ``p(c)``. The **control** pastes the same area
  filled with tissue from another clean tile.

A model whose ``c`` calls vanish when the mark is removed, or appear when it is
added, while the control edit moves nothing, has learned the mark.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "CounterfactualPair",
    "CounterfactualResult",
    "EditStats",
    "counterfactual_test",
    "inpaint",
    "tile_probabilities",
]


def tile_probabilities(
    model: Any, tiles: npt.ArrayLike, *, batch_size: int = 64
) -> npt.NDArray[np.float32]:
    """Class probabilities of uint8 RGB tiles (N, H, W, 3) in memory, through the card.

    The tiles go through the scoring forward pass
    (:func:`napari_xai.core.predict.predict_probabilities`: the card's transform,
    softmax, or sigmoid for a one-output model).

    Parameters
    ----------
    model : LoadedModel
        Model with its card.
    tiles : array-like of uint8, shape (N, H, W, 3)
    batch_size : int
        Tiles per forward pass.

    Returns
    -------
    ndarray of float32, shape (N, n_classes)
    """
    from napari_xai.core.predict import predict_probabilities

    arr = np.asarray(tiles)
    out = [
        predict_probabilities(model, arr[s : s + batch_size])
        for s in range(0, len(arr), batch_size)
    ]
    n_cls = len(model.card.class_names)
    return np.concatenate(out) if out else np.zeros((0, n_cls), np.float32)


def _dilate(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    out = mask.copy()
    out[1:] |= mask[:-1]
    out[:-1] |= mask[1:]
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    return out


def inpaint(image: npt.ArrayLike, mask: npt.ArrayLike) -> npt.NDArray[np.uint8]:
    """Fill ``mask`` from the surrounding pixels (mean of known 8-neighbours, grown inwards).

    Parameters
    ----------
    image : array-like of uint8, shape (H, W, 3)
    mask : array-like of bool, shape (H, W)
        Pixels to replace.

    Returns
    -------
    ndarray of uint8, shape (H, W, 3)
        A copy with the masked pixels filled.
    """
    img = np.asarray(image, np.float64).copy()
    todo = np.asarray(mask, bool).copy()
    if todo.all():
        raise ValueError("inpaint: the mask covers the whole image; nothing to fill from")
    known = ~todo
    h, w = todo.shape
    while todo.any():
        acc = np.zeros_like(img)
        cnt = np.zeros((h, w))
        pad_i = np.pad(img * known[..., None], ((1, 1), (1, 1), (0, 0)))
        pad_k = np.pad(known.astype(np.float64), 1)
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                if dr == 0 and dc == 0:
                    continue
                acc += pad_i[1 + dr : 1 + dr + h, 1 + dc : 1 + dc + w]
                cnt += pad_k[1 + dr : 1 + dr + h, 1 + dc : 1 + dc + w]
        grow = todo & (cnt > 0)
        img[grow] = acc[grow] / cnt[grow, None]
        known = known | grow
        todo = todo & ~grow
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def _grow_into(
    mask: npt.NDArray[np.bool_], allowed: npt.NDArray[np.bool_], steps: int
) -> npt.NDArray[np.bool_]:
    """Grow ``mask`` by up to ``steps`` pixels, only through ``allowed`` pixels (geodesic)."""
    out = mask.copy()
    for _ in range(max(int(steps), 0)):
        grown = _dilate(out) & (allowed | out)
        if (grown == out).all():
            break
        out = grown
    return out


def _moved_mask(
    mask: npt.NDArray[np.bool_], avoid: npt.NDArray[np.bool_]
) -> npt.NDArray[np.bool_] | None:
    """Move the mask to where it overlaps nothing in ``avoid`` (None when it cannot)."""
    h, w = mask.shape
    for dr, dc in ((h // 2, w // 2), (h // 2, 0), (0, w // 2), (h // 3, w // 3), (h // 4, 0)):
        moved = np.roll(mask, (dr, dc), axis=(0, 1))
        if not (moved & avoid).any():
            return moved
    return None


@dataclass(frozen=True)
class EditStats:
    """What one kind of edit did to the predictions.

    Attributes
    ----------
    n : int
        Tiles edited.
    n_flipped : int
        Tiles whose call changed (removal: no longer the class; paste: now the class).
    mean_dp : float
        Mean change of the class probability in the shortcut direction (removal:
        drop of ``p(class)``; paste: rise of ``p(class)``).
    to_class : str or None
        Most common new call of the flipped tiles (removal).
    """

    n: int
    n_flipped: int
    mean_dp: float
    to_class: str | None = None

    @property
    def flip_rate(self) -> float:
        """``n_flipped / n`` (0 when nothing was edited)."""
        return self.n_flipped / self.n if self.n else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "n": self.n,
            "n_flipped": self.n_flipped,
            "flip_rate": self.flip_rate,
            "mean_dp": self.mean_dp,
            "to_class": self.to_class,
        }


@dataclass(frozen=True)
class CounterfactualPair:
    """Counterfactual figures of one predicted class and one artefact kind."""

    pred_class: str
    kind: int
    removal: EditStats
    removal_control: EditStats
    paste: EditStats
    paste_control: EditStats

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "pred_class": self.pred_class,
            "kind": self.kind,
            "removal": self.removal.to_dict(),
            "removal_control": self.removal_control.to_dict(),
            "paste": self.paste.to_dict(),
            "paste_control": self.paste_control.to_dict(),
        }


@dataclass
class CounterfactualResult:
    """Result of :func:`counterfactual_test`."""

    pairs: list[CounterfactualPair]
    n_scored: int
    seconds: float
    examples: dict[str, npt.NDArray[np.uint8]] = field(default_factory=dict)

    @property
    def seconds_per_100_tiles(self) -> float:
        """Cost: seconds per 100 edited tiles scored."""
        return 100.0 * self.seconds / self.n_scored if self.n_scored else 0.0

    def pair(self, pred_class: str, kind: int) -> CounterfactualPair | None:
        """Return the figures of one (class, kind), or None when it was not tested."""
        for p in self.pairs:
            if p.pred_class == pred_class and p.kind == kind:
                return p
        return None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "pairs": [p.to_dict() for p in self.pairs],
            "n_scored": self.n_scored,
            "seconds": self.seconds,
            "seconds_per_100_tiles": self.seconds_per_100_tiles,
        }


def _stats(
    before: npt.NDArray[np.float32],
    after: npt.NDArray[np.float32],
    cls: int,
    names: tuple[str, ...],
    *,
    removal: bool,
    min_shift: float = 0.0,
) -> EditStats:
    if len(before) == 0:
        return EditStats(0, 0, 0.0)
    pred = after.argmax(axis=1)
    if removal:
        dp = before[:, cls] - after[:, cls]
        flipped = (pred != cls) & (dp >= min_shift)
        to = None
        if flipped.any():
            vals, counts = np.unique(pred[flipped], return_counts=True)
            to = names[int(vals[counts.argmax()])]
        return EditStats(len(before), int(flipped.sum()), float(dp.mean()), to)
    dp = after[:, cls] - before[:, cls]
    flipped = (pred == cls) & (dp >= min_shift)
    return EditStats(len(before), int(flipped.sum()), float(dp.mean()))


def counterfactual_test(
    model: Any,
    images: npt.ArrayLike,
    kinds: npt.ArrayLike,
    *,
    probabilities: npt.ArrayLike | None = None,
    tissue: npt.ArrayLike | None = None,
    max_tiles: int = 64,
    batch_size: int = 64,
    seed: int = 0,
    min_shift: float = 0.1,
    grow_px: int | None = None,
) -> CounterfactualResult:
    """Remove artefacts from the tiles that have them, paste them onto clean tiles, re-score.

    Parameters
    ----------
    model : LoadedModel
        Model with its card.
    images : array-like of uint8, shape (N, S, S, 3)
        Tiles at the model's input size.
    kinds : array-like of uint8, shape (N, S, S)
        Artefact kind under each pixel (0: none).
    probabilities : array-like, shape (N, n_classes), optional
        The tiles' probabilities (scored again when not given).
    tissue : array-like of bool, shape (N, S, S), optional
        Tissue pixels (controls are placed on tissue); default: everything that is
        not artefact.
    max_tiles : int
        Most tiles per (class, kind) and edit.
    batch_size : int
        Tiles per forward pass.
    seed : int
        Choice of tiles and of control sources.
    min_shift : float
        Least change of the class probability for a changed call to count as a
        flip (removal: drop, paste: rise).
    grow_px : int, optional
        How far (pixels) the edited area grows from the artefact into the
        non-tissue it touches (a label's paper around its text; default
        ``max(2, S // 10)``); 0 edits the artefact's pixels (dilated by one) only.

    Returns
    -------
    CounterfactualResult
    """
    t0 = time.perf_counter()
    t = _edit_context(model, images, kinds, probabilities, tissue, batch_size, min_shift, grow_px)
    rng = np.random.default_rng(seed)
    pairs: list[CounterfactualPair] = []
    n_scored = 0
    examples: dict[str, npt.NDArray[np.uint8]] = {}
    for k in sorted(int(v) for v in np.unique(t.kinds) if v != 0):
        has_k = (t.kinds == k).reshape(len(t.images), -1).any(axis=1)
        for c in sorted(set(t.pred[has_k].tolist())):
            src = _sample(np.flatnonzero(has_k & (t.pred == c)), max_tiles, rng)
            masks = np.stack(
                [_grow_into(_dilate(t.kinds[i] == k), t.off_tissue[i], t.grow) for i in src]
            )
            removal, removal_control, removed = _remove(t, src, masks, int(c))
            dst = _sample(np.flatnonzero(~t.any_artefact & (t.pred != c)), max_tiles, rng)
            paste, paste_control, pasted = _paste(t, src, dst, masks, int(c), k)
            n_scored += removal.n + removal_control.n + paste.n + paste_control.n
            key = f"{t.names[int(c)]}/{k}"
            examples[f"{key}/original"] = t.images[src[0]]
            examples[f"{key}/removed"] = removed[0]
            if pasted:
                examples[f"{key}/pasted"] = pasted[0]
            pairs.append(
                CounterfactualPair(
                    pred_class=t.names[int(c)],
                    kind=k,
                    removal=removal,
                    removal_control=removal_control,
                    paste=paste,
                    paste_control=paste_control,
                )
            )
    return CounterfactualResult(
        pairs=pairs, n_scored=n_scored, seconds=time.perf_counter() - t0, examples=examples
    )


@dataclass(frozen=True)
class _EditContext:
    """The tiles of one counterfactual test, their calls and where edits may grow."""

    model: Any
    images: npt.NDArray[np.uint8]
    kinds: npt.NDArray[np.uint8]
    probs: npt.NDArray[np.float32]
    pred: npt.NDArray[np.int64]
    names: tuple[str, ...]
    tissue: npt.NDArray[np.bool_]
    off_tissue: npt.NDArray[np.bool_]
    any_artefact: npt.NDArray[np.bool_]
    grow: int
    batch_size: int
    min_shift: float

    def rescore(
        self, idx: Sequence[int], edited: list[npt.NDArray[np.uint8]], cls: int, *, removal: bool
    ) -> EditStats:
        """Score the ``edited`` copies of tiles ``idx`` and compare with their first call."""
        if not edited:
            return EditStats(0, 0, 0.0)
        after = tile_probabilities(self.model, np.stack(edited), batch_size=self.batch_size)
        before = self.probs[np.asarray(idx, dtype=np.int64)]
        return _stats(before, after, cls, self.names, removal=removal, min_shift=self.min_shift)


def _edit_context(
    model: Any,
    images: npt.ArrayLike,
    kinds: npt.ArrayLike,
    probabilities: npt.ArrayLike | None,
    tissue: npt.ArrayLike | None,
    batch_size: int,
    min_shift: float,
    grow_px: int | None,
) -> _EditContext:
    """Check the inputs, score the tiles when needed, find tissue and where marks may grow."""
    imgs = np.asarray(images, np.uint8)
    kind_arr = np.asarray(kinds, np.uint8)
    if imgs.shape[:3] != kind_arr.shape:
        raise ValueError(f"images {imgs.shape} and kinds {kind_arr.shape} do not match")
    probs = (
        np.asarray(probabilities, np.float32)
        if probabilities is not None
        else tile_probabilities(model, imgs, batch_size=batch_size)
    )
    tis = (np.asarray(tissue, bool) if tissue is not None else np.ones(kind_arr.shape, bool)) & (
        kind_arr == 0
    )
    # Where a mark may grow: non-tissue, or near-white (paper, glass; a tissue mask
    # fills the holes a label's paper leaves in it).
    pale = (imgs.min(axis=-1) >= 215) & (
        imgs.max(axis=-1).astype(np.int16) - imgs.min(axis=-1) < 25
    )
    return _EditContext(
        model=model,
        images=imgs,
        kinds=kind_arr,
        probs=probs,
        pred=probs.argmax(axis=1),
        names=tuple(str(c) for c in model.card.class_names),
        tissue=tis,
        off_tissue=(~tis | pale) & (kind_arr == 0),
        any_artefact=np.asarray((kind_arr > 0).reshape(len(imgs), -1).any(axis=1), bool),
        grow=max(2, imgs.shape[1] // 10) if grow_px is None else int(grow_px),
        batch_size=batch_size,
        min_shift=min_shift,
    )


def _sample(
    idx: npt.NDArray[np.intp], max_tiles: int, rng: np.random.Generator
) -> npt.NDArray[np.intp]:
    """At most ``max_tiles`` of ``idx``, a seeded random subset in order."""
    if len(idx) > max_tiles:
        return np.sort(rng.choice(idx, max_tiles, replace=False))
    return idx


def _remove(
    t: _EditContext, src: npt.NDArray[np.intp], masks: npt.NDArray[np.bool_], cls: int
) -> tuple[EditStats, EditStats, list[npt.NDArray[np.uint8]]]:
    """Inpaint the marks of tiles ``src``, and as control the same area moved onto tissue."""
    removed, ctrl, ctrl_idx = [], [], []
    for j, i in enumerate(src):
        removed.append(inpaint(t.images[i], masks[j]))
        moved = _moved_mask(masks[j], ~t.tissue[i])
        if moved is not None:
            ctrl.append(inpaint(t.images[i], moved))
            ctrl_idx.append(int(i))
    removal = t.rescore(src.tolist(), removed, cls, removal=True)
    return removal, t.rescore(ctrl_idx, ctrl, cls, removal=True), removed


def _paste(
    t: _EditContext,
    src: npt.NDArray[np.intp],
    dst: npt.NDArray[np.intp],
    masks: npt.NDArray[np.bool_],
    cls: int,
    kind: int,
) -> tuple[EditStats, EditStats, list[npt.NDArray[np.uint8]]]:
    """Paste the marks of ``src`` onto clean tiles ``dst``; control: clean tissue pasted."""
    pasted, pasted_c = [], []
    clean_pool = np.flatnonzero(~t.any_artefact)
    for j, d in enumerate(dst):
        s = j % len(src)
        m = masks[s] & ((t.kinds[src[s]] == kind) | t.off_tissue[src[s]])
        out = t.images[d].copy()
        out[m] = t.images[src[s]][m]
        pasted.append(out)
        donor = clean_pool[(np.searchsorted(clean_pool, d) + 1 + j) % len(clean_pool)]
        out_c = t.images[d].copy()
        out_c[m] = t.images[donor][m]
        pasted_c.append(out_c)
    paste = t.rescore(dst.tolist(), pasted, cls, removal=False)
    return paste, t.rescore(dst.tolist(), pasted_c, cls, removal=False), pasted
