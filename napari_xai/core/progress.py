"""Drive progress generators: the one loop that runs a core generator to its return value.

Long core work is a generator that yields progress and *returns* its result
(``StopIteration.value``). :func:`drive` runs one to the end with an optional
callback; :func:`relay` re-yields its steps converted (``yield from`` with a
map), so a pipeline stage can forward a scorer's progress as its own.

Only the standard library is imported.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any, TypeVar

__all__ = ["drive", "relay"]

S = TypeVar("S")
T = TypeVar("T")
R = TypeVar("R")


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
