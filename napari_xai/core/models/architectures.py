"""Registry of model architectures for state-dict weights: no code from data.

A state dict holds tensors only; the module they fill is built by a factory
chosen by *name* from this registry. A card's ``architecture`` string is a
key, never something imported: a card naming ``os:abort`` or a module that
sits beside it in the model folder is an unknown name and a clear error, and
no model folder is ever put on :data:`sys.path`.

Where names come from
---------------------
* the package's own factories (the demo CNN, the ResNet-18-like test model and
  the shortcut-demo CNN), under a short name and, for cards written before the
  registry, under their old ``package.module:factory`` spelling;
* :func:`register_architecture` (a decorator or a plain call) in user code;
* installed distributions, through the entry point group
  ``napari_xai.architectures`` (``name = "package.module:factory"`` in the
  distribution's ``pyproject.toml``). Entry points are code the user chose to
  install, not text in a model folder.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, TypeVar, overload

__all__ = [
    "ENTRY_POINT_GROUP",
    "ArchitectureError",
    "get_architecture",
    "register_architecture",
    "registered_architectures",
    "unregister_architecture",
]

#: Entry point group through which installed packages add architectures.
ENTRY_POINT_GROUP = "napari_xai.architectures"

F = TypeVar("F", bound=Callable[..., Any])

# Built-in factories: fixed (module, attribute) pairs of this package, imported
# on first use so that listing names stays cheap.
_BUILTIN: dict[str, tuple[str, str]] = {
    "demo_cnn": ("napari_xai.core.models.demo", "make_demo_cnn"),
    "resnet18_like": ("napari_xai.core.models.demo", "make_resnet18"),
    "shortcut_tiny_cnn": ("napari_xai.core.models.demo", "TinyCNN"),
}
# Names used by cards written before the registry (the bundled demo models).
_BUILTIN_ALIASES: dict[str, str] = {
    "napari_xai.core.models.demo:make_demo_cnn": "demo_cnn",
    "napari_xai.core.models.demo:make_resnet18": "resnet18_like",
    "napari_xai.core.audit.shortcut_demo:TinyCNN": "shortcut_tiny_cnn",
}
_REGISTERED: dict[str, Callable[..., Any]] = {}


class ArchitectureError(ValueError):
    """An architecture name is not registered, or a registration is invalid."""


@overload
def register_architecture(name: str, factory: F, *, overwrite: bool = ...) -> F: ...
@overload
def register_architecture(
    name: str, factory: None = ..., *, overwrite: bool = ...
) -> Callable[[F], F]: ...
def register_architecture(
    name: str, factory: F | None = None, *, overwrite: bool = False
) -> F | Callable[[F], F]:
    """Register a factory that builds a torch module for state-dict weights.

    Use as a decorator (``@register_architecture("my_net")``) or as a call
    (``register_architecture("my_net", make_net)``). The factory is called with
    ``num_classes=`` when it accepts that keyword.

    Parameters
    ----------
    name : str
        The name a model card gives as ``architecture``.
    factory : callable, optional
        The factory; omitted when used as a decorator.
    overwrite : bool
        Replace an existing registration instead of refusing it.

    Returns
    -------
    callable
        ``factory`` itself (or the decorator).

    Raises
    ------
    ArchitectureError
        For an empty name, a non-callable factory, or a name already taken.
    """
    if not isinstance(name, str) or not name.strip():
        raise ArchitectureError(f"architecture name must be a non-empty string, got {name!r}")

    def _add(fn: F) -> F:
        if not callable(fn):
            raise ArchitectureError(f"architecture {name!r}: factory {fn!r} is not callable")
        taken = name in _REGISTERED or name in _BUILTIN or name in _BUILTIN_ALIASES
        if taken and not overwrite:
            raise ArchitectureError(
                f"architecture {name!r} is already registered (pass overwrite=True to replace it)"
            )
        _REGISTERED[name] = fn
        return fn

    if factory is None:
        return _add
    return _add(factory)


def unregister_architecture(name: str) -> None:
    """Remove a name added with :func:`register_architecture` (no-op when absent)."""
    _REGISTERED.pop(name, None)


def _entry_points() -> dict[str, Any]:
    from importlib.metadata import entry_points

    return {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def registered_architectures() -> tuple[str, ...]:
    """All names a card may use, sorted (built-in, registered, entry points)."""
    names = set(_BUILTIN) | set(_BUILTIN_ALIASES) | set(_REGISTERED) | set(_entry_points())
    return tuple(sorted(names))


def get_architecture(name: str, *, source: object = "model card") -> Callable[..., Any]:
    """Return the factory registered under ``name``.

    Parameters
    ----------
    name : str
        The card's ``architecture`` (or the ``architecture=`` argument).
    source : object
        What named it (the card file), for the error message.

    Returns
    -------
    callable

    Raises
    ------
    ArchitectureError
        When ``name`` is not registered: the message names ``source`` and lists
        the registered names. Nothing named by ``name`` is imported.
    """
    if not isinstance(name, str):
        raise ArchitectureError(f"{source}: architecture must be a string, got {name!r}")
    if name in _REGISTERED:
        return _REGISTERED[name]
    key = _BUILTIN_ALIASES.get(name, name)
    if key in _BUILTIN:
        module_name, attr = _BUILTIN[key]
        factory: Callable[..., Any] = getattr(importlib.import_module(module_name), attr)
        return factory
    eps = _entry_points()
    if name in eps:
        try:
            loaded = eps[name].load()
        except Exception as exc:
            raise ArchitectureError(
                f"{source}: architecture {name!r} (entry point {eps[name].value!r} in group "
                f"{ENTRY_POINT_GROUP!r}) cannot be loaded: {exc}"
            ) from None
        if not callable(loaded):
            raise ArchitectureError(
                f"{source}: architecture {name!r} (entry point {eps[name].value!r}) "
                "is not callable"
            )
        return loaded  # type: ignore[no-any-return]
    raise ArchitectureError(
        f"{source}: unknown architecture {name!r}; registered architectures: "
        f"{', '.join(registered_architectures())} (register others with "
        f"napari_xai.core.models.architectures.register_architecture or the "
        f"{ENTRY_POINT_GROUP!r} entry point group; model cards never name code to import)"
    )
