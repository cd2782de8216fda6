"""LayerDataTuple tuples and gallery images of a slide audit (no napari import).

The audited tiles become a Shapes layer (flagged tiles filled, shares in
``features``) and the region map (tissue / artefact / border) a Labels layer,
both in level-0 pixels placed like the slide layer (its ``scale`` and
``translate``), so they line up at every zoom.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from napari_xai.core.layers.coords import LayerDataTuple

if TYPE_CHECKING:
    from napari_xai.core.audit.slide import SlideAudit

__all__ = [
    "audit_layers",
    "cohort_text",
    "gallery_items",
    "regions_layer_name",
    "tile_centre",
    "tiles_layer_name",
    "verdict_text",
]


def tiles_layer_name(slide_name: str) -> str:
    """Name of the audited-tiles layer (re-runs replace it)."""
    return f"{slide_name} audit tiles"


def regions_layer_name(slide_name: str) -> str:
    """Name of the region-map layer (re-runs replace it)."""
    return f"{slide_name} audit regions"


def audit_layers(
    result: SlideAudit,
    *,
    name: str,
    scale_rc: tuple[float, float] = (1.0, 1.0),
    translate_rc: tuple[float, float] = (0.0, 0.0),
) -> list[LayerDataTuple]:
    """LayerDataTuple tuples of a slide audit: regions (Labels) and audited tiles (Shapes).

    Parameters
    ----------
    result : SlideAudit
        The audit.
    name : str
        The slide layer's name (layer names derive from it).
    scale_rc, translate_rc : (float, float)
        The slide layer's scale and translate.
    """
    from napari_xai.core.audit.attention import REGION_NAMES
    from napari_xai.core.naming import REGION_COLOURS, ROLE_COLOURS

    base_scale = np.asarray(scale_rc, float)
    base_translate = np.asarray(translate_rc, float)
    t = result.tiles
    rects = [
        np.array([[r, c], [r + h, c], [r + h, c + w], [r, c + w]], dtype=float)
        for r, c, h, w in zip(t["row"], t["col"], t["height"], t["width"], strict=True)
    ]
    flagged = t["flagged"].to_numpy(bool)
    flag, plain = ROLE_COLOURS["flag"], ROLE_COLOURS["tile"]
    edge = np.where(flagged[:, None], [[*flag, 1.0]], [[*plain, 0.8]])
    # Flagged tiles are filled (vermillion, the one red), so they stay visible when zoomed out.
    face = np.where(flagged[:, None], [[*flag, 0.45]], [[0.0, 0.0, 0.0, 0.0]])
    features = t.drop(columns=["grid_index"], errors="ignore").reset_index(drop=True)
    tiles_ldt = (
        rects,
        {
            "name": tiles_layer_name(name),
            "shape_type": "rectangle",
            "edge_color": edge,
            "face_color": face,
            "edge_width": np.where(flagged, 2.0, 1.0) * max(float(t["height"].iloc[0]) / 32, 1)
            if len(t)
            else 1.0,
            "features": features,
            "scale": tuple(base_scale),
            "translate": tuple(base_translate),
            "metadata": {"audit": {"verdict": result.verdict, "report": str(result.report_path)}},
        },
        "shapes",
    )
    ds = float(result.regions_downsample)
    # the palette's region colours (the HTML report's); background (glass) unpainted
    colormap: dict[int | None, Any] = {None: "transparent"}
    for code, region in enumerate(REGION_NAMES):
        colormap[code] = "transparent" if region == "background" else REGION_COLOURS[region]
    regions_ldt = (
        np.asarray(result.regions, dtype=np.uint8),
        {
            "name": regions_layer_name(name),
            "scale": tuple(base_scale * ds),
            "translate": tuple(base_translate + (ds - 1) / 2.0 * base_scale),
            "opacity": 0.35,
            "visible": False,
            "colormap": colormap,
            "metadata": {"region_names": list(REGION_NAMES), "downsample": ds},
        },
        "labels",
    )
    return [regions_ldt, tiles_ldt]


def gallery_items(result: SlideAudit) -> list[tuple[npt.NDArray[np.uint8], str, str]]:
    """Return the worst tiles as ``(image, caption, tooltip)``: tile beside its overlay."""
    from napari_xai.core.audit.report import _overlay

    att = result.attention
    items = []
    for rank, i in enumerate(att.worst[: len(result.worst_images)]):
        tile = result.worst_images[rank]
        img = np.concatenate([tile, _overlay(tile, result.worst_maps[rank])], axis=1)
        sh = att.tile_shares[i]
        caption = f"#{rank + 1} off-tissue {1 - sh[1]:.0%}" + (" ⚑" if att.flagged[i] else "")
        tooltip = (
            f"tile {i} ({result.tiles['pred_class'].iloc[i]}): artefact {sh[2]:.0%}, "
            f"background {sh[0]:.0%}, border {sh[3]:.0%}, tissue {sh[1]:.0%}"
        )
        items.append((np.ascontiguousarray(img, dtype=np.uint8), caption, tooltip))
    return items


def tile_centre(result: SlideAudit, rank: int) -> tuple[float, float, float] | None:
    """Level-0 (row, col) centre and height of the ``rank``-th worst tile, or ``None``."""
    if not 0 <= rank < len(result.attention.worst):
        return None
    row = result.tiles.iloc[result.attention.worst[rank]]
    h = float(row["height"])
    return (float(row["row"]) + h / 2.0, float(row["col"]) + float(row["width"]) / 2.0, h)


def verdict_text(result: SlideAudit) -> tuple[str, str]:
    """Return the verdict's text (sentence, method and its sanity, attention), evidence."""
    att = result.attention
    text = (
        f"{result.sentence}\nmaps: {result.method_label}\n"
        f"attention {att.verdict.upper()}: artefacts "
        f"{att.shares['artefact']:.1%} of attribution (area "
        f"{att.area_shares['artefact']:.1%}), {int(att.flagged.sum())} / "
        f"{att.n_tiles} tiles flagged"
    )
    evidence = result.shortcut.evidence if result.shortcut is not None else []
    return text, "\n".join([*evidence, *att.evidence])


def cohort_text(result: Any) -> str:
    """Return the cohort data audit's verdict (and the model's attention on its tiles)."""
    flags = "; ".join(result.flags) if result.flags else "nothing flagged"
    text = f"cohort data: {result.verdict.upper()} - {flags}"
    if result.tile_audit is not None:
        att = result.tile_audit.attention
        text += (
            f"\nmodel attention: {att.verdict.upper()} - artefacts "
            f"{att.shares['artefact']:.1%} of attribution, {int(att.flagged.sum())} / "
            f"{att.n_tiles} tiles flagged"
        )
    return text
