"""Sane bounds checked before anything is planned or allocated, in one place.

Every value a user, a model card or a slide file supplies that sets how much
is computed or allocated is checked here first, with a one-line error naming
the file or option. The bounds are module constants: a site with bigger
slides or bigger models overrides them at run time (before the run starts),
e.g.::

    import napari_xai.core.limits as limits
    limits.MAX_SLIDE_SIDE_PX = 2_000_000

or through the environment variable ``NAPARI_XAI_LIMITS`` read when this
module is first imported (``"MAX_SLIDE_SIDE_PX=2000000,MAX_TILE_SIZE_PX=8192"``).
The checks read the constants at call time, so an override applies to the
next call.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_BATCH_SIZE",
    "MAX_MPP",
    "MAX_RESIZE_PX",
    "MAX_SLIDE_PIXELS",
    "MAX_SLIDE_SIDE_PX",
    "MAX_TILE_SIZE_PX",
    "MIN_MPP",
    "CountLimit",
    "LimitError",
    "check_batch_size",
    "check_mpp",
    "check_resize",
    "check_slide_shape",
    "check_tile_size",
]

#: Largest side of a slide's level 0, in pixels (the biggest scanners write
#: about 200,000 px; 10x headroom).
MAX_SLIDE_SIDE_PX = 2_000_000
#: Largest level-0 area, in pixels (rows x cols): 4e11 is ~ 630,000 px square.
MAX_SLIDE_PIXELS = 400_000_000_000
#: Smallest resolution accepted, in µm per pixel (an electron micrograph is
#: ~ 0.001; light microscopy never goes below ~ 0.1).
MIN_MPP = 0.01
#: Largest resolution accepted, in µm per pixel (1 mm per pixel).
MAX_MPP = 1000.0
#: Largest model tile side, in pixels (WSInfer models use 224-350).
MAX_TILE_SIZE_PX = 4096
#: Largest side a ``Resize`` transform may ask for, in pixels.
MAX_RESIZE_PX = 4096
#: Largest number of tiles fed to a model at once.
MAX_BATCH_SIZE = 4096

#: Environment variable with overrides, as ``NAME=value`` pairs separated by commas.
ENV_VAR = "NAPARI_XAI_LIMITS"


class LimitError(ValueError):
    """A value is outside the bounds set in :mod:`napari_xai.core.limits`."""


def _apply_env(text: str) -> None:
    names = {n for n in __all__ if n.isupper()}
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or name not in names:
            raise LimitError(
                f"{ENV_VAR}: cannot read {item!r}; expected NAME=value with NAME one of "
                f"{sorted(names)}"
            )
        current = globals()[name]
        try:
            globals()[name] = type(current)(value.strip())
        except ValueError:
            raise LimitError(f"{ENV_VAR}: {name} needs a number, got {value!r}") from None


def _where(source: object) -> str:
    return f"{source}: " if source not in (None, "") else ""


def _number(value: Any, what: str, source: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise LimitError(f"{_where(source)}{what} must be a number, got {value!r}") from None
    return float(value)


def check_mpp(value: Any, *, what: str = "mpp", source: object = None) -> float:
    """Return ``value`` as a float when it is a finite resolution within bounds.

    Parameters
    ----------
    value : float
        Microns per pixel.
    what : str
        The option or field name, for the message (``"--mpp"``, ``"spacing_um_px"``).
    source : object, optional
        The file it came from, for the message.

    Raises
    ------
    LimitError
        For NaN, infinity, zero, negative values and values outside
        [:data:`MIN_MPP`, :data:`MAX_MPP`].
    """
    mpp = _number(value, what, source)
    if not math.isfinite(mpp) or mpp <= 0:
        raise LimitError(f"{_where(source)}{what} must be a positive finite number, got {value!r}")
    if not MIN_MPP <= mpp <= MAX_MPP:
        raise LimitError(
            f"{_where(source)}{what} = {mpp:g} µm/px is outside [{MIN_MPP:g}, {MAX_MPP:g}] "
            f"(napari_xai.core.limits.MIN_MPP / MAX_MPP)"
        )
    return mpp


@dataclass(frozen=True)
class CountLimit:
    """A check of a positive integer count bounded by one of this module's constants.

    Calling it returns ``value`` as an int when it is in [1, bound], where the
    bound is read from the module constant named ``constant`` at call time (so
    a run-time override applies to the next call).

    Attributes
    ----------
    constant : str
        Name of the bound's module constant (``"MAX_BATCH_SIZE"``).
    what : str
        Default name of the value, for the message (``"batch size"``).
    """

    constant: str
    what: str

    def __call__(self, value: Any, *, what: str | None = None, source: object = None) -> int:
        """Return ``value`` as an int when it lies in [1, the bound].

        Parameters
        ----------
        value : int
            The count.
        what : str, optional
            The option or field name, for the message (default :attr:`what`).
        source : object, optional
            The file it came from, for the message.

        Raises
        ------
        LimitError
            Naming ``source`` and ``what``.
        """
        name = self.what if what is None else what
        number = _number(value, name, source)
        if not math.isfinite(number) or number != int(number) or number < 1:
            raise LimitError(f"{_where(source)}{name} must be a positive integer, got {value!r}")
        top = int(globals()[self.constant])
        if number > top:
            raise LimitError(
                f"{_where(source)}{name} = {int(number)} exceeds the limit {top} "
                f"(napari_xai.core.limits.{self.constant})"
            )
        return int(number)


#: A model tile side in [1, :data:`MAX_TILE_SIZE_PX`].
check_tile_size = CountLimit("MAX_TILE_SIZE_PX", "tile size")
#: A ``Resize`` transform's side in [1, :data:`MAX_RESIZE_PX`].
check_resize = CountLimit("MAX_RESIZE_PX", "Resize size")
#: A batch size in [1, :data:`MAX_BATCH_SIZE`].
check_batch_size = CountLimit("MAX_BATCH_SIZE", "batch size")


def check_slide_shape(shape_rc: tuple[int, int], *, source: object = None) -> tuple[int, int]:
    """Refuse a level-0 shape (rows, cols) that no real slide has.

    Called on the dimensions a file *declares*, before any pixel is read or
    any grid or mask is planned, so a 0.5 MB file that claims 10^12 pixels
    costs nothing.

    Raises
    ------
    LimitError
        For non-positive sides, a side over :data:`MAX_SLIDE_SIDE_PX` or an
        area over :data:`MAX_SLIDE_PIXELS`.
    """
    rows, cols = (int(v) for v in shape_rc)
    if rows < 1 or cols < 1:
        raise LimitError(f"{_where(source)}slide has an empty level 0 ({rows} × {cols} px)")
    if max(rows, cols) > MAX_SLIDE_SIDE_PX or rows * cols > MAX_SLIDE_PIXELS:
        raise LimitError(
            f"{_where(source)}slide declares {cols} × {rows} px (width × height), over the "
            f"limits of {MAX_SLIDE_SIDE_PX} px a side and {MAX_SLIDE_PIXELS:.3g} px in all "
            f"(napari_xai.core.limits.MAX_SLIDE_SIDE_PX / MAX_SLIDE_PIXELS): truncated, "
            f"corrupt or not a slide?"
        )
    return rows, cols


if os.environ.get(ENV_VAR):
    _apply_env(os.environ[ENV_VAR])
