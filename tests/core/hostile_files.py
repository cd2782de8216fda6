"""Small files that lie: built by the tests, never committed."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path


def write_declared_tiff(
    path: Path, *, shape_rc: tuple[int, int] = (1_000_000, 1_000_000), tile: int = 4096
) -> Path:
    """Write a tiled RGB TIFF that declares ``shape_rc`` pixels but holds one tile.

    Every tile entry points at the same deflate-compressed blank tile, so the
    file stays small (about 0.5 MB for 1e6 x 1e6 px) while its header claims
    a terapixel image. Nothing of the declared size is ever written.
    """
    rows, cols = shape_rc
    n_tiles = -(-rows // tile) * -(-cols // tile)
    blob = zlib.compress(bytes(tile * tile * 3), 9)
    header = 8
    tags_at = header
    n_tags = 11
    ifd_size = 2 + n_tags * 12 + 4
    bps_at = tags_at + ifd_size
    offsets_at = bps_at + 6
    counts_at = offsets_at + 4 * n_tiles
    blob_at = counts_at + 4 * n_tiles
    entries = [
        (256, 4, 1, cols),  # ImageWidth
        (257, 4, 1, rows),  # ImageLength
        (258, 3, 3, bps_at),  # BitsPerSample 8,8,8
        (259, 3, 1, 8),  # Compression: deflate
        (262, 3, 1, 2),  # Photometric: RGB
        (277, 3, 1, 3),  # SamplesPerPixel
        (284, 3, 1, 1),  # PlanarConfiguration: contig
        (322, 3, 1, tile),  # TileWidth
        (323, 3, 1, tile),  # TileLength
        (324, 4, n_tiles, offsets_at),  # TileOffsets
        (325, 4, n_tiles, counts_at),  # TileByteCounts
    ]
    out = bytearray(b"II*\x00" + struct.pack("<I", tags_at))
    out += struct.pack("<H", n_tags)
    for tag, typ, count, value in entries:
        if typ == 3 and count == 1:
            out += struct.pack("<HHIHH", tag, typ, count, value, 0)
        else:
            out += struct.pack("<HHII", tag, typ, count, value)
    out += struct.pack("<I", 0)
    out += struct.pack("<HHH", 8, 8, 8)
    out += struct.pack(f"<{n_tiles}I", *([blob_at] * n_tiles))
    out += struct.pack(f"<{n_tiles}I", *([len(blob)] * n_tiles))
    out += blob
    path.write_bytes(bytes(out))
    return path
