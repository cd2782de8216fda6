"""The explore widget's filter controls: one :class:`~napari_xai.core.explore.select.TileFilter`.

Classes, a confidence range, slides, a ceiling on ``ood_score`` (1.0 is the
99th percentile of the training tiles), one metadata column's values and the
flags to hide; :meth:`FilterControls.populate` fills the choices from the
explored tiles (every value kept), :meth:`FilterControls.tile_filter` reads
the filter back. The widget applies it to the scatter, the gallery, the
histogram and the slide's tiles layer at once.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from magicgui.widgets import ComboBox, FloatSpinBox, Select

from napari_xai._widgets._pickers import offer

if TYPE_CHECKING:
    import pandas as pd

    from napari_xai.core.explore.select import TileFilter

__all__ = ["NO_COLUMN", "FilterControls"]

#: The metadata column choice that filters nothing.
NO_COLUMN = "(no metadata filter)"


class FilterControls:
    """The filter widgets of the explorer (added to its container by the caller).

    Parameters
    ----------
    on_change : callable
        Called (no arguments) whenever a filter changes.
    """

    def __init__(self, on_change: Callable[[], None]) -> None:
        self.classes = Select(label="classes", choices=[])
        self.conf_min = FloatSpinBox(label="confidence ≥", min=0, max=1, step=0.05, value=0)
        self.conf_max = FloatSpinBox(label="confidence ≤", min=0, max=1, step=0.05, value=1)
        self.slides = Select(label="slides", choices=[])
        self.ood_max = FloatSpinBox(label="ood_score ≤", min=0, max=1e6, step=0.25, value=1e6)
        self.column = ComboBox(label="metadata", choices=[NO_COLUMN], value=NO_COLUMN)
        self.values = Select(label="values", choices=[])
        self.hide_flags = Select(
            label="hide flagged", choices=[], tooltip="tiles with these flags"
        )
        self._tiles: pd.DataFrame | None = None
        self._on_change = on_change
        self._quiet = False
        self.column.changed.connect(self._on_column)
        for w in (self.classes, self.conf_min, self.conf_max, self.slides, self.ood_max,
                  self.values, self.hide_flags):  # fmt: skip
            w.changed.connect(self._changed)

    @property
    def widgets(self) -> list[Any]:
        """The controls, in the order they are shown."""
        return [self.classes, self.conf_min, self.conf_max, self.slides, self.ood_max,
                self.column, self.values, self.hide_flags]  # fmt: skip

    def populate(self, tiles: pd.DataFrame) -> None:
        """Offer the classes, slides, metadata columns and flags of ``tiles``; keep everything."""
        from napari_xai.core.explore.view import filter_columns, flag_words

        self._tiles, self._quiet = tiles, True
        try:
            offer(self.classes, sorted(tiles["pred_class"].astype(str).unique()))
            self.classes.value = list(self.classes.choices)
            offer(self.slides, sorted(tiles["slide_id"].astype(str).unique()))
            self.slides.value = list(self.slides.choices)
            self.conf_min.value, self.conf_max.value = 0.0, 1.0
            top = float(np.ceil(np.nanmax(tiles["ood_score"]))) if "ood_score" in tiles else 0.0
            self.ood_max.max = max(top, 1.0)
            self.ood_max.value = self.ood_max.max  # everything kept
            self.ood_max.visible = "ood_score" in tiles
            offer(self.column, [NO_COLUMN, *filter_columns(tiles)])
            self.column.value = NO_COLUMN
            offer(self.values, [])
            offer(self.hide_flags, flag_words(tiles))
            self.hide_flags.value = []
        finally:
            self._quiet = False

    def tile_filter(self) -> TileFilter:
        """Return the filter the controls set."""
        from napari_xai.core.explore.select import TileFilter

        column = str(self.column.value)
        metadata = {} if column == NO_COLUMN else {column: tuple(self.values.value)}
        ood_max = float(self.ood_max.value)
        return TileFilter(
            classes=_kept(self.classes),
            confidence=(float(self.conf_min.value), float(self.conf_max.value)),
            slides=_kept(self.slides),
            ood=None if ood_max >= float(self.ood_max.max) else (-np.inf, ood_max),
            flags=tuple(self.hide_flags.value),
            metadata=metadata,
        )

    def _on_column(self, _value: Any = None) -> None:
        column = str(self.column.value)
        self._quiet = True
        try:
            if self._tiles is None or column == NO_COLUMN:
                offer(self.values, [])
            else:
                offer(self.values, sorted(self._tiles[column].astype(str).unique()))
                self.values.value = list(self.values.choices)
        finally:
            self._quiet = False
        self._changed()

    def _changed(self, _value: Any = None) -> None:
        if not self._quiet:
            self._on_change()


def _kept(select: Select) -> tuple[str, ...] | None:
    """Return the values picked in ``select``; None (no filter) when every one is.

    An empty pick keeps nothing: a user who deselects every class sees no tiles.
    """
    picked = tuple(select.value)
    return None if set(picked) >= set(select.choices) else picked
