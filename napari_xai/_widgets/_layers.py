"""The plugin's one layer-naming policy: show a LayerData tuple by updating or adding."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from napari_xai._widgets._layout import show_colorbar

if TYPE_CHECKING:
    import napari.layers
    import napari.viewer

LayerData = tuple[Any, dict[str, Any], str]


def upsert(
    viewer: napari.viewer.Viewer,
    ldt: LayerData | napari.layers.Layer,
    limits_set: dict[str, tuple[float, ...]],
    *,
    colorbar: bool = True,
) -> Any:
    """Show a LayerData tuple in ``viewer``: update the layer of that name, else add one.

    A layer with the same name and kind is updated in place (data, placement,
    metadata; contrast limits unless the user changed them), so the user's
    display choices (colormap, opacity, visibility) survive re-runs and live
    refreshes. A layer of another kind with the name is replaced at the same
    place in the list. Otherwise the layer is added. Scalar images get their
    colour bar. ``ldt`` may also be a layer built in a worker (shapes and points
    are triangulated and indexed there, off the GUI thread): it replaces or joins
    the layers by name or, equal to the one shown (kind, data, features), leaves
    that one in place with the new metadata (napari runs a full garbage
    collection on every layer removal).

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        Where the layer is shown.
    ldt : (data, kwargs, layer_type) or napari.layers.Layer
        The layer.
    limits_set : dict
        Contrast limits last set per layer name (updated here): limits that
        differ from them were set by the user and are kept.
    colorbar : bool
        Show a new scalar image's colour bar; False leaves it to the caller
        (its first draw is most of the cost of adding a map).

    Returns
    -------
    napari.layers.Layer
    """
    from napari.layers import Image, Layer

    built = ldt if isinstance(ldt, Layer) else None
    data, kwargs, layer_type = ldt if built is None else (None, {"name": built.name}, "")
    name = kwargs["name"]
    if name in viewer.layers:
        old = viewer.layers[name]
        multiscale = kwargs.get("multiscale", isinstance(data, list))
        if layer_type == "image" and isinstance(old, Image) and old.multiscale == multiscale:
            return _update_image(old, data, kwargs, limits_set)
        if built is not None and _same_content(old, built):
            old.metadata = {**built.metadata}
            return old
    new = Layer.create(data, kwargs, layer_type) if built is None else built
    new = show_colorbar(new) if colorbar else new
    if name in viewer.layers:
        old = viewer.layers[name]
        index = viewer.layers.index(old)
        viewer.layers.remove(old)
        viewer.layers.insert(index, new)
    else:
        viewer.add_layer(new)
    limits_set[name] = _limits(new)
    return new


def _update_image(
    layer: Any, data: Any, kwargs: dict[str, Any], limits_set: dict[str, tuple[float, ...]]
) -> Any:
    import numpy as np

    auto = limits_set.get(layer.name)
    user_set = auto is not None and _limits(layer) != auto
    # set only what changed: every change is an event napari's layer list redraws
    for key in ("scale", "translate"):
        if key in kwargs and not np.allclose(getattr(layer, key), kwargs[key]):
            setattr(layer, key, kwargs[key])
    layer.data = data
    metadata = kwargs.get("metadata", {})
    try:
        same = bool(metadata == layer.metadata)
    except ValueError:  # arrays inside: compare by setting
        same = False
    if not same:
        layer.metadata = {**metadata}
    limits = kwargs.get("contrast_limits")
    if limits is not None and not user_set and _limits(layer) != tuple(map(float, limits)):
        layer.contrast_limits = limits
    limits_set[layer.name] = _limits(layer)
    return layer


def _same_content(old: Any, new: Any) -> bool:
    """Whether two layers are of one kind with equal data and features (a re-run's tiles)."""
    import numpy as np

    if not isinstance(old, type(new)):  # (napari hands plugins proxies of its layers)
        return False
    a, b = old.data, new.data
    a, b = (a, b) if isinstance(a, list) and isinstance(b, list) else ([a], [b])
    if len(a) != len(b) or not all(np.array_equal(x, y) for x, y in zip(a, b, strict=True)):
        return False
    features = getattr(old, "features", None)
    return features is None or bool(features.equals(new.features))


def _limits(layer: Any) -> tuple[float, ...]:
    return tuple(float(v) for v in getattr(layer, "contrast_limits", ()))
