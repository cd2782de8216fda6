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
  ``worker.quit()`` (or a widget's own cancel);
* one **upsert-by-name** policy for layers, :meth:`RunWidget.upsert`.

Widgets build their own controls, then call :meth:`RunWidget.finish` with them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from magicgui.widgets import ComboBox, Container, FileEdit, Label, ProgressBar, PushButton

from napari_xai._widgets._layout import ScrollPanel, fit_panel, show_colorbar
from napari_xai._widgets._pickers import (
    DEMO,
    MODEL_FILE_FILTER,
    MODEL_SOURCES,
    model_spec,
    show_model_file,
    slide_layer_choices,
)

if TYPE_CHECKING:
    import napari.layers
    import napari.viewer

LayerData = tuple[Any, dict[str, Any], str]
#: Seconds between progress bar updates (each one repaints the panel).
PROGRESS_S = 0.1
#: Modules the GUI thread uses when results arrive, imported in the describe worker.
WARM_MODULES = (
    "napari_xai.core.layers",
    "napari_xai.core.naming",
    "napari_xai.core.layers.saliency",
    "napari_xai.core.inference",
)


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


def default_output() -> Path:
    """Default folder for result folders: private, per user (``<user cache>/results``)."""
    from napari_xai.core.options import cache_dir

    return cache_dir("results")


def model_note(card: Any) -> str:
    """Text shown next to the model's name: its name and the card's caveat."""
    caveat = getattr(card, "caveat", "")
    name = str(getattr(card, "name", "model"))
    return f"{name}: {caveat}" if caveat else name


class RunWidget(ScrollPanel, Container):
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
        self._model_card: Any = None
        self._info_worker: Any = None
        self._busy: list[Any] = []  # buttons disabled while a worker runs
        self._pickers: list[Any] = []
        self._limits_set: dict[str, tuple[float, ...]] = {}  # contrast limits we last set
        self._progress_shown = 0.0  # monotonic time of the last progress update
        if slide:
            self._slide_layer = ComboBox(label="slide", choices=self._slide_choices, nullable=True)
            self._pickers.append(self._slide_layer)
        if model:
            self._model_source = ComboBox(label="model", choices=list(MODEL_SOURCES), value=DEMO)
            self._model_file = FileEdit(
                label="model file", mode="r", filter=MODEL_FILE_FILTER, visible=False
            )
            self._model_note = Label(label="model card", value="")
            self._pickers += [self._model_source, self._model_file, self._model_note]
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
            self._viewer.layers.events.inserted.connect(self._refresh_slides)
            self._viewer.layers.events.removed.connect(self._refresh_slides)
            self._refresh_slides()
        if hasattr(self, "_model_source"):
            self._model_source.changed.connect(self._on_model_changed)
            self._model_file.changed.connect(self._on_model_changed)
            self._on_model_changed()

    # -- pickers ---------------------------------------------------------------------
    def _slide_choices(self, _widget: Any = None) -> list[tuple[str, Any]]:
        """Image layers that come from a slide file (have ``metadata['path']``)."""
        return slide_layer_choices(self._viewer)

    def _refresh_slides(self, _event: Any = None) -> None:
        """Refresh the slide choices; pick the first slide when none is chosen."""
        self._slide_layer.reset_choices()
        choices = self._slide_choices()
        if self._slide_layer.value is None and choices:
            self._slide_layer.value = choices[0][1]

    def picked_slide(self) -> napari.layers.Image | None:
        """Return the chosen slide layer, or ``None`` after saying how to open one."""
        layer: napari.layers.Image | None = self._slide_layer.value
        if layer is None:
            self.error("open a slide first (File ▸ Open, napari-xai reader)")
        return layer

    def _model_spec(self) -> str | Path:
        return model_spec(self._model_source.value, self._model_file.value)

    def _load_model(self) -> Any:
        """Return the chosen model, loaded once and cached (call from a worker)."""
        from napari_xai.core.models.resolve import resolve_model

        return resolve_model(self._model_spec())

    def _on_model_changed(self, _value: Any = None) -> None:
        """Show the file picker for file/folder sources; describe the model in a worker."""
        from napari.qt.threading import thread_worker

        show_model_file(self._model_source.value, self._model_file)
        self._model_card = None
        self._model_note.value = ""
        if self._model_source.value != DEMO and not Path(str(self._model_file.value)).exists():
            return
        spec = self._model_spec()
        worker = thread_worker(self._describe_model, ignore_errors=True)(spec)
        # Both answers are dropped once the user has picked another model: a slow
        # failure for the previous pick must not overwrite the current model's note.
        worker.returned.connect(lambda out: self._if_current(spec, out, self._on_model_described))
        worker.errored.connect(lambda exc: self._if_current(spec, exc, self._on_model_unreadable))
        self._info_worker = worker
        worker.start()

    def _if_current(self, spec: str | Path, answer: Any, show: Callable[[Any], None]) -> None:
        """``show(answer)`` unless the user has picked another model meanwhile."""
        try:
            current = self._model_spec()
        except RuntimeError:  # the widget was closed meanwhile
            return
        if str(current) == str(spec):
            show(answer)

    def _describe_model(self, spec: str | Path) -> Any:
        """Worker body: load the model (warms the cache) and return what the UI shows.

        Also imports, here in the worker, the modules the GUI thread needs when the
        first results arrive (layer builders), so a first run does not pause napari
        on imports.
        """
        import importlib

        from napari_xai.core.models.resolve import resolve_model

        for module in WARM_MODULES:
            importlib.import_module(module)
        return resolve_model(spec)

    def _on_model_described(self, model: Any) -> None:
        """Show the model's name and caveat (a widget may override to refresh choices)."""
        self._model_card = model.card
        self._model_note.value = model_note(model.card)
        self._model_note.tooltip = str(getattr(model.card, "description", ""))

    def _on_model_unreadable(self, exc: BaseException) -> None:
        try:
            self._model_note.value = f"cannot read the model: {exc}"
        except RuntimeError:
            return

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
        from napari.qt.threading import thread_worker

        # Errors go to _on_errored (a notification), not re-raised in the Qt loop.
        worker = thread_worker(body, ignore_errors=True)(*args, **kwargs)
        if on_yielded is not None and hasattr(worker, "yielded"):
            worker.yielded.connect(on_yielded)
        if on_returned is not None:
            worker.returned.connect(on_returned)
        worker.errored.connect(self._on_errored)
        if hasattr(worker, "aborted"):
            worker.aborted.connect(self._on_aborted)
        worker.finished.connect(self._on_finished)
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
    def upsert(self, ldt: LayerData | napari.layers.Layer) -> Any:
        """Show a LayerData tuple: the one layer-naming policy of the plugin.

        A layer with the same name and kind is updated in place (data, placement,
        metadata; contrast limits unless the user changed them), so the user's
        display choices (colormap, opacity, visibility) survive re-runs and live
        refreshes. A layer of another kind with the name is replaced at the same
        place in the list. Otherwise the layer is added. Scalar images get their
        colour bar. ``ldt`` may also be a layer built in a worker (shapes and
        points are triangulated and indexed there, off the GUI thread): it
        replaces or joins the layers by name.

        Returns
        -------
        napari.layers.Layer
        """
        from napari.layers import Image, Layer

        built = ldt if isinstance(ldt, Layer) else None
        data, kwargs, layer_type = ldt if built is None else (None, {"name": built.name}, "")
        name = kwargs["name"]
        if name in self._viewer.layers:
            old = self._viewer.layers[name]
            multiscale = kwargs.get("multiscale", isinstance(data, list))
            if layer_type == "image" and isinstance(old, Image) and old.multiscale == multiscale:
                return self._update_image(old, data, kwargs)
            index = self._viewer.layers.index(old)
            self._viewer.layers.remove(old)
            new = show_colorbar(Layer.create(data, kwargs, layer_type) if built is None else built)
            self._viewer.layers.insert(index, new)
            self._limits_set[name] = _limits(new)
            return new
        layer = self._viewer.add_layer(
            show_colorbar(Layer.create(data, kwargs, layer_type) if built is None else built)
        )
        self._limits_set[name] = _limits(layer)
        return layer

    def _update_image(self, layer: Any, data: Any, kwargs: dict[str, Any]) -> Any:
        auto = self._limits_set.get(layer.name)
        user_set = auto is not None and _limits(layer) != auto
        import numpy as np

        # set only what changed: every change is an event napari's layer list redraws
        for key in ("scale", "translate"):
            if key in kwargs and not np.allclose(getattr(layer, key), kwargs[key]):
                setattr(layer, key, kwargs[key])
        layer.data = data
        metadata = kwargs.get("metadata", {})
        try:
            same = bool(metadata == layer.metadata)
        except ValueError:  # arrays inside: compare by setting
            same = False
        if not same:
            layer.metadata = {**metadata}
        limits = kwargs.get("contrast_limits")
        if limits is not None and not user_set and _limits(layer) != tuple(map(float, limits)):
            layer.contrast_limits = limits
        self._limits_set[layer.name] = _limits(layer)
        return layer


def _limits(layer: Any) -> tuple[float, ...]:
    return tuple(float(v) for v in getattr(layer, "contrast_limits", ()))
