"""Open Sample keeps napari responsive: the sample is prepared in a thread with progress."""

from __future__ import annotations

import time

import numpy as np
import pytest


def test_work_runs_in_a_thread_while_the_gui_ticks(make_napari_viewer, qtbot) -> None:
    import threading

    from qtpy.QtCore import QTimer

    from napari_xai._sample_data import run_responsive

    make_napari_viewer()
    ticked = threading.Event()
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(ticked.set)  # runs only while the GUI thread runs its event loop
    seen: list[str] = []
    ticks_during_work: list[bool] = []

    def work(progress) -> str:
        seen.append(threading.current_thread().name)
        total = 0
        for i in range(10):
            # Busy in pure Python (holding the GIL in turns) until the GUI thread's timer
            # fires again. Only a GUI thread that keeps processing events ends the wait, on
            # any load: no wall-clock claim (the deadline only keeps a broken run from hanging).
            ticked.clear()
            deadline = time.monotonic() + 60
            while not ticked.is_set() and time.monotonic() < deadline:
                total += 1
            ticks_during_work.append(ticked.is_set())
            if not ticked.is_set():
                break
            progress(i + 1, 10)
        return f"done {total > 0}"

    timer.start()
    assert run_responsive(work, desc="test") == "done True"
    timer.stop()
    assert seen and seen[0] != threading.main_thread().name
    # the GUI thread ran its timer during each of the 10 steps of the work
    assert ticks_during_work == [True] * 10, ticks_during_work

    def broken(progress) -> None:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        run_responsive(broken, desc="test")


def test_open_sample_adds_the_slide_then_its_masks_one_per_turn(
    make_napari_viewer, qtbot, tmp_path, monkeypatch
) -> None:
    """File > Open Sample in a real viewer: napari gets the slide at once and the mask
    layers (built in the worker) join one per event-loop turn, styled as outlines."""
    from napari.layers import Image, Labels

    import napari_xai._sample_data as sample

    monkeypatch.setenv("NAPARI_XAI_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(sample, "SAMPLE_SHAPE_RC", (2048, 2560))
    viewer = make_napari_viewer()
    inserted: list[str] = []
    viewer.layers.events.inserted.connect(lambda event: inserted.append(event.value.name))
    (slide,) = viewer.open_sample("napari-xai", "synthetic_slide")
    assert isinstance(slide, Image) and slide.rgb and slide.multiscale
    assert inserted == [slide.name]  # the masks are not added in the same call
    qtbot.waitUntil(lambda: len(viewer.layers) == 4, timeout=60_000)
    tissue, artefacts, tumour = (viewer.layers[n] for n in inserted[1:])
    assert inserted[1:] == [f"{slide.name} tissue", f"{slide.name} artefacts", tumour.name]
    assert tumour.name.endswith("tumour (truth)") and not tumour.visible
    for layer in (tissue, artefacts, tumour):
        assert isinstance(layer, Labels) and np.asarray(layer.data).any(), layer.name
    assert tissue.contour > 0  # masks as outlines, as for any slide
    assert not sample._PACING  # the pacer let go once its layers were in
