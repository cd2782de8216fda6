"""Sample data: a synthetic H&E slide (tumour, pen mark, marker, ruler, label) with masks.

napari imports this module to build the File > Open Sample menu, so nothing heavy
is imported at module level.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari_xai.core.options import cache_dir

if TYPE_CHECKING:
    from collections.abc import Callable

#: Size (rows, cols) and seed of the sample slide.
SAMPLE_SHAPE_RC = (16384, 20480)
SAMPLE_SEED = 0
_FORMAT_VERSION = 1  # bump when the generator's output changes


def sample_slide_path(
    *,
    shape_rc: tuple[int, int] = SAMPLE_SHAPE_RC,
    seed: int = SAMPLE_SEED,
    folder: str | Path | None = None,
    progress: Callable[[int, int], Any] | None = None,
) -> Path:
    """Path of the synthetic sample slide, written once and reused.

    Parameters
    ----------
    shape_rc : tuple of int
        Level-0 (rows, cols).
    seed : int
        Generator seed.
    folder : str or Path, optional
        Where to keep it (default :func:`cache_dir`).
    progress : callable, optional
        ``progress(done_tiles, total_tiles)`` while writing.

    Returns
    -------
    Path
        The ``.svs`` file; its ground truth lies beside it (``.truth.npz``).
    """
    from napari_xai.demo.synthetic import SyntheticTruth, write_synthetic_slide

    folder = Path(folder) if folder is not None else cache_dir()
    name = f"synthetic_{shape_rc[0]}x{shape_rc[1]}_seed{seed}_v{_FORMAT_VERSION}.svs"
    path = folder / name
    if path.is_file() and SyntheticTruth.default_path(path).is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    write_synthetic_slide(path, shape_rc=shape_rc, seed=seed, progress=progress)
    return path


def synthetic_slide() -> list[Any]:
    """Open the synthetic sample slide with its tissue, artefact and tumour-truth layers.

    The slide (16384 x 20480 px, 0.5 µm/px, Aperio-style pyramidal JPEG TIFF) is
    generated on first use into the cache folder (:func:`cache_dir`, about 30-40 s)
    and reused afterwards. The work runs in a thread while napari keeps drawing,
    with a progress bar (:func:`run_responsive`).

    In napari (a Qt viewer is current), only the slide is returned: the mask
    layers are built in that thread too and join the viewer one per event-loop
    turn (:class:`~napari_xai._widgets._pace.LayerPacer`), so napari draws the
    slide and stays responsive instead of adding four layers in one stall.

    Returns
    -------
    list of LayerDataTuple
        The lazy multiscale slide, then (without a Qt viewer) Labels layers:
        tissue, artefacts (from the thumbnail, as for any slide) and the
        generator's tumour ground truth (hidden).
    """
    import functools

    desc = "Preparing the sample slide (first time ~40 s)"
    viewer = _gui_viewer()
    if viewer is None:
        layers: list[Any] = run_responsive(_sample_layers, desc=desc)
        return layers
    slide, *masks = run_responsive(functools.partial(_sample_layers, built=True), desc=desc)
    from napari_xai._widgets._pace import LayerPacer

    pacer = LayerPacer(viewer.add_layer)
    _PACING.add(pacer)  # alive until its layers are in
    for layer in masks:
        pacer.put(layer)
    pacer.then(lambda: _PACING.discard(pacer))
    return [slide]


#: Pacers adding the sample's mask layers (kept alive until done).
_PACING: set[Any] = set()


def _gui_viewer() -> Any:
    """Return napari's current viewer on the GUI thread of a running Qt app, else None."""
    import threading

    try:
        from qtpy.QtWidgets import QApplication
    except ImportError:
        return None
    if (
        QApplication.instance() is None
        or threading.current_thread() is not threading.main_thread()
    ):
        return None
    from napari import current_viewer

    return current_viewer()


def run_responsive(work: Callable[[Callable[[int, int], Any]], Any], *, desc: str) -> Any:
    """Run ``work(progress)`` in a thread while napari stays responsive, with a progress bar.

    napari calls sample-data functions on the GUI thread and waits for their layers.
    When a Qt application runs, the work goes to a thread and this function keeps
    processing Qt events (every 20 ms) and moves a napari progress bar from the
    ``progress(done, total)`` calls, so the window never freezes; without Qt it
    simply calls ``work``.
    """
    import threading

    try:
        from qtpy.QtWidgets import QApplication
    except ImportError:  # no Qt: nothing to keep responsive
        return work(lambda done, total: None)
    app = QApplication.instance()
    if app is None or threading.current_thread() is not threading.main_thread():
        return work(lambda done, total: None)
    from napari.utils import progress as napari_progress

    state: dict[str, Any] = {"done": 0, "total": 0}
    result: dict[str, Any] = {}
    # Set by the thread itself when the work is over. Never ask Thread.is_alive() after a
    # Ctrl-C: a join() interrupted by KeyboardInterrupt marks the thread as stopped while
    # it still runs (CPython 3.11, bpo-45274), as in core/batch.py's slide threads.
    finished = threading.Event()

    def run() -> None:
        try:
            result["value"] = work(lambda done, total: state.update(done=done, total=total))
        except BaseException as exc:  # noqa: BLE001 - re-raised on the GUI thread
            result["error"] = exc
        finally:
            finished.set()

    thread = threading.Thread(target=run, name="napari-xai sample", daemon=True)
    with napari_progress(total=0, desc=desc) as bar:
        thread.start()
        while not finished.wait(0.02):
            if state["total"] and bar.total != state["total"]:
                bar.total = int(state["total"])
            if state["total"] and bar.n != state["done"]:
                bar.update(int(state["done"]) - bar.n)
            app.processEvents()
    thread.join()  # finished: only the thread's own exit is left
    if "error" in result:
        raise result["error"]
    return result["value"]


def _sample_layers(progress: Callable[[int, int], Any], *, built: bool = False) -> list[Any]:
    """Write (first time) and read the sample slide, its masks and its truth.

    With ``built``, the masks come as napari layers made here (in the caller's
    thread) with their first colour-texture mapping done (numba compiles it
    once per process: ~1.5 s that would otherwise stall the GUI thread).
    """
    from napari_xai._reader import read_slide
    from napari_xai.core.layers.masks import mask_layers, truth_layer
    from napari_xai.core.masks import slide_masks
    from napari_xai.core.naming import class_colour
    from napari_xai.demo.synthetic import SyntheticTruth

    path = sample_slide_path(shape_rc=SAMPLE_SHAPE_RC, seed=SAMPLE_SEED, progress=progress)
    layers: list[Any] = list(read_slide(str(path)))
    slide = layers[0][1]["metadata"]["slide"]
    prefix = path.name
    layers.extend(mask_layers(slide_masks(slide), name_prefix=prefix))
    truth = SyntheticTruth.load(path)
    colour = class_colour("tumour")
    name = f"{prefix} tumour (truth)"
    layers.append(truth_layer(truth.tumour, downsample=truth.downsample, name=name, colour=colour))
    if built:
        layers[1:] = [_built_labels(ldt) for ldt in layers[1:]]
    from napari_xai._widgets._style import watch_current_viewer

    watch_current_viewer()  # masks drawn as outlines once napari has made the layers
    return layers


def _built_labels(ldt: Any) -> Any:
    """Make a Labels layer from its LayerData, with its colormap's texture mapping warmed."""
    import numpy as np
    from napari.layers import Layer

    layer = Layer.create(*ldt)
    try:  # best effort: a napari without this method just compiles on first draw
        layer.colormap._data_to_texture(np.zeros((2, 2), dtype=layer.data.dtype))
    except Exception:  # noqa: BLE001 - warming only
        pass
    return layer
