"""One base for the plugin's run widgets: pickers, workers, layers, errors.

:class:`RunWidget` puts together what every widget that runs a core call needs,
each part once, in a module of its own:

* a **slide picker** (:class:`~napari_xai._widgets._pickers.SlidePicker`: image
  layers opened by the napari-xai reader) and a **model picker**
  (:class:`~napari_xai._widgets._model_picker.ModelPicker`: bundled demo, a model
  file, a WSInfer folder) with a note next to the model's name (its card's
  caveat, e.g. synthetic training data); the model is resolved in a worker,
  never on the GUI thread;
* the **run lifecycle** (:class:`~napari_xai._widgets._lifecycle.RunLifecycle`):
  Run / Cancel / progress / status, :meth:`~RunLifecycle.launch` (a core
  generator in a ``thread_worker``), errors as notifications;
* a scroll area that fits the screen (:class:`~napari_xai._widgets._layout.ScrollPanel`);
* one **upsert-by-name** policy for layers, :meth:`RunWidget.upsert`
  (:func:`napari_xai._widgets._layers.upsert`).

Widgets build their own controls, then call :meth:`RunWidget.finish` with them.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from magicgui.widgets import Container

from napari_xai._widgets._layers import upsert
from napari_xai._widgets._layout import ScrollPanel, fit_panel
from napari_xai._widgets._lifecycle import RunLifecycle
from napari_xai._widgets._model_picker import ModelPicker
from napari_xai._widgets._pickers import SlidePicker, default_output  # noqa: F401 (importers)

if TYPE_CHECKING:
    import napari.layers
    import napari.viewer

LayerData = tuple[Any, dict[str, Any], str]

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


class RunWidget(SlidePicker, ModelPicker, RunLifecycle, ScrollPanel, Container):
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
        self._pickers: list[Any] = []
        self._limits_set: dict[str, tuple[float, ...]] = {}  # contrast limits we last set
        self._pickers += self.slide_controls() if slide else []
        self._pickers += self.model_controls() if model else []
        self.make_run_controls(run_text)

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
        self.wire_run_controls(list(busy))
        if hasattr(self, "_slide_layer"):
            self.wire_slide_picker()
        if hasattr(self, "_model_source"):
            self.wire_model_picker()

    def slide_to_run(self) -> napari.layers.Image | None:
        """Return the picked slide layer when a run can start, else None (saying why)."""
        layer = self.picked_slide()
        if layer is None or self.busy():
            return None
        return layer

    def refresh_on_layer_change(self, *pickers: Any) -> None:
        """Re-read the choices of ``pickers`` whenever a layer is added or removed."""

        def refresh(_event: Any = None) -> None:
            for picker in pickers:
                picker.reset_choices()

        self._viewer.layers.events.inserted.connect(refresh)
        self._viewer.layers.events.removed.connect(refresh)

    def upsert(self, ldt: LayerData | napari.layers.Layer, *, colorbar: bool = True) -> Any:
        """Show a LayerData tuple by the plugin's one layer-naming policy (:func:`upsert`)."""
        return upsert(self._viewer, ldt, self._limits_set, colorbar=colorbar)
