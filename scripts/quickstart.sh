#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the main job on the bundled defaults:
# a synthetic sample slide and the demo model: score, explain, audit, show.
# With a display it opens napari; without one it writes a screenshot PNG and
# all results to ./napari-xai-demo (or the folder given as --out).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ -z "${DISPLAY:-}" ] && [ -z "${WAYLAND_DISPLAY:-}" ]; then
  exec xvfb-run -a -s "-screen 0 1600x1200x24" .venv/bin/napari-xai demo --no-show "$@"
fi
exec .venv/bin/napari-xai demo "$@"
