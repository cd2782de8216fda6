"""``napari-xai audit`` on a cohort and on a slide."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from napari_xai.cli import main
from tests.core.test_audit_data import _write_cohort


def test_cli_cohort_flags_site_and_strict_exit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = _write_cohort(tmp_path, n_per_class=6)
    out = tmp_path / "out"
    assert main(["audit", "--cohort", str(csv), "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "FAIL" in text and "'site'" in text
    summary = json.loads((out / "cohort" / "audit.json").read_text())
    assert summary["data"]["verdict"] == "fail"
    assert (out / "cohort" / "report.html").is_file()
    assert main(["audit", "--cohort", str(csv), "--out", str(out), "--quiet", "--strict"]) == 3
    # Only the unconfounded columns: passes, exit 0 even with --strict.
    args = ["audit", "--cohort", str(csv), "--columns", "scanner", "--out", str(out), "--quiet"]
    assert main([*args, "--strict"]) == 0


def test_cli_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["audit"]) == 2
    assert main(["audit", "--cohort", str(tmp_path / "missing.csv")]) == 1
    assert "missing.csv: cohort table not found" in capsys.readouterr().err


def test_cli_slide(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    torch = pytest.importorskip("torch")
    from tests.core.test_audit_report import audit_test_slide

    torch.set_num_threads(1)
    slide = tmp_path / "cli.svs"
    slide.symlink_to(audit_test_slide(tmp_path_factory))
    out = tmp_path / "out"
    rc = main(["audit", str(slide), "--model", "demo", "--max-tiles", "8", "--out", str(out),
               "--quiet", "--device", "cpu"])  # fmt: skip
    assert rc == 0
    text = capsys.readouterr().out
    assert "cli.svs:" in text and "report:" in text
    summary = json.loads((out / "cli" / "audit.json").read_text())
    assert summary["attention"]["n_audited_tiles"] <= 8
    assert summary["attention"]["method"] == "grad_cam"
