"""Slide and model pickers shared by the widgets (cheap imports only)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import napari.layers
    import napari.viewer

DEMO = "demo model (bundled)"
FROM_FILE = "model file…"
#: A model folder: a WSInfer model (``config.json`` + weights) or a card folder.
FROM_FOLDER = "model folder (WSInfer)…"
#: The model picker's choices, in menu order.
MODEL_SOURCES = (DEMO, FROM_FILE, FROM_FOLDER)
MODEL_FILE_FILTER = "*.pt *.pth *.ts *.json"


def slide_layer_choices(viewer: napari.viewer.Viewer) -> list[tuple[str, Any]]:
    """Image layers that come from a slide file (have ``metadata['path']``)."""
    from napari.layers import Image

    return [
        (layer.name, layer)
        for layer in viewer.layers
        if isinstance(layer, Image) and layer.metadata.get("path")
    ]


def show_model_file(source: str, model_file: Any) -> None:
    """Show the path picker for a file or a folder source (hidden for the demo)."""
    model_file.visible = source in (FROM_FILE, FROM_FOLDER)
    model_file.mode = "d" if source == FROM_FOLDER else "r"


def model_spec(source: str, model_file: str | Path) -> str | Path:
    """``"demo"`` or the model path; a card / WSInfer ``config.json`` means its folder."""
    if source == DEMO:
        return "demo"
    path = Path(model_file)
    if source == FROM_FOLDER:
        return path
    return path.parent if path.name.endswith(".json") else path


def slide_layer(viewer: napari.viewer.Viewer) -> napari.layers.Image | None:
    """Return the whole-slide image layer: one the reader opened, else the largest RGB image."""
    from napari.layers import Image

    images = [layer for layer in viewer.layers if isinstance(layer, Image)]
    slides = [layer for layer in images if "shape_rc" in layer.metadata]  # napari-xai reader
    if slides:
        return slides[0]
    rgb = [layer for layer in images if layer.rgb]
    return max(rgb, key=lambda layer: float(layer.extent.world[1][-1])) if rgb else None


def slide_source(layer: napari.layers.Image) -> Any:
    """Return what a worker opens for a slide layer: the reader's slide, else its path."""
    return layer.metadata.get("slide") or layer.metadata["path"]


def slide_shape_rc(viewer: napari.viewer.Viewer) -> tuple[int, int] | None:
    """Level-0 (rows, cols) of the slide layer, ``None`` without one."""
    layer = slide_layer(viewer)
    if layer is None:
        return None
    if "shape_rc" in layer.metadata:
        rows, cols = layer.metadata["shape_rc"]
        return (int(rows), int(cols))
    data = layer.data[0] if layer.multiscale else layer.data
    shape = data.shape[:2] if layer.rgb else data.shape[-2:]
    scale = layer.scale[-2:]
    return (int(round(shape[0] * scale[0])), int(round(shape[1] * scale[1])))


def slide_mpp(viewer: napari.viewer.Viewer) -> float | None:
    """Level-0 µm per pixel of the slide layer, ``None`` when unknown."""
    layer = slide_layer(viewer)
    if layer is None:
        return None
    mpp = layer.metadata.get("mpp")
    if mpp is None and "info" in layer.metadata:
        mpp = getattr(layer.metadata["info"], "mpp", None)
    return float(mpp) if mpp else None


def layer_picker(
    viewer: napari.viewer.Viewer,
    label: str,
    kind: str,
    *,
    where: Callable[[Any], bool] | None = None,
) -> Any:
    """Make a dropdown of the viewer's layers of one kind (``"Shapes"``, ``"Labels"``…).

    Its choices are a callable, so ``reset_choices()`` (napari calls it on every
    layer change) re-reads the layers and keeps the current one while it is there.
    ``where`` narrows the layers further.
    """
    from magicgui.widgets import ComboBox

    def choices(_widget: Any = None) -> list[tuple[str, Any]]:
        import napari.layers

        cls = getattr(napari.layers, kind)
        return [
            (layer.name, layer)
            for layer in viewer.layers
            if isinstance(layer, cls) and (where is None or where(layer))
        ]

    return ComboBox(label=label, choices=choices, nullable=True)


class SlidePicker:
    """Mixin of the run widgets: a dropdown of the slides open in the viewer.

    The first slide opened is picked while none is (the newest one where
    ``pick_newest_slide`` is set); ``picked_slide()`` says how to open one when
    there is none.
    """

    #: Pick the newest slide (not the first) while none is picked.
    pick_newest_slide: ClassVar[bool] = False
    _viewer: Any
    _slide_layer: Any
    error: Callable[[str], None]

    def slide_controls(self) -> list[Any]:
        """Make the slide dropdown (``self._slide_layer``)."""
        from magicgui.widgets import ComboBox

        self._slide_layer = ComboBox(label="slide", choices=self._slide_choices, nullable=True)
        return [self._slide_layer]

    def wire_slide_picker(self) -> None:
        """Follow the viewer's layers: refresh the choices when a layer comes or goes."""
        self._viewer.layers.events.inserted.connect(self._refresh_slides)
        self._viewer.layers.events.removed.connect(self._refresh_slides)
        self._refresh_slides()

    def _slide_choices(self, _widget: Any = None) -> list[tuple[str, Any]]:
        """Image layers that come from a slide file (have ``metadata['path']``)."""
        return slide_layer_choices(self._viewer)

    def _refresh_slides(self, _event: Any = None) -> None:
        """Refresh the slide choices; pick one when none is chosen."""
        self._slide_layer.reset_choices()
        pick_when_none(self._slide_layer, newest=self.pick_newest_slide)

    def picked_slide(self) -> napari.layers.Image | None:
        """Return the chosen slide layer, or ``None`` after saying how to open one."""
        layer: napari.layers.Image | None = self._slide_layer.value
        if layer is None:
            self.error("open a slide first (File ▸ Open, napari-xai reader)")
        return layer


def file_edit(*, mode: str = "r", **kwargs: Any) -> Any:
    """Make a magicgui ``FileEdit``; ``mode`` is ``"r"``, ``"rm"``, ``"w"`` or ``"d"``."""
    from magicgui.types import FileDialogMode
    from magicgui.widgets import FileEdit

    return FileEdit(mode=FileDialogMode(mode), **kwargs)


def path_of(edit: Any) -> Path:
    """Return the path a ``FileEdit`` holds (``Path(".")`` when it is empty)."""
    return Path(str(edit.value))


def default_output() -> Path:
    """Default folder for result folders: private, per user (``<user cache>/results``)."""
    from napari_xai.core.options import cache_dir

    return cache_dir("results")


def pick_when_none(widget: Any, *, newest: bool = True) -> None:
    """Pick a dropdown's newest (last) choice, or its first, while none is picked."""
    choices = [c for c in widget.choices if c is not None]
    if widget.value is None and choices:
        widget.value = choices[-1] if newest else choices[0]


def offer(widget: Any, choices: Any) -> None:
    """Set a dropdown's (or list's) choices so that they outlive ``reset_choices()``.

    napari calls ``reset_choices()`` on a docked widget whenever a layer is added or
    removed; magicgui then restores the choices given when the widget was made, so
    choices assigned later as a list (columns of a table read since) were lost with
    the current value. Assigned as a callable they are the default choices, and the
    current value is kept while it is still one of them.
    """
    fixed = list(choices)
    widget.choices = lambda _widget: fixed
