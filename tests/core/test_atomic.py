"""One atomic-write helper: unique temporaries, nothing half-written, leftovers cleaned."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from napari_xai.core.atomic import (
    atomic_write,
    atomic_write_text,
    clean_temporaries,
    is_temporary,
    temporary_path,
)


def test_temporary_names_are_unique_hidden_siblings(tmp_path: Path) -> None:
    target = tmp_path / "cohort_summary.parquet"
    names = {temporary_path(target).name for _ in range(1000)}
    assert len(names) == 1000
    one = temporary_path(target)
    assert one.parent == tmp_path and one.name.startswith(".cohort_summary.parquet.")
    assert is_temporary(one) and is_temporary(one, name="cohort_summary.parquet")
    assert not is_temporary(one, name="cohort_summary.csv")
    assert not is_temporary(target) and not is_temporary(tmp_path / ".hidden.tmp")


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = atomic_write_text(tmp_path / "sub" / "a.json", "old")
    assert target.read_text() == "old"

    def broken(p: Path) -> None:
        p.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(target, broken)
    assert target.read_text() == "old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["a.json"]


def test_concurrent_writers_never_share_a_temporary(tmp_path: Path) -> None:
    target = tmp_path / "same.txt"
    errors: list[BaseException] = []

    def write(i: int) -> None:
        try:
            for _ in range(20):
                atomic_write_text(target, f"writer {i}\n" * 100)
        except BaseException as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    lines = set(target.read_text().splitlines())
    assert len(lines) == 1  # one writer's whole content, never a mix
    assert sorted(p.name for p in tmp_path.iterdir()) == ["same.txt"]


def test_clean_temporaries_removes_only_leftovers(tmp_path: Path) -> None:
    keep = [tmp_path / "cohort_summary.csv", tmp_path / ".gitignore", tmp_path / "x.tmp"]
    for p in keep:
        p.write_text("keep")
    left = [temporary_path(tmp_path / "cohort_summary.parquet"), tmp_path / ".a.csv.0123abcd.tmp"]
    for p in left:
        p.write_text("half")
    assert clean_temporaries(tmp_path, name="other") == 0
    assert clean_temporaries(tmp_path) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in keep)
    assert clean_temporaries(tmp_path / "missing") == 0


def test_a_resumed_batch_removes_a_summary_temporary_a_kill_left(tmp_path: Path) -> None:
    """A kill inside the cohort summary write once left ``.cohort_summary.parquet.<id>.tmp``."""
    pytest.importorskip("torch")
    from napari_xai.core import batch as B
    from napari_xai.core.options import BatchOptions

    from .batch_helpers import write_tiny_slide

    slides = tmp_path / "slides"
    slides.mkdir()
    write_tiny_slide(slides / "s0.tif", seed=3, tumour=True)
    out = tmp_path / "out"
    out.mkdir()
    stale = out / ".cohort_summary.parquet.5f3a9c0e1b2d.tmp"
    stale.write_bytes(b"PAR1 half a parquet file")
    result = B.run_batch(slides, "demo", out, batch=BatchOptions(scheduler="sync"))
    assert result.count("done") == 1
    assert not stale.exists()
    assert not [p for p in out.iterdir() if p.name.startswith(".")]
