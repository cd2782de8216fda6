"""The cohort's shortcut verdict: the slide verdicts aggregated over slides.

A shortcut seen on 1 slide of 40 and one seen on all 40 are different findings:
the first may be one slide's odd mark (look at it), the second is the model. The
cohort verdict is the worst slide verdict, and its first sentence says on how many
slides each class × artefact shortcut was found, out of the audited slides and out
of the slides where that artefact was found at all, e.g.

    FAIL: the model's tumour calls depend on the green ink on 3 of 40 audited slides
    (3 of the 5 with green ink); 37 pass.

:func:`cohort_audit` works on the per-slide ``audit.json`` figures (the ``attention``
part of :meth:`~napari_xai.core.audit.slide.SlideAudit.to_dict`);
:func:`write_cohort_audit_html` writes a one-page summary linking each slide's report.
"""

from __future__ import annotations

import html
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["COHORT_AUDIT_HTML", "cohort_audit", "write_cohort_audit_html"]

COHORT_AUDIT_HTML = "cohort_audit.html"
_ORDER = {"fail": 2, "warn": 1, "pass": 0}


def _present(att: Mapping[str, Any]) -> set[str]:
    """Artefact names found on the slide's audited tiles (any class)."""
    return {str(p.get("name")) for p in att.get("class_artefact") or [] if p.get("name")}


def cohort_audit(slides: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Aggregate slide audits into the cohort verdict and its first sentence.

    Parameters
    ----------
    slides : sequence of dict
        One per audited slide: ``slide_id`` and ``attention`` (the slide's
        ``audit.json`` → ``attention``: ``verdict``, ``shortcut`` with
        ``pred_class``/``artefact``, ``class_artefact``). A slide without
        ``attention`` (not audited, failed) is left out.

    Returns
    -------
    dict
        ``verdict`` (``"pass"|"warn"|"fail"``, ``"n/a"`` when nothing was audited),
        ``sentence``, ``n_audited``, ``n_fail``, ``n_warn``, ``n_pass``, and
        ``shortcuts``: per (class, artefact) found failing or warning on some slide:
        ``pred_class``, ``artefact``, ``n_fail``, ``n_warn``, ``n_with_artefact``
        (audited slides where that artefact was found) and ``slides`` (ids).
    """
    audited = [s for s in slides if isinstance(s.get("attention"), Mapping)]
    n = len(audited)
    counts = {v: 0 for v in _ORDER}
    with_art: dict[str, int] = {}
    found: dict[tuple[str, str], dict[str, Any]] = {}
    for s in audited:
        att = s["attention"]
        verdict = str(att.get("verdict", "pass"))
        counts[verdict] = counts.get(verdict, 0) + 1
        for name in _present(att):
            with_art[name] = with_art.get(name, 0) + 1
        sc = att.get("shortcut") or {}
        if verdict in ("fail", "warn") and sc.get("pred_class") and sc.get("artefact"):
            key = (str(sc["pred_class"]), str(sc["artefact"]))
            entry = found.setdefault(
                key,
                {"pred_class": key[0], "artefact": key[1], "n_fail": 0, "n_warn": 0, "slides": []},
            )
            entry[f"n_{verdict}"] += 1
            entry["slides"].append(str(s.get("slide_id", "")))
    shortcuts = sorted(found.values(), key=lambda e: (-e["n_fail"], -e["n_warn"]))
    for e in shortcuts:
        e["n_with_artefact"] = with_art.get(e["artefact"], len(e["slides"]))
    out: dict[str, Any] = {
        "n_audited": n,
        "n_fail": counts["fail"],
        "n_warn": counts["warn"],
        "n_pass": counts["pass"],
        "shortcuts": shortcuts,
    }
    if n == 0:
        return {**out, "verdict": "n/a", "sentence": "No slide was audited."}
    verdict = max((v for v in counts if counts[v]), key=_ORDER.__getitem__)
    if verdict == "pass":
        n_art = sum(1 for s in audited if _present(s["attention"]))
        sentence = (
            f"PASS: no shortcut found on any of the {n} audited slides "
            f"(artefacts on {n_art} of them)."
        )
        return {**out, "verdict": verdict, "sentence": sentence}
    clauses = []
    for e in shortcuts:
        k = e["n_fail"] if verdict == "fail" else e["n_warn"]
        if not k:
            continue
        how = "depend on" if verdict == "fail" else "may depend on"
        scope = "every audited slide" if k == n else f"{k} of {n} audited slides"
        clauses.append(
            f"the model's {e['pred_class']} calls {how} the {e['artefact']} on {scope} "
            f"({k} of the {e['n_with_artefact']} with {e['artefact']})"
        )
    others = [f"{counts[v]} {v}" for v in ("warn", "pass") if v != verdict and counts[v]]
    tail = f"; {', '.join(others)}" if others else ""
    body = "; ".join(clauses) if clauses else f"{counts[verdict]} of {n} slides"
    sentence = f"{verdict.upper()}: {body}{tail}."
    if verdict == "fail" and counts["fail"] == 1 and n > 1:
        sentence += " Seen on one slide only: look at that slide before blaming the model."
    return {**out, "verdict": verdict, "sentence": sentence}


def write_cohort_audit_html(
    out_dir: str | Path,
    cohort: Mapping[str, Any],
    slides: Sequence[Mapping[str, Any]],
) -> Path:
    """Write ``cohort_audit.html``: the cohort sentence and one row per slide.

    Parameters
    ----------
    out_dir : str or Path
        The batch output folder (slide result folders below it).
    cohort : dict
        :func:`cohort_audit` output.
    slides : sequence of dict
        ``slide_id``, ``audit_verdict``, ``audit_sentence``, ``audit_method`` and
        ``result_folder`` per slide.

    Returns
    -------
    Path
    """
    from napari_xai.core.atomic import atomic_write_text
    from napari_xai.core.naming import verdict_hex

    root = Path(out_dir)
    rows = []
    for s in sorted(slides, key=lambda r: -_ORDER.get(str(r.get("audit_verdict")), -1)):
        v = str(s.get("audit_verdict") or "")
        if not v or v == "nan":
            continue
        sid = html.escape(str(s.get("slide_id", "")))
        link = f'<a href="{sid}/report.html">{sid}</a>' if s.get("result_folder") else sid
        rows.append(
            f'<tr><td>{link}</td><td style="color:{verdict_hex(v)}">{v.upper()}</td>'
            f"<td>{html.escape(str(s.get('audit_sentence') or ''))}</td>"
            f"<td>{html.escape(str(s.get('audit_method') or ''))}</td></tr>"
        )
    v = str(cohort.get("verdict", "n/a"))
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>Cohort shortcut audit</title>"
        "<style>body{font-family:sans-serif;max-width:70em;margin:1em auto}"
        "td,th{border-bottom:1px solid #ddd;padding:.3em;text-align:left;vertical-align:top}"
        "</style></head><body><h1>Cohort shortcut audit</h1>"
        f'<p style="font-size:1.2em"><b style="color:{verdict_hex(v)}">'
        f"{html.escape(str(cohort.get('sentence', '')))}</b></p>"
        f"<p>{cohort.get('n_audited', 0)} slides audited: {cohort.get('n_fail', 0)} fail, "
        f"{cohort.get('n_warn', 0)} warn, {cohort.get('n_pass', 0)} pass.</p>"
        "<table><tr><th>slide</th><th>verdict</th><th>first sentence</th>"
        "<th>attribution method</th></tr>" + "".join(rows) + "</table></body></html>\n"
    )
    return atomic_write_text(root / COHORT_AUDIT_HTML, page)
