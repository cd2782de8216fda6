"""Hostile result folders and reports: manifests never point outside, HTML is escaped."""

from __future__ import annotations

import hashlib
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from napari_xai.core.results import (
    MANIFEST_NAME,
    ResultWriter,
    check_files,
    check_result,
    hash_params,
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
    assert check_result(folder, {}, "m") is not None


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


# --------------------------------------------------------------------------- integrity


def _result_with_maps(tmp_path: Path) -> Path:
    """A folder with a tiles table and a two-level probability pyramid."""
    folder = tmp_path / "out" / "maps"
    rng = np.random.default_rng(0)
    with ResultWriter(folder) as writer:
        writer.write_tiles(pd.DataFrame({"row": range(50), "p_tumour": rng.random(50)}))
        writer.write_heatmap(
            "probabilities",
            "tumour",
            rng.random((40, 40)).astype(np.float32),
            scale_rc=(64.0, 64.0),
            translate_rc=(31.5, 31.5),
            min_size=16,
        )
        writer.commit({"params_sha256": hash_params({}), "model": {"sha256": "m"}})
    return folder


def _chunks(folder: Path) -> list[Path]:
    store = folder / "heatmaps.zarr" / "probabilities" / "tumour" / "0"
    return sorted(p for p in store.rglob("*") if p.is_file() and p.name != "zarr.json")


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def test_manifest_records_size_and_sha256_of_every_listed_file(tmp_path: Path) -> None:
    folder = _result_with_maps(tmp_path)
    body = read_manifest(folder)
    sums = body["checksums"]
    assert set(sums) == set(body["files"].values()) == {"tiles.parquet", "heatmaps.zarr"}
    tiles = folder / "tiles.parquet"
    assert sums["tiles.parquet"]["size"] == tiles.stat().st_size
    assert sums["tiles.parquet"]["sha256"] == hashlib.sha256(tiles.read_bytes()).hexdigest()
    arrays = sums["heatmaps.zarr"]["arrays"]
    assert {"probabilities/tumour/0", "probabilities/tumour/1"} <= set(arrays)
    level0 = arrays["probabilities/tumour/0"]
    files = [
        p for p in (folder / "heatmaps.zarr/probabilities/tumour/0").rglob("*") if p.is_file()
    ]
    assert level0["files"] == len(files) and level0["size"] == sum(p.stat().st_size for p in files)
    assert check_files(folder, body) is None and check_files(folder, body, verify=True) is None


def test_a_truncated_tiles_table_is_damaged_without_verify(tmp_path: Path) -> None:
    folder = _result_with_maps(tmp_path)
    tiles = folder / "tiles.parquet"
    tiles.write_bytes(tiles.read_bytes()[:-10])
    problem = check_result(folder, {}, "m")
    assert problem is not None and problem.kind == "damaged"
    assert str(tiles) in problem.message and "bytes" in problem.message
    assert check_result(folder, {}, "m") is not None


def test_same_size_corruption_is_found_by_verify(tmp_path: Path) -> None:
    folder = _result_with_maps(tmp_path)
    _flip_last_byte(folder / "tiles.parquet")
    assert check_result(folder, {}, "m") is None  # sizes match: only hashing can tell
    problem = check_result(folder, {}, "m", verify=True)
    assert problem is not None and problem.kind == "damaged"
    assert "tiles.parquet" in problem.message and "sha256" in problem.message


@pytest.mark.parametrize("damage", ["remove", "alter", "extra", "link", "empty-group"])
def test_a_damaged_zarr_chunk_is_found(tmp_path: Path, damage: str) -> None:
    folder = _result_with_maps(tmp_path)
    chunk = _chunks(folder)[0]
    if damage == "remove":
        chunk.unlink()
    elif damage == "alter":
        _flip_last_byte(chunk)
    elif damage == "extra":
        (chunk.parent / "99").write_bytes(b"x")
    elif damage == "link":
        target = tmp_path / "elsewhere"
        target.write_bytes(chunk.read_bytes())
        chunk.unlink()
        chunk.symlink_to(target)
    else:
        shutil.rmtree(folder / "heatmaps.zarr" / "probabilities" / "tumour" / "1")
    verify = damage == "alter"
    if not verify:
        assert (
            check_result(folder, {}, "m") is not None
        )  # the chunk listing catches it, no hashing
    problem = check_result(folder, {}, "m", verify=True)
    assert problem is not None and problem.kind == "damaged"
    assert "heatmaps.zarr" in problem.message and "probabilities/tumour" in problem.message


def test_a_manifest_without_checksums_is_not_trusted(tmp_path: Path) -> None:
    folder = _result_with_maps(tmp_path)
    body = json.loads((folder / MANIFEST_NAME).read_text())
    del body["checksums"]
    (folder / MANIFEST_NAME).write_text(json.dumps(body))
    problem = check_result(folder, {}, "m")
    assert problem is not None and problem.kind == "damaged"
    assert "no checksums" in problem.message
    assert len(load_result(folder).tiles) == 50  # still readable, just not reused


def test_a_listed_file_replaced_by_a_folder_is_damaged(tmp_path: Path) -> None:
    folder = _result_with_maps(tmp_path)
    (folder / "tiles.parquet").unlink()
    (folder / "tiles.parquet").mkdir()
    problem = check_result(folder, {}, "m")
    assert problem is not None and "tiles.parquet" in problem.message


# --------------------------------------------------------------------------- default stores


def test_default_stores_are_private_per_user_folders(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import stat

    from napari_xai.core.options import cache_dir, private_dir

    monkeypatch.delenv("NAPARI_XAI_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    store = cache_dir("results")
    assert store == tmp_path / "xdg" / "napari-xai" / "results"
    for p in (store, store.parent):
        assert stat.S_IMODE(p.stat().st_mode) == 0o700
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o777)
    os.chmod(loose, 0o777)  # pre-created open to everyone: tightened
    assert stat.S_IMODE(private_dir(loose).stat().st_mode) == 0o700
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "planted").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(PermissionError, match="planted"):
        private_dir(tmp_path / "planted")


def test_a_store_owned_by_another_user_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import os

    from napari_xai.core.options import private_dir

    me = os.getuid()
    monkeypatch.setattr(os, "getuid", lambda: me + 1)
    with pytest.raises(PermissionError, match="belongs to another user"):
        private_dir(tmp_path)


def test_widget_default_outputs_are_not_in_the_shared_temp_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tempfile

    from napari_xai._widgets import audit, explain, score

    monkeypatch.setenv("NAPARI_XAI_CACHE", str(tmp_path / "cache"))
    for module in (audit, explain, score):
        out = module.default_output()
        assert out == tmp_path / "cache" / "results" and out.is_dir()
        assert not out.is_relative_to(Path(tempfile.gettempdir()) / "napari-xai")
