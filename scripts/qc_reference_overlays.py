"""Draw the QC reference masks' outlines over their images, to check them by eye.

Writes ``tests/data/qc/overlays/<reference>.jpg`` for the tissue references
(``tests/data/qc/README.md``). Needs ``../shared/data/``.

Usage::

    python scripts/qc_reference_overlays.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "slides"
REF = ROOT / "tests" / "data" / "qc"


def _thumb(name: str) -> np.ndarray:
    from napari_xai.core.wsi import open_slide

    with open_slide(DATA / name) as slide:
        thumb, _ = slide.thumbnail(max_size=1024)
    return np.asarray(thumb)[..., :3].copy()


def main() -> None:
    import imageio.v3 as iio
    from skimage.data import immunohistochemistry
    from skimage.segmentation import find_boundaries

    dapi = np.clip(_thumb("test3-DAPI-2.ndpi").astype(int) * 6, 0, 255).astype(np.uint8)
    for img, ref, colour in [
        (immunohistochemistry().copy(), "ihc_tissue", (0, 255, 0)),
        (_thumb("CMU-1-Small-Region.svs"), "CMU-1-Small-Region_tissue", (0, 255, 0)),
        (dapi, "test3-DAPI-2_tissue", (255, 0, 255)),  # dark field brightened 6x
    ]:
        mask = iio.imread(REF / f"{ref}.png") > 0
        img[find_boundaries(mask, mode="inner")] = colour
        out = REF / "overlays" / f"{ref}.jpg"
        iio.imwrite(out, img, quality=85)
        print(out)


if __name__ == "__main__":
    main()
