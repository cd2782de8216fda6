"""Option flags shared by the commands: the tile grid, the tile features.

The grid flags (``--min-tissue``, ``--overlap``...) serve ``score``, ``batch``,
``explain`` and ``audit``; the feature flags (``--features``...) ``score`` and
``batch``.

The flags default to None ("not given"), so a command can tell a value the user
chose from a default; the defaults themselves live in one place, the option
dataclasses of :mod:`napari_xai.core.options` (:func:`given` keeps only the
flags given, for building any of them).

* ``score`` (and ``batch``) define a result's grid: the given flags over the
  defaults (:func:`grid_from_args` with ``base=None``).
* ``explain`` and ``audit`` add to a result folder: without grid flags they use
  the grid the folder was scored with (``SlideOptions(grid=None)``), so nothing is
  re-scored; the given flags change that grid, and ``run_slide`` says what the
  re-score invalidates.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from napari_xai.core.options import FeatureSpec, GridOptions

__all__ = [
    "GRID_FIELDS", "add_feature_arguments", "add_grid_arguments", "description", "feature_spec",
    "given", "grid_flags", "grid_from_args",
]  # fmt: skip

#: GridOptions fields that have a flag of the same name (``--min-tissue`` → ``min_tissue``),
#: parsed into ``grid_<field>`` (so ``audit --max-tiles``, an AuditSpec field, stays apart).
GRID_FIELDS = ("min_tissue", "overlap", "mpp", "max_tiles")

_HELP = {
    "min_tissue": "score a tile only if at least this fraction is tissue",
    "overlap": "tile overlap as a fraction of the tile, in [0, 1)",
    "mpp": "slide µm/px at level 0 (when the file lacks it)",
    "max_tiles": "score only this many tiles (spread out)",
}


def description(doc: str | None) -> str | None:
    """Return a command's ``--help`` description: its module docstring up to "Examples".

    Parameters
    ----------
    doc : str or None
        The command module's ``__doc__`` (None under ``python -OO``).
    """
    return doc.split("Examples")[0].strip() if doc else None


def add_grid_arguments(
    parser: argparse.ArgumentParser | Any,
    *,
    fields: tuple[str, ...] = GRID_FIELDS,
    all_tiles: bool = True,
    from_folder: bool = False,
) -> None:
    """Add the tile-grid flags ``fields`` (and ``--all-tiles``) to ``parser``.

    Parameters
    ----------
    parser : argparse.ArgumentParser or argument group
    fields : tuple of str
        Which of :data:`GRID_FIELDS` get a flag.
    all_tiles : bool
        Also add ``--all-tiles`` (no tissue detection).
    from_folder : bool
        Say in the help that an absent flag keeps the result folder's value.
    """
    defaults = GridOptions()
    for name in fields:
        default = getattr(defaults, name)
        where = "the result folder's, else " if from_folder else ""
        parser.add_argument(
            "--" + name.replace("_", "-"),
            dest=f"grid_{name}",
            metavar=name.upper(),
            type=int if name == "max_tiles" else float,
            default=None,
            help=f"{_HELP[name]} (default: {where}{'none' if default is None else default})",
        )
    if all_tiles:
        parser.add_argument(
            "--all-tiles",
            dest="grid_all_tiles",
            action="store_true",
            default=None,
            help="score every tile (no tissue detection)",
        )


def given(args: argparse.Namespace, **fields: str) -> dict[str, Any]:
    """Map option fields to the flags given (``given(args, num_workers="workers")``).

    Flags that are absent or None are left out, so the option dataclass keeps
    its own default for them.
    """
    values = {field: getattr(args, dest, None) for field, dest in fields.items()}
    return {field: value for field, value in values.items() if value is not None}


def grid_flags(args: argparse.Namespace) -> dict[str, Any]:
    """Return the GridOptions fields given on the command line (absent flags left out)."""
    flags = given(args, **{name: f"grid_{name}" for name in GRID_FIELDS})
    if flags.get("max_tiles") == 0:  # 0: no cap
        flags["max_tiles"] = None
    if getattr(args, "grid_all_tiles", None):
        flags["tissue"] = False
    return flags


def grid_from_args(
    args: argparse.Namespace, *, folder: str | Path | None = None
) -> GridOptions | None:
    """Return the tile grid the command line asks for.

    Parameters
    ----------
    args : argparse.Namespace
        Parsed arguments (see :func:`add_grid_arguments`).
    folder : path-like, optional
        A result folder the command adds to (``explain``, ``audit``). Without
        grid flags the result is then None: ``run_slide`` takes the folder's
        grid (the defaults when it has none). With flags, they replace fields of
        the folder's grid.

    Returns
    -------
    GridOptions or None
    """
    from napari_xai.core.pipeline import folder_grid

    flags = grid_flags(args)
    if folder is None:
        return GridOptions(**flags)
    if not flags:
        return None
    return dataclasses.replace(folder_grid(folder) or GridOptions(), **flags)


def add_feature_arguments(parser: argparse._ActionsContainer) -> None:
    """Add ``--features``, ``--feature-layer`` and ``--mc-dropout`` to a scoring command."""
    parser.add_argument(
        "--features",
        action="store_true",
        help="keep per-tile features (features.zarr) and add ood_score to the tiles",
    )
    parser.add_argument(
        "--feature-layer",
        help="module giving the features (default: the card's feature_layer, "
        "else forward_features)",
    )
    parser.add_argument(
        "--mc-dropout",
        type=int,
        default=0,
        metavar="N",
        help="MC-dropout passes per batch for mc_uncertainty (models with dropout; 0: none)",
    )


def feature_spec(args: argparse.Namespace) -> FeatureSpec | None:
    """Return the :class:`~napari_xai.core.options.FeatureSpec` the flags ask for, or None."""
    if not (args.features or args.feature_layer or args.mc_dropout):
        return None
    return FeatureSpec(layer=args.feature_layer, mc_samples=int(args.mc_dropout))
