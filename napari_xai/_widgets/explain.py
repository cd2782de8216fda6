"""The "Explain" widget: whole-slide saliency layers and a look inside the model.

Each action is one core call run in a worker (model loading included; torch and
captum are imported there, never on the GUI thread):

* Explain → :func:`napari_xai.core.attribution.whole_slide.iter_explain_view` (only
  the tiles in the current view, cached in the scratch store beside the result
  folder) or :func:`napari_xai.core.pipeline.run_slide` with an explain stage
  (every scored tile, resumable, into the slide's result folder; a slide not scored
  yet is scored first); each yielded batch moves the progress bar and, a few times
  a second, refreshes the saliency layer from the zarr store as it fills.
* "Inside the model" (:mod:`napari_xai._widgets._explain_inside`): a layer's channels
  for the tile under the cursor, or one channel across the slide.
* "Follow the view" (:mod:`napari_xai._widgets._explain_follow`) re-runs after pan/zoom.

* The method's sanity status on the model (:mod:`napari_xai._widgets._explain_sanity`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from magicgui.widgets import CheckBox, ComboBox, SpinBox

from napari_xai._widgets._base import RunWidget, default_output
from napari_xai._widgets._explain_follow import VIEW, FollowView
from napari_xai._widgets._explain_inside import InsideModel
from napari_xai._widgets._explain_sanity import MethodSanity
from napari_xai._widgets._explain_work import (  # noqa: F401 - describe_for_explain: tests
    describe_for_explain,
    explain_into_folder,
    run_in_worker,
)
from napari_xai._widgets._grid import grid_options, mpp_box, overlap_box
from napari_xai._widgets._pickers import file_edit, offer, path_of, slide_source
from napari_xai.core.naming import METHOD_NAMES, slide_stem

if TYPE_CHECKING:
    import napari.viewer

    from napari_xai.core.attribution.whole_slide import ExplainProgress, ExplainResult
    from napari_xai.core.pipeline import PipelineProgress

SLIDE = "whole slide"
PREDICTED = "predicted"
#: Seconds between live layer refreshes.
REFRESH_S = 0.5
#: Method names in menu order (the registry's order: core/naming.py).
METHODS = METHOD_NAMES


class ExplainWidget(FollowView, InsideModel, MethodSanity, RunWidget):
    """Explain a slide layer's model predictions as saliency layers (``viewer``: the base's)."""

    title = "Explain"
    aborted_note = "; the store keeps what is done"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer, run_text="Explain")
        # Method, target and layer choices are offered by the current model
        # (_on_model_described): the methods it supports, "predicted" and its classes.
        self._method = ComboBox(label="method", choices=list(METHODS), value="grad_cam")
        # The method's sanity status on this model (from the last audit that checked it).
        self._model_sha: str | None = None
        self._target = ComboBox(label="target", choices=[PREDICTED], value=PREDICTED)
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
        self._overlap = overlap_box()
        self._batch_size = SpinBox(label="batch size", value=16, min=1, max=1024)
        self._mpp = mpp_box()
        self._output = file_edit(label="output folder", mode="d", value=str(default_output()))
        self._last_refresh = 0.0
        self._layer_name: str | None = None
        self._slide_name = ""  # the running slide's name (its maps' "slide" metadata)
        self.last_result: ExplainResult | None = None
        self.finish(
            [
                self._method,
                self.sanity_label(),
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
                *self.run_controls(),
                *self.inside_controls(),
            ],
            busy=[self._channel_slide, self._show_channels],
        )
        self._method.changed.connect(self._show_sanity)
        self.wire_inside()
        self.wire_follow()

    # -- the model's choices -----------------------------------------------------------
    def _describe_model(self, spec: Any) -> Any:
        return describe_for_explain(spec)

    def _on_model_described(self, described: Any) -> None:
        """Refresh target classes, supported methods and layers for the chosen model."""
        model, methods, layers = described
        super()._on_model_described(model)
        self._model_sha = getattr(model, "sha256", None)
        offer(self._target, [PREDICTED, *(str(c) for c in model.card.class_names)])
        offer(self._method, methods)
        self.show_model_layers(layers)
        self._show_sanity()

    # -- running ---------------------------------------------------------------------
    def _start(self, where: str | None, slide: Any, /, *args: Any, status: str, **kw: Any) -> Any:
        """Run ``where`` (a core call) into the scratch store; None: the whole slide's map.

        The whole slide's map goes into the slide's result folder
        (:func:`explain_into_folder`); views and channels into the scratch store.
        """
        from napari_xai.core.options import RunOptions

        self._last_refresh = 0.0
        self._layer_name = None
        self._slide_name = slide_stem(slide.metadata["path"])
        self.last_result = None
        body: Callable[..., Any] = run_in_worker
        head: tuple[str, ...] = (where,) if where is not None else ()
        done: Callable[[Any], None] = self._on_returned
        if where is None:  # the whole slide's map: into the result folder
            body, done = explain_into_folder, self._on_folder_returned
            kw["explain"] = kw.pop("spec")
        return self.launch(
            body,
            *head,
            slide_source(slide),
            self._model_spec(),
            path_of(self._output),
            *args,
            grid=grid_options(overlap=self._overlap, mpp=self._mpp),
            run=RunOptions(explain_batch_size=int(self._batch_size.value)),
            status=status,
            on_yielded=self._on_yielded,
            on_returned=done,
            **kw,
        )

    def _on_run(self, _value: Any = None) -> None:
        """Start explaining (view or whole slide) in a worker thread."""
        layer = self.slide_to_run()
        if layer is None:
            return
        from napari_xai.core.options import ExplainSpec

        options: dict[str, Any] = {
            "spec": ExplainSpec(
                method=str(self._method.value),
                target=None if self._target.value == PREDICTED else str(self._target.value),
                n_steps=int(self._n_steps.value),
                smooth_samples=int(self._smooth_samples.value) if self._smooth.value else 0,
            )
        }
        status = f"explaining {layer.name} ({self._method.value})…"
        if self._mode.value == VIEW:
            where = "napari_xai.core.attribution.whole_slide:iter_explain_view"
            options.update(zoom=float(self._camera().zoom), max_tiles=int(self._max_tiles.value))
            self._start(where, layer, self.view_rect(layer), status=status, **options)
        else:
            self._start(None, layer, status=status, **options)

    def _on_yielded(self, step: ExplainProgress | PipelineProgress) -> None:
        if not hasattr(step, "layer_name"):  # the pipeline's: scoring first, writing
            self.show_step(step)
            return
        step = cast("ExplainProgress", step)
        self.set_progress(
            step.n_done,
            step.n_total,
            f"{step.n_done:,} / {step.n_total:,} tiles · {step.tiles_per_s:,.1f} tiles/s",
        )
        now = time.monotonic()
        first = self._layer_name is None and bool(step.layer_name)
        if not first and (self._layer_name is None or now - self._last_refresh < REFRESH_S):
            return
        self._last_refresh = now
        name = str(step.layer_name if first else self._layer_name)
        if self._refresh_layer(step.store, step.key, name):
            self._layer_name = name

    def _refresh_layer(self, store: Any, key: str, name: str) -> bool:
        """Show the map with fresh reads of the store (it fills in as it is written).

        Fresh dask arrays have fresh task names, so napari's chunk cache cannot serve
        tiles read before the last write.
        """
        from napari_xai.core.layers.saliency import stitched_layer

        try:
            slide = {"slide": self._slide_name}  # as the slide's other maps
            self.upsert(stitched_layer(store, key, name=name, metadata=slide))
        except Exception:  # noqa: BLE001 - a write in flight; try at the next refresh
            return False
        return True

    def _on_returned(self, result: ExplainResult) -> None:
        from napari_xai.core.layers.saliency import saliency_layer

        self.last_result = result
        self._layer_name = result.layer_name
        self.upsert(saliency_layer(result))
        self.set_progress(
            result.n_computed,
            result.n_computed,
            f"done: {result.n_computed:,} computed, {result.n_cached:,} cached · "
            f"{result.n_done:,} / {result.n_tiles:,} tiles of the slide",
        )

    def _on_folder_returned(self, returned: tuple[ExplainResult, Any]) -> None:
        """Show the whole-slide map as the result folder holds it (the reader's layer)."""
        result, layer = returned
        self.last_result, self._layer_name = result, result.layer_name
        self.upsert(layer)
        n = result.n_computed
        how = f"{n:,} computed, {result.n_cached:,} cached" if n else "kept from the folder"
        where = f"{result.n_done:,} / {result.n_tiles:,} tiles in {result.store.parent}"
        self.set_progress(n, n, f"done: {how} · {where}")

    def _on_finished(self) -> None:
        super()._on_finished()
        self.rerun_if_asked()
