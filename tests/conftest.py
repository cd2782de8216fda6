"""Shared fixtures: real data location, small synthetic slides, tiny models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

# Two cores: keep BLAS/torch from oversubscribing when tests run in parallel processes.
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ``../shared/data`` (real slides and tiles); skip when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test data not found at {SHARED_DATA}")
    return SHARED_DATA


def real_slides() -> list[Path]:
    """Every readable real slide in ``../shared/data/slides`` (not the ``bad`` ones)."""
    folder = SHARED_DATA / "slides"
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file())
