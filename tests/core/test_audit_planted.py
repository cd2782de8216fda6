"""Every planted marker kind: the shortcut model fails and its twin passes, from the CLI.

The 27 tiny models (a shortcut, a partial shortcut and a twin per marker of
``napari_xai.demo.shortcut.PLANTED``) were trained by
``scripts/calibrate_verdict.py --train`` (recipe:
``napari_xai.demo.shortcut.planted_cohorts`` + ``train_tiny_cnn(epochs=10)``) and their
weights committed to ``tests/data/planted_models.npz``; each is handed to the CLI
as a WSInfer folder. The audit slides are held-out tiles (other seed) with the
mark on the tumour tiles only (``one``) or on both classes (``both``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from napari_xai.core.audit.calibration import (
    CalibrationSample,
    fit_thresholds,
    leave_one_group_out,
    sample_features,
)
from napari_xai.core.audit.counterfactual import (
    CounterfactualPair,
    CounterfactualResult,
    EditStats,
)
from napari_xai.core.audit.evidence import PairEvidence
from napari_xai.core.audit.verdict import VerdictThresholds, make_verdict
from napari_xai.core.options import AuditSpec, GridOptions

WEIGHTS = Path(__file__).resolve().parents[1] / "data" / "planted_models.npz"
NAMES = [
    "yellow R", "green stroke", "blue stroke", "blue circle", "black circle",
    "black arrow", "green arrow", "ruler", "printed label",
]  # fmt: skip
#: Words the first sentence of a shortcut's verdict must use for its mark.
MARK_WORDS = {
    "yellow R": "yellow", "green stroke": "green ink", "blue stroke": "blue ink",
    "blue circle": "blue ink", "black circle": "dark mark", "black arrow": "dark mark",
    "green arrow": "green ink", "ruler": "mark", "printed label": "dark mark",
}  # fmt: skip


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch = pytest.importorskip("torch")
    pytest.importorskip("captum")
    from napari_xai.core.models.wsinfer import save_wsinfer_model
    from napari_xai.demo import shortcut as sd

    torch.set_num_threads(1)
    assert [n for n, _, _ in sd.PLANTED] == NAMES
    models = sd.load_planted_weights(WEIGHTS)
    root = tmp_path_factory.mktemp("planted-kinds")
    out: dict[str, Path] = {}
    for name, kind, colour in sd.PLANTED:
        slug = sd.planted_slug(name)
        for role in ("shortcut", "partial", "twin"):
            out[f"{name}/{role}"] = save_wsinfer_model(
                models[f"{slug}/{role}"], sd.make_card(name=f"{slug}-{role}"), root / slug / role
            )
        for on in ("one", "both"):
            held = sd.planted_audit_cohort(kind, colour, on=on)
            out[f"{name}/{on}"] = sd.write_cohort_slide(held, root / f"{slug}-{on}.tif")
    return out


def _cli_audit(slide: Path, model: Path, out: Path, *extra: str) -> dict:
    from napari_xai.cli import main

    rc = main(["audit", str(slide), "--model", str(model), "--mpp", "0.5", "--out", str(out),
               "--quiet", "--device", "cpu", *extra])  # fmt: skip
    assert rc == 0
    return json.loads((out / slide.stem / "audit.json").read_text())


@pytest.mark.parametrize("name", NAMES)
def test_planted_shortcut_fails_and_twin_passes_from_the_cli(
    planted: dict[str, Path], name: str, tmp_path: Path
) -> None:
    slide = planted[f"{name}/one"]
    bad = _cli_audit(slide, planted[f"{name}/shortcut"], tmp_path / "s")
    good = _cli_audit(slide, planted[f"{name}/twin"], tmp_path / "t", "--no-sanity")
    # A weaker shortcut (the mark on half the tumour tiles and a quarter of the normal ones).
    partial = _cli_audit(slide, planted[f"{name}/partial"], tmp_path / "p", "--no-sanity")
    assert partial["verdict"] == "fail", partial["sentence"]
    assert partial["sentence"].startswith("FAIL: the model's tumour calls depend on the ")
    assert bad["verdict"] == "fail" and bad["shortcut_suspected"] is True
    assert bad["sentence"].startswith("FAIL: the model's tumour calls depend on the ")
    assert MARK_WORDS[name] in bad["sentence"].split(":")[1]
    assert good["verdict"] == "pass" and good["shortcut_suspected"] is False, good["sentence"]
    # The verdict says which method it rests on; probed on plain tissue tiles, Grad-CAM
    # passes the randomisation check on every shortcut model.
    shortcut = bad["attention"]["shortcut"]
    assert shortcut["method"] == "grad_cam" and shortcut["sanity"]["trusted"] is True
    assert shortcut["sanity"]["probe_tiles_with_artefacts"] == 0
    assert any(e.startswith("attention measured with grad_cam, which passed") for e in
               shortcut["evidence"])  # fmt: skip
    # The counterfactual moves the shortcut's tumour calls and not the twin's.
    cf_bad = [
        p for p in bad["attention"]["counterfactual"]["pairs"] if p["pred_class"] == "tumour"
    ]
    assert max(p["removal"]["flip_rate"] for p in cf_bad) > 0.4
    assert max(p["paste"]["flip_rate"] for p in cf_bad) > 0.8
    assert all(p["removal_control"]["flip_rate"] < 0.1 for p in cf_bad)
    for p in good["attention"]["counterfactual"]["pairs"]:
        assert p["removal"]["flip_rate"] < 0.15 and p["paste"]["flip_rate"] < 0.15
        assert abs(p["removal"]["mean_dp"]) < 0.1 and abs(p["paste"]["mean_dp"]) < 0.1


@pytest.mark.parametrize("name", ["black arrow", "printed label", "blue circle"])
def test_marks_on_both_classes_shortcut_still_fails_twin_passes(
    planted: dict[str, Path], name: str, tmp_path: Path
) -> None:
    """Marks on the tiles of both classes: the shortcut calls marked normal tissue
    tumour, and removing the mark turns those tiles normal; the twin still passes."""
    slide = planted[f"{name}/both"]
    bad = _cli_audit(slide, planted[f"{name}/shortcut"], tmp_path / "s")
    good = _cli_audit(slide, planted[f"{name}/twin"], tmp_path / "t")
    assert bad["verdict"] == "fail" and "removing it turns" in bad["sentence"]
    assert good["verdict"] == "pass", good["sentence"]
    # Whatever the sanity outcome, the verdict names the method and reports its figures.
    for res in (bad, good):
        shortcut = res["attention"]["shortcut"]
        assert shortcut["method"] == "grad_cam"
        status = "passed" if shortcut["sanity"]["trusted"] else "FAILED"
        assert any(e.startswith(f"attention measured with grad_cam, which {status}") and
                   "Spearman" in e for e in shortcut["evidence"])  # fmt: skip


def test_printed_label_is_found_by_the_artefact_mask() -> None:
    from napari_xai.core.masks import artefact_labels
    from napari_xai.demo import shortcut as sd

    held = sd.make_shortcut_cohort(8, marker=True, seed=5, marker_kind="label")
    for tile, region in zip(
        held.images[held.has_marker], held.regions[held.has_marker], strict=True
    ):
        found = artefact_labels(tile)
        paper = region == 2
        # the printed text (dark mark) is found inside the label, nothing outside it
        assert (found[paper] == 2).mean() > 0.2
        assert not (found[~paper] > 0).any()


# --- the calibration itself, on figures whose truth is known --------------------------


def _sample(group: str, shortcut: bool, dp: float, share: float, enr: float) -> CalibrationSample:
    e = EditStats(16, int(round(16 * dp)), dp, "normal" if dp > 0.3 else None)
    zero = EditStats(16, 0, 0.0)
    cf = CounterfactualResult([CounterfactualPair("tumour", 1, e, zero, e, zero)], 64, 0.1)
    pair = PairEvidence("tumour", 1, "green ink", 16, share, (share * 0.8, share * 1.2), 0.05,
                        (0.04, 0.06), enr * 1.2, (enr, enr * 1.4))  # fmt: skip
    return CalibrationSample(group, f"{group}/{shortcut}", shortcut, [pair], cf)


def test_fit_thresholds_separates_and_generalises_to_a_kind_left_out() -> None:
    rng = np.random.default_rng(0)
    samples = []
    for g in range(6):
        samples.append(_sample(f"k{g}", True, rng.uniform(0.6, 1.0), rng.uniform(0.2, 0.5), 5.0))
        samples.append(_sample(f"k{g}", False, rng.uniform(0.0, 0.1), rng.uniform(0.0, 0.08), 1.0))
    th, rep = fit_thresholds(samples)
    assert rep["counterfactual_errors"] == 0 and rep["attention_errors"] == 0
    # The limits sit in the gaps, not at their edges.
    dps = [sample_features(s.pairs, s.counterfactual, min_tiles=3).cf_dp for s in samples]
    gap = (max(d for d, s in zip(dps, samples, strict=True) if not s.shortcut),
           min(d for d, s in zip(dps, samples, strict=True) if s.shortcut))  # fmt: skip
    assert gap[0] + 0.2 * (gap[1] - gap[0]) < th.dp < gap[1] - 0.2 * (gap[1] - gap[0])
    assert th.warn_dp < th.dp and th.warn_share <= th.share
    loo = leave_one_group_out(samples)
    assert all(all(g["correct"]) for g in loo.values())
    # A twin the attention line alone would catch: the counterfactual clears it.
    twin = _sample("x", False, 0.0, 0.6, 6.0)
    v = make_verdict(twin.pairs, twin.counterfactual, thresholds=th)
    assert v.verdict == "pass"
    assert any("counterfactual test" in e and "clears it" in e for e in v.evidence)
    assert make_verdict(twin.pairs, None, thresholds=th).verdict == "fail"
    with pytest.raises(ValueError, match="shortcut and twin"):
        fit_thresholds([s for s in samples if s.shortcut])


def test_default_thresholds_are_the_calibrated_ones() -> None:
    """The defaults are those docs/audit.md reports from scripts/calibrate_verdict.py."""
    doc = (Path(__file__).resolve().parents[2] / "docs" / "audit.md").read_text()
    th = VerdictThresholds()
    for name in ("dp", "flip_rate", "share", "enrichment", "warn_dp", "warn_flip_rate"):
        assert f"`{name}` | {getattr(th, name):g} |" in doc, name


def test_held_out_seed1_printed_label_by_the_shipped_defaults(tmp_path: Path) -> None:
    """Models of another training seed (``calibrate_verdict.py --train --seed 1``; the
    printed label's three kept in ``tests/data/planted_models_seed1_label.npz``), judged
    by the shipped defaults. Pasting the label onto normal tiles tips 5 of 16 borderline
    ones to tumour in the twin (mean Δp +0.07): a clean model, so it must pass; its
    shortcut and partial shortcut still fail. The full held-out check (54 audits) is
    ``scripts/calibrate_verdict.py --train --seed 1`` (docs/audit.md)."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("captum")
    from napari_xai.core.audit.slide import audit_slide
    from napari_xai.core.models.loading import load_model
    from napari_xai.core.models.wsinfer import save_wsinfer_model
    from napari_xai.demo import shortcut as sd

    torch.set_num_threads(1)
    models = sd.load_planted_weights(WEIGHTS.with_name("planted_models_seed1_label.npz"))
    for on in ("one", "both"):
        slide = sd.write_cohort_slide(
            sd.planted_audit_cohort("label", (30, 30, 35), on=on), tmp_path / f"label-{on}.tif"
        )
        for role in ("shortcut", "partial", "twin"):
            folder = save_wsinfer_model(
                models[f"printed-label/{role}"], sd.make_card(name=f"label-{role}"),
                tmp_path / on / role,
            )  # fmt: skip
            res = audit_slide(
                slide, load_model(folder), spec=AuditSpec(sanity=False), grid=GridOptions(mpp=0.5)
            )
            assert res.verdict == ("pass" if role == "twin" else "fail"), (on, role, res.sentence)
