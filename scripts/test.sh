#!/usr/bin/env bash
# Set up (scripts/setup.sh) and run the whole test suite; viewer tests run in a
# real napari window on a virtual X screen (Xvfb + Mesa GL).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
exec xvfb-run -a -s "-screen 0 1600x1200x24" .venv/bin/python -m pytest "$@"
