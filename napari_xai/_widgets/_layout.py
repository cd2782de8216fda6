"""Make a plugin widget fit the screen: wrapped labels inside a vertical scroll area.

A widget built with ``Container(..., scrollable=True)`` and :class:`ScrollPanel`
first in its bases is docked as a ``QScrollArea`` (napari docks ``widget.native``,
which magicgui makes the inner widget, so the scroll area would be dropped);
:func:`fit_panel` wraps every label's text (status lines, long messages and the
label column) and sets the scroll area's minimum width from the wrapped layout,
so long text neither widens the dock nor squeezes the canvas.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import napari.layers
    import numpy as np
    from magicgui.widgets import Container

#: Widest minimum width (pixels) a docked panel may ask for.
MAX_MIN_WIDTH = 380
#: Minimum width (pixels) of the panel and the inspector: the canvas keeps half of 1280.
PANEL_MIN_WIDTH = 260
#: Minimum height (pixels) of a docked panel's scroll area: every napari-xai widget
#: docked at once (nine) still fits a 800 px screen; each scrolls its controls.
PANEL_MIN_HEIGHT = 32
#: Size (pixels) of the legend's colour bar.
BAR_SIZE = (180, 14)


def compact_dropdowns(container: Container) -> None:
    """Let long choices (layer names) be elided instead of widening the dock."""
    from qtpy.QtWidgets import QComboBox

    for combo in container.native.findChildren(QComboBox):
        combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        combo.setMinimumContentsLength(8)


def colorbar_rgb(layer: napari.layers.Image, *, size: tuple[int, int] = BAR_SIZE) -> np.ndarray:
    """Draw the layer's colormap, low to high contrast limit, over white (uint8 RGB).

    Alpha is composited over white, so a colormap transparent at 0 (the
    probability colormap) shows the slide's white there, as on the canvas.
    """
    import numpy as np

    width, height = size
    rgba = np.asarray(layer.colormap.map(np.linspace(0.0, 1.0, width)), dtype=np.float64)
    alpha = rgba[:, 3:4]
    rgb = rgba[:, :3] * alpha + (1.0 - alpha)
    row = np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(np.broadcast_to(row[None], (height, width, 3)))


class ScrollPanel:
    """Mixin for a ``scrollable=True`` magicgui Container docked by napari.

    ``native`` is the scroll area (what napari docks); :attr:`inner` is the widget
    inside it, whose layout holds the controls.
    """

    @property
    def native(self) -> Any:
        """The root Qt widget: the scroll area."""
        return self.root_native_widget  # type: ignore[attr-defined]

    @property
    def inner(self) -> Any:
        """The Qt widget inside the scroll area (holds the controls' layout)."""
        return self._widget._mgui_get_native_widget()  # type: ignore[attr-defined]


def fit_panel(container: Any, *, max_min_width: int = MAX_MIN_WIDTH) -> None:
    """Wrap the container's labels; cap the minimum width and height of its scroll area.

    Parameters
    ----------
    container : magicgui.widgets.Container
        A container made with ``scrollable=True`` (its root widget is a scroll area).
    max_min_width : int
        Upper bound of the panel's minimum width, in pixels.
    """
    from magicgui.widgets import Label
    from qtpy.QtWidgets import QLabel, QScrollArea, QSizePolicy

    inner = getattr(container, "inner", container.native)
    for label in inner.findChildren(QLabel):  # the label column too
        label.setWordWrap(True)
    for widget in container:
        if isinstance(widget, Label):  # messages: take the width given, wrap to it
            widget.native.setWordWrap(True)
            policy = widget.native.sizePolicy()
            policy.setHorizontalPolicy(QSizePolicy.Policy.Ignored)
            widget.native.setSizePolicy(policy)
            _keep_wrapped_text_whole(widget)
    root = container.root_native_widget
    if isinstance(root, QScrollArea):
        layout = inner.layout()
        wanted = layout.totalMinimumSize().width() + 20 if layout is not None else 0
        root.setMinimumWidth(min(max(wanted, 200), max_min_width))
        root.setMinimumHeight(PANEL_MIN_HEIGHT)


def _keep_wrapped_text_whole(label: Any) -> None:
    """Give a wrapped label the height its text needs at its width, now and after changes.

    The form layout sizes a label from its one-line size hint, so wrapped text (a tile's
    title, the probability table) was cut off at the bottom; the label's minimum height
    follows ``heightForWidth`` whenever it is resized or its text changes.
    """
    from qtpy.QtCore import QEvent, QObject, QTimer

    native = label.native

    def fit() -> None:
        try:
            needed = native.heightForWidth(max(native.width(), 1))
        except RuntimeError:  # the label was deleted meanwhile
            return
        if needed > 0 and needed != native.minimumHeight():
            native.setMinimumHeight(needed)

    class _OnResize(QObject):
        def eventFilter(self, obj: Any, event: Any) -> bool:  # noqa: N802 (Qt's name)
            if event.type() == QEvent.Type.Resize:
                fit()
            return False

    def later() -> None:  # once the new text is laid out
        QTimer.singleShot(0, fit)

    native._napari_xai_fit = _OnResize(native)  # kept alive by the label
    native.installEventFilter(native._napari_xai_fit)
    # a Label emits no `changed`: follow the backend's setter instead
    backend = label._widget
    set_text = backend._mgui_set_value

    def set_value(value: Any) -> None:
        set_text(value)
        later()

    backend._mgui_set_value = set_value


def show_colorbar(layer: Any) -> Any:
    """Show the colour bar of a scalar image layer (heatmap, saliency, activation).

    The bar sits on the canvas with the layer's colormap and contrast limits as
    ticks (probability 0-1 for heatmaps; the attribution's own range for
    saliency). RGB images and other layer kinds are returned unchanged.
    """
    from napari.layers import Image

    if isinstance(layer, Image) and not layer.rgb:
        layer.colorbar.visible = True
    return layer


def rgb_pixmap(rgb: Any) -> Any:
    """Return an RGB image (array of shape (rows, cols, 3 or 4), uint8) as a QPixmap (copied)."""
    import numpy as np
    from qtpy.QtGui import QImage, QPixmap

    arr = np.ascontiguousarray(np.asarray(rgb)[..., :3], dtype=np.uint8)
    h, w = arr.shape[:2]
    image = QImage(arr.tobytes(), w, h, 3 * w, QImage.Format.Format_RGB888)
    return QPixmap.fromImage(image.copy())


def set_label_image(label: Any, rgb: Any) -> None:
    """Show an RGB image (array of shape (rows, cols, 3 or 4), uint8) in a magicgui Label."""
    label.native.setPixmap(rgb_pixmap(rgb))
