"""One model resolver and cache: ``"demo"``, a model file or folder, or a loaded model.

Scoring, the pipeline, the batch workers, attribution, the audit and the
widgets all turn what the user named into a
:class:`~napari_xai.core.models.loading.LoadedModel` here, so a model is loaded
once per process (a dask worker scores many slides with it; the Explain widget
reuses it across runs) and ``"demo"`` means the same thing everywhere.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

__all__ = [
    "DEMO_NAMES",
    "clear_model_cache",
    "model_path",
    "resolve_carded_model",
    "resolve_model",
]

#: Names that mean the bundled demo model.
DEMO_NAMES = ("demo", "demo-model", ":demo:")
#: Loaded models kept per process (least recently used dropped first).
_CACHE_SIZE = 4
_CACHE: OrderedDict[tuple[str, str, str, str], Any] = OrderedDict()
_LOCK = threading.Lock()


def model_path(model: str | os.PathLike[str]) -> Path:
    """Return the file or folder a model name stands for (``"demo"``: the bundled model)."""
    if str(model).lower() in DEMO_NAMES:
        from napari_xai.core.models.demo import demo_model_path

        return demo_model_path()
    return Path(model).expanduser().absolute()


def _stamp(path: Path) -> str:
    """Return sizes and mtimes of a model file (or a folder's files): a change reloads."""
    try:
        files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.is_file())
        return ";".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in files)
    except OSError:
        return ""  # load_model says what is wrong with the path


def resolve_model(model: Any, *, device: Any = None, architecture: str | None = None) -> Any:
    """Return a loaded model for a loaded model, ``"demo"`` or a model file/folder (cached).

    Parameters
    ----------
    model : LoadedModel, str or Path
        A loaded model (returned as it is), ``"demo"`` (the bundled demo model)
        or a path for :func:`napari_xai.core.models.loading.load_model`.
    device : str or torch.device, optional
        ``None``/``"auto"``/``""``: CUDA, then MPS, then CPU.
    architecture : str, optional
        Registered architecture name for state-dict weights.

    Returns
    -------
    LoadedModel
        The same object for the same path, device and architecture (and
        unchanged files) while it stays among the last few used.

    Raises
    ------
    ModelError, OSError
        When the model cannot be loaded (the message names the file).
    """
    if not isinstance(model, (str, os.PathLike)):
        return model
    from napari_xai.core.models.loading import load_model

    dev = None if device in (None, "", "auto") else device
    path = model_path(model)
    key = (str(path), str(dev), str(architecture), _stamp(path))
    with _LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
        loaded = load_model(path, device=dev, architecture=architecture)
        _CACHE[key] = loaded
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
        return loaded


def resolve_carded_model(
    model: Any, *, device: Any = None, architecture: str | None = None, task: str, needs: str
) -> Any:
    """Return :func:`resolve_model`'s model, which must carry a model card.

    Parameters
    ----------
    model, device, architecture
        As :func:`resolve_model`.
    task : str
        What needs the card, for the message (``"explaining a slide"``).
    needs : str
        What it reads from the card, for the message (``"tile size, mpp"``).

    Raises
    ------
    ValueError
        When the model has no card (a bare module): the message says to load it
        with :func:`napari_xai.core.models.loading.load_model`.
    """
    loaded = resolve_model(model, device=device, architecture=architecture)
    if getattr(loaded, "card", None) is None:
        raise ValueError(
            f"{task} needs a model card ({needs}): load the model with "
            "napari_xai.core.models.loading.load_model"
        )
    return loaded


def clear_model_cache() -> None:
    """Forget every cached model (e.g. after the weights file changed)."""
    with _LOCK:
        _CACHE.clear()
