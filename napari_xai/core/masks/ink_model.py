"""A small learned pixel classifier for thin ink strokes (numpy inference, weights committed).

Features
--------
Per pixel of a region at stroke resolution (a 6 px stroke at level 0 is 3 px
wide), in optical density (:func:`~napari_xai.core.masks.background.optical_density`):
the OD itself, its excess over the local stain (:func:`local_median` over 8 and
16 pixel cells), the mean of the 16-cell excess over its 4, 12 and 20 pixel
neighbourhoods (4 x 4 pixel cells: a stroke is a consistent line), the
share of pixels with some excess (:data:`DENSITY_OD`) in the 5 x 5 and 11 x 11
boxes around (a line fills little
of them, a nucleus most), and the chromatic share of
the excess and of the OD (each channel over their sum). Only *candidates*,
pixels whose excess exceeds :data:`CANDIDATE_OD` in some channel, are
classified; the rest is neither stroke nor anything else.

Model
-----
Three small multilayer perceptrons (ReLU, softmax over none / blue-green ink /
black ink / red ink; their probabilities averaged: one alone varies from
training to training on navy over haematoxylin-rich tissue), trained by
``scripts/train_ink_model.py`` on synthetic strokes of many colours, widths and
opacities composited, in transmittance, onto real tissue (``../shared/data``).
The weights are ``napari_xai/models/ink/ink_mlp.npz`` (a few kB); the file
records which material was trained on (``training``), see also ``docs/qc.md``.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from napari_xai.core.masks.background import Background, od_table

__all__ = [
    "CANDIDATE_OD",
    "InkModel",
    "ink_colour_fits",
    "ink_features",
    "load_ink_model",
    "local_median",
]

#: Smallest excess OD (largest channel) of a pixel the classifier looks at. The
#: model was trained on pixels above :data:`DENSITY_OD`; classifying only those
#: above 0.1 classifies fewer (CMU-1: 14% of the pixels instead of 17%) and
#: changed no held-out recall or precision by more than 0.02 (IHC false ink
#: 0.0085 -> 0.0072).
CANDIDATE_OD = 0.1

#: Excess OD of the training pixels and of those the candidate-density features count.
DENSITY_OD = 0.05

#: Version of :func:`ink_features` (a model file records the one it was trained on).
FEATURES_VERSION = 3

#: Number of features per pixel.
N_FEATURES = 26

#: Where the committed weights are.
MODEL_PATH = Path(__file__).resolve().parents[2] / "models" / "ink" / "ink_mlp.npz"

#: Labels of the model's output classes (:data:`~napari_xai.core.masks.ARTEFACT_LABELS`).
CLASS_LABELS = (0, 1, 2, 4)


def local_median(od: npt.NDArray[np.float32], *, cell: int) -> npt.NDArray[np.float32]:
    """Local stain OD: per-channel median of ``cell`` x ``cell`` cells, 3 x 3 median of cells.

    A stroke a few pixels wide covers a minority of each cell and of its
    neighbours, so the median is the stain around it. Cheap: one median per cell.
    """
    from scipy import ndimage as ndi

    rows, cols = od.shape[:2]
    pr, pc = -rows % cell, -cols % cell
    padded = np.pad(od, ((0, pr), (0, pc), (0, 0)), mode="edge")
    grid = padded.reshape(padded.shape[0] // cell, cell, padded.shape[1] // cell, cell, 3)
    med = np.median(grid.transpose(0, 2, 4, 1, 3).reshape(*grid.shape[::2][:2], 3, -1), axis=-1)
    med = ndi.median_filter(med, size=(3, 3, 1), mode="nearest")
    return np.repeat(np.repeat(med, cell, axis=0), cell, axis=1)[:rows, :cols].astype(np.float32)


def ink_features(
    px: npt.NDArray[np.int16],
    bg: Background,
    *,
    min_od: float = CANDIDATE_OD,
    within: npt.NDArray[np.bool_] | None = None,
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float32]]:
    """Candidate pixels of an RGB region and their features (see the module docstring).

    Parameters
    ----------
    px : array of shape (rows, cols, 3)
        Integer RGB (0-255) at stroke resolution.
    bg : Background
        The slide's glass.
    min_od : float
        Candidates have an excess OD above this (training: :data:`DENSITY_OD`).
    within : ndarray of shape (rows, cols), bool, optional
        Candidates only here (the features still see the whole region).

    Returns
    -------
    candidates : ndarray of shape (rows, cols), bool
    features : ndarray of shape (candidates.sum(), N_FEATURES), float32
    """
    from scipy import ndimage as ndi

    lut = od_table(bg)
    od = np.empty(px.shape, np.float32)
    for c in range(3):
        od[..., c] = lut[c][px[..., c]]
    ex16 = od - local_median(od, cell=16)
    ex_max = np.maximum(np.maximum(ex16[..., 0], ex16[..., 1]), ex16[..., 2])
    cand = ex_max > min_od
    if within is not None:
        cand &= within
    if not cand.any():
        return cand, np.zeros((0, N_FEATURES), np.float32)
    rr, cc = np.nonzero(cand)
    cols = [od[rr, cc], od[rr, cc] - local_median(od, cell=8)[rr, cc], ex16[rr, cc]]
    # neighbourhood: mean excess of 4 x 4 cells, and of 3 x 3 and 5 x 5 cells around them
    rows, ncols = cand.shape
    padded = np.pad(ex16, ((0, -rows % 4), (0, -ncols % 4), (0, 0)), mode="edge")
    grid = padded.reshape(padded.shape[0] // 4, 4, padded.shape[1] // 4, 4, 3).mean(axis=(1, 3))
    gi, gj = rr // 4, cc // 4
    cols.append(grid[gi, gj])
    for size in (3, 5):
        cols.append(ndi.uniform_filter(grid, size=(size, size, 1), mode="nearest")[gi, gj])
    # shape: a line of ink a few pixels wide fills little of a 5 x 5 or 11 x 11 box,
    # a nucleus most of it
    dense = (ex_max > DENSITY_OD).astype(np.float32)
    for size in (5, 11):
        cols.append(ndi.uniform_filter(dense, size=size, mode="nearest")[rr, cc, None])
    ex, o = cols[2], cols[0]
    cols.append(ex / (np.abs(ex).sum(axis=-1, keepdims=True) + 0.05))
    cols.append(o / (o.sum(axis=-1, keepdims=True) + 0.05))
    return cand, np.concatenate(cols, axis=1).astype(np.float32)


Layers = tuple[tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]], ...]


def ink_colour_fits(
    features: npt.NDArray[np.float32], prob: npt.NDArray[np.float32]
) -> npt.NDArray[np.bool_]:
    """Whether each candidate's excess OD has the colour of the ink class it is given.

    Loose versions of the colour rules, for the seeds of a stroke: blue, green
    and teal ink absorb red at least as much as green (``excess_R >= excess_G``);
    black ink absorbs all three nearly alike (``excess_min > 0.5 excess_max``)
    and much (``excess_min > 0.25``: a pen is dark);
    red ink absorbs green and blue far more than red (both > 1.5 ``excess_R``).
    Dark brown-grey DAB with haematoxylin, which the classifier may call black,
    absorbs less.
    """
    ex = np.maximum(features[:, 6:9], 0.0)  # the excess over the 16-cell median
    r, g, b = ex[:, 0], ex[:, 1], ex[:, 2]
    hi, lo = ex.max(axis=1), ex.min(axis=1)
    black = (lo > 0.5 * hi) & (lo > 0.25)
    fits = np.stack([r >= g, black, (g > 1.5 * r) & (b > 1.5 * r)], axis=1)
    return np.asarray(fits[np.arange(len(ex)), prob[:, 1:].argmax(axis=1)])


@dataclass(frozen=True)
class InkModel:
    """A trained ink classifier: a small ensemble of MLPs in numpy.

    Attributes
    ----------
    mean, scale : ndarray of shape (n_features,)
        Feature standardisation.
    members : tuple of layers
        Each member is a tuple of (weights, bias), weights of shape (n_in, n_out);
        ReLU between layers, softmax at the end; the members' probabilities are
        averaged.
    weak, strong : float
        A stroke is a connected set of pixels with ink probability above
        ``weak`` holding at least one above ``strong`` (hysteresis).
    training : dict
        What it was trained on, and what was held out.
    """

    mean: npt.NDArray[np.float32]
    scale: npt.NDArray[np.float32]
    members: tuple[Layers, ...]
    weak: float
    strong: float
    training: dict[str, Any]

    def predict(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Class probabilities (none, blue/green, black, red) of each row of ``features``."""
        # rows as columns: (classes, n) arrays reduce over their short axis quickly
        x = np.ascontiguousarray(((features - self.mean) / self.scale).T, dtype=np.float32)
        total = np.zeros((len(CLASS_LABELS), x.shape[1]), np.float32)
        for layers in self.members:
            h = x
            for n, (w, b) in enumerate(layers):
                h = w.T @ h
                h += b[:, None]
                if n < len(layers) - 1:
                    np.maximum(h, 0.0, out=h)
            h -= h.max(axis=0)
            np.exp(h, out=h)
            h /= h.sum(axis=0)
            total += h
        total /= len(self.members)
        return np.ascontiguousarray(total.T)

    def save(self, path: Path) -> None:
        """Write the model as a ``.npz`` (what :func:`load_ink_model` reads)."""
        arrays: dict[str, Any] = {"mean": self.mean, "scale": self.scale}
        for m, layers in enumerate(self.members):
            for n, (w, b) in enumerate(layers):
                arrays[f"m{m}_w{n}"] = w.astype(np.float32)
                arrays[f"m{m}_b{n}"] = b.astype(np.float32)
        meta = {
            "features_version": FEATURES_VERSION,
            "weak": self.weak,
            "strong": self.strong,
            "training": self.training,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, meta=np.array(json.dumps(meta)), **arrays)


@functools.lru_cache(maxsize=4)
def load_ink_model(path: Path = MODEL_PATH) -> InkModel:
    """Read an :class:`InkModel` (default: the committed weights), once per path.

    Raises
    ------
    ValueError
        When the file is not an ink model, or was trained on other features.
    """
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            n_members = sum(1 for k in z.files if re.fullmatch(r"m\d+_w0", k))
            members = tuple(
                tuple(
                    (z[f"m{m}_w{i}"].astype(np.float32), z[f"m{m}_b{i}"].astype(np.float32))
                    for i in range(sum(1 for k in z.files if k.startswith(f"m{m}_w")))
                )
                for m in range(n_members)
            )
            mean, scale = z["mean"].astype(np.float32), z["scale"].astype(np.float32)
    except (OSError, KeyError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable ink model ({exc})") from exc
    if meta.get("features_version") != FEATURES_VERSION:
        raise ValueError(
            f"{path}: trained on ink features version {meta.get('features_version')}, "
            f"this code computes version {FEATURES_VERSION}: retrain it "
            "(scripts/train_ink_model.py)"
        )
    if not members:
        raise ValueError(f"{path}: not a readable ink model (no layers)")
    return InkModel(
        mean, scale, members, float(meta["weak"]), float(meta["strong"]), meta["training"]
    )
