"""The "Score slide" widget: run a tile model over a slide layer, live heatmaps.

The widget only wires controls to one core call,
:func:`napari_xai.core.inference.iter_score_slide`, run in a napari
``thread_worker``: every yielded batch updates the progress bar (tiles done,
tiles/s) and, at most a few times per second, the class-probability layers in
place; the returned :class:`~napari_xai.core.inference.ScoreResult` adds the
tiles (Points) layer. Cancel calls ``worker.quit()``. Errors become napari
notifications. Heavy imports (torch, pandas) happen inside methods.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import (
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
    FROM_FILE,  # noqa: F401 - re-exported (tests and scripts import it from here)
    MODEL_FILE_FILTER,
    MODEL_SOURCES,
    model_spec,
    show_model_file,
    slide_layer_choices,
)
from napari_xai.core.options import DEFAULT_MIN_TISSUE

if TYPE_CHECKING:
    import napari.layers
    import napari.viewer

    from napari_xai.core.inference import ScoreProgress, ScoreResult

#: Seconds between live layer refreshes while scoring.
REFRESH_S = 0.5


class ScoreWidget(ScrollPanel, Container):
    """Score a slide layer with a tile model and show class-probability heatmaps.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        Viewer holding the slide layer (opened with the napari-xai reader).
        (Annotated as ``napari.viewer.Viewer``: that exact name is how napari
        knows to pass its viewer to a plugin dock widget.)
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True, scrollable=True)
        self._viewer = viewer
        self._slide_layer = ComboBox(label="slide", choices=self._slide_choices, nullable=True)
        self._model_source = ComboBox(label="model", choices=list(MODEL_SOURCES), value=DEMO)
        self._model_file = FileEdit(
            label="model file", mode="r", filter=MODEL_FILE_FILTER, visible=False
        )
        self._device = ComboBox(label="device", choices=["auto", "cpu", "cuda", "mps"])
        self._batch_size = SpinBox(label="batch size", value=32, min=1, max=4096)
        self._overlap = FloatSpinBox(label="overlap", value=0.0, min=0.0, max=0.9, step=0.05)
        self._min_tissue = FloatSpinBox(
            label="min tissue", value=DEFAULT_MIN_TISSUE, min=0.0, max=1.0, step=0.05,
            tooltip="Keep tiles whose tissue fraction is at least this",
        )  # fmt: skip
        self._mpp = FloatSpinBox(
            label="slide mpp", value=0.0, min=0.0, max=50.0, step=0.01,
            tooltip="Level-0 µm/px; 0 = from the file (needed when the file does not say)",
        )  # fmt: skip
        self._run = PushButton(text="Score slide")
        self._cancel = PushButton(text="Cancel", enabled=False)
        self._progress = ProgressBar(label="progress", value=0, min=0, max=1)
        self._status = Label(value="")
        self.extend(
            [
                self._slide_layer,
                self._model_source,
                self._model_file,
                self._device,
                self._batch_size,
                self._overlap,
                self._min_tissue,
                self._mpp,
                self._run,
                self._cancel,
                self._progress,
                self._status,
            ]
        )
        fit_panel(self)
        self._worker: Any = None
        self._last_refresh = 0.0
        self._slide_name = ""
        self.last_result: ScoreResult | None = None
        self._model_source.changed.connect(self._on_model_source)
        self._run.changed.connect(self._on_run)
        self._cancel.changed.connect(self._on_cancel)
        viewer.layers.events.inserted.connect(self._refresh_slides)
        viewer.layers.events.removed.connect(self._refresh_slides)
        self._refresh_slides()

    # -- controls --------------------------------------------------------------------
    def _slide_choices(self, _widget: Any = None) -> list[tuple[str, Any]]:
        """Image layers that come from a slide file (have ``metadata['path']``)."""
        return slide_layer_choices(self._viewer)

    def _refresh_slides(self, _event: Any = None) -> None:
        """Refresh the slide choices; pick the newest slide when none is chosen."""
        self._slide_layer.reset_choices()
        choices = [c for c in self._slide_layer.choices if c is not None]
        if self._slide_layer.value is None and choices:
            self._slide_layer.value = choices[-1]

    def _on_model_source(self, value: str) -> None:
        show_model_file(value, self._model_file)

    def _model_spec(self) -> str | Path:
        return model_spec(self._model_source.value, self._model_file.value)

    # -- running ---------------------------------------------------------------------
    def _on_run(self, _value: Any = None) -> None:
        """Start scoring the chosen slide in a worker thread."""
        from napari.qt.threading import thread_worker
        from napari.utils.notifications import show_error

        from napari_xai.core.inference import iter_score_slide, slide_stem

        layer: napari.layers.Image | None = self._slide_layer.value
        if layer is None:
            show_error("Score slide: open a slide first (File ▸ Open, napari-xai reader)")
            return
        if self._worker is not None:
            show_error("Score slide: already scoring; cancel first")
            return
        # Open the file anew in the worker (not the layer's Slide object: napari hands
        # plugins proxies of its objects, and reads are cheap to set up).
        path = str(layer.metadata["path"])
        mpp = float(self._mpp.value) or None
        self._slide_name = slide_stem(path)
        self._last_refresh = 0.0
        self.last_result = None
        # Errors go to _on_errored (a notification), not re-raised in the Qt loop.
        worker = thread_worker(iter_score_slide, ignore_errors=True)(
            path,
            self._model_spec(),
            mpp=mpp,
            overlap=float(self._overlap.value),
            min_tissue=float(self._min_tissue.value),
            batch_size=int(self._batch_size.value),
            device=str(self._device.value),
        )
        worker.yielded.connect(self._on_yielded)
        worker.returned.connect(self._on_returned)
        worker.errored.connect(self._on_errored)
        worker.aborted.connect(self._on_aborted)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        self._run.enabled = False
        self._cancel.enabled = True
        self._progress.value = 0
        self._status.value = f"scoring {Path(path).name}…"
        worker.start()

    def _on_cancel(self, _value: Any = None) -> None:
        if self._worker is not None:
            self._worker.quit()
            self._status.value = "cancelling…"

    def _on_yielded(self, step: ScoreProgress) -> None:
        self._progress.max = max(step.n_total, 1)
        self._progress.value = step.n_done
        self._status.value = (
            f"{step.n_done:,} / {step.n_total:,} tiles · {step.tiles_per_s:,.1f} tiles/s"
        )
        now = time.monotonic()
        if now - self._last_refresh >= REFRESH_S or step.n_done == step.n_total:
            self._last_refresh = now
            self._show_maps(step.maps.copy(), step.class_names, step.grid)

    def _show_maps(self, maps: Any, class_names: tuple[str, ...], grid: Any) -> None:
        from napari_xai.core.layers import heatmap_layers

        for ldt in heatmap_layers(
            maps,
            class_names,
            slide_name=self._slide_name,
            stride0=grid.stride0,
            tile_size0=grid.tile_size0,
        ):
            self._upsert(ldt)

    def _upsert(self, ldt: tuple[Any, dict[str, Any], str]) -> None:
        """Update the layer with this name in place, or add it."""
        from napari.layers import Image, Layer

        data, kwargs, layer_type = ldt
        name = kwargs["name"]
        if name in self._viewer.layers:
            layer = self._viewer.layers[name]
            if layer_type == "image" and isinstance(layer, Image):
                layer.scale = kwargs["scale"]
                layer.translate = kwargs["translate"]
                layer.data = data
                return
            self._viewer.layers.remove(name)
        self._viewer.add_layer(show_colorbar(Layer.create(data, kwargs, layer_type)))

    def _on_returned(self, result: ScoreResult) -> None:
        from napari_xai.core.layers import tiles_layer

        self.last_result = result
        self._show_maps(result.probabilities, result.class_names, result.grid)
        self._upsert(
            tiles_layer(result.tiles, slide_name=self._slide_name, class_names=result.class_names)
        )
        n = len(result.tiles)
        rate = result.timings.get("tiles_per_s", 0.0)
        self._progress.max = max(n, 1)
        self._progress.value = n
        self._status.value = f"done: {n:,} tiles · {rate:,.1f} tiles/s"

    def _on_errored(self, exc: BaseException) -> None:
        from napari.utils.notifications import show_error

        self._status.value = f"error: {exc}"
        show_error(f"Score slide: {exc}")

    def _on_aborted(self) -> None:
        self._status.value = "cancelled (" + self._status.value + ")"

    def _on_finished(self) -> None:
        self._worker = None
        self._run.enabled = True
        self._cancel.enabled = False
