"""One naming module: slide stems, slide files, layer names, the positive class (issue 13)."""

from __future__ import annotations

import pytest

from napari_xai.core import naming as N


@pytest.mark.parametrize(
    ("name", "stem"),
    [
        ("/x/a.svs", "a"),
        ("/x/a.b.ome.tiff", "a.b"),
        ("a.OME.TIF", "a"),
        ("a.ome.zarr", "a"),
        ("case 1.ndpi", "case 1"),
        ("a.mrxs", "a"),
        ("a.png", "a"),
        (".svs", ".svs"),
    ],
)
def test_slide_stem(name: str, stem: str) -> None:
    assert N.slide_stem(name) == stem


def test_slide_suffixes_one_place() -> None:
    from napari_xai import _reader
    from napari_xai.core import batch, wsi

    assert wsi.SLIDE_SUFFIXES is N.SLIDE_SUFFIXES
    assert _reader._SUFFIXES == (*N.SLIDE_SUFFIXES, ".dcm")
    assert batch.SLIDE_SUFFIXES is N.COHORT_SUFFIXES
    assert N.is_slide_name("A.SVS") and N.is_slide_name("a.ome.tiff")
    assert not N.is_slide_name(".hidden.svs") and not N.is_slide_name("notes.txt")
    assert N.is_slide_name("x.mrxs") and not N.is_slide_name("x.mrxs", suffixes=N.SLIDE_SUFFIXES)


def test_layer_names() -> None:
    assert N.heatmap_layer_name("s", "tumour") == "s prob [tumour]"
    assert N.tiles_layer_name("s") == "s tiles"
    assert N.saliency_layer_name("s", "grad_cam", "tumour") == "s saliency [grad_cam, tumour]"
    assert N.activation_layer_name("s", "layer4", 3) == "s activation [layer4, channel 3]"
    assert N.activation_layer_name("s", "layer4", "channel 3") == N.activation_layer_name(
        "s", "layer4", 3
    )
    assert N.mask_layer_name("s", "tissue") == "s tissue"


@pytest.mark.parametrize(
    ("classes", "positive"),
    [
        (["background", "normal", "tumour"], "tumour"),
        (["Tumor", "Stroma"], "Tumor"),
        (["normal", "adenocarcinoma_tumour_like"], "adenocarcinoma_tumour_like"),
        (["background", "stroma", "lymph", "normal"], "lymph"),
        (["a", "b"], "b"),
        (["background", "normal"], "normal"),
    ],
)
def test_positive_class_guess(classes: list[str], positive: str) -> None:
    assert N.positive_class(classes) == positive


def test_positive_class_requested_and_errors() -> None:
    assert N.positive_class(["a", "b"], "a") == "a"
    with pytest.raises(ValueError, match="positive class 'x' is not one of"):
        N.positive_class(["a", "b"], "x")
    with pytest.raises(ValueError, match="no class names"):
        N.positive_class([])
    assert N.is_positive_label("Tumour", "tumour") and N.is_positive_label("yes", "x")
    assert not N.is_positive_label("normal", "tumour")
    assert N.is_background("Glass") and not N.is_background("normal")
