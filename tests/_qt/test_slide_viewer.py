"""A real napari viewer (Xvfb + Mesa GL) opens slides through the plugin."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ..conftest import write_pyramid_tiff


def _screenshot_is_not_blank(shot: np.ndarray) -> None:
    rgb = shot[..., :3].astype(float)
    assert rgb.std() > 5, "the canvas is a flat colour"


def test_open_real_slide_shows_tissue(make_napari_viewer, shared_data: Path) -> None:
    viewer = make_napari_viewer(show=True)
    path = shared_data / "slides" / "CMU-1-Small-Region.svs"
    layers = viewer.open(path, plugin="napari-xai")
    assert len(layers) == 1
    layer = layers[0]
    assert layer.rgb and np.allclose(layer.scale, 1)
    assert layer.metadata["mpp"] == pytest.approx(0.499)
    viewer.reset_view()
    shot = viewer.screenshot(canvas_only=True, flash=False)
    _screenshot_is_not_blank(shot)
    # H&E tissue is pink/purple: red and blue above green somewhere on screen.
    rgb = shot[..., :3].astype(int)
    pinkish = (rgb[..., 0] > rgb[..., 1] + 20) & (rgb[..., 2] > rgb[..., 1] + 10)
    assert pinkish.mean() > 0.05


def test_first_view_of_a_large_slide_decodes_few_tiles(
    make_napari_viewer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tifffile.zarr import ZarrTiffStore

    path = write_pyramid_tiff(tmp_path / "large.svs", shape_rc=(6144, 6144), tile=256, levels=4)
    decoded: list[str] = []
    original = ZarrTiffStore.get

    async def counting_get(self, key, prototype, byte_range=None):  # type: ignore[no-untyped-def]
        value = await original(self, key, prototype, byte_range)
        if value is not None and not key.endswith((".zarray", ".zgroup", ".zattrs")):
            decoded.append(key)
        return value

    monkeypatch.setattr(ZarrTiffStore, "get", counting_get)
    viewer = make_napari_viewer(show=True)
    viewer.open(path, plugin="napari-xai")
    shot = viewer.screenshot(canvas_only=True, flash=False)
    _screenshot_is_not_blank(shot)
    # 576 tiles at level 0 (plus 195 below): the overview needs the coarse levels only.
    assert 0 < len(decoded) <= 64, len(decoded)


def test_bad_file_gives_a_clear_error_and_the_viewer_keeps_running(
    make_napari_viewer, shared_data: Path
) -> None:
    viewer = make_napari_viewer(show=True)
    bad = shared_data / "slides" / "bad" / "4D-series.ome.tiff"
    with pytest.raises(Exception) as info:
        viewer.open(bad, plugin="napari-xai")
    assert bad.name in str(info.value) and "not a 2-D slide" in str(info.value)
    # Still usable afterwards.
    layers = viewer.open(shared_data / "slides" / "OS-1-detail.ome.tif", plugin="napari-xai")
    assert len(viewer.layers) == 1 and layers[0].data.shape[:2] == (1101, 1101)
