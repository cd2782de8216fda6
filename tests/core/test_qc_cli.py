"""``napari-xai qc`` on a folder of real tiles and on real slides."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np


def _png(path: Path) -> np.ndarray:
    import imageio.v3 as iio

    return np.asarray(iio.imread(path))


def test_qc_folder_of_tiles(shared_data: Path, tmp_path: Path, capsys) -> None:
    from napari_xai.cli import main

    out = tmp_path / "qc"
    assert (
        main(["qc", str(shared_data / "patches" / "pen"), "--mpp", "0.5", "--out", str(out)]) == 0
    )
    rows = {r["stem"]: r for r in csv.DictReader((out / "qc_summary.csv").open())}
    assert set(rows) == {"tcga-green-pen", "tcga-red-pen", "wsi-blue-pen", "tcga-lung-rgb"}
    red = json.loads((out / "tcga-red-pen" / "qc.json").read_text())
    assert red["kind"] == "tile" and red["mpp"] == 0.5 and red["stain"] == "H&E"
    assert red["artefact_fractions"]["red_ink"] > 0.1  # a broad red stroke
    assert red["artefact_fraction"] == sum(red["artefact_fractions"].values())
    labels = _png(out / "tcga-red-pen" / "artefact_mask.png")
    assert labels.dtype == np.uint8 and labels.shape == (448, 471)
    assert abs(np.mean(labels == 4) - red["artefact_fractions"]["red_ink"]) < 1e-9
    clean = json.loads((out / "tcga-lung-rgb" / "qc.json").read_text())
    assert clean["artefact_fraction"] < 0.01 and clean["tissue_fraction"] > 0.6
    tissue = _png(out / "tcga-lung-rgb" / "tissue_mask.png")
    assert abs(tissue.mean() - clean["tissue_fraction"]) < 1e-9
    page = (out / "index.html").read_text()
    assert page.count('class="card"') == 4 and "tcga-green-pen/overlay.png" in page
    assert "tcga-red-pen.png: brightfield/H&E" in capsys.readouterr().out


def test_qc_slides_of_two_modalities(shared_data: Path, tmp_path: Path) -> None:
    from napari_xai.cli import main

    slides = shared_data / "slides"
    out = tmp_path / "qc"
    inputs = [str(slides / "CMU-1-Small-Region.svs"), str(slides / "test3-DAPI-2.ndpi")]
    assert main(["qc", *inputs, "--out", str(out)]) == 0
    he = json.loads((out / "CMU-1-Small-Region" / "qc.json").read_text())
    fl = json.loads((out / "test3-DAPI-2" / "qc.json").read_text())
    assert he["kind"] == "slide" and he["modality"] == "brightfield" and he["stain"] == "H&E"
    assert 0.2 < he["tissue_fraction"] < 0.5
    assert fl["modality"] == "fluorescence" and fl["artefact_fraction"] == 0.0
    assert any("fluorescence" in w for w in fl["warnings"])
    mask = _png(out / "test3-DAPI-2" / "tissue_mask.png")
    # the mask is at the stated downsample of the level-0 image
    assert abs(mask.shape[0] * fl["downsample"] - fl["shape_rc"][0]) <= fl["downsample"]


def test_qc_unreadable_input_is_named(tmp_path: Path, capsys) -> None:
    from napari_xai.cli import main

    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not an image")
    assert main(["qc", str(bad), "--out", str(tmp_path / "qc")]) == 1
    assert "broken.png" in capsys.readouterr().err


def test_qc_of_a_slide_agrees_with_the_masks_scoring_uses(
    shared_data: Path, tmp_path: Path
) -> None:
    """``napari-xai qc`` writes what :func:`slide_masks` (scoring's call) gives at that size.

    Both real H&E slides have a thumbnail at stroke resolution at 2048 px
    (downsample 2 and 1), where ``slide_masks`` skips the stroke pass: QC skips
    it too, so its artefact fraction and mask are scoring's.
    """
    from napari_xai.cli import main
    from napari_xai.core.masks import slide_masks
    from napari_xai.core.wsi import open_slide

    slides = shared_data / "slides"
    names = ("CMU-1-Small-Region.svs", "OS-1-detail.ome.tif")
    out = tmp_path / "qc"
    assert (
        main(["qc", *(str(slides / n) for n in names), "--max-size", "2048", "--out", str(out)])
        == 0
    )
    for name in names:
        with open_slide(slides / name) as slide:
            masks = slide_masks(slide, max_size=2048, strokes=True)
        qc = json.loads((out / name.split(".")[0] / "qc.json").read_text())
        assert qc["downsample"] == masks.downsample <= 2.1, name
        assert abs(qc["artefact_fraction"] - np.mean(masks.artefact_labels > 0)) < 1e-12, name
        assert abs(qc["tissue_fraction"] - masks.tissue_fraction) < 1e-12, name
        labels = _png(out / name.split(".")[0] / "artefact_mask.png")
        np.testing.assert_array_equal(labels, masks.artefact_labels, err_msg=name)
