"""The command line: every subcommand has help; bad input gives a message and status 1."""

from __future__ import annotations

from pathlib import Path

import pytest

from napari_xai.cli import SUBCOMMANDS, main


def test_top_level_help_lists_every_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for name in SUBCOMMANDS:
        assert name in out


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_each_subcommand_has_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main([name, "--help"])
    assert info.value.code == 0
    assert "usage: napari-xai" in capsys.readouterr().out


def test_info_prints_what_the_slide_says(
    shared_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["info", str(shared_data / "slides" / "CMU-1-Small-Region.svs")])
    out = capsys.readouterr().out
    assert status == 0
    assert "2220 x 2967" in out and "0.4990" in out and "aperio" in out


def test_info_on_bad_files_names_them_and_exits_1(
    shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.svs"
    empty.write_bytes(b"")
    status = main(
        [
            "info",
            str(empty),
            str(shared_data / "slides" / "bad" / "boxes_0.dcm"),
            str(shared_data / "slides" / "small.svs"),
        ]
    )
    captured = capsys.readouterr()
    assert status == 1
    assert f"{empty}: empty file" in captured.err
    assert "boxes_0.dcm: DICOM" in captured.err
    assert "small.svs" in captured.out  # the good file is still reported


def test_demo_without_a_display_keeps_the_results_and_says_how_to_get_screenshots(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Qt aborts the process when it cannot open a window: without X or Wayland the
    demo must stop after writing the folder, with a line saying what to run."""
    import sys

    from napari_xai.cli import demo

    if not sys.platform.startswith("linux"):
        pytest.skip("the display check is for Linux")
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        monkeypatch.delenv(name, raising=False)
    folder = tmp_path / "results" / "slide"
    folder.mkdir(parents=True)
    monkeypatch.setattr(demo, "ensure_sample_slide", lambda out, **_: out / "slide.tif")
    monkeypatch.setattr(demo, "score_explain_audit", lambda slide, out, **_: folder)

    def no_window(*_args: object, **_kwargs: object) -> None:
        raise AssertionError("napari must not be started without a display")

    monkeypatch.setattr(demo, "show_result", no_window)
    assert main(["demo", "--out", str(tmp_path), "--no-show"]) == 0
    assert "xvfb-run" in capsys.readouterr().out
    assert main(["demo", "--out", str(tmp_path)]) == 1
