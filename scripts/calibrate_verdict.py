"""Calibrate the shortcut verdict's thresholds on planted-shortcut cohorts and their twins.

    python scripts/calibrate_verdict.py --train     # train the 27 tiny models (minutes, 1 core)
    python scripts/calibrate_verdict.py             # audit, fit, leave one kind out

For every planted marker (``napari_xai.demo.shortcut.PLANTED``: yellow 'R', green and blue
strokes, blue and black circles, black and green arrows, ruler, printed label) a
*shortcut* TinyCNN is trained with the mark on every tumour tile, a *partial*
shortcut with the mark on half the tumour tiles and a quarter of the normal ones
(both must ``fail``), and a *twin* with the mark on a random half of the tiles of
both classes (must ``pass``; ``--train`` writes their
weights to ``--weights``; the committed file is what the tests use). Each model
is saved as a WSInfer folder and audited (``audit_slide``, Grad-CAM, counterfactual
on) on two held-out slides: the mark on the tumour tiles only (``one``) and on
the tiles of both classes (``both``). The thresholds are then fitted on all
audits (``core/audit/calibration.py``), and refitted without each marker kind to
classify that kind (leave one kind out). Prints the per-audit figures, the
fitted ``VerdictThresholds`` and the leave-one-out table (markdown), and writes
``<out>/calibration.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import torch  # noqa: TID253

from napari_xai.core.audit.calibration import (
    CalibrationSample,
    classify,
    fit_thresholds,
    leave_one_group_out,
    sample_features,
)
from napari_xai.core.audit.verdict import VerdictThresholds
from napari_xai.core.options import AuditSpec, GridOptions
from napari_xai.demo import shortcut as sd

WEIGHTS = Path(__file__).resolve().parents[1] / "tests" / "data" / "planted_models.npz"


def train(weights: Path, *, n_per_class: int, epochs: int, seed: int) -> None:
    models = {}
    for name, kind, colour in sd.PLANTED:
        t0 = time.perf_counter()
        for role, cohort in sd.planted_cohorts(
            kind, colour, n_per_class=n_per_class, seed=seed
        ).items():
            models[f"{sd.planted_slug(name)}/{role}"] = sd.train_tiny_cnn(
                cohort, epochs=epochs, seed=seed
            )
        print(f"trained {name}: {time.perf_counter() - t0:.1f} s", flush=True)
    print(f"weights -> {sd.save_planted_weights(models, weights)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=WEIGHTS)
    parser.add_argument("--train", action="store_true", help="train the models first")
    parser.add_argument("--n-per-class", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("verdict-calibration"))
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.train:
        train(args.weights, n_per_class=args.n_per_class, epochs=args.epochs, seed=args.seed)
    from napari_xai.core.audit.slide import audit_slide
    from napari_xai.core.models.loading import load_model
    from napari_xai.core.models.wsinfer import save_wsinfer_model

    models = sd.load_planted_weights(args.weights)
    samples: list[CalibrationSample] = []
    base = VerdictThresholds()
    print(
        f"{'audit':34s} {'cf Δp':>6s} {'cf flip':>7s} {'att share/enr':>14s}  verdict (defaults)"
    )
    t_all = time.perf_counter()
    for name, kind, colour in sd.PLANTED:
        slug = sd.planted_slug(name)
        slides = {
            on: sd.write_cohort_slide(
                sd.planted_audit_cohort(kind, colour, on=on),
                args.out / "slides" / f"{slug}-{on}.tif",
            )
            for on in ("one", "both")
        }
        for role in ("shortcut", "partial", "twin"):
            folder = save_wsinfer_model(
                models[f"{slug}/{role}"], sd.make_card(name=f"{slug}-{role}"),
                args.out / "models" / slug / role, overwrite=True,
            )  # fmt: skip
            model = load_model(folder)
            for on, slide in slides.items():
                res = audit_slide(
                    slide, model, spec=AuditSpec(sanity=False), grid=GridOptions(mpp=0.5)
                )
                s = CalibrationSample(
                    slug, f"{name} / {role} / {on}", role != "twin", res.pairs,
                    res.counterfactual,
                )  # fmt: skip
                samples.append(s)
                f = sample_features(s.pairs, s.counterfactual, min_tiles=base.min_tiles)
                att = max(f.attention, key=lambda p: p[0] * p[1], default=(0.0, 0.0))
                print(f"{s.name:34s} {f.cf_dp:6.2f} {f.cf_flip:7.2f} "
                      f"{att[0]:7.2f}/{att[1]:<6.1f}  {res.verdict}", flush=True)  # fmt: skip
    t_audit = time.perf_counter() - t_all
    th, rep = fit_thresholds(samples)
    fitted = classify(samples, th)
    loo = leave_one_group_out(samples)
    # The attention line alone (as where no counterfactual can run), left out the same way.
    att_only = [dataclasses.replace(s, counterfactual=None) for s in samples]
    loo_att = leave_one_group_out(att_only)
    print(f"\n{len(samples)} audits in {t_audit:.0f} s")
    print(f"fitted on all: {th}")
    print(f"training errors: counterfactual line {rep['counterfactual_errors']}, attention line "
          f"{rep['attention_errors']} (of {len(samples)})")  # fmt: skip
    print(
        "\n| planted mark | model | marks on | cf Δp | cf flip | verdict (fit on all) | "
        "verdict (fit without this mark) | attention line alone (fit without it) | "
        "dp / flip / flip Δp floor / share / enrichment fitted without it |"
    )
    print("|---|---|---|---|---|---|---|---|---|")  # fmt: skip
    n_ok = n_att = 0
    for s, v in zip(samples, fitted, strict=True):
        f = sample_features(s.pairs, s.counterfactual, min_tiles=th.min_tiles)
        g = loo[s.group]
        v_loo = g["verdicts"][s.name]
        ok = (v_loo == "fail") if s.shortcut else (v_loo == "pass")
        n_ok += ok
        v_att = loo_att[s.group]["verdicts"][s.name]
        ok_att = (v_att == "fail") if s.shortcut else (v_att == "pass")
        n_att += ok_att
        t = g["thresholds"]
        mark, role, on = s.name.split(" / ")
        print(f"| {mark} | {role} | {on} | {f.cf_dp:.2f} | {f.cf_flip:.2f} | {v} | "
              f"{v_loo}{'' if ok else ' (wrong)'} | {v_att}{'' if ok_att else ' (wrong)'} | "
              f"{t['dp']:.2f} / {t['flip_rate']:.2f} / {t['flip_dp']:.2f} / "
              f"{t['share']:.2f} / {t['enrichment']:.1f} |")  # fmt: skip
    print(f"\nleave one kind out: {n_ok} of {len(samples)} audits right; attention line alone: "
          f"{n_att} of {len(samples)}")  # fmt: skip
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "calibration.json").write_text(
        json.dumps(
            {
                "thresholds": dataclasses.asdict(th),
                "fit": rep,
                "leave_one_out": loo,
                "leave_one_out_attention_only": loo_att,
                "samples": [
                    {"name": s.name, "shortcut": s.shortcut, "verdict": v,
                     **dataclasses.asdict(sample_features(s.pairs, s.counterfactual,
                                                          min_tiles=th.min_tiles))}
                    for s, v in zip(samples, fitted, strict=True)
                ],
            },
            indent=1,
        )
    )  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
