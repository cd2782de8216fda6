"""Ctrl-C stops a batch cleanly in every scheduler: exit 130, one line, no leftover (issue 16)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from napari_xai.core.batch import BatchCancelled, ProgressFn, SlideTask, iter_batch
from napari_xai.core.options import BatchOptions
from napari_xai.core.results import read_manifest

from .batch_helpers import write_tiny_slide

REPO = Path(__file__).resolve().parents[2]
# The child slows every batch of tiles down (in this process: the "sync" scheduler), so
# that the interrupt lands while a slide is half-scored. It takes Ctrl-C even when started
# with SIGINT ignored (a background job of a non-interactive shell, as CI may run it):
# Python keeps an inherited SIG_IGN and the SIGINT would then do nothing.
CHILD = r"""
import signal, sys, time
signal.signal(signal.SIGINT, signal.default_int_handler)
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


def test_ctrl_c_while_waiting_for_the_slide_thread_stops_and_joins_it(tmp_path: Path) -> None:
    """A Ctrl-C landing in the wait for an in-process slide still stops and joins its thread.

    The cause of the teardown abort (exit -6, "terminate called without an active
    exception", docs/reliability.md): ``Thread.join()`` interrupted by KeyboardInterrupt
    marks a running thread as stopped, so the batch stopped waiting and the interpreter
    finalized while the slide thread was still inside torch. Here the slide itself sends
    the SIGINT to the main thread while that thread waits for it, then runs until told
    to stop.
    """
    write_tiny_slide(tmp_path / "s.tif", seed=0, grid_rc=(5, 6))
    seen = {"calls": 0, "stopped": False}

    def slide_fn(task: SlideTask, progress: ProgressFn) -> dict[str, object]:
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)
        for _ in range(20_000):  # bounded: a broken stop fails the test instead of hanging
            try:
                progress(0, 1)
            except BatchCancelled:
                seen["stopped"] = True
                raise
            seen["calls"] += 1
            time.sleep(0.005)
        return {}

    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    gen = iter_batch(
        [tmp_path / "s.tif"],
        "demo",
        tmp_path / "out",
        slide_fn=slide_fn,
        model_hash="0" * 64,
        batch=BatchOptions(scheduler="sync"),
    )
    try:
        with pytest.raises(KeyboardInterrupt):
            try:
                for _event in gen:
                    pass
            finally:
                gen.close()  # as the batch CLI does
    finally:
        signal.signal(signal.SIGINT, previous)
    assert seen["stopped"], seen  # the slide was told to stop and stopped
    alive = [t.name for t in threading.enumerate() if t.name.startswith("napari-xai-batch-")]
    assert alive == [], alive  # and its thread is gone before the interrupt reaches the caller
