"""Sanity checks of attribution methods on the demo model (Adebayo et al. 2018; RISE)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("captum")

from napari_xai.core.audit.sanity import (  # noqa: E402
    SanityResult,
    edge_detector,
    sanity_check,
)


@pytest.fixture(scope="module")
def demo_probe() -> tuple[object, np.ndarray]:
    from napari_xai.core.models.demo import load_demo_model
    from napari_xai.core.synthetic import render_patch

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    kinds = ["normal", "tumour", "background"] * 3
    return load_demo_model(device="cpu"), np.stack(
        [render_patch(k, size=64, rng=rng) for k in kinds]
    )


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
    assert res.deletion_auc < res.deletion_auc_random
    assert res.insertion_auc > res.insertion_auc_random
    # Cached per model hash and method.
    assert sanity_check(model, tiles, method) is res
