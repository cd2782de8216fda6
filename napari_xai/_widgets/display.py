"""The display panel: which map is shown, how, and what its colours mean.

One dock for every napari-xai map in the viewer (class probabilities, saliency,
activations), after QuPath's measurement maps and TIAViz's overlay panel:

* **show**: the map (a class's probability, or a saliency method and class);
  with *only this map* the other maps of the same slide are hidden;
* **opacity** and **colormap** of that map (the palette's probability colormap,
  the class colour, or a perceptual colormap);
* a **legend** that stays in view: the colour bar drawn from the layer's own
  colormap and contrast limits, with its units (probability of the class, 0-1;
  attribution with its scale), and napari's canvas colour bar switched on;
* **per-class toggles**: one check box per class, in the class's palette colour,
  showing or hiding the tiles predicted as that class, its predicted regions and
  the annotations of that class (:mod:`napari_xai._widgets._classes`);
* **masks as outlines** (on by default) for tissue, artefact and truth masks.

The panel only sets layer properties; it computes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from magicgui.widgets import CheckBox, ComboBox, Container, FloatSlider, Label

from napari_xai._widgets._classes import show_classes
from napari_xai._widgets._colormaps import CLASS_COLOUR, COLORMAPS, colormap_choice, colormap_for
from napari_xai._widgets._layout import (
    PANEL_MIN_WIDTH,
    ScrollPanel,
    colorbar_rgb,
    compact_dropdowns,
    fit_panel,
    set_label_image,
)
from napari_xai._widgets._style import (
    OUTLINE_WIDTH,
    layer_info,
    layer_role,
    legend_title,
    watch_viewer,
)
from napari_xai.core.naming import class_colour, hex_colour, tiles_layer_name

if TYPE_CHECKING:
    import napari.layers
    import napari.viewer

__all__ = ["CLASS_COLOUR", "COLORMAPS", "DisplayPanel", "colorbar_rgb", "compact_dropdowns"]


class DisplayPanel(ScrollPanel, Container):
    """Show, colour and explain the napari-xai maps in the viewer.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer whose maps the panel drives (annotated as ``napari.viewer.Viewer``
        so napari passes it when the panel is docked from the Plugins menu).
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True, scrollable=True)
        self._viewer = viewer
        self._map = ComboBox(label="show", choices=self._map_choices, nullable=True)
        self._only = CheckBox(
            text="only this map", value=True, tooltip="hide the slide's other maps"
        )
        self._opacity = FloatSlider(
            label="opacity", value=0.6, min=0.0, max=1.0, step=0.05, readout=False
        )
        self._colormap = ComboBox(label="colormap", choices=list(COLORMAPS))
        self._legend_title = Label(value="")
        self._bar = Label(value="")
        self._ticks = Label(value="")
        self._classes: Any = Container(label="classes", layout="vertical", labels=False)
        self._outlines = CheckBox(text="masks as outlines", value=True)
        self._status = Label(value="")
        self.extend(
            [
                self._map,
                self._only,
                self._opacity,
                self._colormap,
                self._legend_title,
                self._bar,
                self._ticks,
                self._classes,
                self._outlines,
                self._status,
            ]
        )
        self._bound: Any = None  # the layer whose events drive the legend
        self._class_boxes: dict[str, CheckBox] = {}
        self._map.changed.connect(self._on_map)
        self._opacity.changed.connect(self._on_opacity)
        self._colormap.changed.connect(self._on_colormap)
        self._only.changed.connect(lambda _v: self._on_map(self._map.value))
        self._outlines.changed.connect(self._on_outlines)
        viewer.layers.events.inserted.connect(self._on_layers_changed)
        viewer.layers.events.removed.connect(self._on_layers_changed)
        watch_viewer(viewer)  # colour bars on maps and outlines on masks, now and later
        compact_dropdowns(self)
        fit_panel(self, max_min_width=PANEL_MIN_WIDTH)
        self._on_layers_changed()

    # -- choices -------------------------------------------------------------------
    def _maps(self) -> list[Any]:
        return [lyr for lyr in self._viewer.layers if layer_role(lyr) is not None]

    def _map_choices(self, _widget: Any = None) -> list[tuple[str, Any]]:
        """napari-xai maps: ``"<slide> prob [<class>]"``, saliency and activation layers."""
        return [(lyr.name, lyr) for lyr in self._maps()]

    def _on_layers_changed(self, _event: Any = None) -> None:
        self._map.reset_choices()
        if self._map.value is None:
            shown = [lyr for lyr in self._maps() if lyr.visible]
            if shown or self._maps():
                self._map.value = (shown or self._maps())[0]
        self._on_outlines(self._outlines.value)
        self._refresh()

    # -- the chosen map --------------------------------------------------------------
    @property
    def layer(self) -> napari.layers.Image | None:
        """The map the panel shows (None when the viewer has none)."""
        value = self._map.value
        return value if value is not None and value in self._viewer.layers else None

    def _siblings(self, layer: Any) -> list[Any]:
        """Return the maps of the same slide as ``layer`` (itself included)."""
        slide = layer_info(layer).get("slide")
        return [m for m in self._maps() if layer_info(m).get("slide") == slide]

    def _on_map(self, layer: Any) -> None:
        if layer is None or layer not in self._viewer.layers:
            self._refresh()
            return
        layer.visible = True
        if self._only.value:
            for other in self._siblings(layer):
                if other is not layer:
                    other.visible = False
        self._bind(layer)
        self._refresh()

    def _bind(self, layer: Any) -> None:
        """Follow the layer's colormap, limits and opacity (changed here or in napari)."""
        if self._bound is layer:
            return
        if self._bound is not None:
            for name in ("colormap", "contrast_limits", "opacity", "visible"):
                getattr(self._bound.events, name).disconnect(self._refresh)
        self._bound = layer
        for name in ("colormap", "contrast_limits", "opacity", "visible"):
            getattr(layer.events, name).connect(self._refresh)

    def _on_opacity(self, value: float) -> None:
        if self.layer is not None:
            self.layer.opacity = float(value)

    def _on_colormap(self, name: str) -> None:
        layer = self.layer
        if layer is None or name == colormap_choice(layer):
            return
        layer.colormap = colormap_for(layer, name)

    def _on_outlines(self, on: bool) -> None:
        from napari.layers import Labels

        for lyr in self._viewer.layers:
            if isinstance(lyr, Labels) and (lyr.metadata or {}).get("display") == "outline":
                lyr.contour = OUTLINE_WIDTH if on else 0

    # -- legend and class toggles ----------------------------------------------------
    def legend_text(self) -> str:
        """Return the legend's title: what the shown map's values are, with units."""
        layer = self.layer
        return legend_title(layer) if layer is not None else ""

    def _refresh(self, _event: Any = None) -> None:
        layer = self.layer
        if layer is None:
            self._legend_title.value = ""
            self._ticks.value = ""
            self._bar.native.clear()
            self._status.value = "no napari-xai map in the viewer (score or open a result)"
            self._set_classes([])
            return
        self._bind(layer)
        self._status.value = ""
        with self._opacity.changed.blocked():
            self._opacity.value = round(float(layer.opacity), 2)
        with self._colormap.changed.blocked():
            self._colormap.value = colormap_choice(layer)
        self._legend_title.value = self.legend_text()
        lo, hi = (float(v) for v in layer.contrast_limits)
        self._ticks.value = f"{lo:.3g}   …   {(lo + hi) / 2:.3g}   …   {hi:.3g}"
        set_label_image(self._bar, colorbar_rgb(layer))
        classes = [
            str(layer_info(m).get("class_name"))
            for m in self._siblings(layer)
            if layer_role(m) == "probability"
        ]
        self._set_classes(classes)

    def _set_classes(self, classes: list[str]) -> None:
        if list(self._class_boxes) == classes:
            return
        self._classes.clear()
        self._class_boxes = {}
        for k, name in enumerate(classes):
            box = CheckBox(text=f"■ {name}", value=True)
            box.native.setStyleSheet(f"QCheckBox {{ color: {hex_colour(class_colour(name, k))} }}")
            box.changed.connect(lambda on, n=name: self.show_class(n, on))
            self._class_boxes[name] = box
            self._classes.append(box)

    def show_class(self, class_name: str, on: bool = True) -> None:
        """Show or hide a class: its tiles, predicted regions and annotations.

        Parameters
        ----------
        class_name : str
            One of the shown slide's classes.
        on : bool
            Show (True) or hide it.
        """
        slide = layer_info(self.layer).get("slide") if self.layer is not None else None
        hidden = {n for n, b in self._class_boxes.items() if not b.value}
        hidden = hidden - {class_name} if on else hidden | {class_name}
        show_classes(self._viewer, hidden, tiles=tiles_layer_name(str(slide)) if slide else None)
        box = self._class_boxes.get(class_name)
        if box is not None and box.value != bool(on):
            with box.changed.blocked():
                box.value = bool(on)
