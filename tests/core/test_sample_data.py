"""File > Open Sample: the synthetic slide is written once into the cache and opened with masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def test_sample_is_written_once_and_opens_with_aligned_masks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from napari.layers import Layer

    import napari_xai._sample_data as sample

    monkeypatch.setenv("NAPARI_XAI_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(sample, "SAMPLE_SHAPE_RC", (2048, 2560))
    assert sample.cache_dir() == tmp_path / "cache"

    layers = sample.synthetic_slide()
    (path,) = (tmp_path / "cache").glob("*.svs")
    stamp = path.stat().st_mtime_ns
    assert [ldt[2] for ldt in layers] == ["image", "labels", "labels", "labels"]
    created = [Layer.create(*ldt) for ldt in layers]
    image, tissue, artefacts, tumour = created
    assert image.rgb and image.multiscale and np.allclose(image.scale, 1)
    assert image.metadata["mpp"] == pytest.approx(0.5)
    assert tissue.name.endswith(" tissue") and artefacts.name.endswith(" artefacts")
    assert tissue.data.any() and artefacts.data.any() and tumour.data.any()
    assert not tumour.visible
    # every mask covers the slide: last mask pixel's far edge within one mask pixel of it
    rows, cols = 2048, 2560
    for layer in (tissue, artefacts, tumour):
        d = layer.scale[0]
        far = np.asarray(layer.data_to_world(np.array(layer.data.shape) - 1)) + d / 2
        assert np.all(np.abs(far - (rows - 0.5, cols - 0.5)) <= d), (layer.name, far)

    again = sample.synthetic_slide()  # reused, not rewritten
    assert path.stat().st_mtime_ns == stamp
    assert again[0][1]["name"] == layers[0][1]["name"]
