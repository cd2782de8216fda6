"""The result folder of one scored slide: write it atomically, check it, load it.

A scoring run leaves, for one slide, a folder ``<out>/<slide-id>/`` holding::

    tiles.parquet        one row per tile (the tiles table of the contracts)
    heatmaps.zarr/       probabilities/<class>/<level>, saliency/<method>/<class>/<level>
                         each map group carries OME-Zarr-style ``multiscales`` attrs whose
                         scale/translation map its pixels onto level-0 slide pixels
    annotations.geojson  predicted regions (QuPath-style GeoJSON, x/y in level-0 pixels)
    audit.json           shortcut and evaluation figures (when an audit ran)
    manifest.json        slide identity, model card + hashes, parameters, versions,
                         status, timings, slide-level summary

Everything is written into a hidden temporary folder next to the final one and
renamed into place only when complete (:class:`ResultWriter`), so a crash never
leaves a half-written folder that looks complete. :func:`check_result` tells a
batch run whether a folder can be reused (and why not); :func:`load_result` reads one back.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import shutil
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd  # noqa: TID253 - only imported when work runs

from napari_xai.core.atomic import kill_point, naming_path

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "HEADER_BYTES",
    "LIMITS_ATTR",
    "MANIFEST_NAME",
    "HeatmapInfo",
    "Result",
    "ResultProblem",
    "ResultWriter",
    "attribution_limits",
    "check_files",
    "check_result",
    "clean_stale_temporaries",
    "file_checksums",
    "hash_file",
    "hash_params",
    "iter_result_folders",
    "list_heatmaps",
    "load_result",
    "package_versions",
    "read_json_object",
    "read_manifest",
    "slide_identity",
    "update_audit",
    "map_limits",
    "why_no_tiles",
    "write_multiscale",
]

FORMAT_NAME = "napari-xai-result"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
TILES_NAME = "tiles.parquet"
HEATMAPS_NAME = "heatmaps.zarr"
ANNOTATIONS_NAME = "annotations.geojson"
AUDIT_NAME = "audit.json"
#: Bytes hashed to identify a slide (its header and first tiles): cheap on gigapixel files.
HEADER_BYTES = 1 << 20
#: Manifest entry with the size and sha256 of every file it lists (per array for zarr).
CHECKSUMS_KEY = "checksums"
#: Group attribute with a saliency map's contrast limits ``[lo, hi]``, written with the map.
LIMITS_ATTR = "contrast_limits"
_TMP_MARK = ".tmp-"
_OLD_MARK = ".old-"


# --------------------------------------------------------------------------- hashing


def _jsonable(value: Any) -> Any:
    """Turn paths, numpy scalars, tuples and sets into plain JSON values."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted(_jsonable(v) for v in value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _canonical_json(value: Any) -> str:
    return json.dumps(_jsonable(value), sort_keys=True, separators=(",", ":"))


def hash_params(params: Mapping[str, Any]) -> str:
    """Return the sha256 of the canonical JSON of scoring parameters.

    Key order, tuples vs lists and ``Path`` vs ``str`` do not change the hash.
    """
    return hashlib.sha256(_canonical_json(params).encode()).hexdigest()


def hash_file(path: str | os.PathLike[str], *, max_bytes: int | None = None) -> str:
    """Return the sha256 of a file (of its first ``max_bytes`` bytes when given)."""
    digest = hashlib.sha256()
    remaining = max_bytes
    with open(path, "rb") as fh:
        while remaining is None or remaining > 0:
            size = 1 << 20 if remaining is None else min(1 << 20, remaining)
            block = fh.read(size)
            if not block:
                break
            digest.update(block)
            if remaining is not None:
                remaining -= len(block)
    return digest.hexdigest()


def slide_identity(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Identify a slide file cheaply: absolute path, size and sha256 of its first MiB.

    Parameters
    ----------
    path : path-like
        The slide file (for a multi-file format, its main file).

    Returns
    -------
    dict
        ``{"path", "name", "size", "header_sha256", "header_bytes"}``.

    Raises
    ------
    FileNotFoundError
        When the file does not exist.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: slide file not found")
    return {
        "path": str(p.resolve()),
        "name": p.name,
        "size": p.stat().st_size,
        "header_sha256": hash_file(p, max_bytes=HEADER_BYTES),
        "header_bytes": HEADER_BYTES,
    }


def package_versions() -> dict[str, str]:
    """Versions of Python, the platform and the packages that shape a result."""
    from importlib import metadata

    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for dist in (
        "napari-xai",
        "numpy",
        "pandas",
        "zarr",
        "dask",
        "torch",
        "captum",
        "tiffslide",
        "tifffile",
        "scikit-image",
    ):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


# --------------------------------------------------------------------------- heatmaps


def _safe_key(name: str) -> str:
    """Return a zarr-safe group name for a class or method name."""
    key = "".join(c if (c.isalnum() or c in "-_.+") else "_" for c in str(name))
    return key or "_"


def _nanmean_block(
    block: npt.NDArray[np.floating[Any]], axis: Any = None, **kwargs: Any
) -> npt.NDArray[np.float32]:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN blocks stay NaN
        out: npt.NDArray[np.float32] = np.nanmean(block, axis=axis).astype(np.float32)
        return out


def attribution_limits(values: npt.ArrayLike, *, percentile: float = 99.5) -> tuple[float, float]:
    """Contrast limits of an attribution map: ``(min(0, lowest), upper percentile)``.

    Parameters
    ----------
    values : array
        The map (its coarsest level is enough); NaN (not computed) is ignored.
    percentile : float
        Upper limit's percentile of the finite values.

    Returns
    -------
    (float, float)
        ``lo`` is 0, or the lowest value when negative (signed attributions);
        ``hi`` is the percentile, else (a mostly flat map) the largest value,
        else ``lo + 1``; ``(0, 1)`` for a map with no finite value.
    """
    arr = np.asarray(values, dtype=np.float32)
    finite = arr[np.isfinite(arr)]
    if not finite.size:
        return (0.0, 1.0)
    lo = float(min(0.0, finite.min()))
    for hi in (float(np.percentile(finite, percentile)), float(finite.max())):
        if hi > lo:
            return (lo, hi)
    return (lo, lo + 1.0)


def map_limits(
    attrs: Mapping[str, Any], coarsest: Callable[[], npt.ArrayLike]
) -> tuple[float, float]:
    """Return a saliency map's contrast limits: as stored, else from its coarsest level.

    Parameters
    ----------
    attrs : mapping
        The map's group attributes (:data:`LIMITS_ATTR` is written with the map, so
        a viewer shows it without reading it on the GUI thread).
    coarsest : callable
        Reads the coarsest level: called only for a store written before the limits
        were stored.
    """
    stored = attrs.get(LIMITS_ATTR)
    if isinstance(stored, (list, tuple)) and len(stored) == 2:
        return (float(stored[0]), float(stored[1]))
    return attribution_limits(coarsest())


def multiscales_attr(name: str, datasets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the OME-Zarr (0.4) ``multiscales`` attribute of a 2-D map pyramid (one place).

    Parameters
    ----------
    name : str
        The map's name.
    datasets : list of dict
        One ``{"path": ..., "coordinateTransformations": [...]}`` entry per level.
    """
    return [
        {
            "version": "0.4",
            "name": name,
            "axes": [
                {"name": "y", "type": "space", "unit": "pixel"},
                {"name": "x", "type": "space", "unit": "pixel"},
            ],
            "datasets": datasets,
            "type": "mean",
        }
    ]


def write_multiscale(
    group: Any,
    data: Any,
    *,
    scale_rc: tuple[float, float],
    translate_rc: tuple[float, float],
    name: str = "",
    min_size: int = 256,
    chunk_size: int = 512,
    attrs: Mapping[str, Any] | None = None,
) -> int:
    """Write a 2-D map as a multiscale pyramid into a zarr group.

    Level ``k`` is ``data`` mean-pooled (NaN-aware) by ``2**k``; levels stop when
    both sides are at most ``min_size``. Each level is computed from the previous
    one *on disk*, chunk by chunk, so a dask ``data`` is never held whole in memory.

    Parameters
    ----------
    group : zarr.Group
        Group that receives arrays ``"0"``, ``"1"``, ... and the ``multiscales`` attrs.
    data : ndarray or dask array of shape (rows, cols)
        The map at its finest resolution (NaN where undefined, e.g. no tissue).
    scale_rc, translate_rc : tuple of float
        Level-0 slide pixels per map pixel, and world position of the centre of
        map pixel (0, 0), for the finest level.
    name : str
        Name recorded in the ``multiscales`` attrs.
    min_size : int
        Stop adding coarser levels when the map fits in ``min_size`` pixels.
    chunk_size : int
        Zarr chunk side.
    attrs : mapping, optional
        Extra attributes stored on the group (e.g. class name, method).

    Returns
    -------
    int
        Number of levels written.
    """
    import dask.array as da

    lazy = isinstance(data, da.Array)
    arr: Any = data if lazy else np.asarray(data)
    if arr.ndim != 2:
        raise ValueError(f"heatmap {name!r}: expected a 2-D (rows, cols) map, got {arr.shape}")
    arr = arr.astype(np.float32)
    datasets = []
    level = 0
    sr, sc = (float(scale_rc[0]), float(scale_rc[1]))
    tr, tc = (float(translate_rc[0]), float(translate_rc[1]))
    while True:
        chunks = (min(chunk_size, max(1, arr.shape[0])), min(chunk_size, max(1, arr.shape[1])))
        target = group.create_array(
            str(level),
            shape=arr.shape,
            chunks=chunks,
            dtype="float32",
            fill_value=np.nan,
            overwrite=True,
        )
        if lazy:  # chunk by chunk: never the whole map in memory
            da.store(arr.rechunk(chunks), target, lock=False, compute=True)
        else:
            target[...] = arr
        f = 2**level
        datasets.append(
            {
                "path": str(level),
                "coordinateTransformations": [
                    {"type": "scale", "scale": [sr * f, sc * f]},
                    # centre of a coarse pixel = mean of the centres of the fine ones it pools
                    {
                        "type": "translation",
                        "translation": [tr + sr * (f - 1) / 2, tc + sc * (f - 1) / 2],
                    },
                ],
            }
        )
        if max(arr.shape) <= min_size or min(arr.shape) < 2:
            break
        if lazy:
            prev = da.from_zarr(target)
            arr = da.coarsen(_nanmean_block, prev, {0: 2, 1: 2}, trim_excess=True)
        else:
            r2, c2 = arr.shape[0] // 2 * 2, arr.shape[1] // 2 * 2
            blocks = arr[:r2, :c2].reshape(r2 // 2, 2, c2 // 2, 2)
            arr = _nanmean_block(blocks, axis=(1, 3))
        level += 1
    group.attrs.update(
        {
            **({} if attrs is None else _jsonable(dict(attrs))),
            "multiscales": multiscales_attr(name, datasets),
        }
    )
    return level + 1


@dataclass(frozen=True)
class HeatmapInfo:
    """One multiscale map stored in ``heatmaps.zarr``.

    Attributes
    ----------
    key : str
        Group path, e.g. ``"probabilities/tumour"`` or ``"saliency/saliency/tumour"``.
    kind : str
        ``"probabilities"`` or ``"saliency"``.
    name : str
        Class name (and method for saliency, as ``"<method>/<class>"``).
    paths : tuple of str
        Array paths of the levels, finest first.
    scales : tuple of (float, float)
        Level-0 pixels per map pixel, per level.
    translates : tuple of (float, float)
        World position of the centre of pixel (0, 0), per level.
    attrs : dict
        Other attributes of the group.
    """

    key: str
    kind: str
    name: str
    paths: tuple[str, ...]
    scales: tuple[tuple[float, float], ...]
    translates: tuple[tuple[float, float], ...]
    attrs: dict[str, Any] = field(default_factory=dict)


def list_heatmaps(zarr_path: str | os.PathLike[str]) -> list[HeatmapInfo]:
    """List every multiscale map in a ``heatmaps.zarr`` store (empty when absent)."""
    import zarr

    p = Path(zarr_path)
    if not p.exists():
        return []
    root = zarr.open_group(str(p), mode="r")
    found: list[HeatmapInfo] = []
    for key, member in root.members(max_depth=None):
        if not isinstance(member, zarr.Group):
            continue
        attrs: dict[str, Any] = dict(member.attrs.asdict())
        ms: Any = attrs.get("multiscales")
        if not ms:
            continue
        datasets = ms[0]["datasets"]
        scales, translates = [], []
        for ds in datasets:
            tf = {t["type"]: t for t in ds.get("coordinateTransformations", [])}
            s = tf.get("scale", {}).get("scale", [1.0, 1.0])
            t = tf.get("translation", {}).get("translation", [0.0, 0.0])
            scales.append((float(s[0]), float(s[1])))
            translates.append((float(t[0]), float(t[1])))
        kind = key.split("/", 1)[0]
        for ds in datasets:
            ds_path = ds.get("path")
            if (
                not isinstance(ds_path, str)
                or not ds_path
                or ds_path.startswith("/")
                or (".." in ds_path.split("/"))
            ):
                raise ValueError(
                    f"{p}: map {key!r} names a level path {ds_path!r} outside its group"
                )
        found.append(
            HeatmapInfo(
                key=key,
                kind=kind,
                name=str(ms[0].get("name") or key.split("/", 1)[-1]),
                paths=tuple(f"{key}/{ds['path']}" for ds in datasets),
                scales=tuple(scales),
                translates=tuple(translates),
                attrs={k: v for k, v in attrs.items() if k != "multiscales"},
            )
        )
    return sorted(found, key=lambda h: h.key)


# --------------------------------------------------------------------------- integrity


def _is_zarr_array(folder: Path) -> bool:
    """Tell whether ``folder`` holds a zarr array (v3 ``zarr.json`` or v2 ``.zarray``)."""
    if (folder / ".zarray").is_file():
        return True
    meta = folder / "zarr.json"
    if not meta.is_file():
        return False
    try:
        return bool(json.loads(meta.read_text(encoding="utf-8")).get("node_type") == "array")
    except (OSError, ValueError, AttributeError):
        return False


def _zarr_listing(store: Path) -> dict[str, list[tuple[str, Path]]]:
    """Group the files of a zarr store by array (``""``: group metadata), iteratively."""
    arrays: dict[str, list[tuple[str, Path]]] = {"": []}
    pending = [store]
    while pending:
        folder = pending.pop()
        rel = folder.relative_to(store).as_posix()
        if folder != store and _is_zarr_array(folder):
            files = arrays.setdefault(rel, [])
            for sub, dirs, names in os.walk(folder):
                dirs.sort()
                for n in names:
                    f = Path(sub) / n
                    files.append((f.relative_to(folder).as_posix(), f))
            continue
        for entry in sorted(folder.iterdir()):
            if entry.is_dir() and not entry.is_symlink():
                pending.append(entry)
            else:
                arrays[""].append((entry.relative_to(store).as_posix(), entry))
    return arrays


def _file_entry(path: Path, *, with_hash: bool) -> dict[str, Any]:
    if path.is_symlink():  # a result folder holds plain files; a link is never ours
        return {"link": True}
    entry: dict[str, Any] = {"size": path.stat().st_size}
    if with_hash:
        entry["sha256"] = hash_file(path)
    return entry


def file_checksums(
    root: str | os.PathLike[str], name: str, *, with_hash: bool = True
) -> dict[str, Any]:
    """Size and sha256 of one listed file, or per array of a zarr store.

    Parameters
    ----------
    root : path-like
        The result folder.
    name : str
        The listed file (``tiles.parquet``) or store (``heatmaps.zarr``) inside it.
    with_hash : bool
        Hash the bytes (else sizes and, for a store, the chunk listing only).

    Returns
    -------
    dict
        ``{"size", "sha256"}`` for a file; for a store ``{"arrays": {key: {"files",
        "size", "listing_sha256", "sha256"}}}``, where ``listing_sha256`` covers the
        chunk names and sizes and ``sha256`` their bytes (key ``""``: group metadata).
    """
    path = Path(root) / name
    if path.is_symlink() or not path.is_dir():
        return _file_entry(path, with_hash=with_hash)
    arrays: dict[str, Any] = {}
    for key, files in sorted(_zarr_listing(path).items()):
        listing = hashlib.sha256()
        content = hashlib.sha256()
        size = 0
        for rel, f in sorted(files):
            entry = _file_entry(f, with_hash=with_hash)
            size += int(entry.get("size", 0))
            listing.update(f"{rel}\t{entry.get('size', 'link')}\n".encode())
            if with_hash:
                content.update(f"{rel}\t{entry.get('sha256', 'link')}\n".encode())
        arrays[key] = {"files": len(files), "size": size, "listing_sha256": listing.hexdigest()}
        if with_hash:
            arrays[key]["sha256"] = content.hexdigest()
    return {"arrays": arrays}


def _differs(recorded: Any, current: Mapping[str, Any], *, verify: bool) -> str | None:
    """Describe how a file's current checksums differ from the recorded ones."""
    if not isinstance(recorded, Mapping):
        return "no checksum recorded"
    if "arrays" in current:
        rec_arrays = recorded.get("arrays")
        if not isinstance(rec_arrays, Mapping):
            return "recorded as a file, found a folder"
        for key in sorted(set(rec_arrays) | set(current["arrays"])):
            label = f"array {key!r}" if key else "group metadata"
            rec, cur = rec_arrays.get(key), current["arrays"].get(key)
            if not isinstance(rec, Mapping):
                return f"{label} is not in the manifest"
            if cur is None:
                return f"{label} is missing"
            if (rec.get("files"), rec.get("size")) != (cur["files"], cur["size"]):
                return (
                    f"{label} has {cur['files']} chunk files / {cur['size']} bytes, "
                    f"the manifest says {rec.get('files')} / {rec.get('size')}"
                )
            if rec.get("listing_sha256") != cur["listing_sha256"]:
                return f"{label}: chunk files differ from the manifest's listing"
            if verify and rec.get("sha256") != cur.get("sha256"):
                return f"{label}: chunk bytes differ from the manifest's sha256"
        return None
    if current.get("link"):
        return "is a link"
    if recorded.get("size") != current.get("size"):
        return f"has {current.get('size')} bytes, the manifest says {recorded.get('size')}"
    if verify and recorded.get("sha256") != current.get("sha256"):
        return "bytes differ from the manifest's sha256"
    return None


def check_files(
    folder: str | os.PathLike[str], manifest: Mapping[str, Any], *, verify: bool = False
) -> str | None:
    """Check the files a manifest lists against its recorded sizes and hashes.

    Sizes (and, for zarr stores, the chunk listing: names and sizes) are always
    checked; bytes are hashed only with ``verify``.

    Parameters
    ----------
    folder : path-like
        The result folder.
    manifest : mapping
        Its manifest (as :func:`read_manifest` returns it).
    verify : bool
        Also compare sha256 of every file and chunk.

    Returns
    -------
    str or None
        A one-line reason naming the file when something is missing or differs;
        None when every listed file matches.
    """
    root = Path(folder)
    sums = manifest.get(CHECKSUMS_KEY)
    if not isinstance(sums, Mapping):
        return f"{root / MANIFEST_NAME}: records no checksums (written by an older version)"
    for name in manifest.get("files", {}).values():
        path = root / str(name)
        if not (path.exists() or path.is_symlink()):
            return f"{path}: listed in the manifest but missing"
        try:
            current = file_checksums(root, str(name), with_hash=verify)
        except OSError as exc:
            return f"{path}: cannot be read ({exc.strerror or exc})"
        why = _differs(sums.get(str(name)), current, verify=verify)
        if why is not None:
            return f"{path}: {why}"
    return None


# --------------------------------------------------------------------------- writer


def clean_stale_temporaries(out: str | os.PathLike[str], *, name: str | None = None) -> int:
    """Remove temporary and superseded folders a killed run left in ``out``.

    A superseded folder whose result folder is missing (a kill between the two
    renames of :meth:`ResultWriter.commit`) is put back instead: it is the last
    complete result.

    Parameters
    ----------
    out : path-like
        Folder holding result folders.
    name : str, optional
        Only clean leftovers of this result folder name.

    Returns
    -------
    int
        Number of folders (and, without ``name``, temporary files) removed.
    """
    from napari_xai.core.atomic import clean_temporaries

    root = Path(out)
    if not root.is_dir():
        return 0
    # files a killed atomic write left (e.g. ``.cohort_summary.parquet.<id>.tmp``)
    removed = clean_temporaries(root) if name is None else 0
    for p in list(root.iterdir()):
        if not (p.is_dir() and p.name.startswith(".")):
            continue
        for mark in (_TMP_MARK, _OLD_MARK):
            if mark in p.name:
                base = p.name[1:].rsplit(mark, 1)[0]
                if name is None or base == name:
                    if mark == _OLD_MARK and base and not (root / base).exists():
                        os.replace(p, root / base)
                    else:
                        shutil.rmtree(p, ignore_errors=True)
                    removed += 1
                break
    return removed


def _fsync_dir(path: Path) -> None:
    from napari_xai.core.atomic import fsync_path

    fsync_path(path)


def _write_json(path: Path, value: Any) -> None:
    with naming_path(path), open(path, "w", encoding="utf-8") as fh:
        json.dump(_jsonable(value), fh, indent=2, sort_keys=False, allow_nan=False)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())


class ResultWriter:
    """Write one result folder atomically.

    Files go to a hidden temporary sibling folder (``.<name>.tmp-<id>``);
    :meth:`commit` writes ``manifest.json`` last and renames the folder into
    place, replacing an older result. Leaving the ``with`` block with an
    exception, or without committing, deletes the temporary folder.

    Parameters
    ----------
    folder : path-like
        Final result folder, e.g. ``<out>/<slide-id>``.

    Examples
    --------
    >>> with ResultWriter(out / "slide-1") as w:          # doctest: +SKIP
    ...     w.write_tiles(tiles)
    ...     w.write_heatmap("probabilities", "tumour", prob, scale_rc=(224, 224),
    ...                     translate_rc=(111.5, 111.5))
    ...     w.commit(manifest)
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder).absolute()
        self.tmp = self.folder.parent / f".{self.folder.name}{_TMP_MARK}{uuid.uuid4().hex[:12]}"
        self.committed = False
        self._files: dict[str, str] = {}
        self._heatmaps: list[str] = []

    def __enter__(self) -> ResultWriter:
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir()
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.committed:
            self.abort()

    @property
    def path(self) -> Path:
        """The temporary folder being written (other writers may add files here)."""
        return self.tmp

    def abort(self) -> None:
        """Delete the temporary folder; the previous result (if any) stays."""
        shutil.rmtree(self.tmp, ignore_errors=True)

    def adopt(
        self,
        folder: str | os.PathLike[str],
        manifest: Mapping[str, Any],
        *,
        drop: frozenset[str] | set[str] = frozenset(),
    ) -> None:
        """Copy an existing result's files (and maps) into this one, leaving out ``drop`` kinds.

        Parameters
        ----------
        folder : path-like
            The result folder being replaced.
        manifest : mapping
            Its manifest (its ``files`` and ``heatmaps``).
        drop : set of str
            File kinds not copied (e.g. ``{"audit"}`` when writing it anew).
        """
        folder = Path(folder)
        files = dict(manifest.get("files", {}))
        for kind, name in files.items():
            src = folder / name
            if kind in drop or kind == "heatmaps" or not src.exists():
                continue
            if src.is_dir():
                shutil.copytree(src, self.tmp / name, dirs_exist_ok=True)
            else:
                shutil.copy2(src, self.tmp / name)
            self.add_file(kind, name)
        if "heatmaps" in files and (folder / files["heatmaps"]).is_dir():
            shutil.copytree(folder / files["heatmaps"], self.tmp / files["heatmaps"],
                            dirs_exist_ok=True)  # fmt: skip
            for key in manifest.get("heatmaps", []):
                self.add_heatmap(str(key))

    def write_tiles(self, tiles: pd.DataFrame) -> Path:
        """Write the tiles table to ``tiles.parquet`` (``DataFrame.attrs`` kept)."""
        df = tiles.copy()
        df.attrs = _jsonable(dict(tiles.attrs))
        target = self.tmp / TILES_NAME
        with naming_path(self.folder / TILES_NAME):
            df.to_parquet(target, index=False)
        self._files["tiles"] = TILES_NAME
        return target

    def write_heatmap(
        self,
        kind: str,
        name: str,
        data: Any,
        *,
        scale_rc: tuple[float, float],
        translate_rc: tuple[float, float],
        method: str | None = None,
        min_size: int = 256,
    ) -> str:
        """Write one map into ``heatmaps.zarr``.

        Parameters
        ----------
        kind : {"probabilities", "saliency"}
            Family of the map.
        name : str
            Class name the map is about.
        data : ndarray or dask array of shape (rows, cols)
            The map (float; NaN where undefined).
        scale_rc, translate_rc : tuple of float
            Level-0 pixels per map pixel and world centre of map pixel (0, 0).
        method : str, optional
            Attribution method (required for ``kind="saliency"``).
        min_size : int
            Coarsest level fits in this many pixels.

        Returns
        -------
        str
            The group path inside the store.
        """
        import zarr

        if kind not in ("probabilities", "saliency"):
            raise ValueError(f"heatmap kind must be 'probabilities' or 'saliency', not {kind!r}")
        if kind == "saliency" and not method:
            raise ValueError("a saliency map needs its attribution method")
        parts = [kind] + ([_safe_key(method)] if method else []) + [_safe_key(name)]
        key = "/".join(parts)
        label = f"{method}/{name}" if method else name
        with naming_path(self.folder / HEATMAPS_NAME / key):
            root = zarr.open_group(str(self.tmp / HEATMAPS_NAME), mode="a")
            grp = root.require_group(key)
            n_levels = write_multiscale(
                grp,
                data,
                scale_rc=scale_rc,
                translate_rc=translate_rc,
                name=label,
                min_size=min_size,
                attrs={
                    "kind": kind,
                    "class_name": name,
                    **({"method": method} if method else {}),
                },
            )
            if kind == "saliency":  # shown without reading the map (on the GUI thread)
                coarsest: Any = grp[str(n_levels - 1)]
                grp.attrs[LIMITS_ATTR] = list(attribution_limits(coarsest[...]))
        self._files["heatmaps"] = HEATMAPS_NAME
        self._heatmaps.append(key)
        return key

    def add_heatmap(self, key: str) -> None:
        """Record a map another writer stored in ``heatmaps.zarr`` under ``key``."""
        self._files["heatmaps"] = HEATMAPS_NAME
        if key not in self._heatmaps:
            self._heatmaps.append(key)

    def remove_heatmap(self, key: str) -> None:
        """Forget a map recorded under ``key`` (its files are the caller's to remove)."""
        if key in self._heatmaps:
            self._heatmaps.remove(key)

    def add_file(self, kind: str, name: str) -> None:
        """Record a file another writer put in :attr:`path` (listed in the manifest)."""
        if not (self.tmp / name).exists():
            raise FileNotFoundError(f"{self.tmp / name}: no such file to record")
        self._files[kind] = name

    def write_annotations(self, geojson: Mapping[str, Any]) -> Path:
        """Write a GeoJSON FeatureCollection (x/y in level-0 pixels)."""
        target = self.tmp / ANNOTATIONS_NAME
        _write_json(target, geojson)
        self._files["annotations"] = ANNOTATIONS_NAME
        return target

    def write_audit(self, audit: Mapping[str, Any]) -> Path:
        """Write shortcut-audit and evaluation figures to ``audit.json``."""
        target = self.tmp / AUDIT_NAME
        _write_json(target, audit)
        self._files["audit"] = AUDIT_NAME
        return target

    def commit(self, manifest: Mapping[str, Any]) -> Path:
        """Write ``manifest.json`` (status ``complete``) and move the folder into place.

        Parameters
        ----------
        manifest : mapping
            Manifest body (see :func:`napari_xai.core.pipeline.run_slide`); the
            ``format``, ``status``, ``files``, ``heatmaps`` and ``written``
            entries are filled in here.

        Returns
        -------
        Path
            The final result folder.
        """
        body = dict(manifest)
        body.update(
            {
                "format": FORMAT_NAME,
                "format_version": FORMAT_VERSION,
                "status": "complete",
                "files": dict(self._files),
                "heatmaps": list(self._heatmaps),
                "written": _now(),
                CHECKSUMS_KEY: {
                    name: file_checksums(self.tmp, name)
                    for name in sorted(set(self._files.values()))
                },
            }
        )
        _write_json(self.tmp / MANIFEST_NAME, body)
        _fsync_dir(self.tmp)
        kill_point(f"commit {self.folder.name}")
        old: Path | None = None
        if self.folder.exists():
            old = self.folder.parent / f".{self.folder.name}{_OLD_MARK}{uuid.uuid4().hex[:12]}"
            os.replace(self.folder, old)
            kill_point(f"commit swap {self.folder.name}")
        os.replace(self.tmp, self.folder)
        _fsync_dir(self.folder.parent)
        self.committed = True
        if old is not None:
            kill_point(f"commit drop old {self.folder.name}")
            shutil.rmtree(old, ignore_errors=True)
        return self.folder


# --------------------------------------------------------------------------- reading


def read_manifest(folder: str | os.PathLike[str]) -> dict[str, Any]:
    """Read ``manifest.json`` of a result folder (or the manifest file itself).

    Raises
    ------
    FileNotFoundError
        When there is no manifest.
    ValueError
        When it is not valid JSON or not a napari-xai result manifest.
    """
    p = Path(folder)
    path = p if p.name == MANIFEST_NAME or p.is_file() else p / MANIFEST_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no result manifest")
    try:
        body = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: manifest is not valid JSON ({exc})") from exc
    if not isinstance(body, dict) or body.get("format") != FORMAT_NAME:
        raise ValueError(f"{path}: not a napari-xai result manifest")
    _check_manifest_files(body, path)
    return body


def read_json_object(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a JSON file that holds an object (``{}`` without the file, or for another value).

    Raises
    ------
    ValueError
        When the file is not valid JSON (the message names it).
    """
    path = Path(path)
    if not path.is_file():
        return {}
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(f"{path}: exists but is not valid JSON ({exc})") from None
    return loaded if isinstance(loaded, dict) else {}


def update_audit(folder: str | os.PathLike[str], key: str, value: Any) -> Path:
    """Set ``key`` of a result folder's ``audit.json`` as the folder's own writer does.

    The folder is written again through a :class:`ResultWriter`: its other files
    are kept, ``audit.json`` is listed in the manifest with its new checksum, and
    the folder is replaced atomically. (Written beside the manifest instead, the
    file would be unlisted, dropped by the next run, or, when listed, disagree
    with its checksum, and the next run would find the folder damaged.)

    Parameters
    ----------
    folder : path-like
        A result folder (with ``manifest.json``).
    key : str
        Top-level key of ``audit.json`` (e.g. ``"evaluation"``); other keys are kept.
    value : object
        JSON-able.

    Returns
    -------
    Path
        The folder's ``audit.json``.
    """
    folder = Path(folder)
    old = read_manifest(folder)
    doc = read_json_object(folder / AUDIT_NAME)  # listed, or left by an older version: kept
    doc[key] = value
    with ResultWriter(folder) as writer:
        writer.adopt(folder, old, drop={"audit"})
        writer.write_audit(doc)
        return writer.commit(old) / AUDIT_NAME


def why_no_tiles(manifest: Mapping[str, Any]) -> str:
    """Say why a result holds no tile: the slide against one tile, or the tissue found.

    Parameters
    ----------
    manifest : mapping
        The result's manifest: its ``params`` (``min_tissue``, the tissue fraction a
        tile needed; ``tissue`` False: every tile kept), ``slide``, ``grid`` and ``fit``.

    Returns
    -------
    str
        A clause for "0 tiles scored: ...", e.g. "the slide (16 x 16 px) is too
        small: a tile needs 50% of 128 x 128 px (level 0) in tissue".
    """
    rows, cols = (int(v) for v in manifest.get("slide", {}).get("shape_rc", (0, 0)))
    tile0 = int(manifest.get("grid", {}).get("tile_size0", 0))
    params = manifest.get("params", {})
    min_tissue = float(params.get("min_tissue", 0.0)) if params.get("tissue", True) else None
    if min_tissue is None:
        return f"the tile grid of the slide ({cols:,} x {rows:,} px) is empty"
    if tile0 and rows * cols < min_tissue * tile0 * tile0:  # all tissue would still be too little
        return (
            f"the slide ({cols:,} x {rows:,} px) is too small: a tile needs {min_tissue:.0%} of "
            f"{tile0:,} x {tile0:,} px (level 0) in tissue"
        )
    fit = manifest.get("fit", {})
    return (
        f"tissue detection ({fit.get('slide_modality')}, {fit.get('slide_stain')}) found "
        f"{fit.get('slide_tissue_fraction', 0.0):.2%} tissue and no tile reached "
        f"min tissue {min_tissue:g}"
    )


def _inside(root: Path, name: Any, *, manifest: Path, what: str) -> None:
    """Refuse a path from a manifest that is absolute or leaves the result folder."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise ValueError(f"{manifest}: {what} must be a relative file name, got {name!r}")
    pure = Path(name)
    if (
        pure.is_absolute()
        or name.startswith(("/", "\\"))
        or ".." in pure.parts
        or (len(name) > 1 and name[1] == ":")
    ):
        raise ValueError(
            f"{manifest}: {what} {name!r} points outside the result folder "
            "(absolute or '..' paths are refused)"
        )
    target = (root / pure).resolve()
    if not target.is_relative_to(root.resolve()):
        raise ValueError(
            f"{manifest}: {what} {name!r} resolves outside the result folder (a link?)"
        )


def _check_manifest_files(body: Mapping[str, Any], manifest: Path) -> None:
    """Every ``files`` entry of a manifest must name a file inside its folder."""
    files = body.get("files", {})
    if not isinstance(files, Mapping):
        raise ValueError(f"{manifest}: 'files' must be an object, got {type(files).__name__}")
    for kind, name in files.items():
        _inside(manifest.parent, name, manifest=manifest, what=f"files[{kind!r}]")


@dataclass(frozen=True)
class ResultProblem:
    """Why a result folder cannot be reused.

    Attributes
    ----------
    kind : str
        ``"missing"`` (no manifest), ``"invalid"`` (unreadable or hostile
        manifest), ``"incomplete"``, ``"stale"`` (other parameters, model or
        slide) or ``"damaged"`` (a listed file is missing or differs from its
        recorded size or sha256).
    message : str
        One line naming the folder or file and the problem.
    """

    kind: str
    message: str

    def __str__(self) -> str:
        return self.message


def check_result(
    folder: str | os.PathLike[str],
    params: Mapping[str, Any],
    model_hash: str,
    *,
    slide_path: str | os.PathLike[str] | None = None,
    verify: bool = False,
) -> ResultProblem | None:
    """Tell why a result folder cannot be reused (None when it can).

    A folder can be reused when its manifest says it is complete, its
    parameters hash to the same value as ``params``, its model hash equals
    ``model_hash``, (when ``slide_path`` is given) the slide file still has the
    same size and header hash, and every file it lists has the recorded size
    (zarr stores: the recorded chunk listing) and, with ``verify``, the
    recorded sha256 (:func:`check_files`).

    Parameters
    ----------
    folder : path-like
        The result folder.
    params : mapping
        Scoring parameters of the current run.
    model_hash : str
        sha256 of the current model.
    slide_path : path-like, optional
        The slide the folder should describe.
    verify : bool
        Hash every listed file and chunk (slower; sizes are always checked).

    Returns
    -------
    ResultProblem or None
        What is wrong, in one line naming the folder or file; None when the
        folder can be reused.
    """
    root = Path(folder)
    if root.name == MANIFEST_NAME:
        root = root.parent
    try:
        manifest = read_manifest(root)
    except FileNotFoundError as exc:
        return ResultProblem("missing", str(exc))
    except (OSError, ValueError) as exc:
        return ResultProblem("invalid", str(exc))
    if manifest.get("status") != "complete":
        return ResultProblem(
            "incomplete", f"{root}: not complete (status {manifest.get('status')!r})"
        )
    if manifest.get("params_sha256") != hash_params(params):
        return ResultProblem("stale", f"{root}: scored with other parameters")
    model = manifest.get("model", {})
    if not isinstance(model, Mapping) or model.get("sha256") != model_hash:
        return ResultProblem("stale", f"{root}: scored with another model")
    if slide_path is not None:
        recorded = manifest.get("slide", {})
        try:
            current = slide_identity(slide_path)
        except OSError as exc:
            return ResultProblem("stale", str(exc))
        if not isinstance(recorded, Mapping) or (
            recorded.get("size"),
            recorded.get("header_sha256"),
        ) != (current["size"], current["header_sha256"]):
            return ResultProblem("stale", f"{root}: the slide {slide_path} changed since")
    why = check_files(root, manifest, verify=verify)
    return None if why is None else ResultProblem("damaged", why)


@dataclass
class Result:
    """A result folder read back.

    Attributes
    ----------
    folder : Path
        The result folder.
    manifest : dict
        Its manifest.
    tiles : pandas.DataFrame
        The tiles table (``attrs`` restored); empty when the folder has none.
    heatmaps : list of HeatmapInfo
        Maps stored in ``heatmaps.zarr``.
    annotations : dict or None
        The GeoJSON FeatureCollection.
    audit : dict or None
        Audit figures.
    """

    folder: Path
    manifest: dict[str, Any]
    tiles: pd.DataFrame
    heatmaps: list[HeatmapInfo]
    annotations: dict[str, Any] | None
    audit: dict[str, Any] | None

    @property
    def slide_path(self) -> Path | None:
        """Path of the scored slide (as recorded; may have moved since)."""
        path = self.manifest.get("slide", {}).get("path")
        return Path(path) if path else None

    @property
    def slide_id(self) -> str:
        """Name of the result (the folder name)."""
        return str(self.manifest.get("slide_id") or self.folder.name)

    @property
    def class_names(self) -> tuple[str, ...]:
        """Class names of the model."""
        card = self.manifest.get("model", {}).get("card", {})
        names = card.get("class_names") or self.tiles.attrs.get("class_names") or ()
        return tuple(str(n) for n in names)

    @property
    def summary(self) -> dict[str, Any]:
        """Slide-level scores recorded at scoring time."""
        return dict(self.manifest.get("summary", {}))

    def heatmap_levels(self, key: str) -> list[Any]:
        """Levels of one map as lazy dask arrays, finest first."""
        import uuid

        import dask.array as da
        import zarr

        info = next((h for h in self.heatmaps if h.key == key), None)
        if info is None:
            raise KeyError(f"{self.folder}: no heatmap {key!r}")
        root = zarr.open_group(str(self.folder / HEATMAPS_NAME), mode="r")
        # fresh task names: a folder re-written in place must not be served from
        # napari's dask chunk cache under the names of the arrays read before
        token = uuid.uuid4().hex
        return [
            da.from_zarr(root[p], name=f"napari-xai-result-{token}-{k}")
            for k, p in enumerate(info.paths)
        ]


def load_result(folder: str | os.PathLike[str]) -> Result:
    """Read a result folder (or its ``manifest.json``).

    Heatmaps stay on disk (lazy); the tiles table and JSON files are read.

    Raises
    ------
    FileNotFoundError, ValueError
        When the folder has no valid manifest or the manifest says it is incomplete.
    """
    p = Path(folder)
    root = p.parent if p.name == MANIFEST_NAME and p.is_file() else p
    manifest = read_manifest(root)
    if manifest.get("status") != "complete":
        raise ValueError(f"{root}: result is not complete (status {manifest.get('status')!r})")
    files = manifest.get("files", {})
    tiles_path = root / files.get("tiles", TILES_NAME)
    if tiles_path.is_file():
        tiles = pd.read_parquet(tiles_path)  # pandas restores DataFrame.attrs
    else:
        tiles = pd.DataFrame()
    annotations = None
    ann_path = root / files.get("annotations", ANNOTATIONS_NAME)
    if ann_path.is_file():
        annotations = json.loads(ann_path.read_text(encoding="utf-8"))
    audit = None
    audit_path = root / files.get("audit", AUDIT_NAME)
    if audit_path.is_file():
        audit = json.loads(audit_path.read_text(encoding="utf-8"))
    return Result(
        folder=root,
        manifest=manifest,
        tiles=tiles,
        heatmaps=list_heatmaps(root / HEATMAPS_NAME),
        annotations=annotations,
        audit=audit,
    )


def iter_result_folders(out: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield the complete result folders directly under ``out`` (sorted)."""
    root = Path(out)
    if not root.is_dir():
        return
    for p in sorted(root.iterdir()):
        if p.is_dir() and not p.name.startswith(".") and (p / MANIFEST_NAME).is_file():
            yield p


def elapsed(start: float) -> float:
    """Seconds since ``start`` (a :func:`time.perf_counter` value), rounded to ms."""
    return round(time.perf_counter() - start, 3)
