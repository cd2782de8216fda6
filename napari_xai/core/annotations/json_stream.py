"""Bounded JSON reading for annotation files: depth checked without recursion, big files streamed.

Python's ``json`` module recurses once per nesting level, so a file of 100,000
nested brackets ends in ``RecursionError``; and it builds the whole document as
Python objects, about 15-20 times the size of the file. Here:

- :func:`check_depth` scans the raw bytes (vectorised, string-aware, chunk by
  chunk) and refuses a document nested deeper than :data:`MAX_DEPTH` before any
  parser sees it;
- :func:`iter_features` yields the features of a big FeatureCollection one at a
  time (``ijson``), so the caller converts each one to compact arrays and never
  holds the whole document.

Only numpy and ijson are imported (ijson inside the function).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["MAX_DEPTH", "STREAM_BYTES", "JSONDepthError", "check_depth", "iter_features"]

#: Deepest nesting accepted. GeoJSON needs 5 (MultiPolygon coordinates inside a
#: feature inside a collection); properties and GeometryCollections add a few.
MAX_DEPTH = 64
#: Files larger than this are streamed feature by feature instead of parsed whole.
STREAM_BYTES = 32 * 2**20
_CHUNK = 2**20  # transient arrays stay around 15 MB
_QUOTE, _BACKSLASH = 34, 92
_STEP = np.zeros(256, np.int8)
_STEP[[ord("["), ord("{")]] = 1
_STEP[[ord("]"), ord("}")]] = -1


class JSONDepthError(ValueError):
    """A JSON document nested deeper than the limit (the message names the file)."""


def _unescaped_quotes(a: np.ndarray[Any, Any], carry_bs: int) -> np.ndarray[Any, Any]:
    """Positions of the quotes in ``a`` not escaped by an odd run of backslashes."""
    q = np.flatnonzero(a == _QUOTE)
    if not q.size or not (carry_bs or (a == _BACKSLASH).any()):
        return q
    keep = np.ones(q.size, bool)
    prev = np.where(q > 0, a[np.maximum(q - 1, 0)], -1)
    suspects = np.flatnonzero((prev == _BACKSLASH) | ((q == 0) & (carry_bs > 0)))
    for k in suspects:  # rare: only quotes right after a backslash
        i, run = int(q[k]) - 1, 0
        while i >= 0 and a[i] == _BACKSLASH:
            run += 1
            i -= 1
        if i < 0:
            run += carry_bs
        keep[k] = run % 2 == 0
    return q[keep]


def _trailing_backslashes(a: np.ndarray[Any, Any], carry_bs: int) -> int:
    not_bs = np.flatnonzero(a != _BACKSLASH)
    if not not_bs.size:
        return carry_bs + int(a.size)
    return int(a.size - 1 - not_bs[-1])


def check_depth(
    path: str | os.PathLike[str], *, limit: int = MAX_DEPTH, chunk_size: int = _CHUNK
) -> int:
    r"""Return the deepest nesting of a JSON file, refusing it past ``limit``.

    Brackets inside strings (with ``\"`` escapes) are not counted. The scan is
    iterative and reads ``chunk_size`` bytes at a time.

    Parameters
    ----------
    path : path-like
        The JSON file.
    limit : int
        Deepest nesting accepted.
    chunk_size : int
        Bytes read per step.

    Returns
    -------
    int
        The deepest nesting found.

    Raises
    ------
    JSONDepthError
        When some value is nested deeper than ``limit`` (the message gives the
        byte offset).
    """
    depth = deepest = 0
    in_string = False
    carry_bs = 0
    offset = 0
    with open(path, "rb") as fh:
        while True:
            chunk = fh.read(chunk_size)
            if not chunk:
                return deepest
            a = np.frombuffer(chunk, np.uint8)
            quotes = _unescaped_quotes(a, carry_bs if in_string else 0)
            all_steps = _STEP[a]
            pos = np.flatnonzero(all_steps)
            if pos.size:
                # a bracket is outside strings when an even number of quotes precede it
                parity = (np.searchsorted(quotes, pos) + int(in_string)) & 1
                pos = pos[parity == 0]
                curve = depth + np.cumsum(all_steps[pos], dtype=np.int64)
                if curve.size:
                    top = int(curve.max())
                    if top > limit:
                        where = offset + int(pos[int(np.argmax(curve > limit))])
                        raise JSONDepthError(
                            f"{path}: JSON nested more than {limit} levels deep "
                            f"(at byte {where}); GeoJSON needs fewer than 10, refused"
                        )
                    deepest = max(deepest, top)
                    depth = int(curve[-1])
            in_string = bool((quotes.size + int(in_string)) % 2)
            carry_bs = _trailing_backslashes(a, carry_bs) if in_string else 0
            offset += a.size


def first_char(path: str | os.PathLike[str]) -> str:
    """Return the first non-blank character of a file (after a UTF-8 BOM), or ``""``."""
    with open(path, "rb") as fh:
        head = fh.read(4096)
    text = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    return chr(text[0]) if text else ""


def iter_features(path: str | os.PathLike[str]) -> Iterator[Any]:
    """Yield the features of a FeatureCollection (or a bare array of features) one by one.

    Numbers come back as ``int``/``float`` (never strings). Call
    :func:`check_depth` first: ijson's prefixes grow with the nesting depth.

    Parameters
    ----------
    path : path-like
        The GeoJSON file.

    Yields
    ------
    object
        Each element of ``features`` (top-level object) or of the top-level array.

    Raises
    ------
    ijson.JSONError
        When the JSON breaks off or is malformed (after the features before it).
    """
    import ijson

    prefix = "item" if first_char(path) == "[" else "features.item"
    with open(Path(path), "rb") as fh:
        yield from ijson.items(fh, prefix, use_float=True)
