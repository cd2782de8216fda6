"""Layers ▸ Visualize ▸ "Show tissue / artefact masks": run from napari's menu on a real slide."""

from __future__ import annotations

from pathlib import Path

import numpy as np

COMMAND = "napari-xai.show_masks"


def _menu_commands(menu_id: str) -> list[str]:
    from app_model.types import MenuItem
    from napari._app_model import get_app_model

    items = get_app_model().menus.get_menu(menu_id)
    return [i.command.id for i in items if isinstance(i, MenuItem)]


def test_masks_from_the_layers_menu(make_napari_viewer, qtbot, shared_data, tmp_path) -> None:
    from napari._app_model import get_app_model

    from napari_xai.core.masks import masks_key, slide_masks, write_masks

    viewer = make_napari_viewer(show=True)
    (image,) = viewer.open(shared_data / "slides" / "CMU-1-Small-Region.svs", plugin="napari-xai")
    assert COMMAND in _menu_commands("napari/layers/visualize")
    viewer.reset_view()
    qtbot.wait(200)
    before = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)

    app = get_app_model()
    app.commands.execute_command(COMMAND).result()  # what the menu entry does
    qtbot.waitUntil(lambda: "CMU-1-Small-Region artefacts" in viewer.layers, timeout=120_000)
    tissue = viewer.layers["CMU-1-Small-Region tissue"]
    artefacts = viewer.layers["CMU-1-Small-Region artefacts"]
    # the slide's own masks (no result folder: the thumbnail pass), drawn as outlines
    truth = slide_masks(image.metadata["slide"])
    np.testing.assert_array_equal(tissue.data > 0, truth.tissue)
    np.testing.assert_array_equal(artefacts.data, truth.artefact_labels)
    assert tissue.contour > 0 and artefacts.contour > 0
    assert tissue.metadata["masks_source"] == "thumbnail pass"
    assert artefacts.metadata["labels"][4] == "red ink"  # the class legend travels with it
    # out-of-focus tissue and folds are in the legend, each with its own outline colour
    from napari_xai.core.naming import ARTEFACT_COLOURS

    assert artefacts.metadata["labels"][5].startswith("out of focus")
    assert artefacts.metadata["labels"][6].startswith("tissue fold")
    for k in (5, 6):
        np.testing.assert_allclose(artefacts.colormap.map(k)[:3], ARTEFACT_COLOURS[k], atol=1e-3)
    qtbot.wait(200)
    after = viewer.screenshot(canvas_only=True, flash=False)[..., :3].astype(int)
    h, w = min(before.shape[0], after.shape[0]), min(before.shape[1], after.shape[1])
    changed = (np.abs(after[:h, :w] - before[:h, :w]).sum(-1) > 30).mean()
    assert 0.001 < changed < 0.1  # outlines drawn, the tissue under them still seen

    # a slide opened from a result folder shows the masks stored there (stroke pass)
    folder = tmp_path / "result"
    planted = truth.artefact_labels.copy()
    planted[10:20, 10:20] = 2
    from dataclasses import replace

    slide = image.metadata["slide"]
    write_masks(
        replace(truth, artefact_labels=planted),
        folder,
        key=masks_key(slide, max_size=1024, strokes=True),
    )
    image.metadata["result_folder"] = str(folder)
    viewer.layers.selection.active = image
    app.commands.execute_command(COMMAND).result()
    qtbot.waitUntil(
        lambda: (
            "CMU-1-Small-Region artefacts" in viewer.layers
            and (viewer.layers["CMU-1-Small-Region artefacts"].data[10:20, 10:20] == 2).all()
        ),
        timeout=120_000,
    )
    tissue = viewer.layers["CMU-1-Small-Region tissue"]
    assert Path(tissue.metadata["masks_source"].split(" (")[0]) == folder
    assert [n for n in (layer.name for layer in viewer.layers) if n.endswith("tissue")] == [
        "CMU-1-Small-Region tissue"
    ]  # replaced, not added twice


def test_no_slide_says_so(make_napari_viewer) -> None:
    from napari_xai._masks_menu import show_masks

    viewer = make_napari_viewer()
    viewer.add_image(np.zeros((8, 8)))
    assert show_masks(viewer) is None  # a notification asks for a slide; nothing is added
    assert len(viewer.layers) == 1
