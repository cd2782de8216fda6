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
* Colours: the palette below.

Palette
-------
One colour-blind-safe palette (Okabe & Ito, 2008, "Color Universal Design",
plus two of Paul Tol's muted colours for the eighth and ninth class) gives
every class one colour in every layer: tile squares, heatmap legends, predicted
regions, annotations, QuPath exports. Each *role* has its own colour, so no
colour means two things:

* **classes** (:func:`class_colour`): tumour orange, normal sky blue, stroma
  bluish green, immune cells blue, background grey...; other names cycle
  through :data:`CLASS_PALETTE` in class order;
* **probability** (:func:`probability_colormap`): viridis, transparent at 0,
  the same for every class (the legend names the class); no red in it;
* **attribution** (:data:`ATTRIBUTION_COLORMAP`): inferno, its own scale;
* **flagged tile** (:data:`ROLE_COLOURS` ``"flag"``): vermillion, the only red;
* **audit regions** (:data:`REGION_COLOURS`): tissue blue (as the tissue mask),
  artefact reddish purple (as the *Artefact* annotation class), border sand
  (Tol), background pale grey, in napari's region layer and the HTML report's
  figures;
* **verdicts** (:data:`VERDICT_COLOURS`): pass bluish green, warn orange, fail
  vermillion, in every HTML report (the word is always written next to it);
* **masks**: tissue outlined in blue, artefacts in colours chosen to
  stand out from the ink they outline (black ink is outlined in sky blue,
  green/blue ink in yellow, red ink in bluish green), see
  :data:`ARTEFACT_COLOURS`.

Colours are RGB floats in ``[0, 1]``; :func:`rgb255` gives QuPath's integers.

This module imports only the standard library.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

__all__ = [
    "ARTEFACT_COLOURS",
    "ATTRIBUTION_COLORMAP",
    "BACKGROUND_NAMES",
    "CLASS_COLOURS",
    "CLASS_PALETTE",
    "COHORT_SUFFIXES",
    "NEGATIVE_NAMES",
    "OKABE_ITO",
    "POSITIVE_NAMES",
    "PROBABILITY_COLORMAP",
    "READER_SUFFIXES",
    "REGION_COLOURS",
    "ROLE_COLOURS",
    "SLIDE_SUFFIXES",
    "VERDICT_COLOURS",
    "activation_layer_name",
    "class_colour",
    "heatmap_layer_name",
    "hex_colour",
    "is_background",
    "is_positive_label",
    "is_slide_name",
    "mask_layer_name",
    "ood_layer_name",
    "positive_class",
    "probability_colormap",
    "rgb255",
    "saliency_layer_name",
    "slide_stem",
    "tiles_layer_name",
    "verdict_hex",
]

# --------------------------------------------------------------------------- slide files

#: File endings of the slides the reader opens (tiffslide's formats).
#: Attribution methods by registry key, in menu order: the order of
#: ``core.attribution.ATTRIBUTION_METHODS`` (a test checks it), importable without torch.
METHOD_NAMES = (
    "grad_cam",
    "saliency",
    "integrated_gradients",
    "gradient_shap",
    "occlusion",
    "guided_grad_cam",
)
#: The methods the audit offers (all but guided Grad-CAM).
AUDIT_METHOD_NAMES = METHOD_NAMES[:5]

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

RGB = tuple[float, float, float]


def _hex(code: str) -> RGB:
    code = code.lstrip("#")
    r, g, b = (int(code[i : i + 2], 16) / 255.0 for i in (0, 2, 4))
    return (round(r, 4), round(g, 4), round(b, 4))


#: The eight Okabe-Ito colours, distinguishable with every common colour-vision deficiency.
OKABE_ITO: dict[str, RGB] = {
    "orange": _hex("#E69F00"),
    "sky_blue": _hex("#56B4E9"),
    "bluish_green": _hex("#009E73"),
    "yellow": _hex("#F0E442"),
    "blue": _hex("#0072B2"),
    "vermillion": _hex("#D55E00"),
    "reddish_purple": _hex("#CC79A7"),
    "black": _hex("#000000"),
}
_GREY = _hex("#999999")
_INDIGO = _hex("#332288")  # Tol muted
_OLIVE = _hex("#999933")  # Tol muted
_SAND = _hex("#DDCC77")  # Tol muted
_PALE_GREY = _hex("#DDDDDD")  # Tol pale grey

#: Colours of classes without a fixed colour, taken in class order (vermillion,
#: the flag colour, and black, the dark-ink colour, are left out).
CLASS_PALETTE: tuple[RGB, ...] = (
    OKABE_ITO["blue"],
    OKABE_ITO["orange"],
    OKABE_ITO["bluish_green"],
    OKABE_ITO["sky_blue"],
    OKABE_ITO["reddish_purple"],
    OKABE_ITO["yellow"],
    _GREY,
    _INDIGO,
    _OLIVE,
)

#: Fixed colours of well-known class names (lower case; NCT-CRC-HE codes too).
CLASS_COLOURS: dict[str, RGB] = {
    **dict.fromkeys(("tumour", "tumor", "tum", "cancer", "positive"), OKABE_ITO["orange"]),
    **dict.fromkeys(("normal", "norm", "benign", "notumor", "negative"), OKABE_ITO["sky_blue"]),
    **dict.fromkeys(("stroma", "str"), OKABE_ITO["bluish_green"]),
    **dict.fromkeys(("lymphocytes", "lym", "immune cells", "immune"), OKABE_ITO["blue"]),
    **dict.fromkeys(("necrosis", "deb", "debris"), _INDIGO),
    **dict.fromkeys(("adipose", "adi", "fat"), OKABE_ITO["yellow"]),
    **dict.fromkeys(("muscle", "mus"), OKABE_ITO["reddish_purple"]),
    **dict.fromkeys(("mucus", "muc"), _OLIVE),
    **dict.fromkeys(("background", "back", "glass", "other"), _GREY),
    "ignore*": _PALE_GREY,
}

#: Colours of roles that are not classes.
ROLE_COLOURS: dict[str, RGB] = {
    "flag": OKABE_ITO["vermillion"],  # a tile the audit flags: the one red
    "tile": _GREY,  # outline of a tile that is not flagged
    "tissue": OKABE_ITO["blue"],  # tissue mask outline
    "artefact": OKABE_ITO["reddish_purple"],  # annotation class 'Artefact'
    "region": OKABE_ITO["yellow"],  # annotation class 'Region*'
    "border": _SAND,  # audit region: the rim of the tissue
}

#: Colours of the audit's region map (names of ``core.audit.attention.REGION_NAMES``):
#: napari's "<slide> audit regions" layer and the HTML report draw the same colours.
REGION_COLOURS: dict[str, RGB] = {
    "background": _PALE_GREY,  # napari leaves it unpainted (glass)
    "tissue": ROLE_COLOURS["tissue"],
    "artefact": ROLE_COLOURS["artefact"],
    "border": ROLE_COLOURS["border"],
}

#: Colours of the verdicts in the HTML reports (slide, cohort, data audits).
VERDICT_COLOURS: dict[str, RGB] = {
    "pass": OKABE_ITO["bluish_green"],
    "warn": OKABE_ITO["orange"],
    "fail": OKABE_ITO["vermillion"],
}

#: Artefact mask label -> outline colour (labels of ``core.masks.ARTEFACT_LABELS``),
#: each chosen to stand out from the ink it outlines.
ARTEFACT_COLOURS: dict[int, RGB] = {
    1: OKABE_ITO["yellow"],  # green, blue, teal ink or dye
    2: OKABE_ITO["sky_blue"],  # black ink, text, ruler ticks
    3: OKABE_ITO["black"],  # yellow/brown (ruler, label); not blue, the tissue outline
    4: OKABE_ITO["bluish_green"],  # red ink
    5: OKABE_ITO["reddish_purple"],  # out-of-focus tissue
    6: OKABE_ITO["orange"],  # tissue fold
}

#: Name of the probability colormap (:func:`probability_colormap`).
PROBABILITY_COLORMAP = "napari-xai probability"
#: napari colormap of attribution (saliency) and activation maps.
ATTRIBUTION_COLORMAP = "inferno"

# viridis at 0, 1/8, ..., 1 (matplotlib's values, rounded)
_VIRIDIS_9: tuple[RGB, ...] = (
    (0.267, 0.005, 0.329),
    (0.279, 0.175, 0.483),
    (0.230, 0.322, 0.546),
    (0.173, 0.449, 0.558),
    (0.128, 0.567, 0.551),
    (0.158, 0.684, 0.502),
    (0.369, 0.789, 0.383),
    (0.678, 0.864, 0.190),
    (0.993, 0.906, 0.144),
)
#: Probability at and above which the probability colormap is opaque.
PROBABILITY_OPAQUE_FROM = 0.25


def probability_colormap() -> dict[str, object]:
    """Return the probability colormap as napari's dict (``colors``, ``controls``, ``name``).

    viridis (no red, colour-blind safe, dark to bright with probability) whose
    alpha rises from 0 at probability 0 to 1 at :data:`PROBABILITY_OPAQUE_FROM`,
    so unscored and unlikely tiles leave the slide visible.
    """
    n = len(_VIRIDIS_9)
    controls = [k / (n - 1) for k in range(n)]
    colors = [
        [*rgb, min(1.0, t / PROBABILITY_OPAQUE_FROM)]
        for rgb, t in zip(_VIRIDIS_9, controls, strict=True)
    ]
    return {"colors": colors, "controls": controls, "name": PROBABILITY_COLORMAP}


def class_colour(name: str, index: int = 0) -> RGB:
    """Display colour of a class: its fixed colour, else :data:`CLASS_PALETTE` entry ``index``.

    Parameters
    ----------
    name : str
        Class name (case-insensitive).
    index : int
        Position of the class in the model's class list (picks the palette entry
        of a class without a fixed colour).
    """
    key = name.casefold()
    if key in CLASS_COLOURS:
        return CLASS_COLOURS[key]
    if key == "artefact":
        return ROLE_COLOURS["artefact"]
    if key == "region*":
        return ROLE_COLOURS["region"]
    return CLASS_PALETTE[index % len(CLASS_PALETTE)]


def rgb255(colour: Sequence[float]) -> tuple[int, int, int]:
    """RGB floats in ``[0, 1]`` to integers 0-255 (QuPath's ``color``)."""
    r, g, b = (int(round(min(max(float(v), 0.0), 1.0) * 255)) for v in colour[:3])
    return (r, g, b)


def hex_colour(colour: Sequence[float]) -> str:
    """``#rrggbb`` of RGB floats in ``[0, 1]``."""
    return "#{:02x}{:02x}{:02x}".format(*rgb255(colour))


def verdict_hex(verdict: str) -> str:
    """``#rrggbb`` of a verdict (:data:`VERDICT_COLOURS`; dark grey for any other word)."""
    colour = VERDICT_COLOURS.get(str(verdict).lower())
    return hex_colour(colour) if colour is not None else "#555555"
