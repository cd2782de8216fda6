"""Calibrate the shortcut verdict's thresholds on planted-shortcut cohorts and their twins.

Each calibration sample is one slide audit (per class × artefact attention
figures and counterfactual figures) of a model whose truth is known: a
*shortcut* model (trained with the mark on one class only) must get ``fail``, a
*twin* (trained with the mark on both classes, so it ignores it) must get
``pass``. :func:`fit_thresholds` chooses the limits of
:class:`~napari_xai.core.audit.verdict.VerdictThresholds` that separate them:

- counterfactual line (``dp``, ``flip_rate``, ``flip_dp``): a sample is caught
  when its largest excess mean Δp (removal or paste, minus its control's)
  reaches ``dp`` or its largest excess flip rate, among the edits whose excess
  Δp reaches ``flip_dp``, reaches ``flip_rate``. ``flip_dp`` is fitted first:
  halfway between the largest twin excess Δp (how far a clean model's calls
  move when a mark is added or removed) and the smallest excess Δp of a
  shortcut's flipping edit;
- attention line (``share``, ``enrichment``): caught when some class × artefact
  pair has both its attribution share and the lower CI bound of its enrichment
  at or above the limits.

For each line, a grid of candidate limit pairs is scored by its errors
(shortcuts missed + twins caught); among the best, the pair with the largest
margin wins (the distance, in units of each axis's range, from the limits to
the nearest sample on the right side: the middle of the gap, not its edge). Each
``warn_*`` limit lies halfway between the highest twin value below the fail
limit and the fail limit. :func:`leave_one_group_out` refits without each marker
kind and classifies the kind left out, the check that thresholds do not just
memorise the kinds they were fitted on. ``scripts/calibrate_verdict.py`` runs it
all on the planted cohorts; the figures are in ``docs/audit.md``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from napari_xai.core.audit.counterfactual import CounterfactualResult
from napari_xai.core.audit.evidence import PairEvidence
from napari_xai.core.audit.verdict import VerdictThresholds, make_verdict

__all__ = [
    "CalibrationSample",
    "SampleFeatures",
    "fit_thresholds",
    "leave_one_group_out",
    "sample_features",
]


@dataclass(frozen=True)
class CalibrationSample:
    """One audit of a model whose truth is known.

    Attributes
    ----------
    group : str
        Marker kind (the unit left out by :func:`leave_one_group_out`).
    name : str
        What was audited (e.g. ``"black arrow / shortcut / one"``).
    shortcut : bool
        True for a shortcut model (expected ``fail``), False for a twin (``pass``).
    pairs : list of PairEvidence
    counterfactual : CounterfactualResult or None
    """

    group: str
    name: str
    shortcut: bool
    pairs: list[PairEvidence]
    counterfactual: CounterfactualResult | None


@dataclass(frozen=True)
class SampleFeatures:
    """The figures of one sample the thresholds act on.

    Attributes
    ----------
    cf_dp : float
        Largest excess mean Δp over the counterfactual pairs with at least
        ``min_tiles`` edited tiles (removal or paste minus its control's).
    cf_flip : float
        Largest excess flip rate over the pairs with at least ``min_tiles`` more
        flips than their control.
    cf_edits : list of (float, float)
        ``(excess Δp, excess flip rate)`` of every edit with at least
        ``min_tiles`` tiles (flip rate 0 without ``min_tiles`` more flips than
        its control).
    attention : list of (float, float)
        ``(share, enrichment CI lower bound)`` of every class × artefact pair.
    """

    cf_dp: float
    cf_flip: float
    attention: list[tuple[float, float]]
    cf_edits: list[tuple[float, float]] = dataclasses.field(default_factory=list)

    def flip_above(self, flip_dp: float) -> float:
        """Largest excess flip rate among the edits whose excess Δp reaches ``flip_dp``."""
        return max((f for d, f in self.cf_edits if d >= flip_dp), default=0.0)

    def flip_edit_dp(self) -> float:
        """Largest excess Δp among the edits with an excess flip rate (-inf: none)."""
        return max((d for d, f in self.cf_edits if f > 0), default=-np.inf)


def sample_features(
    pairs: Sequence[PairEvidence], counterfactual: CounterfactualResult | None, *, min_tiles: int
) -> SampleFeatures:
    """Reduce one audit to the figures the verdict's thresholds compare.

    Parameters
    ----------
    pairs : sequence of PairEvidence
    counterfactual : CounterfactualResult or None
    min_tiles : int
        As :attr:`VerdictThresholds.min_tiles`.

    Returns
    -------
    SampleFeatures
    """
    dp, flip = 0.0, 0.0
    edits: list[tuple[float, float]] = []
    for cf in counterfactual.pairs if counterfactual is not None else []:
        for edit, ctrl in ((cf.removal, cf.removal_control), (cf.paste, cf.paste_control)):
            if edit.n < min_tiles:
                continue
            e_dp = edit.mean_dp - max(ctrl.mean_dp, 0.0)
            e_flip = 0.0
            dp = max(dp, e_dp)
            if edit.n_flipped - ctrl.n_flipped >= min_tiles:
                e_flip = edit.flip_rate - ctrl.flip_rate
                flip = max(flip, e_flip)
            edits.append((float(e_dp), float(e_flip)))
    att = [
        (float(p.share), float(p.enrichment_ci[0]))
        for p in pairs
        if np.isfinite(p.share) and np.isfinite(p.enrichment_ci[0])
    ]
    return SampleFeatures(float(dp), float(flip), att, edits)


def _grid(values: Sequence[float], top: float | None = None) -> npt.NDArray[np.float64]:
    v = np.asarray([x for x in values if np.isfinite(x)], np.float64)
    if v.size == 0:
        return np.asarray([1.0 if top is None else top])
    lo, hi = float(v.min()), float(v.max())
    pad = 0.05 * (hi - lo) + 1e-6
    grid = np.linspace(max(lo - pad, 0.0), hi + pad, 201)
    mids = (np.unique(v)[:-1] + np.unique(v)[1:]) / 2.0
    out = np.unique(np.concatenate([grid, mids]))
    return out[out <= top] if top is not None else out


def _fit(
    pos: list[list[tuple[float, float]]],
    neg: list[list[tuple[float, float]]],
    *,
    rule: str,
    top: tuple[float | None, float | None],
) -> tuple[float, float, int]:
    """Limits (a, b) separating ``pos`` from ``neg`` samples (each a list of (x, y) points).

    ``rule="or"``: a sample is caught when some point has x >= a or y >= b;
    ``rule="and"``: when some point has x >= a and y >= b. Among the limits with the
    fewest errors, the one with the largest margin (distance, in units of each
    axis's range, from the limit to the nearest sample on its right side) wins.
    """
    pts = [p for smp in pos + neg for p in smp]
    xs, ys = _grid([p[0] for p in pts], top[0]), _grid([p[1] for p in pts], top[1])
    sx = float(np.ptp(xs)) or 1.0
    sy = float(np.ptp(ys)) or 1.0

    def arrays(samples: list[list[tuple[float, float]]]) -> list[npt.NDArray[np.float64]]:
        return [np.asarray(smp or [(-np.inf, -np.inf)], np.float64) for smp in samples]

    pa, na = arrays(pos), arrays(neg)
    a, b = xs[:, None, None], ys[None, :, None]

    def depth(p: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        # signed distance of each point inside the caught region (>0 inside), best point
        dx, dy = (p[:, 0] - a) / sx, (p[:, 1] - b) / sy
        d = np.maximum(dx, dy) if rule == "or" else np.minimum(dx, dy)
        return np.asarray(d.max(axis=-1), np.float64)

    pos_d = (
        np.stack([depth(p) for p in pa], axis=-1) if pa else np.zeros(xs.shape + ys.shape + (0,))
    )
    neg_d = (
        np.stack([depth(p) for p in na], axis=-1) if na else np.zeros(xs.shape + ys.shape + (0,))
    )
    errors = (pos_d < 0).sum(axis=-1) + (neg_d >= 0).sum(axis=-1)
    margin = np.minimum(
        np.where(pos_d >= 0, pos_d, np.inf).min(axis=-1, initial=np.inf),
        np.where(neg_d < 0, -neg_d, np.inf).min(axis=-1, initial=np.inf),
    )
    best = errors == errors.min()
    score = np.where(best, margin, -np.inf)
    i, j = np.unravel_index(int(np.argmax(score)), score.shape)
    return float(xs[i]), float(ys[j]), int(errors.min())


def _warn(fail: float, twin_values: Sequence[float]) -> float:
    below = [v for v in twin_values if v < fail]
    return (max(below, default=0.0) + fail) / 2.0


def fit_thresholds(
    samples: Sequence[CalibrationSample],
    *,
    base: VerdictThresholds | None = None,
    decimals: int = 2,
) -> tuple[VerdictThresholds, dict[str, Any]]:
    """Fit the verdict's limits on samples of known truth.

    Parameters
    ----------
    samples : sequence of CalibrationSample
        Shortcut and twin audits (at least one of each).
    base : VerdictThresholds, optional
        Limits that are not fitted (``min_tiles``) come from here.
    decimals : int
        Fitted limits are rounded to this many decimals.

    Returns
    -------
    thresholds : VerdictThresholds
    report : dict
        Training errors of each line (``counterfactual_errors``,
        ``attention_errors``) and the sample features.
    """
    base = base or VerdictThresholds()
    pos = [s for s in samples if s.shortcut]
    neg = [s for s in samples if not s.shortcut]
    if not pos or not neg:
        raise ValueError("fit_thresholds needs shortcut and twin samples")
    f_pos = [sample_features(s.pairs, s.counterfactual, min_tiles=base.min_tiles) for s in pos]
    f_neg = [sample_features(s.pairs, s.counterfactual, min_tiles=base.min_tiles) for s in neg]
    # The Δp floor of the flip line: between how far twins' calls move and how far the
    # flipping edits of shortcuts move them.
    shortcut_flip_dp = [d for d in (f.flip_edit_dp() for f in f_pos) if np.isfinite(d)]
    if shortcut_flip_dp:
        flip_dp = (max(f.cf_dp for f in f_neg) + min(shortcut_flip_dp)) / 2.0
    else:
        flip_dp = base.flip_dp
    flip_dp = float(np.clip(round(flip_dp, decimals), 0.0, 1.0))
    dp, flip, cf_err = _fit(
        [[(f.cf_dp, f.flip_above(flip_dp))] for f in f_pos],
        [[(f.cf_dp, f.flip_above(flip_dp))] for f in f_neg],
        rule="or",
        top=(1.0, 1.0),
    )
    share, enr, att_err = _fit(
        [f.attention for f in f_pos], [f.attention for f in f_neg], rule="and", top=(1.0, None)
    )
    twin_share = [x for f in f_neg for x, y in f.attention if y >= enr]
    twin_enr = [y for f in f_neg for x, y in f.attention if x >= share]
    fitted = {
        "dp": dp,
        "flip_rate": flip,
        "warn_dp": _warn(dp, [f.cf_dp for f in f_neg]),
        "warn_flip_rate": _warn(flip, [f.flip_above(flip_dp) for f in f_neg]),
        "share": share,
        "enrichment": enr,
        "warn_share": _warn(share, twin_share),
        "warn_enrichment": _warn(enr, twin_enr),
    }
    rounded = {
        k: float(np.clip(round(v, decimals), 0.0, 1.0 if k != "enrichment" else np.inf))
        for k, v in fitted.items()
    }
    rounded["warn_enrichment"] = max(0.0, round(fitted["warn_enrichment"], decimals))
    rounded["flip_dp"] = flip_dp
    th = dataclasses.replace(base, **rounded)  # type: ignore[arg-type]  # all float fields
    report = {
        "counterfactual_errors": cf_err,
        "attention_errors": att_err,
        "n_shortcut": len(pos),
        "n_twin": len(neg),
    }
    return th, report


def classify(samples: Sequence[CalibrationSample], thresholds: VerdictThresholds) -> list[str]:
    """Verdicts of the samples under ``thresholds`` (``"pass"``, ``"warn"``, ``"fail"``)."""
    return [
        make_verdict(s.pairs, s.counterfactual, thresholds=thresholds).verdict for s in samples
    ]


def leave_one_group_out(
    samples: Sequence[CalibrationSample], *, base: VerdictThresholds | None = None
) -> dict[str, dict[str, Any]]:
    """Refit without each group and classify the group left out.

    Parameters
    ----------
    samples : sequence of CalibrationSample
    base : VerdictThresholds, optional

    Returns
    -------
    dict
        Per group: ``thresholds`` (fitted without it, as a dict), ``verdicts``
        (``{sample name: verdict}``) and ``correct`` (shortcut → fail, twin → pass).
    """
    out: dict[str, dict[str, Any]] = {}
    for group in dict.fromkeys(s.group for s in samples):
        train = [s for s in samples if s.group != group]
        test = [s for s in samples if s.group == group]
        th, _ = fit_thresholds(train, base=base)
        verdicts = classify(test, th)
        out[group] = {
            "thresholds": dataclasses.asdict(th),
            "verdicts": {s.name: v for s, v in zip(test, verdicts, strict=True)},
            "correct": [
                (v == "fail") if s.shortcut else (v == "pass")
                for s, v in zip(test, verdicts, strict=True)
            ],
        }
    return out
