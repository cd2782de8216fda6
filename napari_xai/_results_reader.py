"""napari reader for result folders: drop ``<out>/<slide>/`` (or its manifest.json).

Opens the scored slide with everything the run left, all in level-0 pixel
coordinates so the layers line up with the slide at every zoom:

* the slide itself (lazy multiscale, via :mod:`napari_xai._reader`);
* one class-probability heatmap per class (the tumour-like class visible);
* saliency maps (multiscale, lazy from ``heatmaps.zarr``);
* predicted regions from ``annotations.geojson`` (Shapes);
* the tiles (Points whose ``features`` hold the tiles table).

napari imports this module to build its reader list, so nothing heavy is
imported at module level.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari_xai._notify import warn
from napari_xai._reader import single_path

if TYPE_CHECKING:
    from collections.abc import Callable

    from napari_xai.core.results import Result

    LayerDataTuple = tuple[Any, dict[str, Any], str]
    PathOrPaths = str | list[str]

MANIFEST = "manifest.json"


def _result_folder(path: Any) -> Path | None:
    p = single_path(path)
    if p is None:
        return None
    if p.is_dir() and (p / MANIFEST).is_file():
        return p
    if p.name.endswith(MANIFEST) and p.is_file():
        return p.parent
    return None


def napari_get_results_reader(path: PathOrPaths) -> Callable[[PathOrPaths], list[Any]] | None:
    """Return :func:`read_result_folder` for a result folder or its manifest; never raises."""
    try:
        folder = _result_folder(path)
        if folder is None:
            return None
        import json

        body = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        if isinstance(body, dict) and body.get("format") == "napari-xai-result":
            return read_result_folder
    except Exception:  # the probe must never raise
        return None
    return None


def read_result_folder(path: PathOrPaths) -> list[LayerDataTuple]:
    """Read a result folder into aligned layers (see the module docstring).

    Raises
    ------
    FileNotFoundError, ValueError
        When the folder has no complete napari-xai result (the message names it).
    """
    from napari_xai._widgets._style import watch_current_viewer
    from napari_xai.core.results import load_result

    folder = _result_folder(path)
    if folder is None:
        raise FileNotFoundError(f"{path}: not a result folder (no {MANIFEST})")
    layers = result_layers(load_result(folder))
    watch_current_viewer()  # colour bars on the maps once napari has made the layers
    return layers


def result_layers(result: Result, *, with_slide: bool = True) -> list[LayerDataTuple]:
    """:func:`napari_xai.core.layers.results.result_layers`, problems shown in napari.

    Predicted regions get the µm/px of the slide open in the viewer (morphology in µm).
    """
    from napari_xai._annotations_io import _open_slide_mpp
    from napari_xai.core.layers import results

    return results.result_layers(
        result, with_slide=with_slide, annotations_mpp=_open_slide_mpp(), warn=warn
    )
