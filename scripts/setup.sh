#!/usr/bin/env bash
# Set up everything napari-xai needs on a fresh Debian/Ubuntu machine:
# system libraries for a real napari window (Xvfb, Mesa GL, xcb), then a
# virtual environment in .venv with the package installed editable.
# Safe to re-run: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  xvfb xauth libgl1-mesa-dri libglx-mesa0 libegl1 libdbus-1-3 libfontconfig1
  libxkbcommon-x11-0 libxcb-icccm4 libxcb-image0 libxcb-keysyms1 libxcb-randr0
  libxcb-render-util0 libxcb-xinerama0 libxcb-xfixes0 libxcb-shape0 libxcb-cursor0
)
if command -v apt-get >/dev/null 2>&1; then
  missing=()
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "setup: installing system packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PYTHON" -m venv .venv
fi
# Without a GPU, pin the CPU torch wheel: an unpinned torch pulls several GB of CUDA.
TORCH_SPEC=${NAPARI_XAI_TORCH:-torch==2.13.0}
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
  echo "setup: installing $TORCH_SPEC"
  .venv/bin/python -m pip install -q --upgrade pip 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -m pip install -q "$TORCH_SPEC" 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -c "import torch"
fi
# The explore extra (umap-learn, numba; no torch) is installed too, so the tests
# run the UMAP path of the explorer.
if ! .venv/bin/python -c "import napari_xai, napari, pytestqt, umap" >/dev/null 2>&1 \
   || [ pyproject.toml -nt .venv/.napari-xai-installed ]; then
  echo "setup: installing napari-xai and its dependencies"
  .venv/bin/python -m pip install -q -e ".[dev,explore]" 2>&1 | grep -v "^WARNING: Location" || true
  .venv/bin/python -c "import napari_xai, napari, pytestqt, umap"
  touch .venv/.napari-xai-installed
fi
echo "setup: ready (.venv)"
