"""The run lifecycle of the plugin's widgets: a core call in a worker, from Run to done.

:class:`RunLifecycle` is a mixin of :class:`napari_xai._widgets._base.RunWidget`.
It owns the **Run / Cancel / progress / status** controls and
:meth:`RunLifecycle.launch`, which runs a core generator in a napari
``thread_worker`` (imports happen in the worker), moves the progress bar, routes
errors to napari notifications and re-enables the controls when the worker
finishes (while it runs, full garbage collections skip the objects that existed
before it: :mod:`napari_xai._widgets._gc`). Cancel calls ``worker.quit()`` (or
a widget's own cancel), and a cancelled generator is then closed in a thread
(:func:`close_in_thread`), so its cleanup runs at once (a scoring run's
temporary result folder is removed, not left for the next run).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from magicgui.widgets import Label, ProgressBar, PushButton

from napari_xai._widgets._gc import run_ended, run_started

#: Seconds between progress bar updates (each one repaints the panel).
PROGRESS_S = 0.1


def close_in_thread(gen: Any) -> Any:
    """Close a suspended generator (a cancelled worker's body) in a thread of its own.

    A cancelled ``thread_worker`` stops iterating its generator but never closes
    it: its ``finally`` and ``with`` blocks (a result writer removing its
    temporary folder, thread pools, open slides) would wait for garbage
    collection. Closing runs them now, off the GUI thread; the generator is idle
    once its worker has finished. Returns the thread, or None when there is
    nothing to close (the generator ran to its end or raised).
    """
    import inspect
    import threading

    if inspect.getgeneratorstate(gen) != inspect.GEN_SUSPENDED:
        return None
    thread = threading.Thread(target=gen.close, name="napari-xai cleanup", daemon=True)
    thread.start()
    return thread


class RunLifecycle:
    """Mixin: a widget's worker, its Run / Cancel / progress / status controls, its errors."""

    #: Prefix of the widget's notifications.
    title: ClassVar[str] = "napari-xai"
    #: Added to the status line when a run is cancelled.
    aborted_note: ClassVar[str] = ""

    _worker: Any = None
    _gc_frozen: bool = False  # this widget's run holds the collector's freeze
    _busy: list[Any]  # buttons disabled while a worker runs
    _progress_shown: float = 0.0  # monotonic time of the last progress update
    _run: Any
    _cancel: Any
    _progress: Any
    _status: Any

    def make_run_controls(self, run_text: str) -> None:
        """Make the Run button (``run_text``), Cancel, the progress bar and the status line."""
        self._busy = []
        self._run = PushButton(text=run_text)
        self._cancel = PushButton(text="Cancel", enabled=False)
        self._progress = ProgressBar(label="progress", value=0, min=0, max=1)
        self._status = Label(value="")

    def run_controls(self) -> list[Any]:
        """Run, Cancel, progress bar and status line, in that order."""
        return [self._run, self._cancel, self._progress, self._status]

    def wire_run_controls(self, busy: list[Any]) -> None:
        """Wire Run and Cancel; ``busy``: the buttons besides Run disabled while a worker runs."""
        self._busy = [self._run, *busy]
        self._run.changed.connect(self._on_run)
        self._cancel.changed.connect(self._on_cancel)

    def _on_run(self, _value: Any = None) -> None:
        """Start the widget's run (subclasses override)."""
        raise NotImplementedError

    def busy(self) -> bool:
        """Whether a worker runs (and say so)."""
        if self._worker is not None:
            self.error("already running; cancel first")
            return True
        return False

    def launch(
        self,
        body: Callable[..., Any],
        /,
        *args: Any,
        status: str,
        on_yielded: Callable[[Any], None] | None = None,
        on_returned: Callable[[Any], None] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Run ``body(*args, **kwargs)`` in a ``thread_worker`` and wire it to the widget.

        Parameters
        ----------
        body : callable
            A worker body: a generator function that imports the core it calls.
        status : str
            Status line while it runs.
        on_yielded, on_returned : callable, optional
            Handlers of each yielded value and of the return value.

        Returns
        -------
        napari.qt.threading.WorkerBase
            The started worker (also ``self._worker`` until it finishes).
        """
        import inspect

        from napari.qt.threading import thread_worker

        if inspect.isgeneratorfunction(body):
            gen = body(*args, **kwargs)  # runs nothing yet; kept to be closed (cleanup)

            def drive() -> Any:
                return (yield from gen)

            work, args, kwargs = drive, (), {}
        else:
            gen, work = None, body
        # Errors go to _on_errored (a notification), not re-raised in the Qt loop.
        worker = thread_worker(work, ignore_errors=True)(*args, **kwargs)
        if on_yielded is not None and hasattr(worker, "yielded"):
            worker.yielded.connect(on_yielded)
        if on_returned is not None:
            worker.returned.connect(on_returned)
        worker.errored.connect(self._on_errored)
        if hasattr(worker, "aborted"):
            worker.aborted.connect(self._on_aborted)
        worker.finished.connect(self._on_finished)
        if gen is not None:
            worker.finished.connect(lambda: close_in_thread(gen))
        self._worker = worker
        for button in self._busy:
            button.enabled = False
        self._cancel.enabled = True
        self._progress.value = 0
        self._progress_shown = 0.0
        self._status.value = status
        if not self._gc_frozen:  # full collections of the run walk only what it makes
            run_started()
            self._gc_frozen = True
        worker.start()
        return worker

    def set_progress(self, done: int, total: int, text: str | None = None) -> None:
        """Move the progress bar (and the status line), at most every ``PROGRESS_S``.

        Each change repaints the panel; many batches a second would keep the GUI
        thread busy painting. The last step (``done == total``) is always shown.
        """
        import time

        now = time.monotonic()
        if now - self._progress_shown < PROGRESS_S and done < total:
            return
        self._progress_shown = now
        self._progress.max = max(int(total), 1)
        self._progress.value = int(done)
        if text is not None:
            self._status.value = text

    def show_step(self, step: Any) -> None:
        """Show a step of a pipeline run (or of its stage): its tiles counted, else its message.

        The pipeline's own score step reads "scoring first": a stage run from a widget
        (Explain, Audit) on a slide not scored yet scores it before it starts.
        """
        what = "scoring first" if step.stage == "score" else step.stage
        if step.n_total:
            text = f"{what}: {step.n_done:,} / {step.n_total:,} tiles"
        else:
            text = getattr(step, "message", "") or what
        self.set_progress(step.n_done, step.n_total, text)

    def _on_cancel(self, _value: Any = None) -> None:
        if self._worker is not None:
            self._worker.quit()
            self._status.value = "cancelling…"

    def error(self, message: str) -> None:
        """Show ``message`` on the status line and as a napari error notification."""
        from napari.utils.notifications import show_error

        self._status.value = f"error: {message}"
        show_error(f"{self.title}: {message}")

    def info(self, message: str) -> None:
        """Show ``message`` on the status line and as a napari information notification."""
        from napari.utils.notifications import show_info

        self._status.value = message
        show_info(f"{self.title}: {message}")

    def _on_errored(self, exc: BaseException) -> None:
        self.error(str(exc))

    def _on_aborted(self) -> None:
        self._status.value = f"cancelled ({self._status.value}){self.aborted_note}"

    def _on_finished(self) -> None:
        if self._gc_frozen:
            self._gc_frozen = False
            run_ended()
        self._worker = None
        for button in self._busy:
            button.enabled = True
        self._cancel.enabled = False
