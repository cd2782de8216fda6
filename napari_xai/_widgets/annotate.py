"""The annotation widget: class of new shapes, polygons ⇄ masks, morphology, GeoJSON.

Each action copies what it needs off the layer, runs one :mod:`napari_xai.core.layers.editing`
call in a worker and shows the result; morphology shows once drawn (:mod:`._morphology`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from magicgui.widgets import FloatSpinBox, Label, PushButton

from napari_xai._widgets._base import RunWidget, guarded
from napari_xai._widgets._class_picker import class_picker
from napari_xai._widgets._morphology import LiveMorphology
from napari_xai._widgets._pickers import (
    file_edit,
    layer_picker,
    path_of,
    slide_mpp,
    slide_shape_rc,
)
from napari_xai._widgets._shapes_style import apply_class, class_rgb, show_swatch, style_new_shapes
from napari_xai.core.annotations.classes import class_value

if TYPE_CHECKING:
    import napari.layers
    import napari.viewer

    from napari_xai.core.layers.editing import ShapesSnapshot

ANNOTATION_LAYER, MASK_LAYER = "annotations", "annotation mask"  # names of new layers


class AnnotationWidget(RunWidget):
    """Annotate regions by class; polygons ⇄ masks; morphology; GeoJSON in and out."""

    title = "Annotate"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer, slide=False, model=False, run_text="Measure morphology")
        self._class = class_picker(viewer, "Class")  # defaults, then the layers' classes
        self._swatch = Label(label="Colour")
        self._new_layer = PushButton(text="New annotation layer")
        self._new_mask = PushButton(text="New mask to paint")
        self._apply = PushButton(text="Set class of selected shapes")
        self._shapes = layer_picker(viewer, "Shapes", "Shapes")
        self._mask = layer_picker(viewer, "Labels", "Labels")
        self._downsample = FloatSpinBox(label="Mask downsample", value=4.0, min=1.0, max=256.0)
        self._to_labels = PushButton(text="Shapes → Labels")
        self._to_shapes = PushButton(text="Labels → Shapes")
        # the drawn (or selected) shape's morphology, shown as soon as it is drawn or edited
        self._morphology = Label(label="Shape", value="draw a shape to see its area")
        self._live = LiveMorphology(self._morphology, self._snapshot, self._status)
        self._path = file_edit(label="GeoJSON", mode="w", filter="*.geojson")
        self._save_geojson = PushButton(text="Save GeoJSON")
        self._load_button = PushButton(text="Load GeoJSON")
        self.finish(
            [self._class, self._swatch, self._new_layer, self._new_mask, self._apply,
             self._shapes, self._mask, self._downsample, self._to_labels, self._to_shapes,
             self._run, self._morphology, self._path, self._save_geojson, self._load_button,
             self._progress, self._status],
            busy=[self._to_labels, self._to_shapes, self._save_geojson, self._load_button],
        )  # fmt: skip
        handlers: dict[Any, Any] = {
            self._class: self._on_class_changed, self._new_layer: self._on_new_layer,
            self._new_mask: self._on_new_mask, self._apply: self._on_apply_class,
            self._to_labels: self._on_to_labels, self._to_shapes: self._on_to_shapes,
            self._save_geojson: self._on_save, self._load_button: self._on_load,
        }  # fmt: skip
        for control, handler in handlers.items():
            control.changed.connect(handler)
        self.refresh_on_layer_change(self._shapes, self._mask)
        self._shapes.changed.connect(self._live.follow)
        self._on_class_changed()

    # ------------------------------------------------------------------ helpers
    def _snapshot(self, layer: napari.layers.Shapes) -> ShapesSnapshot:
        from napari_xai.core.layers.editing import ShapesSnapshot

        mpp = slide_mpp(self._viewer)
        return ShapesSnapshot.of(layer, default_class=str(self._class.value), mpp=mpp)

    def _chosen(self, picker: Any, what: str) -> Any:
        """Return the picker's layer, else ``None`` after saying why (none chosen, busy)."""
        if picker.value is None:
            self.error(f"Choose a {what} layer.")
            return None
        return None if self.busy() else picker.value

    def _shown_in(self, picker: Any, message: Callable[[Any], str]) -> Callable[[Any], None]:
        """Make a handler of a worker's LayerData: show it, pick it, say ``message(layer)``."""

        def show(ldt: Any) -> None:
            picker.value = layer = self.upsert(ldt)
            self.info(message(layer))

        return show

    # ------------------------------------------------------------------ drawing
    def _on_class_changed(self, _value: Any = None) -> None:
        """Make the chosen class the one new shapes (and painted labels) get."""
        name = str(self._class.value)
        show_swatch(self._swatch, rgb := class_rgb(name))
        if self._shapes.value is not None:
            style_new_shapes(self._shapes.value, name, rgb)
        if self._mask.value is not None and (value := class_value(name)) is not None:
            self._mask.value.selected_label = value

    @guarded
    def _on_new_layer(self, _value: Any = None) -> napari.layers.Shapes:
        """Add an empty annotation Shapes layer (level-0 coordinates) in polygon mode."""
        from napari.layers import Layer

        from napari_xai.core.layers.editing import new_shapes_layer

        name, shape_rc = str(self._class.value), slide_shape_rc(self._viewer)
        ldt = new_shapes_layer(name, class_rgb(name), name=ANNOTATION_LAYER, shape_rc=shape_rc,
                               mpp=slide_mpp(self._viewer))  # fmt: skip
        layer = self._viewer.add_layer(Layer.create(*ldt))  # never replaces the user's layer
        self._shapes.value = layer  # the morphology follows it (self._live.follow)
        style_new_shapes(layer, name, class_rgb(name))
        layer.mode = "add_polygon"
        return layer

    @guarded
    def _on_new_mask(self, _value: Any = None) -> napari.layers.Labels:
        """Add an empty mask to paint classes on (label value = class, QuPath order)."""
        from napari_xai.core.layers.editing import empty_mask

        shape = slide_shape_rc(self._viewer) or (1000, 1000)
        d = float(self._downsample.value)
        labels = self.upsert(empty_mask(shape, downsample=d, name=MASK_LAYER,
                                        mpp=slide_mpp(self._viewer)))  # fmt: skip
        self._mask.value, self._shapes.value = labels, None
        labels.mode = "paint"
        self._on_class_changed()
        return labels

    @guarded
    def _on_apply_class(self, _value: Any = None) -> None:
        """Give the selected shapes the chosen class and its colour."""
        layer, name = self._shapes.value, str(self._class.value)
        if layer is None or not layer.selected_data:
            self.error("Select shapes first (select tool in a Shapes layer).")
            return
        n = apply_class(layer, sorted(layer.selected_data), name, class_rgb(name))
        self.info(f"{n} shapes set to {name}.")

    # ----------------------------------------------------------------- workers
    @guarded
    def _on_run(self, _value: Any = None) -> Any:
        """Measure morphology into the features of the chosen Shapes (or Labels) layer."""
        from napari_xai.core.layers import editing

        layer, labels = self._shapes.value, self._mask.value
        if layer is None and labels is None:
            self.error("Choose a Shapes or Labels layer.")
        if self.busy() or (layer is None and labels is None):
            return None
        if layer is not None:
            done = lambda table: self._measured(layer, table)  # noqa: E731
            return self.launch(editing.measure_shapes, self._snapshot(layer),
                               status="measuring…", on_returned=done)  # fmt: skip
        mpp = labels.metadata.get("mpp") or slide_mpp(self._viewer)
        return self.launch(editing.measure_mask, labels.data, downsample=float(labels.scale[-1]),
                           mpp=mpp, status="measuring…",
                           on_returned=lambda t: self._measured(labels, t))  # fmt: skip

    def _measured(self, layer: Any, table: Any) -> None:
        shapes = layer is not self._mask.value
        if not shapes:
            layer.features = table
        elif not self._live.apply(layer, table):
            self.error("Some shapes have no area (lines); not measured.")
            return
        self.info(f"Measured {len(table)} {'shapes' if shapes else 'labels'} in '{layer.name}'.")

    @guarded
    def _on_to_labels(self, _value: Any = None) -> Any:
        """Paint the Shapes layer into a Labels mask (value = class, QuPath order)."""
        from napari_xai.core.layers.editing import shapes_to_mask

        if (layer := self._chosen(self._shapes, "Shapes")) is None:
            return None
        extent = layer.extent.world[1][-2:]
        shape_rc = slide_shape_rc(self._viewer) or (int(extent[0]) + 1, int(extent[1]) + 1)
        d, n = float(self._downsample.value), len(layer.data)
        show = self._shown_in(self._mask, lambda m: f"{n} shapes painted into '{m.name}' "
                                                    f"at downsample {d:g}.")  # fmt: skip
        return self.launch(shapes_to_mask, self._snapshot(layer), shape_rc=shape_rc,
                           downsample=d, name=f"{layer.name} mask", status="painting…",
                           on_returned=show)  # fmt: skip

    @guarded
    def _on_to_shapes(self, _value: Any = None) -> Any:
        """Trace the Labels mask into polygons (holes kept) in a Shapes layer."""
        from napari_xai.core.layers.editing import trace_mask

        if (labels := self._chosen(self._mask, "Labels")) is None:
            return None
        base = labels.name.removesuffix(" mask")
        show = self._shown_in(self._shapes, lambda s: f"{len(s.data)} regions traced into "
                                                      f"'{s.name}'.")  # fmt: skip

        def done(ldts: list[Any]) -> None:
            show(ldts[0]) if ldts else self.error("The mask is empty.")  # noqa: B018

        mpp = labels.metadata.get("mpp") or slide_mpp(self._viewer)
        return self.launch(trace_mask, labels.data, downsample=float(labels.scale[-1]),
                           translate=tuple(labels.translate), name=f"{base} traced",
                           classes=labels.metadata.get("classes"), mpp=mpp,
                           status="tracing…", on_returned=done)  # fmt: skip

    @guarded
    def _on_save(self, _value: Any = None) -> Any:
        """Write the chosen Shapes layer as QuPath GeoJSON."""
        from napari_xai.core.layers.editing import save_shapes

        path = path_of(self._path)
        if not str(self._path.value) or path.is_dir():
            self.error("Choose a .geojson file.")
            return None
        if (layer := self._chosen(self._shapes, "Shapes")) is None:
            return None
        n = len(layer.data)
        done = lambda out: self.info(f"Saved {n} shapes to {out}.")  # noqa: E731
        return self.launch(save_shapes, self._snapshot(layer), path, status="saving…",
                           on_returned=done)  # fmt: skip

    @guarded
    def _on_load(self, _value: Any = None) -> Any:
        """Read a GeoJSON file in a worker and add its layers."""
        from napari_xai.core.layers.editing import load_geojson

        if not (path := path_of(self._path)).is_file():
            self.error(f"{path}: file not found")
        elif not self.busy():
            return self.launch(load_geojson, path, shape_rc=slide_shape_rc(self._viewer),
                               mpp=slide_mpp(self._viewer), status="reading…",
                               on_returned=self._on_loaded)  # fmt: skip
        return None

    @guarded
    def _on_loaded(self, result: tuple[Any, list[Any]]) -> None:
        aset, ldts = result
        for ldt in ldts:
            self.upsert(ldt)
        (self.info if aset.report.clean else self.error)(aset.report.summary())
