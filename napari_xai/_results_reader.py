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

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from napari_xai.core.results import Result

    LayerDataTuple = tuple[Any, dict[str, Any], str]
    PathOrPaths = str | list[str]

MANIFEST = "manifest.json"
#: Maps larger than this (pixels per side) are shown as multiscale pyramids.
_MULTISCALE_ABOVE = 4096


def _result_folder(path: Any) -> Path | None:
    if isinstance(path, (list, tuple)):
        if len(path) != 1:
            return None
        path = path[0]
    p = Path(str(path))
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


def _warn(message: str) -> None:
    try:
        from napari.utils.notifications import show_warning

        show_warning(message)
    except Exception:  # pragma: no cover - outside napari
        warnings.warn(message, stacklevel=3)


def _map_data(result: Result, key: str) -> tuple[Any, bool]:
    """Lazy levels of a stored map: one array when small, a pyramid when large."""
    levels = result.heatmap_levels(key)
    if len(levels) > 1 and max(levels[0].shape) > _MULTISCALE_ABOVE:
        return levels, True
    return levels[0], False


def _probability_layers(result: Result, name: str) -> list[LayerDataTuple]:
    from napari_xai.core.layers import heatmap_layer
    from napari_xai.core.naming import class_colour, positive_class

    maps = [h for h in result.heatmaps if h.kind == "probabilities"]
    if not maps:
        return []
    names = [str(h.attrs.get("class_name", h.name)) for h in maps]
    order = list(result.class_names) or names
    focus = positive_class(order)
    stride0 = float(result.tiles.attrs.get("stride0", maps[0].scales[0][0]))
    tile0 = float(result.tiles.attrs.get("tile_size0", stride0))
    layers = []
    for info, cls in zip(maps, names, strict=True):
        data, _ = _map_data(result, info.key)
        index = order.index(cls) if cls in order else 0
        ldt = heatmap_layer(
            data.compute(),
            slide_name=name,
            class_name=cls,
            stride0=stride0,
            tile_size0=tile0,
            colour=class_colour(cls, index),
            visible=cls == focus,
            metadata={"result_folder": str(result.folder), "key": info.key},
        )
        # the stored transform is the truth (written by the scorer from the grid)
        ldt[1]["scale"] = info.scales[0]
        ldt[1]["translate"] = info.translates[0]
        layers.append(ldt)
    return layers


def _saliency_layers(result: Result, name: str) -> list[LayerDataTuple]:
    import numpy as np

    from napari_xai.core.naming import ATTRIBUTION_COLORMAP

    layers = []
    for info in (h for h in result.heatmaps if h.kind == "saliency"):
        data, multiscale = _map_data(result, info.key)
        method = str(info.attrs.get("method") or info.key.split("/")[1])
        cls = str(info.attrs.get("class_name") or info.key.split("/")[-1])
        coarse = np.asarray(result.heatmap_levels(info.key)[-1])
        finite = coarse[np.isfinite(coarse)]
        hi = float(np.percentile(finite, 99.5)) if finite.size else 1.0
        lo = float(min(0.0, finite.min())) if finite.size else 0.0
        if not hi > lo:
            hi = lo + 1.0
        layers.append(
            (
                data,
                {
                    "name": f"{name} saliency [{method}, {cls}]",
                    "scale": info.scales[0],
                    "translate": info.translates[0],
                    "colormap": ATTRIBUTION_COLORMAP,
                    "opacity": 0.6,
                    "blending": "translucent",
                    "contrast_limits": [lo, hi],
                    "multiscale": multiscale,
                    "visible": False,
                    "metadata": {
                        "napari_xai": "saliency",
                        "method": method,
                        "class_name": cls,
                        "result_folder": str(result.folder),
                        "key": info.key,
                    },
                },
                "image",
            )
        )
    return layers


def _annotation_layers(result: Result, name: str) -> list[LayerDataTuple]:
    path = result.folder / result.manifest.get("files", {}).get(
        "annotations", "annotations.geojson"
    )
    if result.annotations is None or not path.is_file():
        return []
    if not result.annotations.get("features"):
        return []
    try:
        from napari_xai._annotations_io import read_annotations

        layers = read_annotations(str(path), extra_classes=result.class_names)
    except ImportError:  # pragma: no cover - the annotations module is part of the package
        return []
    out = []
    for data, kwargs, kind in layers:
        kwargs = dict(kwargs)
        kwargs["name"] = (
            f"{name} predicted regions"
            if kind == "shapes"
            else (f"{name} predicted regions ({kind})")
        )
        kwargs.setdefault("opacity", 0.4)
        out.append((data, kwargs, kind))
    return out


def result_layers(result: Result, *, with_slide: bool = True) -> list[LayerDataTuple]:
    """LayerData tuples of a loaded result, slide first.

    Parameters
    ----------
    result : napari_xai.core.results.Result
        A result folder read by :func:`napari_xai.core.results.load_result`.
    with_slide : bool
        Also open the slide (skipped with a warning when it has moved).

    Returns
    -------
    list of LayerDataTuple
        Slide, probability heatmaps, saliency, predicted regions, ``ood_score``
        (when scored with features, hidden), tiles.
    """
    from napari_xai.core.layers import tiles_layer

    name = result.slide_id
    layers: list[LayerDataTuple] = []
    slide = result.slide_path
    if with_slide:
        if slide is not None and slide.is_file():
            from napari_xai._reader import read_slide

            layers += read_slide(str(slide))
        else:
            _warn(
                f"{result.folder}: the slide {slide} is not there any more; "
                "showing the results alone"
            )
    layers += _probability_layers(result, name)
    layers += _saliency_layers(result, name)
    layers += _annotation_layers(result, name)
    if "ood_score" in result.tiles:
        from napari_xai.core.layers.ood import ood_layer

        layers.append(ood_layer(result.tiles, slide_name=name))
    if len(result.tiles):
        ldt = tiles_layer(result.tiles, slide_name=name, class_names=result.class_names)
        ldt[1]["metadata"] = {**ldt[1].get("metadata", {}), "result_folder": str(result.folder)}
        layers.append(ldt)
    return layers
