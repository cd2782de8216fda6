"""WSInfer ``config.json`` spec 1.0: the published schema plus the checks it leaves out.

:func:`validate_wsinfer_config` gives one clear message per bad field (schema path,
transform names and arguments, interpolation, limits on sizes and resolutions). It
needs nothing of the model card, so the card can validate the configs it reads and
:mod:`napari_xai.core.models.wsinfer` can build cards, without an import cycle.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from napari_xai.core.models.errors import ModelCardError

__all__ = [
    "PIL_RESAMPLING",
    "TRANSFORM_NAMES",
    "WSInferConfigError",
    "interpolation_name",
    "validate_wsinfer_config",
]

#: Transform names spec 1.0 knows, and the arguments torchvision accepts for each.
TRANSFORM_NAMES: tuple[str, ...] = ("Resize", "ToTensor", "Normalize")
_TRANSFORM_ARGUMENTS: dict[str, frozenset[str]] = {
    "Resize": frozenset({"size", "interpolation", "max_size", "antialias"}),
    "ToTensor": frozenset(),
    "Normalize": frozenset({"mean", "std", "inplace"}),
}
_SCHEMA_PATH = Path(__file__).with_name("wsinfer_config.schema.json")

# PIL resampling codes (also what torchvision accepts as ints) and names.
PIL_RESAMPLING = {"nearest": 0, "bilinear": 2, "bicubic": 3, "box": 4, "hamming": 5, "lanczos": 1}


_INTERPOLATION_CODES = {v: k for k, v in PIL_RESAMPLING.items()}


def interpolation_name(value: Any) -> str | None:
    """PIL resampling name of a Resize ``interpolation`` (a PIL code or a torchvision name)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return _INTERPOLATION_CODES.get(value)
    if isinstance(value, str):
        key = value.lower().rsplit(".", 1)[-1]  # "InterpolationMode.BILINEAR" -> "bilinear"
        return key if key in PIL_RESAMPLING else None
    return None


class WSInferConfigError(ModelCardError):
    """A WSInfer ``config.json`` breaks spec 1.0 (message names the field)."""


# -- config validation -------------------------------------------------------
@lru_cache(maxsize=1)
def _schema() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(_SCHEMA_PATH.read_text(encoding="utf-8"))
    return data


def _where(path: Sequence[Any]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "config"


def _schema_message(error: Any) -> str:
    """Turn a jsonschema error into one sentence naming the field."""
    where = _where(list(error.absolute_path))
    if error.validator == "required":
        missing = [name for name in error.validator_value if name not in error.instance]
        field = missing[0] if missing else error.message
        at = "" if where == "config" else f" in {where}"
        return f"missing required field {field!r}{at}"
    if error.validator == "enum" and where.endswith(".name") and "transform" in where:
        return (
            f"unknown transform {error.instance!r} at {where[: -len('.name')]}; "
            f"WSInfer spec 1.0 knows {', '.join(TRANSFORM_NAMES)}"
        )
    if error.validator == "enum":
        return f"{where} must be one of {error.validator_value}, got {error.instance!r}"
    if error.validator == "additionalProperties":
        return f"{where}: {error.message} (a transform has only 'name' and 'arguments')"
    if error.validator == "uniqueItems":
        return f"{where} repeats a name: {error.instance}"
    return f"{where}: {error.message}"


def _check_transform_arguments(config: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    for i, step in enumerate(config["transform"]):
        name, args = step["name"], step.get("arguments") or {}
        unknown = sorted(set(args) - _TRANSFORM_ARGUMENTS[name])
        if unknown:
            problems.append(
                f"transform[{i}] ({name}) has unknown argument(s) {unknown}; "
                f"allowed: {sorted(_TRANSFORM_ARGUMENTS[name]) or 'none'}"
            )
        if name == "Resize":
            size = args.get("size")
            ok = isinstance(size, int) and not isinstance(size, bool) and size > 0
            if isinstance(size, list) and len(size) in (1, 2):
                ok = all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in size)
            if not ok:
                problems.append(
                    f"transform[{i}] (Resize) needs 'size': a positive int or [height, width], "
                    f"got {size!r}"
                )
            max_size = args.get("max_size")
            if ok and max_size is not None:
                short = size if isinstance(size, int) else size[0]  # type: ignore[index]
                if isinstance(size, list) and len(size) == 2:
                    problems.append(
                        f"transform[{i}] (Resize): max_size needs an int size (shorter side)"
                    )
                elif not isinstance(max_size, int) or max_size <= short:
                    problems.append(
                        f"transform[{i}] (Resize): max_size must be an int greater than "
                        f"size {short}, got {max_size!r}"
                    )
            interp = args.get("interpolation", "bilinear")
            if interpolation_name(interp) is None:
                problems.append(
                    f"transform[{i}] (Resize) has unknown interpolation {interp!r}; "
                    f"use one of {sorted(PIL_RESAMPLING)}"
                )
        elif name == "Normalize":
            for key in ("mean", "std"):
                val = args.get(key)
                if not (
                    isinstance(val, list)
                    and len(val) == 3
                    and all(isinstance(v, (int, float)) and math.isfinite(v) for v in val)
                ):
                    problems.append(
                        f"transform[{i}] (Normalize) needs {key!r}: 3 numbers, got {val!r}"
                    )
            std = args.get("std")
            if isinstance(std, list) and any(isinstance(v, (int, float)) and v <= 0 for v in std):
                problems.append(f"transform[{i}] (Normalize) std must be positive, got {std}")
    names = [step["name"] for step in config["transform"]]
    if "ToTensor" not in names:
        problems.append("transform never converts the image to a tensor (no 'ToTensor' step)")
    elif names.count("ToTensor") > 1:
        problems.append("transform has more than one 'ToTensor' step")
    else:
        first_tensor = names.index("ToTensor")
        if "Normalize" in names[:first_tensor]:
            problems.append("transform applies 'Normalize' before 'ToTensor' (torchvision fails)")
    return problems


def _check_limits(config: Mapping[str, Any]) -> list[str]:
    """Values the schema accepts but no model can use (inf, 200000 px tiles...)."""
    from napari_xai.core.limits import LimitError, check_mpp, check_resize, check_tile_size

    problems: list[str] = []
    checks: list[tuple[Any, Any, str]] = [
        (check_mpp, config["spacing_um_px"], "spacing_um_px"),
        (check_tile_size, config["patch_size_pixels"], "patch_size_pixels"),
    ]
    for i, step in enumerate(config["transform"]):
        if step.get("name") == "Resize":
            args = step.get("arguments") or {}
            size = args.get("size")
            for value in [*(size if isinstance(size, list) else [size]), args.get("max_size")]:
                if isinstance(value, int) and not isinstance(value, bool):
                    checks.append((check_resize, value, f"transform[{i}] (Resize) size"))
    for check, value, what in checks:
        try:
            check(value, what=what)
        except LimitError as exc:
            problems.append(str(exc))
    return problems


def validate_wsinfer_config(config: Any, *, source: str | os.PathLike[str] | None = None) -> None:
    """Check a ``config.json`` dict against WSInfer spec 1.0.

    Validates against the schema published by the WSInfer model zoo
    (vendored as ``wsinfer_config.schema.json``), then the rules WSInfer
    checks in code: ``len(class_names) == num_classes`` and transform
    arguments that torchvision would accept.

    Parameters
    ----------
    config : dict
        Parsed ``config.json``.
    source : path-like, optional
        File the config came from, named in error messages.

    Raises
    ------
    WSInferConfigError
        Naming the first problem field (all problems are listed).
    """
    import jsonschema

    prefix = f"{source}: " if source is not None else ""
    if not isinstance(config, Mapping):
        raise WSInferConfigError(
            f"{prefix}WSInfer config must be a JSON object, got {type(config).__name__}"
        )
    validator = jsonschema.Draft4Validator(_schema())
    errors = sorted(validator.iter_errors(dict(config)), key=lambda e: list(e.absolute_path))
    problems = [_schema_message(e) for e in errors]
    if not problems:
        if len(config["class_names"]) != config["num_classes"]:
            problems.append(
                f"num_classes is {config['num_classes']} but {len(config['class_names'])} "
                f"class_names are given"
            )
        problems += _check_transform_arguments(config)
        problems += _check_limits(config)
    if problems:
        rest = problems[1:]
        more = f" (and {len(rest)} more: {'; '.join(rest)})" if rest else ""
        raise WSInferConfigError(f"{prefix}invalid WSInfer config: {problems[0]}{more}")
