"""Options of a slide run as frozen dataclasses: one place for every default.

A run of :func:`napari_xai.core.pipeline.run_slide` is described by four
option objects, each with a stable :meth:`hash` (sha256 of its canonical JSON)
that a result manifest records so that a later run knows what it may reuse:

* :class:`GridOptions`: which tiles are scored (tissue threshold, overlap, mpp);
  it defines the numbers, so a change invalidates saliency and audit too.
* :class:`RunOptions`: how the work runs (device, batch size, threads); never
  hashed into a result, since it does not change the numbers.
* :class:`ExplainSpec`: a whole-slide saliency map (method, target class...).
* :class:`AuditSpec`: a shortcut audit (method, tiles sampled, border band).
* :class:`FeatureSpec`: per-tile features and out-of-distribution scores,
  captured while scoring (``features.zarr``, ``ood_score``).
* :class:`SummaryOptions`: how the tiles become a slide score (top-k, positive
  class, threshold); hashed into a result with the grid
  (:func:`result_params`).
* :class:`BatchOptions`: how a cohort runs (scheduler, workers, resume); never
  hashed.
* :class:`SlideOptions`: the bundle of one slide's run (grid, run, summary,
  explain, audit, features), the one argument ``run_slide`` and ``iter_batch``
  take.

The ranges of every option and threshold dataclass of the package are declared
on their fields (:func:`bounded`, :func:`fraction`) and checked in one place,
:class:`Bounded`, with errors naming ``Type.field`` and the bound.

This module imports only the standard library.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from napari_xai.core.limits import check_batch_size, check_mpp

__all__ = [
    "DEFAULT_MIN_TISSUE",
    "MASK_SIZE",
    "cache_dir",
    "cohort_options",
    "private_dir",
    "AuditSpec",
    "BatchOptions",
    "Bound",
    "Bounded",
    "ExplainSpec",
    "FeatureSpec",
    "GridOptions",
    "RunOptions",
    "SlideOptions",
    "SummaryOptions",
    "bounded",
    "fraction",
    "result_params",
    "stable_hash",
]

#: Minimum tissue fraction of a scored tile (the one default every caller uses).
DEFAULT_MIN_TISSUE = 0.5

#: Longest thumbnail side (pixels) of a slide's tissue and artefact masks: the one
#: default of scoring (``run_slide``), ``napari-xai qc`` and ``slide_masks``, so that
#: a slide's ``qc.json`` and its result folder's masks are the same masks.
MASK_SIZE = 2048


def stable_hash(value: Any) -> str:
    """sha256 of the canonical JSON of ``value`` (sorted keys, no whitespace).

    Parameters
    ----------
    value : JSON-able
        Dicts, lists, strings, numbers, None.

    Returns
    -------
    str
        64 hex digits, equal for equal values in any process.
    """
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Bound:
    """The range a field's value must lie in (see :func:`bounded`).

    Attributes
    ----------
    low, high : float or None
        Least and greatest value allowed (None: no such end).
    high_open : bool
        ``high`` itself is not allowed (the range is ``[low, high)``).
    at_most : str or None
        Another field of the same object the value may not exceed.
    limit : callable or None
        ``limit(value, what=...)``, a check of :mod:`napari_xai.core.limits`
        (its bound can be raised at run time, so it is not a constant here).
    """

    low: float | None = None
    high: float | None = None
    high_open: bool = False
    at_most: str | None = None
    limit: Callable[..., object] | None = None

    def check(self, obj: object, what: str, value: Any) -> None:
        """Raise a ValueError naming ``what`` and the bound when ``value`` is outside it."""
        if self.low is not None or self.high is not None or self.at_most is not None:
            try:
                number = float(value)
            except (TypeError, ValueError):
                raise ValueError(f"{what} must be a number, not {value!r}") from None
            self._check_number(obj, what, value, number)
        if self.limit is not None:
            self.limit(value, what=what)

    def _check_number(self, obj: object, what: str, value: Any, number: float) -> None:
        low, high = self.low, self.high
        above = high is not None and (number >= high if self.high_open else number > high)
        if low is not None and high is not None and (number < low or above):
            bound = f"[{low:g}, {high:g}{')' if self.high_open else ']'}"
            raise ValueError(f"{what} must be in {bound}, not {value!r}")
        if low is not None and number < low:
            raise ValueError(f"{what} must be at least {low:g}, not {value!r}")
        if above:
            raise ValueError(f"{what} must be at most {high:g}, not {value!r}")
        other = None if self.at_most is None else getattr(obj, self.at_most)
        if other is not None and number > float(other):
            raise ValueError(f"{what} must be <= {self.at_most}, not {value!r} > {other!r}")


def bounded(
    default: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    high_open: bool = False,
    at_most: str | None = None,
    limit: Callable[..., object] | None = None,
) -> Any:
    """Return a dataclass field with a declared range, checked by :class:`Bounded`.

    Parameters
    ----------
    default : object
        The field's default. A field left None is not checked.
    low, high, high_open, at_most, limit
        The :class:`Bound` of the field.

    Returns
    -------
    dataclasses.Field
        For the class body (``n_steps: int = bounded(32, low=1)``).
    """
    bound = Bound(low=low, high=high, high_open=high_open, at_most=at_most, limit=limit)
    return dataclasses.field(default=default, metadata={"bound": bound})


def fraction(default: float, *, high_open: bool = False, at_most: str | None = None) -> Any:
    """Return a dataclass field whose value is a fraction in [0, 1] (see :func:`bounded`)."""
    return bounded(default, low=0.0, high=1.0, high_open=high_open, at_most=at_most)


class Bounded:
    """Mixin of the frozen option and threshold dataclasses: their ranges, checked in one place.

    Every field declared with :func:`bounded` or :func:`fraction` is checked
    after ``__init__``, in field order; no class writes its own range checks.

    Raises
    ------
    ValueError
        Naming ``Type.field`` and the bound, e.g.
        ``GridOptions.overlap must be in [0, 1), not 1.0``.
    """

    def __post_init__(self) -> None:
        owner = type(self).__name__
        for spec in dataclasses.fields(self):  # type: ignore[arg-type]
            bound = spec.metadata.get("bound")
            value = getattr(self, spec.name)
            if bound is not None and value is not None:
                bound.check(self, f"{owner}.{spec.name}", value)


class _Options(Bounded):
    """Mixin: ``to_dict`` and ``hash`` of the frozen option dataclasses (and :class:`Bounded`)."""

    def to_dict(self) -> dict[str, Any]:
        """Return the result-defining fields as a JSON-able dict (tuples become lists).

        A field with ``compare=False`` (how to run, e.g. ``restart``) is left out: it
        changes neither the result nor its hash.
        """
        fields: dict[str, Any] = dataclasses.asdict(self)  # type: ignore[call-overload]
        for f in dataclasses.fields(self):  # type: ignore[arg-type]
            if not f.compare:
                fields.pop(f.name)
        body: dict[str, Any] = json.loads(json.dumps(fields))
        return body

    def hash(self) -> str:
        """Return the stable hash of :meth:`to_dict` (see :func:`stable_hash`)."""
        return stable_hash({"kind": type(self).__name__, **self.to_dict()})


@dataclass(frozen=True)
class GridOptions(_Options):
    """Which tiles of a slide are scored (defines the numbers of a result).

    Attributes
    ----------
    min_tissue : float
        Minimum tissue fraction of a tile, in [0, 1].
    overlap : float
        Fraction of a tile shared with its neighbours, in [0, 1).
    tissue : bool
        Detect tissue (False: score every tile).
    mpp : float or None
        Slide µm/px at level 0 when the file does not say.
    max_tiles : int or None
        Score only this many tiles, spread over the slide.
    """

    min_tissue: float = fraction(DEFAULT_MIN_TISSUE)
    overlap: float = fraction(0.0, high_open=True)
    tissue: bool = True
    mpp: float | None = bounded(None, limit=check_mpp)
    max_tiles: int | None = bounded(None, low=1)

    @classmethod
    def from_dict(cls, body: dict[str, Any]) -> GridOptions:
        """Rebuild the options a manifest recorded (:meth:`to_dict`; unknown keys ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in body.items() if k in names})


@dataclass(frozen=True)
class RunOptions(_Options):
    """How a run is executed; does not change the numbers, so not part of a result's hash.

    Attributes
    ----------
    device : str
        ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``, ``"mps"``.
    batch_size : int
        Tiles per forward pass when scoring.
    explain_batch_size : int
        Tiles per forward/backward pass when explaining or auditing.
    num_workers : int or None
        Tile reader threads; None: 2 on CPU (they share the cores with the
        model), one per core up to 8 when scoring on CUDA (:attr:`reader_threads`).
    prefetch : int
        Batches read ahead while the model computes.
    amp : bool
        Mixed precision (float16 autocast) on CUDA; ignored elsewhere.
    architecture : str or None
        ``package.module:factory`` for state-dict weights.
    preview : bool
        Also write ``preview.png`` (the most telling class over the thumbnail).
    """

    device: str = "auto"
    batch_size: int = bounded(32, low=1, limit=check_batch_size)
    explain_batch_size: int = bounded(16, low=1, limit=check_batch_size)
    num_workers: int | None = bounded(None, low=1)
    prefetch: int = bounded(2, low=0)
    amp: bool = True
    architecture: str | None = None
    preview: bool = False

    @property
    def torch_device(self) -> str | None:
        """The device for the model loaders (None means pick automatically)."""
        return None if self.device in ("", "auto") else self.device

    def reader_threads(self, device_type: str = "cpu") -> int:
        """Tile reader threads on a device of this type (``num_workers``, else the default)."""
        if self.num_workers is not None:
            return int(self.num_workers)
        return max(1, min(8, os.cpu_count() or 1)) if device_type == "cuda" else 2


@dataclass(frozen=True)
class ExplainSpec(_Options):
    """A whole-slide saliency map.

    Attributes
    ----------
    method : str
        Key of :data:`napari_xai.core.attribution.ATTRIBUTION_METHODS`.
    target : str, int or None
        Class name or index explained (None: each tile's predicted class).
    n_steps : int
        Integrated Gradients steps.
    smooth_samples : int
        SmoothGrad noisy samples (0: off).
    view_rc : tuple of 4 floats or None
        Explain only the tiles in this level-0 rectangle (row0, col0, row1, col1).
    restart : bool
        Ignore a partial map a killed run left (not hashed).
    """

    method: str = "grad_cam"
    target: str | int | None = None
    n_steps: int = bounded(32, low=1)
    smooth_samples: int = bounded(0, low=0)
    view_rc: tuple[float, float, float, float] | None = None
    restart: bool = dataclasses.field(default=False, compare=False)

    def method_options(self) -> dict[str, Any]:
        """Extra keywords of the attribution method (``n_steps``, ``smooth_samples``)."""
        options: dict[str, Any] = {"n_steps": int(self.n_steps)}
        if self.smooth_samples:
            options["smooth_samples"] = int(self.smooth_samples)
        return options


@dataclass(frozen=True)
class AuditSpec(_Options):
    """A shortcut audit of one slide (where the model looks).

    Attributes
    ----------
    method : str
        Attribution method (Grad-CAM is fast, Integrated Gradients sharper).
    target : str, int or None
        Class explained (None: each tile's predicted class).
    max_tiles : int or None
        Most tiles explained (None: every tile of the grid; the sampling is
        described in :mod:`napari_xai.core.audit.slide`).
    n_steps : int
        Integrated Gradients steps.
    border_width0 : float or None
        Border band width in level-0 pixels (None: 2 % of the shorter side).
    counterfactual : bool
        Run the counterfactual test: remove / paste the artefacts and re-score
        (:mod:`napari_xai.core.audit.counterfactual`).
    sanity : bool
        Run the attribution method's sanity checks: randomisation, deletion /
        insertion on up to 8 audited tiles, plain tissue tiles first, cached per
        model and method; a failing method cannot carry a fail alone
        (:mod:`napari_xai.core.audit.sanity`).
    restart : bool
        Audit again even when the result folder holds an audit with these
        options (e.g. a widget that shows the audit it gets back; not hashed).
    """

    method: str = "grad_cam"
    target: str | int | None = None
    max_tiles: int | None = bounded(512, low=1)
    n_steps: int = bounded(16, low=1)
    border_width0: float | None = bounded(None, low=0)
    counterfactual: bool = True
    sanity: bool = True
    restart: bool = dataclasses.field(default=False, compare=False)

    def method_options(self) -> dict[str, Any]:
        """Extra keywords of the attribution method."""
        return {"n_steps": int(self.n_steps)} if self.method == "integrated_gradients" else {}


@dataclass(frozen=True)
class FeatureSpec(_Options):
    """Features captured while scoring (``features.zarr``) and the ``ood_score`` column.

    Attributes
    ----------
    layer : str or None
        Module whose output is the feature vector (pooled over space when it is
        a map); default the card's ``feature_layer``, else the
        ``forward_features`` boundary (the only one a TorchScript model offers).
    mc_samples : int
        MC-dropout passes per batch for the ``mc_uncertainty`` column (0: none;
        ignored, with a note in the manifest, when the model has no dropout).
    """

    layer: str | None = None
    mc_samples: int = bounded(0, low=0, high=256)


@dataclass(frozen=True)
class SummaryOptions(_Options):
    """How a slide's tiles become its slide-level score (part of a result's hash).

    Attributes
    ----------
    top_k : int
        Number of most-positive tiles averaged into ``topk_mean`` (the score).
    positive_class : str or None
        Class whose probability scores a slide (None: the tumour-like class,
        :func:`napari_xai.core.naming.positive_class`).
    threshold : float
        Slide score at or above which a slide is called positive.
    """

    top_k: int = bounded(10, low=1)
    positive_class: str | None = None
    threshold: float = fraction(0.5)


def result_params(grid: GridOptions, summary: SummaryOptions) -> dict[str, Any]:
    """Return the parameters a result folder records (``params`` in its manifest, hashed).

    The grid fields, plus the summary options under ``"summary"``. Saliency maps
    and audits are stages with their own spec hashes (``stages`` in the manifest).
    """
    return {**grid.to_dict(), "summary": summary.to_dict()}


@dataclass(frozen=True)
class BatchOptions(_Options):
    """How a cohort runs (:func:`napari_xai.core.batch.iter_batch`); not hashed.

    Attributes
    ----------
    scheduler : str or None
        None/``"local"``: a LocalCluster sized to the machine; ``"sync"``: this
        process, one slide after another; else a scheduler address.
    n_workers : int or None
        Workers of the LocalCluster (default: one per GPU, or per 4 cores).
    torch_threads : int or None
        torch intra-op threads per worker (default: cores / workers).
    resume : bool
        Skip slides whose result folder is complete for the same options.
    verify : bool
        On resume, also hash every file of a result folder against its manifest.
    poll_interval : float
        Seconds between checks for progress and cancellation.
    label_column : str
        Label column of a cohort CSV.
    write_plot : bool
        Also write ``cohort_roc.png`` when labels are given.
    """

    scheduler: str | None = None
    n_workers: int | None = bounded(None, low=1)
    torch_threads: int | None = bounded(None, low=1)
    resume: bool = True
    verify: bool = False
    poll_interval: float = bounded(0.1, low=0)
    label_column: str = "label"
    write_plot: bool = True

    @property
    def in_process(self) -> bool:
        """Slides run in this process, one after another (``scheduler="sync"``)."""
        return self.scheduler in ("sync", "synchronous", "process", "inline")


@dataclass(frozen=True)
class SlideOptions:
    """Everything one slide's run is asked for (:func:`~napari_xai.core.pipeline.run_slide`).

    The same bundle for every slide of a cohort (:func:`~napari_xai.core.batch.iter_batch`).
    Build variants with :func:`dataclasses.replace`.

    Attributes
    ----------
    grid : GridOptions or None
        Which tiles are scored. None: the grid the result folder was scored
        with, when it holds one, else the :class:`GridOptions` defaults.
    run : RunOptions
        Device, batch sizes, threads (not part of a result).
    summary : SummaryOptions
        How the tiles become the slide score.
    explain : ExplainSpec or None
        Add a whole-slide saliency map.
    audit : AuditSpec or None
        Add a shortcut audit.
    features : FeatureSpec or None
        Keep per-tile features and ``ood_score``.
    """

    grid: GridOptions | None = None
    run: RunOptions = dataclasses.field(default_factory=RunOptions)
    summary: SummaryOptions = dataclasses.field(default_factory=SummaryOptions)
    explain: ExplainSpec | None = None
    audit: AuditSpec | None = None
    features: FeatureSpec | None = None

    def stages(self) -> dict[str, dict[str, Any]]:
        """Return the optional stages asked for, as JSON (``explain``, ``audit``, ``features``)."""
        specs = {"explain": self.explain, "audit": self.audit, "features": self.features}
        return {kind: spec.to_dict() for kind, spec in specs.items() if spec is not None}


def cohort_options(
    *,
    min_tissue: float,
    overlap: float,
    top_k: int,
    positive_class: str | None,
    method: str | None,
    device: str,
    scheduler: str | None,
    resume: bool,
    n_workers: int | None,
) -> dict[str, Any]:
    """Return the ``options`` and ``batch`` keywords of :func:`~napari_xai.core.batch.iter_batch`.

    The flat values a form gives (the Batch widget's controls) as the option bundles.

    Parameters
    ----------
    min_tissue, overlap : float
        :class:`GridOptions` fields.
    top_k : int
        :class:`SummaryOptions` ``top_k``.
    positive_class : str or None
        :class:`SummaryOptions` ``positive_class``; blank or None: the model's.
    method : str or None
        Also write a saliency map with this method (:class:`ExplainSpec`).
    device : str
        :class:`RunOptions` ``device``.
    scheduler, resume, n_workers
        :class:`BatchOptions` fields (``n_workers`` 0 or None: auto).

    Returns
    -------
    dict
        ``{"options": SlideOptions, "batch": BatchOptions}``.
    """
    summary = SummaryOptions(
        top_k=int(top_k), positive_class=(positive_class or "").strip() or None
    )
    options = SlideOptions(
        grid=GridOptions(min_tissue=float(min_tissue), overlap=float(overlap)),
        summary=summary,
        explain=ExplainSpec(method=method) if method else None,
        run=RunOptions(device=device),
    )
    batch = BatchOptions(scheduler=scheduler, resume=bool(resume), n_workers=n_workers or None)
    return {"options": options, "batch": batch}


def cache_dir(*parts: str) -> Path:
    """Per-user folder for generated data and default stores, created private (``0o700``).

    ``$NAPARI_XAI_CACHE`` when set, else the platform's user cache folder
    (``platformdirs``: ``~/.cache/napari-xai`` on Linux, honouring
    ``$XDG_CACHE_HOME``), then ``parts`` below it (e.g. ``"results"``). Holds
    the sample slide, the sanity results audits keep per model, and the
    widgets' default result stores. See :func:`private_dir`.
    """
    env = os.environ.get("NAPARI_XAI_CACHE")
    if env:
        base = Path(env).expanduser()
    else:
        import platformdirs

        base = Path(platformdirs.user_cache_dir("napari-xai", appauthor=False))
    private_dir(base)
    return private_dir(base.joinpath(*parts)) if parts else base


def private_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (and parents) readable by this user only, or check that it is.

    A folder that already exists must be a real folder (not a link) owned by
    this user; group/other permissions on it are removed. Another local user
    can therefore not pre-create it to read or plant results.

    Parameters
    ----------
    path : path-like
        The folder.

    Returns
    -------
    Path
        The folder, ``~`` expanded.

    Raises
    ------
    PermissionError
        When the folder is a link, or belongs to another user (the message names it).
    """
    import stat

    p = Path(path).expanduser()
    p.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = os.lstat(p)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise PermissionError(f"{p}: expected a private folder, found a link or a file")
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        raise PermissionError(
            f"{p}: belongs to another user (uid {info.st_uid}); refusing to write results there"
        )
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(p, 0o700)
    return p
