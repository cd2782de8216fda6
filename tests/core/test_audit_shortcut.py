"""Acceptance test of the audit: a planted shortcut is flagged, a clean model is not."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("captum")

from napari_xai.core.audit.attention import ARTEFACT, TISSUE, audit_attention  # noqa: E402
from napari_xai.demo import shortcut as sd  # noqa: E402


@pytest.fixture(scope="module")
def models() -> dict[str, object]:
    torch.set_num_threads(1)  # 2 shared cores: one thread is much faster than two here
    shortcut = sd.train_tiny_cnn(sd.make_shortcut_cohort(100, marker=True, seed=0))
    clean = sd.train_tiny_cnn(sd.make_shortcut_cohort(100, marker=False, seed=0))
    return {"shortcut": shortcut, "clean": clean}


@pytest.fixture(scope="module")
def audit_set() -> sd.ShortcutCohort:
    # Held-out tiles of the shortcut cohort: every tumour tile carries the marker.
    return sd.make_shortcut_cohort(16, marker=True, seed=100)


def test_cohort_plants_marker_on_tumour_only() -> None:
    marked = sd.make_shortcut_cohort(10, marker=True, seed=3)
    clean = sd.make_shortcut_cohort(10, marker=False, seed=3)
    tumour = marked.labels == 1
    assert marked.has_marker[tumour].all() and not marked.has_marker[~tumour].any()
    assert not clean.has_marker.any()
    assert (clean.regions == TISSUE).all()
    # The marker covers a small corner of each tumour tile, nothing else differs.
    art = (marked.regions == ARTEFACT).mean(axis=(1, 2))
    assert np.all((art[tumour] > 0.01) & (art[tumour] < 0.12))
    differ = (marked.images != clean.images).any(axis=-1)
    assert not differ[~tumour].any()
    assert (differ[tumour] <= (marked.regions[tumour] == ARTEFACT)).all()


def test_shortcut_model_uses_marker(
    models: dict[str, object], audit_set: sd.ShortcutCohort
) -> None:
    # Swap the marker onto every tile: the shortcut model now calls everything tumour,
    # the clean model keeps looking at the tissue.
    all_marked = sd.make_shortcut_cohort(16, marker=True, seed=100, marker_classes=sd.CLASS_NAMES)
    pred_s = sd.predict(models["shortcut"], all_marked.images).argmax(1)
    pred_c = sd.predict(models["clean"], all_marked.images).argmax(1)
    normal = all_marked.labels == 0
    assert (pred_s[normal] == 1).mean() > 0.9
    assert (pred_c[normal] == 1).mean() < 0.3


def _audit(model: object, tiles: sd.ShortcutCohort):  # noqa: ANN202
    probs = sd.predict(model, tiles.images)
    maps = sd.explain(model, tiles.images, method="integrated_gradients")
    pred = [sd.CLASS_NAMES[i] for i in probs.argmax(1)]
    return audit_attention(maps, tiles.regions, pred_class=pred, sign="positive")


def test_audit_flags_shortcut_and_passes_clean(
    models: dict[str, object], audit_set: sd.ShortcutCohort
) -> None:
    shortcut = _audit(models["shortcut"], audit_set)
    clean = _audit(models["clean"], audit_set)
    marked = audit_set.has_marker
    # Most of the attribution of the marked tiles lies on the marker (< 10 % of the area).
    share_s = np.median(shortcut.tile_shares[marked, ARTEFACT])
    share_c = np.median(clean.tile_shares[marked, ARTEFACT])
    assert share_s > 0.4, share_s
    assert share_c < 0.2, share_c
    assert shortcut.verdict == "fail", shortcut.evidence
    assert clean.verdict == "pass", clean.evidence
    assert shortcut.flagged[marked].mean() > 0.3
    assert not clean.flagged.any()
    assert not shortcut.flagged[~marked].any()
    # Per predicted class: the shortcut shows up on tiles called tumour.
    assert shortcut.shares_by_class["tumour"]["artefact"] > 0.3
    assert shortcut.shares_by_class["normal"]["artefact"] == 0.0
    # Evidence names the figures; worst tiles are the flagged marked ones.
    assert any("artefact" in e for e in shortcut.evidence)
    assert all(marked[i] for i in shortcut.worst[: int(shortcut.flagged.sum())])


def test_saliency_also_separates_the_models(
    models: dict[str, object], audit_set: sd.ShortcutCohort
) -> None:
    # Plain gradients are more diffuse, but the shortcut model's marker enrichment is
    # still well above the clean model's.
    marked = audit_set.has_marker
    res = {}
    for name, model in models.items():
        maps = sd.explain(model, audit_set.images[marked], method="saliency")
        res[name] = audit_attention(maps, audit_set.regions[marked])
    assert res["shortcut"].enrichment["artefact"] > 1.5 * res["clean"].enrichment["artefact"]


def test_real_tiles_with_and_without_marker(models: dict[str, object], shared_data) -> None:  # noqa: ANN001
    """Real H&E tiles (NCT-CRC-HE): the marker is detected by the artefact mask (not
    given), the shortcut model calls every marked tile tumour and looks at the marker,
    the clean model does not; unmarked real tiles have no artefact and are not flagged."""
    tifffile = pytest.importorskip("tifffile")
    from PIL import Image

    from napari_xai.core.attribution import explain_tiles
    from napari_xai.core.audit.attention import make_region_map
    from napari_xai.core.masks import artefact_mask

    folder = shared_data / "patches" / "nct_crc_he_100k_sample"
    paths = sorted(folder.glob("*.tif"))
    if not paths:
        pytest.skip(f"no real tiles in {folder}")
    tiles = np.stack(
        [
            np.asarray(
                Image.fromarray(tifffile.imread(p)[..., :3]).resize((64, 64), Image.BILINEAR)
            )
            for p in paths
        ]
    )
    rng = np.random.default_rng(0)
    stamped = [sd.stamp_marker(t, rng=rng) for t in tiles]
    marked = np.stack([s[0] for s in stamped])
    truth = np.stack([s[1] for s in stamped])
    detected = np.stack([artefact_mask(m) for m in marked])
    iou = (detected & truth).sum(axis=(1, 2)) / (detected | truth).sum(axis=(1, 2))
    assert np.all(iou > 0.5), iou
    assert not any(artefact_mask(t).any() for t in tiles)
    full = np.ones((64, 64), bool)
    regions_marked = np.stack([make_region_map(full, artefact=d) for d in detected])
    regions_clean = np.stack([make_region_map(full) for _ in tiles])

    def audit(model, imgs, regs):  # noqa: ANN001, ANN202
        maps = explain_tiles(model, sd.to_tensor(imgs), method="integrated_gradients", n_steps=16)
        return audit_attention(maps, regs, sign="positive")

    assert (sd.predict(models["shortcut"], marked).argmax(1) == 1).all()
    s_marked = audit(models["shortcut"], marked, regions_marked)
    c_marked = audit(models["clean"], marked, regions_marked)
    assert s_marked.verdict == "fail" and s_marked.flagged.sum() >= 3
    assert np.median(s_marked.tile_shares[:, ARTEFACT]) > 0.3
    assert c_marked.verdict == "pass" and c_marked.tile_shares[:, ARTEFACT].max() < 0.2
    s_clean = audit(models["shortcut"], tiles, regions_clean)
    assert s_clean.verdict == "pass" and s_clean.shares["artefact"] == 0.0


def test_tile_audit_with_detected_regions_and_cli(
    models: dict[str, object],
    tmp_path,
    capsys: pytest.CaptureFixture[str],  # noqa: ANN001
) -> None:
    """End to end from files: PNG tiles + cohort CSV + TorchScript models with cards; the
    marker is found by the artefact mask, not given."""
    import json

    import pandas as pd  # noqa: TID253
    from PIL import Image

    from napari_xai.cli import main
    from napari_xai.core.audit.tiles import audit_tiles
    from napari_xai.core.models.loading import load_model, save_torchscript

    held = sd.make_shortcut_cohort(12, marker=True, seed=100)
    rows = []
    for i, (img, label) in enumerate(zip(held.images, held.labels, strict=True)):
        Image.fromarray(img).save(tmp_path / f"t{i}.png")
        rows.append({"path": f"t{i}.png", "label": sd.CLASS_NAMES[int(label)]})
    pd.DataFrame(rows).to_csv(tmp_path / "tiles.csv", index=False)
    verdicts = {}
    for name, model in models.items():
        path = save_torchscript(model, sd.make_card(name=name), tmp_path / f"{name}.pt")
        res = audit_tiles(held.images, load_model(path))
        verdicts[name] = res.verdict
        assert res.probabilities.shape == (len(held), 2)
        out = tmp_path / f"out_{name}"
        args = ["audit", "--cohort", str(tmp_path / "tiles.csv"), "--model", str(path)]
        assert main([*args, "--method", "integrated_gradients", "--out", str(out), "--quiet"]) == 0
        summary = json.loads((out / "tiles" / "audit.json").read_text())
        assert summary["attention"]["verdict"] == res.verdict
        assert summary["data"]["verdict"] == "pass"
    assert verdicts == {"shortcut": "fail", "clean": "pass"}
    assert "attention (integrated_gradients, 24 tiles): FAIL" in capsys.readouterr().out


def test_fail_fast_hook_runs_every_epoch_in_eval_mode() -> None:
    seen: list[tuple[int, bool]] = []
    sd.train_tiny_cnn(
        sd.make_shortcut_cohort(8, seed=1), epochs=3,
        on_epoch=lambda e, m: seen.append((e, m.training)),
    )  # fmt: skip
    assert seen == [(0, False), (1, False), (2, False)]
