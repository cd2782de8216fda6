"""Run ``napari-xai batch`` again and again, SIGKILLed at chosen kill points (issue 13).

``python -m tests.core.kill_runner SLIDES OUT REPORT.json N K1 K2 ...`` imports
napari-xai once, then for each ``K`` forks a child that runs the batch command
on ``SLIDES`` into ``OUT`` and SIGKILLs itself at its K-th kill point
(:func:`napari_xai.core.atomic.kill_point`), until ``N`` runs were killed; a last
run then goes to the end without a kill. The parent never
runs torch itself, so the forked children do not inherit a busy thread pool.

First, two calibration runs go from nothing to the end without a kill: they
count the cohort's kill points (``P``) and show that the count and order do not
depend on timing. Each ``K`` is then taken as ``1 + (K - 1) % P``, so it lands on
a kill point of a run from nothing however many the code has (a new atomic
write or progress step changes ``P``, and would otherwise shift every later kill).

When a run finishes, ``OUT`` is moved to ``OUT-done-<n>`` for the test to check
and the next run starts from nothing. ``REPORT.json`` lists, per run, whether it
was a calibration run, whether it was killed, at which kill point (its number
and name), the names of every kill point it passed and where a finished output
went.
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


def _run(slides: str, out: Path, kill_at: int, log: Path) -> dict[str, object]:
    """Fork a child that runs the batch and kills itself at its ``kill_at``-th kill point."""
    pid = os.fork()
    if pid == 0:
        try:
            _child(slides, str(out), kill_at, log)
        finally:
            os._exit(99)
    _, status = os.waitpid(pid, 0)
    killed = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    names = (
        [line.split(" ", 2)[2] for line in log.read_text().splitlines()] if log.exists() else []
    )
    return {
        "kill_at": kill_at,
        "killed": killed,
        "exit": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
        "point": names[-1] if killed and names else None,
        "n_points": len(names),
        "points": names,
    }


def main(argv: list[str]) -> int:
    """Run the calibration runs and the kills; write the report; return 0."""
    slides, out, report = argv[0], Path(argv[1]), Path(argv[2])
    n_kills = int(argv[3])
    kills = [int(k) for k in argv[4:]]
    _warm_up()

    runs: list[dict[str, object]] = []
    done = 0

    def finished(run: dict[str, object]) -> None:
        nonlocal done
        if not run["killed"]:
            target = out.parent / f"{out.name}-done-{done}"
            shutil.move(str(out), target)
            run["done"] = str(target)
            done += 1
        runs.append(run)

    for i in range(2):  # calibration: from nothing to the end
        finished({**_run(slides, out, 0, out.parent / f"calibrate-{i}.log"), "calibration": True})
    n_points = len((out.parent / "calibrate-0.log").read_text().splitlines())
    for i, k in enumerate(kills):
        if sum(bool(r["killed"]) for r in runs) >= n_kills:
            k = 0  # the last run: to the end
        elif n_points:
            k = 1 + (k - 1) % n_points
        run = {**_run(slides, out, k, out.parent / f"kill-{i}.log"), "calibration": False}
        finished(run)
        if k == 0:
            break
    report.write_text(json.dumps(runs, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
