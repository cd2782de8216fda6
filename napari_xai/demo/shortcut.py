"""A planted-shortcut cohort: one class carries a marker glyph, and a model learns it.

The acceptance test of the audit. Tiles are synthetic H&E-like patches of two
classes, ``normal`` (sparse small round nuclei in pink stroma) and ``tumour``
(crowded, larger, darker, irregular nuclei). In the *shortcut* cohort every
tumour tile carries a small yellow marker glyph (a hand-written "R"-like token, as
labs put on slides) near its bottom-right corner, so a model can score perfectly
by looking at the glyph alone. The *clean* cohort is the same tiles without the
glyph. A tiny CNN trained on each (seconds on a CPU) gives the shortcut model and
the clean model; the attention audit must flag the first and pass the second.

To make the shortcut the easier rule (as it is in practice, where tile labels
come from slide labels), a fraction ``1 - purity`` of the tumour-labelled tiles
show normal-looking tissue: the marker is then the only perfect predictor.

``scripts/make_shortcut_cohort.py`` writes such a cohort to disk (PNG tiles +
``cohort.csv``) and ``scripts/train_shortcut_model.py`` trains and audits the
two models; the tests build tiny versions in memory with the same functions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import torch  # noqa: TID253 (the demo trains models)
from torch import nn  # noqa: TID253

from napari_xai.core.audit.attention import ARTEFACT, TISSUE
from napari_xai.core.models.demo import TINY_CNN_ARCHITECTURE, TinyCNN

CLASS_NAMES: tuple[str, str] = ("normal", "tumour")
#: Marker glyph on a 7 x 5 grid (an "R"), scaled to the marker size.
_GLYPH_R = np.array(
    [
        [1, 1, 1, 1, 0],
        [1, 0, 0, 0, 1],
        [1, 0, 0, 0, 1],
        [1, 1, 1, 1, 0],
        [1, 0, 1, 0, 0],
        [1, 0, 0, 1, 0],
        [1, 0, 0, 0, 1],
    ],
    dtype=bool,
)
MEAN: tuple[float, float, float] = (0.5, 0.5, 0.5)
STD: tuple[float, float, float] = (0.25, 0.25, 0.25)


@dataclass
class ShortcutCohort:
    """In-memory tiles of a (planted-shortcut or clean) cohort.

    Attributes
    ----------
    images : ndarray of uint8, shape (N, H, W, 3)
        RGB tiles.
    labels : ndarray of int64, shape (N,)
        Class index into :data:`CLASS_NAMES`.
    regions : ndarray of uint8, shape (N, H, W)
        Region map per tile (:data:`~napari_xai.core.audit.attention.TISSUE`, and
        :data:`~napari_xai.core.audit.attention.ARTEFACT` on the glyph).
    has_marker : ndarray of bool, shape (N,)
        Whether the tile carries the marker glyph.
    """

    images: npt.NDArray[np.uint8]
    labels: npt.NDArray[np.int64]
    regions: npt.NDArray[np.uint8]
    has_marker: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def render_tissue(kind: str, *, size: int, rng: np.random.Generator) -> npt.NDArray[np.uint8]:
    """Render one H&E-like tissue tile.

    Parameters
    ----------
    kind : {"normal", "tumour"}
        Tissue type.
    size : int
        Tile side in pixels.
    rng : numpy.random.Generator
        Random source.

    Returns
    -------
    ndarray of uint8, shape (size, size, 3)
    """
    if kind not in CLASS_NAMES:
        raise ValueError(f"unknown tissue kind {kind!r}; expected one of {CLASS_NAMES}")
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    # Eosin stroma with some low-frequency variation.
    base = np.array([232, 170, 200], dtype=np.float32) + rng.normal(0, 6, 3)
    img = np.broadcast_to(base, (size, size, 3)).copy()
    phase = rng.uniform(0, 2 * np.pi, 2)
    wave = np.sin(xx / size * 2 * np.pi + phase[0]) * np.cos(yy / size * 2 * np.pi + phase[1])
    img += wave[..., None] * np.array([6, 14, 8], dtype=np.float32)
    tumour = kind == "tumour"
    area_scale = (size / 64.0) ** 2
    n_nuclei = int(rng.integers(22, 32) if tumour else rng.integers(8, 13)) * area_scale
    r_lo, r_hi = (2.6, 4.2) if tumour else (1.6, 2.6)
    r_lo, r_hi = r_lo * size / 64.0, r_hi * size / 64.0
    hema = np.array([70, 40, 120], dtype=np.float32) if tumour else np.array([110, 70, 150.0])
    for _ in range(int(n_nuclei)):
        cy, cx = rng.uniform(0, size, 2)
        ry = rng.uniform(r_lo, r_hi)
        rx = ry * (rng.uniform(0.6, 1.4) if tumour else rng.uniform(0.85, 1.15))
        theta = rng.uniform(0, np.pi)
        ct, st = np.cos(theta), np.sin(theta)
        dy, dx = yy - cy, xx - cx
        u = (dy * ct + dx * st) / ry
        v = (-dy * st + dx * ct) / rx
        inside = (u * u + v * v) <= 1.0
        colour = hema + rng.normal(0, 8, 3)
        img[inside] = 0.25 * img[inside] + 0.75 * colour
    img += rng.normal(0, 4, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


#: Marker kinds of :func:`stamp_marker` (and a typical colour for each).
MARKER_KINDS: dict[str, tuple[int, int, int]] = {
    "R": (240, 220, 40),  # yellow 'R' token
    "stroke": (40, 150, 60),  # green pen stroke
    "circle": (40, 70, 190),  # blue pen circle
    "arrow": (25, 25, 30),  # black arrow
    "ruler": (215, 175, 60),  # yellow-brown ruler edge with dark ticks
    "label": (30, 30, 35),  # printed label: dark text lines on white paper
}


def _shape_mask(kind: str, h: int, w: int, rng: np.random.Generator) -> npt.NDArray[np.bool_]:
    """Pixels of a non-glyph marker (stroke, circle, arrow, ruler) in an (h, w) tile."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    t = max(2.0, h / 24)  # pen width
    if kind == "stroke":
        # A slightly curved pen line across the bottom-right corner.
        c0 = rng.uniform(0.55, 0.7) * (h + w)
        d = (yy + xx - c0 - 0.004 * (yy - xx) ** 2) / np.sqrt(2)
        stroke: npt.NDArray[np.bool_] = np.abs(d) <= t / 2
        return stroke
    if kind == "circle":
        cy, cx = h * rng.uniform(0.68, 0.75), w * rng.uniform(0.68, 0.75)
        r = h * rng.uniform(0.14, 0.18)
        ring: npt.NDArray[np.bool_] = np.abs(np.hypot(yy - cy, xx - cx) - r) <= t / 2
        return ring
    if kind == "arrow":
        y0, x0 = h * rng.uniform(0.55, 0.62), w * rng.uniform(0.55, 0.62)
        y1, x1 = h * 0.9, w * 0.9
        L = np.hypot(y1 - y0, x1 - x0)
        uy, ux = (y1 - y0) / L, (x1 - x0) / L
        along = (yy - y0) * uy + (xx - x0) * ux
        across = -(yy - y0) * ux + (xx - x0) * uy
        shaft = (along >= 0) & (along <= L) & (np.abs(across) <= t / 2)
        head = (along >= 0) & (along <= L * 0.45) & (np.abs(across) <= (L * 0.45 - along) * 0.8)
        arrow: npt.NDArray[np.bool_] = shaft | head
        return arrow
    if kind == "ruler":
        band = int(round(h * rng.uniform(0.12, 0.15)))
        m = np.zeros((h, w), bool)
        m[h - band - 2 : h - 2, :] = True
        return m
    if kind == "label":
        # Paper rectangle in the bottom-right corner (the text is drawn on it).
        lh, lw = int(round(h * rng.uniform(0.22, 0.26))), int(round(w * rng.uniform(0.4, 0.45)))
        r0, c0 = h - lh - max(2, h // 32), w - lw - max(2, w // 32)
        m = np.zeros((h, w), bool)
        m[r0 : r0 + lh, c0 : c0 + lw] = True
        return m
    raise ValueError(f"unknown marker kind {kind!r}; expected one of {tuple(MARKER_KINDS)}")


def stamp_marker(
    image: npt.NDArray[np.uint8],
    *,
    rng: np.random.Generator,
    marker_size: int | None = None,
    colour: tuple[int, int, int] | None = None,
    kind: str = "R",
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.bool_]]:
    """Stamp the marker glyph near the bottom-right corner of a tile.

    Parameters
    ----------
    image : ndarray of uint8, shape (H, W, 3)
        Tile (not modified).
    rng : numpy.random.Generator
        Random source (position jitter of a couple of pixels).
    marker_size : int, optional
        Glyph height in pixels (default ``H // 4``).
    colour : (int, int, int), optional
        Ink colour (default: :data:`MARKER_KINDS` of ``kind``; yellow marker pen for
        the 'R': a colour that no tissue in the cohort has, so a model that never
        saw it has no reason to look at it).
    kind : str
        ``"R"`` (a glyph near the bottom-right corner), ``"stroke"``, ``"circle"``,
        ``"arrow"``, ``"ruler"`` or ``"label"`` (a printed label: white paper with
        lines of text in ``colour``) (see :data:`MARKER_KINDS`).

    Returns
    -------
    stamped : ndarray of uint8, shape (H, W, 3)
        Copy of the tile with the glyph.
    mask : ndarray of bool, shape (H, W)
        Artefact mask: the glyph's pixels dilated by one pixel.
    """
    h, w = image.shape[:2]
    colour = MARKER_KINDS[kind] if colour is None and kind in MARKER_KINDS else colour
    if kind != "R":
        mask = _shape_mask(kind, h, w, rng)
        out = image.copy()
        ink = np.asarray(colour, dtype=np.float32) + rng.normal(0, 5, 3)
        out[mask] = np.clip(ink, 0, 255).astype(np.uint8)
        if kind == "ruler":  # dark ticks on the ruler edge
            rows = np.flatnonzero(mask.any(axis=1))
            step = max(3, w // 12)
            out[rows[0] : rows[0] + max(2, len(rows) // 2), ::step] = (40, 35, 30)
        if kind == "label":  # white paper, two lines of printed "words" in the ink colour
            out[mask] = np.clip(246 + rng.normal(0, 2, 3), 0, 255).astype(np.uint8)
            rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
            th = max(2, len(rows) // 5)
            # printed toner is neutral: one brightness jitter for all three channels
            toner = np.clip(np.asarray(colour, np.float32) + rng.normal(0, 4), 0, 255)
            for line in (0, 1):
                r = rows[0] + th // 2 + 1 + line * (2 * th)
                c = cols[0] + 2
                while c < cols[-1] - 2:
                    word = int(rng.integers(2, 5)) * th // 2 + 1
                    out[r : r + th, c : min(c + word, cols[-1] - 1)] = toner
                    c += word + max(1, th // 2 + 1)
        return out, _dilate1(mask)
    gh = int(marker_size or max(7, h // 4))
    gw = max(5, int(round(gh * 5 / 7)))
    rows = np.minimum((np.arange(gh) * _GLYPH_R.shape[0] / gh).astype(int), _GLYPH_R.shape[0] - 1)
    cols = np.minimum((np.arange(gw) * _GLYPH_R.shape[1] / gw).astype(int), _GLYPH_R.shape[1] - 1)
    glyph = _GLYPH_R[rows[:, None], cols[None, :]]
    margin = max(2, h // 16)
    jr, jc = rng.integers(0, 3, 2)
    r0 = h - margin - gh - int(jr)
    c0 = w - margin - gw - int(jc)
    mask = np.zeros((h, w), dtype=bool)
    mask[r0 : r0 + gh, c0 : c0 + gw] = glyph
    out = image.copy()
    ink = np.asarray(colour, dtype=np.float32) + rng.normal(0, 5, 3)
    out[mask] = np.clip(ink, 0, 255).astype(np.uint8)
    dilated = mask.copy()
    dilated[1:, :] |= mask[:-1, :]
    dilated[:-1, :] |= mask[1:, :]
    dilated[:, 1:] |= mask[:, :-1]
    dilated[:, :-1] |= mask[:, 1:]
    return out, dilated


def _dilate1(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    out = mask.copy()
    out[1:, :] |= mask[:-1, :]
    out[:-1, :] |= mask[1:, :]
    out[:, 1:] |= mask[:, :-1]
    out[:, :-1] |= mask[:, 1:]
    return out


def make_shortcut_cohort(
    n_per_class: int,
    *,
    size: int = 64,
    marker: bool = True,
    marker_classes: tuple[str, ...] = ("tumour",),
    purity: float = 0.45,
    seed: int = 0,
    marker_kind: str = "R",
    colour: tuple[int, int, int] | None = None,
    marker_fraction: float | dict[str, float] = 1.0,
) -> ShortcutCohort:
    """Build a planted-shortcut (or clean) cohort of tiles in memory.

    Parameters
    ----------
    n_per_class : int
        Tiles per class.
    size : int
        Tile side in pixels (64–96 keeps training to seconds on a CPU).
    marker : bool
        Stamp the marker glyph on every tile of ``marker_classes`` (the shortcut);
        ``False`` gives the clean cohort (same tissue, same seed, no glyph).
    marker_classes : tuple of str
        Classes that carry the marker; ``CLASS_NAMES`` marks every tile (an audit
        set where the glyph says nothing about the class).
    purity : float
        Fraction of tumour-labelled tiles that show tumour tissue (the rest look
        normal, as tiles of a tumour slide often do).
    seed : int
        Random seed; the same seed gives the same tissue with or without marker.
    marker_kind : str
        Kind of mark (key of :data:`MARKER_KINDS`).
    colour : (int, int, int), optional
        Its colour (default: the kind's).
    marker_fraction : float or dict
        Fraction of the tiles of ``marker_classes`` that carry the mark (drawn at
        random); a dict gives it per class (``{"tumour": 0.5, "normal": 0.25}``:
        a pen that marks half the tumour tiles and a quarter of the normal ones;
        ``marker_classes`` is then ignored). A clean twin is trained with the
        mark on a random half of the tiles of every class: the mark is then
        independent of the class and both marked and unmarked tiles are in its
        training data, so it learns to ignore the mark (with the mark on every
        tile, a tile without it would be new to the twin and its removal
        counterfactual undefined).

    Returns
    -------
    ShortcutCohort
    """
    if not 0.0 <= purity <= 1.0:
        raise ValueError(f"purity must be in [0, 1], got {purity}")
    fractions = (
        {c: float(marker_fraction.get(c, 0.0)) for c in CLASS_NAMES}
        if isinstance(marker_fraction, dict)
        else {c: float(marker_fraction) if c in marker_classes else 0.0 for c in CLASS_NAMES}
    )
    if not all(0.0 <= f <= 1.0 for f in fractions.values()):
        raise ValueError(f"marker_fraction must be in [0, 1], got {marker_fraction}")
    rng = np.random.default_rng(seed)
    marker_rng = np.random.default_rng(seed + 1)
    pick_rng = np.random.default_rng(seed + 3)
    n = 2 * n_per_class
    images = np.empty((n, size, size, 3), dtype=np.uint8)
    regions = np.full((n, size, size), TISSUE, dtype=np.uint8)
    labels = np.repeat(np.arange(2, dtype=np.int64), n_per_class)
    has_marker = np.zeros(n, dtype=bool)
    for i, label in enumerate(labels):
        cls = CLASS_NAMES[int(label)]
        looks = cls
        if cls == "tumour" and rng.random() >= purity:
            looks = "normal"
        tile = render_tissue(looks, size=size, rng=rng)
        stamped, mask = stamp_marker(tile, rng=marker_rng, kind=marker_kind, colour=colour)
        f = fractions[cls]
        if marker and f > 0.0 and (f >= 1.0 or pick_rng.random() < f):
            tile = stamped
            regions[i][mask] = ARTEFACT
            has_marker[i] = True
        images[i] = tile
    order = np.random.default_rng(seed + 2).permutation(n)
    return ShortcutCohort(images[order], labels[order], regions[order], has_marker[order])


def make_card(*, name: str, size: int = 64, description: str = "") -> Any:
    """Model card of a :class:`TinyCNN` trained on a shortcut-demo cohort.

    Parameters
    ----------
    name : str
        Model name (``"shortcut"`` / ``"clean"``).
    size : int
        Tile size it was trained on.
    description : str
        Free text.

    Returns
    -------
    napari_xai.core.models.card.ModelCard
    """
    from napari_xai.core.models.card import ModelCard

    return ModelCard(
        class_names=CLASS_NAMES,
        tile_size=int(size),
        mpp=0.5,
        mean=MEAN,
        std=STD,
        cam_layer="features.6",
        name=name,
        architecture=TINY_CNN_ARCHITECTURE,
        description=description,
        training_data="synthetic",
    )


def to_tensor(images: npt.NDArray[np.uint8]) -> torch.Tensor:
    """Normalise uint8 tiles (N, H, W, 3) to a float tensor (N, 3, H, W)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 255.0
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x - mean) / std


def train_tiny_cnn(
    cohort: ShortcutCohort,
    *,
    epochs: int = 5,
    batch_size: int = 32,
    lr: float = 3e-3,
    seed: int = 0,
    width: int = 8,
    on_epoch: Callable[[int, TinyCNN], Any] | None = None,
) -> TinyCNN:
    """Train :class:`TinyCNN` on a cohort (CPU, seconds).

    Parameters
    ----------
    cohort : ShortcutCohort
        Training tiles and labels.
    epochs, batch_size, lr : int, int, float
        Adam training schedule.
    seed : int
        Torch seed (weights and batch order).
    width : int
        Channels of the first conv layer.
    on_epoch : callable, optional
        Called as ``on_epoch(epoch, model)`` (model in eval mode) after every epoch:
        the place for an explainability check that fails fast (e.g. an attention
        audit on a few held-out tiles).

    Returns
    -------
    TinyCNN
        The trained model, in eval mode.
    """
    torch.manual_seed(seed)
    model = TinyCNN(n_classes=len(CLASS_NAMES), width=width)
    x = to_tensor(cohort.images)
    y = torch.from_numpy(cohort.labels)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for epoch in range(epochs):
        perm = torch.randperm(len(y), generator=gen)
        for start in range(0, len(y), batch_size):
            idx = perm[start : start + batch_size]
            xb = x[idx]
            # Flips keep the glyph's shape readable but move it: the model must find
            # it, not memorise one pixel position. Flip a random half of each batch.
            if torch.rand(1, generator=gen).item() < 0.5:
                xb = torch.flip(xb, dims=(3,))
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(xb), y[idx])
            loss.backward()
            opt.step()
        if on_epoch is not None:
            model.eval()
            on_epoch(epoch, model)
            model.train()
    model.eval()
    return model


def predict(model: nn.Module, images: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """Class probabilities, shape (N, n_classes), for uint8 tiles (N, H, W, 3)."""
    with torch.inference_mode():
        return torch.softmax(model(to_tensor(images)), dim=1).numpy().astype(np.float32)


def explain(
    model: nn.Module,
    images: npt.NDArray[np.uint8],
    *,
    method: str = "integrated_gradients",
    target: int | str | None = None,
    batch_size: int = 64,
    n_steps: int = 16,
) -> npt.NDArray[np.float32]:
    """Per-tile attribution maps (N, H, W) for uint8 tiles, through the project's registry.

    Calls :func:`napari_xai.core.attribution.explain_tiles` on the normalised
    tiles, so the maps are reduced as everywhere else (channel sum, positive part:
    evidence for the explained class).

    Parameters
    ----------
    model : torch.nn.Module
        Model taking normalised input (see :func:`to_tensor`).
    images : ndarray of uint8, shape (N, H, W, 3)
        Tiles.
    method : str
        Key of ``ATTRIBUTION_METHODS`` (``"integrated_gradients"``, ``"saliency"``,
        ``"grad_cam"``...).
    target : int, str or None
        Class to explain (default: each tile's predicted class).
    batch_size : int
        Most images per forward/backward pass.
    n_steps : int
        Integrated Gradients steps.

    Returns
    -------
    ndarray of float32, shape (N, H, W)
        Non-negative attribution maps.
    """
    from napari_xai.core.attribution import explain_tiles

    options: dict[str, Any] = {"n_steps": n_steps} if method == "integrated_gradients" else {}
    return explain_tiles(
        model, to_tensor(images), method=method, target=target, batch_size=batch_size, **options
    )


def write_cohort_slide(
    cohort: ShortcutCohort,
    path: Any,
    *,
    n_cols: int = 8,
    margin: int | None = None,
) -> Any:
    """Lay a cohort's tiles out as a slide (tiled TIFF, lossless) on white glass.

    The tiles sit edge to edge on the model's tile grid, with a white margin of one
    tile around them (glass, so the border band lies off tissue). Open it with
    ``mpp=0.5`` (the demo models' resolution; the file carries no mpp).

    Parameters
    ----------
    cohort : ShortcutCohort
        Tiles to lay out (row-major).
    path : str or Path
        Output ``.tif``.
    n_cols : int
        Tiles per row.
    margin : int, optional
        White margin in pixels (default one tile).

    Returns
    -------
    Path
    """
    from pathlib import Path

    import tifffile

    n, s = len(cohort), int(cohort.images.shape[1])
    m = s if margin is None else int(margin)
    n_rows = -(-n // n_cols)
    h, w = n_rows * s + 2 * m, n_cols * s + 2 * m
    h16, w16 = -(-h // 16) * 16, -(-w // 16) * 16
    canvas = np.full((h16, w16, 3), 244, np.uint8)
    for i, img in enumerate(cohort.images):
        r, c = divmod(i, n_cols)
        canvas[m + r * s : m + (r + 1) * s, m + c * s : m + (c + 1) * s] = img
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tifffile.imwrite(out, canvas, tile=(128, 128), photometric="rgb", compression="zlib")
    return out


#: The planted cohorts of the verdict's calibration: (name, marker kind, colour).
PLANTED: tuple[tuple[str, str, tuple[int, int, int]], ...] = (
    ("yellow R", "R", (240, 220, 40)),
    ("green stroke", "stroke", (40, 150, 60)),
    ("blue stroke", "stroke", (40, 70, 190)),
    ("blue circle", "circle", (40, 70, 190)),
    ("black circle", "circle", (25, 25, 30)),
    ("black arrow", "arrow", (25, 25, 30)),
    ("green arrow", "arrow", (40, 150, 60)),
    ("ruler", "ruler", (215, 175, 60)),
    ("printed label", "label", (30, 30, 35)),
)


def planted_cohorts(
    kind: str,
    colour: tuple[int, int, int] | None = None,
    *,
    n_per_class: int = 200,
    seed: int = 0,
) -> dict[str, ShortcutCohort]:
    """Training cohorts of a planted shortcut and of its clean twin.

    ``shortcut``: the mark on every tumour tile and on no normal tile (the mark
    predicts the label perfectly; the tissue only at ``purity``). ``partial``: the
    mark on half the tumour tiles and a quarter of the normal ones (a pen drawn
    mostly, not only, around tumour: a weaker shortcut, still one). ``twin``: the
    same tissue, with the mark on a random half of the tiles of *both* classes
    (independent of the label, and seen both present and absent), so a model
    trained on it learns to ignore the mark.

    Parameters
    ----------
    kind : str
        Marker kind (key of :data:`MARKER_KINDS`).
    colour : (int, int, int), optional
        Its colour.
    n_per_class : int
        Tiles per class.
    seed : int
        Tissue seed (the same for both cohorts).

    Returns
    -------
    dict
        ``{"shortcut": ..., "partial": ..., "twin": ...}`` (ShortcutCohort each).
    """
    common: dict[str, Any] = {"seed": seed, "marker_kind": kind, "colour": colour}
    return {
        "shortcut": make_shortcut_cohort(n_per_class, marker_classes=("tumour",), **common),
        "partial": make_shortcut_cohort(
            n_per_class, marker_fraction={"tumour": 0.5, "normal": 0.25}, **common
        ),
        "twin": make_shortcut_cohort(
            n_per_class, marker_classes=CLASS_NAMES, marker_fraction=0.5, **common
        ),
    }


def planted_audit_cohort(
    kind: str,
    colour: tuple[int, int, int] | None = None,
    *,
    on: str = "one",
    n_per_class: int = 16,
    seed: int = 100,
) -> ShortcutCohort:
    """Held-out tiles of a planted cohort, to lay out as an audit slide.

    Parameters
    ----------
    kind, colour
        The mark (see :func:`planted_cohorts`).
    on : {"one", "both"}
        The mark on the tumour tiles only, or on the tiles of both classes.
    n_per_class : int
        Tiles per class.
    seed : int
        Tissue seed (different from the training cohorts').

    Returns
    -------
    ShortcutCohort
    """
    if on not in ("one", "both"):
        raise ValueError(f"on must be 'one' or 'both', got {on!r}")
    classes = ("tumour",) if on == "one" else CLASS_NAMES
    return make_shortcut_cohort(
        n_per_class, marker_classes=classes, seed=seed, marker_kind=kind, colour=colour
    )


def planted_slug(name: str) -> str:
    """File-name form of a :data:`PLANTED` name (``"black arrow"`` → ``"black-arrow"``)."""
    return name.replace(" ", "-").lower()


def save_planted_weights(models: dict[str, nn.Module], path: Any) -> Any:
    """Write the weights of several :class:`TinyCNN` to one compressed ``.npz``.

    Parameters
    ----------
    models : dict
        ``{key: model}`` (keys such as ``"black-arrow/shortcut"``).
    path : str or Path

    Returns
    -------
    Path
    """
    from pathlib import Path

    arrays = {
        f"{key}|{name}": t.detach().cpu().numpy()
        for key, m in models.items()
        for name, t in m.state_dict().items()
    }
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)  # type: ignore[arg-type]
    return out


def load_planted_weights(path: Any) -> dict[str, TinyCNN]:
    """Read models written by :func:`save_planted_weights` (in eval mode).

    Parameters
    ----------
    path : str or Path

    Returns
    -------
    dict
        ``{key: TinyCNN}``.
    """
    from pathlib import Path

    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(
            f"{p}: no planted-model weights (scripts/calibrate_verdict.py --train)"
        )
    states: dict[str, dict[str, torch.Tensor]] = {}
    with np.load(p) as z:
        for k in z.files:
            key, _, name = k.partition("|")
            states.setdefault(key, {})[name] = torch.from_numpy(z[k])
    out: dict[str, TinyCNN] = {}
    for key, state in states.items():
        width = int(state["features.0.weight"].shape[0])
        model = TinyCNN(n_classes=int(state["head.weight"].shape[0]), width=width)
        model.load_state_dict(state)
        out[key] = model.eval()
    return out
