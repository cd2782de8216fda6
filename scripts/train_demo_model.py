"""Train the bundled demo tile classifier on synthetic patches (seeded, CPU, minutes).

Classes: background (glass), normal (stroma with sparse nuclei), tumour (dense,
large, dark nuclei), rendered by :func:`napari_xai.demo.synthetic.render_patch`
at 0.5 µm/px and resized with PIL to the model's 1.0 µm/px, exactly as the
scoring pipeline resizes slide tiles.

Usage::

    python scripts/train_demo_model.py                 # writes napari_xai/models/demo/
    python scripts/train_demo_model.py --out /tmp/demo --n-train 300 --epochs 4

Writes ``model.pt`` (state dict for ``napari_xai.core.models.demo:make_demo_cnn``),
``config.json`` (napari-xai card, also a WSInfer spec-1.0 config) and
``feature_stats.npz`` (the training tiles' features at the card's
``feature_layer``, for out-of-distribution scores), and prints the accuracy on
held-out patches (different seeds from training). ``--stats-only`` recomputes
``feature_stats.npz`` for the model already in ``--out`` (same training patches).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch  # noqa: TID253
from torch import nn  # noqa: TID253

from napari_xai.core.models.card import ModelCard
from napari_xai.core.models.demo import DEMO_ARCHITECTURE, demo_model_path, make_demo_cnn
from napari_xai.core.reader import resize_tile
from napari_xai.demo.synthetic import render_patch

CLASSES = ("background", "normal", "tumour")
TILE_SIZE = 64  # model pixels
MODEL_MPP = 1.0  # µm/px the model sees
PATCH_MPP = 0.5  # render_patch resolution
MEAN = (0.8, 0.6, 0.75)
STD = (0.15, 0.2, 0.15)


def make_patches(n_per_class: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Render ``n_per_class`` patches of each class, resized to the model's resolution."""
    rng = np.random.default_rng(seed)
    render_size = int(round(TILE_SIZE * MODEL_MPP / PATCH_MPP))
    x = np.empty((n_per_class * len(CLASSES), TILE_SIZE, TILE_SIZE, 3), np.uint8)
    y = np.empty(n_per_class * len(CLASSES), np.int64)
    i = 0
    for label, kind in enumerate(CLASSES):
        for _ in range(n_per_class):
            x[i] = resize_tile(render_patch(kind, size=render_size, rng=rng), TILE_SIZE)
            y[i] = label
            i += 1
    return x, y


def to_tensor(x: np.ndarray) -> torch.Tensor:
    t = torch.from_numpy(x).permute(0, 3, 1, 2).float().div(255.0)
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (t - mean) / std


def augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random flips, 90° rotations and a mild brightness/contrast jitter."""
    if torch.rand(1, generator=gen) < 0.5:
        x = x.flip(3)
    if torch.rand(1, generator=gen) < 0.5:
        x = x.flip(2)
    k = int(torch.randint(0, 4, (1,), generator=gen))
    x = torch.rot90(x, k, dims=(2, 3))
    gain = 1.0 + 0.1 * (torch.rand(x.shape[0], 1, 1, 1, generator=gen) - 0.5)
    shift = 0.2 * (torch.rand(x.shape[0], 3, 1, 1, generator=gen) - 0.5)
    return x * gain + shift


FEATURE_STATS = "feature_stats.npz"


def write_feature_stats(out: Path, x_train: np.ndarray, y_train: np.ndarray) -> Path:
    """Summarise the training patches' features of the model in ``out`` (for ood_score)."""
    from napari_xai.core.explore.features import FeatureCapture
    from napari_xai.core.explore.ood import fit_feature_stats, save_feature_stats
    from napari_xai.core.models.loading import load_model

    loaded = load_model(out, device="cpu")
    capture = FeatureCapture(loaded)
    with torch.inference_mode():
        for i in range(0, len(x_train), 256):
            capture(to_tensor(x_train[i : i + 256]))
    feats = capture.collect()["features"]
    stats = fit_feature_stats(feats, y_train, layer=capture.layer_name)
    path = save_feature_stats(stats, out / FEATURE_STATS)
    print(
        f"wrote {path}: {stats.n} training tiles, layer {stats.layer!r}, "
        f"99th-percentile distance {stats.reference:.3f}"
    )
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=demo_model_path())
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-train", type=int, default=400, help="patches per class")
    parser.add_argument("--n-test", type=int, default=200, help="held-out patches per class")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--stats-only", action="store_true", help="only recompute feature_stats.npz"
    )
    args = parser.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    x_train, y_train = make_patches(args.n_train, seed=args.seed)
    if args.stats_only:
        write_feature_stats(args.out, x_train, y_train)
        return 0
    x_test, y_test = make_patches(args.n_test, seed=args.seed + 10_000)
    print(
        f"rendered {len(x_train)} train + {len(x_test)} test patches "
        f"in {time.perf_counter() - t0:.0f} s"
    )

    model = make_demo_cnn(len(CLASSES))
    xt, yt = to_tensor(x_train), torch.from_numpy(y_train)
    xv, yv = to_tensor(x_test), torch.from_numpy(y_test)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    steps = args.epochs * int(np.ceil(len(xt) / 64))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(args.seed)
    t1 = time.perf_counter()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(xt), generator=gen)
        total = 0.0
        for i in range(0, len(xt), 64):
            idx = perm[i : i + 64]
            xb = augment(xt[idx], gen)
            loss = loss_fn(model(xb), yt[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        model.eval()
        with torch.no_grad():
            acc = float((model(xv).argmax(1) == yv).float().mean())
        print(
            f"epoch {epoch + 1}/{args.epochs}: loss {total / len(xt):.4f}, "
            f"held-out accuracy {acc:.4f}"
        )
    model.eval()
    with torch.no_grad():
        pred = model(xv).argmax(1).numpy()
    acc = float((pred == y_test).mean())
    confusion = np.zeros((len(CLASSES), len(CLASSES)), int)
    for t, p in zip(y_test, pred, strict=True):
        confusion[t, p] += 1
    print(
        f"trained in {time.perf_counter() - t1:.0f} s; held-out accuracy {acc:.4f} "
        f"on {len(y_test)} patches"
    )
    print("confusion (rows: true, cols: predicted):", CLASSES)
    print(confusion)

    args.out.mkdir(parents=True, exist_ok=True)
    n_params = sum(p.numel() for p in model.parameters())
    card = ModelCard(
        class_names=CLASSES,
        tile_size=TILE_SIZE,
        mpp=MODEL_MPP,
        mean=MEAN,
        std=STD,
        cam_layer="layer3",
        feature_layer="pool",
        feature_stats=FEATURE_STATS,
        name="napari-xai demo CNN",
        architecture=DEMO_ARCHITECTURE,
        training_data="synthetic",
        description=(
            f"Small ResNet-style CNN ({n_params:,} parameters) trained by "
            f"scripts/train_demo_model.py (seed {args.seed}, {args.epochs} epochs) on "
            f"{len(y_train)} synthetic H&E-like patches (render_patch: background, normal, "
            f"tumour) at {MODEL_MPP} µm/px; held-out accuracy {acc:.4f} on {len(y_test)} "
            "patches. For demonstrations only: not a diagnostic model."
        ),
    )
    torch.save(model.state_dict(), args.out / "model.pt")
    card.to_json(args.out / "config.json")
    write_feature_stats(args.out, x_train, y_train)
    (args.out / "training.json").write_text(
        json.dumps(
            {
                "seed": args.seed,
                "epochs": args.epochs,
                "n_train_per_class": args.n_train,
                "n_test_per_class": args.n_test,
                "held_out_accuracy": acc,
                "confusion": confusion.tolist(),
                "classes": list(CLASSES),
                "parameters": n_params,
            },
            indent=2,
        )
        + "\n"
    )
    size_kib = (args.out / "model.pt").stat().st_size / 1024
    print(f"wrote {args.out / 'model.pt'} ({size_kib:.0f} KiB) and {args.out / 'config.json'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
