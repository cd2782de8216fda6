"""Atomic file writes: a reader never sees half a file, a killed run leaves nothing unexplained.

Every final file napari-xai writes goes through :func:`atomic_write`: the
content is written to a hidden sibling with a unique name
(``.<name>.<12 hex>.tmp``, unique across processes and threads), flushed and
renamed over the target. A kill between the two leaves only such a temporary,
which :func:`clean_temporaries` recognises and removes on the next run.

:func:`kill_point` marks the moments between steps of a write (and between
batches of work) where a crash test may kill the process: with
``NAPARI_XAI_KILL_AT=N`` in the environment the process SIGKILLs itself at its
N-th kill point, so a test can kill a run at a chosen moment deterministically
(``tests/core/test_batch.py``); ``NAPARI_XAI_KILL_LOG=FILE`` appends each kill
point's name to ``FILE``. Without them a kill point costs one comparison.

Only the standard library is imported.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

__all__ = [
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_text",
    "clean_temporaries",
    "fsync_path",
    "is_temporary",
    "kill_point",
    "naming_path",
    "temporary_path",
]

_TEMP_RE = re.compile(r"^\.(?P<name>.+)\.(?P<id>[0-9a-f]{8,32})\.tmp$")


class _KillPoints:
    """Counter of kill points for crash tests (configured from the environment once)."""

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()
        at = os.environ.get("NAPARI_XAI_KILL_AT", "")
        self.kill_at = int(at) if at.strip().isdigit() else 0
        self.log = os.environ.get("NAPARI_XAI_KILL_LOG") or None
        self.active = bool(self.kill_at or self.log)


_KILL = _KillPoints()


def kill_point(name: str) -> None:
    """Mark a moment where a crash test may kill this process (see the module notes).

    Parameters
    ----------
    name : str
        What is about to happen (``"atomic cohort_summary.csv"``, ``"commit swap"``...),
        logged with ``NAPARI_XAI_KILL_LOG``.
    """
    if not _KILL.active:
        return
    with _KILL.lock:
        _KILL.count += 1
        if _KILL.log:
            with open(_KILL.log, "a", encoding="utf-8") as fh:
                fh.write(f"{os.getpid()} {_KILL.count} {name}\n")
        if _KILL.count == _KILL.kill_at:
            os.kill(os.getpid(), signal.SIGKILL)


def temporary_path(path: str | os.PathLike[str]) -> Path:
    """Return a unique hidden sibling of ``path`` to write before renaming it into place.

    Parameters
    ----------
    path : path-like
        The final file.

    Returns
    -------
    Path
        ``<parent>/.<name>.<12 hex digits>.tmp``.
    """
    p = Path(path)
    return p.with_name(f".{p.name}.{uuid.uuid4().hex[:12]}.tmp")


def is_temporary(path: str | os.PathLike[str], *, name: str | None = None) -> bool:
    """Tell whether ``path`` is a temporary left by :func:`atomic_write` (for ``name``)."""
    m = _TEMP_RE.match(Path(path).name)
    return m is not None and (name is None or m.group("name") == name)


@contextlib.contextmanager
def naming_path(path: str | os.PathLike[str]) -> Iterator[None]:
    """Make an ``OSError`` without a file name (a full disk, say) name ``path``.

    ``OSError(ENOSPC)`` raised deep inside a writer (pyarrow, zarr) often
    carries no file name; re-raised here as the same ``OSError`` subclass with
    ``path`` as its ``filename``, so the one-line message says which file.
    """
    try:
        yield
    except OSError as exc:
        if exc.filename is not None:
            raise
        err = exc.errno if exc.errno is not None else 0
        raise type(exc)(err, exc.strerror or str(exc), os.fspath(path)) from exc


def fsync_path(path: str | os.PathLike[str]) -> None:
    """Flush a file or folder to disk (errors ignored: not every file system can)."""
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def atomic_write(
    path: str | os.PathLike[str], write: Callable[[Path], object], *, fsync: bool = True
) -> Path:
    """Write a file atomically: ``write(tmp)`` then rename ``tmp`` over ``path``.

    Parameters
    ----------
    path : path-like
        The final file (its folder is created).
    write : callable
        ``write(tmp_path)`` writes the whole content to ``tmp_path``.
    fsync : bool
        Flush the file to disk before the rename (so a power cut keeps old or new).

    Returns
    -------
    Path
        ``path``.

    Raises
    ------
    Exception
        Whatever ``write`` raises; the temporary is removed and ``path`` is unchanged.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_path(target)
    try:
        with naming_path(target):
            write(tmp)
            if fsync:
                fsync_path(tmp)
            kill_point(f"atomic {target.name}")
            os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda p: p.write_text(text, encoding=encoding))


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda p: p.write_bytes(data))


def clean_temporaries(folder: str | os.PathLike[str], *, name: str | None = None) -> int:
    """Remove the temporary files a killed :func:`atomic_write` left in ``folder``.

    Parameters
    ----------
    folder : path-like
        Folder to clean (not recursive); missing folders are fine.
    name : str, optional
        Only temporaries of this final file name.

    Returns
    -------
    int
        Number of files removed.
    """
    root = Path(folder)
    if not root.is_dir():
        return 0
    removed = 0
    for p in root.iterdir():
        if p.is_file() and is_temporary(p, name=name):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
                removed += 1
    return removed
