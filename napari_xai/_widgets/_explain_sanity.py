"""The Explain widget's sanity label: the method's sanity status on the model.

:class:`MethodSanity` is a mixin of :class:`napari_xai._widgets.explain.ExplainWidget`
(which gives ``_method`` and ``_model_sha``): whenever the model or the method
changes, the record of the last audit that checked the method on this model (a
small file, :func:`napari_xai.core.audit.sanity.known_sanity`) is read in a worker,
never on the GUI thread, and an answer that arrives after another pick is dropped.
"""

from __future__ import annotations

from typing import Any

from magicgui.widgets import Label

TOOLTIP = (
    "Sanity checks of the attribution method on this model (cascading model "
    "randomisation, deletion/insertion), as recorded by the last audit that ran them"
)


def sanity_text(model_sha: str | None, method: str) -> str:
    """Worker body: "sanity: ..." for ``method`` on the model (the last audit's record)."""
    from napari_xai.core.audit.sanity import known_sanity, method_label

    label = method_label(method, known_sanity(model_sha, method))
    return "sanity: " + label.removeprefix(method).strip(" ()")


class MethodSanity:
    """Mixin: the sanity label (``self._sanity``) next to the method."""

    _sanity_worker: Any = None
    # From ExplainWidget.
    _method: Any
    _model_sha: str | None

    def sanity_label(self) -> Label:
        """Make the label (``self._sanity``)."""
        self._sanity = Label(value="", tooltip=TOOLTIP)
        return self._sanity

    def _show_sanity(self, _value: Any = None) -> None:
        """Label the method with its sanity status on this model (read in a worker)."""
        from napari.qt.threading import thread_worker

        asked = (self._model_sha, str(self._method.value))
        self._sanity.value = "sanity: …"
        worker = thread_worker(sanity_text, ignore_errors=True)(*asked)
        worker.returned.connect(lambda text: self._on_sanity(asked, text))
        worker.errored.connect(lambda exc: self._on_sanity(asked, f"sanity: unreadable ({exc})"))
        self._sanity_worker = worker
        worker.start()

    def _on_sanity(self, asked: tuple[str | None, str], text: str) -> None:
        """Show ``text`` unless the model or the method changed meanwhile."""
        try:
            if asked == (self._model_sha, str(self._method.value)):
                self._sanity.value = text
        except RuntimeError:  # the widget was closed meanwhile
            return
