"""The "Audit" widget: does the model look at tissue, or at the pen mark.

* "Audit slide" runs :func:`napari_xai.core.audit.slide.iter_audit_slide` in a
  ``thread_worker`` (progress bar, Cancel → ``worker.quit()``), then adds the
  audited tiles as a Shapes layer (flagged tiles in red, shares in ``features``)
  and the region map (tissue / artefact / border) as a Labels layer, both
  aligned with the slide; shows the verdict and evidence; fills a gallery of the
  worst tiles (tile + attribution overlay) — clicking one centres the camera on
  that tile. The HTML report and ``audit.json`` go to the output folder.
* "Audit cohort" runs :func:`napari_xai.core.audit.data.iter_audit_cohort` on a
  cohort CSV (optionally with the model: where it looks on the cohort's tiles)
  and writes its report.

Heavy modules (torch, pandas, the core) are imported inside methods only.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import (
    CheckBox,
    ComboBox,
    Container,
    FileEdit,
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

if TYPE_CHECKING:
    import napari
    import napari.layers
    import napari.viewer

    from napari_xai.core.audit.data import DataAudit
    from napari_xai.core.audit.slide import AuditProgress, SlideAudit

METHODS = ("grad_cam", "saliency", "integrated_gradients", "gradient_shap", "occlusion")
#: Gallery icon size in screen pixels.
ICON_PX = 96


def default_output() -> Path:
    """Default folder for audit reports (``<tmp>/napari-xai``)."""
    return Path(tempfile.gettempdir()) / "napari-xai"


def tiles_layer_name(slide_name: str) -> str:
    """Name of the audited-tiles layer (re-runs replace it)."""
    return f"{slide_name} audit tiles"


def regions_layer_name(slide_name: str) -> str:
    """Name of the region-map layer (re-runs replace it)."""
    return f"{slide_name} audit regions"


class AuditWidget(ScrollPanel, Container):
    """Audit where a model looks on a slide, and audit a cohort's data.

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
        self._method = ComboBox(label="method", choices=list(METHODS), value="grad_cam")
        self._max_tiles = SpinBox(
            label="max tiles", value=256, min=1, max=100_000,
            tooltip="Tiles explained (all tiles touching artefacts first, then spread evenly)",
        )  # fmt: skip
        self._batch_size = SpinBox(label="batch size", value=16, min=1, max=1024)
        self._output = FileEdit(label="output folder", mode="d", value=str(default_output()))
        self._run = PushButton(text="Audit slide")
        self._cancel = PushButton(text="Cancel", enabled=False)
        self._progress = ProgressBar(label="progress", value=0, min=0, max=1)
        self._status = Label(value="")
        self._verdict = Label(value="")
        self._cohort = FileEdit(label="cohort CSV", mode="r", filter="*.csv")
        # choices from the cohort CSV's header (a callable: napari's reset_choices() on
        # every layer change re-evaluates it and keeps the current column)
        self._columns: tuple[str, ...] = ("label",)
        self._label_column = ComboBox(
            label="label column", choices=self._column_choices, value="label"
        )
        self._cohort_model = CheckBox(
            text="also: where the model looks on the tiles", value=False,
            tooltip="Explain the cohort's tile images with the model and method above",
        )  # fmt: skip
        self._run_cohort = PushButton(text="Audit cohort")
        self.extend(
            [
                self._slide_layer,
                self._model_source,
                self._model_file,
                self._method,
                self._max_tiles,
                self._batch_size,
                self._output,
                self._run,
                self._cancel,
                self._progress,
                self._status,
                self._verdict,
                Label(value="Cohort data"),
                self._cohort,
                self._label_column,
                self._cohort_model,
                self._run_cohort,
                Label(value="Worst tiles of the slide audit (click to go there)"),
            ]
        )
        # A Qt list in icon mode, added last so magicgui's own layout indices stay valid.
        self._gallery = self._make_gallery()
        self.inner.layout().addWidget(self._gallery)
        fit_panel(self)
        self._worker: Any = None
        self.last_result: SlideAudit | None = None
        self.last_data: DataAudit | None = None
        self._slide_layer_for_result: Any = None
        self._model_source.changed.connect(self._on_model_changed)
        self._cohort.changed.connect(self._on_cohort_changed)
        self._run.changed.connect(self._on_run)
        self._cancel.changed.connect(self._on_cancel)
        self._run_cohort.changed.connect(self._on_run_cohort)
        viewer.layers.events.inserted.connect(self._refresh_slides)
        viewer.layers.events.removed.connect(self._refresh_slides)
        self._refresh_slides()

    # -- controls --------------------------------------------------------------------
    def _make_gallery(self) -> Any:
        from qtpy.QtCore import QSize
        from qtpy.QtWidgets import QListView, QListWidget

        gallery = QListWidget()
        gallery.setViewMode(QListView.ViewMode.IconMode)
        gallery.setIconSize(QSize(ICON_PX, ICON_PX))
        gallery.setResizeMode(QListView.ResizeMode.Adjust)
        gallery.setMinimumHeight(ICON_PX * 2 + 40)
        gallery.setWordWrap(True)
        gallery.itemClicked.connect(lambda item: self.jump_to(gallery.row(item)))
        return gallery

    def _slide_choices(self, _widget: Any = None) -> list[tuple[str, Any]]:
        """Image layers that come from a slide file (have ``metadata['path']``)."""
        return slide_layer_choices(self._viewer)

    def _refresh_slides(self, _event: Any = None) -> None:
        self._slide_layer.reset_choices()
        choices = self._slide_choices()
        if self._slide_layer.value is None and choices:
            self._slide_layer.value = choices[0][1]

    def _on_model_changed(self, _value: Any = None) -> None:
        show_model_file(self._model_source.value, self._model_file)

    def _on_cohort_changed(self, _value: Any = None) -> None:
        """Offer the CSV's columns as label column choices."""
        path = Path(self._cohort.value)
        if not path.is_file():
            return
        try:
            header = path.read_text(encoding="utf-8", errors="replace").splitlines()[0]
        except (OSError, IndexError):
            return
        cols = [c.strip().strip('"') for c in header.split(",") if c.strip()]
        if cols:
            previous = self._label_column.value
            self._columns = tuple(cols)
            self._label_column.reset_choices()
            if previous not in cols:
                self._label_column.value = "label" if "label" in cols else cols[-1]

    def _column_choices(self, _widget: Any = None) -> list[str]:
        """Columns of the chosen cohort CSV (``label`` before one is chosen)."""
        return list(self._columns)

    def _model_spec(self) -> str | Path:
        return model_spec(self._model_source.value, self._model_file.value)

    # -- running ---------------------------------------------------------------------
    def _on_run(self, _value: Any = None) -> None:
        """Start the slide audit in a worker thread."""
        from napari.qt.threading import thread_worker
        from napari.utils.notifications import show_error

        from napari_xai.core.audit.slide import iter_audit_slide
        from napari_xai.core.inference import slide_stem

        layer: napari.layers.Image | None = self._slide_layer.value
        if layer is None:
            show_error("Audit: open a slide first (File ▸ Open, napari-xai reader)")
            return
        if self._worker is not None:
            show_error("Audit: already running; cancel first")
            return
        try:
            from napari_xai.core.models.resolve import resolve_model

            model = resolve_model(self._model_spec())
        except Exception as exc:  # noqa: BLE001 - any loading problem becomes a message
            show_error(f"Audit: {exc}")
            return
        path = layer.metadata["path"]
        source = layer.metadata.get("slide") or path
        out_dir = Path(self._output.value) / slide_stem(path)
        worker = thread_worker(iter_audit_slide)(
            source,
            model,
            method=str(self._method.value),
            max_tiles=int(self._max_tiles.value),
            batch_size=int(self._batch_size.value),
            mpp=layer.metadata.get("mpp_override"),
            out_dir=out_dir,
        )
        self._slide_layer_for_result = layer
        worker.yielded.connect(self._on_yielded)
        worker.returned.connect(self._on_returned)
        self._start(worker, f"auditing {layer.name} ({self._method.value})…")

    def _on_run_cohort(self, _value: Any = None) -> None:
        """Start the cohort data audit in a worker thread."""
        from napari.qt.threading import thread_worker
        from napari.utils.notifications import show_error

        from napari_xai.core.audit.data import iter_audit_cohort

        path = Path(self._cohort.value)
        if not path.is_file():
            show_error(f"Audit: cohort table not found: {path}")
            return
        if self._worker is not None:
            show_error("Audit: already running; cancel first")
            return
        extra: dict[str, Any] = {}
        if self._cohort_model.value:
            try:
                from napari_xai.core.models.resolve import resolve_model

                extra["model"] = resolve_model(self._model_spec())
            except Exception as exc:  # noqa: BLE001 - any loading problem becomes a message
                show_error(f"Audit: {exc}")
                return
            extra["method"] = str(self._method.value)
            extra["batch_size"] = int(self._batch_size.value)
        worker = thread_worker(iter_audit_cohort)(
            path,
            label_column=str(self._label_column.value),
            out_dir=Path(self._output.value) / path.stem,
            **extra,
        )
        worker.yielded.connect(self._on_cohort_yielded)
        worker.returned.connect(self._on_cohort_returned)
        self._start(worker, f"auditing cohort {path.name}…")

    def _start(self, worker: Any, status: str) -> None:
        worker.errored.connect(self._on_errored)
        worker.finished.connect(self._on_finished)
        self._worker = worker
        self._run.enabled = False
        self._run_cohort.enabled = False
        self._cancel.enabled = True
        self._progress.value = 0
        self._status.value = status
        worker.start()

    def _on_cancel(self, _value: Any = None) -> None:
        if self._worker is not None:
            self._worker.quit()
            self._status.value = "cancelling…"

    def _on_yielded(self, step: AuditProgress) -> None:
        self._progress.max = max(step.n_total, 1)
        self._progress.value = step.n_done
        self._status.value = f"{step.stage}: {step.n_done:,} / {step.n_total:,} tiles"

    def _on_cohort_yielded(self, step: tuple[int, int]) -> None:
        done, total = step
        self._progress.max = max(total, 1)
        self._progress.value = done
        self._status.value = f"reading images: {done:,} / {total:,}"

    def _on_errored(self, exc: BaseException) -> None:
        from napari.utils.notifications import show_error

        show_error(f"Audit: {exc}")
        self._status.value = f"error: {exc}"

    def _on_finished(self) -> None:
        self._worker = None
        self._run.enabled = True
        self._run_cohort.enabled = True
        self._cancel.enabled = False

    def _on_cohort_returned(self, result: DataAudit) -> None:
        self.last_data = result
        flags = "; ".join(result.flags) if result.flags else "nothing flagged"
        text = f"cohort data: {result.verdict.upper()} - {flags}"
        if result.tile_audit is not None:
            att = result.tile_audit.attention
            text += (
                f"\nmodel attention: {att.verdict.upper()} - artefacts "
                f"{att.shares['artefact']:.1%} of attribution, {int(att.flagged.sum())} / "
                f"{att.n_tiles} tiles flagged"
            )
        self._verdict.value = text
        self._status.value = f"report: {result.report_path}"

    def _on_returned(self, result: SlideAudit) -> None:
        self.last_result = result
        layer = self._slide_layer_for_result
        for ldt in audit_layers(result, slide_layer=layer):
            self._upsert(ldt)
        if layer is not None and layer in self._viewer.layers:
            self._viewer.layers.selection.active = layer
        att = result.attention
        self._verdict.value = (
            f"{result.sentence}\nattention {att.verdict.upper()}: artefacts "
            f"{att.shares['artefact']:.1%} of attribution (area "
            f"{att.area_shares['artefact']:.1%}), {int(att.flagged.sum())} / "
            f"{att.n_tiles} tiles flagged"
        )
        evidence = result.shortcut.evidence if result.shortcut is not None else []
        self._verdict.tooltip = "\n".join([*evidence, *att.evidence])
        self._status.value = f"report: {result.report_path}"
        self._fill_gallery(result)

    def _upsert(self, ldt: tuple[Any, dict[str, Any], str]) -> Any:
        """Replace the layer with this name, or add it."""
        from napari.layers import Layer

        data, kwargs, layer_type = ldt
        name = kwargs["name"]
        if name in self._viewer.layers:
            old = self._viewer.layers[name]
            index = self._viewer.layers.index(old)
            self._viewer.layers.remove(old)
            new = show_colorbar(Layer.create(data, kwargs, layer_type))
            self._viewer.layers.insert(index, new)
            return new
        return self._viewer.add_layer(show_colorbar(Layer.create(data, kwargs, layer_type)))

    # -- gallery ---------------------------------------------------------------------
    def _fill_gallery(self, result: SlideAudit) -> None:
        import numpy as np
        from qtpy.QtGui import QIcon, QImage, QPixmap
        from qtpy.QtWidgets import QListWidgetItem

        from napari_xai.core.audit.report import _overlay

        self._gallery.clear()
        att = result.attention
        for rank, i in enumerate(att.worst):
            if rank >= len(result.worst_images):
                break
            img = _overlay(result.worst_images[rank], result.worst_maps[rank])
            img = np.ascontiguousarray(
                np.concatenate([result.worst_images[rank], img], axis=1), dtype=np.uint8
            )
            h, w = img.shape[:2]
            qimg = QImage(img.data, w, h, 3 * w, QImage.Format.Format_RGB888).copy()
            sh = att.tile_shares[i]
            text = f"#{rank + 1} off-tissue {1 - sh[1]:.0%}" + (" ⚑" if att.flagged[i] else "")
            item = QListWidgetItem(QIcon(QPixmap.fromImage(qimg)), text)
            item.setToolTip(
                f"tile {i} ({result.tiles['pred_class'].iloc[i]}): artefact {sh[2]:.0%}, "
                f"background {sh[0]:.0%}, border {sh[3]:.0%}, tissue {sh[1]:.0%}"
            )
            self._gallery.addItem(item)

    def _camera(self) -> Any:
        scene = getattr(self._viewer, "scene", None)  # napari >= 0.9
        return scene.camera if scene is not None else self._viewer.camera

    def jump_to(self, rank: int) -> tuple[float, float] | None:
        """Centre the camera on the ``rank``-th worst tile; return its world centre."""
        result = self.last_result
        if result is None or not 0 <= rank < len(result.attention.worst):
            return None
        i = result.attention.worst[rank]
        row = result.tiles.iloc[i]
        centre = (float(row["row"]) + row["height"] / 2.0, float(row["col"]) + row["width"] / 2.0)
        layer = self._slide_layer_for_result
        if layer is not None and layer in self._viewer.layers:
            world = layer.data_to_world(list(centre))
            centre = (float(world[-2]), float(world[-1]))
            scale = float(abs(layer.scale[-1]))
        else:
            scale = 1.0
        cam = self._camera()
        cam.center = centre
        canvas = getattr(self._viewer, "canvas", None)
        size = getattr(canvas, "size", None) or (800, 800)
        cam.zoom = float(min(size[-2:])) / (3.0 * float(row["height"]) * scale)
        self._gallery.setCurrentRow(rank)
        return centre


def audit_layers(
    result: SlideAudit, *, slide_layer: Any = None
) -> list[tuple[Any, dict[str, Any], str]]:
    """LayerData tuples of a slide audit: audited tiles (Shapes) and regions (Labels).

    Both are in level-0 pixels; when ``slide_layer`` is given they take its scale
    and translate, so they line up with the slide at every zoom.
    """
    import numpy as np

    from napari_xai.core.audit.attention import REGION_NAMES
    from napari_xai.core.inference import slide_stem
    from napari_xai.core.naming import ROLE_COLOURS

    name = slide_layer.name if slide_layer is not None else slide_stem(result.slide_path)
    base_scale = np.ones(2)
    base_translate = np.zeros(2)
    if slide_layer is not None:
        base_scale = np.asarray(slide_layer.scale[-2:], float)
        base_translate = np.asarray(slide_layer.translate[-2:], float)
    t = result.tiles
    rects = [
        np.array([[r, c], [r + h, c], [r + h, c + w], [r, c + w]], dtype=float)
        for r, c, h, w in zip(t["row"], t["col"], t["height"], t["width"], strict=True)
    ]
    flagged = t["flagged"].to_numpy(bool)
    flag, plain = ROLE_COLOURS["flag"], ROLE_COLOURS["tile"]
    edge = np.where(flagged[:, None], [[*flag, 1.0]], [[*plain, 0.8]])
    # Flagged tiles are filled (vermillion, the one red), so they stay visible when zoomed out.
    face = np.where(flagged[:, None], [[*flag, 0.45]], [[0.0, 0.0, 0.0, 0.0]])
    features = t.drop(columns=["grid_index"], errors="ignore").reset_index(drop=True)
    tiles_ldt = (
        rects,
        {
            "name": tiles_layer_name(name),
            "shape_type": "rectangle",
            "edge_color": edge,
            "face_color": face,
            "edge_width": np.where(flagged, 2.0, 1.0) * max(float(t["height"].iloc[0]) / 32, 1)
            if len(t)
            else 1.0,
            "features": features,
            "scale": tuple(base_scale),
            "translate": tuple(base_translate),
            "metadata": {"audit": {"verdict": result.verdict, "report": str(result.report_path)}},
        },
        "shapes",
    )
    ds = float(result.regions_downsample)
    regions_ldt = (
        np.asarray(result.regions, dtype=np.uint8),
        {
            "name": regions_layer_name(name),
            "scale": tuple(base_scale * ds),
            "translate": tuple(base_translate + (ds - 1) / 2.0 * base_scale),
            "opacity": 0.35,
            "visible": False,
            "metadata": {"region_names": list(REGION_NAMES), "downsample": ds},
        },
        "labels",
    )
    return [regions_ldt, tiles_ldt]
