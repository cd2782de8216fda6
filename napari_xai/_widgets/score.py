"""The "Score slide" widget: run a tile model over a slide layer, live heatmaps.

One core call, :func:`napari_xai.core.inference.iter_score_slide`, runs in a
worker (:meth:`~napari_xai._widgets._base.RunWidget.launch`; torch is imported
there, not on the GUI thread): every yielded batch moves the progress bar
(tiles done, tiles/s) and, at most a few times per second, updates the
class-probability layers in place; the returned
:class:`~napari_xai.core.inference.ScoreResult` adds the tiles (Points) layer.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import ComboBox, FloatSpinBox, SpinBox

from napari_xai._widgets._base import RunWidget
from napari_xai._widgets._masks import masks_button
from napari_xai._widgets._pickers import (  # noqa: F401 - re-exported (tests and scripts)
    DEMO,
    FROM_FILE,
)
from napari_xai.core.options import DEFAULT_MIN_TISSUE

if TYPE_CHECKING:
    import napari.viewer

    from napari_xai.core.inference import ScoreProgress, ScoreResult

#: Seconds between live layer refreshes while scoring.
REFRESH_S = 0.5


def score_in_worker(path: str, spec: Any, **options: Any) -> Any:
    """Worker body: load the model (cached) and score the slide, yielding progress.

    A slide that does not fit the model (its stain, :func:`~napari_xai.core.pipeline.slide_fit`)
    and a run that scored no tile yield a warning (a str) that the widget shows.
    """
    from napari_xai.core.inference import iter_score_slide
    from napari_xai.core.models.resolve import resolve_model
    from napari_xai.core.pipeline import slide_fit
    from napari_xai.core.wsi import open_slide

    device = options.get("device")
    model = resolve_model(spec, device=None if device == "auto" else device)
    with open_slide(path, mpp=options.get("mpp")) as slide:
        fit = slide_fit(slide, model.card)
    yield from fit["warnings"]
    result = yield from iter_score_slide(path, model, **options)
    if not len(result.tiles):
        yield (
            f"{Path(path).name}: 0 tiles scored: tissue detection ({fit['slide_modality']}, "
            f"{fit['slide_stain']}) found {fit['slide_tissue_fraction']:.2%} tissue and no "
            f"tile reached min tissue {options.get('min_tissue', DEFAULT_MIN_TISSUE):g}. "
            "Try a lower min tissue, or `napari-xai qc` to inspect the masks."
        )
    return result


class ScoreWidget(RunWidget):
    """Score a slide layer with a tile model and show class-probability heatmaps.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        Viewer holding the slide layer (opened with the napari-xai reader).
        (Annotated as ``napari.viewer.Viewer``: that exact name is how napari
        knows to pass its viewer to a plugin dock widget.)
    """

    title = "Score slide"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer, run_text="Score slide")
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
        self._show_masks = masks_button(self, mpp=self._mpp)
        self._last_refresh = 0.0
        self._slide_name = ""
        self._path = ""
        self.last_result: ScoreResult | None = None
        #: Warnings of the last run (slide and model do not fit, no tile scored).
        self.warnings: list[str] = []
        self.finish(
            [
                self._device,
                self._batch_size,
                self._overlap,
                self._min_tissue,
                self._mpp,
                *self.run_controls(),
                self._show_masks,
            ],
            busy=[self._show_masks],
        )

    def _refresh_slides(self, _event: Any = None) -> None:
        """Refresh the slide choices; pick the newest slide when none is chosen."""
        self._slide_layer.reset_choices()
        choices = [c for c in self._slide_layer.choices if c is not None]
        if self._slide_layer.value is None and choices:
            self._slide_layer.value = choices[-1]

    def _on_run(self, _value: Any = None) -> None:
        """Start scoring the chosen slide in a worker thread."""
        layer = self.picked_slide()
        if layer is None or self.busy():
            return
        # Open the file anew in the worker (not the layer's Slide object: napari hands
        # plugins proxies of its objects, and reads are cheap to set up).
        path = str(layer.metadata["path"])
        self._slide_name = ""
        self._last_refresh = 0.0
        self.last_result = None
        self.warnings = []
        self._path = path
        self.launch(
            score_in_worker,
            path,
            self._model_spec(),
            mpp=float(self._mpp.value) or None,
            overlap=float(self._overlap.value),
            min_tissue=float(self._min_tissue.value),
            batch_size=int(self._batch_size.value),
            device=str(self._device.value),
            status=f"scoring {Path(path).name}…",
            on_yielded=self._on_yielded,
            on_returned=self._on_returned,
        )

    def _on_yielded(self, step: ScoreProgress | str) -> None:
        if isinstance(step, str):  # a warning from the worker
            from napari.utils.notifications import show_warning

            self.warnings.append(step)
            self._status.value = f"warning: {step}"
            show_warning(f"{self.title}: {step}")
            return
        self.set_progress(
            step.n_done,
            step.n_total,
            f"{step.n_done:,} / {step.n_total:,} tiles · {step.tiles_per_s:,.1f} tiles/s",
        )
        now = time.monotonic()
        if now - self._last_refresh >= REFRESH_S or step.n_done == step.n_total:
            self._last_refresh = now
            self._show_maps(step.maps.copy(), step.class_names, step.grid, live=True)

    def _show_maps(
        self, maps: Any, class_names: tuple[str, ...], grid: Any, *, live: bool = False
    ) -> None:
        """Show the class-probability layers; while scoring (``live``), only visible ones.

        Every in-place update costs napari a refresh of the layer (slice, thumbnail,
        redraw), so hidden layers are brought up to date once, at the end.
        """
        # imported here: the worker has loaded these modules by the first batch
        from napari_xai.core.layers import heatmap_layers
        from napari_xai.core.naming import slide_stem

        self._slide_name = self._slide_name or slide_stem(self._path)
        for ldt in heatmap_layers(
            maps,
            class_names,
            slide_name=self._slide_name,
            stride0=grid.stride0,
            tile_size0=grid.tile_size0,
        ):
            name = ldt[1]["name"]
            shown = self._viewer.layers[name].visible if name in self._viewer.layers else True
            if shown or not live:
                self.upsert(ldt)

    def _on_returned(self, result: ScoreResult) -> None:
        from napari_xai.core.layers import tiles_layer

        self.last_result = result
        self._show_maps(result.probabilities, result.class_names, result.grid)
        self.upsert(
            tiles_layer(result.tiles, slide_name=self._slide_name, class_names=result.class_names)
        )
        n = len(result.tiles)
        rate = result.timings.get("tiles_per_s", 0.0)
        self.set_progress(n, n, f"done: {n:,} tiles · {rate:,.1f} tiles/s")
        if not n:
            self._status.value = f"no tile scored: {self.warnings[-1] if self.warnings else ''}"
