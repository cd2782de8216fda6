"""``napari-xai evaluate``: score a result's tiles against annotated regions (GeoJSON)."""

from __future__ import annotations

import argparse

HELP = "compare a scoring result's tiles with annotations (confusion matrix, AUC)"
DESCRIPTION = (
    "Label each tile from the annotations (QuPath GeoJSON) by overlap, then report "
    "the confusion matrix, per-class precision/recall and ROC AUC of the tile "
    "probabilities. The result goes under the 'evaluation' key of audit.json "
    "(other keys are kept)."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``evaluate`` arguments to ``parser``."""
    parser.add_argument(
        "tiles", metavar="TILES", help="tiles.parquet, or a result folder that holds one"
    )
    parser.add_argument(
        "--annotations",
        required=True,
        metavar="GEOJSON",
        help="annotated regions (QuPath GeoJSON, level-0 pixels)",
    )
    parser.add_argument("--positive-class", default="Tumor", help="annotation class of interest")
    parser.add_argument(
        "--class-map",
        nargs="*",
        default=None,
        metavar="ANNOTATION=MODEL",
        help="annotation class to model class, e.g. Tumor=tumor (default: by name)",
    )
    parser.add_argument(
        "--min-overlap", type=float, default=0.5, help="tile fraction a class must cover"
    )
    parser.add_argument(
        "--background",
        default=None,
        help="model class for tiles outside every annotation (default: leave them out)",
    )
    parser.add_argument(
        "--out", default=None, help="JSON file to write (default: audit.json beside TILES)"
    )
    parser.add_argument("--quiet", action="store_true")


def run(args: argparse.Namespace) -> int:
    """Evaluate and write the result; return 0."""
    import json
    from pathlib import Path

    import pandas as pd  # noqa: TID253 - only imported when the command runs

    from napari_xai.core.annotations.evaluation import (
        evaluate_against_annotations,
        write_evaluation,
    )
    from napari_xai.core.annotations.geojson import read_geojson

    tiles_path = Path(args.tiles)
    if tiles_path.is_dir():
        tiles_path = tiles_path / "tiles.parquet"
    if not tiles_path.is_file():
        raise ValueError(f"{tiles_path}: tiles table not found")
    tiles = pd.read_parquet(tiles_path)
    missing = {"row", "col", "height", "width", "pred_class"} - set(tiles.columns)
    if missing:
        raise ValueError(f"{tiles_path}: not a tiles table (missing {sorted(missing)})")
    aset = read_geojson(args.annotations)
    if not args.quiet and not aset.report.clean:
        print(aset.report.summary())
    class_map = None
    if args.class_map:
        class_map = {}
        for item in args.class_map:
            if "=" not in item:
                raise ValueError(f"--class-map {item!r}: expected ANNOTATION=MODEL")
            k, v = item.split("=", 1)
            class_map[k] = v
    result = evaluate_against_annotations(
        tiles,
        aset.annotations,
        positive_class=args.positive_class,
        class_map=class_map,
        min_overlap=args.min_overlap,
        background=args.background,
    )
    result["annotations"] = {"path": str(args.annotations), "import": aset.report.to_dict()}
    out = Path(args.out) if args.out else tiles_path.with_name("audit.json")
    write_evaluation(result, out)
    if not args.quiet:
        t = result["tiles"]
        print(
            f"{t['n_tiles']} labelled tiles ({t['n_unlabelled']} left out); "
            f"accuracy {t['accuracy']}"
        )
        print("confusion matrix (rows annotated, columns predicted):")
        print(json.dumps({"labels": t["labels"], "matrix": t["confusion_matrix"]}))
        for name, m in t["per_class"].items():
            print(f"  {name}: precision {m['precision']}, recall {m['recall']}, AUC {m['auc']}")
        print(f"written: {out}")
    return 0
