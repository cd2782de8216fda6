"""Write a planted-shortcut cohort and its clean twin (PNG tiles + cohort.csv).

    python scripts/make_shortcut_cohort.py --out shortcut-cohort [--n-per-class 200]

Writes, for each of ``shortcut`` (every tumour tile carries a yellow marker-pen
"R" near its bottom-right corner) and ``clean`` (the same tiles without it):

    <out>/<name>/tiles/<label>_<i>.png
    <out>/<name>/cohort.csv      slide, label, site, scanner
    <out>/<name>/regions.npz     per-tile region maps (tissue / artefact), labels

and a held-out audit set ``<out>/audit`` (marker on tumour tiles, as in the
shortcut cohort). The ``site`` column tells the story behind the shortcut: in
the shortcut cohort tumour tiles come mostly from site A, the lab that marks
its tumour slides; in the clean cohort sites are random. ``scanner`` is random
in both. ``napari-xai audit --cohort <out>/shortcut/cohort.csv`` flags ``site``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd  # noqa: TID253
from PIL import Image

from napari_xai.demo.shortcut import CLASS_NAMES, ShortcutCohort, make_shortcut_cohort


def write_cohort(cohort: ShortcutCohort, folder: Path, *, confound_site: bool, seed: int) -> Path:
    tiles = folder / "tiles"
    tiles.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i, (img, label) in enumerate(zip(cohort.images, cohort.labels, strict=True)):
        name = CLASS_NAMES[int(label)]
        path = tiles / f"{name}_{i:04d}.png"
        Image.fromarray(img).save(path)
        if confound_site:
            p_a = 0.9 if name == "tumour" else 0.1
        else:
            p_a = 0.5
        rows.append(
            {
                "slide": f"tiles/{path.name}",
                "label": name,
                "site": "A" if rng.random() < p_a else "B",
                "scanner": str(rng.choice(["S1", "S2"])),
            }
        )
    csv = folder / "cohort.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    np.savez_compressed(
        folder / "regions.npz",
        regions=cohort.regions,
        labels=cohort.labels,
        has_marker=cohort.has_marker,
    )
    return csv


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("shortcut-cohort"))
    parser.add_argument("--n-per-class", type=int, default=200)
    parser.add_argument("--n-audit", type=int, default=40, help="held-out tiles per class")
    parser.add_argument("--size", type=int, default=64, help="tile side in pixels")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name, marker in (("shortcut", True), ("clean", False)):
        cohort = make_shortcut_cohort(
            args.n_per_class, size=args.size, marker=marker, seed=args.seed
        )
        csv = write_cohort(cohort, args.out / name, confound_site=marker, seed=args.seed)
        print(
            f"{name}: {len(cohort)} tiles, {int(cohort.has_marker.sum())} with the marker -> {csv}"
        )
    audit = make_shortcut_cohort(args.n_audit, size=args.size, marker=True, seed=args.seed + 100)
    csv = write_cohort(audit, args.out / "audit", confound_site=True, seed=args.seed + 100)
    print(f"audit: {len(audit)} held-out tiles -> {csv}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
