"""The layout keeps its promises: a Qt-free core and cheap plugin imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "captum", "dask.array", "pandas", "scipy", "qtpy", "PyQt6")


def _modules_after_import(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    return set(out.stdout.split())


@pytest.mark.parametrize("module", ["napari_xai", "napari_xai._reader", "napari_xai._sample_data"])
def test_modules_napari_imports_for_menus_are_cheap(module: str) -> None:
    loaded = _modules_after_import(module)
    assert not [m for m in HEAVY if m in loaded]


def test_widget_modules_import_without_torch() -> None:
    widgets = sorted((ROOT / "napari_xai" / "_widgets").glob("[!_]*.py"))
    for path in widgets:
        loaded = _modules_after_import(f"napari_xai._widgets.{path.stem}")
        assert "torch" not in loaded and "captum" not in loaded, path.name


def test_core_never_imports_qt_magicgui_or_napari() -> None:
    """The import-linter contract in pyproject.toml, run for real."""
    lint = Path(sys.executable).with_name("lint-imports")
    if not lint.exists():
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    result = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
