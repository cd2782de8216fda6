"""The annotation widget.

:class:`AnnotationWidget` picks the class (name and colour) of new shapes,
converts Shapes polygons to a Labels mask and back, measures morphology into
the layer's features table (and shows the drawn or selected shape's area,
perimeter, circularity and solidity as soon as it is drawn or edited) and
loads/saves QuPath GeoJSON (with the morphology as measurements). The
evaluation widget is in :mod:`napari_xai._widgets.evaluate`.

Widgets only wire controls to core functions in
:mod:`napari_xai.core.annotations`; heavy imports happen inside methods.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from magicgui.widgets import (
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    PushButton,
)

from napari_xai._widgets._layout import ScrollPanel, fit_panel

if TYPE_CHECKING:
    import napari
    import napari.layers
    import napari.viewer

ANNOTATION_LAYER = "annotations"


F = TypeVar("F", bound=Callable[..., Any])


def _guarded(method: F) -> F:
    """Show an action's exception as a napari error notification instead of raising."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as e:  # a widget never crashes napari
            from napari.utils.notifications import show_error

            show_error(f"{type(e).__name__}: {e}")
            return None

    return wrapper  # type: ignore[return-value]


def _class_names() -> list[str]:
    from napari_xai.core.annotations.classes import DEFAULT_CLASSES

    return [c.name for c in DEFAULT_CLASSES]


def _slide_layer(viewer: napari.Viewer) -> napari.layers.Image | None:
    """Return the whole-slide image layer (largest image), for its size and mpp."""
    from napari.layers import Image

    images = [layer for layer in viewer.layers if isinstance(layer, Image)]
    slides = [layer for layer in images if "shape_rc" in layer.metadata]  # napari-xai reader
    if slides:
        return slides[0]
    rgb = [layer for layer in images if layer.rgb]
    if not rgb:
        return None
    return max(rgb, key=lambda layer: float(layer.extent.world[1][-1]))


def _slide_shape_rc(viewer: napari.Viewer) -> tuple[int, int] | None:
    layer = _slide_layer(viewer)
    if layer is None:
        return None
    if "shape_rc" in layer.metadata:
        rows, cols = layer.metadata["shape_rc"]
        return (int(rows), int(cols))
    data = layer.data[0] if layer.multiscale else layer.data
    shape = data.shape[:2] if layer.rgb else data.shape[-2:]
    scale = layer.scale[-2:]
    return (int(round(shape[0] * scale[0])), int(round(shape[1] * scale[1])))


def _slide_mpp(viewer: napari.Viewer) -> float | None:
    layer = _slide_layer(viewer)
    if layer is None:
        return None
    mpp = layer.metadata.get("mpp")
    if mpp is None and "info" in layer.metadata:
        mpp = getattr(layer.metadata["info"], "mpp", None)
    return float(mpp) if mpp else None


class AnnotationWidget(ScrollPanel, Container):
    """Annotate regions by class, convert polygons ⇄ masks, measure, load/save GeoJSON.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer whose layers are annotated.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True, scrollable=True)
        self._viewer = viewer
        self._class = ComboBox(label="Class", choices=_class_names(), value="Tumor")
        self._swatch = Label(label="Colour")
        self._new_layer = PushButton(text="New annotation layer")
        self._new_mask = PushButton(text="New mask to paint")
        self._apply = PushButton(text="Set class of selected shapes")
        self._shapes = ComboBox(label="Shapes", choices=self._shapes_choices, nullable=True)
        self._labels = ComboBox(label="Labels", choices=self._labels_choices, nullable=True)
        self._downsample = FloatSpinBox(label="Mask downsample", value=4.0, min=1.0, max=256.0)
        self._to_labels = PushButton(text="Shapes → Labels")
        self._to_shapes = PushButton(text="Labels → Shapes")
        self._measure = PushButton(text="Measure morphology")
        # the drawn (or selected) shape's morphology, shown as soon as it is drawn or edited
        self._morphology = Label(label="Shape", value="draw a shape to see its area")
        self._path = FileEdit(label="GeoJSON", mode="w", filter="*.geojson")
        self._save = PushButton(text="Save GeoJSON")
        self._load = PushButton(text="Load GeoJSON")
        self._status = Label(label="")
        self.extend(
            [
                self._class,
                self._swatch,
                self._new_layer,
                self._new_mask,
                self._apply,
                self._shapes,
                self._labels,
                self._downsample,
                self._to_labels,
                self._to_shapes,
                self._measure,
                self._morphology,
                self._path,
                self._save,
                self._load,
                self._status,
            ]
        )
        fit_panel(self)
        self._class.changed.connect(self._on_class_changed)
        self._new_layer.changed.connect(self._on_new_layer)
        self._new_mask.changed.connect(self._on_new_mask)
        self._apply.changed.connect(self._on_apply_class)
        self._to_labels.changed.connect(self._on_to_labels)
        self._to_shapes.changed.connect(self._on_to_shapes)
        self._measure.changed.connect(self._on_measure)
        self._save.changed.connect(self._on_save)
        self._load.changed.connect(self._on_load)
        viewer.layers.events.inserted.connect(self._refresh)
        viewer.layers.events.removed.connect(self._refresh)
        self._shapes.changed.connect(self._follow_shapes)
        self._worker: Any = None
        self._followed: set[int] = set()
        self._on_class_changed()

    # ------------------------------------------------------------------ helpers
    def _shapes_choices(self, _w: Any = None) -> list[Any]:
        from napari.layers import Shapes

        return [layer for layer in self._viewer.layers if isinstance(layer, Shapes)]

    def _labels_choices(self, _w: Any = None) -> list[Any]:
        from napari.layers import Labels

        return [layer for layer in self._viewer.layers if isinstance(layer, Labels)]

    def _refresh(self, _event: Any = None) -> None:
        self._shapes.reset_choices()
        self._labels.reset_choices()

    def _current_class(self) -> tuple[str, tuple[int, int, int]]:
        from napari_xai.core.annotations.classes import fallback_color, find_class

        name = str(self._class.value)
        cls = find_class(name)
        return name, (cls.color if cls is not None else fallback_color(name))

    def _report(self, message: str, *, error: bool = False) -> None:
        from napari.utils.notifications import show_error, show_info

        self._status.value = message if len(message) < 120 else message[:117] + "..."
        (show_error if error else show_info)(message)

    # ------------------------------------------------------------------ actions
    def _on_class_changed(self, _value: Any = None) -> None:
        """Make the chosen class the one new shapes (and painted labels) get."""
        name, rgb = self._current_class()
        hexcolor = "#{:02x}{:02x}{:02x}".format(*rgb)
        self._swatch.value = f"{hexcolor}"
        self._swatch.native.setStyleSheet(f"background-color: {hexcolor}; color: white;")
        layer = self._shapes.value
        if layer is not None:
            self._style_new_shapes(layer, name, rgb)
        labels = self._labels.value
        if labels is not None:
            values = _class_names()
            if name in values:
                labels.selected_label = values.index(name) + 1

    def _style_new_shapes(
        self, layer: napari.layers.Shapes, name: str, rgb: tuple[int, int, int]
    ) -> None:
        from napari_xai.core.annotations.layers import FACE_ALPHA

        defaults = {"class": name, "color": "#{:02x}{:02x}{:02x}".format(*rgb)}
        if "class" in layer.features.columns:
            categories = layer.features["class"]
            if hasattr(categories, "cat") and name not in categories.cat.categories:
                layer.features["class"] = categories.cat.add_categories([name])
            current = layer.feature_defaults
            old = current.iloc[0].to_dict() if len(current) else {}
            layer.feature_defaults = {**old, **defaults}
        r, g, b = (c / 255 for c in rgb)
        layer.current_face_color = (r, g, b, FACE_ALPHA)
        layer.current_edge_color = (r, g, b, 1.0)

    @_guarded
    def _on_new_layer(self, _value: Any = None) -> napari.layers.Shapes:
        """Add an empty annotation Shapes layer (level-0 coordinates) in polygon mode."""
        import numpy as np
        import pandas as pd  # noqa: TID253

        from napari_xai.core.annotations.morphology import MORPHOLOGY_COLUMNS

        name, rgb = self._current_class()
        features = pd.DataFrame(
            {
                "class": pd.Categorical([], categories=_class_names()),
                "color": pd.Series([], dtype=object),
                "object_type": pd.Series([], dtype=object),
                "name": pd.Series([], dtype=object),
                "object_id": pd.Series([], dtype=object),
                **{c: pd.Series([], dtype=np.float64) for c in MORPHOLOGY_COLUMNS},
                "qupath_properties": pd.Series([], dtype=object),
            }
        )
        shape = _slide_shape_rc(self._viewer) or (1000, 1000)
        layer = self._viewer.add_shapes(
            ndim=2,
            name=ANNOTATION_LAYER,
            features=features,
            edge_width=max(1.0, max(shape) / 800),
            metadata={"mpp": _slide_mpp(self._viewer)},
        )
        layer.feature_defaults = {
            "class": name,
            "color": "#{:02x}{:02x}{:02x}".format(*rgb),
            "object_type": "annotation",
            "name": "",
            "object_id": "",
            "qupath_properties": "",
            **{c: np.nan for c in MORPHOLOGY_COLUMNS},
        }
        self._refresh()
        self._shapes.value = layer
        self._style_new_shapes(layer, name, rgb)
        layer.mode = "add_polygon"
        self._follow_shapes(layer)
        return layer

    def _follow_shapes(self, layer: Any) -> None:
        """Measure a Shapes layer whenever its shapes are drawn or edited, and on selection."""
        if layer is None or id(layer) in self._followed:
            return
        self._followed.add(id(layer))
        layer.events.data.connect(lambda event: self._on_data_changed(layer, event))
        layer.events.highlight.connect(lambda _event: self._show_morphology(layer))

    def _show_morphology(self, layer: Any) -> None:
        """Show the selected (else the last) shape's area, perimeter, circularity, solidity."""
        from napari_xai.core.annotations.morphology import describe_morphology

        features = layer.features
        if len(features) == 0 or "area_px" not in features.columns:
            return
        selected = sorted(i for i in layer.selected_data if i < len(features))
        i = selected[-1] if selected else len(features) - 1
        try:
            text = describe_morphology(features.iloc[i])
        except (KeyError, TypeError, ValueError):
            return
        self._morphology.value = f"#{i + 1}: {text}"

    def _on_data_changed(self, layer: napari.layers.Shapes, event: Any) -> None:
        """Keep the morphology of a drawn layer up to date as shapes are added or edited."""
        from napari_xai.core.annotations.layers import MAX_SHAPES

        if getattr(event, "action", "added") not in ("added", "changed", "removed"):
            return
        if 0 < len(layer.data) <= MAX_SHAPES:
            try:
                self._measure_shapes(layer, quiet=True)
            except Exception as e:  # never break drawing
                self._status.value = f"morphology not updated: {e}"

    @_guarded
    def _on_apply_class(self, _value: Any = None) -> None:
        """Give the selected shapes the chosen class and its colour."""
        from napari_xai.core.annotations.layers import FACE_ALPHA

        layer = self._shapes.value
        if layer is None or not layer.selected_data:
            self._report("Select shapes first (select tool in a Shapes layer).", error=True)
            return
        name, rgb = self._current_class()
        idx = sorted(layer.selected_data)
        if "class" in layer.features.columns:
            if hasattr(layer.features["class"], "cat"):
                if name not in layer.features["class"].cat.categories:
                    layer.features["class"] = layer.features["class"].cat.add_categories([name])
            layer.features.loc[idx, "class"] = name
            layer.features.loc[idx, "color"] = "#{:02x}{:02x}{:02x}".format(*rgb)
        faces = layer.face_color.copy()
        edges = layer.edge_color.copy()
        faces[idx] = [c / 255 for c in rgb] + [FACE_ALPHA]
        edges[idx] = [c / 255 for c in rgb] + [1.0]
        layer.face_color = faces
        layer.edge_color = edges
        self._report(f"{len(idx)} shapes set to {name}.")

    def _annotations_of(self, layer: napari.layers.Shapes, *, morphology: bool = False) -> Any:
        from napari_xai.core.annotations.layers import shapes_to_annotations

        annotations, report = shapes_to_annotations(
            layer.data,
            shape_types=layer.shape_type,
            features=layer.features,
            face_colors=layer.face_color,
            default_class=str(self._class.value),
            morphology=morphology,
        )
        if report.skipped:
            self._report(report.summary())
        return annotations

    def _mask_kwargs(
        self, names: list[str | None], d: float, *, mpp: float | None = None
    ) -> dict[str, Any]:
        """Labels layer options: placement at downsample d, class colours, class table."""
        from napari.utils.colormaps import DirectLabelColormap

        from napari_xai.core.annotations.classes import class_color_map

        values = {n: i + 1 for i, n in enumerate(names)}
        colors = class_color_map(names)
        color_dict: dict[int | None, Any] = {
            values[n]: [c / 255 for c in colors[n]] + [1.0] for n in names
        }
        color_dict[0] = [0, 0, 0, 0]
        color_dict[None] = [0, 0, 0, 0]
        return {
            "scale": (d, d),
            "translate": ((d - 1) / 2, (d - 1) / 2),
            "metadata": {
                "classes": {v: n for n, v in values.items()},
                "downsample": d,
                "mpp": mpp or _slide_mpp(self._viewer),
            },
            "colormap": DirectLabelColormap(color_dict=color_dict),
            "opacity": 0.5,
        }

    @_guarded
    def _on_new_mask(self, _value: Any = None) -> napari.layers.Labels:
        """Add an empty mask to paint classes on (label value = class, QuPath order)."""
        import math

        import numpy as np

        shape = _slide_shape_rc(self._viewer) or (1000, 1000)
        # At most 16,384 px a side (a 100,000 px slide gets a coarser mask).
        d = max(float(self._downsample.value), math.ceil(max(shape) / 16384))
        names: list[str | None] = [*_class_names(), None]
        mask = np.zeros((math.ceil(shape[0] / d), math.ceil(shape[1] / d)), dtype=np.uint8)
        name = "annotation mask"
        if name in self._viewer.layers:
            self._viewer.layers.remove(name)
        labels = self._viewer.add_labels(mask, name=name, **self._mask_kwargs(names, d))
        self._refresh()
        self._labels.value = labels
        self._shapes.value = None
        labels.mode = "paint"
        self._on_class_changed()
        return labels

    @_guarded
    def _on_to_labels(self, _value: Any = None) -> napari.layers.Labels | None:
        """Paint the Shapes layer into a Labels mask (value = class, QuPath order)."""
        from napari_xai.core.annotations.layers import rasterize_annotations

        layer = self._shapes.value
        if layer is None:
            self._report("Choose a Shapes layer.", error=True)
            return None
        annotations = self._annotations_of(layer)
        names: list[str | None] = list(_class_names())
        names += sorted({a.class_name for a in annotations} - set(names) - {None})
        names.append(None)  # unclassified
        values = {n: i + 1 for i, n in enumerate(names)}
        extent = layer.extent.world[1][-2:]
        shape_rc = _slide_shape_rc(self._viewer) or (int(extent[0]) + 1, int(extent[1]) + 1)
        d = float(self._downsample.value)
        mask = rasterize_annotations(annotations, shape_rc=shape_rc, downsample=d, values=values)
        name = f"{layer.name} mask"
        kwargs = self._mask_kwargs(names, d, mpp=layer.metadata.get("mpp"))
        if name in self._viewer.layers:
            self._viewer.layers.remove(name)
        labels = self._viewer.add_labels(mask, name=name, **kwargs)
        self._refresh()
        self._labels.value = labels
        self._report(f"{len(annotations)} shapes painted into '{name}' at downsample {d:g}.")
        return labels

    @_guarded
    def _on_to_shapes(self, _value: Any = None) -> napari.layers.Shapes | None:
        """Trace the Labels mask into polygons (holes kept) in a Shapes layer."""
        import shapely

        from napari_xai.core.annotations.geojson import Annotation
        from napari_xai.core.annotations.layers import (
            annotations_to_layer_data,
            labels_to_annotations,
        )

        labels = self._labels.value
        if labels is None:
            self._report("Choose a Labels layer.", error=True)
            return None
        d = float(labels.scale[-1])
        classes = labels.metadata.get("classes") or {
            i + 1: n for i, n in enumerate(_class_names())
        }
        classes = {int(k): v for k, v in classes.items() if v is not None}
        annotations = labels_to_annotations(
            labels.data, downsample=d, class_names=classes, simplify=0.0
        )
        # Honour a translate other than the contract's (d - 1) / 2.
        offset = labels.translate[-2:] - (d - 1) / 2
        if abs(offset).max() > 0:
            annotations = [
                Annotation(
                    shapely.transform(a.geometry, lambda c: c + [offset[1], offset[0]]),
                    a.class_name,
                )
                for a in annotations
            ]
        mpp = labels.metadata.get("mpp") or _slide_mpp(self._viewer)
        name = labels.name[: -len(" mask")] if labels.name.endswith(" mask") else labels.name
        name = f"{name} traced"
        ldts = annotations_to_layer_data(annotations, name=name, mpp=mpp)
        if not ldts:
            self._report("The mask is empty.", error=True)
            return None
        data, kwargs, _ = ldts[0]
        if name in self._viewer.layers:
            self._viewer.layers.remove(name)
        layer = self._viewer.add_shapes(data, **kwargs)
        self._refresh()
        self._shapes.value = layer
        self._report(f"{len(data)} regions traced into '{name}'.")
        return layer

    @_guarded
    def _on_measure(self, _value: Any = None) -> None:
        """Compute morphology into the features table of the chosen Shapes (or Labels)."""
        from napari_xai.core.annotations.morphology import measure_labels

        layer = self._shapes.value
        mpp = _slide_mpp(self._viewer)
        if layer is not None:
            self._measure_shapes(layer)
            return
        labels = self._labels.value
        if labels is None:
            self._report("Choose a Shapes or Labels layer.", error=True)
            return
        table = measure_labels(
            labels.data,
            mpp=labels.metadata.get("mpp") or mpp,
            downsample=float(labels.scale[-1]),
        )
        labels.features = table.reset_index().rename(columns={"label": "index"})
        self._report(f"Measured {len(table)} labels in '{labels.name}'.")

    def _measure_shapes(self, layer: napari.layers.Shapes, *, quiet: bool = False) -> None:
        from napari_xai.core.annotations.layers import annotations_features

        annotations = self._annotations_of(layer)
        if len(annotations) != len(layer.data):
            if not quiet:
                self._report("Some shapes have no area (lines); not measured.", error=True)
            return
        mpp = layer.metadata.get("mpp") or _slide_mpp(self._viewer)
        defaults = dict(layer.feature_defaults.iloc[0]) if len(layer.feature_defaults) else {}
        layer.features = annotations_features(annotations, mpp=mpp)
        if defaults:
            layer.feature_defaults = {
                **{k: v for k, v in defaults.items() if k in layer.features.columns},
            }
        self._show_morphology(layer)
        if not quiet:
            self._report(f"Measured {len(annotations)} shapes in '{layer.name}'.")

    @_guarded
    def _on_save(self, _value: Any = None) -> None:
        """Write the chosen Shapes layer as QuPath GeoJSON."""
        from napari_xai.core.annotations.geojson import write_geojson

        layer = self._shapes.value
        path = Path(str(self._path.value))
        if layer is None or not str(self._path.value) or path.is_dir():
            self._report("Choose a Shapes layer and a .geojson file.", error=True)
            return
        if path.suffix.lower() != ".geojson":
            path = path.with_name(path.name + ".geojson")
        try:
            write_geojson(self._annotations_of(layer, morphology=True), path)
        except OSError as e:
            self._report(f"{path}: cannot write ({e})", error=True)
            return
        self._report(f"Saved {len(layer.data)} shapes to {path}.")

    @_guarded
    def _on_load(self, _value: Any = None, *, start: bool = True) -> Any:
        """Read a GeoJSON file in a worker thread and add its layers."""
        from napari.qt.threading import thread_worker

        from napari_xai.core.annotations.geojson import read_geojson

        path = Path(str(self._path.value))
        if not path.is_file():
            self._report(f"{path}: file not found", error=True)
            return None
        shape_rc = _slide_shape_rc(self._viewer)
        mpp = _slide_mpp(self._viewer)

        def load() -> tuple[Any, list[Any]]:
            from napari_xai.core.annotations.layers import annotations_to_layer_data

            aset = read_geojson(path, shape_rc=shape_rc)
            return aset, annotations_to_layer_data(aset, name=path.stem, mpp=mpp, source=str(path))

        worker = thread_worker(load, ignore_errors=True)()
        worker.returned.connect(self._on_loaded)
        worker.errored.connect(lambda e: self._report(str(e), error=True))
        self._worker = worker
        if start:  # tests start it themselves, inside qtbot.waitSignal
            worker.start()
        return worker

    @_guarded
    def _on_loaded(self, result: tuple[Any, list[Any]]) -> None:
        from napari.layers import Layer

        aset, ldts = result
        for ldt in ldts:
            name = ldt[1]["name"]
            if name in self._viewer.layers:
                self._viewer.layers.remove(name)
            self._viewer.add_layer(Layer.create(*ldt))
        self._refresh()
        self._report(aset.report.summary(), error=not aset.report.clean)


def __getattr__(name: str) -> Any:
    """``EvaluationWidget`` lives in :mod:`napari_xai._widgets.evaluate` (old import path)."""
    if name == "EvaluationWidget":
        from napari_xai._widgets.evaluate import EvaluationWidget

        return EvaluationWidget
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
