"""Masks on disk: a result folder (or a QC folder) keeps the masks it was made with.

:func:`write_masks` writes ``tissue_mask.png`` (0/1), ``artefact_mask.png``
(uint8 labels, 0 = none: :data:`~napari_xai.core.masks.ARTEFACT_LABELS`) and
``masks.json`` (downsample, modality, stain, warnings, and the key they were
made under); :func:`read_masks` reads them back (or a ``napari-xai qc`` folder,
whose ``qc.json`` says the same). :func:`cached_slide_masks` computes a slide's
masks once, stroke pass included, and reuses them while the slide file, the
mask size and the mask code are the same, so that scoring, the audit and the
viewer see the same masks and a second stage does not pay for the stroke pass.
Within one process it also keeps the last few slides' masks in memory (read-only
arrays), so a widget can make them while the user reads its controls and a
second run of the same slide does not make them again.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_xai.core.masks.artefacts import mark_mask
from napari_xai.core.masks.slide import SlideMasks, slide_masks
from napari_xai.core.options import MASK_SIZE

if TYPE_CHECKING:
    from napari_xai.core.wsi import Slide

__all__ = [
    "ARTEFACT_MASK_NAME",
    "MASKS_NAME",
    "TISSUE_MASK_NAME",
    "cached_slide_masks",
    "forget_made_masks",
    "masks_key",
    "read_masks",
    "write_masks",
]

MASKS_NAME = "masks.json"
TISSUE_MASK_NAME = "tissue_mask.png"
ARTEFACT_MASK_NAME = "artefact_mask.png"
_QC_NAME = "qc.json"


@functools.cache  # the source a process runs does not change under it
def _code_hash() -> str:
    """sha256 of this package's source: masks made by other code are not reused."""
    h = hashlib.sha256()
    for path in sorted(Path(__file__).parent.glob("*.py")):
        h.update(path.name.encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def masks_key(slide: Slide, *, max_size: int, strokes: bool) -> dict[str, Any]:
    """Say what a slide's masks depend on: file, thumbnail size, stroke pass, code.

    Parameters
    ----------
    slide : napari_xai.core.wsi.Slide
    max_size : int
        Longest side of the thumbnail the masks are computed on.
    strokes : bool
        Whether the stroke-resolution pass is included.

    Returns
    -------
    dict
        ``slide`` (name, size, header sha256), ``max_size``, ``strokes``, ``code``.
    """
    from napari_xai.core.results import slide_identity

    ident = slide_identity(slide.path)
    return {
        "slide": {k: ident[k] for k in ("name", "size", "header_sha256")},
        "max_size": int(max_size),
        "strokes": bool(strokes),
        "code": _code_hash(),
    }


def _png_bytes(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(arr, dtype=np.uint8)).save(buf, format="PNG")
    return buf.getvalue()


def write_masks(
    masks: SlideMasks,
    folder: str | os.PathLike[str],
    *,
    key: dict[str, Any] | None = None,
    meta: bool = True,
) -> list[str]:
    """Write ``masks`` into ``folder``.

    Plain writes: a result is written into a temporary folder that is renamed
    when complete (:class:`~napari_xai.core.results.ResultWriter`).

    Parameters
    ----------
    masks : SlideMasks
    folder : path-like
        Created when missing.
    key : dict, optional
        :func:`masks_key` (stored so that :func:`read_masks` can check it).
    meta : bool
        Also write ``masks.json`` (a QC folder has ``qc.json`` instead).

    Returns
    -------
    list of str
        The names written.
    """
    from napari_xai.core.masks.artefacts import ARTEFACT_LABELS

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    (out / TISSUE_MASK_NAME).write_bytes(_png_bytes(masks.tissue.astype(np.uint8)))
    (out / ARTEFACT_MASK_NAME).write_bytes(_png_bytes(masks.artefact_labels))
    names = [TISSUE_MASK_NAME, ARTEFACT_MASK_NAME]
    if meta:
        payload = {
            "downsample": float(masks.downsample),
            "modality": masks.modality,
            "stain": masks.stain,
            "warnings": list(masks.warnings),
            "shape_rc": [int(v) for v in masks.tissue.shape],
            "artefact_labels": {str(k): v for k, v in ARTEFACT_LABELS.items()},
            "key": key,
        }
        (out / MASKS_NAME).write_text(json.dumps(payload, indent=2), encoding="utf-8")
        names.append(MASKS_NAME)
    return names


def _read_png(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            arr = np.asarray(img)
    except (OSError, UnidentifiedImageError) as exc:
        raise ValueError(f"{path}: cannot read the mask ({exc})") from exc
    if arr.ndim != 2:
        raise ValueError(f"{path}: expected a one-channel label image, got shape {arr.shape}")
    return arr


def read_masks(
    folder: str | os.PathLike[str],
    *,
    key: dict[str, Any] | None = None,
    any_size: bool = False,
) -> SlideMasks | None:
    """Masks stored in a result folder (``masks.json``) or a QC folder (``qc.json``).

    Parameters
    ----------
    folder : path-like
    key : dict, optional
        When given, masks stored under another key (other slide file, size,
        stroke pass or code) are not returned.
    any_size : bool
        Accept masks made from a thumbnail of another size (same slide, pass, code).

    Returns
    -------
    SlideMasks or None
        None when the folder holds no masks, or holds them under another key.

    Raises
    ------
    ValueError
        A mask file that is there but unreadable, or that does not match its
        description (the message names the file).
    """
    root = Path(folder)
    meta_path = root / MASKS_NAME
    if not meta_path.is_file():
        meta_path = root / _QC_NAME
        if not meta_path.is_file() or key is not None:
            return None
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        downsample = float(meta["downsample"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{meta_path}: not a masks description ({exc})") from exc
    if key is not None and not _same_key(meta.get("key"), key, any_size=any_size):
        return None
    tissue_path, labels_path = root / TISSUE_MASK_NAME, root / ARTEFACT_MASK_NAME
    for p in (tissue_path, labels_path):
        if not p.is_file():
            raise ValueError(f"{p}: missing (named by {meta_path.name})")
    tissue = _read_png(tissue_path) > 0
    labels = _read_png(labels_path).astype(np.uint8)
    if tissue.shape != labels.shape:
        raise ValueError(
            f"{labels_path}: shape {labels.shape} differs from {tissue_path.name}'s {tissue.shape}"
        )
    if not downsample > 0:
        raise ValueError(f"{meta_path}: downsample must be positive, not {downsample}")
    return SlideMasks(
        tissue,
        mark_mask(labels),
        labels,
        downsample,
        str(meta.get("modality", "brightfield")),
        str(meta.get("stain", "unknown")),
        tuple(str(w) for w in meta.get("warnings", ())),
    )


def _same_key(stored: Any, key: dict[str, Any], *, any_size: bool) -> bool:
    if not isinstance(stored, dict):
        return False
    if any_size:
        stored = {k: v for k, v in stored.items() if k != "max_size"}
        key = {k: v for k, v in key.items() if k != "max_size"}
    return bool(stored == key)


def cached_slide_masks(
    slide: Slide,
    folder: str | os.PathLike[str] | None,
    *,
    max_size: int = MASK_SIZE,
    strokes: bool = True,
    any_size: bool = False,
    write_to: str | os.PathLike[str] | None = None,
) -> SlideMasks:
    """Read a slide's masks from ``folder`` when stored there under the same key, else compute.

    Parameters
    ----------
    slide : napari_xai.core.wsi.Slide
    folder : path-like or None
        Where earlier masks may be (a result folder); None: always compute.
    max_size : int
        Longest side of the thumbnail (default :data:`~napari_xai.core.options.MASK_SIZE`).
    strokes : bool
        Include the stroke-resolution pass (:func:`~napari_xai.core.masks.stroke_labels`).
    any_size : bool
        Reuse stored masks made from a thumbnail of another size.
    write_to : path-like, optional
        Write the masks (with their key) there, e.g. the result being written.

    Returns
    -------
    SlideMasks
    """
    key = masks_key(slide, max_size=max_size, strokes=strokes)
    masks = None
    if folder is not None and Path(folder).is_dir():
        try:
            masks = read_masks(folder, key=key, any_size=any_size)
        except ValueError:  # a damaged cache is made again
            masks = None
    if masks is None:
        masks = _made_once(key, lambda: slide_masks(slide, max_size=max_size, strokes=strokes))
    if write_to is not None:
        write_masks(masks, write_to, key=key)
    return masks


#: Masks made in this process, newest last: a few slides (a few MB each at mask size).
_MADE: OrderedDict[str, SlideMasks] = OrderedDict()
_MADE_SIZE = 4
_MADE_LOCK = threading.Lock()
_MAKING: dict[str, threading.Event] = {}


def forget_made_masks() -> None:
    """Forget the masks this process made (the next caller of a slide makes them again)."""
    with _MADE_LOCK:
        _MADE.clear()


def _made_once(key: dict[str, Any], make: Callable[[], SlideMasks]) -> SlideMasks:
    """``make()``, or the masks this process already made under ``key``.

    A second caller for a key being made waits for the first (a widget warming
    the masks and a run started meanwhile make them once). The arrays are
    read-only: a caller that wants to change them copies them first.
    """
    name = json.dumps(key, sort_keys=True)
    while True:
        with _MADE_LOCK:
            if name in _MADE:
                _MADE.move_to_end(name)
                return _MADE[name]
            making = _MAKING.get(name)
            if making is None:
                _MAKING[name] = threading.Event()
                break
        making.wait()  # made (then found above) or failed (then made here)
    try:
        masks = make()
        for arr in (masks.tissue, masks.artefact, masks.artefact_labels):
            arr.flags.writeable = False
        with _MADE_LOCK:
            _MADE[name] = masks
            while len(_MADE) > _MADE_SIZE:
                _MADE.popitem(last=False)
        return masks
    finally:
        with _MADE_LOCK:
            _MAKING.pop(name).set()
