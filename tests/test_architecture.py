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


@pytest.mark.parametrize(
    "module",
    [
        "napari_xai.core.layers.saliency",
        "napari_xai.core.layers.results",
        "napari_xai.core.stitch",
    ],
)
def test_layer_builders_and_stitched_maps_import_without_torch(module: str) -> None:
    """Showing a stored map needs no torch (the import-linter contract, checked at run time)."""
    loaded = _modules_after_import(module)
    assert "torch" not in loaded and "captum" not in loaded


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


def _import_cycles() -> list[list[str]]:
    """Strongly connected groups (more than one module) of napari_xai's runtime imports."""
    grimp = pytest.importorskip("grimp", reason="grimp comes with import-linter ('.[dev]')")
    graph = grimp.build_graph("napari_xai", cache_dir=None, exclude_type_checking_imports=True)
    modules = sorted(m for m in graph.modules if m.startswith("napari_xai"))
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.find_modules_directly_imported_by(v):
            if not w.startswith("napari_xai"):
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for m in modules:
        if m not in index:
            visit(m)
    return sorted(groups)


def test_no_import_cycles() -> None:
    """Function-level imports count (they run); ``if TYPE_CHECKING:`` imports do not."""
    assert _import_cycles() == []


@pytest.mark.parametrize("args", [["format", "--check"], ["check"]], ids=["format", "check"])
def test_ruff_is_clean(args: list[str]) -> None:
    """`ruff format --check` and `ruff check` pass on the whole tree (pre-commit runs both)."""
    ruff = Path(sys.executable).with_name("ruff")
    if not ruff.exists():
        pytest.skip("ruff is not installed (pip install -e '.[dev]')")
    result = subprocess.run(
        [str(ruff), *args, "."], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_is_clean_over_the_package() -> None:
    """Mypy (the pyproject settings) over all of ``napari_xai`` (widgets: see pyproject)."""
    mypy = Path(sys.executable).with_name("mypy")
    if not mypy.exists():
        pytest.skip("mypy is not installed (pip install -e '.[dev]')")
    result = subprocess.run([str(mypy)], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout + result.stderr
