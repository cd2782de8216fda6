"""Train the shortcut and the clean model on a planted-shortcut cohort, then audit both.

    python scripts/make_shortcut_cohort.py --out shortcut-cohort
    python scripts/train_shortcut_model.py --cohort shortcut-cohort --out shortcut-models

For each of ``shortcut`` and ``clean``: trains a TinyCNN on
``<cohort>/<name>/tiles`` (seconds on a CPU), saves it as TorchScript with its
model card (``<out>/<name>.pt``, loadable by ``napari-xai score/explain/audit``),
explains the held-out audit tiles (Integrated Gradients, positive part; plus
plain Saliency and Grad-CAM for comparison), audits where the attribution
lands and writes ``<out>/<name>/report.html`` + ``audit.json``. Prints, per
model and method, the share of attribution on the marker and the verdict; also
the accuracy on audit tiles with the marker moved to every tile ("swap test").
Without ``--cohort`` it builds the cohorts in memory.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd  # noqa: TID253
import torch  # noqa: TID253
from PIL import Image

from napari_xai.core.audit.attention import ARTEFACT, audit_attention
from napari_xai.core.audit.report import write_report
from napari_xai.demo import shortcut as sd


def load_cohort(folder: Path) -> sd.ShortcutCohort:
    table = pd.read_csv(folder / "cohort.csv")
    images = np.stack([np.asarray(Image.open(folder / p).convert("RGB")) for p in table["slide"]])
    z = np.load(folder / "regions.npz")
    return sd.ShortcutCohort(images, z["labels"].astype(np.int64), z["regions"], z["has_marker"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cohort", type=Path, default=None, help="output of make_shortcut_cohort")
    parser.add_argument("--out", type=Path, default=Path("shortcut-models"))
    parser.add_argument("--n-per-class", type=int, default=200, help="(in-memory cohorts only)")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--check-every-epoch", action="store_true",
        help="fail fast: audit saliency on 16 marked held-out tiles after every epoch",
    )  # fmt: skip
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    from napari_xai.core.models.loading import save_torchscript

    if args.cohort is not None:
        train = {n: load_cohort(args.cohort / n) for n in ("shortcut", "clean")}
        audit_set = load_cohort(args.cohort / "audit")
    else:
        train = {
            "shortcut": sd.make_shortcut_cohort(args.n_per_class, marker=True, seed=args.seed),
            "clean": sd.make_shortcut_cohort(args.n_per_class, marker=False, seed=args.seed),
        }
        audit_set = sd.make_shortcut_cohort(40, marker=True, seed=args.seed + 100)
    swap = sd.make_shortcut_cohort(
        len(audit_set) // 2, marker=True, seed=args.seed + 100, marker_classes=sd.CLASS_NAMES
    )
    clean_test = sd.make_shortcut_cohort(len(audit_set) // 2, marker=False, seed=args.seed + 200)
    marked = audit_set.has_marker
    args.out.mkdir(parents=True, exist_ok=True)
    print(
        f"audit set: {len(audit_set)} tiles, {int(marked.sum())} with the marker "
        f"(marker area {float((audit_set.regions[marked] == ARTEFACT).mean()):.1%} of those tiles)"
    )
    print(
        f"{'model':9s} {'method':22s} {'marker share':>12s} {'median/tile':>11s} "
        f"{'enrichment':>10s} {'flagged':>8s} verdict"
    )
    check = np.flatnonzero(marked)[:16]
    for name, cohort in train.items():

        def fail_fast(epoch: int, m: torch.nn.Module, _name: str = name) -> None:
            # Explainability check every epoch: where does the model look on marked tiles?
            maps = sd.explain(m, audit_set.images[check], method="saliency")
            res = audit_attention(maps, audit_set.regions[check])
            print(f"  {_name} epoch {epoch + 1}: {res.shares['artefact']:.0%} of saliency on "
                  f"the marker, {int(res.flagged.sum())}/{len(check)} tiles flagged")  # fmt: skip

        t0 = time.perf_counter()
        model = sd.train_tiny_cnn(
            cohort, epochs=args.epochs, seed=args.seed,
            on_epoch=fail_fast if args.check_every_epoch else None,
        )  # fmt: skip
        t_train = time.perf_counter() - t0
        card = sd.make_card(
            name=f"tiny-{name}",
            size=cohort.images.shape[1],
            description=f"TinyCNN trained on the {name} planted-shortcut cohort (napari-xai demo)",
        )
        save_torchscript(model, card, args.out / f"{name}.pt")
        probs = sd.predict(model, audit_set.images)
        pred = [sd.CLASS_NAMES[i] for i in probs.argmax(1)]
        acc = float((probs.argmax(1) == audit_set.labels).mean())
        acc_clean = float(
            (sd.predict(model, clean_test.images).argmax(1) == clean_test.labels).mean()
        )
        normal = swap.labels == 0
        fooled = float((sd.predict(model, swap.images).argmax(1)[normal] == 1).mean())
        main_att = None
        for method in ("integrated_gradients", "saliency", "grad_cam"):
            t1 = time.perf_counter()
            from napari_xai.core.attribution import explain_tiles

            maps = explain_tiles(model, sd.to_tensor(audit_set.images), method=method,
                                 n_steps=16, batch_size=64) if method != "grad_cam" else \
                explain_tiles(model, sd.to_tensor(audit_set.images), method=method,
                              batch_size=64)  # fmt: skip
            res = audit_attention(maps, audit_set.regions, pred_class=pred, sign="positive")
            sub = audit_attention(maps[marked], audit_set.regions[marked], sign="positive")
            print(f"{name:9s} {method:22s} {sub.shares['artefact']:12.1%} "
                  f"{np.median(sub.tile_shares[:, ARTEFACT]):11.1%} "
                  f"{sub.enrichment['artefact']:10.1f} "
                  f"{int(res.flagged.sum()):4d}/{len(res.flagged):<3d} "
                  f"{res.verdict}  ({time.perf_counter() - t1:.1f} s)")  # fmt: skip
            if method == "integrated_gradients":
                main_att, main_maps = res, maps
        assert main_att is not None
        write_report(
            args.out / name,
            attention=main_att,
            tile_images=audit_set.images,
            tile_maps=main_maps,
            pred_class=pred,
            title=f"Shortcut audit: {name} model (Integrated Gradients)",
            extra={"model": card.name, "accuracy_audit_set": acc, "accuracy_no_marker": acc_clean,
                   "normal_called_tumour_with_marker": fooled, "train_s": t_train},
        )  # fmt: skip
        print(f"{name:9s} train {t_train:.1f} s; accuracy: audit set {acc:.2f}, without marker "
              f"{acc_clean:.2f}; normal tiles called tumour once marked: {fooled:.0%}; "
              f"report {args.out / name / 'report.html'}")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
