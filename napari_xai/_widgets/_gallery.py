"""A gallery of tile images in a Qt list in icon mode (the Audit widget's worst tiles)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

#: Gallery icon size in screen pixels.
ICON_PX = 96


def make_gallery(on_click: Callable[[int], Any], *, icon_px: int = ICON_PX) -> Any:
    """Make an icon-mode ``QListWidget``; a click calls ``on_click(row)``."""
    from qtpy.QtCore import QSize
    from qtpy.QtWidgets import QListView, QListWidget

    gallery = QListWidget()
    gallery.setViewMode(QListView.ViewMode.IconMode)
    gallery.setIconSize(QSize(icon_px, icon_px))
    gallery.setResizeMode(QListView.ResizeMode.Adjust)
    gallery.setMinimumHeight(icon_px * 2 + 40)
    gallery.setWordWrap(True)
    gallery.itemClicked.connect(lambda item: on_click(gallery.row(item)))
    return gallery


def fill_gallery(gallery: Any, items: Iterable[tuple[Any, str, str]]) -> None:
    """Show ``(rgb image, caption, tooltip)`` items in ``gallery``, replacing its items."""
    from qtpy.QtGui import QIcon
    from qtpy.QtWidgets import QListWidgetItem

    from napari_xai._widgets._layout import rgb_pixmap

    gallery.clear()
    for img, caption, tooltip in items:
        item = QListWidgetItem(QIcon(rgb_pixmap(img)), caption)
        item.setToolTip(tooltip)
        gallery.addItem(item)
