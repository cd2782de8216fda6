"""The "Evaluate against annotations" widget.

:class:`EvaluationWidget` compares the model's tiles (and optionally a heatmap
and a saliency map) with the annotations in one core call,
:func:`napari_xai.core.annotations.evaluation.evaluate_layers`, run in a worker
(the tiles table and the maps are read there), and draws the confusion matrix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from magicgui.widgets import FloatSpinBox, Label, LineEdit, PushButton

from napari_xai._widgets._base import RunWidget, guarded
from napari_xai._widgets._class_picker import class_picker
from napari_xai._widgets._pickers import file_edit, layer_picker, path_of

if TYPE_CHECKING:
    import napari.viewer


def _is_tiles(layer: Any) -> bool:
    return layer.metadata.get("napari_xai") == "tiles" and "pred_class" in layer.features


def _placed(layer: Any) -> dict[str, Any] | None:
    """Return an image layer's data and placement (read in the worker), or ``None``."""
    if layer is None:
        return None
    return {"data": layer.data, "scale": layer.scale[-2:], "translate": layer.translate[-2:],
            "multiscale": layer.multiscale}  # fmt: skip


class EvaluationWidget(RunWidget):
    """Compare the model's tiles (and maps) with the annotations; draw the confusion matrix."""

    title = "Evaluate"

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(viewer, slide=False, model=False, run_text="Evaluate")
        self._tiles_layer = layer_picker(viewer, "Tiles layer", "Layer", where=_is_tiles)
        self._tiles_path = file_edit(label="or tiles.parquet", mode="r", filter="*.parquet")
        self._shapes = layer_picker(viewer, "Annotations", "Shapes")
        self._positive = class_picker(viewer, "Region class")  # follows the Shapes layers
        self._min_overlap = FloatSpinBox(label="Min overlap", value=0.5, min=0.01, max=1.0)
        self._background = LineEdit(label="Background class", value="")
        scalar = lambda layer: not layer.rgb  # noqa: E731
        self._heatmap = layer_picker(viewer, "Heatmap", "Image", where=scalar)
        self._threshold = FloatSpinBox(label="Threshold", value=0.5, min=0.0, max=1.0, step=0.05)
        self._saliency = layer_picker(viewer, "Saliency", "Image", where=scalar)
        self._summary = Label(label="")
        self._save_path = file_edit(label="Save to", mode="w", filter="*.json")
        self._save_button = PushButton(text="Save into audit.json")
        self.finish(
            [self._tiles_layer, self._tiles_path, self._shapes, self._positive,
             self._min_overlap, self._background, self._heatmap, self._threshold,
             self._saliency, self._run, self._progress, self._status, self._summary,
             self._save_path, self._save_button],
        )  # fmt: skip
        self._save_button.changed.connect(self._on_save)
        self.refresh_on_layer_change(
            self._tiles_layer, self._shapes, self._heatmap, self._saliency
        )
        self.result: dict[str, Any] | None = None
        self.tiles: Any = None  # a DataFrame set by tests or other widgets
        self._figure: Any = None
        self._canvas: Any = None

    @guarded
    def _on_run(self, _value: Any = None) -> Any:
        """Evaluate in a worker (one core call: tables and maps are read there), then draw."""
        from napari_xai.core.annotations.evaluation import evaluate_layers
        from napari_xai.core.layers.editing import ShapesSnapshot

        tiles: Any = self.tiles
        if tiles is None and self._tiles_layer.value is not None:
            tiles = self._tiles_layer.value.features.copy()
            tiles["pred_class"] = tiles["pred_class"].astype(str)
        if tiles is None:
            tiles = path_of(self._tiles_path)
            if not tiles.is_file():
                self.error(f"{tiles}: tiles table not found")
                return None
        if self._shapes.value is None:
            self.error("Choose the annotation Shapes layer.")
            return None
        if self.busy():
            return None
        options: dict[str, Any] = {
            "positive_class": str(self._positive.value),
            "min_overlap": float(self._min_overlap.value),
            "background": self._background.value or None,
            "threshold": float(self._threshold.value),
        }
        return self.launch(
            evaluate_layers, tiles, ShapesSnapshot.of(self._shapes.value),
            heatmap=_placed(self._heatmap.value), saliency=_placed(self._saliency.value),
            status="evaluating…", on_returned=self._on_result, **options,
        )  # fmt: skip

    @guarded
    def _on_result(self, result: dict[str, Any]) -> None:
        self.result = result
        t = result["tiles"]
        parts = [f"{t['n_tiles']} tiles"]
        if t["accuracy"] is not None:
            parts.append(f"accuracy {t['accuracy']:.3f}")
        parts += [f"AUC {name} {m['auc']:.3f}" for name, m in t["per_class"].items()
                  if m["auc"] is not None]  # fmt: skip
        if "segmentation" in result:
            s = result["segmentation"]
            parts.append(f"Dice {s['dice']:.3f} IoU {s['iou']:.3f}")
        if "pointing_game" in result and result["pointing_game"]["energy_inside"] is not None:
            parts.append(f"saliency inside {result['pointing_game']['energy_inside']:.1%}")
        self._summary.value = ", ".join(parts)
        self._status.value = "done"
        self._draw(t["labels"], t["confusion_matrix"])

    def _draw(self, labels: list[str], matrix: list[list[int]]) -> None:
        """Draw the confusion matrix with matplotlib inside the widget."""
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        from napari_xai.core.annotations.evaluation import draw_confusion_matrix

        if self._figure is None:
            self._figure = Figure(figsize=(4, 3.5), tight_layout=True)
            self._canvas = FigureCanvasQTAgg(self._figure)
            self._canvas.setMinimumHeight(280)
            self.inner.layout().addWidget(self._canvas)
        self._figure.clear()
        draw_confusion_matrix(self._figure.add_subplot(1, 1, 1), labels, matrix)
        self._canvas.draw_idle()

    @guarded
    def _on_save(self, _value: Any = None) -> Any:
        """Merge the last evaluation into a JSON file (audit.json) under ``evaluation``."""
        from napari_xai.core.annotations.evaluation import write_evaluation

        if self.result is None:
            self.error("Run the evaluation first.")
            return None
        path = path_of(self._save_path)
        if not str(self._save_path.value) or path.is_dir():
            path = path_of(self._tiles_path).with_name("audit.json")
        if self.busy():
            return None
        done = lambda out: self.info(f"Evaluation saved in {out}.")  # noqa: E731
        return self.launch(write_evaluation, self.result, path, status="saving…", on_returned=done)
