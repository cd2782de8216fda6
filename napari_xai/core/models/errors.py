"""The models package's error, shared by the card and the WSInfer config checks."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

__all__ = ["ModelCardError", "read_json"]


class ModelCardError(ValueError):
    """A model card or WSInfer config is missing a field or has a bad value."""


def read_json(
    path: Path, *, error: type[ModelCardError] = ModelCardError, what: str, not_json: str
) -> Any:
    """Parse the JSON file ``path``; a missing or non-JSON file raises ``error`` naming it.

    Parameters
    ----------
    path : Path
    error : type
        :class:`ModelCardError` or a subclass.
    what : str
        What the file is, for ``"<path>: <what> not found"``.
    not_json : str
        The message when it does not parse (``"<path>: <not_json> (<why>)"``).
    """
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{path}: {not_json} ({exc})") from None
