"""drive and relay: one step loop, the generator's return value, cancel closes the work."""

from __future__ import annotations

import pytest

from napari_xai.core.progress import drive, relay


def _work(log: list[str]):
    try:
        yield from range(3)
        return "done"
    finally:
        log.append("closed")


def test_drive_calls_progress_on_every_step_and_returns_the_value() -> None:
    seen: list[int] = []
    log: list[str] = []
    assert drive(_work(log), seen.append) == "done"
    assert seen == [0, 1, 2] and log == ["closed"]
    assert drive(_work([])) == "done"


def test_a_progress_callback_that_raises_stops_and_closes_the_work() -> None:
    log: list[str] = []

    def stop(step: int) -> None:
        if step == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        drive(_work(log), stop)
    assert log == ["closed"]  # the generator's cleanup ran


def test_relay_converts_steps_and_returns_the_value() -> None:
    def outer():
        value = yield from relay(_work([]), lambda s: s * 10)
        return value

    gen = outer()
    steps = [next(gen), next(gen), next(gen)]
    with pytest.raises(StopIteration) as stop:
        next(gen)
    assert steps == [0, 10, 20] and stop.value.value == "done"
