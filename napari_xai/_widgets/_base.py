"""One base for the plugin's run widgets: pickers, workers, layers, errors.

:class:`RunWidget` owns what every widget that runs a core call needs, once:

* a **slide picker** (image layers opened by the napari-xai reader) and a
  **model picker** (bundled demo, a model file, a WSInfer folder) with a note
  next to the model's name (its card's caveat, e.g. synthetic training data);
  the model is resolved in a worker, never on the GUI thread;
* **Run / Cancel / progress / status** controls, and :meth:`RunWidget.launch`,
  which runs a core generator in a napari ``thread_worker`` (imports happen in
  the worker), moves the progress bar, routes errors to napari notifications
  and re-enables the controls when the worker finishes; Cancel calls
  ``worker.quit()`` (or a widget's own cancel), and a cancelled generator is
  then closed in a thread, so its cleanup runs at once (a scoring run's
  temporary result folder is removed, not left for the next run);
* one **upsert-by-name** policy for layers, :meth:`RunWidget.upsert`.

Widgets build their own controls, then call :meth:`RunWidget.finish` with them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from magicgui.widgets import Container, Label, ProgressBar, PushButton

from napari_xai._widgets._layers import upsert
from napari_xai._widgets._layout import ScrollPanel, fit_panel
from napari_xai._widgets._model_picker import ModelPicker
from napari_xai._widgets._pickers import SlidePicker, default_output  # noqa: F401 (importers)

if TYPE_CHECKING:
    import napari.layers
    import napari.viewer

LayerData = tuple[Any, dict[str, Any], str]
#: Seconds between progress bar updates (each one repaints the panel).
PROGRESS_S = 0.1


F = TypeVar("F", bound=Callable[..., Any])


def guarded(method: F) -> F:
    """Show a handler's exception as a napari error notification instead of raising."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as e:  # a widget never crashes napari
            self.error(f"{type(e).__name__}: {e}")
            return None

    return wrapper  # type: ignore[return-value]


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


class RunWidget(SlidePicker, ModelPicker, ScrollPanel, Container):
    """Base of the plugin widgets that run core calls in workers.

    Parameters
    ----------
    viewer : napari.viewer.Viewer
        The viewer whose layers the widget reads and adds to.
    slide : bool
        Offer a slide picker (``self._slide_layer``).
    model : bool
        Offer a model picker (``self._model_source``, ``self._model_file``,
        ``self._model_note``).
    run_text : str
        Text of the Run button (``self._run``).
    """

    #: Prefix of the widget's notifications.
    title: ClassVar[str] = "napari-xai"

    def __init__(
        self,
        viewer: napari.viewer.Viewer,
        *,
        slide: bool = True,
        model: bool = True,
        run_text: str = "Run",
    ) -> None:
        super().__init__(labels=True, scrollable=True)
        self._viewer = viewer
        self._worker: Any = None
        self._busy: list[Any] = []  # buttons disabled while a worker runs
        self._pickers: list[Any] = []
        self._limits_set: dict[str, tuple[float, ...]] = {}  # contrast limits we last set
        self._progress_shown = 0.0  # monotonic time of the last progress update
        self._pickers += self.slide_controls() if slide else []
        self._pickers += self.model_controls() if model else []
        self._run = PushButton(text=run_text)
        self._cancel = PushButton(text="Cancel", enabled=False)
        self._progress = ProgressBar(label="progress", value=0, min=0, max=1)
        self._status = Label(value="")

    def run_controls(self) -> list[Any]:
        """Run, Cancel, progress bar and status line, in that order."""
        return [self._run, self._cancel, self._progress, self._status]

    def finish(self, controls: Sequence[Any], *, busy: Sequence[Any] = ()) -> None:
        """Lay out the pickers then ``controls``; wire pickers, Run and Cancel.

        Parameters
        ----------
        controls : sequence of magicgui widgets
            The widget's own controls (include :meth:`run_controls` where wanted).
        busy : sequence of buttons
            Buttons besides Run disabled while a worker runs.
        """
        self.extend([*self._pickers, *controls])
        fit_panel(self)
        self._busy = [self._run, *busy]
        self._run.changed.connect(self._on_run)
        self._cancel.changed.connect(self._on_cancel)
        if hasattr(self, "_slide_layer"):
            self.wire_slide_picker()
        if hasattr(self, "_model_source"):
            self.wire_model_picker()

    # -- running ---------------------------------------------------------------------
    def _on_run(self, _value: Any = None) -> None:
        """Start the widget's run (subclasses override)."""
        raise NotImplementedError

    def busy(self) -> bool:
        """Whether a worker runs (and say so)."""
        if self._worker is not None:
            self.error("already running; cancel first")
            return True
        return False

    def slide_to_run(self) -> napari.layers.Image | None:
        """Return the picked slide layer when a run can start, else None (saying why)."""
        layer = self.picked_slide()
        if layer is None or self.busy():
            return None
        return layer

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

    def refresh_on_layer_change(self, *pickers: Any) -> None:
        """Re-read the choices of ``pickers`` whenever a layer is added or removed."""

        def refresh(_event: Any = None) -> None:
            for picker in pickers:
                picker.reset_choices()

        self._viewer.layers.events.inserted.connect(refresh)
        self._viewer.layers.events.removed.connect(refresh)

    def _on_errored(self, exc: BaseException) -> None:
        self.error(str(exc))

    #: Added to the status line when a run is cancelled.
    aborted_note: ClassVar[str] = ""

    def _on_aborted(self) -> None:
        self._status.value = f"cancelled ({self._status.value}){self.aborted_note}"

    def _on_finished(self) -> None:
        self._worker = None
        for button in self._busy:
            button.enabled = True
        self._cancel.enabled = False

    # -- layers ----------------------------------------------------------------------
    def upsert(self, ldt: LayerData | napari.layers.Layer, *, colorbar: bool = True) -> Any:
        """Show a LayerData tuple by the plugin's one layer-naming policy (:func:`upsert`)."""
        return upsert(self._viewer, ldt, self._limits_set, colorbar=colorbar)
