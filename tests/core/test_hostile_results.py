"""Hostile result folders and reports: manifests never point outside, HTML is escaped."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_xai.core.results import (
    MANIFEST_NAME,
    ResultWriter,
    is_complete,
    load_result,
    read_manifest,
)

HOSTILE_NAMES = [
    "../secret.parquet",
    "sub/../../secret.parquet",
    "/etc/passwd",
    "",
    7,
]


def _result(tmp_path: Path) -> Path:
    folder = tmp_path / "out" / "slide"
    with ResultWriter(folder) as writer:
        writer.write_tiles(pd.DataFrame({"row": [0], "col": [0], "p_tumour": [0.5]}))
        writer.commit({"params_sha256": "p", "model": {"sha256": "m"}})
    return folder


def _set_file(folder: Path, name: object) -> Path:
    manifest = folder / MANIFEST_NAME
    body = json.loads(manifest.read_text())
    body["files"]["tiles"] = name
    manifest.write_text(json.dumps(body))
    return manifest


def test_a_clean_folder_loads(tmp_path: Path) -> None:
    folder = _result(tmp_path)
    assert len(load_result(folder).tiles) == 1


@pytest.mark.parametrize("name", HOSTILE_NAMES)
def test_manifest_paths_outside_the_folder_are_refused(tmp_path: Path, name: object) -> None:
    folder = _result(tmp_path)
    secret = tmp_path / "out" / "secret.parquet"
    pd.DataFrame({"row": [9, 9]}).to_parquet(secret)
    manifest = _set_file(folder, name)
    with pytest.raises(ValueError, match=rf"{MANIFEST_NAME}: files\['tiles'\]") as info:
        load_result(folder)
    assert str(manifest) in str(info.value)
    with pytest.raises(ValueError, match="files"):
        read_manifest(folder)
    # resume never trusts such a folder
    assert not is_complete(folder, {}, "m")


def test_a_link_out_of_the_folder_is_refused(tmp_path: Path) -> None:
    folder = _result(tmp_path)
    outside = tmp_path / "elsewhere.parquet"
    pd.DataFrame({"row": [1]}).to_parquet(outside)
    (folder / "link.parquet").symlink_to(outside)
    _set_file(folder, "link.parquet")
    with pytest.raises(ValueError, match="resolves outside the result folder"):
        load_result(folder)


def test_napari_reader_refuses_the_folder(tmp_path: Path) -> None:
    pytest.importorskip("napari")
    from napari_xai._results_reader import read_result_folder

    folder = _result(tmp_path)
    _set_file(folder, "../../x.parquet")
    with pytest.raises(
        ValueError, match=r"manifest\.json: files\['tiles'\] '\.\./\.\./x\.parquet'"
    ):
        read_result_folder(str(folder))


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attrs: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += [k for k, _ in attrs]

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def test_model_strings_are_escaped_in_report_html(tmp_path: Path) -> None:
    from napari_xai.core.audit.attention import ARTEFACT, TISSUE, audit_attention
    from napari_xai.core.audit.report import write_report

    rng = np.random.default_rng(0)
    n = 8
    images = rng.integers(0, 255, (n, 16, 16, 3), dtype=np.uint8)
    maps = rng.random((n, 16, 16)).astype(np.float32)
    regions = np.full((n, 16, 16), TISSUE, np.uint8)
    regions[:, :4, :4] = ARTEFACT
    maps[:4, :4, :4] = 50.0
    evil = ["<script>alert(1)</script>", '<b onmouseover="alert(2)">x</b>']
    pred = [evil[0]] * 4 + [evil[1]] * 4
    att = audit_attention(maps, regions, pred_class=pred)
    report = write_report(
        tmp_path,
        attention=att,
        tile_images=images,
        tile_maps=maps,
        pred_class=pred,
        title="<img src=x onerror=alert(3)>",
    )
    text = report.read_text(encoding="utf-8")
    parsed = _Tags()
    parsed.feed(text)
    assert "script" not in parsed.tags
    assert "onmouseover" not in parsed.attrs and "onerror" not in parsed.attrs
    assert parsed.tags.count("b") == text.count("<b>")  # only the report's own <b>
    # the strings are shown, as text
    joined = "".join(parsed.text)
    assert evil[0] in joined and evil[1] in joined
    assert "&lt;script&gt;" in text
