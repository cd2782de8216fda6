"""What the tile inspector writes about a tile: probabilities, flags, thumbnails."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from napari_xai.core.naming import class_colour, hex_colour

if TYPE_CHECKING:
    import numpy as np

#: Longest side (pixels) of the thumbnails shown.
THUMB_SIZE = 160


def shrink(arr: np.ndarray, size: int = THUMB_SIZE) -> np.ndarray:
    """Subsample an image so its longest side is at most ``size`` pixels."""
    step = max(1, int(-(-max(arr.shape[:2]) // size)))
    return arr[::step, ::step]


def tile_flags(rec: Any, feats: Any) -> list[str]:
    """Return a tile's flags: its ``flags`` text, the audit's flag, its tissue fraction."""
    out = []
    text = str(rec["flags"]) if "flags" in feats and rec["flags"] is not None else ""
    out += [f for f in text.replace(";", ",").split(",") if f.strip() and f != "nan"]
    if "flagged" in feats and bool(rec["flagged"]):
        out.append("audit: flagged")
    if "tissue_fraction" in feats:
        out.append(f"tissue {float(rec['tissue_fraction']):.0%}")
    return [f.strip() for f in out]


def prob_table(probs: dict[str, float], pred: str, conf: float) -> str:
    """Rich-text table: one row per class (palette swatch, name, probability)."""
    rows = []
    for k, (name, p) in enumerate(probs.items()):
        colour = hex_colour(class_colour(name, k))
        weight = "bold" if name == pred else "normal"
        rows.append(
            f"<tr><td style='color:{colour}'>■</td><td style='font-weight:{weight}'>{name}</td>"
            f"<td align='right'>{p:.3f}</td></tr>"
        )
    head = f"predicted <b>{pred}</b> (confidence {conf:.3f})"
    return f"{head}<table>{''.join(rows)}</table>"
