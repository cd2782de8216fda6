"""Command-line interface: ``napari-xai <command> ...``.

Each subcommand lives in its own module ``napari_xai.cli.<name>`` exposing
``HELP`` (its line in ``napari-xai --help``), ``add_arguments(parser)`` and
``run(args) -> int``, and optionally ``DESCRIPTION`` (default: the module
docstring up to "Examples"), ``EPILOG`` and ``FORMATTER_CLASS``;
:func:`add_subcommand` makes the subparser from them, in one place. The
commands call the same core functions as the widgets. Modules are imported
lazily so ``--help`` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import Any

# Module names under napari_xai.cli, in the order `--help` lists them.
SUBCOMMANDS: tuple[str, ...] = (
    "demo", "info", "score", "explain", "batch", "wsinfer", "audit", "synthetic",
    "evaluate", "qc", "explore",
)  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    """Build the top-level parser with every registered subcommand."""
    from napari_xai import __version__

    parser = argparse.ArgumentParser(
        prog="napari-xai",
        description=(
            "Score whole-slide images with tile-level models, explain the predictions "
            "(saliency), audit shortcuts and batch-score cohorts."
        ),
    )
    parser.add_argument("--version", action="version", version=f"napari-xai {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        add_subcommand(subparsers, name)
    return parser


def add_subcommand(subparsers: Any, name: str) -> argparse.ArgumentParser:
    """Add the subcommand of module ``napari_xai.cli.<name>`` to ``subparsers``.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        What ``ArgumentParser.add_subparsers`` returned.
    name : str
        The command, and its module's name.

    Returns
    -------
    argparse.ArgumentParser
        The command's parser, with the module's arguments and ``_run`` set to
        its ``run``.
    """
    from napari_xai.cli._options import description

    module = importlib.import_module(f"napari_xai.cli.{name}")
    parser: argparse.ArgumentParser = subparsers.add_parser(
        name,
        help=module.HELP,
        description=getattr(module, "DESCRIPTION", None) or description(module.__doc__),
        epilog=getattr(module, "EPILOG", None),
        formatter_class=getattr(module, "FORMATTER_CLASS", argparse.HelpFormatter),
    )
    module.add_arguments(parser)
    parser.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; return the process exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_run", None) is None:
        parser.print_help()
        return 2
    try:
        return int(args._run(args))
    except KeyboardInterrupt:
        print("napari-xai: interrupted", file=sys.stderr)
        return 130
    except (OSError, ValueError) as exc:
        # Bad input (unreadable slide, bad model card...): one clear line, no traceback.
        print(f"napari-xai: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - last resort: one line, traceback on request
        if os.environ.get("NAPARI_XAI_TRACEBACK"):
            raise
        print(
            f"napari-xai {args.command}: error: {type(exc).__name__}: {_one_line(exc)} "
            "(set NAPARI_XAI_TRACEBACK=1 for the traceback)",
            file=sys.stderr,
        )
        return 1


def _one_line(exc: BaseException) -> str:
    """Return the message on one line, naming the file for a bare OSError."""
    text = " ".join(str(exc).split())
    filename = getattr(exc, "filename", None)
    if isinstance(exc, OSError) and filename and str(filename) not in text:
        text = f"{filename}: {text}"
    return text


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
