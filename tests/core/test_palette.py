"""One colour-blind-safe palette: every layer builder takes its colours from core/naming.py.

Colour-blind safety is checked with the Machado, Oliveira & Fernandes (2009)
simulation matrices (severity 1) for protanopia, deuteranopia and tritanopia and
CIE76 colour differences in CIELAB (skimage), not against our own numbers.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from napari_xai.core.naming import (
    ARTEFACT_COLOURS,
    ATTRIBUTION_COLORMAP,
    CLASS_PALETTE,
    REGION_COLOURS,
    ROLE_COLOURS,
    VERDICT_COLOURS,
    class_colour,
    probability_colormap,
    rgb255,
)

_MACHADO = {
    "normal": np.eye(3),
    "protanopia": np.array(
        [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
         [-0.003882, -0.048116, 1.051998]]
    ),
    "deuteranopia": np.array(
        [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
         [-0.011820, 0.042940, 0.968881]]
    ),
    "tritanopia": np.array(
        [[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602],
         [0.004733, 0.691367, 0.303900]]
    ),
}  # fmt: skip


def _seen(rgb: tuple[float, ...], vision: str) -> np.ndarray:
    """CIELAB of an sRGB colour as seen with ``vision``."""
    from skimage.color import rgb2lab

    c = np.asarray(rgb[:3], dtype=np.float64)
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    out = np.clip(lin @ _MACHADO[vision].T, 0.0, 1.0)
    srgb = np.where(out <= 0.0031308, 12.92 * out, 1.055 * out ** (1 / 2.4) - 0.055)
    return rgb2lab(srgb[None, None, :])[0, 0]


def _delta_e(a: tuple[float, ...], b: tuple[float, ...], vision: str) -> float:
    return float(np.linalg.norm(_seen(a, vision) - _seen(b, vision)))


@pytest.mark.parametrize("vision", list(_MACHADO))
def test_first_six_classes_stay_apart_for_colour_blind_viewers(vision: str) -> None:
    six = CLASS_PALETTE[:6]
    worst = min(_delta_e(a, b, vision) for a, b in itertools.combinations(six, 2))
    assert worst > 10.0, f"{vision}: two of the first six class colours look alike ({worst:.1f})"
    named = [class_colour(n) for n in ("tumour", "normal", "stroma", "lymphocytes")]
    assert min(_delta_e(a, b, vision) for a, b in itertools.combinations(named, 2)) > 10.0


@pytest.mark.parametrize("vision", list(_MACHADO))
def test_red_means_one_thing(vision: str) -> None:
    """Tumour class, flagged tile, probability colormap and dark ink: four different colours."""
    cmap = probability_colormap()
    roles = {
        "tumour class": class_colour("Tumor"),
        "flagged tile": ROLE_COLOURS["flag"],
        "dark-ink outline": ARTEFACT_COLOURS[2],
        "high probability": tuple(cmap["colors"][-1][:3]),
        "mid probability": tuple(cmap["colors"][len(cmap["colors"]) // 2][:3]),
    }
    for (na, a), (nb, b) in itertools.combinations(roles.items(), 2):
        assert _delta_e(a, b, vision) > 15.0, f"{vision}: {na} looks like {nb}"
    # no red anywhere in the probability colormap
    for r, g, b, _alpha in cmap["colors"]:
        assert not (r > g + 0.25 and r > b + 0.25), (r, g, b)
    # the flag colour is no class colour
    assert ROLE_COLOURS["flag"] not in CLASS_PALETTE


def test_probability_colormap_is_transparent_at_zero_and_opaque_when_likely() -> None:
    cmap = probability_colormap()
    colors, controls = np.asarray(cmap["colors"]), np.asarray(cmap["controls"])
    assert controls[0] == 0.0 and controls[-1] == 1.0
    assert colors[0, 3] == 0.0 and colors[-1, 3] == 1.0
    assert np.all(np.diff(colors[:, 3]) >= 0)
    # bright with probability (viridis: luminance rises)
    lum = colors[:, :3] @ np.array([0.2126, 0.7152, 0.0722])
    assert np.all(np.diff(lum) > 0)
    from matplotlib import colormaps

    np.testing.assert_allclose(colors[:, :3], colormaps["viridis"](controls)[:, :3], atol=2e-3)


def _tiles(class_names: list[str]) -> pd.DataFrame:
    n = len(class_names)
    probs = np.eye(n) * 0.9 + 0.1 / n
    df = pd.DataFrame(
        {
            "row": np.zeros(n, np.int64),
            "col": np.arange(n, dtype=np.int64) * 64,
            "height": np.full(n, 64),
            "width": np.full(n, 64),
            "pred_class": class_names,
            "confidence": probs.max(1),
            **{f"prob_{c}": probs[:, k] for k, c in enumerate(class_names)},
        }
    )
    df.attrs.update(class_names=class_names, stride0=64.0, tile_size0=64.0)
    return df


CLASSES = ["normal", "tumour", "necrosis", "my class"]


def test_heatmap_and_tiles_layers_use_the_palette() -> None:
    from napari_xai.core.layers import heatmap_layers, tiles_layer

    maps = np.random.default_rng(0).random((len(CLASSES), 3, 4))
    for k, (_, kwargs, kind) in enumerate(
        heatmap_layers(maps, CLASSES, slide_name="s", stride0=64.0)
    ):
        assert kind == "image"
        assert kwargs["colormap"] == probability_colormap()
        assert kwargs["metadata"]["class_colour"] == list(class_colour(CLASSES[k], k))
        assert kwargs["metadata"]["units"] == "probability (0-1)"
    _, kwargs, _ = tiles_layer(_tiles(CLASSES), slide_name="s", class_names=CLASSES)
    assert kwargs["face_color_cycle"] == [
        [*class_colour(c, k), 1.0] for k, c in enumerate(CLASSES)
    ]
    assert kwargs["face_color_cycle"][1][:3] == list(class_colour("tumour"))
    # 'my class' has no fixed colour: the palette entry of its position
    assert tuple(kwargs["face_color_cycle"][3][:3]) == CLASS_PALETTE[3]


def test_qupath_export_and_annotation_classes_use_the_palette() -> None:
    from napari_xai.core.annotations.classes import DEFAULT_CLASSES, find_class
    from napari_xai.core.export import tiles_to_qupath_geojson

    geo = tiles_to_qupath_geojson(_tiles(CLASSES))
    got = {
        f["properties"]["classification"]["name"]: f["properties"]["classification"]["color"]
        for f in geo["features"]
    }
    assert got == {c: list(rgb255(class_colour(c, k))) for k, c in enumerate(CLASSES)}
    for c in DEFAULT_CLASSES:
        assert c.color == rgb255(class_colour(c.name))
    assert find_class("Tumor").color == rgb255(class_colour("tumour"))
    assert find_class("Artefact").color == rgb255(ROLE_COLOURS["artefact"])


def test_annotation_layers_use_the_palette() -> None:
    from shapely.geometry import box

    from napari_xai.core.annotations.geojson import Annotation
    from napari_xai.core.layers.annotations import annotations_to_layer_data

    items = [Annotation(box(0, 0, 10, 10), "Tumor"), Annotation(box(20, 0, 30, 10), "Stroma")]
    (_, kwargs, kind), *_ = annotations_to_layer_data(items, name="a")
    assert kind == "shapes"
    np.testing.assert_allclose(
        kwargs["face_color"][0][:3], np.array(rgb255(class_colour("Tumor"))) / 255
    )
    np.testing.assert_allclose(
        kwargs["edge_color"][1][:3], np.array(rgb255(class_colour("Stroma"))) / 255
    )


def test_mask_layers_use_the_palette_and_ask_for_outlines() -> None:
    from napari_xai.core.layers.masks import mask_layers
    from napari_xai.core.masks import ARTEFACT_LABELS, masks_from_thumbnail

    thumb = np.full((64, 64, 3), 240, np.uint8)
    thumb[16:48, 16:48] = (200, 120, 180)  # eosin-pink tissue
    thumb[20:24, 20:40] = (30, 140, 60)  # green ink
    (_, tissue, _), (_, art, _) = mask_layers(masks_from_thumbnail(thumb, 16.0))
    assert tissue["colormap"][1] == ROLE_COLOURS["tissue"]
    assert {k: art["colormap"][k] for k in ARTEFACT_LABELS} == {
        k: ARTEFACT_COLOURS[k] for k in ARTEFACT_LABELS
    }
    assert tissue["metadata"]["display"] == art["metadata"]["display"] == "outline"


@pytest.mark.parametrize("vision", list(_MACHADO))
def test_mask_outlines_stay_apart(vision: str) -> None:
    """Each artefact class's outline, and the tissue outline drawn with them, are told apart."""
    outlines = {
        "tissue": ROLE_COLOURS["tissue"],
        **{str(k): c for k, c in ARTEFACT_COLOURS.items()},
    }
    for (na, a), (nb, b) in itertools.combinations(outlines.items(), 2):
        assert _delta_e(a, b, vision) > 15.0, f"{vision}: outline {na} looks like {nb}"


def test_saliency_layers_use_the_attribution_colormap() -> None:
    from napari_xai.core.layers.saliency import DEFAULT_COLORMAP

    assert DEFAULT_COLORMAP == ATTRIBUTION_COLORMAP
    assert ATTRIBUTION_COLORMAP != probability_colormap()["name"]


def test_predicted_regions_use_the_palette() -> None:
    from napari_xai.core.pipeline import predicted_regions

    tiles = _tiles(CLASSES)
    geo = predicted_regions(tiles, class_names=CLASSES)
    got = {
        f["properties"]["classification"]["name"]: f["properties"]["classification"]["color"]
        for f in geo["features"]
    }
    assert got == {c: list(rgb255(class_colour(c, k))) for k, c in enumerate(CLASSES)}
    assert got["tumour"] == [230, 159, 0]


@pytest.mark.parametrize("vision", list(_MACHADO))
def test_audit_regions_and_verdicts_stay_apart(vision: str) -> None:
    """The audit's four regions, and its three verdicts, are told apart colour-blind too."""
    for group in (REGION_COLOURS, VERDICT_COLOURS):
        pairs = itertools.combinations(group.items(), 2)
        for (na, a), (nb, b) in pairs:
            assert _delta_e(a, b, vision) > 15.0, f"{vision}: {na} looks like {nb}"
    # the tissue and artefact regions are the tissue mask's and the Artefact class's colours
    assert REGION_COLOURS["tissue"] == ROLE_COLOURS["tissue"]
    assert REGION_COLOURS["artefact"] == class_colour("Artefact")


def test_html_reports_take_the_verdict_colours_from_the_palette(tmp_path) -> None:
    """Slide and cohort HTML reports colour a verdict as the palette says, not their own red."""
    from napari_xai.core.audit.attention import ARTEFACT, TISSUE, audit_attention
    from napari_xai.core.audit.cohort_verdict import write_cohort_audit_html
    from napari_xai.core.audit.report import write_report
    from napari_xai.core.naming import hex_colour

    rng = np.random.default_rng(0)
    maps = rng.random((8, 16, 16)).astype(np.float32)
    regions = np.full((8, 16, 16), TISSUE, np.uint8)
    regions[:, :4, :4] = ARTEFACT
    maps[:4, :4, :4] = 50.0  # half the tiles look at the artefact corner: FAIL
    att = audit_attention(maps, regions, pred_class=["tumour"] * 8)
    assert att.verdict == "fail"
    page = write_report(tmp_path / "slide", attention=att).read_text(encoding="utf-8")
    assert f"background:{hex_colour(VERDICT_COLOURS['fail'])}" in page
    slides = [
        {"slide_id": "a", "audit_verdict": "pass"},
        {"slide_id": "b", "audit_verdict": "fail"},
    ]
    cohort = write_cohort_audit_html(
        tmp_path, {"verdict": "fail", "sentence": "b fails", "n_audited": 2}, slides
    ).read_text(encoding="utf-8")
    for verdict in ("pass", "fail"):
        assert f"color:{hex_colour(VERDICT_COLOURS[verdict])}" in cohort
