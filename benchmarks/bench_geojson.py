"""Benchmark: peak memory and time to open a big QuPath GeoJSON of detections.

Builds (in a temporary folder, never committed) a FeatureCollection of
QuPath-style detections, each a 16-vertex polygon with a classification and a
few measurements, about 600 bytes per feature (200 MB: about 334,000
detections), then in a fresh process measures

* ``read``: :func:`napari_xai.core.annotations.geojson.read_geojson` (streamed
  with ijson above ``STREAM_BYTES``);
* ``layers``: the same plus ``annotations_to_layer_data`` (what the napari reader
  returns: a Points layer of the detections, outlines in metadata),

each with the peak RSS of the process, its growth over the imports, and both as
multiples of the file size. Target: peak RSS under 3x the file size.

Usage::

    .venv/bin/python benchmarks/bench_geojson.py              # 200 MB
    .venv/bin/python benchmarks/bench_geojson.py --mb 20 --json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

_CHILD = r"""
import json, resource, sys, time
def rss():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
import numpy, pandas, shapely, ijson
from napari_xai.core.annotations.geojson import read_geojson
from napari_xai.core.layers.annotations import annotations_to_layer_data
base = rss()
t = time.perf_counter()
aset = read_geojson(sys.argv[1])
t_read = time.perf_counter() - t
read_peak = rss()
layers = []
if sys.argv[2] == "layers":
    layers = annotations_to_layer_data(aset, name="bench")
t_total = time.perf_counter() - t
print(json.dumps({"base_mb": base, "read_peak_mb": read_peak, "peak_mb": rss(),
                  "read_s": t_read, "total_s": t_total, "n": len(aset),
                  "layers": [ld[2] for ld in layers], "skipped": aset.report.n_skipped}))
"""


def write_detections(path: Path, *, mb: float, seed: int = 0) -> int:
    """Write a FeatureCollection of QuPath-style detections of about ``mb`` MB.

    Returns
    -------
    int
        Number of features written.
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    angles = np.linspace(0, 2 * np.pi, 16, endpoint=False)
    target = int(mb * 1e6)
    n = 0
    with open(path, "w", encoding="utf-8") as fh:
        fh.write('{"type":"FeatureCollection","features":[\n')
        written = 0
        while written < target:
            cx, cy = rng.uniform(0, 100_000, 2)
            r = rng.uniform(4, 9)
            ring = [[round(cx + r * np.cos(a), 2), round(cy + r * np.sin(a), 2)] for a in angles]
            ring.append(ring[0])
            cls = ("Tumor", [200, 0, 0]) if rng.random() < 0.4 else ("Stroma", [150, 200, 150])
            feature = {
                "type": "Feature",
                "id": f"{n:08x}-0000-4000-8000-{rng.integers(0, 2**47):012x}",
                "geometry": {"type": "Polygon", "coordinates": [ring]},
                "properties": {
                    "objectType": "detection",
                    "classification": {"name": cls[0], "color": cls[1]},
                    "measurements": {
                        "Nucleus: Area": round(float(np.pi * r * r), 3),
                        "Nucleus: Hematoxylin OD mean": round(float(rng.random()), 4),
                    },
                },
            }
            text = ("," if n else "") + json.dumps(feature, separators=(",", ":")) + "\n"
            fh.write(text)
            written += len(text)
            n += 1
        fh.write("]}\n")
    return n


def measure(path: Path, *, stage: str = "layers") -> dict[str, float]:
    """Open ``path`` in a fresh process; return its figures (see the module docstring)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path), stage],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    figures: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    size_mb = path.stat().st_size / 2**20
    figures["file_mb"] = size_mb
    figures["peak_x_file"] = figures["peak_mb"] / size_mb
    figures["growth_x_file"] = (figures["peak_mb"] - figures["base_mb"]) / size_mb
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=200.0, help="file size (default 200 MB)")
    parser.add_argument("--stage", choices=("read", "layers"), default="layers")
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="napari-xai-bench-geojson-") as tmp:
        path = Path(tmp) / "detections.geojson"
        n = write_detections(path, mb=args.mb)
        figures = measure(path, stage=args.stage)
    figures["n_written"] = n
    if args.json:
        print(json.dumps(figures))
        return 0
    print(
        f"{figures['file_mb']:.0f} MiB GeoJSON, {n} detections -> {figures['n']:.0f} read "
        f"({figures['layers']}): read {figures['read_s']:.1f} s, total {figures['total_s']:.1f} s"
    )
    print(
        f"peak RSS {figures['peak_mb']:.0f} MiB = {figures['peak_x_file']:.2f}x the file "
        f"(imports {figures['base_mb']:.0f} MiB; growth {figures['growth_x_file']:.2f}x; "
        f"after read {figures['read_peak_mb']:.0f} MiB)"
    )
    print(f"load: {os.getloadavg()[0]:.2f} (1-min average)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
