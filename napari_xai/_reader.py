"""napari reader: open whole-slide images lazily as multiscale layers.

napari imports this module to build its reader list, so it imports nothing
heavy at module level; :func:`read_slide` does the work.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Callable

    from napari.types import LayerDataTuple

    PathOrPaths = str | list[str]

# Suffixes the manifest claims; ``.dcm`` is claimed only to say clearly that
# DICOM slides are not supported, instead of "no reader found".
from napari_xai.core.naming import READER_SUFFIXES as _SUFFIXES


def napari_get_reader(path: PathOrPaths) -> Callable[[PathOrPaths], list[LayerDataTuple]] | None:
    """Return :func:`read_slide` when ``path`` looks like a slide; never raises."""
    try:
        one = single_path(path)
        if one is not None and one.name.lower().endswith(_SUFFIXES) and not one.is_dir():
            return read_slide
    except Exception:  # the probe must never raise
        return None
    return None


def single_path(path: PathOrPaths) -> Path | None:
    """Return the one path napari offers a reader (a string or a one-element list), or None."""
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    return Path(str(path))


def read_slide(path: PathOrPaths) -> list[LayerDataTuple]:
    """Open a slide as one lazy multiscale image layer in level-0 pixel coordinates.

    Parameters
    ----------
    path : str or list of str
        The slide (a one-element list is accepted, as napari passes it).

    Returns
    -------
    list of LayerDataTuple
        ``[(levels, metadata, "image")]`` where ``levels`` are dask arrays.

    Raises
    ------
    napari_xai.core.wsi.SlideError
        With the file's name and the problem, for anything that is not a
        readable 2-D whole-slide image.
    """
    from napari_xai.core.layers.slide import slide_layer_data
    from napari_xai.core.wsi import open_slide

    if isinstance(path, (list, tuple)):
        path = path[0]
    slide = open_slide(path)
    return [slide_layer_data(slide)]
