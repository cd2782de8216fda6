"""Benchmark: resume a scored 100-slide cohort, with and without ``--verify``.

Writes N small synthetic slides (mosaics of ``render_patch`` tiles, the demo
model's 64 px at 1 µm/px), scores them once with
:func:`napari_xai.core.batch.run_batch` (``scheduler="sync"``; not timed), then
times three resumes of the same cohort:

1. **resume**: sizes and zarr chunk listings of every result folder checked;
2. **resume --verify**: every listed file and chunk hashed against the manifest;
3. **resume --verify, one damaged**: one ``tiles.parquet`` with a flipped byte,
   which only the hashes can see; that slide is scored again (a ``recompute``
   event), the others are reused.

Usage::

    .venv/bin/python benchmarks/bench_resume.py              # 100 slides
    .venv/bin/python benchmarks/bench_resume.py --slides 20 --grid 6 8

Quote the figures with the machine load printed at the end.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_batch import write_mosaic_slide  # type: ignore[import-not-found]


def _resume(slides: Path, out: Path, *, verify: bool) -> tuple[float, list[str], int]:
    from napari_xai.core.batch import iter_batch
    from napari_xai.core.options import BatchOptions
    from napari_xai.core.progress import drive

    events: list[str] = []
    t = time.perf_counter()
    res = drive(
        iter_batch(
            slides,
            "demo",
            out,
            batch=BatchOptions(scheduler="sync", verify=verify, torch_threads=1),
        ),
        lambda e: events.append(e.kind),
    )
    elapsed = time.perf_counter() - t
    return elapsed, events, int(res.summary["reused"].sum())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slides", type=int, default=100)
    parser.add_argument("--grid", type=int, nargs=2, default=(10, 12), help="tiles per slide")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    from napari_xai.core.batch import run_batch
    from napari_xai.core.options import BatchOptions

    with tempfile.TemporaryDirectory(prefix="napari-xai-bench-resume-") as tmp:
        slides = Path(tmp) / "slides"
        slides.mkdir()
        from napari_xai.demo.synthetic import render_patch

        rng = np.random.default_rng(0)
        pool = {
            k: [render_patch(k, size=64, rng=rng) for _ in range(6)]
            for k in ("background", "normal", "tumour")
        }
        for i in range(args.slides):
            write_mosaic_slide(
                slides / f"s{i:03d}.tif",
                seed=i,
                grid_rc=tuple(args.grid),
                tumour=i % 2 == 0,
                pool=pool,
            )
        out = Path(tmp) / "out"
        t = time.perf_counter()
        run_batch(slides, "demo", out, batch=BatchOptions(scheduler="sync", torch_threads=1))
        t_score = time.perf_counter() - t
        n_files = sum(1 for p in out.rglob("*") if p.is_file())
        size_mb = sum(p.stat().st_size for p in out.rglob("*") if p.is_file()) / 2**20
        print(
            f"{args.slides} slides of {args.grid[0]}x{args.grid[1]} tiles scored in "
            f"{t_score:.1f} s: {n_files} files, {size_mb:.1f} MiB of results"
        )
        for verify in (False, True):
            s, events, reused = _resume(slides, out, verify=verify)
            label = "resume --verify" if verify else "resume"
            print(
                f"{label:>16}: {s:.2f} s ({1000 * s / args.slides:.1f} ms/slide), "
                f"{reused}/{args.slides} reused"
            )
        tiles = out / "s000" / "tiles.parquet"
        data = bytearray(tiles.read_bytes())
        data[len(data) // 2] ^= 0xFF
        tiles.write_bytes(bytes(data))
        s, events, reused = _resume(slides, out, verify=True)
        print(
            f"{'one damaged':>16}: {s:.2f} s, {reused}/{args.slides} reused, "
            f"{events.count('recompute')} recompute event(s)"
        )
    print(f"load: {os.getloadavg()[0]:.2f} (1-min average), {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))
    raise SystemExit(main())
