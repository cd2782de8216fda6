"""Drive progress generators: the one loop that runs a core generator to its return value.

Long core work is a generator that yields progress and *returns* its result
(``StopIteration.value``). :func:`drive` runs one to the end with an optional
callback; :func:`relay` re-yields its steps converted (``yield from`` with a
map), so a pipeline stage can forward a scorer's progress as its own;
:func:`eager` makes the plain function of a generator (``run_batch`` of
``iter_batch``): the same parameters, run to the end.

Only the standard library is imported.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, ParamSpec, TypeVar

__all__ = ["Counted", "drive", "eager", "relay"]

P = ParamSpec("P")
S = TypeVar("S")
T = TypeVar("T")
R = TypeVar("R")


class Counted:
    """Mixin of the progress steps that count work: ``n_done`` of ``n_total``.

    The progress dataclasses (``ScoreProgress``, ``ExplainProgress``,
    ``AuditProgress``, ``PipelineProgress``) declare the two fields; this gives them
    one :attr:`fraction`.
    """

    __slots__ = ()
    n_done: int
    n_total: int

    @property
    def fraction(self) -> float:
        """Share of the work done, in [0, 1] (1 when there is nothing to do)."""
        return self.n_done / self.n_total if self.n_total else 1.0


def drive(gen: Generator[S, Any, R], progress: Callable[[S], Any] | None = None) -> R:
    """Run ``gen`` to the end, calling ``progress(step)`` on every step; return its value.

    Parameters
    ----------
    gen : generator
        A core generator (``iter_score_slide``, ``run_slide``, ``iter_batch``...).
    progress : callable, optional
        Called with each yielded step; it may raise to stop the work.

    Returns
    -------
    object
        The generator's return value.
    """
    steps = relay(gen, progress if progress is not None else _ignore)
    while True:  # drain the relay: it calls ``progress`` and closes ``gen`` on an error
        try:
            next(steps)
        except StopIteration as stop:
            result: R = stop.value
            return result


def eager(gen_fn: Callable[P, Generator[Any, Any, R]], *, name: str) -> Callable[P, R]:
    """Make the eager form of a progress generator: the same parameters, run to its value.

    ``run_batch = eager(iter_batch, name="run_batch")`` spells the parameters
    once (on the generator) and keeps them typed; to follow the progress, drive
    the generator itself: ``drive(iter_batch(...), on_event)``.

    Parameters
    ----------
    gen_fn : callable
        A core generator function (``iter_batch``, ``iter_explain_slide``...).
    name : str
        The eager function's name.

    Returns
    -------
    callable
        ``f(*args, **kwargs)``: ``drive(gen_fn(*args, **kwargs))``.
    """

    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        return drive(gen_fn(*args, **kwargs))

    gen = gen_fn.__name__
    run.__name__ = run.__qualname__ = name
    run.__module__ = gen_fn.__module__
    run.__doc__ = (
        f"Run :func:`{gen}` to the end and return its value.\n\n"
        f"The parameters are :func:`{gen}`'s; to follow the progress, drive the "
        f"generator: ``drive({gen}(...), progress)``.\n"
    )
    return run


def _ignore(step: object) -> None:
    """Progress callback that does nothing."""


def relay(gen: Generator[S, Any, R], convert: Callable[[S], T]) -> Generator[T, None, R]:
    """Yield ``convert(step)`` for every step of ``gen``; return ``gen``'s value.

    Closing the relay closes ``gen`` (cancelling the work it drives).
    """
    try:
        while True:
            try:
                step = next(gen)
            except StopIteration as stop:
                result: R = stop.value
                return result
            yield convert(step)
    finally:
        gen.close()
