"""Score every tissue tile of a slide with a tile model.

Three layers, each usable alone:

* :func:`iter_predictions` — the pipeline: reader threads prefetch and decode
  batches while the model computes (``torch.inference_mode``; pinned memory,
  non-blocking copies and autocast on CUDA); yields :class:`PredictionBatch`.
* :func:`iter_score_slide` — grid + tissue mask + pipeline for one slide; yields
  :class:`ScoreProgress` (for progress bars, live layers and cancelling: stop
  iterating) and *returns* a :class:`ScoreResult`.
* :func:`score_slide` — the same, run to the end; optionally saves ``tiles.parquet``.

Options are the option objects of :mod:`napari_xai.core.options`: a
:class:`~napari_xai.core.options.GridOptions` says which tiles are scored, a
:class:`~napari_xai.core.options.RunOptions` how (device, batch size, reader
threads, prefetch, AMP). A result folder is written by
:func:`napari_xai.core.pipeline.run_slide`, which calls :func:`score_tiles`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import torch  # noqa: TID253 (core runs only when scoring)

from napari_xai.core.heatmaps import empty_maps, tiles_table, update_maps
from napari_xai.core.models.card import ModelCard
from napari_xai.core.models.loading import LoadedModel, ModelError, choose_device, model_failed
from napari_xai.core.models.resolve import resolve_model
from napari_xai.core.naming import slide_stem
from napari_xai.core.options import GridOptions, RunOptions
from napari_xai.core.predict import predict_probabilities
from napari_xai.core.progress import Counted
from napari_xai.core.reader import RegionSource, TileReader
from napari_xai.core.tiling import TileGrid, TileMasks, model_downsample, plan_tile_grid

if TYPE_CHECKING:
    import pandas as pd

    from napari_xai.core.wsi import Slide

__all__ = [
    "PredictionBatch",
    "ScoreProgress",
    "ScoreResult",
    "TissueSpec",
    "grid_for_slide",
    "mask_size_for",
    "slide_mask_size",
    "iter_predictions",
    "iter_score_slide",
    "score_tiles",
    "slide_stem",
    "save_tiles",
    "score_slide",
    "tissue_masks",
]

#: ``"auto"`` (detect tissue), ``None`` (every tile), or ``(mask, downsample)`` or
#: ``(tissue_mask, artefact_mask_or_None, downsample)``.
TissueSpec = Any


@dataclass(frozen=True)
class PredictionBatch:
    """Predictions for one batch of tiles.

    Attributes
    ----------
    indices : ndarray of shape (B,), int64
        Positions of the tiles in the grid.
    probabilities : ndarray of shape (B, C), float32
        Class probabilities (softmax of the logits; sigmoid for one output).
    n_done, n_total : int
        Tiles scored so far / to score.
    elapsed_s : float
        Seconds since the first batch was requested.
    wait_s : float
        Cumulative seconds the model waited for the reader (0 when reading keeps up).
    """

    indices: npt.NDArray[np.int64]
    probabilities: npt.NDArray[np.float32]
    n_done: int
    n_total: int
    elapsed_s: float
    wait_s: float

    @property
    def tiles_per_s(self) -> float:
        """Throughput so far."""
        return self.n_done / self.elapsed_s if self.elapsed_s > 0 else 0.0


def iter_predictions(
    source: RegionSource,
    model: LoadedModel,
    grid: TileGrid,
    *,
    run: RunOptions | None = None,
    indices: Sequence[int] | npt.NDArray[np.int64] | None = None,
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> Generator[PredictionBatch, None, None]:
    """Run ``model`` over the tiles of ``grid``, one batch at a time.

    Parameters
    ----------
    source : Slide
        Slide (anything with a thread-safe ``read_region``).
    model : LoadedModel
        Model and card (see :func:`napari_xai.core.models.loading.load_model`).
    grid : TileGrid
        Tiles to score (from :func:`grid_for_slide`).
    run : RunOptions, optional
        ``batch_size``, ``device`` (``"auto"``: the model's device), ``num_workers``
        (reader threads), ``prefetch`` (batches read ahead while the model
        computes) and ``amp`` (float16 autocast on CUDA).
    indices : sequence of int, optional
        Score only these grid tiles (in this order).
    forward : callable, optional
        Called instead of the module on each normalised batch; must return its
        logits (e.g. :class:`napari_xai.core.explore.features.FeatureCapture`,
        which also keeps the batch's features).

    Yields
    ------
    PredictionBatch
        Stop iterating (or close the generator) to cancel; reading stops too.

    Raises
    ------
    ModelError
        When outputs do not fit the card or are NaN.
    """
    run = run or RunOptions()
    dev = choose_device(run.torch_device) if run.torch_device is not None else model.device
    model = model.to(dev)
    module = model.module.eval()
    reader = TileReader(
        source,
        grid,
        batch_size=run.batch_size,
        prefetch=run.prefetch,
        num_workers=run.reader_threads(dev.type),
        pin_memory=dev.type == "cuda",
        indices=indices,
    )
    n_total, n_done, wait = reader.n_tiles, 0, 0.0
    start = time.perf_counter()
    batches = iter(reader)
    try:
        while True:
            t0 = time.perf_counter()
            batch = next(batches, None)
            wait += time.perf_counter() - t0
            if batch is None:
                break
            try:
                probs = predict_probabilities(
                    model, batch.tiles, device=dev, amp=run.amp, forward=forward or module
                )
            except ModelError:
                raise
            except Exception as exc:  # the model's own failure: name model, slide and tiles
                raise model_failed(model, source, batch.indices, exc) from exc
            n_done += int(batch.indices.shape[0])
            yield PredictionBatch(
                indices=batch.indices,
                probabilities=probs,
                n_done=n_done,
                n_total=n_total,
                elapsed_s=time.perf_counter() - start,
                wait_s=wait,
            )
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()


# -- tissue --------------------------------------------------------------------------


def _fallback_tissue(
    slide: Slide, max_size: int = 2048
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_] | None, float]:
    """Detect tissue on the thumbnail: not white, not black, or saturated."""
    thumb, ds = slide.thumbnail(max_size=max_size)
    rgb = thumb.astype(np.float32)
    mx, mn = rgb.max(axis=2), rgb.min(axis=2)
    sat = (mx - mn) / np.maximum(mx, 1)
    tissue = (mx < 235) & (mx > 20) | (sat > 0.12) & (mx > 20)
    return tissue, None, float(ds)


def mask_size_for(shape_rc: Sequence[int], tile_size0: float) -> int:
    """Thumbnail size for tissue masks: about 8 mask pixels per tile side, 512-2048 px.

    Finer masks buy nothing for tile fractions and cost time (mask detection
    grows faster than the pixel count).
    """
    return int(np.clip(max(shape_rc) / max(tile_size0 / 8.0, 1.0), 512, 2048))


def slide_mask_size(slide: Slide, card: ModelCard, *, mpp: float | None = None) -> int:
    """:func:`mask_size_for` ``card``'s tiles on ``slide`` (raises on a missing resolution)."""
    slide_mpp = mpp if mpp is not None else slide.info.mpp
    tile_size0 = card.tile_size * model_downsample(card.mpp, slide_mpp, path=slide.path)
    return mask_size_for(slide.info.shape_rc, tile_size0)


def tissue_masks(
    slide: Slide, tissue: TissueSpec = "auto", *, max_size: int = 2048
) -> tuple[npt.NDArray[np.bool_] | None, npt.NDArray[np.bool_] | None, float]:
    """Resolve a tissue specification into ``(tissue, artefact, downsample)``.

    ``"auto"`` uses :func:`napari_xai.core.masks.slide_masks` on a thumbnail of
    at most ``max_size`` pixels (a simple thumbnail threshold where that module
    is unavailable); ``None`` keeps every tile.
    """
    if tissue is None:
        return None, None, 1.0
    if isinstance(tissue, str):
        if tissue != "auto":
            raise ValueError(f"tissue must be 'auto', None or (mask, downsample), got {tissue!r}")
        try:
            from napari_xai.core.masks import slide_masks
        except ImportError:
            return _fallback_tissue(slide, max_size)
        masks = slide_masks(slide, max_size=max_size)
        artefact = getattr(masks, "artefact", None)
        return (
            np.asarray(masks.tissue, bool),
            None if artefact is None else np.asarray(artefact, bool),
            float(masks.downsample),
        )
    parts = tuple(tissue)
    if len(parts) == 2:
        return np.asarray(parts[0], bool), None, float(parts[1])
    if len(parts) == 3:
        art = None if parts[1] is None else np.asarray(parts[1], bool)
        return np.asarray(parts[0], bool), art, float(parts[2])
    raise ValueError("tissue must be 'auto', None, (mask, downsample) or (tissue, artefact, ds)")


def grid_for_slide(
    slide: Slide,
    card: ModelCard,
    options: GridOptions | None = None,
    *,
    masks: TissueSpec = None,
) -> TileGrid:
    """Tile grid for ``card``'s model over ``slide``, kept where there is tissue.

    Parameters
    ----------
    slide : Slide
        Open slide.
    card : ModelCard
        Tile size and resolution of the model.
    options : GridOptions, optional
        ``mpp`` (slide level-0 µm/px when the file does not say, or says wrong),
        ``overlap``, ``tissue`` (detect tissue, or keep every tile) and
        ``min_tissue`` (minimum tissue fraction of a kept tile). ``max_tiles``
        is a choice among the grid's tiles (:func:`score_tiles`), not used here.
    masks : tuple, optional
        Precomputed ``(tissue, downsample)`` or ``(tissue, artefact, downsample)``
        masks used instead of detecting tissue (see :func:`tissue_masks`).
    """
    options = options or GridOptions()
    mpp = options.mpp
    tissue: TissueSpec = masks if masks is not None else ("auto" if options.tissue else None)
    slide_mpp = mpp if mpp is not None else slide.info.mpp
    # Fail on a missing resolution before spending time on masks.
    max_size = slide_mask_size(slide, card, mpp=mpp)
    tissue_mask, artefact_mask, mask_ds = tissue_masks(slide, tissue, max_size=max_size)
    return plan_tile_grid(
        slide.info.shape_rc,
        slide.info.level_downsamples,
        slide_mpp=slide_mpp,
        model_mpp=card.mpp,
        tile_size=int(card.tile_size),
        options=options,
        masks=TileMasks(tissue_mask, artefact_mask, mask_ds),
        path=slide.path,
    )


# -- scoring one slide ---------------------------------------------------------------


@dataclass
class ScoreProgress(Counted):
    """Progress of :func:`score_tiles` (and :func:`iter_score_slide`) after one batch.

    Attributes
    ----------
    batch : PredictionBatch
        This batch's tiles: ``indices`` (positions in ``grid``) and their
        ``probabilities`` (B, C), with the run's counts and timing so far.
    maps : ndarray of shape (C, grid_rows, grid_cols), float32
        The live class-probability maps being filled (NaN = not scored yet); the
        same object on every step (copy it to keep a snapshot). Shown at
        ``grid_to_world(grid.stride0, grid.tile_size0)``
        (:func:`napari_xai.core.layers.grid_to_world`).
    grid : TileGrid
        The tile grid (level-0 ``rows``/``cols`` and ``grid_rows``/``grid_cols``
        of every tile).
    class_names : tuple of str
        Class of each map.
    n_done, n_total : int
        Tiles scored so far / to score (the batch's).
    tiles_per_s, elapsed_s : float
        Throughput and seconds so far (the batch's).
    """

    batch: PredictionBatch
    maps: npt.NDArray[np.float32]
    grid: TileGrid
    class_names: tuple[str, ...]

    # Counted declares the counts as attributes; here they are the batch's.
    @property
    def n_done(self) -> int:  # type: ignore[override]
        """Tiles scored so far."""
        return self.batch.n_done

    @property
    def n_total(self) -> int:  # type: ignore[override]
        """Tiles to score."""
        return self.batch.n_total

    @property
    def tiles_per_s(self) -> float:
        """Throughput so far."""
        return self.batch.tiles_per_s

    @property
    def elapsed_s(self) -> float:
        """Seconds since the first batch was requested."""
        return self.batch.elapsed_s


@dataclass
class ScoreResult:
    """Everything one scoring run produced for one slide.

    Attributes
    ----------
    tiles : pandas.DataFrame
        The tiles table (see :func:`napari_xai.core.heatmaps.tiles_table`).
    probabilities : ndarray of shape (C, grid_rows, grid_cols), float32
        Class-probability maps at grid resolution (NaN: not scored).
    grid : TileGrid
        Tile geometry (``stride0``, ``tile_size0``...).
    card : ModelCard
        The model's card.
    slide_path : Path
        Scored slide.
    model_sha256 : str
        Hash of the model file.
    params : dict
        Parameters of the run (for manifests).
    timings : dict
        ``elapsed_s``, ``tiles_per_s``, ``reader_wait_s``, ``masks_s``.
    complete : bool
        False when the run was cancelled (the table then holds the tiles done).
    """

    tiles: pd.DataFrame
    probabilities: npt.NDArray[np.float32]
    grid: TileGrid
    card: ModelCard
    slide_path: Path
    model_sha256: str
    params: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    complete: bool = True

    @property
    def class_names(self) -> tuple[str, ...]:
        """Class names, in map order."""
        return self.card.class_names

    @property
    def slide_name(self) -> str:
        """Slide file name without its slide suffix (used in layer names)."""
        return slide_stem(self.slide_path)

    def save(self, out_dir: str | Path) -> Path:
        """Write ``tiles.parquet`` into ``out_dir`` (created); return its path."""
        return save_tiles(self.tiles, Path(out_dir) / "tiles.parquet")


def save_tiles(tiles: pd.DataFrame, path: str | Path) -> Path:
    """Write a tiles table to parquet atomically (``attrs`` kept in the metadata)."""
    from napari_xai.core.atomic import atomic_write

    return atomic_write(path, lambda p: tiles.to_parquet(p, index=False))


def iter_score_slide(
    slide: Slide | str | Path,
    model: LoadedModel | str | Path,
    *,
    grid: GridOptions | None = None,
    run: RunOptions | None = None,
) -> Generator[ScoreProgress, None, ScoreResult]:
    """Score one slide, yielding progress after every batch; return the result.

    Parameters
    ----------
    slide : Slide, str or Path
        Open slide, or a slide file (opened with ``grid.mpp`` and closed at the end).
    model : LoadedModel, str or Path
        Loaded model, a model file/folder, or ``"demo"`` (the bundled demo model;
        ``run.architecture`` names the architecture of state-dict weights).
    grid : GridOptions, optional
        Which tiles are scored (see :func:`score_tiles`).
    run : RunOptions, optional
        Device, batch size, reader threads (see :func:`iter_predictions`).

    Yields
    ------
    ScoreProgress
        Closing the generator (e.g. napari's ``worker.quit()``) cancels scoring.

    Returns
    -------
    ScoreResult
        The generator's return value (``StopIteration.value``, or the
        ``returned`` signal of a napari ``thread_worker``).
    """
    from napari_xai.core.wsi import opened_slide

    grid = grid or GridOptions()
    run = run or RunOptions()
    with opened_slide(slide, mpp=grid.mpp) as opened:
        loaded = resolve_model(model, device=run.torch_device, architecture=run.architecture)
        return (yield from score_tiles(opened, loaded, grid=grid, run=run))


def score_tiles(
    slide: Slide,
    model: LoadedModel,
    *,
    grid: GridOptions | None = None,
    run: RunOptions | None = None,
    tile_grid: TileGrid | None = None,
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> Generator[ScoreProgress, None, ScoreResult]:
    """Score an open slide with a loaded model (generator; see :func:`iter_score_slide`).

    Parameters
    ----------
    slide : Slide
        Open slide.
    model : LoadedModel
        Model with its card.
    grid : GridOptions, optional
        Which tiles (see :func:`grid_for_slide`); with ``max_tiles``, only that
        many, evenly spread over the slide.
    run : RunOptions, optional
        Pipeline options (see :func:`iter_predictions`).
    tile_grid : TileGrid, optional
        Precomputed tile grid (skips mask detection; ``grid`` then only gives
        ``max_tiles`` and the recorded parameters).
    forward : callable, optional
        Replaces the module's forward (see :func:`iter_predictions`).

    Yields
    ------
    ScoreProgress
        Closing the generator cancels scoring.

    Returns
    -------
    ScoreResult
        (The generator's return value: ``StopIteration.value``, or the
        ``returned`` signal of a napari ``thread_worker``.)
    """
    options = grid or GridOptions()
    run = run or RunOptions()
    t0 = time.perf_counter()
    tiles = tile_grid if tile_grid is not None else grid_for_slide(slide, model.card, options)
    masks_s = time.perf_counter() - t0
    indices = _spread(len(tiles), options.max_tiles)
    names = model.card.class_names
    maps = empty_maps(tiles, len(names))
    done_idx: list[npt.NDArray[np.int64]] = []
    done_probs: list[npt.NDArray[np.float32]] = []
    last: PredictionBatch | None = None
    complete = False
    device = choose_device(run.torch_device) if run.torch_device is not None else model.device

    def finish() -> ScoreResult:
        idx = np.concatenate(done_idx) if done_idx else np.zeros(0, np.int64)
        probs = np.concatenate(done_probs) if done_probs else np.zeros((0, len(names)), np.float32)
        elapsed = last.elapsed_s if last is not None else 0.0
        return ScoreResult(
            tiles=tiles_table(tiles, probs, names, indices=idx),
            probabilities=maps,
            grid=tiles,
            card=model.card,
            slide_path=Path(slide.path),
            model_sha256=model.sha256,
            params={
                **options.to_dict(),
                "mpp": options.mpp if options.mpp is not None else slide.info.mpp,
                "batch_size": run.batch_size,
                "device": str(device),
                "amp": run.amp,
                **tiles.attrs(),
            },
            timings={
                "elapsed_s": elapsed,
                "tiles_per_s": (len(idx) / elapsed) if elapsed > 0 else 0.0,
                "reader_wait_s": last.wait_s if last is not None else 0.0,
                "masks_s": masks_s,
            },
            complete=complete,
        )

    gen = iter_predictions(slide, model, tiles, run=run, indices=indices, forward=forward)
    try:
        for batch in gen:
            update_maps(maps, tiles, batch.indices, batch.probabilities)
            done_idx.append(batch.indices)
            done_probs.append(batch.probabilities)
            last = batch
            yield ScoreProgress(batch=batch, maps=maps, grid=tiles, class_names=names)
        complete = True
    finally:
        gen.close()
    return finish()


def _spread(n: int, max_tiles: int | None) -> npt.NDArray[np.int64]:
    """Return ``max_tiles`` of ``n`` tile indices, evenly spread (all of them without a cap)."""
    if max_tiles is None or max_tiles >= n:
        return np.arange(n, dtype=np.int64)
    return np.unique(np.linspace(0, n - 1, max(int(max_tiles), 1)).astype(np.int64))


def score_slide(
    slide: Slide | str | Path,
    model: LoadedModel | str | Path,
    *,
    grid: GridOptions | None = None,
    run: RunOptions | None = None,
    out_dir: str | Path | None = None,
    progress: Callable[[ScoreProgress], Any] | None = None,
) -> ScoreResult:
    """Score every tissue tile of ``slide``; see :func:`iter_score_slide` for options.

    Parameters
    ----------
    slide : Slide, str or Path
        Open slide or slide file.
    model : LoadedModel, str or Path
        Loaded model, model file/folder, or ``"demo"``.
    grid, run : GridOptions, RunOptions, optional
        Which tiles, and how (see :func:`iter_score_slide`).
    out_dir : str or Path, optional
        When given, ``tiles.parquet`` is written there.
    progress : callable, optional
        Called with each :class:`ScoreProgress`.
    """
    from napari_xai.core.progress import drive

    result: ScoreResult = drive(iter_score_slide(slide, model, grid=grid, run=run), progress)
    if out_dir is not None:
        result.save(out_dir)
    return result
