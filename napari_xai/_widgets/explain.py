"""The "Explain" widget: whole-slide saliency layers and a look inside the model.

Controls are wired to core calls run in napari ``thread_worker``s:

* Run → :func:`napari_xai.core.attribution.whole_slide.iter_explain_view` (only
  the tiles in the current view, cached) or ``iter_explain_slide`` (every tissue
  tile, resumable); each yielded batch moves the progress bar and, a few times a
  second, refreshes the saliency layer, which reads the zarr store as it fills.
* "Channels at cursor" → :func:`napari_xai.core.activations.channel_activations`
  for the tile under the mouse, shown as a grid of channels beside the tile.
* "Channel across slide" → :func:`napari_xai.core.activations.iter_channel_slide`.

Cancel calls ``worker.quit()``; errors become notifications. torch and captum
are imported inside methods only.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    ProgressBar,
    PushButton,
    SpinBox,
)

from napari_xai._widgets._layout import ScrollPanel, fit_panel, show_colorbar
from napari_xai._widgets._pickers import (
    DEMO,
    MODEL_FILE_FILTER,
    MODEL_SOURCES,
    model_spec,
    show_model_file,
    slide_layer_choices,
)
from napari_xai.core.naming import ATTRIBUTION_COLORMAP

if TYPE_CHECKING:
    import napari
    import napari.layers
    import napari.viewer

    from napari_xai.core.attribution.whole_slide import ExplainProgress, ExplainResult

VIEW = "what I see (current view)"
SLIDE = "whole slide"
PREDICTED = "predicted"
#: Seconds between live layer refreshes.
REFRESH_S = 0.5
#: Milliseconds the view must stay still before "follow the view" re-runs.
FOLLOW_DELAY_MS = 600
#: Method names in menu order (kept in sync with ATTRIBUTION_METHODS by a test).
METHODS = (
    "grad_cam",
    "saliency",
    "integrated_gradients",
    "gradient_shap",
    "occlusion",
    "guided_grad_cam",
)


def default_output() -> Path:
    """Default folder for result stores (``<tmp>/napari-xai``)."""
    return Path(tempfile.gettempdir()) / "napari-xai"


class ExplainWidget(ScrollPanel, Container):
    """Explain a slide layer's model predictions as saliency layers.

    Parameters
    ----------
    viewer : napari.Viewer
        Viewer holding the slide layer (opened with the napari-xai reader).
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True, scrollable=True)
        self._viewer = viewer
        self._slide_layer = ComboBox(label="slide", choices=self._slide_choices, nullable=True)
        self._model_source = ComboBox(label="model", choices=list(MODEL_SOURCES), value=DEMO)
        self._model_file = FileEdit(
            label="model file", mode="r", filter=MODEL_FILE_FILTER, visible=False
        )
        # Choices are computed from the current model (callables): napari calls
        # reset_choices() whenever a layer is added or removed, which re-evaluates
        # them and keeps the current value while it is still a choice.
        self._class_names: tuple[str, ...] = ()
        self._methods: tuple[str, ...] = METHODS
        self._model_layers: tuple[str, ...] = ()
        self._method = ComboBox(label="method", choices=self._method_choices, value="grad_cam")
        self._target = ComboBox(label="target", choices=self._target_choices, value=PREDICTED)
        self._smooth = CheckBox(
            text="SmoothGrad (NoiseTunnel)", value=False,
            tooltip="Average gradients over noisy copies (saliency, IG, guided Grad-CAM)",
        )  # fmt: skip
        self._smooth_samples = SpinBox(label="noise samples", value=8, min=2, max=64)
        self._n_steps = SpinBox(label="IG steps", value=32, min=2, max=512)
        self._mode = ComboBox(label="explain", choices=[VIEW, SLIDE], value=VIEW)
        self._max_tiles = SpinBox(
            label="max tiles per view", value=256, min=1, max=100_000,
            tooltip="Most new tiles computed per 'what I see' run (nearest the centre first)",
        )  # fmt: skip
        self._follow = CheckBox(
            text="follow the view (re-run after pan/zoom)", value=False,
            tooltip="In 'what I see' mode, explain new tiles whenever the view stops moving",
        )  # fmt: skip
        self._overlap = FloatSpinBox(label="overlap", value=0.0, min=0.0, max=0.9, step=0.05)
        self._batch_size = SpinBox(label="batch size", value=16, min=1, max=1024)
        self._mpp = FloatSpinBox(
            label="slide mpp", value=0.0, min=0.0, max=50.0, step=0.01,
            tooltip="Level-0 µm/px; 0 = from the file (needed when the file does not say)",
        )  # fmt: skip
        self._output = FileEdit(label="output folder", mode="d", value=str(default_output()))
        self._run = PushButton(text="Explain")
        self._cancel = PushButton(text="Cancel", enabled=False)
        self._progress = ProgressBar(label="progress", value=0, min=0, max=1)
        self._status = Label(value="")
        # inside the model
        self._act_layer = ComboBox(label="layer", choices=self._layer_choices, nullable=True)
        self._channel = SpinBox(label="channel", value=0, min=0, max=4095)
        self._show_channels = PushButton(text="Channels at cursor")
        self._channel_slide = PushButton(text="Channel across slide")
        self.extend(
            [
                self._slide_layer,
                self._model_source,
                self._model_file,
                self._method,
                self._target,
                self._smooth,
                self._smooth_samples,
                self._n_steps,
                self._mode,
                self._max_tiles,
                self._follow,
                self._overlap,
                self._batch_size,
                self._mpp,
                self._output,
                self._run,
                self._cancel,
                self._progress,
                self._status,
                Label(value="Inside the model"),
                self._act_layer,
                self._channel,
                self._show_channels,
                self._channel_slide,
            ]
        )
        fit_panel(self)
        self._worker: Any = None
        self._timer: Any = None
        self._rerun = False
        self._auto_limits: tuple[float, ...] | None = None
        self._last_refresh = 0.0
        self._layer_name: str | None = None
        self.last_result: ExplainResult | None = None
        self._model_source.changed.connect(self._on_model_changed)
        self._model_file.changed.connect(self._on_model_changed)
        self._run.changed.connect(self._on_run)
        self._cancel.changed.connect(self._on_cancel)
        self._show_channels.changed.connect(self._on_show_channels)
        self._channel_slide.changed.connect(self._on_channel_slide)
        viewer.layers.events.inserted.connect(self._refresh_slides)
        viewer.layers.events.removed.connect(self._refresh_slides)
        self._refresh_slides()
        self._on_model_changed()
        camera = self._camera()
        camera.events.center.connect(self._on_camera)
        camera.events.zoom.connect(self._on_camera)

    # -- controls --------------------------------------------------------------------
    def _slide_choices(self, _widget: Any = None) -> list[tuple[str, Any]]:
        """Image layers that come from a slide file (have ``metadata['path']``)."""
        return slide_layer_choices(self._viewer)

    def _refresh_slides(self, _event: Any = None) -> None:
        self._slide_layer.reset_choices()
        choices = self._slide_choices()
        if self._slide_layer.value is None and choices:
            self._slide_layer.value = choices[0][1]

    def _model_spec(self) -> str | Path:
        return model_spec(self._model_source.value, self._model_file.value)

    def _load_model(self) -> Any:
        from napari_xai.core.models.resolve import resolve_model

        return resolve_model(self._model_spec())

    def _on_model_changed(self, _value: Any = None) -> None:
        """Refresh target classes, supported methods and layers for the chosen model."""
        show_model_file(self._model_source.value, self._model_file)
        try:
            model = self._load_model()
        except Exception:  # noqa: BLE001 - no model chosen yet / unreadable: keep defaults
            return
        from napari_xai.core.activations import list_layers
        from napari_xai.core.attribution import supported_methods

        self._class_names = tuple(str(c) for c in model.card.class_names)
        methods = supported_methods(model)
        self._methods = tuple(m for m in METHODS if m in methods)
        try:
            self._model_layers = tuple(list_layers(model))
        except Exception:  # noqa: BLE001
            self._model_layers = ()
        self._target.reset_choices()
        self._method.reset_choices()
        self._act_layer.reset_choices()
        if self._act_layer.value is None and self._model_layers:
            self._act_layer.value = self._model_layers[-1]

    def _target_choices(self, _widget: Any = None) -> list[str]:
        """Return "predicted" and the current model's classes."""
        return [PREDICTED, *self._class_names]

    def _method_choices(self, _widget: Any = None) -> list[str]:
        """Attribution methods the current model supports, in menu order."""
        return list(self._methods)

    def _layer_choices(self, _widget: Any = None) -> list[str]:
        """Layers of the current model whose activations can be shown."""
        return list(self._model_layers)

    def _slide(self) -> tuple[Any, Any] | None:
        from napari.utils.notifications import show_error

        layer: napari.layers.Image | None = self._slide_layer.value
        if layer is None:
            show_error("Explain: open a slide first (File ▸ Open, napari-xai reader)")
            return None
        return layer, layer.metadata.get("slide") or layer.metadata["path"]

    def _store(self, path: str | Path) -> Path:
        from napari_xai.core.inference import slide_stem

        return Path(self._output.value) / slide_stem(path) / "heatmaps.zarr"

    def _camera(self) -> Any:
        scene = getattr(self._viewer, "scene", None)  # napari >= 0.9
        return scene.camera if scene is not None else self._viewer.camera

    def view_rect(self, layer: Any) -> tuple[float, float, float, float]:
        """Level-0 (row0, col0, row1, col1) of the canvas, in the slide layer's pixels."""
        import numpy as np

        cam = self._camera()
        centre = np.asarray(cam.center[-2:], float)
        canvas = getattr(self._viewer, "canvas", None)  # napari >= 0.9: viewer.canvas.size
        size = getattr(canvas, "size", None) or getattr(self._viewer, "_canvas_size", (1024, 1024))
        half = np.asarray(size[-2:], float) / float(cam.zoom) / 2
        lo = layer.world_to_data(list(centre - half))[-2:]
        hi = layer.world_to_data(list(centre + half))[-2:]
        return (float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1]))

    # -- running ---------------------------------------------------------------------
    def _on_run(self, _value: Any = None) -> None:
        """Start explaining (view or whole slide) in a worker thread."""
        from napari.qt.threading import thread_worker
        from napari.utils.notifications import show_error

        from napari_xai.core.attribution.whole_slide import (
            iter_explain_slide,
            iter_explain_view,
        )

        picked = self._slide()
        if picked is None:
            return
        layer, source = picked
        if self._worker is not None:
            show_error("Explain: already running; cancel first")
            return
        target = None if self._target.value == PREDICTED else str(self._target.value)
        options: dict[str, Any] = {"n_steps": int(self._n_steps.value)}
        if self._smooth.value:
            options["smooth_samples"] = int(self._smooth_samples.value)
        common: dict[str, Any] = dict(
            store=self._store(layer.metadata["path"]),
            method=str(self._method.value),
            target=target,
            batch_size=int(self._batch_size.value),
            overlap=float(self._overlap.value),
            mpp=float(self._mpp.value) or None,
            **options,
        )
        try:
            model = self._load_model()
        except Exception as exc:  # noqa: BLE001
            show_error(f"Explain: {exc}")
            return
        if self._mode.value == VIEW:
            worker = thread_worker(iter_explain_view)(
                source,
                model,
                self.view_rect(layer),
                zoom=float(self._camera().zoom),
                max_tiles=int(self._max_tiles.value),
                **common,
            )
        else:
            worker = thread_worker(iter_explain_slide)(source, model, **common)
        self._start(worker, f"explaining {layer.name} ({self._method.value})…")

    def _start(self, worker: Any, status: str) -> None:
        worker.yielded.connect(self._on_yielded)
        worker.returned.connect(self._on_returned)
        worker.errored.connect(self._on_errored)
        worker.aborted.connect(self._on_aborted)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        self._last_refresh = 0.0
        self._layer_name = None
        self._auto_limits = None
        self.last_result = None
        self._run.enabled = False
        self._channel_slide.enabled = False
        self._cancel.enabled = True
        self._progress.value = 0
        self._status.value = status
        worker.start()

    def _on_cancel(self, _value: Any = None) -> None:
        if self._worker is not None:
            self._worker.quit()
            self._status.value = "cancelling…"

    def _on_yielded(self, step: ExplainProgress) -> None:
        self._progress.max = max(step.n_total, 1)
        self._progress.value = step.n_done
        self._status.value = (
            f"{step.n_done:,} / {step.n_total:,} tiles · {step.tiles_per_s:,.1f} tiles/s"
        )
        now = time.monotonic()
        if self._layer_name is None and step.layer_name:
            # first batch: show the map now; it fills in as the store is written
            from napari_xai.core.attribution.layers import stitched_layer

            self._layer_name = step.layer_name
            self._last_refresh = now
            try:
                layer = self._upsert(stitched_layer(step.store, step.key, name=step.layer_name))
                self._auto_limits = tuple(float(v) for v in layer.contrast_limits)
            except Exception:  # noqa: BLE001 - the first write may still be in flight
                self._layer_name = None
        elif now - self._last_refresh >= REFRESH_S:
            self._last_refresh = now
            name = self._layer_name
            if name is not None and name in self._viewer.layers:
                layer = self._viewer.layers[name]
                self._update_limits(layer, step.store, step.key)
                self._reload(layer, step.store, step.key)

    @staticmethod
    def _reload(layer: Any, store: Any, key: str) -> None:
        """Swap the layer's data for fresh reads of the store.

        ``layer.refresh()`` is not enough: it re-slices the same dask arrays, whose
        chunks napari's dask cache keeps from the first read (stale tiles). Fresh
        arrays have fresh task names, so every chunk is read from the store again.
        """
        import zarr

        from napari_xai.core.attribution.stitch import StitchedMap

        try:
            levels = StitchedMap(zarr.open_group(str(store), mode="r")[key]).to_dask()
        except Exception:  # noqa: BLE001 - a write in flight; try at the next refresh
            return
        layer.data = levels if layer.multiscale else levels[0]

    def _update_limits(self, layer: Any, store: Any, key: str) -> None:
        """Follow the map's range while it fills in, unless the user set the limits."""
        import zarr

        from napari_xai.core.attribution.stitch import StitchedMap

        current = tuple(float(v) for v in layer.contrast_limits)
        if self._auto_limits is not None and current != self._auto_limits:
            return  # the user changed them: leave them alone
        try:
            lo, hi = StitchedMap(zarr.open_group(str(store), mode="r")[key]).value_limits()
        except Exception:  # noqa: BLE001 - a write in flight; try at the next refresh
            return
        if hi > lo:
            layer.contrast_limits = (lo, hi)
            self._auto_limits = tuple(float(v) for v in layer.contrast_limits)

    def _upsert(self, ldt: tuple[Any, dict[str, Any], str]) -> Any:
        """Replace the layer with this name (keeping what the user set), or add it."""
        from napari.layers import Layer

        data, kwargs, layer_type = ldt
        name = kwargs["name"]
        if name in self._viewer.layers:
            old = self._viewer.layers[name]
            # keep the user's display choices across re-runs
            kwargs = {**kwargs, "colormap": old.colormap.name, "opacity": old.opacity}
            index = self._viewer.layers.index(old)
            self._viewer.layers.remove(old)
            new = show_colorbar(Layer.create(data, kwargs, layer_type))
            self._viewer.layers.insert(index, new)
            return new
        return self._viewer.add_layer(show_colorbar(Layer.create(data, kwargs, layer_type)))

    def _on_returned(self, result: ExplainResult) -> None:
        from napari_xai.core.attribution.layers import saliency_layer

        self.last_result = result
        self._layer_name = result.layer_name
        self._upsert(saliency_layer(result))
        self._progress.max = max(result.n_computed, 1)
        self._progress.value = result.n_computed
        self._status.value = (
            f"done: {result.n_computed:,} computed, {result.n_cached:,} cached · "
            f"{result.n_done:,} / {result.n_tiles:,} tiles of the slide"
        )

    def _on_errored(self, exc: BaseException) -> None:
        from napari.utils.notifications import show_error

        self._status.value = f"error: {exc}"
        show_error(f"Explain: {exc}")

    def _on_aborted(self) -> None:
        self._status.value = "cancelled (" + self._status.value + "); the store keeps what is done"

    def _on_finished(self) -> None:
        self._worker = None
        self._run.enabled = True
        self._channel_slide.enabled = True
        self._cancel.enabled = False
        if self._rerun:
            self._rerun = False
            self._on_camera()

    # -- follow the view -----------------------------------------------------------------
    def _on_camera(self, _event: Any = None) -> None:
        """Debounce camera moves; explain the new view once it stops moving."""
        if not (self._follow.value and self._mode.value == VIEW):
            return
        if self._timer is None:
            from qtpy.QtCore import QTimer

            self._timer = QTimer()
            self._timer.setSingleShot(True)
            self._timer.timeout.connect(self._on_view_settled)
        self._timer.start(FOLLOW_DELAY_MS)

    def _on_view_settled(self) -> None:
        if self._worker is not None:
            self._rerun = True  # after the current run
            return
        self._on_run()

    # -- inside the model --------------------------------------------------------------
    def _on_show_channels(self, _value: Any = None) -> Any:
        """Show every channel of the chosen layer for the tile under the cursor."""
        from napari.utils.notifications import show_error

        picked = self._slide()
        if picked is None:
            return None
        layer, source = picked
        try:
            return self._upsert(self.channels_at(layer, source, self._viewer.cursor.position))
        except Exception as exc:  # noqa: BLE001 - never crash napari
            show_error(f"Explain: {exc}")
            return None

    def channels_at(
        self, layer: Any, source: Any, position: Any
    ) -> tuple[Any, dict[str, Any], str]:
        """LayerData of the channel grid for the tile centred on a world position."""
        from napari_xai.core.activations import channel_activations, channel_mosaic
        from napari_xai.core.attribution.whole_slide import slide_grid, slide_name
        from napari_xai.core.reader import resize_tile
        from napari_xai.core.wsi import open_slide

        model = self._load_model()
        slide = source if not isinstance(source, (str, Path)) else open_slide(source)
        grid = slide_grid(slide, model.card, tissue=None, mpp=float(self._mpp.value) or None)
        r, c = (float(v) for v in layer.world_to_data(list(position))[-2:])
        t0 = int(grid.tile_size0)
        loc = (int(r - t0 / 2), int(c - t0 / 2))
        tile = slide.read_region(loc, (grid.read_size, grid.read_size), level=grid.level)
        tile = resize_tile(tile, int(grid.tile_size))
        layer_name = self._act_layer.value
        acts = channel_activations(model, tile, layer=layer_name)
        mosaic = channel_mosaic(acts)
        cell = acts.shape[1] + 1  # channel side + gap, in mosaic pixels
        s = t0 / cell  # each channel drawn as large as the tile
        kwargs = {
            "name": f"{slide_name(slide)} channels [{layer_name}]",
            "colormap": ATTRIBUTION_COLORMAP,  # activations share the attribution colormap
            "contrast_limits": [0.0, 1.0],
            "scale": (s, s),
            # top-left of the grid at the tile's top-right corner
            "translate": (loc[0] + (s - 1) / 2, loc[1] + t0 + (s - 1) / 2),
            "metadata": {"napari_xai": {"kind": "channels", "tile_rc": loc, "n": len(acts)}},
        }
        return (mosaic, kwargs, "image")

    def _on_channel_slide(self, _value: Any = None) -> None:
        """Compute the chosen channel across the slide in a worker thread."""
        from napari.qt.threading import thread_worker
        from napari.utils.notifications import show_error

        from napari_xai.core.activations import iter_channel_slide

        picked = self._slide()
        if picked is None:
            return
        layer, source = picked
        if self._worker is not None:
            show_error("Explain: already running; cancel first")
            return
        try:
            model = self._load_model()
        except Exception as exc:  # noqa: BLE001
            show_error(f"Explain: {exc}")
            return

        def run() -> Any:
            from napari_xai.core.wsi import open_slide

            slide = source if not isinstance(source, (str, Path)) else open_slide(source)
            return (
                yield from iter_channel_slide(
                    slide,
                    model,
                    layer=self._act_layer.value,
                    channel=int(self._channel.value),
                    store=self._store(layer.metadata["path"]),
                    batch_size=int(self._batch_size.value),
                    overlap=float(self._overlap.value),
                    mpp=float(self._mpp.value) or None,
                )
            )

        self._start(thread_worker(run)(), "computing channel activations…")
