"""``napari-xai audit``: shortcut audit of slides (where the model looks) or of a cohort table."""

from __future__ import annotations

import argparse
from typing import Any

from napari_xai.cli._options import add_grid_arguments, grid_from_args
from napari_xai.core.naming import AUDIT_METHOD_NAMES

METHODS = AUDIT_METHOD_NAMES


HELP = "shortcut audit: attention on artefacts per slide, or a cohort's data (--cohort)"
DESCRIPTION = (
    "Slides: explain a sample of tissue tiles and measure how much of the attribution "
    "lands on tissue, background, artefacts (pen, marker, ruler, text) and the border "
    "band; flag tiles and give a verdict. Adds report.html and audit.json to the "
    "slide's result folder OUT/<slide>/ (scored first when it is not). "
    "Cohort (--cohort CSV with a path and a label column): class balance, montages per "
    "class, colour statistics, and metadata columns associated with the label "
    "(Cramér's V); writes OUT/<csv name>/report.html and audit.json. With --model, the "
    "cohort's tile images are also audited for where the model looks (artefacts "
    "detected in each tile), and its slides one by one."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``audit`` arguments to ``parser``."""
    parser.add_argument("slides", metavar="SLIDE", nargs="*", help="slide file(s)")
    parser.add_argument("--cohort", default=None, metavar="CSV", help="cohort table to audit")
    parser.add_argument("--label-column", default="label", help="cohort label column")
    parser.add_argument("--path-column", default=None, help="cohort path column (auto)")
    parser.add_argument(
        "--columns", nargs="*", default=None, help="metadata columns to test (default: all others)"
    )
    parser.add_argument(
        "--model", default=None,
        help="model file/folder, or 'demo' (default for slides); with --cohort, also audits "
        "where this model looks on the cohort's images (tiles) or slides",
    )  # fmt: skip
    parser.add_argument("--method", default="grad_cam", choices=METHODS)
    parser.add_argument("--target", default=None, help="class name/index (default: predicted)")
    parser.add_argument("--max-tiles", type=int, default=512, help="tiles explained per slide")
    parser.add_argument("--batch-size", type=int, default=16)
    add_grid_arguments(parser, fields=("overlap", "min_tissue", "mpp"), from_folder=True)
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    parser.add_argument("--steps", type=int, default=16, help="Integrated Gradients steps")
    parser.add_argument(
        "--border", type=float, default=None, metavar="PX",
        help="border band width in level-0 px (default: 2%% of the shorter side)",
    )  # fmt: skip
    parser.add_argument(
        "--no-counterfactual", action="store_true",
        help="skip the counterfactual test (remove / paste artefacts and re-score)",
    )  # fmt: skip
    parser.add_argument(
        "--no-sanity", action="store_true",
        help="skip the attribution method's sanity checks (randomisation, deletion/insertion)",
    )  # fmt: skip
    parser.add_argument("--out", default="napari-xai-results", help="output folder")
    parser.add_argument(
        "--strict", action="store_true", help="exit with status 3 when any audit fails"
    )
    parser.add_argument("--quiet", action="store_true")


def _print_attention(name: str, res: Any, report: Any) -> None:
    att = res.attention
    sh = att.shares
    if getattr(res, "shortcut", None) is not None:
        print(f"{name}: {res.sentence}")
        for e in res.shortcut.evidence:
            print(f"  - {e}")
    print(
        f"{name}: attention {att.verdict.upper()} - {len(res.tiles)} tiles ({res.sampling}); "
        f"attribution on "
        f"tissue {sh['tissue']:.1%}, artefacts {sh['artefact']:.1%} (area "
        f"{att.area_shares['artefact']:.1%}), background {sh['background']:.1%}, border "
        f"{sh['border']:.1%}; {int(att.flagged.sum())} tiles flagged; "
        f"{res.timings.get('total_s', 0.0):.1f} s"
    )
    for e in att.evidence:
        print(f"  - {e}")
    print(f"  report: {report}")


def _print_kept(name: str, folder: Any, report: Any) -> str:
    """Print the audit a folder kept (same spec, not run again); return its verdict."""
    import json

    from napari_xai.core.results import AUDIT_NAME

    stored = json.loads((folder / AUDIT_NAME).read_text(encoding="utf-8"))
    att = stored.get("attention", {})
    sh = att.get("shares", {})
    print(f"{name}: {stored.get('sentence', '')}")
    for e in (att.get("shortcut") or {}).get("evidence", []):
        print(f"  - {e}")
    print(
        f"{name}: audit kept from {folder} (same method and options): verdict "
        f"{str(stored.get('verdict', '?')).upper()} - {att.get('n_tiles', 0)} tiles "
        f"({att.get('sampling', '')}); attribution on tissue {sh.get('tissue', 0.0):.1%}, "
        f"artefacts {sh.get('artefact', 0.0):.1%}, background {sh.get('background', 0.0):.1%}; "
        f"{att.get('n_flagged', 0)} flagged"
    )
    for e in att.get("evidence", []):
        print(f"  - {e}")
    print(f"  report: {report}")
    return str(stored.get("verdict", ""))


def run(args: argparse.Namespace) -> int:
    """Audit the slides and/or the cohort; return 0 (3 with --strict when an audit fails)."""
    import sys
    from pathlib import Path

    from napari_xai.core.audit.report import write_report

    if not args.slides and args.cohort is None:
        print("napari-xai audit: give SLIDE(s) and/or --cohort CSV", file=sys.stderr)
        return 2
    out = Path(args.out)
    failed = False
    if args.cohort is not None:
        from napari_xai.core.audit.data import audit_cohort

        def progress(done: int, total: int) -> None:
            if not args.quiet:
                print(f"\rcohort: {done}/{total} images", end="", file=sys.stderr, flush=True)

        options: dict[str, Any] = {}
        if args.method == "integrated_gradients":
            options["n_steps"] = args.steps
        data = audit_cohort(
            args.cohort, label_column=args.label_column, path_column=args.path_column,
            metadata_columns=args.columns, progress=progress, model=args.model,
            method=args.method, batch_size=args.batch_size,
            device=None if args.device == "auto" else args.device, **options,
        )  # fmt: skip
        if not args.quiet:
            print(file=sys.stderr)
        tile_audit = data.tile_audit
        if args.model is not None:  # the cohort's slides get a slide audit each
            from napari_xai.core.audit.data import is_tile_file

            paths = [str(p) for p in data.table[data.path_column]]
            slides = [p for p in paths if Path(p).is_file() and not is_tile_file(p)]
            args.slides = [*args.slides, *slides]
        report = write_report(
            out / Path(args.cohort).stem, data_audit=data, title=f"Audit: {args.cohort}"
        )
        print(f"cohort {args.cohort}: {data.verdict.upper()} - {len(data.table)} images, "
              f"classes {data.class_counts}")  # fmt: skip
        for f in data.flags:
            print(f"  - {f}")
        if tile_audit is not None:
            att = tile_audit.attention
            print(
                f"attention ({tile_audit.method}, {att.n_tiles} tiles): {att.verdict.upper()} - "
                f"artefacts {att.shares['artefact']:.1%} of attribution (area "
                f"{att.area_shares['artefact']:.1%}), background {att.shares['background']:.1%}; "
                f"{int(att.flagged.sum())} tiles flagged"
            )
            for e in att.evidence:
                print(f"  - {e}")
            failed |= att.verdict == "fail"
        print(f"  report: {report}")
        failed |= data.verdict == "fail"
    if args.slides:
        from napari_xai.core.options import AuditSpec, RunOptions, SlideOptions
        from napari_xai.core.pipeline import REPORT_NAME, drive, result_folder, run_slide

        target: Any = args.target
        if target is not None and str(target).isdigit():
            target = int(target)
        run_opts = RunOptions(device=args.device, explain_batch_size=args.batch_size)
        spec = AuditSpec(method=args.method, target=target, max_tiles=args.max_tiles,
                         n_steps=args.steps, border_width0=args.border,
                         counterfactual=not args.no_counterfactual,
                         sanity=not args.no_sanity)  # fmt: skip
        for slide in args.slides:
            audits: list[Any] = []

            def progress_slide(p: Any, _s: str = slide, _a: list[Any] = audits) -> None:
                if p.stage == "audit" and p.value is not None:
                    _a.append(p.value)
                if not args.quiet:
                    print(f"\r{Path(_s).name}: {p.message or p.stage} {p.n_done}/{p.n_total}",
                          end="", file=sys.stderr, flush=True)  # fmt: skip

            # None: the folder's grid (nothing re-scored)
            grid = grid_from_args(args, folder=result_folder(out, slide))
            asked = SlideOptions(grid=grid, run=run_opts, audit=spec)
            folder = drive(run_slide(slide, args.model or "demo", out, asked), progress_slide)
            if not args.quiet:
                print(file=sys.stderr)
            if audits:
                _print_attention(Path(slide).name, audits[-1], folder / REPORT_NAME)
                failed |= audits[-1].verdict == "fail"
            else:  # the folder's audit had the same spec: kept, read back
                failed |= _print_kept(Path(slide).name, folder, folder / REPORT_NAME) == "fail"
    return 3 if (failed and args.strict) else 0
