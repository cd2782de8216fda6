"""The tile inspector: click a tile on the slide to see what the model made of it.

After Slideflow Studio's tile preview: a click on the canvas (while *pick on
click* is on) finds the tile under the pointer in a tiles layer (the Points
layer of a scoring run or a result folder, or the audit's tile Shapes: any
layer whose ``features`` hold level-0 ``row``, ``col``, ``height``, ``width``)
and shows

* the tile itself, read at level 0 from the slide layer;
* its class probabilities (``prob_<class>`` columns, in the palette's class
  colours), predicted class and confidence;
* its saliency: mean and maximum of every shown saliency map over the tile,
  and the map's crop in the map's own colormap;
* its flags (``flags`` text, the audit's ``flagged``, tissue fraction).

Everything comes from the layers' data and features (i.e. ``tiles.parquet``
and ``heatmaps.zarr`` of a result folder); nothing is computed again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from magicgui.widgets import CheckBox, ComboBox, Container, Label

from napari_xai._widgets._layout import (
    PANEL_MIN_WIDTH,
    ScrollPanel,
    compact_dropdowns,
    fit_panel,
    set_label_image,
)
from napari_xai._widgets._pickers import pick_when_none
from napari_xai._widgets._style import layer_info, layer_role
from napari_xai._widgets._tile_text import THUMB_SIZE, prob_table, shrink, tile_flags

if TYPE_CHECKING:
    import napari.viewer
    import numpy as np

__all__ = ["THUMB_SIZE", "TileInspector"]

_GEOMETRY = ("row", "col", "height", "width")


class TileInspector(ScrollPanel, Container):
    """Inspect the tile under a click: thumbnail, probabilities, saliency, flags.

    ``viewer`` is annotated as ``napari.viewer.Viewer`` so napari passes it when docked.
    """

    def __init__(self, viewer: napari.viewer.Viewer) -> None:
        super().__init__(labels=True, scrollable=True)
        self._viewer = viewer
        self._tiles = ComboBox(label="tiles", choices=self._tiles_choices, nullable=True)
        self._pick = CheckBox(text="pick a tile on click", value=True)
        self._title = Label(value="click a tile on the slide")
        self._thumb = Label(value="")
        self._probs = Label(value="")
        self._saliency = Label(value="")
        self._saliency_thumb = Label(value="")
        self._flags = Label(value="")
        self.extend(
            [
                self._tiles,
                self._pick,
                self._title,
                self._thumb,
                self._probs,
                self._saliency,
                self._saliency_thumb,
                self._flags,
            ]
        )
        from qtpy.QtCore import Qt

        self._probs.native.setTextFormat(Qt.TextFormat.RichText)
        #: What is shown: index, geometry, probabilities, prediction, saliency, flags.
        self.current: dict[str, Any] | None = None
        viewer.mouse_drag_callbacks.append(self._on_click)
        viewer.layers.events.inserted.connect(self._on_layers_changed)
        viewer.layers.events.removed.connect(self._on_layers_changed)
        compact_dropdowns(self)
        fit_panel(self, max_min_width=PANEL_MIN_WIDTH)
        self._on_layers_changed()

    # -- layers ------------------------------------------------------------------------
    def _tiles_choices(self, _widget: Any = None) -> list[tuple[str, Any]]:
        """Layers whose features hold level-0 tile geometry (tiles Points, audit Shapes)."""
        out = []
        for lyr in self._viewer.layers:
            feats = getattr(lyr, "features", None)
            if feats is not None and all(c in feats for c in _GEOMETRY) and len(feats):
                out.append((lyr.name, lyr))
        return out

    def _on_layers_changed(self, _event: Any = None) -> None:
        self._tiles.reset_choices()
        pick_when_none(self._tiles)

    def _slide_layer(self) -> Any:
        from napari.layers import Image

        for lyr in self._viewer.layers:
            if isinstance(lyr, Image) and lyr.rgb:
                return lyr
        return None

    # -- picking -----------------------------------------------------------------------
    def _on_click(self, _viewer: Any, event: Any) -> None:
        if not self._pick.value or event.type != "mouse_press" or event.button != 1:
            return
        self.inspect_at(event.position)

    def tile_at(self, world: Any) -> int | None:
        """Row (in the tiles layer's features) of the tile under a world position, or None.

        Parameters
        ----------
        world : sequence of float
            World coordinates (the last two are row, column), as napari's event gives.
        """
        import numpy as np

        layer = self._tiles.value
        if layer is None:
            return None
        pos = np.asarray(world, dtype=np.float64)
        data = np.asarray(layer.world_to_data(pos[-layer.ndim :] if layer.ndim else pos))
        r, c = float(data[-2]), float(data[-1])
        f = layer.features
        row, col = f["row"].to_numpy(float), f["col"].to_numpy(float)
        h, w = f["height"].to_numpy(float), f["width"].to_numpy(float)
        # tile pixel (i, j) is centred at (row + i, col + j): it covers [row - 0.5, row + h - 0.5)
        inside = (r >= row - 0.5) & (r < row + h - 0.5) & (c >= col - 0.5) & (c < col + w - 0.5)
        hits = np.flatnonzero(inside)
        if not len(hits):
            return None
        centre = np.stack([row + (h - 1) / 2, col + (w - 1) / 2], axis=1)[hits]
        return int(hits[np.argmin(((centre - [r, c]) ** 2).sum(1))])

    def inspect_at(self, world: Any) -> dict[str, Any] | None:
        """Show the tile under a world position (what a click does); return :attr:`current`."""
        index = self.tile_at(world)
        if index is None:
            self._title.value = "no tile here (click a scored tile)"
            return None
        return self.inspect_tile(index)

    # -- showing -----------------------------------------------------------------------
    def inspect_tile(self, index: int) -> dict[str, Any]:
        """Show tile ``index`` of the tiles layer's features; return :attr:`current`."""
        import numpy as np

        layer = self._tiles.value
        feats = layer.features
        rec = feats.iloc[int(index)]
        row, col, h, w = (int(rec[c]) for c in _GEOMETRY)
        classes = [str(c)[5:] for c in feats.columns if str(c).startswith("prob_")]
        probs = {c: float(rec[f"prob_{c}"]) for c in classes}
        pred = (
            str(rec["pred_class"]) if "pred_class" in feats else max(probs, key=probs.__getitem__)
        )
        conf = float(rec["confidence"]) if "confidence" in feats else max(probs.values())
        self.current = {
            "index": int(index),
            "row": row,
            "col": col,
            "height": h,
            "width": w,
            "probabilities": probs,
            "pred_class": pred,
            "confidence": conf,
            "flags": tile_flags(rec, feats),
            "saliency": {},
        }
        grid = ""
        if "grid_row" in feats and "grid_col" in feats:
            grid = f" grid ({int(rec['grid_row'])}, {int(rec['grid_col'])}),"
        self._title.value = (
            f"tile {int(index)}:{grid} level-0 rows {row}–{row + h}, cols {col}–{col + w}"
        )
        self._probs.value = prob_table(probs, pred, conf)
        slide = self._slide_layer()
        if slide is not None:
            level0 = slide.data[0] if slide.multiscale else slide.data
            crop = np.asarray(level0[max(row, 0) : row + h, max(col, 0) : col + w])
            if crop.size:
                set_label_image(self._thumb, shrink(crop))
        # level-0 corners of the tile in world coordinates (the tiles layer's transform)
        corners = [layer.data_to_world([row - 0.5, col - 0.5])[-2:],
                   layer.data_to_world([row + h - 0.5, col + w - 0.5])[-2:]]  # fmt: skip
        self._show_saliency(np.asarray(corners, dtype=np.float64))
        self._flags.value = "flags: " + (", ".join(self.current["flags"]) or "none")
        return self.current

    def _show_saliency(self, corners: np.ndarray) -> None:
        """Saliency over the tile whose world corners are ``corners`` (top-left, bottom-right)."""
        import numpy as np

        lines, crop_shown = [], False
        maps = [lyr for lyr in self._viewer.layers if layer_role(lyr) == "saliency"]
        for lyr in sorted(maps, key=lambda m: not m.visible):  # visible maps first
            data = lyr.data[0] if lyr.multiscale else lyr.data
            # map pixel (i, j) covers data coordinates [i - 0.5, i + 0.5)
            lo = np.round(np.asarray(lyr.world_to_data(corners[0]))[-2:] + 0.5).astype(int)
            hi = np.round(np.asarray(lyr.world_to_data(corners[1]))[-2:] + 0.5).astype(int)
            lo = np.clip(lo, 0, data.shape[-2:])
            hi = np.clip(hi, lo + 1, data.shape[-2:])
            vals = np.asarray(data[lo[0] : hi[0], lo[1] : hi[1]], dtype=np.float64)
            finite = vals[np.isfinite(vals)]
            info = layer_info(lyr)
            key = f"{info.get('method')}, {info.get('class_name')}"
            if not finite.size:
                lines.append(f"saliency [{key}]: not computed here")
                continue
            stats = {"mean": float(finite.mean()), "max": float(finite.max())}
            assert self.current is not None
            self.current["saliency"][key] = stats
            lines.append(f"saliency [{key}]: mean {stats['mean']:.3g}, max {stats['max']:.3g}")
            if not crop_shown:
                c_lo, c_hi = (float(v) for v in lyr.contrast_limits)
                norm = np.clip((np.nan_to_num(vals, nan=c_lo) - c_lo) / (c_hi - c_lo or 1.0), 0, 1)
                rgba = np.asarray(lyr.colormap.map(norm.ravel())).reshape(*norm.shape, 4)
                big = np.repeat(np.repeat(rgba[..., :3], max(1, 64 // max(norm.shape)), 0),
                                max(1, 64 // max(norm.shape)), 1)  # fmt: skip
                set_label_image(self._saliency_thumb, (big * 255).astype(np.uint8))
                crop_shown = True
        self._saliency.value = "\n".join(lines) or "saliency: no saliency map open"
        if not crop_shown:
            self._saliency_thumb.native.clear()
