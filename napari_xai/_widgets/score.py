"""The "Score slide" widget: score a slide into a result folder, with live heatmaps.

One core call, :func:`napari_xai.core.pipeline.run_slide`, runs in a worker
(:func:`napari_xai._widgets._score_work.score_in_worker`; torch is imported
there) and writes ``<output folder>/<slide stem>/``, the
folder ``napari-xai score`` writes and the result reader opens. The output
folder defaults to the per-user results folder (``<user cache>/results``,
shared with the Explain and Audit widgets, whose stages add to the same folder);
the last run's folder is shown under the controls.

While it runs, every batch moves the progress bar and, at most every
``REFRESH_S``, the worker builds the class-probability layers from the maps
being filled. When done, the worker reads the folder back with the result
reader's builder (:func:`napari_xai.core.layers.results.result_layers`): what
is shown is what is stored. Layers reach napari one per event-loop turn
(:class:`~napari_xai._widgets._pace.LayerPacer`), never several in one stall.

Adding an image layer is what stalls napari (its layer controls, its vispy
visual and shaders, its colour bar's text: 0.3-1.5 s each on a software-GL
canvas), updating one's data is cheap. So once a slide is picked and the model
described, the widget **prepares** the run's class-probability maps (empty,
transparent, under their final names and visibility, with their colour bars),
one step per turn, before any click: a run then only fills them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import CheckBox, ComboBox, Label, SpinBox
from qtpy.QtCore import QEvent, QObject
from qtpy.QtWidgets import QSizePolicy

from napari_xai._widgets._base import LayerData, RunWidget, default_output
from napari_xai._widgets._grid import grid_options, min_tissue_box, mpp_box, overlap_box
from napari_xai._widgets._layout import show_colorbar
from napari_xai._widgets._masks import masks_button, warm_masks
from napari_xai._widgets._pace import LayerPacer
from napari_xai._widgets._pickers import DEMO, FROM_FILE, file_edit, path_of  # noqa: F401
from napari_xai._widgets._score_work import score_in_worker

if TYPE_CHECKING:
    import napari.viewer

    from napari_xai.core.inference import ScoreResult
    from napari_xai.core.pipeline import PipelineProgress


class _OnShow(QObject):
    """Event filter: call ``callback`` whenever the watched widget is shown."""

    def __init__(self, callback: Any, parent: Any) -> None:
        super().__init__(parent)
        self._callback = callback

    def eventFilter(self, obj: Any, event: Any) -> bool:  # noqa: N802 (Qt's name)
        """Call back on a Show event; never consume the event."""
        if event.type() == QEvent.Type.Show:
            self._callback()
        return False


class ScoreWidget(RunWidget):
    """Score a slide layer with a tile model into a result folder; show its heatmaps.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        Viewer holding the slide layer (opened with the napari-xai reader).
        (Annotated as ``napari.viewer.Viewer``: that exact name is how napari
        knows to pass its viewer to a plugin dock widget.)
    """

    title = "Score slide"
    pick_newest_slide = True

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer, run_text="Score slide")
        self._device = ComboBox(label="device", choices=["auto", "cpu", "cuda", "mps"])
        self._batch_size = SpinBox(label="batch size", value=32, min=1, max=4096)
        self._overlap, self._min_tissue, self._mpp = overlap_box(), min_tissue_box(), mpp_box()
        self._features = CheckBox(
            text="save features", value=False,
            tooltip="Keep tile features (features.zarr) and ood_score, as score --features",
        )  # fmt: skip
        self._output = file_edit(label="output folder", mode="d", value=str(default_output()))
        self._folder = Label(label="result folder", value="")
        self._show_masks = masks_button(self, mpp=self._mpp)
        self._pacer = LayerPacer(self._show_layer)  # layers reach napari one per turn
        #: ScoreResult (None when cancelled or the folder was reused) and folder of the last run.
        self.last_result: ScoreResult | None = None
        self.last_folder: Path | None = None
        #: Warnings of the last run (slide and model do not fit, no tile scored).
        self.warnings: list[str] = []
        controls = [self._device, self._batch_size, self._overlap, self._min_tissue, self._mpp]
        controls += [self._features, self._output, *self.run_controls(), self._folder]
        self.finish([*controls, self._show_masks], busy=[self._show_masks])
        self._slide_layer.changed.connect(self._prepare_layers)
        # the model may be described before the dock is on screen: prepare when shown too
        self.native.installEventFilter(_OnShow(self._prepare_layers, self.native))
        # a long default path must not widen the dock (the canvas keeps the width)
        self._output.native.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)

    def _on_model_described(self, model: Any) -> None:
        super()._on_model_described(model)
        self._prepare_layers()

    def _prepare_layers(self, _value: Any = None) -> None:
        """Add the picked slide's probability maps, empty, before a run fills them.

        Also makes the slide's masks in the background (:func:`warm_masks`: most
        of a run's wait before its first tiles). One map per class of the
        described model, named, coloured and visible as the run's maps (only
        the positive class visible; zeros are transparent), each added on a
        turn of its own with its colour bar a turn later. Maps
        already in the viewer (an earlier run's) are left as they are; nothing
        is added while a run goes, nor while the widget is not on screen (a
        hidden viewer, a closed dock: nothing to keep responsive).
        """
        import numpy as np

        from napari_xai.core.layers import heatmap_layers
        from napari_xai.core.naming import slide_stem

        layer, card = self._slide_layer.value, self._model_card
        if layer is None or self._worker is not None or not self.native.isVisible():
            return
        warm_masks(str(layer.metadata["path"]))
        if card is None:
            return
        classes = list(card.class_names)
        empty = np.zeros((len(classes), 1, 1), dtype=np.float32)
        stem = slide_stem(str(layer.metadata["path"]))
        for ldt in heatmap_layers(empty, classes, slide_name=stem, stride0=1.0):
            if ldt[1]["name"] not in self._viewer.layers:
                self._pacer.put(ldt)

    def _on_run(self, _value: Any = None) -> None:
        """Start scoring the chosen slide into the output folder in a worker thread."""
        from napari_xai.core.options import FeatureSpec, RunOptions

        layer = self.slide_to_run()
        if layer is None:
            return
        # Open the file anew in the worker (not the layer's Slide object: napari hands
        # plugins proxies of its objects, and reads are cheap to set up).
        path = str(layer.metadata["path"])
        try:
            grid = grid_options(overlap=self._overlap, mpp=self._mpp, min_tissue=self._min_tissue)
            run = RunOptions(
                device=str(self._device.value), batch_size=int(self._batch_size.value)
            )
        except ValueError as exc:
            self.error(str(exc))
            return
        self.last_result = self.last_folder = None
        self.warnings = []
        self.launch(
            score_in_worker,
            path,
            self._model_spec(),
            path_of(self._output),
            grid=grid,
            run=run,
            features=FeatureSpec() if self._features.value else None,
            mpp=layer.metadata.get("mpp"),  # the regions' µm (as the reader gives them)
            status=f"scoring {Path(path).name}…",
            on_yielded=self._on_yielded,
            on_returned=self._on_returned,
        )

    def _on_yielded(self, step: tuple[PipelineProgress, list[LayerData]] | str) -> None:
        if isinstance(step, str):  # a warning from the worker
            from napari.utils.notifications import show_warning

            self.warnings.append(step)
            self._status.value = f"warning: {step}"
            show_warning(f"{self.title}: {step}")
            return
        progress, layers = step
        if progress.stage == "score":
            self.set_progress(
                progress.n_done,
                progress.n_total,
                f"{progress.n_done:,} / {progress.n_total:,} tiles · "
                f"{progress.tiles_per_s:,.1f} tiles/s",
            )
        elif progress.message:  # reuse, invalidate, write
            self._status.value = progress.message
        for ldt in layers:  # while scoring, only visible maps (hidden ones come at the end)
            name = ldt[1]["name"]
            there = name in self._viewer.layers
            if self._viewer.layers[name].visible if there else ldt[1].get("visible", True):
                self._pacer.put(ldt)

    def _on_returned(self, out: tuple[Path, ScoreResult | None, list[LayerData], int]) -> None:
        folder, result, layers, n = out
        self.last_result, self.last_folder = result, folder
        self._folder.value = str(folder)
        for ldt in layers:
            self._pacer.put(ldt)
        rate = result.timings.get("tiles_per_s", 0.0) if result is not None else 0.0
        how = f"{rate:,.1f} tiles/s" if result is not None else "kept from the folder"
        self.set_progress(n, n, f"done: {n:,} tiles · {how}")
        if not n:
            self._status.value = f"no tile scored: {self.warnings[-1] if self.warnings else ''}"

    def _show_layer(self, item: LayerData | Any) -> None:
        """Upsert one layer, its first draw and a new map's colour bar on later turns.

        A new map's colour bar follows a turn later (the map draws first). A new
        layer built in the worker (tiles, regions) is added hidden and shown a
        turn later: adding it (layer list, controls, vispy node) and its first
        draw (vispy's shader programs) are two turns, never one stall.
        """
        built = None if isinstance(item, tuple) else item
        fresh = (item[1]["name"] if built is None else built.name) not in self._viewer.layers
        draw_later = built is not None and fresh and bool(built.visible)
        if built is not None and draw_later:
            built.visible = False
        layer = self.upsert(item, colorbar=not fresh)
        if draw_later:
            self._pacer.call(lambda: setattr(layer, "visible", True))
        if fresh:  # show_colorbar: scalar images only
            self._pacer.call(lambda: show_colorbar(layer))

    def _on_finished(self) -> None:
        """End the run once its layers are shown (``_worker`` stays set until then)."""
        self._pacer.then(super()._on_finished)
