"""The cohort's shortcut verdict: a shortcut on 1 slide of 40 vs on all of them."""

from __future__ import annotations

from pathlib import Path

from napari_xai.core.audit.cohort_verdict import cohort_audit, write_cohort_audit_html


def _slide(i: int, verdict: str, *, ink: bool) -> dict:
    pairs = [{"pred_class": "tumour", "name": "green ink"}] if ink else []
    shortcut = {"pred_class": "tumour", "artefact": "green ink"} if verdict != "pass" else {}
    return {
        "slide_id": f"s{i:02d}",
        "attention": {"verdict": verdict, "shortcut": shortcut, "class_artefact": pairs},
    }


def test_one_slide_of_forty_vs_all_forty() -> None:
    one = cohort_audit(
        [_slide(0, "fail", ink=True)] + [_slide(i, "pass", ink=i < 5) for i in range(1, 40)]
    )
    assert one["verdict"] == "fail" and (one["n_fail"], one["n_pass"]) == (1, 39)
    assert one["sentence"] == (
        "FAIL: the model's tumour calls depend on the green ink on 1 of 40 audited slides "
        "(1 of the 5 with green ink); 39 pass. Seen on one slide only: look at that slide "
        "before blaming the model."
    )
    [sc] = one["shortcuts"]
    assert sc["slides"] == ["s00"] and sc["n_with_artefact"] == 5
    every = cohort_audit([_slide(i, "fail", ink=True) for i in range(40)])
    assert every["sentence"] == (
        "FAIL: the model's tumour calls depend on the green ink on every audited slide "
        "(40 of the 40 with green ink)."
    )
    mixed = cohort_audit(
        [_slide(0, "warn", ink=True), _slide(1, "pass", ink=False), {"slide_id": "x"}]
    )
    assert mixed["verdict"] == "warn" and mixed["n_audited"] == 2
    assert mixed["sentence"].startswith("WARN: the model's tumour calls may depend on the green")
    clean = cohort_audit([_slide(i, "pass", ink=i == 0) for i in range(3)])
    assert clean["sentence"] == "PASS: no shortcut found on any of the 3 audited slides " \
        "(artefacts on 1 of them)."  # fmt: skip
    assert cohort_audit([])["verdict"] == "n/a"


def test_cohort_audit_page_links_each_report(tmp_path: Path) -> None:
    cohort = cohort_audit([_slide(0, "fail", ink=True), _slide(1, "pass", ink=False)])
    rows = [
        {"slide_id": "s00", "audit_verdict": "fail", "audit_sentence": "FAIL: <x>",
         "audit_method": "grad_cam (sanity checks passed)", "result_folder": "/r/s00"},
        {"slide_id": "s01", "audit_verdict": "pass", "audit_sentence": "PASS: ok",
         "audit_method": "grad_cam (sanity checks passed)", "result_folder": "/r/s01"},
        {"slide_id": "s02", "audit_verdict": None},
    ]  # fmt: skip
    page = write_cohort_audit_html(tmp_path, cohort, rows).read_text()
    assert cohort["sentence"].replace("'", "&#x27;") in page
    assert '<a href="s00/report.html">s00</a>' in page and "FAIL: &lt;x&gt;" in page
    assert page.index("s00") < page.index("s01") and "s02" not in page
