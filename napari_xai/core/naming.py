"""Names, in one place: slide suffixes and stems, layer names, the positive class.

Every module that needs to tell a slide file from another file, to name a
result folder or a napari layer, or to guess which class is "the tumour" asks
here, so that a slide is called the same in the reader, the pipeline, the batch
summary, the widgets and the result folder.

* Slide files: :data:`SLIDE_SUFFIXES` (what the reader opens),
  :data:`COHORT_SUFFIXES` (what a folder scan takes as a slide, including vendor
  formats that fail with a clear error), :func:`is_slide_name`.
* Stems: :func:`slide_stem` (``a.ome.tiff`` → ``a``), the result folder name.
* Layer names: :func:`heatmap_layer_name`, :func:`tiles_layer_name`,
  :func:`saliency_layer_name`, :func:`activation_layer_name`,
  :func:`mask_layer_name`. A LayerData tuple whose name matches an existing
  layer updates it in place, so re-runs never pile up layers.
* Classes: :func:`positive_class` (the class that scores a slide and is shown
  first), :func:`is_background`, :func:`is_positive_label`.

This module imports only the standard library.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "BACKGROUND_NAMES",
    "COHORT_SUFFIXES",
    "NEGATIVE_NAMES",
    "POSITIVE_NAMES",
    "READER_SUFFIXES",
    "SLIDE_SUFFIXES",
    "activation_layer_name",
    "heatmap_layer_name",
    "is_background",
    "is_positive_label",
    "is_slide_name",
    "mask_layer_name",
    "ood_layer_name",
    "positive_class",
    "saliency_layer_name",
    "slide_stem",
    "tiles_layer_name",
]

# --------------------------------------------------------------------------- slide files

#: File endings of the slides the reader opens (tiffslide's formats).
SLIDE_SUFFIXES = (
    ".svs", ".tif", ".tiff", ".ndpi", ".scn", ".bif", ".qptiff", ".ome.tif", ".ome.tiff",
)  # fmt: skip
#: What the napari reader claims: ``.dcm`` only to say clearly that DICOM is unsupported.
READER_SUFFIXES = (*SLIDE_SUFFIXES, ".dcm")
#: What a folder or glob of a cohort takes as slides: vendor formats the reader
#: cannot open are kept, so the batch reports them as failed instead of ignoring them.
COHORT_SUFFIXES = (*SLIDE_SUFFIXES, ".mrxs", ".vms", ".svslide")
# Stripped from a file name to make its stem (compound endings first).
_STEM_SUFFIXES = (".ome.tiff", ".ome.tif", ".ome.zarr", *COHORT_SUFFIXES)


def is_slide_name(
    path: str | os.PathLike[str], *, suffixes: Sequence[str] = COHORT_SUFFIXES
) -> bool:
    """Tell whether a file name ends like a slide (case-insensitive; hidden files are not).

    Parameters
    ----------
    path : path-like
        A file name or path (the file need not exist).
    suffixes : sequence of str
        Endings that count (default :data:`COHORT_SUFFIXES`).
    """
    name = Path(path).name
    return not name.startswith(".") and name.lower().endswith(tuple(suffixes))


def slide_stem(path: str | os.PathLike[str]) -> str:
    """Name of a slide without its slide suffix: ``a.ome.tiff`` → ``a``, ``a.b.svs`` → ``a.b``.

    The result folder of a slide is ``out/<stem>``, and layer names start with it.
    A name that is only a suffix (``.svs``) is kept whole.
    """
    name = Path(path).name
    lower = name.lower()
    for suffix in _STEM_SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)] or name
    return Path(name).stem or name


# --------------------------------------------------------------------------- layer names


def heatmap_layer_name(slide_name: str, class_name: str) -> str:
    """``"<slide> prob [<class>]"``: a class-probability layer."""
    return f"{slide_name} prob [{class_name}]"


def tiles_layer_name(slide_name: str) -> str:
    """``"<slide> tiles"``: the tiles (Points) layer."""
    return f"{slide_name} tiles"


def saliency_layer_name(slide_name: str, method: str, class_name: str) -> str:
    """``"<slide> saliency [<method>, <class>]"``: a stitched saliency layer."""
    return f"{slide_name} saliency [{method}, {class_name}]"


def activation_layer_name(slide_name: str, layer: str, channel: int | str) -> str:
    """``"<slide> activation [<layer>, channel <c>]"``: a stitched activation layer.

    ``channel`` may already read ``"channel 3"`` (as a stitched map stores it).
    """
    text = str(channel)
    if not text.startswith("channel"):
        text = f"channel {text}"
    return f"{slide_name} activation [{layer}, {text}]"


def ood_layer_name(slide_name: str) -> str:
    """``"<slide> ood_score"``: where the model does not know (out of distribution)."""
    return f"{slide_name} ood_score"


def mask_layer_name(slide_name: str, kind: str) -> str:
    """``"<slide> <kind>"``: a mask layer (``tissue``, ``artefacts``)."""
    return f"{slide_name} {kind}"


# --------------------------------------------------------------------------- classes

#: Class names (lower case) taken as the class of interest, best first.
POSITIVE_NAMES = ("tumour", "tumor", "tum", "cancer", "malignant", "positive", "lesion")
#: Classes that are not tissue: never drawn as predicted regions.
BACKGROUND_NAMES = ("background", "back", "bg", "glass", "empty")
#: Tissue classes that are not of interest: not shown first.
NEGATIVE_NAMES = ("other", "normal", "benign", "notumor", "negative")
# Slide labels read as positive besides the positive class's own name.
_POSITIVE_LABELS = ("1", "true", "yes", "positive", "pos", *POSITIVE_NAMES)


def is_background(class_name: str) -> bool:
    """Tell whether a class is background (glass, empty), not tissue."""
    return str(class_name).lower() in BACKGROUND_NAMES


def positive_class(class_names: Sequence[str], requested: str | None = None) -> str:
    """Return the class that scores a slide and whose map is shown first.

    Parameters
    ----------
    class_names : sequence of str
        The model's classes.
    requested : str, optional
        The class asked for; must be one of ``class_names``.

    Returns
    -------
    str
        ``requested``; else the class named like a tumour (an exact
        :data:`POSITIVE_NAMES` match first, then a name containing one); else the
        last class that is neither background nor negative; else the last class.

    Raises
    ------
    ValueError
        Without classes, or when ``requested`` is not one of them.
    """
    names = [str(c) for c in class_names]
    if not names:
        raise ValueError("the model has no class names")
    if requested:
        if requested not in names:
            raise ValueError(f"positive class {requested!r} is not one of {names}")
        return requested
    for cand in POSITIVE_NAMES:
        for name in names:
            if name.lower() == cand:
                return name
    for name in names:
        if any(cand in name.lower() for cand in POSITIVE_NAMES):
            return name
    plain = [n for n in names if n.lower() not in (*BACKGROUND_NAMES, *NEGATIVE_NAMES)]
    return plain[-1] if plain else names[-1]


def is_positive_label(text: str, positive: str) -> bool:
    """Tell whether a slide label (lower-cased text) names the positive class."""
    low = str(text).strip().lower()
    return low == str(positive).lower() or low in _POSITIVE_LABELS


# --------------------------------------------------------------------------- palette
# (class colours: the colour-blind-safe palette goes here, issue 14)
