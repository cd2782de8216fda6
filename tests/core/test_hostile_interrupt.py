"""Ctrl-C stops a batch cleanly in every scheduler: exit 130, one line, no leftover (issue 16)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from napari_xai.core.results import read_manifest

from .batch_helpers import write_tiny_slide

REPO = Path(__file__).resolve().parents[2]
# The child slows every batch of tiles down (in this process: the "sync" scheduler), so
# that the interrupt lands while a slide is half-scored.
CHILD = r"""
import sys, time
import napari_xai.core.inference as inference
original = inference.predict_probabilities
def slow(*args, **kwargs):
    time.sleep(0.05)
    return original(*args, **kwargs)
inference.predict_probabilities = slow
from napari_xai.cli import main
sys.exit(main(sys.argv[1:]))
"""


@pytest.fixture(scope="module")
def slides(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("interrupt")
    write_tiny_slide(root / "a.tif", seed=0, grid_rc=(5, 6))
    for name, seed in (("b", 1), ("c", 2)):
        write_tiny_slide(root / f"{name}.tif", seed=seed, grid_rc=(40, 48))
    return root


def _interrupt(slides: Path, out: Path, scheduler: str) -> tuple[int, str]:
    args = ["batch", str(slides), "--model", "demo", "--out", str(out), "--quiet"]
    args += ["--scheduler", scheduler] + (["--workers", "1"] if scheduler == "local" else [])
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, *args],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        done = (out / "a" / "manifest.json").is_file()
        writing = out.is_dir() and any(".tmp-" in p.name for p in out.iterdir())
        if done and writing:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.communicate()
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    _out, err = proc.communicate(timeout=180)
    return proc.returncode, err


@pytest.mark.parametrize("scheduler", ["sync", "local"])
def test_ctrl_c_stops_cleanly_and_keeps_finished_slides(
    slides: Path, tmp_path: Path, scheduler: str
) -> None:
    if scheduler == "local":
        pytest.importorskip("distributed")
    out = tmp_path / "out"
    rc, err = _interrupt(slides, out, scheduler)
    assert rc == 130, err
    assert "interrupted; finished slides are kept" in err
    assert "Traceback" not in err and "terminate called" not in err, err
    assert read_manifest(out / "a")["status"] == "complete"  # the finished slide stays
    leftovers = [p.name for p in out.iterdir() if ".tmp" in p.name or ".old-" in p.name]
    assert leftovers == [], leftovers
