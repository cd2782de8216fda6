"""Full garbage collections skip the objects older than a run while runs go (no Qt)."""

from __future__ import annotations

import gc

import pytest

from napari_xai._widgets import _gc


@pytest.fixture(autouse=True)
def _no_freeze():
    gc.unfreeze()
    _gc._runs, _gc._owned = 0, False
    yield
    gc.unfreeze()
    _gc._runs, _gc._owned = 0, False


def test_objects_are_frozen_from_the_first_run_to_the_last() -> None:
    _gc.run_started()
    frozen = gc.get_freeze_count()
    assert frozen > 1_000  # the modules' objects at least
    _gc.run_started()  # a second run (another widget) while the first goes
    assert gc.get_freeze_count() == frozen  # not frozen again with the run's objects
    _gc.run_ended()
    assert gc.get_freeze_count() == frozen  # one run still goes
    _gc.run_ended()
    assert gc.get_freeze_count() == 0  # handed back: nothing leaked
    _gc.run_ended()  # an extra end (a widget closed twice) changes nothing
    assert gc.get_freeze_count() == 0


def test_a_freeze_made_by_the_host_is_left_alone() -> None:
    gc.freeze()
    frozen = gc.get_freeze_count()
    _gc.run_started()
    _gc.run_ended()
    assert gc.get_freeze_count() == frozen  # still the host's
