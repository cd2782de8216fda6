"""``napari-xai batch``: score a cohort of slides into result folders, resumably.

The parser options live in :func:`add_batch_arguments` and the work in
:func:`run_batch_cli`, so ``napari-xai score`` can offer the same options and
delegate here when it is given several slides: ``run_batch_cli(args)`` only
needs ``args.slides`` (a list), ``args.model`` and ``args.out``; every other
option falls back to its default when missing. It reads the grid flags of
:func:`napari_xai.cli._options.add_grid_arguments` (``grid_min_tissue``...),
``device``, ``batch_size``, ``architecture``, ``torch_threads``, ``reader_threads`` (tile reader
threads per slide), ``batch_workers`` (dask worker processes) and
``scheduler``.
"""

from __future__ import annotations

import argparse
import sys
import threading
from argparse import SUPPRESS
from typing import Any

from napari_xai.cli._options import (
    add_feature_arguments,
    add_grid_arguments,
    feature_spec,
    given,
    grid_flags,
)

__all__ = [
    "add_batch_arguments",
    "add_arguments",
    "main",
    "options_from_args",
    "run",
    "run_batch_cli",
]

DESCRIPTION = """\
Score many slides with a tile model, one result folder per slide.

Each slide gets OUT/<slide-name>/ with tiles.parquet (one row per tile),
heatmaps.zarr (class-probability maps), annotations.geojson (predicted regions)
and manifest.json. OUT/cohort_summary.csv ranks the slides by score
(top-k mean probability of the tumour class) with status, timings and errors;
with labels it also gets a confusion matrix and ROC (cohort.json, cohort_roc.png).

Re-running the same command skips slides already done with the same model and
options and redoes missing, interrupted or outdated ones, so a crashed run is
resumed by running it again. A slide that fails is reported and the others go on.
Open a result in napari by dropping its folder (or manifest.json) on the viewer.
"""

EPILOG = """\
examples:
  napari-xai batch slides/ --out results/
  napari-xai batch "data/**/*.svs" --model model.pt --out results/ --workers 2
  napari-xai batch cohort.csv --model wsinfer-model/ --out results/
      (cohort.csv: a slide_path column, optional label and slide_id columns,
       other columns are kept as metadata; relative paths are relative to the CSV)
  napari-xai batch slides/ --out results/ --scheduler tcp://10.0.0.5:8786
      (an existing dask cluster whose workers have napari-xai and see the same paths)
"""


def add_batch_arguments(parser: argparse.ArgumentParser, *, with_slides: bool = True) -> None:
    """Add the cohort-scoring options to ``parser`` (shared with ``napari-xai score``)."""
    if with_slides:
        parser.add_argument(
            "slides",
            nargs="+",
            metavar="SLIDES",
            help="slide files, folders of slides, glob patterns (quote them) or cohort CSV files",
        )
    parser.add_argument(
        "-m",
        "--model",
        default="demo",
        help="model file or folder: TorchScript, state dict + model card, or a WSInfer "
        "model folder (default: the bundled demo model)",
    )
    parser.add_argument(
        "-o",
        "--out",
        required=with_slides,
        default=None,
        help="output folder (created): one result folder per slide + cohort_summary.csv",
    )
    _add_scoring_arguments(
        parser.add_argument_group(
            "scoring options (they define a result: changing one redoes the slides)"
        )
    )
    _add_running_arguments(parser.add_argument_group("running"))


def _add_scoring_arguments(g: argparse._ArgumentGroup) -> None:
    """Add the options a result is made with (grid, features, extras, slide score)."""
    add_grid_arguments(g, fields=("overlap", "min_tissue", "mpp"))
    # the flag's older name, still read
    g.add_argument("--tissue-threshold", dest="grid_min_tissue", type=float, help=SUPPRESS)
    g.add_argument(
        "--attribution",
        default=None,
        metavar="METHOD",
        help="also compute saliency maps with this attribution method",
    )
    g.add_argument("--audit", action="store_true", help="also run the shortcut audit")
    add_feature_arguments(g)
    g.add_argument(
        "--positive-class",
        default=None,
        metavar="CLASS",
        help="class that scores a slide (default: the tumour-like class)",
    )
    g.add_argument(
        "--top-k",
        type=int,
        default=None,
        help="slide score = mean of the K highest tile probabilities (default 10)",
    )
    g.add_argument(
        "--threshold",
        type=float,
        default=None,
        help="slides scoring at least this are called positive (default 0.5)",
    )


def _add_running_arguments(r: argparse._ArgumentGroup) -> None:
    """Add the options of how a run goes (cluster, devices, threads, resume, output)."""
    r.add_argument(
        "--scheduler",
        default="local",
        metavar="WHERE",
        help="'local' (default): a dask LocalCluster on this machine; 'sync': "
        "one slide after another in this process; or a dask scheduler address "
        "such as tcp://host:8786",
    )
    r.add_argument(
        "--workers",
        dest="batch_workers",
        type=int,
        default=None,
        metavar="N",
        help="worker processes of the local cluster (default: one per GPU, else one per 4 cores)",
    )
    r.add_argument("--device", default=None, help="cuda, mps or cpu (default: best available)")
    r.add_argument("--batch-size", type=int, default=None, help="tiles per model batch")
    r.add_argument(
        "--reader-threads",
        type=int,
        default=None,
        metavar="N",
        help="tile reader threads per slide (default 2)",
    )
    r.add_argument(
        "--torch-threads",
        type=int,
        default=None,
        metavar="N",
        help="torch threads per worker (default: cores / workers); 1 helps on "
        "machines whose cores are shared",
    )
    r.add_argument(
        "--architecture",
        default=None,
        help="registered architecture name for state-dict weights without a card entry",
    )
    r.add_argument(
        "--no-resume",
        action="store_true",
        help="redo every slide, even those already done with the same options",
    )
    r.add_argument(
        "--verify",
        action="store_true",
        help="on resume, hash every file and zarr chunk of a result folder against its "
        "manifest (sizes are always checked); a damaged folder is scored again",
    )
    r.add_argument(
        "--label-column", default="label", help="label column of a cohort CSV (default 'label')"
    )
    r.add_argument("-q", "--quiet", action="store_true", help="no progress bar")


HELP = "score many slides (a folder, glob or cohort CSV) into result folders; resumable"
FORMATTER_CLASS = argparse.RawDescriptionHelpFormatter


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``batch`` arguments to ``parser``."""
    add_batch_arguments(parser)


def options_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Build the options of :func:`napari_xai.core.batch.iter_batch` from arguments.

    Arguments not given (None) keep the option dataclasses' own defaults.

    Returns
    -------
    dict
        ``options`` (:class:`~napari_xai.core.options.SlideOptions`) and ``batch``
        (:class:`~napari_xai.core.options.BatchOptions`).
    """
    from napari_xai.core.options import (
        AuditSpec,
        BatchOptions,
        ExplainSpec,
        GridOptions,
        RunOptions,
        SlideOptions,
        SummaryOptions,
    )

    method = getattr(args, "attribution", None)
    options = SlideOptions(
        grid=GridOptions(**grid_flags(args)),
        summary=SummaryOptions(
            **given(args, top_k="top_k", positive_class="positive_class", threshold="threshold")
        ),
        explain=ExplainSpec(method=method) if method else None,
        audit=AuditSpec(**({"method": method} if method else {}))
        if getattr(args, "audit", False)
        else None,
        features=feature_spec(args) if hasattr(args, "features") else None,
        run=RunOptions(
            **given(args, device="device", batch_size="batch_size", num_workers="reader_threads"),
            architecture=getattr(args, "architecture", None),
        ),
    )
    batch = BatchOptions(
        **given(
            args, scheduler="scheduler", n_workers="batch_workers",
            torch_threads="torch_threads", label_column="label_column",
        ),
        resume=not getattr(args, "no_resume", False),
        verify=bool(getattr(args, "verify", False)),
    )  # fmt: skip
    return {"options": options, "batch": batch}


class _Progress:
    """A progress bar on stderr (tqdm when present, else one line per slide)."""

    def __init__(self, *, quiet: bool) -> None:
        self.quiet = quiet
        self.bar: Any = None

    def __call__(self, event: Any) -> None:
        if self.quiet:
            return
        if self.bar is None:
            try:
                from tqdm import tqdm

                self.bar = tqdm(
                    total=event.n_total,
                    unit="slide",
                    file=sys.stderr,
                    dynamic_ncols=True,
                    desc="Scoring slides",
                )
            except ImportError:  # pragma: no cover
                self.bar = False
        if self.bar is False:
            if event.kind in ("done", "failed", "skipped", "cancelled", "recompute"):
                print(event.message, file=sys.stderr, flush=True)
            return
        if event.kind in ("done", "failed", "skipped"):
            self.bar.update(event.n_finished - self.bar.n)
            if event.kind == "failed":
                self.bar.write(event.message, file=sys.stderr)
        if event.kind == "recompute":
            self.bar.write(event.message, file=sys.stderr)
        if event.kind == "progress":
            self.bar.set_postfix_str(
                f"{event.slide_id} {event.tiles_done}/{event.tiles_total} tiles", refresh=False
            )
        elif event.kind in ("done", "skipped", "started"):
            self.bar.set_postfix_str(f"{event.slide_id} {event.kind}", refresh=True)

    def close(self) -> None:
        if self.bar:
            self.bar.close()


def _print_report(result: Any, *, top: int = 10) -> None:
    summary = result.summary
    n = len(summary)
    print(
        f"{result.count('done')}/{n} slides scored "
        f"({int(summary['reused'].sum()) if n else 0} reused), "
        f"{result.count('failed')} failed, {result.count('cancelled')} cancelled"
    )
    cols = [
        c
        for c in (
            "rank",
            "slide_id",
            "score",
            "tumour_area_fraction",
            "n_tiles",
            "label",
            "status",
        )
        if c in summary.columns
    ]
    if n:
        shown = summary[cols].head(top)
        print(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        if n > top:
            print(f"... {n - top} more in {result.files['csv']}")
    for _, row in summary[summary["status"] == "failed"].iterrows():
        print(f"FAILED {row['slide_id']}: {row.get('error')}", file=sys.stderr)
    if "fit_warnings" in summary.columns:  # the slide does not fit the model: say it
        for _, row in summary[summary["fit_warnings"].fillna("").astype(bool)].iterrows():
            print(f"WARNING {row['slide_id']}: {row['fit_warnings']}", file=sys.stderr)
    m = result.metrics
    if m.get("confusion_matrix") is not None:
        (tn, fp), (fn, tp) = m["confusion_matrix"]
        auc = (m.get("roc") or {}).get("auc")
        auc_text = f"  ROC AUC {auc:.3f}" if auc is not None else ""
        print(
            f"labelled slides: {m['n_labelled']}  TP {tp}  FP {fp}  TN {tn}  FN {fn}  "
            f"accuracy {m['accuracy']:.3f}{auc_text}"
        )
    if m.get("audit"):
        print(f"cohort audit: {m['audit']['sentence']}")
        print(f"  {result.files.get('audit_html', '')}")
    print(f"summary: {result.files['csv']}")


def run_batch_cli(args: argparse.Namespace) -> int:
    """Score ``args.slides`` into ``args.out``; return the exit status.

    0 when every slide is done, 1 when some failed (the others are still
    done), 130 when interrupted (finished slides are kept; re-run to resume).
    """
    from napari_xai.core.batch import iter_batch

    out = getattr(args, "out", None)
    if not out:
        raise ValueError("an output folder is needed for several slides (--out)")
    cancel = threading.Event()
    progress = _Progress(quiet=bool(getattr(args, "quiet", False)))
    gen = iter_batch(
        list(args.slides),
        getattr(args, "model", "demo") or "demo",
        out,
        cancel=cancel,
        **options_from_args(args),
    )
    try:
        while True:
            try:
                event = next(gen)
            except StopIteration as stop:
                result = stop.value
                break
            progress(event)
    except KeyboardInterrupt:
        cancel.set()
        gen.close()
        progress.close()
        print(
            "napari-xai: interrupted; finished slides are kept, run the same command "
            "again to resume",
            file=sys.stderr,
        )
        return 130
    progress.close()
    _print_report(result)
    if result.cancelled:
        return 130
    return 1 if result.count("failed") else 0


def run(args: argparse.Namespace) -> int:
    """Entry point of ``napari-xai batch``."""
    return run_batch_cli(args)


def main(argv: list[str] | None = None) -> int:
    """Run ``napari-xai batch`` alone: ``python -m napari_xai.cli.batch SLIDES... --out OUT``."""
    parser = argparse.ArgumentParser(
        prog="napari-xai batch",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=FORMATTER_CLASS,
    )
    add_batch_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run_batch_cli(args)
    except (OSError, ValueError) as exc:
        print(f"napari-xai: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
