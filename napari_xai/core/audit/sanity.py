"""Sanity checks of attribution methods: do the maps depend on the model and on what it uses.

Two checks, run on a probe set of tiles:

- **Cascading model-parameter randomisation** (Adebayo et al. 2018): the model's
  layers are re-initialised one by one from the output down (normal weights with
  each tensor's own standard deviation); after each step the maps are recomputed
  and compared with the original maps by Spearman rank correlation and SSIM (of
  the absolute maps, each scaled to [0, 1]). A method whose maps survive full
  randomisation describes the image, not the model. It passes when, with every
  layer randomised, the mean Spearman is below ``max_spearman`` and the mean
  SSIM below ``max_ssim``. (Rank correlation of *absolute* maps stays moderate
  even for model-dependent gradients, as image edges shape them too: Adebayo et
  al. report ~0.4-0.6 for plain gradients; on the demo model Saliency ends at
  ~0.5 and Grad-CAM below 0, while an edge detector stays at 1.0.)
- **Deletion / insertion** (Petsiuk et al. 2018, RISE): pixels (or ``block`` ×
  ``block`` blocks) are removed (set to the baseline: zero in model-input space,
  i.e. the card's mean colour) in order of decreasing absolute attribution, and
  the probability of the explained class is recorded at ``n_steps`` fractions;
  insertion starts from the baseline and puts the pixels back in the same order.
  AUCs are compared with a random order
  (mean of ``n_random`` random orders). Its figure is the **faithfulness gain**
  ``(random deletion AUC - deletion AUC) + (insertion AUC - random insertion AUC)``
  (0: no better than a random order). ``faithfulness`` is ``"pass"`` when the
  deletion AUC is below the random one and the insertion AUC above it,
  ``"fail"`` when the gain is below ``-faithfulness_margin`` (the map ranks
  pixels *worse* than chance: what it calls important is what the model needs
  least), ``"inconclusive"`` otherwise (on tiny probe sets of an unsure model
  the curves tie).

A method is **trusted** to carry a verdict (``SanityResult.trusted``) when it
passes the randomisation check and its faithfulness is not ``"fail"``.

:func:`sanity_check` runs both and caches the result per model hash and method.
A "method" may also be a callable ``f(module, x, target) -> maps``, so a method
that ignores the model (an edge detector) can be tested.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from napari_xai.core.options import Bounded, bounded

__all__ = [
    "DeletionInsertion",
    "SanityOptions",
    "SanityResult",
    "SanityThresholds",
    "deletion_insertion",
    "edge_detector",
    "known_sanity",
    "method_label",
    "randomisation_test",
    "sanity_check",
]

#: Bumped when the checks change, so results recorded by older code are not shown.
SANITY_VERSION = 2

MethodLike = str | Callable[..., Any]
_CACHE: dict[tuple[str, str, int, SanityOptions], SanityResult] = {}


@dataclass(frozen=True)
class SanityThresholds(Bounded):
    """Pass limits of the sanity checks.

    Parameters
    ----------
    max_spearman : float
        Randomisation: highest mean Spearman correlation between original maps and
        maps of the fully randomised model.
    max_ssim : float
        Randomisation: highest mean SSIM between them.
    faithfulness_margin : float
        Faithfulness fails when the faithfulness gain is below ``-faithfulness_margin``.
    """

    max_spearman: float = bounded(0.8, low=-1, high=1)
    max_ssim: float = bounded(0.5, low=-1, high=1)
    faithfulness_margin: float = bounded(0.05, low=0)


@dataclass(frozen=True)
class SanityOptions(Bounded):
    """How the sanity checks are run (the defaults of :func:`sanity_check`).

    Parameters
    ----------
    n_steps : int
        Deletion/insertion: fractions of pixels removed / inserted (0 to 1 in
        ``n_steps`` steps).
    n_random : int
        Deletion/insertion: random orderings averaged for the baseline AUCs.
    block : int
        Deletion/insertion: side of the square blocks removed together (1: pixels,
        as in RISE).
    seed : int
        Seed of the layer randomisation and of the random orderings.
    """

    n_steps: int = bounded(16, low=1)
    n_random: int = bounded(2, low=1)
    block: int = bounded(1, low=1)
    seed: int = 0


@dataclass(frozen=True)
class DeletionInsertion:
    """Deletion and insertion AUCs of an attribution ordering and of random orderings.

    Each is the mean probability of the target over the steps (the normalised AUC);
    see :func:`deletion_insertion`.
    """

    deletion_auc: float
    deletion_auc_random: float
    insertion_auc: float
    insertion_auc_random: float

    @property
    def passed(self) -> bool:
        """Deleting the ranked pixels hurts more, and inserting them helps more, than chance."""
        return (
            self.deletion_auc < self.deletion_auc_random
            and self.insertion_auc > self.insertion_auc_random
        )

    @property
    def gain(self) -> float:
        """(Random deletion AUC - deletion AUC) + (insertion AUC - random insertion AUC)."""
        return float(
            (self.deletion_auc_random - self.deletion_auc)
            + (self.insertion_auc - self.insertion_auc_random)
        )


@dataclass
class SanityResult:
    """Figures and pass/fail of one method on one model.

    Attributes
    ----------
    method : str
        The attribution method checked.
    spearman, ssim, layers : list
        Model randomisation test: rank correlation and SSIM of the maps with the
        original ones after each randomised layer (cumulative, from the top).
    curves : DeletionInsertion
        Faithfulness test: deletion and insertion AUCs, and random orderings'.
    n_probe : int
        Probe tiles used.
    thresholds : SanityThresholds
        The pass limits the figures are judged by.
    """

    method: str
    spearman: list[float]
    ssim: list[float]
    layers: list[str]
    curves: DeletionInsertion
    n_probe: int
    thresholds: SanityThresholds = field(default_factory=SanityThresholds)

    @property
    def randomisation_passed(self) -> bool:
        """The maps changed enough once the model was fully randomised."""
        th = self.thresholds
        return bool(self.spearman and self.spearman[-1] < th.max_spearman
                    and self.ssim[-1] < th.max_ssim)  # fmt: skip

    @property
    def faithfulness_margin(self) -> float:
        """How much worse than chance ``curves`` may be before the method fails."""
        return float(self.thresholds.faithfulness_margin)

    @property
    def faithfulness_passed(self) -> bool:
        """Whether the ranking beats a random one on both curves (``curves.passed``)."""
        return self.curves.passed

    @property
    def passed(self) -> bool:
        """Both checks passed."""
        return self.randomisation_passed and self.faithfulness_passed

    @property
    def faithfulness_gain(self) -> float:
        """(Random deletion AUC - deletion AUC) + (insertion AUC - random insertion AUC)."""
        return self.curves.gain

    @property
    def faithfulness(self) -> str:
        """``"pass"``, ``"inconclusive"`` or ``"fail"`` (worse than a random order)."""
        if self.faithfulness_passed:
            return "pass"
        return "fail" if self.faithfulness_gain < -self.faithfulness_margin else "inconclusive"

    @property
    def trusted(self) -> bool:
        """The maps depend on the model and are not anti-faithful: it may carry a verdict."""
        return self.randomisation_passed and self.faithfulness != "fail"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (the curves' AUCs at the top level, as recorded on disk)."""
        d = dataclasses.asdict(self)
        d.update(d.pop("curves"))
        del d["thresholds"]
        d["randomisation_passed"] = self.randomisation_passed
        d["faithfulness_margin"] = self.faithfulness_margin
        d["faithfulness_passed"] = self.faithfulness_passed
        d["passed"] = self.passed
        d["trusted"] = self.trusted
        d["faithfulness"] = self.faithfulness
        d["faithfulness_gain"] = self.faithfulness_gain
        return d


def edge_detector(module: Any, x: Any, target: Any = None) -> npt.NDArray[np.float32]:
    """Return the Sobel edge magnitude of the input: an "attribution method" ignoring the model.

    Parameters
    ----------
    module : Any
        Ignored.
    x : Tensor of shape (N, C, H, W)
        Model input.
    target : Any
        Ignored.

    Returns
    -------
    ndarray of float32, shape (N, H, W)
    """
    from scipy import ndimage

    arr = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, np.float64)
    grey = arr.mean(axis=1)
    gy = ndimage.sobel(grey, axis=1)
    gx = ndimage.sobel(grey, axis=2)
    out: npt.NDArray[np.float32] = np.hypot(gx, gy).astype(np.float32)
    return out


def _module_of(model: Any) -> Any:
    return getattr(model, "module", model)


def _explain(model: Any, x: Any, method: MethodLike, target: Any) -> npt.NDArray[np.float32]:
    if callable(method):
        return np.asarray(method(_module_of(model), x, target), np.float32)
    from napari_xai.core.attribution import explain_tiles

    options: dict[str, Any] = {"n_steps": 16} if method == "integrated_gradients" else {}
    if not isinstance(target, list):
        return explain_tiles(model, x, method=method, target=target, batch_size=64, **options)
    tgt = np.asarray(target)
    out = np.zeros((x.shape[0], *x.shape[2:]), np.float32)
    for t in np.unique(tgt):
        sel = np.flatnonzero(tgt == t)
        out[sel] = explain_tiles(
            model, x[sel], method=method, target=int(t), batch_size=64, **options
        )
    return out


def _layers_top_down(module: Any) -> list[str]:
    """Names of parameter-owning submodules, output layer first."""
    names: list[str] = []
    for name, _ in module.named_parameters():
        owner = name.rsplit(".", 1)[0] if "." in name else ""
        if owner not in names:
            names.append(owner)
    return names[::-1]


def _randomise(module: Any, owner: str, rng: Any) -> None:
    import torch

    with torch.no_grad():
        for name, p in module.named_parameters():
            if (name.rsplit(".", 1)[0] if "." in name else "") != owner:
                continue
            std = float(p.std()) if p.numel() > 1 else 0.1
            p.copy_(torch.randn(p.shape, generator=rng, dtype=p.dtype) * max(std, 1e-3))


def _unit(m: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    a = np.abs(m)
    lo, hi = a.min(), a.max()
    return (a - lo) / (hi - lo) if hi > lo else np.zeros_like(a)


def _compare(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> tuple[float, float]:
    from scipy.stats import spearmanr
    from skimage.metrics import structural_similarity

    rho, ss = [], []
    for x, y in zip(a, b, strict=True):
        ux, uy = _unit(np.asarray(x, np.float64)), _unit(np.asarray(y, np.float64))
        if ux.std() == 0 or uy.std() == 0:
            rho.append(0.0)
        else:
            rho.append(float(spearmanr(ux.ravel(), uy.ravel()).statistic))
        win = min(7, min(ux.shape) // 2 * 2 - 1)
        ss.append(float(structural_similarity(ux, uy, data_range=1.0, win_size=max(win, 3))))
    return float(np.mean(rho)), float(np.mean(ss))


def randomisation_test(
    model: Any,
    x: Any,
    method: MethodLike,
    *,
    target: Any = None,
    seed: int = 0,
) -> tuple[list[str], list[float], list[float]]:
    """Cascading model-parameter randomisation, from the output layer down.

    Parameters
    ----------
    model : LoadedModel or torch.nn.Module
    x : Tensor of shape (N, C, H, W)
        Probe tiles in model-input space.
    method : str or callable
        Attribution method key, or ``f(module, x, target) -> maps``.
    target : int or None
        Class to explain; ``None``: each tile's predicted class under the *original*
        model (kept fixed while randomising).
    seed : int

    Returns
    -------
    layers : list of str
        Layers randomised, cumulatively, in order.
    spearman, ssim : list of float
        Mean similarity to the original maps after each step.
    """
    import torch

    module = _module_of(model)
    if target is None:
        with torch.inference_mode():
            target = module(x).argmax(dim=1).tolist()
    original = _explain(model, x, method, _targets(target))
    work = copy.deepcopy(module)
    rand_model = (
        dataclasses.replace(model, module=work)
        if dataclasses.is_dataclass(model) and not isinstance(model, type)
        else work
    )
    gen = torch.Generator().manual_seed(seed)
    layers, rho, ss = [], [], []
    for owner in _layers_top_down(work):
        _randomise(work, owner, gen)
        maps = _explain(rand_model, x, method, _targets(target))
        r, s = _compare(original, maps)
        layers.append(owner or "(root)")
        rho.append(r)
        ss.append(s)
    return layers, rho, ss


def _targets(target: Any) -> Any:
    if isinstance(target, list) and target and len(set(target)) == 1:
        return int(target[0])
    return target


def deletion_insertion(
    model: Any,
    x: Any,
    maps: npt.ArrayLike,
    *,
    target: Any = None,
    options: SanityOptions | None = None,
) -> DeletionInsertion:
    """Compute deletion and insertion AUCs of an attribution ordering vs random orderings.

    Parameters
    ----------
    model : LoadedModel or torch.nn.Module
    x : Tensor of shape (N, C, H, W)
        Probe tiles in model-input space; the baseline is zero (the card's mean).
    maps : array-like, shape (N, H, W)
        Attribution maps (higher = more important).
    target : int, list of int or None
        Class per tile (``None``: predicted).
    options : SanityOptions, optional
        Steps, random orderings, block side and seed (default: :class:`SanityOptions`).

    Returns
    -------
    DeletionInsertion
        The ordering's and the random orderings' deletion and insertion AUCs (mean
        probability of the target over the steps, i.e. the normalised AUC).
    """
    import torch

    from napari_xai.core.predict import to_probabilities

    opts = SanityOptions() if options is None else options
    module = _module_of(model)
    n, _, h, w = x.shape
    with torch.inference_mode():
        probs0 = to_probabilities(module(x))
    tgt = (
        probs0.argmax(1)
        if target is None
        else torch.as_tensor(np.broadcast_to(np.asarray(target), (n,)).copy())
    )
    idx = torch.arange(n)
    bs = opts.block
    gh, gw = -(-h // bs), -(-w // bs)

    def curve(order: npt.NDArray[np.int64]) -> tuple[float, float]:
        # order: (N, gh*gw) block indices, most important first.
        fracs = np.linspace(0, 1, opts.n_steps + 1)
        dele, ins = [], []
        for f in fracs:
            k = int(round(f * gh * gw))
            keep = np.zeros((n, gh * gw), bool)
            rows = np.repeat(np.arange(n), k)
            keep[rows, order[:, :k].ravel()] = True
            up = keep.reshape(n, gh, gw).repeat(bs, axis=1).repeat(bs, axis=2)[:, :h, :w]
            m = torch.from_numpy(np.ascontiguousarray(up[:, None])).to(x.dtype)
            with torch.inference_mode():
                pd_ = to_probabilities(module(x * (1 - m)))[idx, tgt]
                pi = to_probabilities(module(x * m))[idx, tgt]
            dele.append(float(pd_.mean()))
            ins.append(float(pi.mean()))
        return float(np.trapezoid(dele, fracs)), float(np.trapezoid(ins, fracs))

    a = np.abs(np.asarray(maps, np.float64))
    pad = np.zeros((n, gh * bs, gw * bs))
    pad[:, :h, :w] = a
    flat = pad.reshape(n, gh, bs, gw, bs).sum(axis=(2, 4)).reshape(n, -1)
    d, i = curve(np.argsort(-flat, axis=1, kind="stable"))
    rng = np.random.default_rng(opts.seed)
    rd, ri = zip(
        *(
            curve(np.stack([rng.permutation(gh * gw) for _ in range(n)]))
            for _ in range(opts.n_random)
        ),
        strict=True,
    )
    return DeletionInsertion(d, float(np.mean(rd)), i, float(np.mean(ri)))


def sanity_check(
    model: Any,
    tiles: Any,
    method: MethodLike,
    *,
    thresholds: SanityThresholds | None = None,
    options: SanityOptions | None = None,
    cache: bool = True,
) -> SanityResult:
    """Run the randomisation and deletion/insertion checks of one method on one model.

    Parameters
    ----------
    model : LoadedModel or torch.nn.Module
    tiles : ndarray of uint8 (N, H, W, 3) or Tensor (N, C, H, W)
        Probe tiles (uint8 tiles go through the model card's transform).
    method : str or callable
        Attribution method key, or ``f(module, x, target) -> maps``.
    thresholds : SanityThresholds, optional
    options : SanityOptions, optional
        Deletion/insertion steps, random orderings, block side and seed.
    cache : bool
        Reuse a result for the same model hash, method, probe count and options.

    Returns
    -------
    SanityResult
    """
    from napari_xai.core.predict import preprocess_tiles

    th = thresholds or SanityThresholds()
    opts = SanityOptions() if options is None else options
    name = method if isinstance(method, str) else getattr(method, "__name__", "custom")
    sha = getattr(model, "sha256", None)
    x = preprocess_tiles(tiles, getattr(model, "card", None))
    key = (str(sha), name, int(x.shape[0]), opts)
    if cache and sha and key in _CACHE:
        return _CACHE[key]
    layers, rho, ss = randomisation_test(model, x, method, seed=opts.seed)
    maps = _explain(model, x, method, None)
    curves = deletion_insertion(model, x, maps, options=opts)
    res = SanityResult(name, rho, ss, layers, curves, n_probe=int(x.shape[0]), thresholds=th)
    if cache and sha:
        _CACHE[key] = res
        _record(str(sha), name, res)
    return res


def _record_path(sha: str, method: str) -> Any:
    from napari_xai.core.options import cache_dir

    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in method)
    return cache_dir() / "sanity" / f"{sha[:16]}-{safe}.json"


def _record(sha: str, method: str, res: SanityResult) -> None:
    """Keep the result on disk (per model hash and method) for the widgets to show."""
    import json

    from napari_xai.core.atomic import atomic_write_text

    try:
        path = _record_path(sha, method)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps({"version": SANITY_VERSION, **res.to_dict()}))
    except OSError:  # a read-only cache folder costs the label, never the audit
        pass


def known_sanity(sha: str | None, method: str) -> dict[str, Any] | None:
    """Return the last sanity result of ``method`` on the model with hash ``sha``, if any.

    Looks in this process's cache, then in the results kept on disk
    (``<cache_dir>/sanity/``) by earlier audits; never runs the checks.

    Parameters
    ----------
    sha : str or None
        The model's sha256 (``LoadedModel.sha256``).
    method : str
        Attribution method key.

    Returns
    -------
    dict or None
        ``SanityResult.to_dict()``, or None when the method was never checked on it.
    """
    import json

    if not sha:
        return None
    for (k_sha, k_method, *_), res in reversed(list(_CACHE.items())):
        if k_sha == sha and k_method == method:
            return res.to_dict()
    try:
        d = json.loads(_record_path(sha, method).read_text())
    except (OSError, ValueError):
        return None
    return d if isinstance(d, dict) and d.get("version") == SANITY_VERSION else None


def method_label(method: str, sanity: dict[str, Any] | None) -> str:
    """Short label of an attribution method with its sanity status, for every place maps show.

    Parameters
    ----------
    method : str
    sanity : dict or None
        ``SanityResult.to_dict()`` (None: not checked).

    Returns
    -------
    str
        e.g. ``"grad_cam (sanity checks passed)"`` or ``"edge (FAILING sanity checks: its
        maps do not depend on the model)"``.
    """
    if sanity is None:
        return f"{method} (not sanity-checked)"
    if not sanity.get("randomisation_passed", sanity.get("trusted", True)):
        return f"{method} (FAILING sanity checks: its maps do not depend on the model)"
    if not sanity.get("trusted", True):
        return f"{method} (FAILING sanity checks: its maps rank pixels worse than chance)"
    if sanity.get("passed", True):
        return f"{method} (sanity checks passed)"
    return f"{method} (randomisation passed; deletion/insertion not better than random)"
