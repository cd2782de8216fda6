"""The Score widget's worker body: score a slide into a result folder, build its layers.

Everything here runs in the worker thread (the core, torch and napari's layer
classes are imported there): the live class-probability layers every
``REFRESH_S`` while scoring, and at the end the result reader's layers of the
folder, the shapes and points layers already built (triangulated and indexed
off the GUI thread).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari_xai.core.options import SlideOptions

if TYPE_CHECKING:
    from napari_xai.core.options import FeatureSpec, GridOptions, RunOptions
    from napari_xai.core.pipeline import PipelineProgress

#: Seconds between live layer builds while scoring.
REFRESH_S = 0.5


def score_in_worker(
    path: str,
    spec: Any,
    out: Path,
    *,
    grid: GridOptions,
    run: RunOptions,
    features: FeatureSpec | None = None,
    mpp: float | None = None,
) -> Any:
    """Worker body: score ``path`` into ``out/<slide stem>/`` with :func:`run_slide`.

    Yields a str for each warning (the slide does not fit the model, no tile
    scored) and ``(step, layers)`` for each progress step, where ``layers`` are
    the live class-probability LayerData (built here, every ``REFRESH_S``) or
    ``[]``. Returns ``(folder, score_result, layers, n_tiles)``: the result
    folder, the :class:`~napari_xai.core.inference.ScoreResult` (None when the
    folder was reused), the result reader's layers of the folder (no slide;
    regions in µm with ``mpp``) and the number of tiles it holds.
    """
    from napari.layers import Layer

    from napari_xai.core.layers import heatmap_layers
    from napari_xai.core.layers.results import result_layers
    from napari_xai.core.models.resolve import resolve_model
    from napari_xai.core.naming import slide_stem
    from napari_xai.core.pipeline import run_slide
    from napari_xai.core.progress import relay
    from napari_xai.core.results import load_result, why_no_tiles

    model, name = resolve_model(spec, device=run.torch_device), slide_stem(path)
    built, scored = [0.0], []

    def convert(step: PipelineProgress) -> Any:
        if step.stage == "warning":
            return step.message
        if step.stage == "score" and step.value is not None:
            scored.append(step.value)
        live = step.detail if step.stage == "score" else None
        now = time.monotonic()
        if live is None or (now - built[0] < REFRESH_S and live.n_done < live.n_total):
            return step, []
        built[0] = now
        maps = live.maps.copy()  # this thread fills it: a consistent copy
        kw = {"stride0": live.grid.stride0, "tile_size0": live.grid.tile_size0}
        return step, heatmap_layers(maps, live.class_names, slide_name=name, **kw)

    gen = run_slide(path, model, out, SlideOptions(grid=grid, run=run, features=features))
    folder = yield from relay(gen, convert)
    result = load_result(folder)
    if scored and not len(scored[0].tiles):
        yield (
            f"{Path(path).name}: 0 tiles scored: {why_no_tiles(result.manifest)}. "
            "Try a lower min tissue, or `napari-xai qc` to inspect the masks."
        )
    notes: list[str] = []  # warnings, shown by the GUI thread; shapes/points are built here
    ldts = result_layers(result, with_slide=False, annotations_mpp=mpp, warn=notes.append)
    yield from notes
    layers = [Layer.create(*t) if t[2] in ("shapes", "points") else t for t in ldts]
    return folder, (scored[0] if scored else None), layers, len(result.tiles)
