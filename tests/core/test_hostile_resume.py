"""A resumed batch trusts only intact result folders and cleans what killed runs left."""

from __future__ import annotations

from pathlib import Path

import pytest

from napari_xai.core import batch as B
from napari_xai.core.options import BatchOptions
from napari_xai.core.progress import drive
from napari_xai.core.results import read_manifest

from .batch_helpers import write_tiny_slide


@pytest.fixture(scope="module")
def slides(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("resume")
    for i in range(3):
        write_tiny_slide(root / f"s{i}.tif", seed=i, grid_rc=(4, 5))
    return root


def _run(
    slides: Path, out: Path, *, verify: bool = False
) -> tuple[B.BatchResult, list[B.BatchEvent]]:
    import torch

    torch.set_num_threads(1)
    events: list[B.BatchEvent] = []
    batch = BatchOptions(scheduler="sync", verify=verify)
    res = drive(B.iter_batch(slides, "demo", out, batch=batch), events.append)
    return res, events


def test_damaged_results_are_scored_again_with_a_message(slides: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    first, _ = _run(slides, out)
    assert (first.summary["status"] == "done").all()
    written = {sid: read_manifest(out / sid)["written"] for sid in ("s0", "s1", "s2")}
    tiles = out / "s0" / "tiles.parquet"
    tiles.write_bytes(tiles.read_bytes()[: tiles.stat().st_size // 2])  # truncated
    chunk = next(
        p for p in (out / "s1" / "heatmaps.zarr").rglob("*") if p.is_file() and "c" in p.parts
    )
    data = bytearray(chunk.read_bytes())
    data[-1] ^= 0xFF
    chunk.write_bytes(bytes(data))  # same size, other bytes: only --verify sees it

    second, events = _run(slides, out)
    s = second.summary.set_index("slide_id")
    assert not s.loc["s0", "reused"] and s.loc["s1", "reused"] and s.loc["s2", "reused"]
    notes = [e for e in events if e.kind == "recompute"]
    assert [e.slide_id for e in notes] == ["s0"]
    assert "tiles.parquet" in notes[0].message and "bytes" in notes[0].message

    third, events = _run(slides, out, verify=True)
    t = third.summary.set_index("slide_id")
    assert not t.loc["s1", "reused"] and t.loc["s0", "reused"] and t.loc["s2", "reused"]
    notes = [e for e in events if e.kind == "recompute"]
    assert [e.slide_id for e in notes] == ["s1"] and "sha256" in notes[0].message
    assert read_manifest(out / "s2")["written"] == written["s2"]
    assert (t["status"] == "done").all()
    # the re-scored folder is intact again
    assert all(e.kind != "recompute" for e in _run(slides, out, verify=True)[1]), (
        "a re-scored folder must verify"
    )


def test_resume_removes_what_killed_runs_left(slides: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    _run(slides, out)
    # leftovers of a killed run: atomic-write temporaries, a writer's temp folder,
    # a superseded folder, and error files of slides that are now done
    leftovers = [
        out / ".cohort_summary.parquet.0123456789ab.tmp",
        out / ".cohort_roc.png.abcdef012345.tmp",
    ]
    for p in leftovers:
        p.write_bytes(b"half")
    (out / ".s0.tmp-0123456789ab").mkdir()
    (out / ".s1.old-0123456789ab").mkdir()
    errors = out / B.ERRORS_DIR
    errors.mkdir(exist_ok=True)
    (errors / "s2.txt").write_text(f"{slides / 's2.tif'}\nTraceback ...\n")
    foreign = errors / "s1.txt"  # not provably ours (another first line): kept
    foreign.write_text("my own notes\n")
    half_error = errors / ".s0.txt.0123456789ab.tmp"  # a killed atomic write of an error
    half_error.write_text("half")
    user_file = out / "notes.tmp"  # not one of our temporary names: kept
    user_file.write_text("mine")

    res, _ = _run(slides, out)
    assert (res.summary["status"] == "done").all()
    assert not any(p.exists() for p in leftovers)
    assert not [p for p in out.iterdir() if ".tmp-" in p.name or ".old-" in p.name]
    assert not (errors / "s2.txt").exists() and not half_error.exists()
    assert foreign.read_text() == "my own notes\n" and user_file.read_text() == "mine"


def test_a_failed_slide_writes_its_error_atomically_and_a_later_success_removes_it(
    slides: Path, tmp_path: Path
) -> None:
    src = tmp_path / "slides"
    src.mkdir()
    (src / "a.tif").write_bytes((slides / "s0.tif").read_bytes())
    (src / "b.tif").write_bytes(b"not a slide")
    out = tmp_path / "out"
    first, _ = _run(src, out)
    assert first.summary.set_index("slide_id").loc["b", "status"] == "failed"
    err = out / B.ERRORS_DIR / "b.txt"
    assert err.read_text().splitlines()[0] == str((src / "b.tif").absolute())
    assert not [p for p in err.parent.iterdir() if p.name.endswith(".tmp")]
    (src / "b.tif").write_bytes((slides / "s1.tif").read_bytes())  # fixed by the user
    second, _ = _run(src, out)
    assert (second.summary["status"] == "done").all()
    assert not err.exists()
