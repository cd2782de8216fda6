"""Explain a whole slide, or only what the user sees, into a stitched saliency store.

Two entry points, both generators that yield :class:`ExplainProgress` after each
batch (so a widget can show progress and cancel by closing them) and *return* an
:class:`ExplainResult`:

* :func:`iter_explain_slide` — every tissue tile of the slide's grid; resumable:
  tiles already in the store (same model, method, target and grid) are skipped.
* :func:`iter_explain_view` — "explain what I see": only the tiles that intersect
  a level-0 view rectangle, nearest the view centre first, skipping those already
  computed (the store is the cache), capped when zoomed far out.

:func:`explain_slide` runs the first to the end. The tile grid, reader and
preprocessing are the scoring pipeline's (:mod:`napari_xai.core.inference`), so a
saliency map lines up with the probability heatmaps tile for tile. Options are
the option objects of :mod:`napari_xai.core.options`: the tile grid a
:class:`~napari_xai.core.options.GridOptions`, the map an
:class:`~napari_xai.core.options.ExplainSpec`, the reader and batch size a
:class:`~napari_xai.core.options.RunOptions` (``explain_batch_size``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Generator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from napari_xai.core.attribution._base import ExplainOptions
from napari_xai.core.attribution.registry import Explainer
from napari_xai.core.models.resolve import resolve_carded_model
from napari_xai.core.naming import activation_layer_name, saliency_layer_name, slide_stem
from napari_xai.core.options import ExplainSpec, GridOptions, RunOptions
from napari_xai.core.progress import Counted, eager
from napari_xai.core.reader import TileReader
from napari_xai.core.stitch import StitchedMap
from napari_xai.core.tiling import TileGrid

if TYPE_CHECKING:
    from napari_xai.core.wsi import Slide

__all__ = [
    "ExplainProgress",
    "ExplainResult",
    "explain_slide",
    "iter_explain_slide",
    "iter_explain_view",
    "iter_stitch_tiles",
    "saliency_key",
    "saliency_layer_name",
    "slide_grid",
    "slide_name",
    "tiles_in_view",
    "write_to_result",
]

#: Map pixels per tile side in the stitched store (finer adds nothing for Grad-CAM).
DEFAULT_MAP_PX = 64


@dataclass
class ExplainProgress(Counted):
    """State after one batch.

    Attributes
    ----------
    n_done, n_total : int
        Tiles computed in this run so far, and to compute in this run.
    elapsed_s : float
    tiles_per_s : float
    store : Path
    key : str
        Group of the map inside the store.
    indices : ndarray
        Grid indices of the tiles of this batch.
    layer_name : str
        Name of the layer showing the map (for live display).
    """

    n_done: int
    n_total: int
    elapsed_s: float
    store: Path
    key: str
    indices: npt.NDArray[np.int64]
    layer_name: str = ""

    @property
    def tiles_per_s(self) -> float:
        """Throughput of this run."""
        return self.n_done / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass
class ExplainResult:
    """Where a stitched map is and how complete it is.

    Attributes
    ----------
    store : Path
        The zarr store (``heatmaps.zarr``).
    key : str
        Group of the map (``saliency/<method>/<class>``).
    method : str
    class_name : str
        Explained class, or ``"predicted"``.
    slide_name : str
    n_computed : int
        Tiles computed by this run.
    n_cached : int
        Tiles skipped because already in the store.
    n_done, n_tiles : int
        Tiles in the store / in the grid.
    limits : tuple of float
        Suggested contrast limits.
    scale_rc, translate_rc : tuple of float
        Mapping of the finest level onto level-0 pixels.
    timings : dict
    """

    store: Path
    key: str
    method: str
    class_name: str
    slide_name: str
    n_computed: int
    n_cached: int
    n_done: int
    n_tiles: int
    limits: tuple[float, float]
    scale_rc: tuple[float, float]
    translate_rc: tuple[float, float]
    timings: dict[str, float] = field(default_factory=dict)
    kind: str = "saliency"

    @property
    def complete(self) -> bool:
        """Every tile of the grid is in the map."""
        return self.n_done >= self.n_tiles

    @property
    def layer_name(self) -> str:
        """Deterministic napari layer name (re-runs replace the layer)."""
        if self.kind == "activations":
            return activation_layer_name(self.slide_name, self.method, self.class_name)
        return saliency_layer_name(self.slide_name, self.method, self.class_name)


def _safe_key(name: str) -> str:
    key = "".join(c if (c.isalnum() or c in "-_.+") else "_" for c in str(name))
    return key or "_"


def saliency_key(method: str, class_name: str) -> str:
    """Group of a saliency map in ``heatmaps.zarr``: ``saliency/<method>/<class>``."""
    return f"saliency/{_safe_key(method)}/{_safe_key(class_name)}"


def slide_name(slide: Any) -> str:
    """Display name of a slide: its file's stem (:func:`napari_xai.core.naming.slide_stem`)."""
    return slide_stem(getattr(slide, "path", "slide"))


_GRID_CACHE: dict[tuple[Any, ...], TileGrid] = {}


def slide_grid(slide: Slide, card: Any, options: GridOptions | None = None) -> TileGrid:
    """Return the scoring pipeline's tile grid for ``card`` over ``slide`` (cached per slide).

    See :func:`napari_xai.core.inference.grid_for_slide`.
    """
    from napari_xai.core.inference import grid_for_slide

    options = options or GridOptions()
    key = (str(slide.path), slide.info.shape_rc, card.tile_size, card.mpp, options)
    if key in _GRID_CACHE:
        return _GRID_CACHE[key]
    grid = grid_for_slide(slide, card, options)
    if len(_GRID_CACHE) > 16:
        _GRID_CACHE.clear()
    _GRID_CACHE[key] = grid
    return grid


def tiles_in_view(
    grid: TileGrid, view_rc: Sequence[float], *, max_tiles: int | None = None
) -> npt.NDArray[np.int64]:
    """Return the grid tiles that intersect a level-0 view, nearest the centre first.

    Parameters
    ----------
    grid : TileGrid
    view_rc : (row0, col0, row1, col1)
        Level-0 corners of the view (any order; clipped to the slide).
    max_tiles : int, optional
        Keep only this many (the nearest to the view centre).
    """
    r0, c0, r1, c1 = (float(v) for v in view_rc)
    r0, r1 = sorted((r0, r1))
    c0, c1 = sorted((c0, c1))
    t = float(grid.tile_size0)
    hit = (grid.rows < r1) & (grid.rows + t > r0) & (grid.cols < c1) & (grid.cols + t > c0)
    idx = np.flatnonzero(hit).astype(np.int64)
    centre = ((r0 + r1) / 2, (c0 + c1) / 2)
    dist = (grid.rows[idx] + t / 2 - centre[0]) ** 2 + (grid.cols[idx] + t / 2 - centre[1]) ** 2
    idx = idx[np.argsort(dist, kind="stable")]
    if max_tiles is not None:
        idx = idx[: max(0, int(max_tiles))]
    return idx


def open_map(
    store: str | Path,
    key: str,
    grid: TileGrid,
    *,
    map_px: int | None = None,
    params: dict[str, Any] | None = None,
    attrs: dict[str, Any] | None = None,
    name: str = "",
    reset: bool = False,
) -> StitchedMap:
    """Open (or create) the stitched map of ``grid`` at ``store/key``."""
    px = int(map_px or min(DEFAULT_MAP_PX, grid.tile_size or DEFAULT_MAP_PX))
    downsample = float(grid.tile_size0) / px
    return StitchedMap.open(
        store,
        key,
        shape0_rc=grid.shape_rc,
        downsample=downsample,
        grid_shape=grid.grid_shape,
        overlap0=float(grid.tile_size0 - grid.stride0),
        params={
            **(params or {}),
            "tile_size0": int(grid.tile_size0),
            "stride0": int(grid.stride0),
            "n_tiles": len(grid),
        },
        attrs=attrs,
        name=name,
        reset=reset,
    )


TileFunction = Callable[[npt.NDArray[np.uint8]], npt.NDArray[np.float32]]


def iter_stitch_tiles(
    slide: Slide,
    grid: TileGrid,
    smap: StitchedMap,
    compute: TileFunction,
    *,
    indices: npt.NDArray[np.int64] | None = None,
    run: RunOptions | None = None,
    layer_name: str = "",
) -> Generator[ExplainProgress, None, int]:
    """Read tiles, compute one 2-D map per tile, and blend them into ``smap``.

    Tiles already marked done in ``smap`` are skipped. Yields progress after each
    batch; returns the number of tiles computed.

    Parameters
    ----------
    slide : Slide
    grid : TileGrid
    smap : StitchedMap
    compute : callable
        ``compute(tiles (B, S, S, 3) uint8) -> maps (B, h, w) float32``.
    indices : ndarray, optional
        Grid tiles to consider (default: all), in this order.
    run : RunOptions, optional
        Tile reader settings: ``explain_batch_size`` tiles per batch,
        ``num_workers`` threads (default 2), ``prefetch``.
    layer_name : str
        Passed on in the progress (the layer a viewer shows the map in).
    """
    idx = np.arange(len(grid), dtype=np.int64) if indices is None else np.asarray(indices)
    todo = idx[~smap.done[grid.grid_rows[idx], grid.grid_cols[idx]]]
    n_total, n_done = int(todo.shape[0]), 0
    start = time.perf_counter()
    if n_total == 0:
        return 0
    run = run or RunOptions()
    reader = TileReader(
        slide,
        grid,
        batch_size=run.explain_batch_size,
        prefetch=run.prefetch,
        num_workers=run.reader_threads(),
        indices=todo,
    )
    batches = iter(reader)
    store = Path(str(smap.group.store.root)) if hasattr(smap.group.store, "root") else Path(".")
    # Blending into the store runs in one writer thread while the next batch computes;
    # at most one write is in flight, and it always completes (also on cancel).
    writer = ThreadPoolExecutor(1, thread_name_prefix="napari-xai-stitch")
    pending: Future[None] | None = None
    try:
        for batch in batches:
            tiles = batch.tiles
            tiles = tiles.numpy() if hasattr(tiles, "numpy") else np.asarray(tiles)
            maps = compute(tiles)
            b = batch.indices
            if pending is not None:
                pending.result()
            pending = writer.submit(
                smap.add_tiles,
                maps,
                grid.rows[b],
                grid.cols[b],
                size0=float(grid.tile_size0),
                grid_index=(grid.grid_rows[b], grid.grid_cols[b]),
            )
            n_done += int(b.shape[0])
            yield ExplainProgress(
                n_done=n_done,
                n_total=n_total,
                elapsed_s=time.perf_counter() - start,
                store=store,
                key=smap.group.path,
                indices=b,
                layer_name=layer_name,
            )
        if pending is not None:
            pending.result()
            pending = None
    finally:
        if pending is not None:
            wait([pending])
        writer.shutdown(wait=True)
        close = getattr(batches, "close", None)
        if close is not None:
            close()
        reader.close()
    return n_done


def _model_id(model: Any) -> str:
    sha = getattr(model, "sha256", None)
    if sha:
        return str(sha)
    card = getattr(model, "card", None)
    return str(getattr(card, "sha256", None) or type(getattr(model, "module", model)).__name__)


def _open_saliency_map(
    store: str | Path,
    key: str,
    tiles: TileGrid,
    *,
    slide: Slide,
    model: Any,
    spec: ExplainSpec,
    class_name: str,
    map_px: int | None,
) -> StitchedMap:
    """Open (or resume) the stitched map of one method and class; a resume must match its params.

    The params are the model, method, target class, method options, slide name and shape.
    """
    method, options = spec.method, spec.method_options()
    params = {
        "model": _model_id(model),
        "method": method,
        "target": class_name,
        "options": {k: v for k, v in sorted(options.items())},
        "slide": str(Path(slide.path).name),
        "shape_rc": list(slide.info.shape_rc),
    }
    return open_map(
        store,
        key,
        tiles,
        map_px=map_px,
        params=params,
        reset=spec.restart,
        attrs={"kind": "saliency", "method": method, "class_name": class_name},
        name=f"{method}/{class_name}",
    )


def iter_explain_slide(
    slide: Slide,
    model: Any,
    *,
    store: str | Path,
    spec: ExplainSpec | None = None,
    grid: GridOptions | None = None,
    run: RunOptions | None = None,
    map_px: int | None = None,
    tile_grid: TileGrid | None = None,
    select: Callable[[TileGrid, StitchedMap], npt.NDArray[np.int64]] | None = None,
) -> Generator[ExplainProgress, None, ExplainResult]:
    """Explain every tissue tile of a slide into a stitched multiscale map on disk.

    Parameters
    ----------
    slide : Slide
        Open slide (:func:`napari_xai.core.wsi.open_slide`).
    model : LoadedModel
        Model with its card (:func:`napari_xai.core.models.loading.load_model`).
    store : path
        Zarr store receiving ``saliency/<method>/<class>`` (``<result>/heatmaps.zarr``).
    spec : ExplainSpec, optional
        Method, target class (None: each tile's predicted class), Integrated
        Gradients steps, SmoothGrad samples; ``restart`` ignores the tiles a
        previous run left in the store (default: they are kept and skipped).
    grid : GridOptions, optional
        Tile grid, as for scoring (:func:`napari_xai.core.inference.grid_for_slide`);
        overlapping tiles are blended without seams.
    run : RunOptions, optional
        ``explain_batch_size`` (tiles per batch, and most images per
        forward/backward pass), ``num_workers`` (reader threads), ``device``.
    map_px : int, optional
        Map pixels per tile side (default ``min(64, tile size)``).
    tile_grid : TileGrid, optional
        Precomputed tile grid (skips mask detection; ``grid`` is then unused).
    select : callable, optional
        ``select(tiles, stitched_map)`` returns the grid indices to explain (tiles
        already in the store among them are counted as cached); default: every tile.
        :func:`iter_explain_view` picks the tiles in view this way.

    Yields
    ------
    ExplainProgress
        After each batch; close the generator to cancel (the store keeps what is done).

    Returns
    -------
    ExplainResult
    """
    from napari_xai.core.wsi import opened_slide

    spec = spec or ExplainSpec()
    run = run or RunOptions()
    method, options = spec.method, spec.method_options()
    with opened_slide(slide, mpp=grid.mpp if grid else None) as slide:
        model = resolve_carded_model(
            model, device=run.torch_device, architecture=run.architecture,
            task="explaining a slide", needs="tile size, mpp",
        )  # fmt: skip
        card = model.card
        t0 = time.perf_counter()
        explainer = Explainer(
            model,
            method=method,
            target=spec.target,
            options=ExplainOptions(batch_size=run.explain_batch_size, **options),
        )
        class_name = (
            "predicted" if explainer.target is None else card.class_names[explainer.target]
        )
        tiles = tile_grid if tile_grid is not None else slide_grid(slide, card, grid)
        key = saliency_key(method, class_name)
        smap = _open_saliency_map(
            store, key, tiles, slide=slide, model=model, spec=spec, class_name=class_name,
            map_px=map_px,
        )  # fmt: skip
        t_setup = time.perf_counter() - t0
        idx = np.arange(len(tiles), dtype=np.int64) if select is None else select(tiles, smap)
        n_cached = int(smap.done[tiles.grid_rows[idx], tiles.grid_cols[idx]].sum())

        def compute(images: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
            return explainer.explain(images)[0]

        n_computed = yield from iter_stitch_tiles(
            slide,
            tiles,
            smap,
            compute,
            indices=idx,
            run=run,
            layer_name=saliency_layer_name(slide_name(slide), method, class_name),
        )
        return ExplainResult(
            store=Path(store),
            key=key,
            method=method,
            class_name=class_name,
            slide_name=slide_name(slide),
            n_computed=n_computed,
            n_cached=n_cached,
            n_done=smap.n_done,
            n_tiles=len(tiles),
            limits=smap.value_limits(),
            scale_rc=smap.scale_rc,
            translate_rc=smap.translate_rc,
            timings={"setup_s": t_setup, "total_s": time.perf_counter() - t0},
        )


def iter_explain_view(
    slide: Slide,
    model: Any,
    view_rc: Sequence[float],
    *,
    store: str | Path,
    spec: ExplainSpec | None = None,
    grid: GridOptions | None = None,
    run: RunOptions | None = None,
    zoom: float | None = None,
    max_tiles: int = 256,
    min_tile_screen_px: float = 8.0,
    map_px: int | None = None,
) -> Generator[ExplainProgress, None, ExplainResult]:
    """Explain only the tiles that intersect the current view ("explain what I see").

    Tiles already in the store are reused (it is the cache): panning computes only
    the new tiles. Tiles are computed nearest the view centre first.

    Parameters
    ----------
    slide, model, store, spec, grid, run, map_px
        As :func:`iter_explain_slide` (the same store and grid, so a view run and a
        whole-slide run share their tiles; ``spec.restart`` is ignored).
    view_rc : (row0, col0, row1, col1)
        Level-0 corners of the view.
    zoom : float, optional
        Screen pixels per level-0 pixel (napari's ``viewer.camera.zoom``). When a
        tile would be drawn smaller than ``min_tile_screen_px`` (zoomed far out),
        only the ``max_tiles // 4`` tiles nearest the centre are computed.
    max_tiles : int
        Most tiles computed in one call.
    """
    cap = int(max_tiles)

    def select(tiles: TileGrid, smap: StitchedMap) -> npt.NDArray[np.int64]:
        limit = cap
        if zoom is not None and tiles.tile_size0 * float(zoom) < min_tile_screen_px:
            limit = max(1, cap // 4)
        in_view = tiles_in_view(tiles, view_rc)
        done = smap.done[tiles.grid_rows[in_view], tiles.grid_cols[in_view]]
        # cached tiles are free: keep all of them, and the `limit` nearest others
        todo = np.flatnonzero(~done)[:limit]
        keep = done.copy()
        keep[todo] = True
        return in_view[keep]

    if spec is not None and spec.restart:
        spec = dataclasses.replace(spec, restart=False)
    return (
        yield from iter_explain_slide(
            slide, model, store=store, spec=spec, grid=grid, run=run, map_px=map_px, select=select
        )
    )


def write_to_result(writer: Any, result: ExplainResult) -> str:
    """Copy a stitched saliency map into a result folder being written.

    The stitched store is written in place (resumable); a result folder is written
    atomically by :class:`napari_xai.core.results.ResultWriter`. This copies the
    finest level (the writer rebuilds the pyramid, chunk by chunk, never whole in
    memory) as ``heatmaps.zarr/saliency/<method>/<class>``.

    Parameters
    ----------
    writer : ResultWriter
        Open writer (before ``commit``).
    result : ExplainResult
        From :func:`explain_slide` / :func:`iter_explain_slide`.

    Returns
    -------
    str
        The group path written in the result's ``heatmaps.zarr``.
    """
    import zarr

    group: Any = zarr.open_group(str(result.store), mode="r")[result.key]
    level0 = StitchedMap(group).to_dask()[0]
    key: str = writer.write_heatmap(
        "saliency",
        result.class_name,
        level0,
        scale_rc=result.scale_rc,
        translate_rc=result.translate_rc,
        method=result.method,
    )
    return key


explain_slide = eager(iter_explain_slide, name="explain_slide")
