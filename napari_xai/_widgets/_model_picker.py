"""The model picker of the run widgets: describe the picked model in a worker.

:class:`ModelPicker` is a mixin of :class:`napari_xai._widgets._base.RunWidget`
(which makes its controls ``_model_source``, ``_model_file`` and
``_model_note``): on every pick it resolves the model in a worker (never on the
GUI thread), shows its name and its card's caveat next to it, and drops an
answer that arrives after the user picked another model.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from napari_xai._widgets._pickers import (
    DEMO,
    MODEL_FILE_FILTER,
    MODEL_SOURCES,
    model_spec,
    show_model_file,
)

#: Modules the GUI thread uses when results arrive, imported in the describe worker.
WARM_MODULES = (
    "napari_xai.core.layers",
    "napari_xai.core.naming",
    "napari_xai.core.layers.saliency",
    "napari_xai.core.inference",
)


def model_note(card: Any) -> str:
    """Text shown next to the model's name: its name and the card's caveat."""
    caveat = getattr(card, "caveat", "")
    name = str(getattr(card, "name", "model"))
    return f"{name}: {caveat}" if caveat else name


class ModelPicker:
    """Mixin: the picked model, described in a worker (see the module docstring)."""

    _model_source: Any
    _model_file: Any
    _model_note: Any
    _model_card: Any = None  # the described model's card
    _info_worker: Any = None

    def model_controls(self) -> list[Any]:
        """Make the model source, file and note controls (in that order)."""
        from magicgui.widgets import ComboBox, FileEdit, Label

        self._model_source = ComboBox(label="model", choices=list(MODEL_SOURCES), value=DEMO)
        self._model_file = FileEdit(label="model file", filter=MODEL_FILE_FILTER, visible=False)
        self._model_note = Label(label="model card", value="")
        return [self._model_source, self._model_file, self._model_note]

    def wire_model_picker(self) -> None:
        """Describe the model whenever another is picked, and the first one now."""
        self._model_source.changed.connect(self._on_model_changed)
        self._model_file.changed.connect(self._on_model_changed)
        self._on_model_changed()

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
