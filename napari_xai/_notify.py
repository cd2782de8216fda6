"""Warnings for the person at the viewer: a napari notification, else a Python warning.

Readers and writers run inside napari (and sometimes in worker threads or outside
napari, in tests and scripts); this is the one place they report a problem that
does not stop them. Nothing is imported at module level.
"""

from __future__ import annotations


def warn(message: str) -> None:
    """Show ``message`` as a napari warning notification (a Python warning outside napari)."""
    try:
        from napari.utils.notifications import show_warning

        show_warning(message)
    except Exception:  # pragma: no cover - outside napari
        import warnings

        warnings.warn(message, stacklevel=3)
