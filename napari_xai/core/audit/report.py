"""Self-contained HTML audit report (images embedded as base64 PNG) and ``audit.json``.

:func:`write_report` takes any of a slide audit (:class:`~.slide.SlideAudit`), a
tile-level attention audit (:class:`~.attention.AttentionAudit` with its tiles
and maps) and a cohort data audit (:class:`~.data.DataAudit`), and writes
``report.html`` (one file, opens anywhere, no network) and ``audit.json`` into
a folder (the slide's result folder). Figures are drawn with matplotlib's
object API (no pyplot state, safe in worker threads).
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import io
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from napari_xai.core import naming as _palette  # the one palette (napari's layers use it)
from napari_xai.core.audit.attention import ARTEFACT, REGION_NAMES, AttentionAudit

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from napari_xai.core.audit.data import DataAudit
    from napari_xai.core.audit.slide import SlideAudit

__all__ = ["REPORT_NAME", "JSON_NAME", "audit_summary", "png_data_uri", "write_report"]

REPORT_NAME = "report.html"
JSON_NAME = "audit.json"
_REGION_HEX = {name: _palette.hex_colour(rgb) for name, rgb in _palette.REGION_COLOURS.items()}
_REGION_CODES = {name: code for code, name in enumerate(REGION_NAMES)}
_FLAG_HEX = _palette.hex_colour(_palette.ROLE_COLOURS["flag"])
_TILE_HEX = _palette.hex_colour(_palette.ROLE_COLOURS["tile"])
_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px;max-width:1200px;
color:#222}
h1{margin-bottom:4px} h2{border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
.verdict{display:inline-block;padding:4px 12px;border-radius:4px;color:#fff;font-weight:bold}
table{border-collapse:collapse;margin:8px 0} td,th{border:1px solid #ddd;padding:3px 8px;
text-align:right} th{background:#f4f4f4} td:first-child,th:first-child{text-align:left}
tr.flagged td{background:#fde0dc} figure{display:inline-block;margin:6px;vertical-align:top}
figcaption{font-size:12px;max-width:260px} .gallery img{width:128px;height:128px;
image-rendering:pixelated} ul.evidence li{margin:3px 0} .muted{color:#777;font-size:13px}
"""


def png_data_uri(image: npt.NDArray[np.uint8] | Figure) -> str:
    """Encode an RGB(A) uint8 array or a matplotlib Figure as a ``data:image/png`` URI."""
    buf = io.BytesIO()
    if isinstance(image, np.ndarray):
        from PIL import Image

        Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG")
    else:
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        FigureCanvasAgg(image)
        image.savefig(buf, format="png", dpi=100)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _img(uri: str, alt: str, *, cls: str = "", attrs: str = "") -> str:
    c = f' class="{cls}"' if cls else ""
    return f'<img src="{uri}" alt="{html.escape(alt)}"{c}{attrs}>'


def _table(rows: list[dict[str, Any]], *, flag_key: str | None = None) -> str:
    if not rows:
        return '<p class="muted">(none)</p>'
    cols = [k for k in rows[0] if k != flag_key] + ([flag_key] if flag_key else [])
    out = ["<table><tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in cols) + "</tr>"]
    for r in rows:
        cls = ' class="flagged"' if flag_key and r.get(flag_key) else ""
        cells = []
        for c in cols:
            v = r.get(c)
            if isinstance(v, (float, np.floating)):
                fv = float(v)
                txt = (
                    "–" if not np.isfinite(fv) else (f"{fv:.3g}" if abs(fv) < 1e4 else f"{fv:.0f}")
                )
            else:
                txt = str(v)
            cells.append(f"<td>{html.escape(txt)}</td>")
        out.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    out.append("</table>")
    return "".join(out)


# -- attention figures --------------------------------------------------------------------


def _shares_figure(att: AttentionAudit) -> Figure:
    """Stacked bars: area share vs attribution share, overall and per predicted class."""
    bars: list[tuple[str, dict[str, float]]] = [("area (all)", att.area_shares)]
    bars.append(("attribution (all)", att.shares))
    for cls, sh in att.shares_by_class.items():
        bars.append((f"attribution\n(pred. {cls})", sh))
    fig = _figure(1.6 + 1.3 * len(bars), 3.2)
    ax = fig.add_subplot(1, 1, 1)
    x = np.arange(len(bars))
    bottom = np.zeros(len(bars))
    for name in ("tissue", "artefact", "background", "border"):
        vals = np.array([b[1].get(name, 0.0) or 0.0 for b in bars])
        ax.bar(x, vals, bottom=bottom, color=_REGION_HEX[name], label=name, width=0.6)
        bottom += vals
    ax.set_xticks(x, [b[0] for b in bars], fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("share")
    ax.set_title("Where the attribution mass lands", fontsize=10)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def _tile_hist_figure(att: AttentionAudit) -> Figure:
    fig = _figure(5.5, 2.8)
    ax = fig.add_subplot(1, 1, 1)
    bins = [float(b) for b in np.linspace(0, 1, 21)]
    ax.hist(att.tile_shares[:, ARTEFACT], bins=bins, color=_REGION_HEX["artefact"],
            alpha=0.8, label="on artefacts")  # fmt: skip
    ax.hist(att.tile_off_tissue_share(), bins=bins, color="#333", histtype="step", lw=1.5,
            label="off tissue (artefact + background + border)")  # fmt: skip
    ax.axvline(att.thresholds.tile_off_tissue_share, color=_FLAG_HEX, ls="--", label="flag limit")
    ax.set_xlabel("share of a tile's attribution")
    ax.set_ylabel("tiles")
    ax.legend(fontsize=7)
    ax.set_title(f"Per-tile shares ({att.n_tiles} tiles, {int(att.flagged.sum())} flagged)",
                 fontsize=10)  # fmt: skip
    return fig


def _overlay(tile: npt.NDArray[np.uint8], amap: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    """Tile with its attribution map blended on top (magma-like ramp, normalised per tile)."""
    from matplotlib import colormaps

    a = np.asarray(amap, np.float32)
    hi = float(np.nanpercentile(a, 99.5)) if a.size else 0.0
    norm = np.clip(a / hi, 0, 1) if hi > 0 else np.zeros_like(a)
    rgba = np.asarray(colormaps["magma"](norm), np.float32)[..., :3]
    alpha = 0.65 * norm[..., None] ** 0.7
    out = (1 - alpha) * tile.astype(np.float32) / 255.0 + alpha * rgba
    blended: npt.NDArray[np.uint8] = np.clip(out * 255, 0, 255).astype(np.uint8)
    return blended


def _region_rgb(regions: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    lut = np.zeros((4, 3), np.uint8)
    for code, name in enumerate(REGION_NAMES):
        lut[code] = _palette.rgb255(_palette.REGION_COLOURS[name])
    lut[REGION_NAMES.index("background")] = (255, 255, 255)  # glass stays white
    out: npt.NDArray[np.uint8] = lut[np.clip(regions, 0, 3)]
    return out


def _slide_figure(audit: SlideAudit) -> Figure:
    """Thumbnail with audited tiles outlined (red: flagged) beside the region map."""
    from matplotlib.patches import Rectangle

    fig = _figure(10, 5)
    # At most ~600 px per side on screen: subsample the images before drawing.
    step = max(1, int(np.ceil(max(audit.regions.shape) / 600)))
    ds = audit.regions_downsample * step
    for k, (img, title) in enumerate(
        ((audit.thumbnail[::step, ::step], "slide: audited tiles (red = flagged)"),
         (_region_rgb(audit.regions[::step, ::step]), "regions: tissue / artefact / border"))
    ):  # fmt: skip
        ax = fig.add_subplot(1, 2, k + 1)
        ax.imshow(img, interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_axis_off()
        if k == 0:
            t = audit.tiles
            cols = (t["row"], t["col"], t["height"], t["width"], t["flagged"])
            for r, c, h, w, f in zip(*cols, strict=True):
                ax.add_patch(
                    Rectangle((c / ds - 0.5, r / ds - 0.5), w / ds, h / ds, fill=False,
                              lw=1.2 if f else 0.4, ec=_FLAG_HEX if f else _TILE_HEX)
                )  # fmt: skip
    return fig


def _gallery(
    att: AttentionAudit,
    images: npt.NDArray[np.uint8] | None,
    maps: npt.NDArray[np.float32] | None,
    *,
    positions: list[tuple[int, int]] | None = None,
    pred: list[str] | None = None,
) -> str:
    if images is None or maps is None or len(images) == 0:
        return '<p class="muted">(no tile images kept)</p>'
    parts = ['<div class="gallery">']
    for rank, i in enumerate(att.worst[: len(images)]):
        sh = att.tile_shares[i]
        cap = (
            f"#{rank + 1} tile {i}"
            + (f" at (row {positions[rank][0]}, col {positions[rank][1]})" if positions else "")
            + (f", pred. {html.escape(str(pred[i]))}" if pred else "")
            + "<br>"
            + ", ".join(f"{n} {sh[k]:.0%}" for n, k in sorted(_REGION_CODES.items()))
            + (" <b>FLAGGED</b>" if att.flagged[i] else "")
        )
        attrs = f' data-tile="{i}"'
        if positions:
            attrs += f' data-row="{positions[rank][0]}" data-col="{positions[rank][1]}"'
        parts.append(
            "<figure>"
            + _img(png_data_uri(images[rank]), f"tile {i}", attrs=attrs)
            + _img(png_data_uri(_overlay(images[rank], maps[rank])), f"tile {i} attribution")
            + f"<figcaption>{cap}</figcaption></figure>"
        )
    parts.append("</div>")
    return "".join(parts)


def _attention_section(
    att: AttentionAudit,
    *,
    slide: SlideAudit | None,
    images: npt.NDArray[np.uint8] | None,
    maps: npt.NDArray[np.float32] | None,
    pred: list[str] | None,
) -> str:
    colour = _palette.verdict_hex(att.verdict)
    out = [
        "<h2>Attention audit: where does the model look?</h2>",
        f'<p><span class="verdict" style="background:{colour}">{att.verdict.upper()}</span> '
        f"{att.n_tiles} tiles audited, {int(att.flagged.sum())} flagged "
        f"({att.flagged_fraction:.1%}); attribution mass counted as "
        f"{html.escape(att.sign)} values.</p>",
        '<ul class="evidence">' + "".join(f"<li>{html.escape(e)}</li>" for e in att.evidence)
        + "</ul>",
    ]  # fmt: skip
    if slide is not None:
        out.append(
            f'<p class="muted">Slide {html.escape(str(slide.slide_path))} '
            f"({slide.slide_shape_rc[0]} × {slide.slide_shape_rc[1]} px), model "
            f"{html.escape(slide.model_name)}, method {html.escape(slide.method)}; "
            f"{html.escape(slide.sampling)}.</p>"
        )
        out.append(
            "<figure>" + _img(png_data_uri(_slide_figure(slide)), "slide overview")
            + "<figcaption>Audited tiles over the slide, and the region map the shares "
            "are computed on.</figcaption></figure>"
        )  # fmt: skip
    rows = [
        {
            "region": name,
            "area share": att.area_shares[name],
            "attribution share": att.shares[name],
            "enrichment": att.enrichment[name],
            **{f"share (pred. {c})": sh[name] for c, sh in att.shares_by_class.items()},
        }
        for name in REGION_NAMES
    ]
    out.append(_table(rows))
    out.append(
        "<figure>" + _img(png_data_uri(_shares_figure(att)), "attribution shares")
        + "<figcaption>Area of each region vs the share of attribution it receives."
        "</figcaption></figure>"
    )  # fmt: skip
    if att.n_tiles:
        out.append(
            "<figure>" + _img(png_data_uri(_tile_hist_figure(att)), "per-tile shares")
            + "</figure>"
        )  # fmt: skip
    label = slide.method_label if slide is not None else None
    out.append(
        "<h3>Worst tiles (tile, attribution"
        + (f": {html.escape(label)}" if label else "")
        + ")</h3>"
    )
    if label and "FAILING" in label:
        out.append(
            f'<p class="verdict" style="background:{_palette.verdict_hex("fail")}">These maps '
            "come from a method that "
            "FAILED its sanity checks: they do not depend on the model; do not read them as "
            "where the model looks.</p>"
        )
    positions = None
    if slide is not None:
        positions = [(int(slide.tiles["row"].iloc[i]), int(slide.tiles["col"].iloc[i]))
                     for i in att.worst]  # fmt: skip
    out.append(_gallery(att, images, maps, positions=positions, pred=pred))
    th = att.thresholds
    out.append(
        '<p class="muted">A tile is flagged when at least '
        f"{th.tile_off_tissue_share:.0%} of its attribution lies off tissue (artefact, "
        f"background, border) and that is at least {th.tile_enrichment:g}× the area those "
        f"pixels cover. The slide fails when artefacts get at least "
        f"{th.slide_artefact_share:.0%} of all attribution with enrichment ≥ "
        f"{th.slide_artefact_enrichment:g} (overall, or among the tiles of one predicted "
        f"class), or when at least {th.slide_flagged_fraction:.0%} of the tiles are "
        "flagged.</p>"
    )
    return "".join(out)


# -- data figures -----------------------------------------------------------------------


def _balance_figure(data: DataAudit) -> Figure:
    fig = _figure(4.5, 2.6)
    ax = fig.add_subplot(1, 1, 1)
    names = list(data.class_counts)
    colours = [_palette.hex_colour(_palette.class_colour(str(n), k)) for k, n in enumerate(names)]
    ax.bar(names, [data.class_counts[n] for n in names], color=colours)
    ax.set_ylabel("images")
    ax.set_title(f"Class balance (ratio {data.imbalance:.1f}:1)", fontsize=10)
    return fig


def _colour_figure(data: DataAudit) -> Figure:
    # the statistics are colour_by_class's columns (no import of audit.data: no cycle)
    stats_ = [str(s) for s in data.colour_by_class.columns if data.table[s].notna().any()]
    fig = _figure(2.2 * len(stats_), 2.8)
    classes = list(data.class_counts)
    labels = data.table[data.label_column].astype(str)
    for k, stat in enumerate(stats_):
        ax = fig.add_subplot(1, len(stats_), k + 1)
        groups = [data.table.loc[labels == c, stat].dropna().to_numpy() for c in classes]
        ax.boxplot(groups, tick_labels=classes)
        ax.set_title(stat.replace("_", " "), fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle("Colour statistics per class", fontsize=10)
    return fig


def _data_section(data: DataAudit) -> str:
    colour = _palette.verdict_hex(data.verdict)
    out = [
        "<h2>Data audit: can the classes be told apart without the tissue?</h2>",
        f'<p><span class="verdict" style="background:{colour}">{data.verdict.upper()}</span> '
        f"{len(data.table)} images, label column '{html.escape(data.label_column)}'.</p>",
        '<ul class="evidence">'
        + "".join(f"<li>{html.escape(f)}</li>" for f in data.flags or ["nothing flagged"])
        + "</ul>",
        "<figure>" + _img(png_data_uri(_balance_figure(data)), "class balance") + "</figure>",
        "<h3>Montages per class (the eye test)</h3>",
    ]
    for cls, montage in data.montages.items():
        out.append(
            "<figure>" + _img(png_data_uri(montage), f"montage {cls}", cls="montage")
            + f"<figcaption>{html.escape(cls)} ({data.class_counts.get(cls, 0)} images)"
            "</figcaption></figure>"
        )  # fmt: skip
    out.append("<h3>Metadata vs label (Cramér's V, chi-square)</h3>")
    out.append(_table(data.associations.to_dict(orient="records"), flag_key="flagged"))
    out.append("<h3>Colour and brightness</h3>")
    out.append(
        "<figure>" + _img(png_data_uri(_colour_figure(data)), "colour statistics") + "</figure>"
    )
    out.append(_table(data.colour_tests.to_dict(orient="records"), flag_key="flagged"))
    by_class = data.colour_by_class.reset_index().to_dict(orient="records")
    out.append("<p>Means per class</p>" + _table(by_class))
    for col, df in data.colour_by_group.items():
        out.append(f"<p>Means per {html.escape(col)}</p>")
        out.append(
            _table(df.reset_index().rename(columns={"index": col}).to_dict(orient="records"))
        )
    if data.errors:
        items = "".join(f"<li>{html.escape(e)}</li>" for e in data.errors[:50])
        out.append(f"<h3>Unreadable images</h3><ul>{items}</ul>")
    return "".join(out)


# -- entry points ---------------------------------------------------------------------------


def audit_summary(
    *,
    slide_audit: SlideAudit | None = None,
    attention: AttentionAudit | None = None,
    data_audit: DataAudit | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build the content of ``audit.json``: overall verdict plus each audit's summary."""
    verdicts = []
    out: dict[str, Any] = {
        "format": "napari-xai-audit",
        "version": 1,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    if slide_audit is not None:
        out["attention"] = slide_audit.to_dict()
        verdicts.append(slide_audit.verdict)
        if slide_audit.shortcut is not None:
            out["sentence"] = slide_audit.sentence
            out["shortcut_suspected"] = slide_audit.shortcut.shortcut_suspected
    elif attention is not None:
        out["attention"] = attention.to_dict()
        verdicts.append(attention.verdict)
    if data_audit is not None:
        out["data"] = data_audit.to_dict()
        verdicts.append(data_audit.verdict)
    order = {"pass": 0, "warn": 1, "fail": 2}
    out["verdict"] = max(verdicts, key=lambda v: order.get(v, 0)) if verdicts else "n/a"
    if extra:
        out.update(extra)
    return out


def write_report(
    out_dir: str | Path,
    *,
    slide_audit: SlideAudit | None = None,
    attention: AttentionAudit | None = None,
    tile_images: npt.NDArray[np.uint8] | None = None,
    tile_maps: npt.NDArray[np.float32] | None = None,
    pred_class: list[str] | None = None,
    data_audit: DataAudit | None = None,
    title: str = "napari-xai shortcut audit",
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``report.html`` and ``audit.json`` into ``out_dir``.

    Parameters
    ----------
    out_dir : str or Path
        Folder (created); typically the slide's result folder.
    slide_audit : SlideAudit, optional
        Result of :func:`napari_xai.core.audit.slide.audit_slide`.
    attention : AttentionAudit, optional
        A tile-level attention audit (used when there is no ``slide_audit``).
    tile_images : ndarray of uint8, shape (N, H, W, 3), optional
        All audited tiles of ``attention`` (the worst are shown in the gallery).
    tile_maps : ndarray, shape (N, H, W), optional
        Their attribution maps.
    pred_class : list of str, optional
        Predicted class per tile of ``attention``.
    data_audit : DataAudit, optional
        Result of :func:`napari_xai.core.audit.data.audit_cohort`.
    title : str
        Report title.
    extra : dict, optional
        More JSON-ready entries for ``audit.json``.

    Returns
    -------
    Path
        The written ``report.html``.
    """
    if slide_audit is None and attention is None and data_audit is None:
        raise ValueError("write_report needs at least one audit (slide, attention or data)")
    tile_audit = getattr(data_audit, "tile_audit", None)
    if slide_audit is None and attention is None and tile_audit is not None:
        attention = tile_audit.attention
        tile_images, tile_maps = tile_audit.images, tile_audit.maps
        pred_class = tile_audit.pred_class
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = audit_summary(
        slide_audit=slide_audit, attention=attention, data_audit=data_audit, extra=extra
    )
    verdict = summary["verdict"]
    colour = _palette.verdict_hex(verdict)
    body = [
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="muted">{html.escape(str(summary["created"]))} · napari-xai</p>',
        f'<p>Overall: <span class="verdict" style="background:{colour}">{verdict.upper()}'
        "</span></p>",
    ]
    if slide_audit is not None and slide_audit.shortcut is not None:
        body.append(
            f'<p class="sentence"><b>{html.escape(slide_audit.sentence)}</b></p>'
            '<ul class="evidence">'
            + "".join(f"<li>{html.escape(e)}</li>" for e in slide_audit.shortcut.evidence)
            + "</ul>"
        )
    if slide_audit is not None:
        body.append(
            _attention_section(
                slide_audit.attention,
                slide=slide_audit,
                images=slide_audit.worst_images,
                maps=slide_audit.worst_maps,
                pred=[str(x) for x in slide_audit.tiles["pred_class"]],
            )
        )
    elif attention is not None:
        worst = np.asarray(attention.worst, dtype=np.int64)
        imgs = None if tile_images is None else np.asarray(tile_images)[worst]
        maps = None if tile_maps is None else np.asarray(tile_maps)[worst]
        body.append(
            _attention_section(attention, slide=None, images=imgs, maps=maps, pred=pred_class)
        )
    if data_audit is not None:
        body.append(_data_section(data_audit))
    doc = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        + "\n".join(body)
        + "</body></html>"
    )
    report = out_dir / REPORT_NAME
    _atomic_write(report, doc)
    _atomic_write(out_dir / JSON_NAME, json.dumps(summary, indent=1, allow_nan=False))
    return report


def _atomic_write(path: Path, text: str) -> None:
    from napari_xai.core.atomic import atomic_write_text

    atomic_write_text(path, text)
