"""Scoring a slide with no tissue fails clearly instead of writing an empty result."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def _glass_slide(path: Path) -> Path:
    import tifffile

    rng = np.random.default_rng(0)
    data = np.clip(244 + rng.normal(0, 1.5, (1024, 1024, 3)), 0, 255).astype(np.uint8)
    desc = "Aperio Image Library v12.0.0\r\n1024x1024 -> 1024x1024 - |AppMag = 20|MPP = 0.5"
    tifffile.imwrite(path, data, description=desc, tile=(256, 256), photometric="rgb")
    return path


def test_zero_tissue_tiles_is_an_error(tmp_path: Path, capsys) -> None:
    from napari_xai.cli import main

    slide = _glass_slide(tmp_path / "glass.svs")
    status = main(["score", str(slide), "--model", "demo", "--out", str(tmp_path / "out"),
                   "--device", "cpu"])  # fmt: skip
    err = capsys.readouterr().err
    assert status == 1
    assert "glass.svs" in err and "0 tiles scored" in err
    assert "0.00% tissue" in err and "--all-tiles" in err and "--min-tissue" in err
    status = main(["score", str(slide), "--model", "demo", "--out", str(tmp_path / "out"),
                   "--device", "cpu", "--allow-empty"])  # fmt: skip
    assert status == 0
    assert "0 tiles scored" in capsys.readouterr().out


def test_fluorescence_slide_with_a_brightfield_model_warns(shared_data, tmp_path: Path, capsys):
    from napari_xai.cli import main

    slide = shared_data / "slides" / "test3-DAPI-2.ndpi"
    main(["score", str(slide), "--model", "demo", "--out", str(tmp_path), "--device", "cpu",
          "--max-tiles", "4", "--allow-empty"])  # fmt: skip
    err = capsys.readouterr().err
    assert "test3-DAPI-2.ndpi looks like a fluorescence slide" in err and "brightfield" in err
    # the same warning is in the result's manifest
    import json

    manifest = json.loads(next(tmp_path.glob("*/manifest.json")).read_text())
    assert manifest["fit"]["slide_modality"] == "fluorescence"
    assert manifest["fit"]["model_stain"] == "unknown"
    assert any("fluorescence" in w for w in manifest["fit"]["warnings"])


def test_ihc_slide_with_an_he_model_warns(tmp_path: Path, capsys) -> None:
    """skimage's real IHC image as a slide, scored with a card trained on H&E."""
    import json

    import tifffile
    from skimage.data import immunohistochemistry

    from napari_xai.cli import main
    from napari_xai.core.models.card import ModelCard
    from napari_xai.core.models.demo import demo_model_path

    slide = tmp_path / "ihc.svs"
    desc = "Aperio Image Library v12.0.0\r\n512x512 -> 512x512 - |AppMag = 20|MPP = 0.5"
    tifffile.imwrite(slide, immunohistochemistry(), description=desc, tile=(256, 256),
                     photometric="rgb")  # fmt: skip
    card = ModelCard.from_json(demo_model_path() / "config.json")
    assert card.stain == ""
    he = ModelCard.from_dict({**card.to_dict(), "stain": "H&E"})
    assert he.stain == "H&E" and ModelCard.from_dict(he.to_wsinfer_config()).stain == "H&E"
    assert he.fit_warnings(slide="x", modality="brightfield", stain="H&E") == ()
    (warning,) = he.fit_warnings(slide="ihc.svs", modality="brightfield", stain="IHC")
    assert "ihc.svs looks like IHC" in warning and "trained on H&E" in warning
    assert card.fit_warnings(slide="x", modality="brightfield", stain="IHC")  # unknown card
    main(["score", str(slide), "--model", "demo", "--out", str(tmp_path / "out"),
          "--device", "cpu", "--max-tiles", "4", "--allow-empty"])  # fmt: skip
    err = capsys.readouterr().err
    assert "napari-xai: warning: ihc.svs looks like IHC" in err
    manifest = json.loads(next((tmp_path / "out").glob("*/manifest.json")).read_text())
    assert manifest["fit"]["slide_stain"] == "IHC" and manifest["fit"]["warnings"]


def test_a_slide_smaller_than_a_tile_says_so(shared_data, tmp_path: Path, capsys) -> None:
    """openslide's 16 x 16 px test slide: the error names its size, not a tissue miss."""
    from napari_xai.cli import main

    slide = shared_data / "slides" / "small.svs"
    status = main(["score", str(slide), "--model", "demo", "--out", str(tmp_path), "--device",
                   "cpu"])  # fmt: skip
    err = capsys.readouterr().err
    assert status == 1
    assert "small.svs: 0 tiles scored: the slide (16 x 16 px) is too small" in err
    assert "x 128 px (level 0)" in err and "--all-tiles" in err
    assert "tissue detection" not in err
    main(["score", str(slide), "--model", "demo", "--out", str(tmp_path), "--device", "cpu",
          "--all-tiles"])  # fmt: skip
    assert "1 tile scored at" in capsys.readouterr().out  # padded: the whole slide in one tile


def test_why_no_tiles_reads_the_manifest() -> None:
    from napari_xai.core.results import why_no_tiles

    big = {"slide": {"shape_rc": [4096, 4096]}, "grid": {"tile_size0": 512},
           "fit": {"slide_modality": "brightfield", "slide_stain": "IHC",
                   "slide_tissue_fraction": 0.004}}  # fmt: skip

    def asked(manifest: dict, min_tissue: float | None) -> dict:  # the grid it was scored with
        tissue = {"min_tissue": min_tissue or 0.5, "tissue": min_tissue is not None}
        return {**manifest, "params": tissue}

    assert why_no_tiles(asked(big, 0.5)) == (
        "tissue detection (brightfield, IHC) found 0.40% tissue and no tile reached min tissue 0.5"
    )
    assert why_no_tiles(asked(big, None)).startswith("the tile grid of the slide (4,096")
    # a 300 x 200 px slide is 23% of a 512 px tile: too small at 0.5, not at 0.2
    small = {**big, "slide": {"shape_rc": [200, 300]}}
    assert why_no_tiles(asked(small, 0.5)).startswith("the slide (300 x 200 px) is too small")
    assert why_no_tiles(asked(small, 0.2)).startswith("tissue detection")


def test_a_cohort_table_says_which_slides_do_not_fit_the_model(
    shared_data, tmp_path: Path, capsys
) -> None:
    """A fluorescence slide in a brightfield batch: its row and the CLI say so; H&E's is clean."""
    import pandas as pd

    from napari_xai.cli import main

    slides = [shared_data / "slides" / n for n in ("test3-DAPI-2.ndpi", "OS-1-detail.ome.tif")]
    rc = main(["batch", *map(str, slides), "--out", str(tmp_path), "--scheduler", "sync",
               "--device", "cpu", "--quiet"])  # fmt: skip
    assert rc == 0
    err = capsys.readouterr().err
    assert "WARNING test3-DAPI-2: test3-DAPI-2.ndpi looks like a fluorescence slide" in err
    assert "WARNING OS-1-detail" not in err
    summary = pd.read_csv(tmp_path / "cohort_summary.csv", keep_default_na=False)
    warned = dict(zip(summary["slide_id"], summary["fit_warnings"], strict=True))
    assert "brightfield model" in warned["test3-DAPI-2"] and warned["OS-1-detail"] == ""
