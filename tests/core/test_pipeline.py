"""run_slide: one result folder per slide, stages that add to it, options with stable hashes."""

from __future__ import annotations

import json
from dataclasses import FrozenInstanceError
from pathlib import Path

import pytest

from napari_xai.core.options import (
    DEFAULT_MIN_TISSUE,
    AuditSpec,
    ExplainSpec,
    GridOptions,
    RunOptions,
    SlideOptions,
    stable_hash,
)

SLIDE = "CMU-1-Small-Region.svs"


@pytest.fixture(scope="module")
def cmu(shared_data: Path) -> Path:
    path = shared_data / "slides" / SLIDE
    if not path.is_file():
        pytest.skip(f"{path} is not there (real test data)")
    return path


def test_options_hash_is_stable_and_defaults_live_in_one_place() -> None:
    assert GridOptions().min_tissue == DEFAULT_MIN_TISSUE == 0.5
    assert GridOptions().hash() == GridOptions(min_tissue=0.5, overlap=0.0).hash()
    assert GridOptions(min_tissue=0.6).hash() != GridOptions().hash()
    # the same fields in another option kind hash differently
    assert ExplainSpec().hash() != AuditSpec(method="grad_cam").hash()
    # a known value: the hash does not depend on the process or dict order
    assert stable_hash({"b": 1, "a": [1, 2]}) == stable_hash({"a": [1, 2], "b": 1})
    assert len(GridOptions().hash()) == 64
    # restarting a map does not change what it is
    assert ExplainSpec(restart=True).hash() == ExplainSpec().hash()
    assert ExplainSpec(view_rc=(0, 0, 10, 10)).to_dict()["view_rc"] == [0, 0, 10, 10]
    with pytest.raises(FrozenInstanceError):
        GridOptions().min_tissue = 0.1  # type: ignore[misc]
    with pytest.raises(ValueError, match="overlap must be in"):
        GridOptions(overlap=1.0)
    with pytest.raises(ValueError, match="batch_size must be at least 1"):
        RunOptions(batch_size=0)
    assert RunOptions().torch_device is None and RunOptions(device="cpu").torch_device == "cpu"


def _drive(gen):
    steps = []
    while True:
        try:
            steps.append(next(gen))
        except StopIteration as stop:
            return stop.value, steps


def test_stages_add_to_one_folder_and_rescoring_keeps_or_invalidates(
    cmu: Path, tmp_path: Path
) -> None:
    from napari_xai.core.pipeline import run_slide
    from napari_xai.core.results import load_result

    run = RunOptions(device="cpu", num_workers=1)
    grid = GridOptions()
    folder, steps = _drive(
        run_slide(
            cmu,
            "demo",
            tmp_path,
            options=SlideOptions(grid=grid, run=run),
        )
    )
    assert folder == tmp_path / "CMU-1-Small-Region"
    assert [s.stage for s in steps][-1] == "write"
    scored = load_result(folder)
    n_tiles = len(scored.tiles)
    assert n_tiles > 50 and scored.manifest["stages"]["score"]["sha256"] == grid.hash()

    folder, _ = _drive(
        run_slide(
            cmu,
            "demo",
            tmp_path,
            options=SlideOptions(
                grid=grid, run=run, explain=ExplainSpec(method="saliency", target="tumour")
            ),
        )
    )
    folder, steps = _drive(
        run_slide(
            cmu,
            "demo",
            tmp_path,
            options=SlideOptions(grid=grid, run=run, audit=AuditSpec(max_tiles=8)),
        )
    )
    assert "score" not in {s.stage for s in steps}  # the score was reused, not redone
    res = load_result(folder)
    kinds = {h.kind for h in res.heatmaps}
    assert kinds == {"probabilities", "saliency"}
    assert "saliency/saliency/tumour" in res.manifest["heatmaps"]
    assert res.audit is not None and res.audit["attention"]["n_audited_tiles"] <= 8
    assert (folder / "report.html").is_file()
    assert len(res.tiles) == n_tiles
    assert set(res.manifest["stages"]) == {"score", "explain", "audit"}
    # nothing left beside the folder: no temporaries, the finished cache removed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["CMU-1-Small-Region"]

    # the same grid again: everything kept
    folder, steps = _drive(
        run_slide(
            cmu,
            "demo",
            tmp_path,
            options=SlideOptions(grid=grid, run=run),
        )
    )
    assert steps[0].stage == "reuse"
    again = load_result(folder)
    assert again.manifest["heatmaps"] == res.manifest["heatmaps"]
    assert again.audit == res.audit

    # another grid: re-scored, and it says what it invalidated
    stricter = SlideOptions(grid=GridOptions(min_tissue=0.9), run=run)
    folder, steps = _drive(run_slide(cmu, "demo", tmp_path, stricter))
    said = [s.message for s in steps if s.stage == "invalidate"]
    assert len(said) == 1 and "saliency/saliency/tumour" in said[0] and "audit" in said[0]
    fresh = load_result(folder)
    assert {h.kind for h in fresh.heatmaps} == {"probabilities"}
    assert fresh.audit is None and not (folder / "report.html").exists()
    assert len(fresh.tiles) < n_tiles  # a stricter tissue threshold keeps fewer tiles


def test_explain_and_audit_take_the_folders_grid(cmu: Path, tmp_path: Path) -> None:
    """Scored with a non-default overlap, then explained and audited with grid=None:
    nothing is re-scored, the saliency is stitched on the scored grid."""
    from napari_xai.core.pipeline import folder_grid, run_slide
    from napari_xai.core.results import load_result, read_manifest

    run = RunOptions(device="cpu", num_workers=1)
    grid = GridOptions(overlap=0.25)
    assert folder_grid(tmp_path / "CMU-1-Small-Region") is None  # nothing there yet
    folder, _ = _drive(
        run_slide(
            cmu,
            "demo",
            tmp_path,
            options=SlideOptions(grid=grid, run=run),
        )
    )
    scored = read_manifest(folder)
    assert folder_grid(folder) == grid
    assert scored["grid"]["stride0"] < scored["grid"]["tile_size0"]  # overlapping tiles

    spec = ExplainSpec(method="saliency")
    folder, steps = _drive(
        run_slide(
            cmu,
            "demo",
            tmp_path,
            options=SlideOptions(run=run, explain=spec),
        )
    )
    stages = [s.stage for s in steps]
    assert "score" not in stages and "invalidate" not in stages and stages[0] == "reuse"
    folder, steps = _drive(
        run_slide(
            cmu,
            "demo",
            tmp_path,
            options=SlideOptions(run=run, audit=AuditSpec(max_tiles=8)),
        )
    )
    assert "score" not in {s.stage for s in steps} and "invalidate" not in {s.stage for s in steps}
    res = load_result(folder)
    assert res.manifest["stages"]["score"] == scored["stages"]["score"]
    assert res.manifest["timings"]["score_s"] == scored["timings"]["score_s"]  # not redone
    assert set(res.manifest["stages"]) == {"score", "explain", "audit"}
    assert res.audit is not None
    # the saliency map was stitched on the overlapping grid the folder was scored with:
    # every scored tile explained (the default grid holds fewer tiles)
    explained = res.manifest["stages"]["explain"]["saliency/saliency/predicted"]
    assert explained["n_tiles"] == explained["n_done"] == len(res.tiles)

    # a grid given explicitly still wins, and says what it invalidates
    folder, steps = _drive(
        run_slide(
            cmu,
            "demo",
            tmp_path,
            options=SlideOptions(grid=GridOptions(), run=run),
        )
    )
    said = [s.message for s in steps if s.stage == "invalidate"]
    assert len(said) == 1 and "audit" in said[0]
    assert folder_grid(folder) == GridOptions()


def test_a_cancelled_stage_keeps_the_old_result_and_the_next_run_resumes(
    cmu: Path, tmp_path: Path
) -> None:
    from napari_xai.core.pipeline import run_slide
    from napari_xai.core.results import load_result, read_manifest

    run = RunOptions(device="cpu", num_workers=1, explain_batch_size=8)
    folder, _ = _drive(
        run_slide(
            cmu,
            "demo",
            tmp_path,
            options=SlideOptions(run=run),
        )
    )
    before = read_manifest(folder)
    spec = ExplainSpec(method="saliency")
    gen = run_slide(
        cmu,
        "demo",
        tmp_path,
        options=SlideOptions(run=run, explain=spec),
    )
    while next(gen).stage != "explain":
        pass
    next(gen)
    gen.close()  # cancelled in the middle of the explain stage
    assert read_manifest(folder) == before  # the old result is untouched
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("."))
    assert leftovers == [".CMU-1-Small-Region.saliency-cache.zarr"]  # kept for the resume
    folder, steps = _drive(
        run_slide(
            cmu,
            "demo",
            tmp_path,
            options=SlideOptions(run=run, explain=spec),
        )
    )
    done = next(s.value for s in steps if s.stage == "explain" and s.value is not None)
    assert done.n_cached >= 8 and done.n_done == done.n_tiles  # resumed, then completed
    assert "saliency/saliency/predicted" in load_result(folder).manifest["heatmaps"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["CMU-1-Small-Region"]


def test_leftover_temporary_folders_are_removed(cmu: Path, tmp_path: Path) -> None:
    from napari_xai.core.pipeline import run_slide

    stale = tmp_path / ".CMU-1-Small-Region.tmp-0123456789ab"
    stale.mkdir()
    (stale / "tiles.parquet").write_bytes(b"half")
    options = SlideOptions(grid=GridOptions(max_tiles=8), run=RunOptions(device="cpu"))
    folder, _ = _drive(run_slide(cmu, "demo", tmp_path, options))
    assert not stale.exists()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["params"]["max_tiles"] == 8


def test_bad_slide_is_a_clear_error(shared_data: Path, tmp_path: Path) -> None:
    from napari_xai.core.pipeline import run_slide

    bad = shared_data / "slides" / "bad" / "boxes_0.dcm"
    if not bad.is_file():
        pytest.skip(f"{bad} is not there (real test data)")
    with pytest.raises(ValueError, match="boxes_0.dcm"):
        _drive(
            run_slide(
                bad,
                "demo",
                tmp_path,
                options=SlideOptions(run=RunOptions(device="cpu")),
            )
        )
    assert not any(tmp_path.iterdir())


def test_two_runs_on_one_folder_take_turns_and_lose_nothing(cmu: Path, tmp_path: Path) -> None:
    """A Score and an Explain started together on one slide (two widget clicks). Before, both
    read the same (missing) folder, both scored, and the later commit dropped the other's work."""
    from napari_xai.core.pipeline import run_slide
    from napari_xai.core.results import read_manifest

    run = RunOptions(device="cpu", num_workers=1)
    first = run_slide(cmu, "demo", tmp_path, SlideOptions(run=run))
    while next(first).stage != "score":  # the first run is scoring: it holds the folder
        pass
    explain = ExplainSpec(method="saliency", target="tumour")
    second = run_slide(cmu, "demo", tmp_path, SlideOptions(run=run, explain=explain))
    step = next(second)  # its first step: it waits, before it reads or cleans anything
    assert step.stage == "wait" and "waiting for another run" in step.message
    _drive(first)  # the first one commits; the second one then reads its folder
    folder, steps = _drive(second)
    stages = [s.stage for s in steps]
    assert "reuse" in stages and "score" not in stages  # the first run's score, kept
    manifest = read_manifest(folder)
    assert set(manifest["stages"]) == {"score", "explain"}
    assert read_manifest(folder)["stages"]["score"]["sha256"] == GridOptions().hash()
