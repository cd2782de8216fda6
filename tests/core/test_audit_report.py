"""The HTML report renders: parse it and check images, figures, tables and audit.json."""

from __future__ import annotations

import base64
import json
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from napari_xai.core.audit.attention import ARTEFACT, TISSUE, audit_attention
from napari_xai.core.audit.report import write_report
from napari_xai.core.options import AuditSpec, ExplainSpec, RunOptions


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.imgs: list[dict[str, str | None]] = []
        self.figures = 0
        self.tables = 0
        self.text: list[str] = []
        self.flagged_rows = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        d = dict(attrs)
        if tag == "img":
            self.imgs.append(d)
        elif tag == "figure":
            self.figures += 1
        elif tag == "table":
            self.tables += 1
        elif tag == "tr" and d.get("class") == "flagged":
            self.flagged_rows += 1

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(path: Path) -> _Collector:
    p = _Collector()
    p.feed(path.read_text(encoding="utf-8"))
    return p


def audit_test_slide(factory: pytest.TempPathFactory) -> Path:
    """A small synthetic slide with pen, marker, ruler and label, written once per session."""
    from napari_xai.demo.synthetic import write_synthetic_slide

    path = factory.getbasetemp() / "audit_shared" / "synthetic.svs"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_synthetic_slide(path, shape_rc=(1024, 1280), seed=3, workers=1)
    return path


@pytest.fixture
def small_slide(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return audit_test_slide(tmp_path_factory)


def _check_pngs(imgs: list[dict[str, str | None]]) -> None:
    for d in imgs:
        src = d["src"] or ""
        assert src.startswith("data:image/png;base64,")  # self-contained, no links
        raw = base64.b64decode(src.split(",", 1)[1])
        assert raw[:8] == b"\x89PNG\r\n\x1a\n"


def test_tile_attention_report(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    n = 12
    images = rng.integers(0, 255, (n, 16, 16, 3), dtype=np.uint8)
    maps = rng.random((n, 16, 16)).astype(np.float32)
    regions = np.full((n, 16, 16), TISSUE, np.uint8)
    regions[:, :4, :4] = ARTEFACT
    maps[:4, :4, :4] = 50.0  # four tiles look at the artefact corner
    att = audit_attention(maps, regions, pred_class=["tumour"] * 4 + ["normal"] * 8)
    report = write_report(tmp_path, attention=att, tile_images=images, tile_maps=maps)
    assert report == tmp_path / "report.html"
    parsed = _parse(report)
    text = " ".join(parsed.text)
    assert "FAIL" in text and "FLAGGED" in text
    _check_pngs(parsed.imgs)
    # shares figure + histogram + 12 gallery images (tile + overlay for the 6 worst... all kept)
    gallery = [d for d in parsed.imgs if d.get("data-tile") is not None]
    assert len(gallery) == min(att.thresholds.n_worst, n)
    assert {int(d["data-tile"]) for d in gallery[:4]} == {0, 1, 2, 3}
    assert parsed.figures >= 2 and parsed.tables >= 1
    summary = json.loads((tmp_path / "audit.json").read_text())
    assert summary["verdict"] == "fail"
    assert summary["attention"]["n_flagged"] == 4
    assert summary["attention"]["shares_by_class"]["tumour"]["artefact"] > 0.5


def test_data_and_slide_report(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    import torch

    from napari_xai.core.audit.slide import iter_audit_slide
    from napari_xai.core.progress import drive
    from napari_xai.demo.synthetic import write_synthetic_slide

    torch.set_num_threads(1)
    slide = tmp_path / "synthetic.svs"
    write_synthetic_slide(slide, shape_rc=(1024, 1280), seed=3, workers=1)
    steps = []
    gen = iter_audit_slide(
        slide, "demo", spec=AuditSpec(method="grad_cam", max_tiles=24),
        run=RunOptions(explain_batch_size=12),
    )  # fmt: skip
    res = drive(gen, steps.append)
    assert steps[-1].n_done == steps[-1].n_total == len(res.tiles) <= 24
    assert res.verdict in ("pass", "warn", "fail")
    # Shares per tile sum to 1 and agree with the table; tiles sit inside the slide.
    t = res.tiles
    share_cols = [c for c in t.columns if c.startswith("share_")]
    np.testing.assert_allclose(t[share_cols].sum(axis=1), 1.0, atol=1e-4)
    assert (t["row"] >= 0).all() and (t["row"] + t["height"] <= 1024 + t["height"]).all()
    assert res.worst_images.shape[0] == len(res.attention.worst)
    # The demo model is trained on clean tissue: most attribution on tissue.
    assert res.attention.shares["tissue"] > 0.6

    from napari_xai.core.audit.data import audit_cohort
    from tests.core.test_audit_data import _write_cohort

    data = audit_cohort(_write_cohort(tmp_path, n_per_class=6))
    out = tmp_path / "result"
    report = write_report(out, slide_audit=res, data_audit=data)
    parsed = _parse(report)
    _check_pngs(parsed.imgs)
    alts = [d.get("alt") or "" for d in parsed.imgs]
    assert "slide overview" in alts and "attribution shares" in alts
    assert "montage normal" in alts and "montage tumour" in alts
    assert "class balance" in alts and "colour statistics" in alts
    positioned = [d for d in parsed.imgs if d.get("data-row") is not None]
    assert len(positioned) == len(res.attention.worst)
    _assert_palette_regions(parsed, res)
    assert parsed.flagged_rows >= 1  # the confounded 'site' row
    summary = json.loads((out / "audit.json").read_text())
    assert summary["verdict"] == "fail"  # the data audit fails on 'site'
    assert summary["attention"]["n_audited_tiles"] == len(res.tiles)
    assert summary["data"]["associations"][0]["column"] == "site"


def test_stitched_store_shares_agree_with_tile_audit(tmp_path: Path, small_slide: Path) -> None:
    torch = pytest.importorskip("torch")
    from napari_xai.core.attribution.whole_slide import explain_slide
    from napari_xai.core.audit.slide import audit_saliency_store, audit_slide
    from napari_xai.core.wsi import open_slide

    torch.set_num_threads(1)
    path = small_slide
    res = audit_slide(path, "demo", spec=AuditSpec(method="grad_cam", max_tiles=None))
    with open_slide(path) as slide:
        ex = explain_slide(
            slide, "demo", store=tmp_path / "heatmaps.zarr", spec=ExplainSpec(method="grad_cam")
        )
    out = audit_saliency_store(
        ex.store, ex.key, res.regions, regions_downsample=res.regions_downsample
    )
    assert sum(out["shares"].values()) == pytest.approx(1.0)
    # Same tiles, same method: the stitched map's tissue share is close to the tile audit's.
    assert out["shares"]["tissue"] == pytest.approx(res.attention.shares["tissue"], abs=0.1)
    with pytest.raises(ValueError, match="no stitched saliency map"):
        audit_saliency_store(ex.store, "saliency/nope/x", res.regions, regions_downsample=1.0)


def test_real_slide_audit(shared_data: Path, tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from napari_xai.core.audit.slide import audit_slide

    torch.set_num_threads(1)
    path = shared_data / "slides" / "CMU-1-Small-Region.svs"
    res = audit_slide(path, "demo", spec=AuditSpec(max_tiles=16), out_dir=tmp_path)
    assert 0 < len(res.tiles) <= 16 and res.n_grid_tiles > 16
    assert res.attention.shares["tissue"] > 0.5  # real H&E: the demo model looks at tissue
    assert res.report_path is not None and res.report_path.is_file()
    summary = json.loads((tmp_path / "audit.json").read_text())
    assert summary["attention"]["slide"].endswith("CMU-1-Small-Region.svs")


def _png_pixels(d: dict[str, str | None]) -> np.ndarray:
    import io

    from PIL import Image

    raw = base64.b64decode((d["src"] or "").split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))


def _assert_palette_regions(parsed: _Collector, res: object) -> None:
    """The report's region map is drawn in the palette's region colours (napari's layer's)."""
    from napari_xai.core.audit.attention import REGION_NAMES
    from napari_xai.core.layers.audit import audit_layers
    from napari_xai.core.naming import REGION_COLOURS, rgb255

    (overview,) = [d for d in parsed.imgs if d.get("alt") == "slide overview"]
    pixels = _png_pixels(overview).reshape(-1, 3)
    colours, counts = np.unique(pixels, axis=0, return_counts=True)
    seen = {tuple(int(v) for v in c): int(n) for c, n in zip(colours, counts, strict=True)}
    codes = set(np.unique(res.regions).tolist())  # type: ignore[attr-defined]
    for code, name in enumerate(REGION_NAMES):
        if name != "background" and code in codes:  # background: white glass in the report
            assert seen.get(rgb255(REGION_COLOURS[name]), 0) > 50, name
    # napari's region layer: the same colours for the same codes
    (_, kwargs, kind), _tiles = audit_layers(res, name="s")  # type: ignore[arg-type]
    assert kind == "labels"
    for code, name in enumerate(REGION_NAMES):
        want = "transparent" if name == "background" else REGION_COLOURS[name]
        assert kwargs["colormap"][code] == want
