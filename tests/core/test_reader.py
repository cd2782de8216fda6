"""The napari reader contribution, through npe2 (no viewer, no Qt)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from napari_xai._reader import napari_get_reader

from ..conftest import real_slides


@pytest.fixture(scope="module", autouse=True)
def _discover_plugins() -> None:
    import npe2

    npe2.PluginManager.instance().discover()


def _read(path: Path) -> list:
    import npe2

    return npe2.read([str(path)], stack=False, plugin_name="napari-xai")


def test_manifest_is_valid_and_imports() -> None:
    from npe2 import PluginManifest

    manifest = PluginManifest.from_distribution("napari-xai")
    assert manifest.name == "napari-xai"
    manifest.validate_imports()


def test_manifest_is_the_top_level_file() -> None:
    import napari_xai

    inside = Path(napari_xai.__file__).parent / "napari.yaml"
    top = Path(napari_xai.__file__).parents[1] / "napari.yaml"
    assert inside.read_text() == top.read_text()


@pytest.mark.parametrize("path", real_slides(), ids=lambda p: p.name)
def test_every_real_slide_reads_lazily_in_level0_coordinates(path: Path) -> None:
    import dask.array as da
    from napari.layers import Layer

    [(data, meta, kind)] = _read(path)
    assert kind == "image"
    levels = data if meta["multiscale"] else [data]
    assert all(isinstance(level, da.Array) for level in levels)
    assert meta["metadata"]["path"] == str(path)
    assert "mpp" in meta["metadata"]
    layer = Layer.create(data, meta, kind)
    assert np.allclose(layer.scale, 1)
    assert layer.rgb
    assert tuple(layer.level_shapes[0][:2]) == tuple(levels[0].shape[:2])


@pytest.mark.parametrize(
    "name", ["bad/boxes_0.dcm", "bad/4D-series.ome.tiff"], ids=["dicom", "4d-series"]
)
def test_bad_files_raise_an_error_naming_the_file(shared_data: Path, name: str) -> None:
    path = shared_data / "slides" / name
    with pytest.raises(Exception) as info:
        _read(path)
    assert path.name in str(info.value)


def test_probe_never_raises() -> None:
    assert napari_get_reader(["a.svs", "b.svs"]) is None
    assert napari_get_reader("image.png") is None
    assert napari_get_reader(None) is None  # type: ignore[arg-type]
    assert napari_get_reader(object()) is None  # type: ignore[arg-type]
    assert napari_get_reader("slide.SVS") is not None


def test_uint16_single_channel_tiff_opens_as_greyscale(tmp_path: Path) -> None:
    import tifffile

    path = tmp_path / "fluo.tif"
    data = (np.arange(512 * 512, dtype=np.uint32).reshape(512, 512) % 65535).astype(np.uint16)
    tifffile.imwrite(path, data, tile=(256, 256), compression="zlib")
    [(layer_data, meta, kind)] = _read(path)
    assert meta["rgb"] is False
    assert meta["contrast_limits"] == [0.0, 65535.0]
    assert layer_data.shape == (512, 512)
    np.testing.assert_array_equal(np.asarray(layer_data[:4, :4]), data[:4, :4])


def test_multichannel_tiff_opens_one_layer_per_channel(tmp_path: Path) -> None:
    import tifffile
    from napari.layers import Layer
    from napari.layers.utils.stack_utils import split_channels

    path = tmp_path / "multiplex.qptiff"
    data = np.random.default_rng(0).integers(0, 4000, (4, 300, 400), dtype=np.uint16)
    tifffile.imwrite(
        path, data, tile=(128, 128), photometric="minisblack", metadata={"axes": "CYX"}
    )
    [(layer_data, meta, kind)] = _read(path)
    assert meta["channel_axis"] == 0
    assert len(meta["name"]) == 4
    assert layer_data.shape == (4, 300, 400)
    # What viewer.add_image does with channel_axis: one layer per channel.
    kwargs = {k: v for k, v in meta.items() if k != "channel_axis"}
    layers = [Layer.create(*ldt) for ldt in split_channels(layer_data, 0, **kwargs)]
    assert [layer.name for layer in layers] == meta["name"]
    assert all(layer.data.shape == (300, 400) for layer in layers)
