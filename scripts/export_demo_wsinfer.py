"""Write the bundled demo model as a WSInfer model folder.

Reads ``napari_xai/models/demo/`` (state dict + card, made by
``scripts/train_demo_model.py``) and writes ``napari_xai/models/demo_wsinfer/``:
``torchscript_model.pt`` + ``config.json`` (WSInfer spec 1.0, napari-xai fields
under ``napari_xai``), loadable by WSInfer (``wsinfer run --model-path ...
--config ...``), QuPath's WSInfer extension and napari-xai alike.

Usage: ``python scripts/export_demo_wsinfer.py [--out FOLDER]``
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch  # noqa: TID253 (a script, not imported by napari)

from napari_xai.core.models.demo import demo_model_path, load_demo_model
from napari_xai.core.models.wsinfer import (
    CONFIG_NAME,
    TORCHSCRIPT_NAME,
    load_wsinfer_folder,
    save_wsinfer_model,
    wsinfer_transform,
)


def write_feature_stats(demo: Any, folder: Path) -> None:
    """Copy the training feature summary, named for the scripted model's layer.

    TorchScript has no hooks, so the scripted copy gives features at the
    ``forward_features`` boundary; the demo CNN's ``pool`` is the mean of exactly
    that output, so the summary holds as it is.
    """
    from dataclasses import replace

    from napari_xai.core.explore.ood import load_feature_stats, save_feature_stats

    if not demo.card.feature_stats:
        return
    stats = load_feature_stats(demo_model_path() / demo.card.feature_stats)
    save_feature_stats(replace(stats, layer="forward_features"), folder / demo.card.feature_stats)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=demo_model_path().parent / "demo_wsinfer")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    demo = load_demo_model(device="cpu")
    folder = save_wsinfer_model(demo.module, demo.card, args.out, overwrite=True)
    write_feature_stats(demo, folder)

    # Same predictions from the scripted copy as from the original.
    module, card = load_wsinfer_folder(folder)
    rng = torch.Generator().manual_seed(0)
    tiles = torch.randint(0, 256, (4, card.tile_size, card.tile_size, 3), generator=rng)
    x = wsinfer_transform(tiles.to(torch.uint8), card)
    with torch.no_grad():
        diff = (module(x) - demo.module(x)).abs().max().item()
    if diff > 1e-4:
        print(f"scripted model differs from the original by {diff}", file=sys.stderr)
        return 1
    sizes = {p.name: p.stat().st_size for p in (folder / TORCHSCRIPT_NAME, folder / CONFIG_NAME)}
    print(f"wrote {folder}: " + ", ".join(f"{k} {v / 1e6:.2f} MB" for k, v in sizes.items()))
    print(f"max |logit difference| scripted vs original: {diff:.2e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
