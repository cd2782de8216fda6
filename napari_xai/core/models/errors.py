"""The models package's error, shared by the card and the WSInfer config checks."""

from __future__ import annotations

__all__ = ["ModelCardError"]


class ModelCardError(ValueError):
    """A model card or WSInfer config is missing a field or has a bad value."""
