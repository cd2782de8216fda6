"""The shortcut verdict: pass / warn / fail from attention and counterfactual evidence.

The first sentence is for a pathologist: it names the class and the artefact and
says what removing or adding the mark does, e.g. "FAIL: the model's tumour calls
depend on the yellow mark: removing it turns 41 of 52 tumour tiles normal; 34% of
what drives those calls lies on it, which covers 8% of them."

Rules (thresholds in :class:`VerdictThresholds`):

- **fail** when, for some class × artefact, the counterfactual moves the calls
  (removal or paste flip rate at least ``flip_rate`` above its control's, over at
  least ``min_tiles`` tiles and with a mean probability change at least
  ``flip_dp`` above the control's, or a mean probability change ``dp`` above the
  control's), or, when no counterfactual could be run for that pair, the
  attention on the mark is both large (``share``) and enriched (lower bound of
  the bootstrap CI at least ``enrichment``).
- **warn** when the counterfactual reaches its ``warn_*`` level, or (where no
  counterfactual could be run) the attention reaches its ``warn_*`` level, or
  the attribution method failed its sanity checks. A flip rate counts only with
  at least ``min_tiles`` more flips than its control and an excess mean Δp of
  at least ``flip_dp`` (a clean model tips a few borderline tiles when a dark
  mark is pasted on, e.g. a printed label's text, but moves the others little:
  seed-1 label twin, excess flip rate 0.31 at Δp +0.07; docs/audit.md).
- Where the counterfactual ran for a class × artefact pair, it decides for that
  pair: attention on the mark that removing or adding the mark does not confirm
  is reported as evidence, not as a warning (calibration: attention figures of
  clean twins overlap those of shortcut models, e.g. a twin's Grad-CAM spills
  onto a printed label it ignores; docs/audit.md).

The defaults are calibrated on planted-shortcut cohorts and their twins
(:mod:`napari_xai.core.audit.calibration`, ``scripts/calibrate_verdict.py``).
- **pass** otherwise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from napari_xai.core.audit.counterfactual import CounterfactualPair, CounterfactualResult
from napari_xai.core.audit.evidence import PairEvidence
from napari_xai.core.options import Bounded, bounded, fraction

__all__ = ["Verdict", "VerdictThresholds", "make_verdict"]


@dataclass(frozen=True)
class VerdictThresholds(Bounded):
    """Limits of the shortcut verdict (fractions in [0, 1] unless said otherwise).

    Parameters
    ----------
    flip_rate : float
        Counterfactual fail: removal or paste flip rate minus its control's.
    dp : float
        Counterfactual fail: mean change of the class probability minus the control's.
    warn_flip_rate, warn_dp : float
        The same for warn.
    flip_dp : float
        Floor of the excess mean Δp (same edit) without which a flip rate counts
        for neither warn nor fail.
    min_tiles : int
        Fewest edited tiles, and fewest flips above the control's, for a
        counterfactual flip rate to count (warn or fail).
    share : float
        Attention fail: share of the class's attribution on the artefact.
    enrichment : float
        Attention fail: lower 95 % bound of share / area (x).
    warn_share, warn_enrichment : float
        The same for warn.
    """

    # Calibrated on the planted cohorts (scripts/calibrate_verdict.py; docs/audit.md).
    flip_rate: float = fraction(0.25)
    dp: float = fraction(0.28)
    warn_flip_rate: float = fraction(0.12)
    warn_dp: float = fraction(0.16)
    flip_dp: float = fraction(0.09)
    min_tiles: int = bounded(3, low=1)
    share: float = fraction(0.0)
    enrichment: float = bounded(1.6, low=0)
    warn_share: float = fraction(0.0)
    warn_enrichment: float = bounded(1.52, low=0)


@dataclass
class Verdict:
    """The verdict, its first sentence and the evidence lines behind it."""

    verdict: str
    sentence: str
    evidence: list[str]
    pred_class: str | None = None
    artefact: str | None = None
    method: str | None = None
    sanity: dict[str, Any] | None = None
    thresholds: VerdictThresholds = field(default_factory=VerdictThresholds)

    @property
    def shortcut_suspected(self) -> bool:
        """True unless the verdict is pass."""
        return self.verdict != "pass"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "verdict": self.verdict,
            "shortcut_suspected": self.shortcut_suspected,
            "sentence": self.sentence,
            "evidence": list(self.evidence),
            "pred_class": self.pred_class,
            "artefact": self.artefact,
            "method": self.method,
            "sanity": self.sanity,
            "thresholds": asdict(self.thresholds),
        }


def _cf_level(cf: CounterfactualPair | None, th: VerdictThresholds) -> tuple[int, str]:
    """0 nothing, 1 warn, 2 fail; and the clause that says why."""
    if cf is None:
        return 0, ""
    best = (0, "")
    r, rc = cf.removal, cf.removal_control
    p, pc = cf.paste, cf.paste_control
    r_ex, r_dp = r.flip_rate - rc.flip_rate, r.mean_dp - max(rc.mean_dp, 0.0)
    p_ex, p_dp = p.flip_rate - pc.flip_rate, p.mean_dp - max(pc.mean_dp, 0.0)
    cls = cf.pred_class
    if r.n >= th.min_tiles:
        to = f" {r.to_class}" if r.to_class else " into something else"
        clause = f"removing it turns {r.n_flipped} of {r.n} {cls} tiles{to}"
        enough = r.n_flipped - rc.n_flipped >= th.min_tiles and r_dp >= th.flip_dp
        if (r_ex >= th.flip_rate and enough) or r_dp >= th.dp:
            best = (2, clause)
        elif (r_ex >= th.warn_flip_rate and enough) or r_dp >= th.warn_dp:
            best = (1, clause)
    if p.n >= th.min_tiles:
        clause = f"adding it to {p.n} tiles called otherwise turns {p.n_flipped} of them {cls}"
        lvl = 0
        enough = p.n_flipped - pc.n_flipped >= th.min_tiles and p_dp >= th.flip_dp
        if (p_ex >= th.flip_rate and enough) or p_dp >= th.dp:
            lvl = 2
        elif (p_ex >= th.warn_flip_rate and enough) or p_dp >= th.warn_dp:
            lvl = 1
        if lvl > best[0]:
            best = (lvl, clause)
        elif lvl and lvl == best[0]:
            best = (lvl, f"{best[1]}; {clause}")
    return best


def _att_level(ev: PairEvidence, th: VerdictThresholds) -> int:
    lo = ev.enrichment_ci[0]
    if ev.share >= th.share and lo >= th.enrichment:
        return 2
    if ev.share >= th.warn_share and lo >= th.warn_enrichment:
        return 1
    return 0


def _att_clause(ev: PairEvidence) -> str:
    return (
        f"{ev.share:.0%} of what drives those calls lies on it, which covers {ev.area:.0%} of them"
    )


def make_verdict(
    pairs: list[PairEvidence],
    counterfactual: CounterfactualResult | None,
    *,
    method: str | None = None,
    sanity: dict[str, Any] | None = None,
    thresholds: VerdictThresholds | None = None,
) -> Verdict:
    """Combine per class × artefact attention and counterfactual figures into a verdict.

    Parameters
    ----------
    pairs : list of PairEvidence
        From :func:`~napari_xai.core.audit.evidence.class_artefact_evidence`.
    counterfactual : CounterfactualResult or None
        From :func:`~napari_xai.core.audit.counterfactual.counterfactual_test`.
    method : str, optional
        Attribution method the attention line rests on.
    sanity : dict, optional
        That method's sanity result (``SanityResult.to_dict()``); a method that is
        not ``trusted`` (its maps survive model randomisation) cannot carry a fail
        on its own and adds a warning.
    thresholds : VerdictThresholds, optional

    Returns
    -------
    Verdict
    """
    th = thresholds or VerdictThresholds()
    method_ok = sanity is None or bool(sanity.get("trusted", sanity.get("passed", True)))
    keys: dict[tuple[str, int], PairEvidence | None] = {(p.pred_class, p.kind): p for p in pairs}
    if counterfactual is not None:
        for tested in counterfactual.pairs:
            keys.setdefault((tested.pred_class, tested.kind), None)
    scored = [
        _judge_pair(
            cls,
            kind,
            ev,
            counterfactual.pair(cls, kind) if counterfactual is not None else None,
            th,
            method_ok=method_ok,
        )
        for (cls, kind), ev in keys.items()
    ]
    if not scored:
        return Verdict(
            "pass",
            "PASS: no artefacts were found on the audited tissue tiles, so no shortcut "
            "through them can be tested.",
            ["no artefact (pen, marker, ruler, label) in the audited tiles"],
            method=method,
            sanity=sanity,
            thresholds=th,
        )
    scored.sort(key=lambda s: (s[0], s[1]), reverse=True)
    lvl, _, cls, name, clause, _ = scored[0]
    evidence = [line for s in scored for line in s[5]]
    if method is not None:
        evidence.append(_method_line(method, sanity, method_ok=method_ok))
    if lvl == 2:
        sentence = f"FAIL: the model's {cls} calls depend on the {name}: {clause}."
        verdict = "fail"
    elif lvl == 1:
        sentence = f"WARN: the model's {cls} calls may depend on the {name}: {clause}."
        verdict = "warn"
    else:
        sentence = (
            f"PASS: the model's calls do not depend on the artefacts found; for {cls} tiles "
            f"with the {name}, {clause}."
        )
        verdict = "pass"
    if not method_ok and verdict == "pass":
        verdict = "warn"
        sentence = "WARN" + sentence[4:] + f" (but {method} failed its sanity checks)"
    return Verdict(verdict, sentence, evidence, cls, name, method, sanity, th)


#: One judged (class, artefact kind) pair: level (0 pass, 1 warn, 2 fail), strength
#: (ranks pairs of one level), class, artefact name, the verdict's clause, evidence lines.
_Judged = tuple[int, float, str, str, str, list[str]]


def _judge_pair(
    cls: str,
    kind: int,
    ev: PairEvidence | None,
    cf: CounterfactualPair | None,
    th: VerdictThresholds,
    *,
    method_ok: bool,
) -> _Judged:
    """Level, strength, clause and evidence of one (class, artefact kind) pair."""
    cf_lvl, cf_clause = _cf_level(cf, th)
    att_lvl = _att_level(ev, th) if ev is not None else 0
    if not method_ok:
        att_lvl = min(att_lvl, 1)
    cf_ran = cf is not None and (cf.removal.n >= th.min_tiles or cf.paste.n >= th.min_tiles)
    if cf_lvl == 2 or (att_lvl == 2 and not cf_ran):
        lvl = 2
    elif cf_ran:  # the counterfactual, a direct test, decides over the attention line
        lvl = cf_lvl
    else:
        lvl = att_lvl
    name = ev.name if ev is not None else f"artefact kind {kind}"
    lines: list[str] = []
    if ev is not None:
        lines.append(
            f"tiles called {cls} with {name} ({ev.n_tiles}): {ev.share:.0%} of attribution "
            f"(95% CI {ev.share_ci[0]:.0%}-{ev.share_ci[1]:.0%}) on it, area "
            f"{ev.area:.1%}, enrichment {ev.enrichment:.1f}x "
            f"(CI {ev.enrichment_ci[0]:.1f}-{ev.enrichment_ci[1]:.1f}x)"
        )
    if cf is not None:
        r, rc, p, pc = cf.removal, cf.removal_control, cf.paste, cf.paste_control
        lines.append(
            f"counterfactual {cls} × {name}: removing it flips {r.n_flipped}/{r.n} "
            f"(mean Δp {r.mean_dp:+.2f}; control edit on tissue {rc.n_flipped}/{rc.n}, "
            f"Δp {rc.mean_dp:+.2f}); pasting it onto other tiles flips {p.n_flipped}/{p.n} "
            f"to {cls} (Δp {p.mean_dp:+.2f}; control {pc.n_flipped}/{pc.n}, "
            f"Δp {pc.mean_dp:+.2f})"
        )
    if cf_ran and cf_lvl == 0 and att_lvl == 2 and ev is not None:
        lines.append(
            f"the attribution on the {name} of {cls} calls is high, but removing or adding "
            f"it does not move them: the counterfactual test, which needs no saliency map, "
            f"clears it"
        )
    clauses = [c for c in (cf_clause, _att_clause(ev) if ev is not None else "") if c]
    strength = (ev.enrichment_ci[0] * ev.share if ev is not None else 0.0) + (
        (cf.removal.flip_rate + cf.paste.flip_rate) if cf is not None else 0.0
    )
    return lvl, strength, cls, name, "; ".join(clauses), lines


def _method_line(method: str, sanity: dict[str, Any] | None, *, method_ok: bool) -> str:
    """Describe the attribution method and its sanity checks in one evidence line."""
    if sanity is None:
        status = "was not sanity-checked"
    elif not method_ok and not sanity.get("randomisation_passed", False):
        status = "FAILED its sanity checks (its maps do not depend on the model)"
    elif not method_ok:
        status = "FAILED its sanity checks (its maps rank pixels worse than chance)"
    elif sanity.get("passed", True):
        status = "passed its sanity checks"
    else:
        status = "passed the randomisation check but not deletion/insertion"
    figures = ""
    if sanity is not None and "spearman" in sanity and sanity["spearman"]:
        gain = sanity.get("faithfulness_gain")
        figures = (
            f" (randomised model: Spearman {sanity['spearman'][-1]:.2f}, SSIM "
            f"{sanity['ssim'][-1]:.2f}; deletion AUC {sanity['deletion_auc']:.2f} vs "
            f"random {sanity['deletion_auc_random']:.2f}, insertion "
            f"{sanity['insertion_auc']:.2f} vs {sanity['insertion_auc_random']:.2f}"
            + (f", faithfulness gain {gain:+.2f}" if gain is not None else "")
            + ")"
        )
    return f"attention measured with {method}, which {status}{figures}"
