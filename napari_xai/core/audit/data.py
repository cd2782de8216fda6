"""Cohort data audit: look at the data by class before trusting a model trained on it.

From a cohort table (CSV: one row per slide or image, a path column, a label
column, and any metadata such as site, scanner or date):

- **class balance**: counts per class and the imbalance ratio (largest / smallest);
- **montages**: low-resolution thumbnails side by side per class (the eye test:
  if a person can tell the classes apart by background, border or colour, so can
  a model);
- **colour statistics** per image (mean R, G, B, brightness, saturation, share of
  background, background brightness), summarised per class and per metadata
  group, and tested against the label (Kruskal–Wallis, effect size ε²); only
  differences in the *background* statistics are flagged (the tissue's colour
  may differ between classes for good biological reasons);
- **metadata association**: Cramér's V (bias-corrected, Bergsma 2013) and the
  chi-square p-value between every metadata column and the label. A site,
  scanner or date that predicts the label is a shortcut waiting to be learned.

Defaults (see :class:`DataThresholds`): a column is flagged when V ≥ 0.5 with
p < 0.05; a colour statistic when ε² ≥ 0.25 with p < 0.05; classes are
imbalanced when the ratio is ≥ 3.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Generator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd  # noqa: TID253 (core runs only when auditing)
from scipy import stats  # noqa: TID253

from napari_xai.core.options import Bounded, bounded, fraction
from napari_xai.core.progress import drive, relay

__all__ = [
    "COLOUR_STATS",
    "FLAGGED_STATS",
    "DataAudit",
    "DataThresholds",
    "audit_cohort",
    "colour_stats",
    "cramers_v",
    "is_tile_file",
    "iter_audit_cohort",
    "load_thumbnail",
    "make_montage",
    "read_cohort",
]

#: Per-image colour statistics, in report order.
COLOUR_STATS: tuple[str, ...] = (
    "mean_red",
    "mean_green",
    "mean_blue",
    "brightness",
    "saturation",
    "background_fraction",
    "background_brightness",
)
#: Statistics of the background (not the tissue): a difference between classes there
#: is a shortcut, not biology, so these are flagged; the others are reported only.
FLAGGED_STATS: tuple[str, ...] = ("background_fraction", "background_brightness")
_PATH_COLUMNS = ("slide", "path", "slide_path", "file", "filename", "image", "image_path")
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")


@dataclass(frozen=True)
class DataThresholds(Bounded):
    """Thresholds of the data audit.

    Parameters
    ----------
    strong_association : float
        Cramér's V at or above which a metadata column is flagged (with ``alpha``).
    moderate_association : float
        V at or above which a column is reported as a moderate association.
    alpha : float
        Significance level of the chi-square / Kruskal–Wallis tests.
    strong_effect : float
        ε² (Kruskal–Wallis effect size) at or above which a colour statistic that
        differs between classes is called strong (and flagged for the background
        statistics, :data:`FLAGGED_STATS`).
    imbalance_ratio : float
        Largest / smallest class count at or above which classes are imbalanced (>= 1).
    max_levels : int
        Numeric metadata with more distinct values is binned into quartiles (>= 2).

    Raises
    ------
    ValueError
        Naming the field: V, ``alpha`` or ε² outside [0, 1], ``moderate_association``
        above ``strong_association``, ``imbalance_ratio`` below 1, ``max_levels`` below 2.
    """

    strong_association: float = fraction(0.5)
    moderate_association: float = fraction(0.3, at_most="strong_association")
    alpha: float = fraction(0.05)
    strong_effect: float = fraction(0.25)
    imbalance_ratio: float = bounded(3.0, low=1)
    max_levels: int = bounded(10, low=2)


@dataclass
class DataAudit:
    """Result of :func:`audit_cohort`.

    Attributes
    ----------
    table : pandas.DataFrame
        The cohort with one column per colour statistic (NaN where unreadable).
    label_column, path_column : str
    class_counts : dict
        Images per class.
    imbalance : float
        Largest / smallest class count.
    associations : pandas.DataFrame
        One row per metadata column: ``column``, ``n_levels``, ``cramers_v``,
        ``chi2``, ``p_value``, ``strength`` ("strong", "moderate", "weak"),
        ``flagged``, ``note``.
    colour_by_class : pandas.DataFrame
        Mean of each colour statistic per class.
    colour_by_group : dict of str to DataFrame
        Mean of each colour statistic per level of each metadata column.
    colour_tests : pandas.DataFrame
        Per colour statistic: Kruskal–Wallis ``h``, ``p_value``, ``epsilon2``, ``flagged``.
    montages : dict of str to ndarray
        One RGB montage (rows, cols, 3) per class.
    flags : list of str
        Human-readable findings, worst first.
    errors : list of str
        Images that could not be read (``path: problem``).
    thresholds : DataThresholds
    report_path : Path or None
        ``report.html`` when the audit was run with ``out_dir``.
    tile_audit : TileAudit or None
        Where the model looks on the cohort's tile images, when run with ``model``
        (:class:`napari_xai.core.audit.tiles.TileAudit`).
    """

    table: pd.DataFrame
    label_column: str
    path_column: str
    class_counts: dict[str, int]
    imbalance: float
    associations: pd.DataFrame
    colour_by_class: pd.DataFrame
    colour_by_group: dict[str, pd.DataFrame]
    colour_tests: pd.DataFrame
    montages: dict[str, npt.NDArray[np.uint8]]
    flags: list[str]
    errors: list[str] = field(default_factory=list)
    thresholds: DataThresholds = field(default_factory=DataThresholds)
    report_path: Path | None = None
    tile_audit: Any = None

    @property
    def verdict(self) -> str:
        """``"pass"``, or ``"fail"`` when there is any flag."""
        return "fail" if self.flags else "pass"

    def flagged_columns(self) -> list[str]:
        """Metadata columns flagged as strongly associated with the label."""
        return [str(c) for c in self.associations.loc[self.associations["flagged"], "column"]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""

        def records(df: pd.DataFrame) -> list[dict[str, Any]]:
            out = []
            for rec in df.to_dict(orient="records"):
                out.append({str(k): _jsonable(v) for k, v in rec.items()})
            return out

        return {
            "verdict": self.verdict,
            "flags": list(self.flags),
            "n_images": int(len(self.table)),
            "label_column": self.label_column,
            "path_column": self.path_column,
            "class_counts": {str(k): int(v) for k, v in self.class_counts.items()},
            "imbalance": _jsonable(self.imbalance),
            "associations": records(self.associations),
            "colour_by_class": {
                str(k): {c: _jsonable(v) for c, v in row.items()}
                for k, row in self.colour_by_class.to_dict(orient="index").items()
            },
            "colour_tests": records(self.colour_tests),
            "errors": list(self.errors),
            "thresholds": asdict(self.thresholds),
        }


def _jsonable(v: Any) -> Any:
    if isinstance(v, (np.bool_, bool)):
        return bool(v)
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return None if not np.isfinite(v) else float(v)
    return v if isinstance(v, (int, str)) or v is None else str(v)


def read_cohort(
    cohort: str | Path | pd.DataFrame,
    *,
    label_column: str = "label",
    path_column: str | None = None,
) -> tuple[pd.DataFrame, str]:
    """Read a cohort table and find its path column.

    Parameters
    ----------
    cohort : str, Path or DataFrame
        CSV file (relative image paths are resolved against its folder) or table.
    label_column : str
        Column holding the class label.
    path_column : str, optional
        Column holding the image/slide path (default: the first of ``slide``,
        ``path``, ``slide_path``, ``file``, ``filename``, ``image``, ``image_path``).

    Returns
    -------
    table : DataFrame
        A copy, with absolute paths.
    path_column : str

    Raises
    ------
    ValueError
        Missing file, label column or path column, or an empty table.
    """
    base: Path | None = None
    if isinstance(cohort, pd.DataFrame):
        table = cohort.copy()
        where = "cohort table"
    else:
        path = Path(cohort)
        if not path.is_file():
            raise ValueError(f"{path}: cohort table not found")
        try:
            table = pd.read_csv(path)
        except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
            raise ValueError(f"{path}: not a readable CSV file ({exc})") from exc
        base = path.parent
        where = str(path)
    if table.empty:
        raise ValueError(f"{where}: the cohort table has no rows")
    if label_column not in table.columns:
        raise ValueError(
            f"{where}: no label column {label_column!r}; "
            f"columns: {', '.join(map(str, table.columns))}"
        )
    if path_column is None:
        lower = {str(c).lower(): c for c in table.columns}
        found = next((lower[c] for c in _PATH_COLUMNS if c in lower), None)
        if found is None:
            raise ValueError(
                f"{where}: no path column (one of {', '.join(_PATH_COLUMNS)}); "
                f"columns: {', '.join(map(str, table.columns))}"
            )
        path_column = str(found)
    elif path_column not in table.columns:
        raise ValueError(f"{where}: no path column {path_column!r}")
    if base is not None:
        table[path_column] = [
            str(p if Path(p).is_absolute() else (base / p)) for p in table[path_column].astype(str)
        ]
    table[label_column] = table[label_column].astype(str)
    return table.reset_index(drop=True), path_column


def is_tile_file(path: str | Path) -> bool:
    """Tell whether ``path`` is a plain image or a small one-page TIFF (a patch, not a slide).

    Parameters
    ----------
    path : str or Path
        File to check (missing files are not tiles).

    Returns
    -------
    bool
    """
    p = Path(path)
    if not p.is_file():
        return False
    if p.suffix.lower() in _IMAGE_SUFFIXES:
        return True
    if p.suffix.lower() not in (".tif", ".tiff"):
        return False
    try:
        from PIL import Image

        with Image.open(p) as img:
            return max(img.size) <= 2048 and getattr(img, "n_frames", 1) == 1
    except (OSError, ValueError):
        return False


def _square_resize(rgb: npt.NDArray[np.uint8], size: int) -> npt.NDArray[np.uint8]:
    """Resize keeping the aspect ratio and pad with white to ``size`` × ``size``."""
    from PIL import Image

    h, w = rgb.shape[:2]
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    img = np.asarray(
        Image.fromarray(np.ascontiguousarray(rgb)).resize((nw, nh), Image.Resampling.BILINEAR)
    )
    out = np.full((size, size, 3), 255, np.uint8)
    r0, c0 = (size - nh) // 2, (size - nw) // 2
    out[r0 : r0 + nh, c0 : c0 + nw] = img[..., :3]
    return out


def load_thumbnail(path: str | Path, *, max_size: int = 256) -> npt.NDArray[np.uint8]:
    """Low-resolution RGB view of a slide or an image file.

    Parameters
    ----------
    path : str or Path
        Whole-slide image (opened with :func:`napari_xai.core.wsi.open_slide`) or a
        plain image (PNG, JPEG, TIFF tile...).
    max_size : int
        Longest side of the result.

    Returns
    -------
    ndarray of uint8, shape (rows, cols, 3)

    Raises
    ------
    ValueError
        The file is missing or unreadable (message names the file).
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: file not found")
    rgb: npt.NDArray[np.uint8] | None = None
    problem = ""
    if path.suffix.lower() not in _IMAGE_SUFFIXES:
        try:
            from napari_xai.core.wsi import open_slide

            with open_slide(path) as slide:
                rgb, _ = slide.thumbnail(max_size=max_size)
        except (ValueError, OSError) as exc:
            problem = str(exc)
    if rgb is None:
        try:
            from PIL import Image

            with Image.open(path) as img:
                img.draft("RGB", (max_size, max_size))
                rgb = np.asarray(img.convert("RGB"))
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path}: cannot read image ({problem or exc})") from exc
    h, w = rgb.shape[:2]
    if max(h, w) > max_size:
        from PIL import Image

        scale = max_size / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        rgb = np.asarray(
            Image.fromarray(np.ascontiguousarray(rgb)).resize(size, Image.Resampling.BILINEAR)
        )
    return np.ascontiguousarray(rgb[..., :3], dtype=np.uint8)


def colour_stats(rgb: npt.ArrayLike) -> dict[str, float]:
    """Colour and brightness statistics of one RGB image.

    Parameters
    ----------
    rgb : array-like of uint8, shape (rows, cols, 3)

    Returns
    -------
    dict
        :data:`COLOUR_STATS`: channel means and brightness (0–255, over all
        pixels), mean HSV saturation (0–1), the share of background pixels
        (bright and unsaturated: brightness > 215 and saturation < 0.08) and their
        mean brightness (NaN when there is none: a scanner's backlight shows here).
    """
    arr = np.asarray(rgb, dtype=np.float32)[..., :3]
    if arr.ndim != 3:
        raise ValueError(f"expected an RGB image (rows, cols, 3), got shape {arr.shape}")
    mx, mn = arr.max(axis=2), arr.min(axis=2)
    sat = (mx - mn) / np.maximum(mx, 1.0)
    bright = arr.mean(axis=2)
    bg = (bright > 215) & (sat < 0.08)
    return {
        "mean_red": float(arr[..., 0].mean()),
        "mean_green": float(arr[..., 1].mean()),
        "mean_blue": float(arr[..., 2].mean()),
        "brightness": float(bright.mean()),
        "saturation": float(sat.mean()),
        "background_fraction": float(bg.mean()),
        "background_brightness": float(bright[bg].mean()) if bg.any() else float("nan"),
    }


def make_montage(
    images: Sequence[npt.NDArray[np.uint8]], *, tile: int = 96, columns: int = 6, gap: int = 2
) -> npt.NDArray[np.uint8]:
    """Lay thumbnails out in a grid (each fitted into ``tile`` × ``tile``, white padding).

    Parameters
    ----------
    images : sequence of uint8 RGB arrays
        Thumbnails of any size.
    tile : int
        Cell side in pixels.
    columns : int
        Cells per row.
    gap : int
        White gap between cells.

    Returns
    -------
    ndarray of uint8, shape (rows, cols, 3)
    """
    n = max(len(images), 1)
    ncol = min(columns, n)
    nrow = -(-n // ncol)
    out = np.full((nrow * (tile + gap) + gap, ncol * (tile + gap) + gap, 3), 255, np.uint8)
    for k, img in enumerate(images):
        r, c = divmod(k, ncol)
        r0, c0 = gap + r * (tile + gap), gap + c * (tile + gap)
        out[r0 : r0 + tile, c0 : c0 + tile] = _square_resize(np.asarray(img), tile)
    return out


def cramers_v(x: Sequence[Any], y: Sequence[Any]) -> tuple[float, float, float, int]:
    """Bias-corrected Cramér's V and chi-square test between two categorical variables.

    Parameters
    ----------
    x, y : sequences of the same length
        Category of each sample (missing values are a category of their own).

    Returns
    -------
    v : float
        Bias-corrected Cramér's V (Bergsma 2013) in [0, 1]; 0 when either variable
        has a single level.
    chi2 : float
        Pearson chi-square statistic (no continuity correction).
    p_value : float
    n_levels : int
        Levels of ``x``.
    """
    table = pd.crosstab(
        pd.Series(np.asarray(x, dtype=object)).fillna("<missing>").astype(str).to_numpy(),
        pd.Series(np.asarray(y, dtype=object)).fillna("<missing>").astype(str).to_numpy(),
    )
    r, k = table.shape
    n = int(table.to_numpy().sum())
    if r < 2 or k < 2 or n < 2:
        return 0.0, 0.0, 1.0, int(r)
    chi2, p, _, _ = stats.chi2_contingency(table.to_numpy(), correction=False)
    phi2 = chi2 / n
    phi2c = max(0.0, phi2 - (k - 1) * (r - 1) / max(n - 1, 1))
    rc = r - (r - 1) ** 2 / max(n - 1, 1)
    kc = k - (k - 1) ** 2 / max(n - 1, 1)
    denom = min(kc - 1, rc - 1)
    v = float(np.sqrt(phi2c / denom)) if denom > 0 else 0.0
    return min(v, 1.0), float(chi2), float(p), int(r)


def _categorical(values: pd.Series, max_levels: int) -> tuple[pd.Series, str]:
    """Categories of a metadata column (numeric columns with many values → quartiles)."""
    if pd.api.types.is_numeric_dtype(values) and values.nunique() > max_levels:
        try:
            return pd.qcut(values, 4, duplicates="drop").astype(str), "binned into quartiles"
        except ValueError:
            pass
    as_date = None
    if values.dtype == object and values.nunique() > max_levels:
        try:
            as_date = pd.to_datetime(values, errors="raise", format="mixed")
        except (ValueError, TypeError):
            as_date = None
    if as_date is not None:
        return pd.qcut(as_date.astype("int64"), 4, duplicates="drop").astype(str), (
            "dates binned into quartiles"
        )
    return values.astype(str), ""


def iter_audit_cohort(
    cohort: str | Path | pd.DataFrame,
    *,
    label_column: str = "label",
    path_column: str | None = None,
    metadata_columns: Sequence[str] | None = None,
    thumbnail_size: int = 256,
    montage_per_class: int = 12,
    montage_tile: int = 96,
    thresholds: DataThresholds | None = None,
    seed: int = 0,
    out_dir: str | Path | None = None,
    model: Any = None,
    method: str = "integrated_gradients",
    batch_size: int = 32,
    device: str | None = None,
    **options: Any,
) -> Generator[tuple[int, int], None, DataAudit]:
    """Audit a cohort (generator: yields ``(done, total)`` per image, returns a DataAudit).

    Parameters
    ----------
    cohort : str, Path or DataFrame
        Cohort table (see :func:`read_cohort`).
    label_column : str
        Class label column.
    path_column : str, optional
        Image/slide path column (found automatically by default).
    metadata_columns : sequence of str, optional
        Columns to test against the label (default: every other column).
    thumbnail_size : int
        Longest side of each thumbnail the statistics are computed on.
    montage_per_class : int
        Thumbnails per class in the montages (a seeded random sample).
    montage_tile : int
        Montage cell side in pixels.
    thresholds : DataThresholds, optional
        Flagging thresholds.
    seed : int
        Seed of the montage sample.
    out_dir : str or Path, optional
        When given, ``report.html`` and ``audit.json`` are written there.
    model : LoadedModel, str or Path, optional
        When given, also audit where this model looks on the cohort's tile images
        (:func:`napari_xai.core.audit.tiles.iter_audit_tiles`; slides are left to
        the slide audit).
    method, batch_size, device, **options
        Attribution settings of that tile audit.

    Yields
    ------
    tuple of int
        ``(images done, images total)``.

    Returns
    -------
    DataAudit
    """
    th = thresholds if thresholds is not None else DataThresholds()
    read = yield from _iter_read_cohort(
        cohort,
        label_column=label_column,
        path_column=path_column,
        metadata_columns=metadata_columns,
        thumbnail_size=thumbnail_size,
        montage_per_class=montage_per_class,
        seed=seed,
    )
    result = read.audit(th, montage_tile=montage_tile)
    if model is not None:
        result.tile_audit = yield from _iter_tile_audit(
            read.table[read.path_column],
            model,
            method=method,
            batch_size=batch_size,
            device=device,
            **options,
        )
    if out_dir is not None:
        from napari_xai.core.audit.report import write_report

        result.report_path = write_report(out_dir, data_audit=result, title="Cohort audit")
    return result


@dataclass(frozen=True)
class _ReadCohort:
    """A cohort read for the audit: its table with the colour statistics, and what they need.

    Attributes
    ----------
    table : pandas.DataFrame
        The cohort, with one column per colour statistic (NaN where unreadable).
    label_column, path_column : str
    metadata_columns : sequence of str
        The columns tested against the label.
    labels : pandas.Series
        Each row's class label, as str.
    classes : list of str
        The class labels, sorted.
    thumbs : dict of str to list of ndarray
        The montage sample's thumbnails, per class.
    errors : list of str
        Images that could not be read.
    """

    table: pd.DataFrame
    label_column: str
    path_column: str
    metadata_columns: Sequence[str]
    labels: pd.Series
    classes: list[str]
    thumbs: dict[str, list[npt.NDArray[np.uint8]]]
    errors: list[str]

    def audit(self, th: DataThresholds, *, montage_tile: int) -> DataAudit:
        """Judge the statistics: class balance, metadata and colour confounders, montages.

        The flags come in that order (class balance, associations, colour tests),
        then the count of unreadable images; the tile audit is left to the caller.
        """
        table, labels, classes = self.table, self.labels, self.classes
        class_counts, imbalance, flags = _class_balance(labels, classes, th)
        associations = _associations(table, labels, self.metadata_columns, th, flags)
        colour_by_class = table.groupby(self.label_column)[list(COLOUR_STATS)].mean()
        colour_tests = _colour_tests(table, labels, classes, colour_by_class, th, flags)
        if self.errors:
            flags.append(f"{len(self.errors)} of {len(table)} images could not be read")
        return DataAudit(
            table=table,
            label_column=self.label_column,
            path_column=self.path_column,
            class_counts=class_counts,
            imbalance=imbalance,
            associations=associations,
            colour_by_class=colour_by_class,
            colour_by_group=_colour_by_group(table, self.metadata_columns, th),
            colour_tests=colour_tests,
            montages={
                c: make_montage(self.thumbs[c], tile=montage_tile)
                for c in classes
                if self.thumbs[c]
            },
            flags=flags,
            errors=self.errors,
            thresholds=th,
        )


def _iter_read_cohort(
    cohort: str | Path | pd.DataFrame,
    *,
    label_column: str,
    path_column: str | None,
    metadata_columns: Sequence[str] | None,
    thumbnail_size: int,
    montage_per_class: int,
    seed: int,
) -> Generator[tuple[int, int], None, _ReadCohort]:
    """Read the cohort table and every image's colour statistics (yields images done, total).

    Thumbnails are kept for a seeded random sample of ``montage_per_class`` per class.
    """
    table, path_col, metadata_columns = _read_table(
        cohort, label_column, path_column, metadata_columns
    )
    labels = table[label_column].astype(str)
    classes = sorted(labels.unique().tolist())
    in_montage = _montage_sample(labels, classes, per_class=montage_per_class, seed=seed)
    stats_df, thumbs, errors = yield from _iter_colour_stats(
        table[path_col], in_montage, classes, thumbnail_size=thumbnail_size
    )
    table = pd.concat([table, stats_df], axis=1)
    return _ReadCohort(
        table, label_column, path_col, metadata_columns, labels, classes, thumbs, errors
    )


def _read_table(
    cohort: str | Path | pd.DataFrame,
    label_column: str,
    path_column: str | None,
    metadata_columns: Sequence[str] | None,
) -> tuple[pd.DataFrame, str, Sequence[str]]:
    """Cohort table, its path column and the metadata columns to test (checked to exist)."""
    table, path_col = read_cohort(cohort, label_column=label_column, path_column=path_column)
    if metadata_columns is None:
        metadata_columns = [c for c in table.columns if c not in (label_column, path_col)]
    missing = [c for c in metadata_columns if c not in table.columns]
    if missing:
        raise ValueError(f"cohort table has no column(s) {', '.join(missing)}")
    return table, path_col, metadata_columns


def _colour_by_group(
    table: pd.DataFrame, metadata_columns: Sequence[str], th: DataThresholds
) -> dict[str, pd.DataFrame]:
    """Mean colour statistics per level of each metadata column (not identifier-like ones)."""
    return {
        str(col): table.groupby(_categorical(table[col], th.max_levels)[0])[
            list(COLOUR_STATS)
        ].mean()
        for col in metadata_columns
        if table[col].nunique() < len(table) or len(table) <= 2
    }


def _iter_tile_audit(
    paths: pd.Series, model: Any, **settings: Any
) -> Generator[tuple[int, int], None, Any]:
    """Where ``model`` looks on the cohort's tile images (None: none); counts after the images.

    Yields ``(done, total)`` counted after the ``len(paths)`` images of the colour pass.
    """
    tile_paths = [p for p in paths if is_tile_file(p)]
    if not tile_paths:
        return None
    from napari_xai.core.audit.tiles import iter_audit_tiles

    n = len(paths)
    gen = iter_audit_tiles(tile_paths, model, **settings)
    return (yield from relay(gen, lambda step: (n + step[0], n + step[1])))


def _montage_sample(
    labels: pd.Series, classes: Sequence[str], *, per_class: int, seed: int
) -> dict[int, str]:
    """Row → class of the montage sample: a seeded random subset per class."""
    rng = np.random.default_rng(seed)
    in_montage: dict[int, str] = {}
    for cls in classes:
        idx = np.flatnonzero(labels.to_numpy() == cls)
        pick = rng.choice(idx, size=min(per_class, len(idx)), replace=False)
        for i in sorted(pick.tolist()):
            in_montage[int(i)] = cls
    return in_montage


def _iter_colour_stats(
    paths: pd.Series, in_montage: dict[int, str], classes: Sequence[str], *, thumbnail_size: int
) -> Generator[
    tuple[int, int], None, tuple[pd.DataFrame, dict[str, list[npt.NDArray[np.uint8]]], list[str]]
]:
    """Colour statistics of every image (NaN where unreadable), the montage thumbnails, errors.

    Thumbnails are kept only for the rows of the montage sample; yields
    ``(images done, images total)``.
    """
    thumbs: dict[str, list[npt.NDArray[np.uint8]]] = {c: [] for c in classes}
    rows: list[dict[str, float]] = []
    errors: list[str] = []
    n = len(paths)
    for i, p in enumerate(paths):
        try:
            thumb = load_thumbnail(p, max_size=thumbnail_size)
            rows.append(colour_stats(thumb))
            if i in in_montage:
                thumbs[in_montage[i]].append(thumb)
        except ValueError as exc:
            errors.append(str(exc))
            rows.append({k: float("nan") for k in COLOUR_STATS})
        yield i + 1, n
    return pd.DataFrame(rows, columns=list(COLOUR_STATS)), thumbs, errors


def _class_balance(
    labels: pd.Series, classes: Sequence[str], th: DataThresholds
) -> tuple[dict[str, int], float, list[str]]:
    """Images per class, the imbalance ratio and its flag (the first of the audit's flags)."""
    flags: list[str] = []
    counts = labels.value_counts()
    class_counts = {str(c): int(counts.get(c, 0)) for c in classes}
    imbalance = float(counts.max() / counts.min()) if len(counts) > 1 else 1.0
    if len(counts) > 1 and imbalance >= th.imbalance_ratio:
        flags.append(
            f"class imbalance {imbalance:.1f}:1 ("
            + ", ".join(f"{c}: {k}" for c, k in class_counts.items())
            + f"; limit {th.imbalance_ratio:.0f}:1)"
        )
    return class_counts, imbalance, flags


def _associations(
    table: pd.DataFrame,
    labels: pd.Series,
    metadata_columns: Sequence[str],
    th: DataThresholds,
    flags: list[str],
) -> pd.DataFrame:
    """Cramér's V of every metadata column with the label; appends a flag per strong one."""
    assoc_rows = []
    for col in metadata_columns:
        values = table[col]
        cats, note = _categorical(values, th.max_levels)
        n_levels = int(cats.nunique())
        if n_levels == len(table) and len(table) > 2 and not note:
            assoc_rows.append(
                {"column": col, "n_levels": n_levels, "cramers_v": float("nan"),
                 "chi2": float("nan"), "p_value": float("nan"), "strength": "n/a",
                 "flagged": False, "note": "identifier-like (one value per row): not tested"}
            )  # fmt: skip
            continue
        v, chi2, p, _ = cramers_v(cats.to_numpy(), labels.to_numpy())
        strength = (
            "strong"
            if v >= th.strong_association
            else "moderate"
            if v >= th.moderate_association
            else "weak"
        )
        flagged = bool(v >= th.strong_association and p < th.alpha)
        assoc_rows.append(
            {"column": col, "n_levels": n_levels, "cramers_v": v, "chi2": chi2, "p_value": p,
             "strength": strength, "flagged": flagged, "note": note}
        )  # fmt: skip
        if flagged:
            flags.append(
                f"metadata column '{col}' predicts the label: Cramér's V = {v:.2f} "
                f"(chi-square p = {p:.2g}); a model can learn '{col}' instead of the tissue"
            )
    associations = pd.DataFrame(
        assoc_rows,
        columns=[
            "column",
            "n_levels",
            "cramers_v",
            "chi2",
            "p_value",
            "strength",
            "flagged",
            "note",
        ],
    )
    associations["flagged"] = associations["flagged"].astype(bool)
    return associations


def _colour_tests(
    table: pd.DataFrame,
    labels: pd.Series,
    classes: Sequence[str],
    colour_by_class: pd.DataFrame,
    th: DataThresholds,
    flags: list[str],
) -> pd.DataFrame:
    """Kruskal–Wallis of every colour statistic between classes; flags background ones."""
    test_rows = []
    for stat in COLOUR_STATS:
        groups = [
            table.loc[(labels == c).to_numpy(), stat].dropna().to_numpy(dtype=float)
            for c in classes
        ]
        h, p, eps2 = _kruskal([g for g in groups if len(g)])
        strong = bool(np.isfinite(eps2) and eps2 >= th.strong_effect and p < th.alpha)
        flagged = strong and stat in FLAGGED_STATS
        test_rows.append(
            {
                "statistic": stat,
                "h": float(h),
                "p_value": float(p),
                "epsilon2": eps2,
                "strong": strong,
                "flagged": flagged,
            }  # fmt: skip
        )
        if flagged:
            means = ", ".join(f"{c}: {colour_by_class.loc[c, stat]:.3g}" for c in classes)
            flags.append(
                f"'{stat}' differs between classes (ε² = {eps2:.2f}, p = {p:.2g}; means {means}): "
                "the classes can be told apart by their background alone"
            )
    return pd.DataFrame(
        test_rows, columns=["statistic", "h", "p_value", "epsilon2", "strong", "flagged"]
    )


def _kruskal(groups: Sequence[npt.NDArray[np.float64]]) -> tuple[float, float, float]:
    """Kruskal–Wallis ``(h, p, ε²)`` of non-empty groups (NaN: too few; 0, 1, 0: all tied)."""
    h, p, eps2 = float("nan"), float("nan"), float("nan")
    n_obs = sum(len(g) for g in groups)
    if len(groups) > 1 and n_obs > len(groups):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                h, p = stats.kruskal(*groups)
            eps2 = float(h / (n_obs - 1))
        except ValueError:  # all values identical
            h, p, eps2 = 0.0, 1.0, 0.0
        if not np.isfinite(h):  # every value tied
            h, p, eps2 = 0.0, 1.0, 0.0
    return h, p, eps2


def audit_cohort(
    cohort: str | Path | pd.DataFrame,
    *,
    progress: Callable[[int, int], Any] | None = None,
    **kwargs: Any,
) -> DataAudit:
    """Run :func:`iter_audit_cohort` to the end.

    Parameters
    ----------
    cohort : str, Path or DataFrame
        Cohort table.
    progress : callable, optional
        Called as ``progress(done, total)`` after each image.
    **kwargs
        Options of :func:`iter_audit_cohort`.
    """
    steps = iter_audit_cohort(cohort, **kwargs)
    return drive(steps, None if progress is None else lambda step: progress(*step))
