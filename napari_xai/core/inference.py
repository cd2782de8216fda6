"""Score every tissue tile of a slide with a tile model.

Three layers, each usable alone:

* :func:`iter_predictions` — the pipeline: reader threads prefetch and decode
  batches while the model computes (``torch.inference_mode``; pinned memory,
  non-blocking copies and autocast on CUDA); yields :class:`PredictionBatch`.
* :func:`iter_score_slide` — grid + tissue mask + pipeline for one slide; yields
  :class:`ScoreProgress` (for progress bars, live layers and cancelling: stop
  iterating) and *returns* a :class:`ScoreResult`.
* :func:`score_slide` — the same, run to the end; optionally saves ``tiles.parquet``.
"""

from __future__ import annotations

import contextlib
import os
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
from napari_xai.core.options import DEFAULT_MIN_TISSUE
from napari_xai.core.predict import predict_probabilities
from napari_xai.core.reader import RegionSource, TileReader
from napari_xai.core.tiling import TileGrid, model_downsample, plan_tile_grid

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
    batch_size: int = 32,
    device: str | torch.device | None = None,
    prefetch: int = 2,
    num_workers: int | None = None,
    amp: bool = True,
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
    batch_size : int
        Tiles per forward pass.
    device : str or torch.device, optional
        ``None``/``"auto"``: CUDA, then MPS, then CPU.
    prefetch : int
        Batches read ahead while the model computes.
    num_workers : int, optional
        Reader threads; default 2 on CPU (they share the cores with the model),
        up to 8 (one per core) on GPUs.
    amp : bool
        Mixed precision (float16 autocast) on CUDA; ignored elsewhere.
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
    dev = choose_device(device) if device is not None else model.device
    model = model.to(dev)
    module = model.module.eval()
    if num_workers is None:
        num_workers = max(1, min(8, os.cpu_count() or 1)) if dev.type == "cuda" else 2
    reader = TileReader(
        source,
        grid,
        batch_size=batch_size,
        prefetch=prefetch,
        num_workers=num_workers,
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
                    model, batch.tiles, device=dev, amp=amp, forward=forward or module
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
    *,
    mpp: float | None = None,
    overlap: float = 0.0,
    tissue: TissueSpec = "auto",
    min_tissue: float = DEFAULT_MIN_TISSUE,
) -> TileGrid:
    """Tile grid for ``card``'s model over ``slide``, kept where there is tissue.

    Parameters
    ----------
    slide : Slide
        Open slide.
    card : ModelCard
        Tile size and resolution of the model.
    mpp : float, optional
        Slide level-0 µm/px when the file does not say (or says wrong).
    overlap : float
        Fraction of a tile shared with its neighbour, in [0, 1).
    tissue : "auto", None or tuple
        See :func:`tissue_masks`.
    min_tissue : float
        Minimum tissue fraction of a kept tile.
    """
    slide_mpp = mpp if mpp is not None else slide.info.mpp
    # Fail on a missing resolution before spending time on masks.
    tile_size0 = card.tile_size * model_downsample(card.mpp, slide_mpp, path=slide.path)
    max_size = mask_size_for(slide.info.shape_rc, tile_size0)
    tissue_mask, artefact_mask, mask_ds = tissue_masks(slide, tissue, max_size=max_size)
    return plan_tile_grid(
        slide.info.shape_rc,
        slide.info.level_downsamples,
        slide_mpp=slide_mpp,
        model_mpp=card.mpp,
        tile_size=int(card.tile_size),
        overlap=overlap,
        tissue_mask=tissue_mask,
        mask_downsample=mask_ds,
        min_tissue=min_tissue,
        artefact_mask=artefact_mask,
        path=slide.path,
    )


# -- scoring one slide ---------------------------------------------------------------


@dataclass
class ScoreProgress:
    """Progress of :func:`iter_score_slide` after one batch.

    ``maps`` is the live ``(C, grid_rows, grid_cols)`` array being filled (NaN =
    not scored yet); the same object on every step.
    """

    n_done: int
    n_total: int
    tiles_per_s: float
    elapsed_s: float
    maps: npt.NDArray[np.float32]
    grid: TileGrid
    class_names: tuple[str, ...]
    batch: PredictionBatch | None = None

    @property
    def fraction(self) -> float:
        """Share of tiles done, in [0, 1]."""
        return self.n_done / self.n_total if self.n_total else 1.0


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
    architecture: str | None = None,
    **kwargs: Any,
) -> Generator[ScoreProgress, None, ScoreResult]:
    """Score one slide, yielding progress after every batch; return the result.

    Parameters
    ----------
    slide : Slide, str or Path
        Open slide, or a slide file (opened with ``mpp`` and closed at the end).
    model : LoadedModel, str or Path
        Loaded model, a model file/folder, or ``"demo"`` (the bundled demo model).
    architecture : str, optional
        Registered architecture name for state-dict weights given as a path.
    **kwargs
        ``mpp``, ``overlap``, ``tissue``, ``min_tissue``, ``batch_size``,
        ``device``, ``prefetch``, ``num_workers``, ``amp``, ``max_tiles``,
        ``grid``: see :func:`score_tiles`.

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
    with contextlib.ExitStack() as stack:
        if not hasattr(slide, "read_region"):
            from napari_xai.core.wsi import open_slide

            slide = stack.enter_context(open_slide(slide, mpp=kwargs.get("mpp")))
        model = resolve_model(model, device=kwargs.get("device"), architecture=architecture)
        return (yield from score_tiles(slide, model, **kwargs))  # type: ignore[arg-type]


def score_tiles(
    slide: Slide,
    model: LoadedModel,
    *,
    mpp: float | None = None,
    overlap: float = 0.0,
    tissue: TissueSpec = "auto",
    min_tissue: float = DEFAULT_MIN_TISSUE,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    prefetch: int = 2,
    num_workers: int | None = None,
    amp: bool = True,
    max_tiles: int | None = None,
    grid: TileGrid | None = None,
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> Generator[ScoreProgress, None, ScoreResult]:
    """Score an open slide with a loaded model (generator; see :func:`iter_score_slide`).

    Parameters
    ----------
    slide : Slide
        Open slide.
    model : LoadedModel
        Model with its card.
    mpp : float, optional
        Slide level-0 µm/px when the file does not say.
    overlap, tissue, min_tissue
        Grid options (see :func:`grid_for_slide`).
    batch_size, device, prefetch, num_workers, amp
        Pipeline options (see :func:`iter_predictions`).
    max_tiles : int, optional
        Score only the first ``max_tiles`` tiles (evenly spread over the slide).
    grid : TileGrid, optional
        Precomputed grid (skips mask detection).
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
    t0 = time.perf_counter()
    if grid is None:
        grid = grid_for_slide(
            slide, model.card, mpp=mpp, overlap=overlap, tissue=tissue, min_tissue=min_tissue
        )
    masks_s = time.perf_counter() - t0
    indices = np.arange(len(grid), dtype=np.int64)
    if max_tiles is not None and max_tiles < len(grid):
        indices = np.unique(np.linspace(0, len(grid) - 1, max(int(max_tiles), 1)).astype(np.int64))
    names = model.card.class_names
    maps = empty_maps(grid, len(names))
    done_idx: list[npt.NDArray[np.int64]] = []
    done_probs: list[npt.NDArray[np.float32]] = []
    last: PredictionBatch | None = None
    complete = False

    def finish() -> ScoreResult:
        idx = np.concatenate(done_idx) if done_idx else np.zeros(0, np.int64)
        probs = np.concatenate(done_probs) if done_probs else np.zeros((0, len(names)), np.float32)
        table = tiles_table(grid, probs, names, indices=idx)
        elapsed = last.elapsed_s if last is not None else 0.0
        return ScoreResult(
            tiles=table,
            probabilities=maps,
            grid=grid,
            card=model.card,
            slide_path=Path(slide.path),
            model_sha256=model.sha256,
            params={
                "mpp": mpp if mpp is not None else slide.info.mpp,
                "overlap": overlap,
                "min_tissue": min_tissue,
                "batch_size": batch_size,
                "device": str(choose_device(device) if device is not None else model.device),
                "amp": amp,
                "max_tiles": max_tiles,
                **grid.attrs(),
            },
            timings={
                "elapsed_s": elapsed,
                "tiles_per_s": (len(idx) / elapsed) if elapsed > 0 else 0.0,
                "reader_wait_s": last.wait_s if last is not None else 0.0,
                "masks_s": masks_s,
            },
            complete=complete,
        )

    gen = iter_predictions(
        slide,
        model,
        grid,
        batch_size=batch_size,
        device=device,
        prefetch=prefetch,
        num_workers=num_workers,
        amp=amp,
        indices=indices,
        forward=forward,
    )
    try:
        for batch in gen:
            update_maps(maps, grid, batch.indices, batch.probabilities)
            done_idx.append(batch.indices)
            done_probs.append(batch.probabilities)
            last = batch
            yield ScoreProgress(
                n_done=batch.n_done,
                n_total=batch.n_total,
                tiles_per_s=batch.tiles_per_s,
                elapsed_s=batch.elapsed_s,
                maps=maps,
                grid=grid,
                class_names=names,
                batch=batch,
            )
        complete = True
    finally:
        gen.close()
    return finish()


def score_slide(
    slide: Slide | str | Path,
    model: LoadedModel | str | Path,
    *,
    out_dir: str | Path | None = None,
    progress: Callable[[ScoreProgress], Any] | None = None,
    **kwargs: Any,
) -> ScoreResult:
    """Score every tissue tile of ``slide``; see :func:`iter_score_slide` for options.

    Parameters
    ----------
    slide : Slide, str or Path
        Open slide or slide file.
    model : LoadedModel, str or Path
        Loaded model, model file/folder, or ``"demo"``.
    out_dir : str or Path, optional
        When given, ``tiles.parquet`` is written there.
    progress : callable, optional
        Called with each :class:`ScoreProgress`.
    **kwargs
        Options of :func:`iter_score_slide`.
    """
    from napari_xai.core.progress import drive

    result: ScoreResult = drive(iter_score_slide(slide, model, **kwargs), progress)
    if out_dir is not None:
        result.save(out_dir)
    return result
