"""Lazy access to whole-slide images: tiffslide → zarr → dask.

This module is the one place where tiffslide's ``(x, y)`` / ``(width, height)``
meet numpy's ``(row, col)``: everything it returns is in rows and columns,
and locations are always level-0 pixels (``loc_rc``).
"""

from __future__ import annotations

import contextlib
import logging
import math
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import zarr

from napari_xai.core.limits import LimitError, check_mpp, check_slide_shape
from napari_xai.core.naming import SLIDE_SUFFIXES

if TYPE_CHECKING:
    import dask.array as da
    import tiffslide

__all__ = ["Slide", "SlideError", "SlideInfo", "open_slide", "opened_slide", "SLIDE_SUFFIXES"]

# A plausible whole-slide pixel size. TIFF files without real calibration often
# carry 72 or 96 dpi (352.8 / 264.6 µm per pixel): that is a default, not a
# measurement, and must not be reported as the slide's mpp.
_MPP_RANGE = (0.01, 50.0)
# One decoded chunk larger than this means a non-tiled (strip) image whose
# regions cannot be read without decoding most of the file.
_MAX_CHUNK_BYTES = 64 * 2**20
# Dask chunks smaller than this (NDPI stores 8-row strips) are merged; tiles stay as stored.
_MIN_DASK_CHUNK = 256


def _block_mean(img: npt.NDArray[np.uint8], factor: int) -> npt.NDArray[np.uint8]:
    """Mean of each ``factor`` x ``factor`` block of a uint8 image, rounded down.

    Equal to ``img.reshape(r, f, c, f, -1).mean(axis=(1, 3)).astype(np.uint8)``
    (sums of integers are exact, and ``floor(sum / n) == sum // n``), five times
    faster: one integer add per block offset, no float64 image.
    """
    rows, cols = img.shape[0] // factor, img.shape[1] // factor
    acc = np.zeros((rows, cols, *img.shape[2:]), np.uint16 if factor <= 16 else np.uint32)
    for i in range(factor):
        for j in range(factor):
            acc += img[i : rows * factor : factor, j : cols * factor : factor]
    return np.asarray(acc // (factor * factor), dtype=np.uint8)


class SlideError(ValueError):
    """A file cannot be opened or read as a whole-slide image.

    The message always starts with the file's path and then says what is wrong.
    """

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


@dataclass(frozen=True)
class SlideInfo:
    """What is known about a slide, in rows and columns.

    Attributes
    ----------
    path : Path
        The slide file.
    vendor : str or None
        Scanner format as detected by tiffslide (``"aperio"``, ``"hamamatsu"``…).
    shape_rc : tuple of int
        Level-0 size as (rows, cols).
    level_shapes_rc : tuple of tuple of int
        Size of every pyramid level as (rows, cols).
    level_downsamples : tuple of float
        Level-0 rows over level rows, e.g. ``(1.0, 4.0, 16.0)``; may be odd (4.016).
    mpp : float or None
        Microns per pixel at level 0 (mean of x and y), or None when the file
        does not say (never invented).
    mpp_source : str
        Where mpp came from: ``"file"``, ``"user"`` or ``"unknown: <why>"``.
    magnification : float or None
        Objective power, when the file says.
    dtype : str
        Pixel dtype of the stored image.
    n_channels : int
        Channels per pixel (3 for RGB).
    is_rgb : bool
        True for brightfield RGB(A) slides.
    channel_axis : int or None
        Axis of the channels in each level array when they are not RGB samples.
    properties : dict
        Raw tiffslide properties (for the manifest and the layer metadata).
    """

    path: Path
    vendor: str | None
    shape_rc: tuple[int, int]
    level_shapes_rc: tuple[tuple[int, int], ...]
    level_downsamples: tuple[float, ...]
    mpp: float | None
    mpp_source: str
    magnification: float | None
    dtype: str
    n_channels: int
    is_rgb: bool
    channel_axis: int | None = None
    properties: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_levels(self) -> int:
        """Number of pyramid levels."""
        return len(self.level_shapes_rc)


def _sniff(path: Path) -> None:
    """Reject what is clearly not a TIFF slide, with a message that says what it is."""
    if not path.exists():
        raise SlideError(path, "file not found")
    if path.is_dir():
        raise SlideError(path, "is a folder, not a slide file")
    size = path.stat().st_size
    if size == 0:
        raise SlideError(path, "empty file (0 bytes)")
    with path.open("rb") as fh:
        head = fh.read(132)
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return
    if head[128:132] == b"DICM" or path.suffix.lower() == ".dcm":
        raise SlideError(
            path,
            "DICOM whole-slide images are not supported; convert the slide to a tiled "
            "pyramidal TIFF / OME-TIFF (e.g. with QuPath or bfconvert)",
        )
    kinds = {
        b"\x89PNG": "a PNG image",
        b"\xff\xd8\xff": "a JPEG image",
        b"GIF8": "a GIF image",
        b"BM": "a BMP image",
    }
    for magic, kind in kinds.items():
        if head.startswith(magic):
            raise SlideError(path, f"is {kind}, not a whole-slide TIFF (renamed file?)")
    raise SlideError(path, f"not a TIFF-based slide (file starts with {head[:8]!r})")


@contextlib.contextmanager
def _quiet_tifffile() -> Iterator[None]:
    """Keep tifffile's own log lines (about the damage we report) off stderr."""
    logger = logging.getLogger("tifffile")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


def _check_truncated(path: Path, tf: Any) -> None:
    """Raise when tile data points past the end of the file (a truncated copy)."""
    size = path.stat().st_size
    for page in tf.pages:
        offsets = np.asarray(getattr(page, "dataoffsets", ()), dtype=np.int64)
        counts = np.asarray(getattr(page, "databytecounts", ()), dtype=np.int64)
        if not offsets.size or offsets.size != counts.size:
            raise SlideError(
                path,
                f"truncated or not a slide: image {page.index} has no (or mismatched) "
                "data offsets and byte counts",
            )
        if offsets.size and offsets.size == counts.size:
            end = int((offsets + counts).max())
            if end > size:
                raise SlideError(
                    path,
                    f"truncated file: image data runs to byte {end:,} but the file has "
                    f"only {size:,} bytes (incomplete download or copy?)",
                )


def _mpp_from_properties(props: dict[str, Any]) -> tuple[float | None, str]:
    mpp_x, mpp_y = props.get("tiffslide.mpp-x"), props.get("tiffslide.mpp-y")
    values = [float(v) for v in (mpp_x, mpp_y) if v is not None]
    if not values:
        return None, "unknown: the file has no pixel size"
    mpp = float(np.mean(values))
    if not (_MPP_RANGE[0] <= mpp <= _MPP_RANGE[1]):
        unit = props.get("tiff.ResolutionUnit", "")
        return None, (
            f"unknown: the file's resolution tags give {mpp:.4g} µm/px ({unit}), "
            "a default rather than a scanner calibration"
        )
    return mpp, "file"


class Slide:
    """A whole-slide image opened lazily.

    Parameters
    ----------
    path : str or Path
        Slide file (SVS, NDPI, generic tiled TIFF, OME-TIFF, …).
    mpp : float, optional
        Microns per pixel at level 0, when the user knows better than the file
        (or the file does not say).

    Raises
    ------
    SlideError
        When the file is missing, empty, not a slide, truncated, not 2-D or
        not tiled; the message names the file and the problem.
    """

    def __init__(self, path: str | Path, *, mpp: float | None = None) -> None:
        import tiffslide

        self.path = Path(path)
        _sniff(self.path)
        with _quiet_tifffile():
            try:
                self._ts: tiffslide.TiffSlide = tiffslide.TiffSlide(self.path)
            except NotImplementedError as exc:
                raise SlideError(self.path, f"not a 2-D slide image ({exc})") from None
            except Exception as exc:  # tifffile raises many kinds on corrupt files
                raise SlideError(
                    self.path, f"truncated or not a slide: cannot read it as a TIFF ({exc})"
                ) from None
            try:
                _check_truncated(self.path, self._ts.ts_tifffile)
                self.info = self._read_info(mpp)
                self._check_tiled()
            except BaseException:
                self._ts.close()
                raise
        self._local = threading.local()
        self._levels: list[da.Array] | None = None

    # -- metadata --------------------------------------------------------
    def _read_info(self, mpp: float | None) -> SlideInfo:
        ts = self._ts
        try:
            arrays = [self._zarr_level(i) for i in range(ts.level_count)]
        except NotImplementedError:
            series = ts.ts_tifffile.series[0]
            raise SlideError(
                self.path,
                f"not a 2-D slide: its image series has axes {series.axes} and shape "
                f"{tuple(series.shape)} (a time, z or channel series?); open one plane "
                "with a general image reader instead",
            ) from None
        except Exception as exc:
            raise SlideError(
                self.path, f"truncated or not a slide: cannot index the image pyramid ({exc})"
            ) from None
        if not arrays:
            raise SlideError(self.path, "truncated or not a slide: the file holds no image")
        props = dict(ts.properties)
        mpp_value: float | None
        if mpp is not None:
            if not mpp > 0:
                raise SlideError(self.path, f"mpp must be positive, got {mpp}")
            try:
                mpp_value, mpp_source = check_mpp(mpp, what="mpp option"), "user"
            except LimitError as exc:
                raise SlideError(self.path, str(exc)) from None
        else:
            mpp_value, mpp_source = _mpp_from_properties(props)
        series = ts.ts_tifffile.series[0]
        axes = str(series.axes)
        first = arrays[0]
        if first.ndim == 3 and axes.endswith("S"):
            n_channels, channel_axis = int(first.shape[2]), None
        elif first.ndim == 3:
            n_channels, channel_axis = int(first.shape[0]), 0
        elif first.ndim == 2:
            n_channels, channel_axis = 1, None
        else:
            raise SlideError(self.path, f"unsupported image layout {axes} {first.shape}")
        is_rgb = channel_axis is None and n_channels in (3, 4) and first.dtype == np.uint8

        def rc(shape: tuple[int, ...]) -> tuple[int, int]:
            if channel_axis == 0:
                return int(shape[1]), int(shape[2])
            return int(shape[0]), int(shape[1])

        shapes = tuple(rc(a.shape) for a in arrays)
        # before anything is planned or read: a small file may declare 10^12 pixels
        try:
            check_slide_shape(shapes[0])
        except LimitError as exc:
            raise SlideError(self.path, str(exc)) from None
        # tiffslide's downsamples (mean of the row and column ratios), as openslide reports.
        downsamples = tuple(float(d) for d in ts.level_downsamples)
        objective = props.get("tiffslide.objective-power")
        return SlideInfo(
            path=self.path,
            vendor=props.get("tiffslide.vendor"),
            shape_rc=shapes[0],
            level_shapes_rc=shapes,
            level_downsamples=downsamples,
            mpp=mpp_value,
            mpp_source=mpp_source,
            magnification=float(objective) if objective else None,
            dtype=str(first.dtype),
            n_channels=n_channels,
            is_rgb=is_rgb,
            channel_axis=channel_axis,
            properties=props,
        )

    def _check_tiled(self) -> None:
        arr = self._zarr_level(0)
        chunk_bytes = math.prod(arr.chunks) * arr.dtype.itemsize
        if chunk_bytes > _MAX_CHUNK_BYTES and arr.nbytes > _MAX_CHUNK_BYTES:
            rows, cols = self.info.shape_rc
            raise SlideError(
                self.path,
                f"not a tiled image: level 0 ({cols} x {rows} px) is stored in strips of "
                f"{chunk_bytes / 2**20:,.0f} MiB that would each have to be decoded whole; "
                "convert it to a tiled pyramidal TIFF (e.g. vips tiffsave --tile --pyramid)",
            )

    # -- arrays ------------------------------------------------------------
    def _zarr_level(self, level: int) -> zarr.Array:
        # tiffslide keeps one zarr group per thread (its fix for multi-threaded reads).
        array = self._ts.zarr_group[str(level)]
        if not isinstance(array, zarr.Array):
            raise SlideError(self.path, f"level {level} is not an image array")
        return array

    @property
    def levels(self) -> list[da.Array]:
        """The pyramid as dask arrays, largest first; chunks follow the file's tiles.

        RGB slides give ``(rows, cols, 3)`` uint8 arrays, single-channel slides
        ``(rows, cols)``, multichannel slides ``(channels, rows, cols)``.
        Nothing is decoded until a region is computed.
        """
        if self._levels is None:
            import dask.array as da

            # A fresh token per opened slide: napari's chunk cache is keyed by task
            # name, and id(self) is reused once a closed slide is collected, which
            # served another slide's chunks (wrong shapes) to a new one.
            token = uuid.uuid4().hex
            levels = []
            for i in range(self.info.n_levels):
                arr = self._zarr_level(i)
                chunks = list(arr.chunks)
                for ax in range(arr.ndim):
                    if ax == self.info.channel_axis or (
                        arr.ndim == 3 and ax == 2 and self.info.channel_axis is None
                    ):
                        continue
                    # Merge tiny file chunks (NDPI strips) into >= 256-px dask chunks.
                    if chunks[ax] < _MIN_DASK_CHUNK:
                        chunks[ax] = chunks[ax] * math.ceil(_MIN_DASK_CHUNK / chunks[ax])
                    chunks[ax] = min(chunks[ax], arr.shape[ax])
                levels.append(
                    da.from_zarr(arr, chunks=tuple(chunks), name=f"napari-xai-{token}-{i}")
                )
            self._levels = levels
        return self._levels

    def best_level_for_downsample(self, downsample: float) -> int:
        """Index of the smallest level whose downsample does not exceed ``downsample``."""
        best = 0
        for i, ds in enumerate(self.info.level_downsamples):
            if ds <= downsample * (1 + 1e-6):
                best = i
        return best

    def read_region(
        self,
        loc_rc: tuple[int, int],
        shape_rc: tuple[int, int],
        *,
        level: int = 0,
    ) -> npt.NDArray[np.uint8]:
        """Read an RGB region; safe to call from many threads at once.

        Parameters
        ----------
        loc_rc : tuple of int
            Top-left corner in level-0 pixels (row, col).
        shape_rc : tuple of int
            Size of the region at ``level`` (rows, cols).
        level : int
            Pyramid level to read from.

        Returns
        -------
        ndarray of shape (rows, cols, 3), uint8
            Parts outside the slide are white. Non-RGB slides are converted
            to RGB (see :meth:`to_rgb`).
        """
        if not 0 <= level < self.info.n_levels:
            last = self.info.n_levels - 1
            raise ValueError(f"{self.path}: level {level} out of range 0..{last}")
        ds = self.info.level_downsamples[level]
        lrows, lcols = self.info.level_shapes_rc[level]
        r0 = int(math.floor(loc_rc[0] / ds))
        c0 = int(math.floor(loc_rc[1] / ds))
        h, w = int(shape_rc[0]), int(shape_rc[1])
        out = np.full((h, w, 3), 255, dtype=np.uint8)
        rr0, cc0 = max(r0, 0), max(c0, 0)
        rr1, cc1 = min(r0 + h, lrows), min(c0 + w, lcols)
        if rr1 <= rr0 or cc1 <= cc0:
            return out
        arr = self._zarr_level(level)
        try:
            if self.info.channel_axis == 0:
                block = np.asarray(arr[:, rr0:rr1, cc0:cc1])
            else:
                block = np.asarray(arr[rr0:rr1, cc0:cc1])
        except Exception as exc:
            raise SlideError(
                self.path, f"cannot decode region at (row {r0}, col {c0}) of level {level}: {exc}"
            ) from None
        out[rr0 - r0 : rr1 - r0, cc0 - c0 : cc1 - c0] = self.to_rgb(block)
        return out

    def to_rgb(self, block: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
        """Convert a block as stored in the file to RGB uint8 for models and thumbnails.

        RGBA drops alpha; greyscale is replicated into three channels; other
        dtypes are scaled by the dtype's range; for multichannel images the
        first three channels are shown as R, G, B.
        """
        info = self.info
        if info.channel_axis == 0:
            block = np.moveaxis(block, 0, -1)
        if block.ndim == 2:
            block = block[..., None]
        if block.dtype != np.uint8:
            if np.issubdtype(block.dtype, np.integer):
                scale = 255.0 / float(np.iinfo(block.dtype).max)
                block = np.clip(block.astype(np.float32) * scale, 0, 255).astype(np.uint8)
            else:
                block = np.clip(block.astype(np.float32) * 255.0, 0, 255).astype(np.uint8)
        n = block.shape[-1]
        if n == 1:
            return np.repeat(block, 3, axis=-1)
        if n == 2:
            return np.concatenate([block, np.zeros_like(block[..., :1])], axis=-1)
        return np.ascontiguousarray(block[..., :3])

    def thumbnail(self, *, max_size: int = 2048) -> tuple[npt.NDArray[np.uint8], float]:
        """Return a small RGB image of the whole slide and its downsample against level 0.

        Reads the smallest level at least ``max_size`` pixels on its long side
        (or the largest level below that) and reduces it chunk row by chunk
        row, so memory stays bounded even for a single-level gigapixel slide.

        Returns
        -------
        thumb : ndarray of shape (rows, cols, 3), uint8
        downsample : float
            Level-0 rows per thumbnail row.
        """
        rows0, cols0 = self.info.shape_rc
        target_ds = max(rows0, cols0) / float(max_size)
        level = self.best_level_for_downsample(max(target_ds, 1.0))
        lrows, lcols = self.info.level_shapes_rc[level]
        factor = max(1, int(math.floor(max(lrows, lcols) / float(max_size))))
        if max(lrows, lcols) / factor > max_size:
            factor += 1
        arr = self._zarr_level(level)
        row_axis = 1 if self.info.channel_axis == 0 else 0
        step = max(int(arr.chunks[row_axis]), factor)
        step = (step // factor) * factor
        out_rows, out_cols = lrows // factor, lcols // factor
        if out_rows == 0 or out_cols == 0:
            factor, out_rows, out_cols = 1, lrows, lcols
        thumb = np.empty((out_rows, out_cols, 3), dtype=np.uint8)
        for r in range(0, out_rows * factor, step):
            r1 = min(r + step, out_rows * factor)
            block = self.read_region(
                (int(r * self.info.level_downsamples[level]), 0),
                (r1 - r, out_cols * factor),
                level=level,
            )
            thumb[r // factor : r1 // factor] = _block_mean(block, factor) if factor > 1 else block
        return thumb, rows0 / float(out_rows)

    # -- lifecycle -------------------------------------------------------
    def close(self) -> None:
        """Close the file."""
        self._ts.close()

    def __enter__(self) -> Slide:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        rows, cols = self.info.shape_rc
        return (
            f"Slide({self.path.name!r}, rows={rows}, cols={cols}, "
            f"levels={self.info.n_levels}, mpp={self.info.mpp})"
        )


def open_slide(path: str | Path, *, mpp: float | None = None) -> Slide:
    """Open a whole-slide image lazily.

    Parameters
    ----------
    path : str or Path
        The slide file.
    mpp : float, optional
        Override (or supply) the level-0 microns per pixel.

    Returns
    -------
    Slide
    """
    return Slide(path, mpp=mpp)


def opened_slide(
    slide: Slide | str | Path, *, mpp: float | None = None
) -> contextlib.AbstractContextManager[Slide]:
    """Use an open slide as it is, or open a slide file for the duration of a ``with``.

    Parameters
    ----------
    slide : Slide, str or Path
        An open slide (left open) or a slide file
        (opened with ``mpp``, closed when the ``with`` block ends).
    mpp : float, optional
        Override (or supply) the level-0 microns per pixel of a slide file.

    Returns
    -------
    context manager
        Its ``__enter__`` gives the :class:`Slide`.
    """
    if isinstance(slide, (str, Path)):
        return open_slide(slide, mpp=mpp)
    return contextlib.nullcontext(slide)
