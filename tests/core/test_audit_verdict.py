"""The shortcut verdict: per class x artefact evidence, counterfactual test, first sentence."""

from __future__ import annotations

import html
import json
from pathlib import Path

import numpy as np
import pytest

from napari_xai.core.audit.counterfactual import EditStats, inpaint
from napari_xai.core.audit.evidence import (
    class_artefact_evidence,
    colour_name,
    ink_colour,
    worst_pair,
)
from napari_xai.core.audit.verdict import VerdictThresholds, make_verdict
from napari_xai.core.options import AuditSpec, GridOptions


def test_colour_names() -> None:
    assert colour_name((30, 160, 60)) == "green"
    assert colour_name((240, 220, 40)) == "yellow"
    assert colour_name((40, 60, 200)) == "blue"
    assert colour_name((20, 20, 20)) == "black"
    assert colour_name((200, 30, 30)) == "red"


@pytest.mark.parametrize(
    ("name", "colour"),
    [("tcga-green-pen", "green"), ("tcga-red-pen", "red"), ("wsi-blue-pen", "blue")],
)
def test_ink_colour_names_real_pen_over_tissue(shared_data: Path, name: str, colour: str) -> None:
    """Real pen over real tissue (hand-checked pen masks in tests/data/qc): the
    mark is named by its own colour; the mean RGB under the green pen, which
    mixes in haematoxylin and eosin, does not say green."""
    from PIL import Image

    path = shared_data / "patches" / "pen" / f"{name}.png"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    rgb = np.asarray(Image.open(path).convert("RGB"))
    pen = np.asarray(Image.open(Path(__file__).parents[1] / "data" / "qc" / f"{name}_pen.png")) > 0
    assert ink_colour(rgb[pen], rgb[~pen]) == colour
    if name == "tcga-green-pen":
        assert colour_name(rgb[pen].mean(axis=0)) != "green"


def test_inpaint_fills_from_surroundings() -> None:
    img = np.zeros((32, 32, 3), np.uint8)
    img[:] = (200, 120, 170)
    img[10:20, 12:18] = (20, 200, 40)  # a green mark
    mask = np.zeros((32, 32), bool)
    mask[10:20, 12:18] = True
    out = inpaint(img, mask)
    assert np.abs(out.astype(int) - (200, 120, 170)).max() <= 1
    assert (out[~mask] == img[~mask]).all()
    with pytest.raises(ValueError, match="whole image"):
        inpaint(img, np.ones((32, 32), bool))


def test_inpaint_removes_real_green_pen(shared_data: Path) -> None:
    """Real TCGA H&E crossed by green pen: after inpainting the detected ink, the
    artefact detector finds (almost) no ink left."""
    from PIL import Image

    from napari_xai.core.masks import artefact_mask

    path = shared_data / "patches" / "pen" / "tcga-green-pen.png"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    rgb = np.asarray(Image.open(path).convert("RGB").resize((188, 158)))
    ink = artefact_mask(rgb)
    assert ink.mean() > 0.02
    grown = ink.copy()
    for _ in range(2):
        grown[1:] |= grown[:-1].copy()
        grown[:-1] |= grown[1:].copy()
        grown[:, 1:] |= grown[:, :-1].copy()
        grown[:, :-1] |= grown[:, 1:].copy()
    cleaned = inpaint(rgb, grown)
    assert artefact_mask(cleaned).mean() < 0.1 * ink.mean()


def test_class_artefact_evidence_and_ci() -> None:
    rng = np.random.default_rng(0)
    n, s = 40, 16
    maps = rng.random((n, s, s))
    kinds = np.zeros((n, s, s), np.uint8)
    kinds[:, :4, :4] = 3  # 1/16 of each tile
    pred = ["tumour"] * 20 + ["normal"] * 20
    maps[:20, :4, :4] += 20.0  # tumour calls look at the mark
    pairs = class_artefact_evidence(maps, kinds, pred, n_boot=300)
    by = {p.pred_class: p for p in pairs}
    t, c = by["tumour"], by["normal"]
    assert t.area == pytest.approx(1 / 16) and t.n_tiles == 20
    assert t.share > 0.7 and t.enrichment > 10
    assert t.share_ci[0] <= t.share <= t.share_ci[1]
    assert t.enrichment_ci[0] <= t.enrichment <= t.enrichment_ci[1]
    assert 0.5 < c.enrichment < 1.5
    assert worst_pair(pairs) is t
    with pytest.raises(ValueError, match="pred_class"):
        class_artefact_evidence(maps, kinds, pred[:-1])


def test_verdict_from_attention_alone_names_class_and_artefact() -> None:
    rng = np.random.default_rng(1)
    maps = rng.random((30, 16, 16))
    kinds = np.zeros((30, 16, 16), np.uint8)
    kinds[:, -4:, -4:] = 1
    maps[:15, -4:, -4:] += 10.0
    images = np.full((30, 16, 16, 3), (220, 150, 190), np.uint8)
    images[:, -4:, -4:] = (30, 170, 60)
    pred = ["tumour"] * 15 + ["normal"] * 15
    pairs = class_artefact_evidence(maps, kinds, pred, images=images, n_boot=200)
    v = make_verdict(pairs, None, method="grad_cam")
    assert v.verdict == "fail" and v.shortcut_suspected
    assert v.sentence.startswith("FAIL: the model's tumour calls depend on the green ink")
    assert "which covers 6% of them" in v.sentence
    # A method that failed its sanity checks cannot carry a fail on its own.
    v2 = make_verdict(pairs, None, method="edge", sanity={"passed": False, "trusted": False})
    assert v2.verdict == "warn"
    assert any("FAILED its sanity checks" in e for e in v2.evidence)


def test_flip_rate_counts_only_with_a_meaningful_dp() -> None:
    """A clean model tips a few borderline tiles when a dark mark is pasted on (5 of 16
    at a mean Δp of +0.07: the seed-1 printed-label twin); that is no shortcut. The
    same flip rate with the calls moved far is one."""
    from napari_xai.core.audit.counterfactual import CounterfactualPair, CounterfactualResult

    th = VerdictThresholds()
    zero = EditStats(16, 0, 0.0)

    def verdict(n_flipped: int, dp: float) -> str:
        paste = EditStats(16, n_flipped, dp)
        cf = CounterfactualResult(
            [CounterfactualPair("tumour", 2, zero, zero, paste, EditStats(16, 0, 0.003))], 64, 0.1
        )
        return make_verdict([], cf, thresholds=th).verdict

    assert th.flip_dp > 0.07
    assert verdict(5, 0.07) == "pass"
    assert verdict(5, th.flip_dp + 0.01) == "fail"
    assert verdict(16, 0.20) == "fail"
    assert verdict(0, th.dp + 0.01) == "fail"
    with pytest.raises(ValueError, match="flip_dp"):
        VerdictThresholds(flip_dp=1.5)


def test_verdict_thresholds_are_checked() -> None:
    with pytest.raises(ValueError, match="flip_rate"):
        VerdictThresholds(flip_rate=1.5)
    assert EditStats(0, 0, 0.0).flip_rate == 0.0


# --- planted shortcut: models as WSInfer folders, slide from held-out tiles, CLI -------


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    torch = pytest.importorskip("torch")
    pytest.importorskip("captum")
    from napari_xai.core.models.wsinfer import save_wsinfer_model
    from napari_xai.demo import shortcut as sd

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("planted")
    out: dict[str, Path] = {}
    for name, marker in (("shortcut", True), ("clean", False)):
        model = sd.train_tiny_cnn(sd.make_shortcut_cohort(100, marker=marker, seed=0))
        out[name] = save_wsinfer_model(model, sd.make_card(name=name), root / name)
    held = sd.make_shortcut_cohort(24, marker=True, seed=100)
    out["slide"] = sd.write_cohort_slide(held, root / "planted.tif")
    return out


@pytest.mark.parametrize(("name", "verdict"), [("shortcut", "fail"), ("clean", "pass")])
def test_cli_planted_shortcut_fails_and_clean_twin_passes(
    planted: dict[str, Path],
    name: str,
    verdict: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from napari_xai.cli import main

    out = tmp_path / "out"
    rc = main(["audit", str(planted["slide"]), "--model", str(planted[name]), "--mpp", "0.5",
               "--out", str(out), "--quiet", "--device", "cpu"])  # fmt: skip
    assert rc == 0
    summary = json.loads((out / "planted" / "audit.json").read_text())
    assert summary["verdict"] == verdict
    assert summary["shortcut_suspected"] is (verdict != "pass")
    sentence = summary["sentence"]
    assert sentence.startswith(f"{verdict.upper()}: ")
    assert "yellow mark" in sentence
    assert sentence in capsys.readouterr().out
    assert html.escape(sentence) in (out / "planted" / "report.html").read_text()
    att = summary["attention"]
    assert att["verdict"] == verdict and att["shortcut"]["method"] == "grad_cam"
    # The verdict says which method it rests on, and that method's sanity result.
    sanity = att["shortcut"]["sanity"]
    assert sanity["method"] == "grad_cam" and sanity["trusted"] is True
    assert sanity["spearman"][-1] < 0.8
    assert any(e.startswith("attention measured with grad_cam, which passed") for e in
               att["shortcut"]["evidence"])  # fmt: skip
    pairs = {p["pred_class"]: p for p in att["class_artefact"]}
    cf = {p["pred_class"]: p for p in att["counterfactual"]["pairs"]}
    if name == "shortcut":
        assert "the model's tumour calls depend on the yellow mark" in sentence
        assert pairs["tumour"]["enrichment_ci"][0] > 3
        assert cf["tumour"]["removal"]["flip_rate"] > 0.3
        assert cf["tumour"]["removal"]["to_class"] == "normal"
        assert cf["tumour"]["paste"]["flip_rate"] > 0.5
        assert cf["tumour"]["removal_control"]["flip_rate"] < 0.1
        assert cf["tumour"]["paste_control"]["flip_rate"] < 0.1
    else:
        assert all(p["enrichment_ci"][1] < 2 for p in pairs.values())
        assert all(p["removal"]["flip_rate"] < 0.1 for p in cf.values())
        assert all(p["paste"]["flip_rate"] < 0.1 for p in cf.values())
    # Asked again with the same options, the folder's audit is kept, printed and judged.
    rc = main(["audit", str(planted["slide"]), "--model", str(planted[name]), "--mpp", "0.5",
               "--out", str(out), "--quiet", "--device", "cpu", "--strict"])  # fmt: skip
    text = capsys.readouterr().out
    assert rc == (3 if verdict == "fail" else 0)
    assert sentence in text and f"audit kept from {out / 'planted'}" in text
    assert f"verdict {verdict.upper()} - {att['n_tiles']} tiles" in text


@pytest.mark.parametrize(
    ("kind", "expected"), [("stroke", 1), ("circle", 1), ("arrow", 2), ("ruler", 3)]
)
def test_marker_kinds_are_found_by_the_artefact_mask(kind: str, expected: int) -> None:
    from napari_xai.core.masks import artefact_labels
    from napari_xai.demo import shortcut as sd

    held = sd.make_shortcut_cohort(8, marker=True, seed=5, marker_kind=kind)
    marked = held.has_marker
    assert marked.sum() == 8 and not held.has_marker[held.labels == 0].any()
    truth = held.regions[marked] == 2
    found = np.stack([artefact_labels(t) for t in held.images[marked]])
    iou = ((found > 0) & truth).sum() / ((found > 0) | truth).sum()
    assert iou > 0.35, iou
    kinds, counts = np.unique(found[truth & (found > 0)], return_counts=True)
    assert kinds[counts.argmax()] == expected
    with pytest.raises(ValueError, match="unknown marker kind"):
        sd.make_shortcut_cohort(2, marker_kind="smiley")


def test_green_pen_stroke_shortcut_fails_and_its_twin_passes(tmp_path: Path) -> None:
    """A model that learned 'green pen => tumour' fails; its twin, trained with the pen
    on both classes (so the pen says nothing), passes."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("captum")
    from napari_xai.core.audit.slide import audit_slide
    from napari_xai.core.models.loading import load_model
    from napari_xai.core.models.wsinfer import save_wsinfer_model
    from napari_xai.demo import shortcut as sd

    torch.set_num_threads(1)
    held = sd.make_shortcut_cohort(16, marker=True, seed=100, marker_kind="stroke")
    slide = sd.write_cohort_slide(held, tmp_path / "stroke.tif")
    verdicts = {}
    for name, classes in (("shortcut", ("tumour",)), ("twin", sd.CLASS_NAMES)):
        cohort = sd.make_shortcut_cohort(80, seed=0, marker_kind="stroke", marker_classes=classes)
        folder = save_wsinfer_model(sd.train_tiny_cnn(cohort), sd.make_card(name=name),
                                    tmp_path / name)  # fmt: skip
        res = audit_slide(
            slide, load_model(folder), spec=AuditSpec(sanity=False), grid=GridOptions(mpp=0.5)
        )
        verdicts[name] = res.verdict
        if name == "shortcut":
            assert res.sentence.startswith(
                "FAIL: the model's tumour calls depend on the green ink"
            )
            cf = res.counterfactual.pair("tumour", 1) if res.counterfactual else None
            assert cf is not None and cf.paste.flip_rate > 0.5 and cf.paste_control.flip_rate < 0.1
    assert verdicts == {"shortcut": "fail", "twin": "pass"}
