"""The Explain widget's "Inside the model" controls: a layer's channels, in workers.

:class:`InsideModel` is a mixin of :class:`napari_xai._widgets.explain.ExplainWidget`
(a :class:`~napari_xai._widgets._base.RunWidget` that also gives
``_start`` and ``_mpp``, and offers the model's layers with :meth:`InsideModel.show_model_layers`):

* "Channels at cursor" → :func:`napari_xai.core.layers.activations.channels_layer` for
  the tile under the mouse, shown as a grid of channels beside the tile.
* "Channel across slide" → :func:`napari_xai.core.activations.iter_channel_slide`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from magicgui.widgets import ComboBox, Label, PushButton, SpinBox

from napari_xai._widgets._explain_work import channels_in_worker
from napari_xai._widgets._grid import box_mpp
from napari_xai._widgets._pickers import offer, pick_when_none, slide_source


class InsideModel:
    """Mixin: the model layer and channel pickers and their two actions."""

    # From RunWidget and ExplainWidget.
    _viewer: Any
    _status: Any
    _mpp: Any
    launch: Any
    slide_to_run: Any
    upsert: Any
    _model_spec: Any
    _start: Any

    def inside_controls(self) -> list[Any]:
        """Make the heading, layer, channel and the two buttons (in that order)."""
        self._act_layer = ComboBox(label="layer", choices=[], nullable=True)
        self._channel = SpinBox(label="channel", value=0, min=0, max=4095)
        self._show_channels = PushButton(text="Channels at cursor")
        self._channel_slide = PushButton(text="Channel across slide")
        return [
            Label(value="Inside the model"),
            self._act_layer,
            self._channel,
            self._show_channels,
            self._channel_slide,
        ]

    def wire_inside(self) -> None:
        """Connect the two buttons."""
        self._show_channels.changed.connect(self._on_show_channels)
        self._channel_slide.changed.connect(self._on_channel_slide)

    def show_model_layers(self, layers: Sequence[str]) -> None:
        """Offer the layers of the current model whose activations can be shown.

        The last one is picked when none is.
        """
        offer(self._act_layer, layers)
        pick_when_none(self._act_layer)

    def _on_channel_slide(self, _value: Any = None) -> None:
        """Compute the chosen channel across the slide in a worker thread."""
        layer = self.slide_to_run()
        if layer is None:
            return
        where = "napari_xai.core.activations:iter_channel_slide"
        channel = {"layer": self._act_layer.value, "channel": int(self._channel.value)}
        self._start(where, layer, status="computing channel activations…", **channel)

    def _on_show_channels(self, _value: Any = None) -> Any:
        """Show every channel of the chosen layer for the tile under the cursor (a worker)."""
        layer = self.slide_to_run()
        if layer is None:
            return None
        centre = tuple(float(v) for v in layer.world_to_data(list(self._viewer.cursor.position)))
        return self.launch(
            channels_in_worker,
            slide_source(layer),
            self._model_spec(),
            centre[-2:],
            layer=self._act_layer.value,
            mpp=box_mpp(self._mpp),
            status="reading the tile's channels…",
            on_returned=self._on_channels,
        )

    def _on_channels(self, ldt: Any) -> None:
        self.upsert(ldt)
        self._status.value = f"{ldt[1]['metadata']['napari_xai']['n']} channels shown"
