"""Keep the garbage collector's full passes off the GUI while a run goes.

A napari process that has imported torch holds about half a million objects the
cyclic garbage collector tracks (modules, functions, types, napari's viewer);
each full (generation 2) collection walks all of them while holding the GIL:
250-500 ms on a 2-core machine, a frozen viewer whenever one falls during a run
(napari also collects in full on every layer removal). While any widget's
worker runs, :func:`run_started` moves the objects that existed before it to
the collector's permanent generation (:func:`gc.freeze`), so the passes of the
run walk only what the run made; :func:`run_ended`, when the last run ends,
hands them back (:func:`gc.unfreeze`): nothing is leaked, the cycles among the
older objects are found by the next full pass (a layer the user closes during
a long batch is freed after the batch, not at once). A process whose host
froze objects itself (``gc.get_freeze_count()`` before the first run) is left
alone.
Called on the GUI thread only.
"""

from __future__ import annotations

import gc

_runs = 0  # runs going now
_owned = False  # whether the freeze now in place is this module's


def run_started() -> None:
    """Freeze the objects that exist now, when this is the first run going (a worker starts)."""
    global _runs, _owned
    if _runs == 0 and gc.get_freeze_count() == 0:
        gc.freeze()
        _owned = True
    _runs += 1


def run_ended() -> None:
    """Unfreeze what :func:`run_started` froze, when the run that ended was the last one."""
    global _runs, _owned
    _runs = max(_runs - 1, 0)
    if _runs == 0 and _owned:
        gc.unfreeze()
        _owned = False
