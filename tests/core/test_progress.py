"""drive and relay: one step loop, the generator's return value, cancel closes the work."""

from __future__ import annotations

import pytest

from napari_xai.core.progress import Counted, drive, eager, relay


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


def test_eager_runs_the_generator_with_its_arguments_and_closes_it() -> None:
    log: list[str] = []

    def iter_count(n: int, *, scale: int = 1):
        try:
            yield from range(n)
            return n * scale
        finally:
            log.append("closed")

    count = eager(iter_count, name="count")
    assert count(3, scale=5) == 15 and log == ["closed"]
    assert count.__name__ == "count" and ":func:`iter_count` to the end" in (count.__doc__ or "")
    with pytest.raises(TypeError):
        count(3, progress=print)  # type: ignore[call-arg]  # progress: drive the generator


def test_the_eager_core_functions_are_their_generators_run_to_the_end() -> None:
    from napari_xai.core.attribution.whole_slide import explain_slide
    from napari_xai.core.audit.slide import audit_slide
    from napari_xai.core.batch import run_batch

    for fn, name in (
        (run_batch, "run_batch"),
        (explain_slide, "explain_slide"),
        (audit_slide, "audit_slide"),
    ):
        assert fn.__name__ == name and f":func:`iter_{name.removeprefix('run_')}`" in (
            fn.__doc__ or ""
        )


def test_the_progress_steps_count_their_work_one_way() -> None:
    from dataclasses import dataclass

    from napari_xai.core.attribution.whole_slide import ExplainProgress
    from napari_xai.core.audit.slide import AuditProgress
    from napari_xai.core.inference import ScoreProgress
    from napari_xai.core.pipeline import PipelineProgress

    @dataclass(frozen=True)
    class Step(Counted):
        n_done: int
        n_total: int

    assert Step(3, 12).fraction == 0.25 and Step(0, 0).fraction == 1.0
    for cls in (ScoreProgress, ExplainProgress, AuditProgress, PipelineProgress):
        assert issubclass(cls, Counted) and "fraction" not in vars(cls)
    assert PipelineProgress("score", n_done=1, n_total=4).fraction == 0.25
    assert AuditProgress(2, 8, 0.1).fraction == 0.25
