"""Slide and tile quality control: tissue and artefact masks, their fractions, a cohort report.

:func:`qc_image` runs the same masks as scoring, the audit and the viewer
(:func:`napari_xai.core.masks.slide_masks`, stroke pass included) on a slide, or
the thumbnail pass and :func:`napari_xai.core.masks.tile_ink_labels` on a plain
image tile (PNG, JPEG, TIFF), and :func:`write_qc` writes per input
``<stem>/qc.json``, ``tissue_mask.png``, ``artefact_mask.png`` (uint8 labels,
0 = none, at the mask's downsample) and ``overlay.png``; :func:`write_cohort`
adds ``qc_summary.csv`` and ``index.html`` (thumbnails with mask outlines).
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["QCResult", "qc_image", "write_cohort", "write_qc"]

#: Suffixes read as plain image tiles (no pyramid), unless the TIFF opens as a slide.
TILE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")


@dataclass(frozen=True)
class QCResult:
    """QC of one slide or tile.

    Attributes
    ----------
    source : str
        The input file.
    stem : str
        Name of its output folder.
    kind : str
        ``"slide"`` (pyramid read through :mod:`napari_xai.core.wsi`) or ``"tile"``.
    shape_rc : tuple of int
        Level-0 size (rows, cols).
    mpp : float or None
        Level-0 µm/px (from the file or ``--mpp``).
    downsample : float
        Level-0 pixels per mask pixel.
    modality, stain : str
        From the masks (:class:`napari_xai.core.masks.SlideMasks`).
    tissue_fraction, artefact_fraction : float
        Fractions of the image area.
    artefact_fractions : dict of str to float
        Per artefact class (:data:`napari_xai.core.masks.ARTEFACT_NAMES`).
    warnings : tuple of str
    """

    source: str
    stem: str
    kind: str
    shape_rc: tuple[int, int]
    mpp: float | None
    downsample: float
    modality: str
    stain: str
    tissue_fraction: float
    artefact_fraction: float
    artefact_fractions: dict[str, float] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


def _read_tile(path: Path) -> npt.NDArray[np.uint8]:
    import imageio.v3 as iio

    try:
        arr = np.asarray(iio.imread(path))
    except Exception as exc:  # noqa: BLE001 - any decoder error is a bad input
        raise ValueError(f"{path}: cannot read the image ({exc})") from exc
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=-1)
    if arr.ndim != 3 or arr.shape[-1] < 3:
        raise ValueError(f"{path}: expected an RGB image, got shape {arr.shape}")
    if arr.dtype != np.uint8:
        top = float(arr.max(initial=0)) or 1.0
        arr = (arr.astype(np.float32) * (255.0 / top)).astype(np.uint8)
    return np.ascontiguousarray(arr[..., :3])


def _downscale(rgb: npt.NDArray[np.uint8], max_size: int) -> tuple[npt.NDArray[np.uint8], float]:
    f = int(np.ceil(max(rgb.shape[:2]) / max_size))
    if f <= 1:
        return rgb, 1.0
    rows, cols = (rgb.shape[0] // f) * f, (rgb.shape[1] // f) * f
    view = rgb[:rows, :cols].reshape(rows // f, f, cols // f, f, 3)
    return view.mean(axis=(1, 3)).astype(np.uint8), float(f)


def qc_image(
    path: str | Path,
    *,
    mpp: float | None = None,
    max_size: int | None = None,
    stem: str | None = None,
    strokes: bool = True,
) -> tuple[QCResult, Any, npt.NDArray[np.uint8]]:
    """QC one slide or image tile.

    Parameters
    ----------
    path : str or Path
        A whole-slide image, or a PNG/JPEG/TIFF tile.
    mpp : float, optional
        Level-0 µm/px where the file has none.
    max_size : int, optional
        Longest side of the thumbnail the masks are computed on; default
        :data:`napari_xai.core.options.MASK_SIZE`, the size scoring uses (the
        same slide's ``qc.json`` and result-folder masks agree).
    stem : str, optional
        Output folder name; default the file name without its suffixes.
    strokes : bool
        Slides: the masks scoring uses, :func:`napari_xai.core.masks.slide_masks`
        with its stroke-resolution ink pass (skipped, as there, when the
        thumbnail is already at stroke resolution); tiles get the thumbnail
        pass at full resolution and the stroke pass binned by 2
        (:func:`napari_xai.core.masks.tile_ink_labels`).

    Returns
    -------
    (QCResult, SlideMasks, thumbnail)
    """
    from napari_xai.core.masks import (
        ARTEFACT_NAMES,
        estimate_background,
        masks_from_thumbnail,
        merge_strokes,
        slide_masks,
        tile_ink_labels,
    )
    from napari_xai.core.options import MASK_SIZE

    max_size = MASK_SIZE if max_size is None else int(max_size)
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    name = stem or path.name.split(".")[0]
    kind, level_mpp = "tile", mpp
    thumb: npt.NDArray[np.uint8] | None = None
    if path.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        from napari_xai.core.wsi import SlideError, open_slide

        try:
            with open_slide(path, mpp=mpp) as slide:
                t, ds = slide.thumbnail(max_size=max_size)
                thumb = np.ascontiguousarray(np.asarray(t)[..., :3])
                shape = tuple(int(v) for v in slide.info.shape_rc)
                level_mpp = slide.info.mpp or mpp
                kind = "slide"
                # the call scoring makes (core.masks.store): QC and scoring agree
                masks = slide_masks(
                    slide, max_size=max_size, strokes=strokes, thumbnail=(thumb, ds)
                )
        except SlideError:
            if path.suffix.lower() not in TILE_SUFFIXES:
                raise
    if thumb is None:
        full = _read_tile(path)
        shape = (int(full.shape[0]), int(full.shape[1]))
        thumb, ds = _downscale(full, max_size)
        masks = masks_from_thumbnail(thumb, ds)
        if strokes and ds == 1.0 and masks.modality == "brightfield":
            fine = tile_ink_labels(thumb, background=estimate_background(thumb))
            masks = merge_strokes(masks, fine)
    labels = masks.artefact_labels
    per_class = {n: float(np.mean(labels == k)) for k, n in ARTEFACT_NAMES.items()}
    warnings = list(masks.warnings)
    if masks.modality == "fluorescence":
        warnings.append("fluorescence (dark background): brightfield models do not apply")
    res = QCResult(
        source=str(path),
        stem=name,
        kind=kind,
        shape_rc=(shape[0], shape[1]),
        mpp=None if level_mpp is None else float(level_mpp),
        downsample=float(masks.downsample),
        modality=masks.modality,
        stain=masks.stain,
        tissue_fraction=float(masks.tissue.mean()),
        # the sum of the per-class fractions (the classes partition the artefacts): exact
        artefact_fraction=float(sum(per_class.values())),
        artefact_fractions=per_class,
        warnings=tuple(warnings),
    )
    return res, masks, thumb


def _overlay(thumb: npt.NDArray[np.uint8], masks: Any) -> npt.NDArray[np.uint8]:
    """Thumbnail with tissue and artefact (per class) outlines in the viewer's mask colours."""
    from skimage.segmentation import find_boundaries

    from napari_xai.core.naming import ARTEFACT_COLOURS, ROLE_COLOURS, rgb255

    out = thumb.copy()
    out[find_boundaries(masks.tissue, mode="inner")] = rgb255(ROLE_COLOURS["tissue"])
    for k, c in ARTEFACT_COLOURS.items():
        out[find_boundaries(masks.artefact_labels == k, mode="inner")] = rgb255(c)
    return out


def write_qc(
    result: QCResult, masks: Any, thumb: npt.NDArray[np.uint8], out_dir: str | Path
) -> Path:
    """Write ``<out_dir>/<stem>/`` (qc.json, tissue_mask.png, artefact_mask.png, overlay.png)."""
    from PIL import Image

    from napari_xai.core.atomic import atomic_write_text

    folder = Path(out_dir) / result.stem
    folder.mkdir(parents=True, exist_ok=True)
    from napari_xai.core.masks import write_masks

    write_masks(masks, folder, meta=False)  # qc.json says what masks.json would
    Image.fromarray(_overlay(thumb, masks)).save(folder / "overlay.png")
    Image.fromarray(thumb).save(folder / "thumbnail.png")
    from napari_xai.core.masks import ARTEFACT_LABELS

    payload = {
        **asdict(result),
        "artefact_labels": {str(k): v for k, v in ARTEFACT_LABELS.items()},
    }
    atomic_write_text(folder / "qc.json", json.dumps(payload, indent=2))
    return folder


_COLUMNS = ("stem", "source", "kind", "modality", "stain", "tissue_fraction",
            "artefact_fraction", "downsample", "mpp", "warnings")  # fmt: skip


def _legend_html() -> str:
    """Name the outline colours of :func:`_overlay` (tissue, then each artefact class)."""
    from napari_xai.core.masks import ARTEFACT_LABELS
    from napari_xai.core.naming import ARTEFACT_COLOURS, ROLE_COLOURS, hex_colour

    def swatch(colour: tuple[float, ...], text: str) -> str:
        return f"<span style='color:{hex_colour(colour)}'>&#9632;</span> {html.escape(text)}"

    items = [swatch(ROLE_COLOURS["tissue"], "tissue")]
    items += [swatch(ARTEFACT_COLOURS[k], v) for k, v in ARTEFACT_LABELS.items()]
    return ", ".join(items)


def write_cohort(results: Sequence[QCResult], out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``qc_summary.csv`` (one row per input) and ``index.html`` into ``out_dir``."""
    import csv
    import io

    from napari_xai.core.atomic import atomic_write_text
    from napari_xai.core.masks import ARTEFACT_NAMES

    out = Path(out_dir)
    classes = [f"artefact_{n}" for n in ARTEFACT_NAMES.values()]
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow([*_COLUMNS, *classes])
    for r in results:
        row = [getattr(r, c) for c in _COLUMNS[:-1]] + ["; ".join(r.warnings)]
        writer.writerow(row + [r.artefact_fractions.get(n, 0.0) for n in ARTEFACT_NAMES.values()])
    csv_path = atomic_write_text(out / "qc_summary.csv", buf.getvalue())
    cards = []
    for r in results:
        e = html.escape
        warn = "".join(f"<li>{e(w)}</li>" for w in r.warnings)
        arts = ", ".join(f"{e(k)} {v:.2%}" for k, v in r.artefact_fractions.items() if v > 0)
        cards.append(
            f'<div class="card"><h3>{e(r.stem)}</h3>'
            f'<a href="{e(r.stem)}/overlay.png"><img src="{e(r.stem)}/overlay.png" '
            f'alt="{e(r.stem)} overlay"></a>'
            f"<p>{e(r.kind)} · {e(r.modality)} · {e(r.stain)}<br>"
            f"tissue {r.tissue_fraction:.1%} · artefacts {r.artefact_fraction:.1%}"
            f"{' (' + arts + ')' if arts else ''}</p><ul>{warn}</ul></div>"
        )
    page = (
        "<!doctype html><html><head><meta charset='utf-8'><title>napari-xai QC</title>"
        "<style>body{font-family:sans-serif}.card{display:inline-block;vertical-align:top;"
        "width:320px;margin:8px}.card img{max-width:320px;max-height:320px}</style></head>"
        f"<body><h1>QC of {len(results)} inputs</h1><p>Outlines: {_legend_html()}. "
        "Table: <a href='qc_summary.csv'>qc_summary.csv</a></p>"
        + "".join(cards)
        + "</body></html>"
    )
    html_path = atomic_write_text(out / "index.html", page)
    return csv_path, html_path
