"""The "Evaluate against annotations" widget.

:class:`EvaluationWidget` compares the model's tiles (and optionally a heatmap
and a saliency map) with the annotations in one core call,
:func:`napari_xai.core.annotations.evaluation.evaluate_against_annotations`, run
in a worker, and draws the confusion matrix.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from magicgui.widgets import (
    ComboBox,
    Container,
    FileEdit,
    FloatSpinBox,
    Label,
    LineEdit,
    PushButton,
)

from napari_xai._widgets._layout import ScrollPanel, fit_panel
from napari_xai._widgets.annotate import _class_names, _guarded

if TYPE_CHECKING:
    import napari.viewer


class EvaluationWidget(ScrollPanel, Container):
    """Compare the model's tiles (and maps) with the annotations; draw the confusion matrix.

    Parameters
    ----------
    viewer : napari.Viewer
        The viewer holding the annotation layer and maps.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True, scrollable=True)
        self._viewer = viewer
        self._tiles_layer = ComboBox(
            label="Tiles layer", choices=self._tiles_choices, nullable=True
        )
        self._tiles_path = FileEdit(label="or tiles.parquet", mode="r", filter="*.parquet")
        self._shapes = ComboBox(label="Annotations", choices=self._shapes_choices, nullable=True)
        self._positive = ComboBox(label="Region class", choices=_class_names(), value="Tumor")
        self._min_overlap = FloatSpinBox(label="Min overlap", value=0.5, min=0.01, max=1.0)
        self._background = LineEdit(label="Background class", value="")
        self._heatmap = ComboBox(label="Heatmap", choices=self._image_choices, nullable=True)
        self._threshold = FloatSpinBox(label="Threshold", value=0.5, min=0.0, max=1.0, step=0.05)
        self._saliency = ComboBox(label="Saliency", choices=self._image_choices, nullable=True)
        self._run = PushButton(text="Evaluate")
        self._save_path = FileEdit(label="Save to", mode="w", filter="*.json")
        self._save = PushButton(text="Save into audit.json")
        self._summary = Label(label="")
        self.extend(
            [
                self._tiles_layer,
                self._tiles_path,
                self._shapes,
                self._positive,
                self._min_overlap,
                self._background,
                self._heatmap,
                self._threshold,
                self._saliency,
                self._run,
                self._summary,
                self._save_path,
                self._save,
            ]
        )
        fit_panel(self)
        self._run.changed.connect(self._on_run)
        self._save.changed.connect(self._on_save)
        viewer.layers.events.inserted.connect(self._refresh)
        viewer.layers.events.removed.connect(self._refresh)
        self.result: dict[str, Any] | None = None
        self.tiles: Any = None  # a DataFrame set by tests or other widgets
        self._worker: Any = None
        self._figure: Any = None
        self._canvas: Any = None

    def _shapes_choices(self, _w: Any = None) -> list[Any]:
        from napari.layers import Shapes

        return [layer for layer in self._viewer.layers if isinstance(layer, Shapes)]

    def _image_choices(self, _w: Any = None) -> list[Any]:
        from napari.layers import Image

        return [
            layer for layer in self._viewer.layers if isinstance(layer, Image) and not layer.rgb
        ]

    def _tiles_choices(self, _w: Any = None) -> list[Any]:
        return [
            layer
            for layer in self._viewer.layers
            if layer.metadata.get("napari_xai") == "tiles" and "pred_class" in layer.features
        ]

    def _refresh(self, _event: Any = None) -> None:
        for w in (self._tiles_layer, self._shapes, self._heatmap, self._saliency):
            w.reset_choices()

    def _report(self, message: str, *, error: bool = False) -> None:
        from napari.utils.notifications import show_error, show_info

        (show_error if error else show_info)(message)

    @_guarded
    def _on_run(self, _value: Any = None, *, start: bool = True) -> Any:
        """Evaluate in a worker thread (one core call), then draw."""
        from napari.qt.threading import thread_worker

        from napari_xai.core.annotations.evaluation import (
            PlacedMap,
            evaluate_against_annotations,
        )
        from napari_xai.core.annotations.layers import shapes_to_annotations

        tiles = self.tiles
        tiles_layer = self._tiles_layer.value
        if tiles is None and tiles_layer is not None:
            tiles = tiles_layer.features.copy()
            tiles["pred_class"] = tiles["pred_class"].astype(str)
        if tiles is None:
            path = Path(str(self._tiles_path.value))
            if not path.is_file():
                self._report(f"{path}: tiles table not found", error=True)
                return None
            import pandas as pd  # noqa: TID253

            tiles = pd.read_parquet(path)
        layer = self._shapes.value
        if layer is None:
            self._report("Choose the annotation Shapes layer.", error=True)
            return None
        annotations, _ = shapes_to_annotations(
            layer.data, shape_types=layer.shape_type, features=layer.features
        )

        def placed(layer: Any) -> PlacedMap | None:
            if layer is None:
                return None
            return PlacedMap.from_layer_data(
                layer.data, scale=layer.scale[-2:], translate=layer.translate[-2:],
                multiscale=layer.multiscale,
            )  # fmt: skip

        kwargs = {
            "positive_class": str(self._positive.value),
            "min_overlap": float(self._min_overlap.value),
            "background": self._background.value or None,
            "heatmap": placed(self._heatmap.value),
            "threshold": float(self._threshold.value),
            "saliency": placed(self._saliency.value),
        }
        worker = thread_worker(evaluate_against_annotations, ignore_errors=True)(
            tiles, annotations, **kwargs
        )
        worker.returned.connect(self._on_result)
        worker.errored.connect(lambda e: self._report(str(e), error=True))
        self._worker = worker
        if start:  # tests start it themselves, inside qtbot.waitSignal
            worker.start()
        return worker

    @_guarded
    def _on_result(self, result: dict[str, Any]) -> None:
        self.result = result
        t = result["tiles"]
        parts = [f"{t['n_tiles']} tiles"]
        if t["accuracy"] is not None:
            parts.append(f"accuracy {t['accuracy']:.3f}")
        for name, m in t["per_class"].items():
            if m["auc"] is not None:
                parts.append(f"AUC {name} {m['auc']:.3f}")
        if "segmentation" in result:
            s = result["segmentation"]
            parts.append(f"Dice {s['dice']:.3f} IoU {s['iou']:.3f}")
        if "pointing_game" in result and result["pointing_game"]["energy_inside"] is not None:
            parts.append(f"saliency inside {result['pointing_game']['energy_inside']:.1%}")
        self._summary.value = ", ".join(parts)
        self._draw(t["labels"], t["confusion_matrix"])

    def _draw(self, labels: list[str], matrix: list[list[int]]) -> None:
        """Draw the confusion matrix with matplotlib inside the widget."""
        import numpy as np
        from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
        from matplotlib.figure import Figure

        if self._figure is None:
            self._figure = Figure(figsize=(4, 3.5), tight_layout=True)
            self._canvas = FigureCanvasQTAgg(self._figure)
            self._canvas.setMinimumHeight(280)
            self.inner.layout().addWidget(self._canvas)
        fig = self._figure
        fig.clear()
        ax = fig.add_subplot(1, 1, 1)
        cm = np.asarray(matrix, dtype=float)
        ax.imshow(cm, cmap="Blues")
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("annotated")
        top = cm.max() if cm.size else 0
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                ax.text(
                    j,
                    i,
                    f"{int(cm[i, j])}",
                    ha="center",
                    va="center",
                    color="white" if cm[i, j] > top / 2 else "black",
                )
        self._canvas.draw_idle()

    @_guarded
    def _on_save(self, _value: Any = None) -> None:
        """Merge the last evaluation into a JSON file (audit.json) under ``evaluation``."""
        from napari_xai.core.annotations.evaluation import write_evaluation

        if self.result is None:
            self._report("Run the evaluation first.", error=True)
            return
        path = Path(str(self._save_path.value))
        if not str(self._save_path.value) or path.is_dir():
            path = Path(str(self._tiles_path.value)).with_name("audit.json")
        try:
            write_evaluation(self.result, path)
        except (OSError, ValueError) as e:
            self._report(str(e), error=True)
            return
        self._report(f"Evaluation saved in {path}.")
