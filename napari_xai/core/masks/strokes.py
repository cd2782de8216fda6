"""Thin ink strokes at stroke resolution: the excess optical density over the local stain.

:func:`fine_ink_labels` classifies a high-resolution region; :func:`stroke_labels`
reads a slide lazily over its pyramid (tissue chunks only, after a cheap
pre-screen) and puts the classes on the thumbnail masks' grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from napari_xai.core.masks.background import (
    Background,
    BoolArray,
    check_rgb,
    od_table,
    optical_density,
    rgb_and_background,
)
from napari_xai.core.masks.ink_model import (
    ink_colour_fits,
    ink_features,
    load_ink_model,
    local_median,
)
from napari_xai.core.masks.passes import (
    SlidePass,
    bin_pixels,
    drop_small,
    start_pass,
    thread_map,
    unbin,
)

if TYPE_CHECKING:
    from napari_xai.core.masks.slide import SlideMasks
    from napari_xai.core.wsi import Slide

__all__ = [
    "StrokeOptions",
    "StrokeStats",
    "fine_ink_labels",
    "stroke_labels",
    "tile_ink_labels",
]


Excess = tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]]


def _excess(px: npt.NDArray[np.int16], bg: Background, *, cell: int) -> Excess:
    """Per-channel OD excess (R, G, B) over the local stain (``cell`` pixel cells), >= 0.

    Semi-transparent ink over tissue adds its own optical density to the
    stain's, so the local stain (:func:`~napari_xai.core.masks.ink_model.local_median`)
    is subtracted in OD.
    """
    lut = od_table(bg)
    local = local_median(optical_density(px, background=bg), cell=cell)
    ex_r, ex_g, ex_b = (np.maximum(lut[c][px[..., c]] - local[..., c], 0.0) for c in range(3))
    return ex_r, ex_g, ex_b


def _ink_classes(ex: Excess, *, min_od: float) -> tuple[BoolArray, BoolArray, BoolArray]:
    """Blue/green, red and black ink candidates from the OD excess over the local stain.

    The excess (:func:`_excess`) is classified: blue, green and
    teal ink absorb red most (``excess_R > 1.2 excess_G`` with a blue share
    unlike haematoxylin's, or ``excess_R > 1.6 excess_G``), red ink absorbs
    green and blue but hardly red (``excess_B, excess_G > 3 excess_R``; and
    unlike eosin, blue nearly as much as green: ``excess_B > 0.7 excess_G``), black
    ink absorbs all three alike. Nuclei (haematoxylin) and DAB excess absorb
    green at least as much as red, and are left alone.
    """
    ex_r, ex_g, ex_b = ex
    ex_max = np.maximum(np.maximum(ex_r, ex_g), ex_b)
    ex_min = np.minimum(np.minimum(ex_r, ex_g), ex_b)
    strong = ex_max > min_od
    # navy/blue ink lets blue through (haematoxylin, even a blue one, absorbs some blue);
    # green and teal ink absorb red far more than green
    # (haematoxylin's excess has OD_B / OD_R ~ 0.4-0.55: navy ink is below, green above)
    hue_ok = (ex_b < 0.4 * ex_r) | (ex_b > 0.55 * ex_r)
    blue = strong & (((ex_r > 1.2 * ex_g) & hue_ok) | (ex_r > 1.6 * ex_g))
    # red ink absorbs blue nearly as much as green (real pen: OD_B / OD_G 0.85-1.0);
    # eosin, pink or magenta, about half as much (0.4-0.6)
    red = strong & (ex_b > 3.0 * ex_r) & (ex_g > 3.0 * ex_r) & (ex_b > 0.7 * ex_g) & ~blue
    black = strong & (ex_min > 0.2) & (ex_max - ex_min < 0.3 * ex_max) & ~blue & ~red
    return blue, red, black


def _loose_ink(ex: Excess, *, min_od: float) -> BoolArray:
    """Loose colour rules: excess that could be blue/green (``R > 0.95 G``) or grey ink.

    Too loose alone (haematoxylin over dense nuclei passes), but a stroke's
    pale or dark-backed parts (navy whose excess drifts towards the stain's
    colour) still pass, so :func:`_hybrid_labels` lets them join a confirmed stroke.
    """
    ex_r, ex_g, ex_b = ex
    ex_max = np.maximum(np.maximum(ex_r, ex_g), ex_b)
    ex_min = np.minimum(np.minimum(ex_r, ex_g), ex_b)
    grey = (ex_min > min_od) & (ex_max - ex_min < 0.45 * ex_max)
    return np.asarray((ex_max > min_od) & ((ex_r > 0.95 * ex_g) | grey))


def fine_ink_labels(
    rgb: npt.ArrayLike,
    *,
    background: Background | None = None,
    method: str = "hybrid",
    window: int = 31,
    min_od: float = 0.12,
) -> npt.NDArray[np.uint8]:
    """Label thin ink strokes in a high-resolution RGB region (stroke several pixels wide).

    A pixel's colour alone is not enough (navy ink over eosin is purple): what
    is classified is the excess optical density over the local stain and its
    neighbourhood. ``method="rules"`` classifies the excess by colour rules
    (:func:`_ink_classes`); ``method="model"`` runs the learned pixel
    classifier of :mod:`~napari_xai.core.masks.ink_model` on the candidate
    pixels and keeps connected pixels above its weak ink probability that hold
    one above its strong one; ``method="hybrid"`` (default) keeps the
    classifier's strokes that the rules confirm (:func:`_hybrid_labels`). Then
    specks are dropped (a 2 x 2 opening, objects under 40 pixels).

    Parameters
    ----------
    rgb : array of shape (rows, cols, 3)
        uint8 RGB, at a resolution where strokes are a few pixels wide
        (downsample 2 at 0.25-0.5 µm/px: the classifier was trained there).
    background : Background, optional
        The slide's (from its thumbnail); default estimated from ``rgb``.
    method : {"hybrid", "model", "rules"}
        The classifier confirmed by the rules, the learned classifier alone or
        the colour rules alone.
    window : int
        Rules: side of the median window (pixels) that estimates the local stain.
    min_od : float
        Rules: minimum excess OD (largest channel) to consider a pixel inked.

    Returns
    -------
    ndarray of shape (rows, cols), uint8
        0 = none, 1 = blue/green ink, 2 = black ink, 4 = red ink
        (:data:`ARTEFACT_LABELS`).
    """
    from scipy import ndimage as ndi

    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    px, bg = rgb_and_background(rgb, background)
    out = np.zeros(px.shape[:2], np.uint8)
    if bg.modality == "fluorescence" or min(px.shape[:2]) < 3:
        return out
    if method == "model":
        return _model_labels(px, bg)
    ex = _excess(px, bg, cell=max(4, window // 2))
    blue, red, black = _ink_classes(ex, min_od=min_od)
    # a stroke is an elongated object several pixels wide: drop isolated specks
    for value, m in ((2, black), (4, red), (1, blue)):
        if not m.any():
            continue
        m = ndi.binary_opening(m, structure=np.ones((2, 2), bool))
        out[drop_small(m, 40) & (out == 0)] = value
    if method == "hybrid" and out.any():
        return _hybrid_labels(px, bg, out, _loose_ink(ex, min_od=min_od))
    return out


#: ``fine_ink_labels`` methods.
METHODS = ("hybrid", "model", "rules")

#: Hybrid: least ink probability of a rules pixel that joins a confirmed stroke.
HYBRID_JOIN = 0.05

#: Hybrid: the classifier looks only this many pixels (stroke pass) around the
#: rules' pixels (a stroke the rules miss for longer is not recovered). On the
#: 100,000 x 80,000 benchmark slide the stroke pass took 37 s instead of 54 s
#: (load 6.3) with the same labels; the held-out and training composites' figures
#: were the same as with no limit.
HYBRID_REACH = 96


def _hybrid_labels(
    px: npt.NDArray[np.int16],
    bg: Background,
    rules: npt.NDArray[np.uint8],
    loose: BoolArray,
) -> npt.NDArray[np.uint8]:
    """Keep the classifier's strokes that hold a rules pixel it calls ink with confidence.

    The colour rules are precise but miss pale or dark-backed parts of a
    stroke (navy over haematoxylin, a stroke over a lumen's dark fibres); the
    classifier finds most of those but also calls dark fibres and tissue
    texture ink. Kept: connected pixels (8-connected) that the classifier
    gives an ink probability above its weak threshold, or that the rules or
    the loose rules (``loose``: :func:`_loose_ink`) call ink and the
    classifier gives above :data:`HYBRID_JOIN`, holding a *seed*: a pixel the
    rules call ink and the classifier gives above its strong threshold. So
    neither alone makes a stroke: a rules object the classifier does not call
    ink (a cluster of dark bluish nuclei) and a classifier object without a
    rules pixel (a fibre) are both dropped. Each stroke takes the class most
    of its seeds have (one ink per stroke). The classifier runs only within
    :data:`HYBRID_REACH` of the rules' pixels. (Chosen on composites over the
    classifier's training regions: :data:`HYBRID_JOIN` and the loose rules
    raised the least recall there from 0.85-0.87 to 0.90-0.93 and lowered the
    least precision from 0.91-0.93 to 0.87-0.91.)
    """
    from scipy import ndimage as ndi

    full = np.zeros(px.shape[:2], np.uint8)
    # a stroke reaches the classifier only through a seed: look near the rules' pixels only
    reach = 2 * HYBRID_REACH + 1
    near = ndi.maximum_filter((rules > 0).view(np.uint8), size=reach) > 0
    rows, cols = np.nonzero(near.any(axis=1))[0], np.nonzero(near.any(axis=0))[0]
    # the window starts on the local stain's cell grid (16 px) of the whole region
    r0, c0 = rows[0] // 16 * 16, cols[0] // 16 * 16
    win = (slice(r0, rows[-1] + 1), slice(c0, cols[-1] + 1))
    cand, feats = ink_features(px[win], bg, within=near[win])
    if not len(feats):
        return full
    model = load_ink_model()
    prob = model.predict(feats)
    ink = 1.0 - prob[:, 0]
    rules = rules[win]
    on_rules = rules[cand] > 0
    out = model_strokes(
        cand,
        prob,
        weak=model.weak,
        strong=model.strong,
        seeds=on_rules,
        join=(on_rules | loose[win][cand]) & (ink > HYBRID_JOIN),
    )
    # the 2 x 2 opening may cut a stroke: every piece left holds a seed
    seeds = np.zeros(cand.shape, bool)
    seeds[cand] = on_rules & (ink > model.strong)
    pieces, n = ndi.label(out > 0, structure=np.ones((3, 3), bool))
    # a stroke is one ink: each piece takes the class most of its rules pixels have
    # (pieces without a seed get none: dropped)
    votes = np.zeros((n + 1, 5), np.int64)
    np.add.at(votes, (pieces[seeds], rules[seeds]), 1)
    cls = votes.argmax(axis=1).astype(np.uint8)
    cls[0] = 0
    full[win] = cls[pieces]
    return full


def _model_labels(px: npt.NDArray[np.int16], bg: Background) -> npt.NDArray[np.uint8]:
    """Strokes by the learned classifier (:func:`model_strokes` at the model's thresholds)."""
    cand, feats = ink_features(px, bg)
    if not len(feats):
        return np.zeros(px.shape[:2], np.uint8)
    model = load_ink_model()
    prob = model.predict(feats)
    return model_strokes(
        cand, prob, weak=model.weak, strong=model.strong, seeds=ink_colour_fits(feats, prob)
    )


def model_strokes(
    candidates: BoolArray,
    prob: npt.NDArray[np.float32],
    *,
    weak: float,
    strong: float,
    seeds: BoolArray | None = None,
    join: BoolArray | None = None,
) -> npt.NDArray[np.uint8]:
    """Stroke labels from the classifier's class probabilities of the candidate pixels.

    Connected candidates (8-connected) with an ink probability above ``weak``
    (or, if given, in ``join``: one per candidate) are kept where one of them
    is above ``strong`` and, if given, in ``seeds`` (one per candidate:
    hysteresis); a 2 x 2 opening and objects under 40 pixels drop specks.
    Each pixel takes its most probable ink class.
    """
    from scipy import ndimage as ndi

    from napari_xai.core.masks.ink_model import CLASS_LABELS

    out = np.zeros(candidates.shape, np.uint8)
    ink = 1.0 - prob[:, 0]
    above = np.zeros(candidates.shape, bool)
    above[candidates] = ink > weak if join is None else (ink > weak) | join
    pieces, n = ndi.label(above, structure=np.ones((3, 3), bool))
    if not n:
        return out
    keep = np.zeros(n + 1, bool)
    strong_px = ink > strong if seeds is None else (ink > strong) & seeds
    keep[pieces[candidates][strong_px]] = True
    keep[0] = False
    m = ndi.binary_opening(keep[pieces], structure=np.ones((2, 2), bool))
    m = drop_small(m, 40)
    out[candidates] = np.asarray(CLASS_LABELS, np.uint8)[1 + prob[:, 1:].argmax(axis=1)]
    out[~m] = 0
    return out


def tile_ink_labels(
    rgb: npt.ArrayLike, *, background: Background | None = None, downsample: int = 2
) -> npt.NDArray[np.uint8]:
    """:func:`fine_ink_labels` of a full-resolution tile, at the stroke pass's resolution.

    The tile is binned by ``downsample`` (the stroke pass's, where the
    classifier was trained: tiles are usually 0.25-0.5 µm/px), classified, and
    the labels are put back on the tile's grid (edge rows and columns that do
    not fill a bin take their neighbour's).
    """
    px16, bg = rgb_and_background(rgb, background)
    px = px16.astype(np.uint8)
    f = max(1, int(downsample))
    if min(px.shape[:2]) < 3 * f:
        return fine_ink_labels(px, background=bg)
    return unbin(fine_ink_labels(bin_pixels(px, f), background=bg), f, px.shape[:2])


@dataclass(frozen=True)
class StrokeOptions:
    """How :func:`stroke_labels` looks for thin strokes.

    Attributes
    ----------
    downsample : float
        Level-0 pixels per pixel of the stroke pass (2: a 6 px stroke at level
        0 is 3 px wide). The coarsest level not above it is read and binned to it.
    screen_downsample : float
        Level-0 pixels per pixel of the pre-screen: the coarsest level not
        above it is read over the tissue, and only chunks where it sees
        ink-coloured excess (a stroke is a fraction of a pixel wide there, but
        still shifts the colour) are read at stroke resolution. When the
        pyramid has no level coarser than the stroke level by 4 or more, every
        tissue chunk is read.
    chunk : int
        Side (level-0 pixels) of the chunks the stroke pass reads.
    screen_min_od : float
        Minimum excess OD for a pre-screen pixel to count.
    screen_min_size : int
        Minimum ink-coloured pixels (8-connected) of one pre-screen object.
    screen_grow : int
        Pre-screen objects are grown by this many pixels (a stroke seen near a
        chunk's edge may go on faintly in the next chunk).
    screen_above : float
        Pre-screen only when the tissue chunks hold more level-0 pixels than
        this (smaller slides are read whole at stroke resolution in seconds;
        the pre-screen misses faint navy and black strokes at 8 µm/px).
    workers : int
        Threads reading and classifying chunks.
    method : {"hybrid", "rules", "auto", "model"}
        How each chunk is classified (:func:`fine_ink_labels`). ``"hybrid"``
        (default): the learned classifier's strokes that the colour rules
        confirm (a seed pixel both call ink), so the classifier recovers what
        the rules miss (faint navy, strokes over dark tissue: held-out navy
        recall 0.56-0.80 -> 0.95-0.99 in the benchmark, 0.83-0.97 over the CMU-1
        square with other stroke draws) while neither one's false ink alone
        makes a stroke (the classifier's dark fibres and tissue texture, the
        rules' dark bluish nuclei); the classifier runs only on chunks where
        the rules find something. ``"rules"``: the colour rules alone.
        ``"model"``: the classifier alone (calls tissue texture ink: CMU-1
        precision 0.70, 30 % of what it added on the synthetic sample; as the
        default, that false ink named a "blue ink" and turned the demo's FAIL
        into a WARN). ``"auto"``: the classifier where every tissue chunk is
        read, the rules after a pre-screen. The pre-screen always uses the rules.
    """

    downsample: float = 2.0
    screen_downsample: float = 16.0
    chunk: int = 2048
    screen_min_od: float = 0.06
    screen_min_size: int = 20
    screen_grow: int = 2
    screen_above: float = 2e8
    workers: int = 2
    method: str = "hybrid"


@dataclass(frozen=True)
class StrokeStats:
    """What :func:`stroke_labels` read (for benchmarks and reports).

    Attributes
    ----------
    tissue_chunks, read_chunks : int
        Chunks with tissue, and those read at stroke resolution.
    level, screen_level : int
        Levels read by the stroke pass and the pre-screen (-1: none).
    method : str
        How the chunks were classified (``"hybrid"``, ``"model"`` or ``"rules"``).
    """

    tissue_chunks: int
    read_chunks: int
    level: int
    screen_level: int
    method: str = "model"


def _screen_blocks(
    run: SlidePass, level: int, tissue_blocks: BoolArray, block0: int, opts: StrokeOptions
) -> BoolArray:
    """Pre-screen: which tissue blocks of ``run`` show ink-coloured excess at ``level``."""
    from scipy import ndimage as ndi

    slide, bg = run.slide, run.background
    ds = float(slide.info.level_downsamples[level])
    side = max(1, int(round(block0 / ds)))  # block side at the screen level
    group = max(1, 2048 // side)  # blocks per screen read (a side of ~2048 px)
    nr, nc = tissue_blocks.shape
    jobs = [
        (gi, gj)
        for gi in range(0, nr, group)
        for gj in range(0, nc, group)
        if tissue_blocks[gi : gi + group, gj : gj + group].any()
    ]

    def one(job: tuple[int, int]) -> tuple[int, int, BoolArray]:
        gi, gj = job
        pad = 8  # screen pixels of context for the local stain
        r0, c0 = gi * side - pad, gj * side - pad
        rgb = slide.read_region(
            (int(r0 * ds), int(c0 * ds)),
            (group * side + 2 * pad, group * side + 2 * pad),
            level=level,
        )
        px = check_rgb(rgb)
        blue, red, black = _ink_classes(_excess(px, bg, cell=4), min_od=opts.screen_min_od)
        cand = drop_small(blue | red | black, opts.screen_min_size)
        # a stroke seen near a block's edge may carry on into the next block
        cand = ndi.binary_dilation(cand, iterations=opts.screen_grow)[pad:-pad, pad:-pad]
        g = np.asarray(cand.reshape(group, side, group, side).any(axis=(1, 3)), dtype=bool)
        return gi, gj, g

    out = np.zeros_like(tissue_blocks)
    for gi, gj, g in thread_map(one, jobs, workers=opts.workers):
        h, w = min(group, nr - gi), min(group, nc - gj)
        out[gi : gi + h, gj : gj + w] = g[:h, :w]
    return out & tissue_blocks


def _put_on_mask_grid(
    out: npt.NDArray[np.uint8],
    lab: npt.NDArray[np.uint8],
    offset: tuple[float, float],
    f: float,
) -> None:
    """Put one chunk's stroke-pass labels on the mask grid ``out`` (in place).

    ``lab``'s pixel ``(0, 0)`` is stroke-pass pixel ``offset``; a mask pixel
    spans ``f`` stroke-pass pixels. Mask coarser (``f >= 1``): a mask pixel
    takes the class found in any of the pixels it covers. Mask finer
    (``f < 1``): nearest neighbour, each mask pixel takes the class of the
    stroke-pass pixel under its centre (a stroke stays continuous).
    """
    rows_m, cols_m = out.shape
    if f >= 1:
        rr, cc = np.nonzero(lab)
        if rr.size:
            mi = np.minimum(((rr + offset[0]) / f).astype(int), rows_m - 1)
            mj = np.minimum(((cc + offset[1]) / f).astype(int), cols_m - 1)
            np.maximum.at(out, (mi, mj), lab[rr, cc])
        return
    if not lab.any():
        return
    src = []
    for off, n, n_m in ((offset[0], lab.shape[0], rows_m), (offset[1], lab.shape[1], cols_m)):
        # mask pixel m's centre is at stroke-pass coordinate (m + 0.5) f
        lo = max(0, int(np.ceil(off / f - 0.5)))
        hi = min(n_m, int(np.ceil((off + n) / f - 0.5)))
        m = np.arange(lo, max(lo, hi))
        src.append((m, np.clip(np.floor((m + 0.5) * f - off).astype(int), 0, n - 1)))
    (mr, sr), (mc, sc) = src
    if mr.size and mc.size:
        window = out[mr[0] : mr[-1] + 1, mc[0] : mc[-1] + 1]
        np.maximum(window, lab[np.ix_(sr, sc)], out=window)


def stroke_labels(
    slide: Slide,
    masks: SlideMasks,
    *,
    options: StrokeOptions | None = None,
    background: Background | None = None,
    stats: list[StrokeStats] | None = None,
) -> npt.NDArray[np.uint8]:
    """Thin ink strokes of a slide, found lazily at stroke resolution, on the masks' grid.

    Only chunks with tissue in ``masks`` are considered (ink on glass is in
    the thumbnail pass). A cheap pre-screen at a mid-resolution level
    (:class:`StrokeOptions`) keeps those where ink-coloured excess shows; each
    is read (region by region, never a whole level in memory) at the coarsest
    level not above the stroke downsample, binned to it, and labelled by
    :func:`fine_ink_labels`; a mask pixel takes the class found in any of the
    pixels it covers (a mask finer than the stroke pass: the class under its
    centre, nearest neighbour).

    Parameters
    ----------
    slide : napari_xai.core.wsi.Slide
    masks : SlideMasks
        The thumbnail pass (its grid and tissue).
    options : StrokeOptions, optional
    background : Background, optional
        Default: estimated from the slide's thumbnail.
    stats : list, optional
        A :class:`StrokeStats` is appended (what was read).

    Returns
    -------
    ndarray of the masks' shape, uint8 (:data:`ARTEFACT_LABELS` values)
    """
    opts = StrokeOptions() if options is None else options
    if opts.method not in ("auto", *METHODS):
        raise ValueError(
            f"StrokeOptions.method must be one of auto, {', '.join(METHODS)}, got {opts.method!r}"
        )
    out = np.zeros(masks.tissue.shape, np.uint8)
    run = start_pass(slide, masks, downsample=opts.downsample, background=background)
    if run is None:
        return out
    ds = run.downsample  # level-0 pixels per stroke-pass pixel
    block0, blocks = run.chunks(unit0=ds, chunk0=opts.chunk)
    n_tissue = int(blocks.sum())
    screen = slide.best_level_for_downsample(opts.screen_downsample * 1.25)
    screen_ds = float(slide.info.level_downsamples[screen])
    big = n_tissue * float(block0) ** 2 > opts.screen_above
    if big and screen_ds >= 4 * ds and screen != run.level:
        blocks = _screen_blocks(run, screen, blocks, block0, opts)
    else:
        screen = -1
    method = opts.method if opts.method != "auto" else ("rules" if screen >= 0 else "model")
    f = masks.downsample / ds  # stroke-pass pixels per mask pixel

    def one(ij: tuple[int, int]) -> tuple[int, int, npt.NDArray[np.uint8]]:
        i, j = ij
        rgb = run.read((i * block0, j * block0), block0)
        return i, j, fine_ink_labels(rgb, background=run.background, method=method)

    for i, j, lab in run.map(one, blocks, workers=opts.workers):
        _put_on_mask_grid(out, lab, (i * block0 / ds, j * block0 / ds), f)
    if stats is not None:
        stats.append(StrokeStats(n_tissue, int(blocks.sum()), run.level, screen, method))
    return out
