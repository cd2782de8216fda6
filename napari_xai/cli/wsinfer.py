"""``napari-xai wsinfer``: move models and results between napari-xai, WSInfer and QuPath.

Examples
--------
``napari-xai wsinfer validate path/to/model-folder``
    Check a WSInfer ``config.json`` against spec 1.0.
``napari-xai wsinfer export-model model.pt out/my-model``
    Write any model napari-xai loads as a WSInfer folder
    (``torchscript_model.pt`` + ``config.json``).
``napari-xai wsinfer export-results results/slide-1 --out wsinfer-results``
    Write ``model-outputs-csv/<slide>.csv`` and
    ``model-outputs-geojson/<slide>.json`` from a result folder's
    ``tiles.parquet``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

__all__ = ["add_arguments", "run"]


HELP = "Read/write WSInfer model folders; export results for WSInfer and QuPath."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``wsinfer`` arguments to ``parser``."""
    actions = parser.add_subparsers(dest="wsinfer_action", metavar="ACTION", required=True)

    p = actions.add_parser("validate", help="Check a WSInfer config.json (or model folder).")
    p.add_argument("config", type=Path, help="config.json, or the folder holding it")

    p = actions.add_parser(
        "export-model", help="Write a model as a WSInfer folder (TorchScript + config.json)."
    )
    p.add_argument("model", type=Path, help="model file or folder napari-xai can load")
    p.add_argument("out", type=Path, help="output folder")
    p.add_argument("--architecture", help="registered architecture name for state-dict weights")
    p.add_argument("--overwrite", action="store_true", help="replace an existing folder's files")

    p = actions.add_parser(
        "export-results", help="Export tiles.parquet as a WSInfer CSV and QuPath GeoJSON."
    )
    p.add_argument(
        "results",
        type=Path,
        nargs="+",
        help="result folders (with tiles.parquet) or parquet files",
    )
    p.add_argument("--out", type=Path, required=True, help="WSInfer-style results folder")
    p.add_argument(
        "--object-type",
        choices=("tile", "detection", "annotation"),
        default="tile",
        help="QuPath object type of each tile (default: tile, as WSInfer writes)",
    )
    p.add_argument("--no-geojson", action="store_true", help="write the CSV only")


def _tiles_source(path: Path) -> tuple[Path, str]:
    if path.is_dir():
        parquet = path / "tiles.parquet"
        if not parquet.is_file():
            raise ValueError(f"{path}: no tiles.parquet in this folder")
        return parquet, path.name
    if not path.is_file():
        raise ValueError(f"{path}: not found")
    return path, path.parent.name if path.name == "tiles.parquet" else path.stem


def _class_names(parquet: Path) -> list[str] | None:
    manifest = parquet.parent / "manifest.json"
    try:
        card = json.loads(manifest.read_text(encoding="utf-8")).get("model", {}).get("card", {})
    except (OSError, ValueError, AttributeError):
        return None
    names = card.get("class_names") if isinstance(card, dict) else None
    return [str(n) for n in names] if names else None


def run(args: argparse.Namespace) -> int:
    """Run the chosen ``wsinfer`` action; return the exit status."""
    action = args.wsinfer_action
    if action == "validate":
        from napari_xai.core.models.wsinfer import model_input_size, read_wsinfer_config

        card = read_wsinfer_config(args.config)
        rows, cols = model_input_size(card)
        print(
            f"{args.config}: valid WSInfer config (spec 1.0): {card.num_classes} classes "
            f"{list(card.class_names)}, {card.tile_size} px at {card.mpp} µm/px, "
            f"model input {rows}×{cols}"
        )
        return 0
    if action == "export-model":
        from napari_xai.core.models.loading import load_model
        from napari_xai.core.models.wsinfer import save_wsinfer_model

        loaded = load_model(args.model, architecture=args.architecture, device="cpu")
        folder = save_wsinfer_model(loaded.module, loaded.card, args.out, overwrite=args.overwrite)
        print(f"wrote WSInfer model folder {folder}")
        return 0
    if action == "export-results":
        import pandas as pd

        from napari_xai.core.export import export_wsinfer_results

        for item in args.results:
            parquet, slide = _tiles_source(item)
            tiles = pd.read_parquet(parquet)
            written = export_wsinfer_results(
                tiles,
                args.out,
                slide,
                class_names=_class_names(parquet),
                geojson=not args.no_geojson,
                object_type=args.object_type,
            )
            print(" ".join(str(p) for p in written.values()))
        return 0
    raise ValueError(f"unknown wsinfer action {action!r}")  # pragma: no cover
