"""The Audit widget's worker bodies (the core is imported in the worker thread)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from napari_xai.core.options import AuditSpec, GridOptions, RunOptions


def audit_in_worker(
    source: Any, model_spec: Any, out: Path, *, spec: AuditSpec, grid: GridOptions, run: RunOptions
) -> Any:
    """Worker body: audit the slide into its result folder ``out/<slide>`` (:func:`run_slide`).

    The folder's score and saliency are kept (its grid: the audit is of the scored
    tiles); a slide not scored yet is scored first. Yields the audit's
    :class:`~napari_xai.core.audit.slide.AuditProgress` and the pipeline's other
    steps; returns the :class:`~napari_xai.core.audit.slide.SlideAudit`, its
    ``report_path`` in the folder.
    """
    import dataclasses

    from napari_xai.core.models.resolve import resolve_model
    from napari_xai.core.options import SlideOptions
    from napari_xai.core.pipeline import REPORT_NAME, iter_stage

    # restart: a click audits (the widget shows what it gets back), even with the same options
    asked = SlideOptions(grid=grid, run=run, audit=dataclasses.replace(spec, restart=True))
    folder, result = yield from iter_stage(
        source, resolve_model(model_spec), out, asked, stage="audit"
    )
    result.report_path = folder / REPORT_NAME
    return result


def cohort_in_worker(path: Path, spec: Any, **kw: Any) -> Any:
    """Worker body: audit a cohort table (with the model when ``spec`` is given)."""
    from napari_xai.core.audit.data import iter_audit_cohort

    if spec is not None:
        from napari_xai.core.models.resolve import resolve_model

        kw["model"] = resolve_model(spec)
    return (yield from iter_audit_cohort(path, **kw))
