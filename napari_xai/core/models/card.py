"""The model card: everything the plugin must know to feed a tile model.

The card is a superset of WSInfer's ``config.json`` (spec 1.0): a WSInfer
config reads unchanged, and the extra napari-xai fields (Grad-CAM layer,
feature layer, channel order, description) live under a ``napari_xai`` key
that WSInfer ignores.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from napari_xai.core.limits import LimitError, check_mpp, check_resize, check_tile_size
from napari_xai.core.models.errors import ModelCardError, read_json

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: Key of the napari-xai extension inside a WSInfer-style config.
EXTENSION_KEY = "napari_xai"


@dataclass(frozen=True)
class ModelCard:
    """What a tile model expects and produces.

    Parameters
    ----------
    class_names : tuple of str
        One name per output logit, in output order.
    tile_size : int
        Side of the square input tile, in pixels, at ``mpp``.
    mpp : float
        Microns per pixel the model was trained at.
    mean, std : tuple of 3 floats
        Per-channel normalisation applied after scaling to [0, 1].
    channel_order : {"RGB", "BGR"}
        Channel order the model expects.
    cam_layer : str, optional
        Dotted name of the module used for Grad-CAM (e.g. ``"layer4"``).
    feature_layer : str, optional
        Dotted name of the module whose output is the feature vector.
    name : str
        Short human-readable name.
    architecture : str, optional
        Registered architecture name (:mod:`napari_xai.core.models.architectures`)
        for state-dict weights, or WSInfer's architecture name.
    description : str
        Free text: training data, intended use, caveats.
    feature_stats : str, optional
        File beside the weights (``.npz``) summarising the training tiles'
        features at ``feature_layer``, for out-of-distribution scores
        (:mod:`napari_xai.core.explore.ood`).
    training_data : str
        What the model was trained on, in a word the plugin understands:
        ``"synthetic"`` (generated tiles, not real tissue: the widgets say "not for
        real slides" next to the model's name), ``"real"``, or ``""`` (not said).
    stain : str
        Stain or modality of the slides the model was trained on: ``"H&E"``,
        ``"IHC"``, ``"fluorescence"``, or ``""`` (not said; WSInfer folders).
        Scoring a slide of another stain warns (:meth:`fit_warnings`).
    transform : tuple of dict
        WSInfer ``transform`` list (``{"name": ..., "arguments": {...}}``
        steps: Resize, ToTensor, Normalize), kept as read so the model is fed
        and written back exactly as WSInfer does. Empty means the default
        ``Resize(tile_size)``, ``ToTensor``, ``Normalize(mean, std)``. When
        given, its ``Normalize`` must agree with ``mean``/``std`` (no
        ``Normalize`` means mean 0 and std 1).
    """

    class_names: tuple[str, ...]
    tile_size: int
    mpp: float
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    channel_order: str = "RGB"
    cam_layer: str | None = None
    feature_layer: str | None = None
    name: str = "model"
    architecture: str | None = None
    description: str = ""
    feature_stats: str | None = None
    training_data: str = ""
    transform: tuple[Mapping[str, Any], ...] = field(default=(), compare=False)
    stain: str = ""

    def __post_init__(self) -> None:
        if len(self.class_names) < 1:
            raise ModelCardError("model card: class_names must name at least one class")
        if len(set(self.class_names)) != len(self.class_names):
            raise ModelCardError(f"model card: class_names repeat a name: {self.class_names}")
        if int(self.tile_size) <= 0:
            raise ModelCardError(f"model card: tile_size must be positive, got {self.tile_size}")
        if not float(self.mpp) > 0:
            raise ModelCardError(f"model card: mpp must be positive, got {self.mpp}")
        try:
            check_mpp(self.mpp, what="mpp (spacing_um_px)")
            check_tile_size(self.tile_size, what="tile_size (patch_size_pixels)")
            for step in self.transform:
                if isinstance(step, Mapping) and step.get("name") == "Resize":
                    _check_resize_step(step)
        except LimitError as exc:
            raise ModelCardError(f"model card: {exc}") from None
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ModelCardError("model card: mean and std need 3 values (one per channel)")
        if any(float(s) <= 0 for s in self.std):
            raise ModelCardError(f"model card: std must be positive, got {self.std}")
        if self.channel_order not in ("RGB", "BGR"):
            raise ModelCardError(
                f"model card: channel_order must be 'RGB' or 'BGR', got {self.channel_order!r}"
            )
        if self.transform:
            steps = tuple(_copy_step(step) for step in self.transform)
            _check_transform_matches(steps, self.mean, self.std)
            # The default pipeline is stored as () so a card survives a round trip
            # through config.json with the same JSON and sha256.
            default = _default_transform(int(self.tile_size), self.mean, self.std)
            object.__setattr__(self, "transform", () if list(steps) == default else steps)

    @property
    def caveat(self) -> str:
        """What a user must know before trusting the model ("" when nothing is said)."""
        if self.training_data.strip().lower() == "synthetic":
            return "synthetic training data, not for real slides"
        return ""

    def fit_warnings(self, *, slide: str, modality: str, stain: str) -> tuple[str, ...]:
        """Warnings when a slide's modality or stain is not what the model was trained on.

        Parameters
        ----------
        slide : str
            The slide's name (for the message).
        modality, stain : str
            From the slide's masks (:class:`napari_xai.core.masks.SlideMasks`).

        Returns
        -------
        tuple of str
            Empty when the stains agree, or when either is unknown and the slide
            is brightfield H&E.
        """
        trained = self.stain.strip()
        said = f"trained on {trained}" if trained else "its card does not say its stain"
        if modality == "fluorescence" and trained.lower() != "fluorescence":
            return (
                f"{slide} looks like a fluorescence slide (dark background); {self.name} is "
                f"a brightfield model ({said}): its scores are likely meaningless",
            )
        if stain in ("H&E", "IHC", "fluorescence") and stain != trained:
            if trained or stain == "IHC":
                return (
                    f"{slide} looks like {stain}; {self.name}: {said}: "
                    "its scores may not transfer",
                )
        return ()

    @property
    def num_classes(self) -> int:
        """Number of output classes."""
        return len(self.class_names)

    # -- (de)serialisation -------------------------------------------------
    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelCard:
        """Build a card from a napari-xai card or a WSInfer ``config.json`` dict.

        A WSInfer config (``spec_version`` present) is read as WSInfer reads
        it: ``patch_size_pixels``, ``spacing_um_px``, ``class_names`` and the
        ``Normalize`` transform's mean/std.
        """
        if not isinstance(data, Mapping):
            raise ModelCardError(f"model card: expected a JSON object, got {type(data).__name__}")
        ext = dict(data.get(EXTENSION_KEY, {}) or {})
        try:
            if "spec_version" in data or "patch_size_pixels" in data:
                # Validate against WSInfer's spec 1.0 schema: clear message per field.
                from napari_xai.core.models.wsinfer_config import validate_wsinfer_config

                validate_wsinfer_config(data)
                # No Normalize step means WSInfer feeds x / 255 unnormalised.
                mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
                transform = tuple(_copy_step(step) for step in data.get("transform", ()))
                for step in transform:
                    if step.get("name") == "Normalize":
                        args = step.get("arguments", {})
                        mean = tuple(float(v) for v in args["mean"])  # type: ignore[assignment]
                        std = tuple(float(v) for v in args["std"])  # type: ignore[assignment]
                names = tuple(str(n) for n in data["class_names"])
                if "num_classes" in data and int(data["num_classes"]) != len(names):
                    raise ModelCardError(
                        f"model card: num_classes is {data['num_classes']} but "
                        f"{len(names)} class_names are given"
                    )
                return cls(
                    class_names=names,
                    tile_size=int(data["patch_size_pixels"]),
                    mpp=float(data["spacing_um_px"]),
                    mean=mean,
                    std=std,
                    channel_order=str(ext.get("channel_order", "RGB")),
                    cam_layer=ext.get("cam_layer"),
                    feature_layer=ext.get("feature_layer"),
                    name=str(ext.get("name", data.get("architecture", "model"))),
                    architecture=ext.get("architecture", data.get("architecture")),
                    description=str(ext.get("description", "")),
                    feature_stats=ext.get("feature_stats"),
                    training_data=str(ext.get("training_data", "")),
                    transform=transform,
                    stain=str(ext.get("stain", "")),
                )
            return cls(
                class_names=tuple(str(n) for n in data["class_names"]),
                tile_size=int(data["tile_size"]),
                mpp=float(data["mpp"]),
                mean=tuple(float(v) for v in data.get("mean", IMAGENET_MEAN)),  # type: ignore[arg-type]
                std=tuple(float(v) for v in data.get("std", IMAGENET_STD)),  # type: ignore[arg-type]
                channel_order=str(data.get("channel_order", "RGB")),
                cam_layer=data.get("cam_layer"),
                feature_layer=data.get("feature_layer"),
                name=str(data.get("name", "model")),
                architecture=data.get("architecture"),
                description=str(data.get("description", "")),
                feature_stats=data.get("feature_stats"),
                training_data=str(data.get("training_data", "")),
                transform=tuple(_copy_step(step) for step in data.get("transform") or ()),
                stain=str(data.get("stain", "")),
            )
        except KeyError as exc:
            raise ModelCardError(f"model card: missing required field {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            if isinstance(exc, ModelCardError):
                raise
            raise ModelCardError(f"model card: bad value: {exc}") from None

    def to_dict(self) -> dict[str, Any]:
        """Return the napari-xai card as a JSON-ready dict."""
        return {
            "name": self.name,
            "class_names": list(self.class_names),
            "tile_size": int(self.tile_size),
            "mpp": float(self.mpp),
            "mean": [float(v) for v in self.mean],
            "std": [float(v) for v in self.std],
            "channel_order": self.channel_order,
            "cam_layer": self.cam_layer,
            "feature_layer": self.feature_layer,
            "architecture": self.architecture,
            "description": self.description,
            **({"feature_stats": self.feature_stats} if self.feature_stats else {}),
            # Only when set, so cards without one keep the same JSON and hash.
            **({"training_data": self.training_data} if self.training_data else {}),
            **({"stain": self.stain} if self.stain else {}),
            **({"transform": [_copy_step(t) for t in self.transform]} if self.transform else {}),
        }

    def to_wsinfer_config(self) -> dict[str, Any]:
        """Return a WSInfer spec-1.0 ``config.json`` dict carrying this card."""
        return {
            "spec_version": "1.0",
            "architecture": self.architecture or self.name,
            "num_classes": self.num_classes,
            "class_names": list(self.class_names),
            "patch_size_pixels": int(self.tile_size),
            "spacing_um_px": float(self.mpp),
            "transform": [_copy_step(t) for t in self.transform]
            or _default_transform(int(self.tile_size), self.mean, self.std),
            EXTENSION_KEY: {
                "name": self.name,
                "channel_order": self.channel_order,
                "cam_layer": self.cam_layer,
                "feature_layer": self.feature_layer,
                "architecture": self.architecture,
                "description": self.description,
                **({"feature_stats": self.feature_stats} if self.feature_stats else {}),
                **({"training_data": self.training_data} if self.training_data else {}),
                **({"stain": self.stain} if self.stain else {}),
            },
        }

    @classmethod
    def from_json(cls, path: str | Path) -> ModelCard:
        """Read a card (napari-xai or WSInfer layout) from a JSON file."""
        path = Path(path)
        data = read_json(path, what="model card", not_json="not a JSON model card")
        try:
            return cls.from_dict(data)
        except ModelCardError as exc:
            raise ModelCardError(f"{path}: {exc}") from None

    def to_json(self, path: str | Path, *, wsinfer: bool = True) -> Path:
        """Write the card; as a WSInfer ``config.json`` superset by default."""
        path = Path(path)
        data = self.to_wsinfer_config() if wsinfer else self.to_dict()
        path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        return path

    @property
    def sha256(self) -> str:
        """Hash of the canonical JSON form (stable across key order)."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _check_resize_step(step: Mapping[str, Any]) -> None:
    """Refuse a Resize whose output would be larger than the limits allow."""
    args = step.get("arguments") or {}
    if not isinstance(args, Mapping):
        return
    size = args.get("size")
    sizes = size if isinstance(size, (list, tuple)) else [size]
    for value in [*sizes, args.get("max_size")]:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            check_resize(value, what="transform Resize size")


def _copy_step(step: Any) -> dict[str, Any]:
    """Deep-copy one transform step as plain JSON types (lists, not tuples)."""
    if not isinstance(step, Mapping):
        raise ModelCardError(f"model card: a transform step must be an object, got {step!r}")
    copied: dict[str, Any] = json.loads(json.dumps(dict(step)))
    return copied


def _check_transform_matches(
    transform: tuple[Mapping[str, Any], ...],
    mean: tuple[float, float, float],
    std: tuple[float, float, float],
) -> None:
    """Refuse a card whose mean/std disagree with its own Normalize step."""
    norm = [dict(t.get("arguments") or {}) for t in transform if t.get("name") == "Normalize"]
    t_mean = [float(v) for v in norm[-1].get("mean", ())] if norm else [0.0, 0.0, 0.0]
    t_std = [float(v) for v in norm[-1].get("std", ())] if norm else [1.0, 1.0, 1.0]
    if len(norm) > 1:
        raise ModelCardError("model card: transform has more than one Normalize step")
    if t_mean != [float(v) for v in mean] or t_std != [float(v) for v in std]:
        raise ModelCardError(
            f"model card: mean/std {tuple(mean)}/{tuple(std)} disagree with the transform's "
            f"Normalize {t_mean}/{t_std}"
        )


def _default_transform(
    tile_size: int, mean: tuple[float, float, float], std: tuple[float, float, float]
) -> list[dict[str, Any]]:
    """WSInfer transform list of a card without one: Resize, ToTensor, Normalize."""
    return [
        {"name": "Resize", "arguments": {"size": int(tile_size)}},
        {"name": "ToTensor"},
        {
            "name": "Normalize",
            "arguments": {"mean": [float(v) for v in mean], "std": [float(v) for v in std]},
        },
    ]


#: Card fields that decide how tiles are fed and outputs read: a disagreement matters.
CARD_FEED_FIELDS = ("class_names", "tile_size", "mpp", "mean", "std", "channel_order")


def card_mismatch(card: ModelCard, other: ModelCard) -> str:
    """Describe how two cards of one model disagree on feeding it ("" when they agree).

    Parameters
    ----------
    card, other : ModelCard
        E.g. the card embedded in a TorchScript file and the ``config.json`` beside it.

    Returns
    -------
    str
        ``"class_names: (...) vs (...); mpp: 0.5 vs 1.0"`` for the fields of
        :data:`CARD_FEED_FIELDS` that differ, or ``""``.
    """
    differ = [f for f in CARD_FEED_FIELDS if getattr(card, f) != getattr(other, f)]
    return "; ".join(f"{f}: {getattr(card, f)!r} vs {getattr(other, f)!r}" for f in differ)
