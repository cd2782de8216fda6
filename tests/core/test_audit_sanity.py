"""Sanity checks of attribution methods on the demo model (Adebayo et al. 2018; RISE)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("captum")

from napari_xai.core.audit.sanity import (  # noqa: E402
    DeletionInsertion,
    SanityResult,
    edge_detector,
    sanity_check,
)


def probe_tiles() -> np.ndarray:
    """The sanity probe of these tests: nine demo patches (normal, tumour, background)."""
    from napari_xai.demo.synthetic import render_patch

    rng = np.random.default_rng(0)
    kinds = ["normal", "tumour", "background"] * 3
    return np.stack([render_patch(k, size=64, rng=rng) for k in kinds])


@pytest.fixture(scope="module")
def demo_probe() -> tuple[object, np.ndarray]:
    from napari_xai.core.models.demo import load_demo_model

    torch.set_num_threads(1)
    return load_demo_model(device="cpu"), probe_tiles()


def test_edge_detector_fails_randomisation(demo_probe) -> None:  # noqa: ANN001
    model, tiles = demo_probe
    res = sanity_check(model, tiles, edge_detector, cache=False)
    assert not res.randomisation_passed and not res.passed and not res.trusted
    assert min(res.spearman) > 0.99 and min(res.ssim) > 0.99  # the model never mattered


@pytest.mark.parametrize("method", ["grad_cam", "saliency"])
def test_gradient_methods_pass_on_the_demo_model(demo_probe, method: str) -> None:  # noqa: ANN001
    model, tiles = demo_probe
    res = sanity_check(model, tiles, method)
    assert isinstance(res, SanityResult) and res.passed, res.to_dict()
    # Randomising every layer decorrelates the maps, far below the edge detector's 1.0.
    assert res.spearman[-1] < 0.8 and res.ssim[-1] < 0.5
    assert len(res.layers) == len(res.spearman) > 3
    # Deleting the pixels the method ranks first hurts more than a random order.
    assert res.curves.deletion_auc < res.curves.deletion_auc_random
    assert res.curves.insertion_auc > res.curves.insertion_auc_random
    # Cached per model hash and method.
    assert sanity_check(model, tiles, method) is res


def test_failing_method_is_labelled_and_remembered_per_model(
    demo_probe,  # noqa: ANN001
    tmp_path,  # noqa: ANN001
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The label every view of the maps shows: FAILING for the edge detector, kept on
    disk per model hash so the Explain widget knows it in a later session."""
    from napari_xai.core.audit import sanity as S

    monkeypatch.setenv("NAPARI_XAI_CACHE", str(tmp_path))
    model, tiles = demo_probe
    sha = model.sha256
    assert S.known_sanity(sha, "edge_detector") is None
    assert S.method_label("edge_detector", None) == "edge_detector (not sanity-checked)"
    res = S.sanity_check(model, tiles, edge_detector)
    assert not res.trusted
    monkeypatch.setattr(S, "_CACHE", {})  # a new session: only the disk remembers
    known = S.known_sanity(sha, "edge_detector")
    assert known is not None and known["trusted"] is False
    assert S.method_label("edge_detector", known).startswith("edge_detector (FAILING sanity")
    assert S.known_sanity("0" * 64, "edge_detector") is None
    good = S.sanity_check(model, tiles, "grad_cam")
    assert S.method_label("grad_cam", good.to_dict()) == "grad_cam (sanity checks passed)"


def _inverted_saliency(module, x, target=None):  # noqa: ANN001, ANN202
    """Plain gradients, ranked upside down: what matters least comes first."""
    x = x.detach().clone().requires_grad_(True)
    out = module(x)
    idx = out.argmax(1) if target is None else torch.as_tensor(target).reshape(-1).expand(len(x))
    out.gather(1, idx[:, None]).sum().backward()
    g = x.grad.abs().sum(1)
    return (g.amax(dim=(1, 2), keepdim=True) - g).detach().cpu().numpy()


def test_faithfulness_is_part_of_trust(demo_probe) -> None:  # noqa: ANN001
    """A map that ranks pixels worse than chance (deletion slower, insertion slower than a
    random order) is not trusted, even where it depends on the model."""
    from napari_xai.core.audit.sanity import method_label
    from napari_xai.core.audit.verdict import make_verdict

    model, tiles = demo_probe
    inv = sanity_check(model, tiles, _inverted_saliency, cache=False)
    assert inv.faithfulness_gain < -inv.faithfulness_margin, inv.to_dict()
    assert inv.faithfulness == "fail" and not inv.trusted
    good = sanity_check(model, tiles, "saliency")
    assert good.faithfulness == "pass" and good.faithfulness_gain > 0 and good.trusted
    # The rule on its own: randomisation passed, deletion/insertion worse than random.
    bad = dataclasses.replace(good, curves=DeletionInsertion(deletion_auc=0.9,
                              deletion_auc_random=0.7, insertion_auc=0.5,
                              insertion_auc_random=0.7))  # fmt: skip
    assert not bad.faithfulness_passed
    assert bad.randomisation_passed and bad.faithfulness == "fail" and not bad.trusted
    d = bad.to_dict()
    assert d["faithfulness"] == "fail" and d["faithfulness_gain"] == pytest.approx(-0.4)
    assert "worse than chance" in method_label("saliency", d)
    from napari_xai.core.audit.evidence import PairEvidence

    pair = PairEvidence("tumour", 1, "green ink", 20, 0.5, (0.4, 0.6), 0.05, (0.04, 0.06),
                        10.0, (8.0, 12.0))  # fmt: skip
    v = make_verdict([pair], None, method="saliency", sanity=d)
    assert v.verdict == "warn"  # an untrusted method cannot carry a fail alone
    assert any("rank pixels worse than chance" in e for e in v.evidence)
    tie = dataclasses.replace(
        bad, curves=dataclasses.replace(bad.curves, deletion_auc=0.71, insertion_auc=0.69)
    )
    assert tie.faithfulness == "inconclusive" and tie.trusted
