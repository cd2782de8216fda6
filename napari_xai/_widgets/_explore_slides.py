"""The explorer's link to the slides: open a cohort slide, draw a selection, hit-test a click.

:class:`SlideLink` keeps which slide of the cohort is shown in the viewer;
it opens a slide's result folder (once) when a selection needs it, draws the
selected tiles as the ``explore selection`` points layer, hides the tiles the
filters drop in the slide's tiles layer and finds the cohort row of a tile
clicked on the slide.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import napari.viewer
    import numpy.typing as npt
    import pandas as pd

__all__ = ["SELECTION_LAYER", "SlideLink"]

SELECTION_LAYER = "explore selection"


class SlideLink:
    """Cohort tiles ↔ the slide shown in a viewer.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        Where the slides and the selection layer go.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        self._viewer = viewer
        self.tiles: pd.DataFrame | None = None
        self.shown_slide: str | None = None

    def show(self, rows: npt.NDArray[np.int64], keep: npt.NDArray[np.bool_]) -> None:
        """Draw ``rows`` on their slide, opening the first one's slide when none of theirs is."""
        if self.tiles is None or not len(rows) or "result_folder" not in self.tiles:
            return  # nothing selected, or features without slides behind them
        slides = self.tiles["slide_id"].to_numpy()[rows]
        if self.shown_slide not in set(slides):
            self.open_slide(str(slides[0]), keep)
        self._draw(rows)

    def open_slide(self, slide_id: str, keep: npt.NDArray[np.bool_]) -> None:
        """Open a slide of the cohort with its result layers (once), and filter its tiles."""
        assert self.tiles is not None
        tiles = self.tiles
        folder = str(tiles.loc[tiles["slide_id"] == slide_id, "result_folder"].iloc[0])
        if self.tiles_layer(slide_id) is None:
            self._viewer.open(folder, plugin="napari-xai")
        self.shown_slide = slide_id
        self.filter(keep)

    def filter(self, keep: npt.NDArray[np.bool_]) -> None:
        """Show in the shown slide's tiles layer only the tiles ``keep`` keeps."""
        from napari_xai.core.explore.view import layer_shown

        layer = self.tiles_layer(self.shown_slide) if self.shown_slide else None
        if layer is not None and self.tiles is not None:
            layer.shown = layer_shown(self.tiles, keep, str(self.shown_slide), len(layer.data))

    def tiles_layer(self, slide_id: str) -> Any:
        """Return the slide's tiles layer, or None when it is not open."""
        from napari_xai.core.naming import tiles_layer_name

        name = tiles_layer_name(slide_id)
        return self._viewer.layers[name] if name in self._viewer.layers else None

    def row_at(self, position: Any) -> int | None:
        """Return the cohort row of the shown slide's tile under a position; None off tiles."""
        if self.tiles is None or self.shown_slide is None:
            return None
        from napari_xai.core.explore.select import tile_at

        mine = np.flatnonzero((self.tiles["slide_id"] == self.shown_slide).to_numpy())
        hit = tile_at(self.tiles.iloc[mine], tuple(position)[-2:])
        return None if hit is None else int(mine[hit])

    def _draw(self, rows: npt.NDArray[np.int64]) -> None:
        from napari_xai.core.explore.view import tile_centres

        assert self.tiles is not None
        tiles = self.tiles.iloc[rows]
        tiles = tiles[tiles["slide_id"] == self.shown_slide]
        centres, size = tile_centres(tiles), float(tiles["height"].max())
        if SELECTION_LAYER in self._viewer.layers:
            layer = self._viewer.layers[SELECTION_LAYER]
            layer.data = centres
            layer.size = size
            return
        self._viewer.add_points(
            centres,
            name=SELECTION_LAYER,
            symbol="square",
            size=size,
            face_color="transparent",
            border_color="yellow",
            border_width=0.1,
        )
