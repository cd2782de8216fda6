"""Run ``napari-xai batch`` again and again, SIGKILLed at chosen kill points (issue 13).

``python -m tests.core.kill_runner SLIDES OUT REPORT.json N K1 K2 ...`` imports
napari-xai once, then for each ``K`` forks a child that runs the batch command
on ``SLIDES`` into ``OUT`` and SIGKILLs itself at its K-th kill point
(:func:`napari_xai.core.atomic.kill_point`), until ``N`` runs were killed; a last
run then goes to the end without a kill. The parent never
runs torch itself, so the forked children do not inherit a busy thread pool.
When a run finishes, ``OUT`` is moved to ``OUT-done-<n>`` for the test to check
and the next run starts from nothing. ``REPORT.json`` lists, per run, whether it
was killed, at which kill point, and where a finished output went.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from pathlib import Path


def _child(slides: str, out: str, kill_at: int, log: Path) -> None:
    import torch

    from napari_xai.cli.batch import main
    from napari_xai.core import atomic

    torch.set_num_threads(1)
    atomic._KILL.count = 0
    atomic._KILL.kill_at = kill_at
    atomic._KILL.log = str(log)
    atomic._KILL.active = True
    args = [slides, "--model", "demo", "--out", out, "--scheduler", "sync", "-q"]
    os._exit(main([*args, "--torch-threads", "1"]))


def _warm_up() -> None:
    """Import what a run needs and load the demo model once, before forking (runs are cheap).

    torch runs single-threaded here, so no thread pool exists to be inherited.
    """
    import torch

    torch.set_num_threads(1)
    import pyarrow.parquet  # noqa: F401
    import shapely.geometry  # noqa: F401
    import tiffslide  # noqa: F401

    import napari_xai.cli.batch  # noqa: F401
    import napari_xai.core.inference  # noqa: F401
    import napari_xai.core.wsi  # noqa: F401
    from napari_xai.core.models.resolve import resolve_model

    resolve_model("demo", device="cpu")


def main(argv: list[str]) -> int:
    """Run the kills; write the report; return 0."""
    slides, out, report = argv[0], Path(argv[1]), Path(argv[2])
    n_kills = int(argv[3])
    kills = [int(k) for k in argv[4:]]
    _warm_up()

    runs: list[dict[str, object]] = []
    done = 0
    for i, k in enumerate(kills):
        if sum(bool(r["killed"]) for r in runs) >= n_kills:
            k = 0  # the last run: to the end
        log = out.parent / f"kill-{i}.log"
        pid = os.fork()
        if pid == 0:
            try:
                _child(slides, str(out), k, log)
            finally:
                os._exit(99)
        _, status = os.waitpid(pid, 0)
        killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
        lines = log.read_text().splitlines() if log.exists() else []
        run = {
            "kill_at": k,
            "killed": killed,
            "exit": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
            "point": lines[-1].split(" ", 2)[2] if killed and lines else None,
            "n_points": len(lines),
        }
        if not killed:
            target = out.parent / f"{out.name}-done-{done}"
            shutil.move(str(out), target)
            run["done"] = str(target)
            done += 1
        runs.append(run)
        if k == 0:
            break
    report.write_text(json.dumps(runs, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
