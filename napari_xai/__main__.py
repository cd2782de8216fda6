"""Allow ``python -m napari_xai``."""

from __future__ import annotations

import sys

from napari_xai.cli import main

sys.exit(main())
