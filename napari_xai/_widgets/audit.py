"""The "Audit" widget: does the model look at tissue, or at the pen mark.

* "Audit slide" runs :func:`napari_xai.core.pipeline.run_slide` with an audit in
  a worker (model loading included; the folder's score is kept, a slide not
  scored yet is scored first), then shows
  :func:`napari_xai.core.layers.audit.audit_layers` (audited tiles, flagged ones
  filled; the region map), the verdict and its evidence, and a gallery of the
  worst tiles (tile + attribution overlay): clicking one centres the camera on
  that tile. The HTML report and ``audit.json`` are in the slide's result folder
  (its manifest lists them, so later runs keep them).
* "Audit cohort" runs :func:`napari_xai.core.audit.data.iter_audit_cohort` on a
  cohort CSV (optionally with the model: where it looks on the cohort's tiles).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import CheckBox, ComboBox, Label, PushButton, SpinBox

from napari_xai._widgets._audit_work import audit_in_worker, cohort_in_worker
from napari_xai._widgets._base import RunWidget, default_output
from napari_xai._widgets._explain_sanity import MethodSanity
from napari_xai._widgets._gallery import fill_gallery, make_gallery
from napari_xai._widgets._masks import masks_button
from napari_xai._widgets._pickers import file_edit, offer, path_of, slide_source
from napari_xai.core.layers.audit import regions_layer_name, tiles_layer_name  # noqa: F401
from napari_xai.core.naming import AUDIT_METHOD_NAMES
from napari_xai.core.options import AuditSpec, GridOptions, RunOptions

if TYPE_CHECKING:
    import napari.viewer

    from napari_xai.core.audit.data import DataAudit
    from napari_xai.core.audit.slide import SlideAudit

METHODS = AUDIT_METHOD_NAMES


class AuditWidget(MethodSanity, RunWidget):
    """Audit where a model looks on a slide, and audit a cohort's data (``viewer``: the base's)."""

    title = "Audit"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer, run_text="Audit slide")
        self._method = ComboBox(label="method", choices=list(METHODS), value="grad_cam")
        self._model_sha: str | None = None  # the method's sanity status is per model
        self._max_tiles = SpinBox(
            label="max tiles", value=256, min=1, max=100_000,
            tooltip="Tiles explained (all tiles touching artefacts first, then spread evenly)",
        )  # fmt: skip
        self._batch_size = SpinBox(label="batch size", value=16, min=1, max=1024)
        self._output = file_edit(label="output folder", mode="d", value=str(default_output()))
        self._verdict = Label(value="")
        self._cohort = file_edit(label="cohort CSV", mode="r", filter="*.csv")
        # choices from the cohort CSV's header, offered when one is chosen
        self._label_column = ComboBox(label="label column", choices=["label"], value="label")
        self._cohort_model = CheckBox(
            text="also: where the model looks on the tiles", value=False,
            tooltip="Explain the cohort's tile images with the model and method above",
        )  # fmt: skip
        self._run_cohort = PushButton(text="Audit cohort")
        self.last_result: SlideAudit | None = None
        self.last_data: DataAudit | None = None
        self._slide_layer_for_result: Any = None
        self._show_masks = masks_button(self)
        self.finish(
            [
                self._method,
                self.sanity_label(),
                self._max_tiles,
                self._batch_size,
                self._output,
                *self.run_controls(),
                self._show_masks,
                self._verdict,
                Label(value="Cohort data"),
                self._cohort,
                self._label_column,
                self._cohort_model,
                self._run_cohort,
                Label(value="Worst tiles of the slide audit (click to go there)"),
            ],
            busy=[self._run_cohort, self._show_masks],
        )
        # A Qt list in icon mode, added last so magicgui's own layout indices stay valid.
        self._gallery = make_gallery(self.jump_to)
        self.inner.layout().addWidget(self._gallery)
        self._cohort.changed.connect(self._on_cohort_changed)
        self._method.changed.connect(self._show_sanity)
        self._run_cohort.changed.connect(self._on_run_cohort)

    # -- controls --------------------------------------------------------------------
    def _on_model_described(self, model: Any) -> None:
        """Show the model's card, and the method's sanity status on this model."""
        super()._on_model_described(model)
        self._model_sha = getattr(model, "sha256", None)
        self._show_sanity()

    def _on_cohort_changed(self, _value: Any = None) -> None:
        """Offer the CSV's columns as label column choices."""
        path = path_of(self._cohort)
        if not path.is_file():
            return
        try:
            header = path.read_text(encoding="utf-8", errors="replace").splitlines()[0]
        except (OSError, IndexError):
            return
        cols = [c.strip().strip('"') for c in header.split(",") if c.strip()]
        if cols:
            previous = self._label_column.value
            offer(self._label_column, cols)
            if previous not in cols:
                self._label_column.value = "label" if "label" in cols else cols[-1]

    # -- running ---------------------------------------------------------------------
    def _on_run(self, _value: Any = None) -> None:
        """Start the slide audit in a worker thread."""
        layer = self.slide_to_run()
        if layer is None:
            return
        self._slide_layer_for_result = layer
        self.launch(
            audit_in_worker,
            slide_source(layer),
            self._model_spec(),
            path_of(self._output),
            spec=AuditSpec(method=str(self._method.value), max_tiles=int(self._max_tiles.value)),
            grid=GridOptions(mpp=layer.metadata.get("mpp_override")),
            run=RunOptions(explain_batch_size=int(self._batch_size.value)),
            status=f"auditing {layer.name} ({self._method.value})…",
            on_yielded=self.show_step,  # the audit's steps and the pipeline's
            on_returned=self._on_returned,
        )

    def _on_run_cohort(self, _value: Any = None) -> None:
        """Start the cohort data audit in a worker thread."""
        path = path_of(self._cohort)
        if not path.is_file():
            self.error(f"cohort table not found: {path}")
            return
        if self.busy():
            return
        extra: dict[str, Any] = {}
        if self._cohort_model.value:
            extra = {"method": str(self._method.value), "batch_size": int(self._batch_size.value)}
        self.launch(
            cohort_in_worker,
            path,
            self._model_spec() if self._cohort_model.value else None,
            label_column=str(self._label_column.value),
            out_dir=path_of(self._output) / path.stem,
            status=f"auditing cohort {path.name}…",
            on_yielded=lambda step: self.set_progress(
                step[0], step[1], f"reading images: {step[0]:,} / {step[1]:,}"
            ),
            on_returned=self._on_cohort_returned,
            **extra,
        )

    def _on_cohort_returned(self, result: DataAudit) -> None:
        from napari_xai.core.layers.audit import cohort_text

        self.last_data = result
        self._verdict.value = cohort_text(result)
        self._status.value = f"report: {result.report_path}"

    def _on_returned(self, result: SlideAudit) -> None:
        from napari_xai.core.layers.audit import audit_layers, verdict_text

        self.last_result = result
        layer = self._slide_layer_for_result
        placed = layer is not None and layer in self._viewer.layers
        for ldt in audit_layers(
            result,
            name=layer.name if layer is not None else Path(str(result.slide_path)).stem,
            scale_rc=tuple(layer.scale[-2:]) if placed else (1.0, 1.0),
            translate_rc=tuple(layer.translate[-2:]) if placed else (0.0, 0.0),
        ):
            self.upsert(ldt)
        if placed:
            self._viewer.layers.selection.active = layer
        self._verdict.value, self._verdict.tooltip = verdict_text(result)
        self._show_sanity()  # the audit has just checked the method on this model
        self._status.value = f"report: {result.report_path}"
        from napari_xai.core.layers.audit import gallery_items

        fill_gallery(self._gallery, gallery_items(result))

    def jump_to(self, rank: int) -> tuple[float, float] | None:
        """Centre the camera on the ``rank``-th worst tile; return its world centre."""
        from napari_xai.core.layers.audit import tile_centre

        found = None if self.last_result is None else tile_centre(self.last_result, rank)
        if found is None:
            return None
        row, col, height = found
        centre, scale = (row, col), 1.0
        layer = self._slide_layer_for_result
        if layer is not None and layer in self._viewer.layers:
            world = layer.data_to_world([row, col])
            centre, scale = (float(world[-2]), float(world[-1])), float(abs(layer.scale[-1]))
        scene = getattr(self._viewer, "scene", None)  # napari >= 0.9
        cam = scene.camera if scene is not None else self._viewer.camera
        cam.center = centre
        size = getattr(getattr(self._viewer, "canvas", None), "size", None) or (800, 800)
        cam.zoom = float(min(size[-2:])) / (3.0 * height * scale)
        self._gallery.setCurrentRow(rank)
        return centre
